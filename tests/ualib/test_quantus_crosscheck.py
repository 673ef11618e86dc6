"""Our localization metrics and ROAD imputation against Quantus (an independent implementation).

Definitional differences, checked here rather than hidden:

* Quantus's pointing game counts a hit when *any* pixel tied for the maximum lies in the mask; ours
  takes the first maximum in reading order. On maps without ties (continuous noise) they coincide.
* Quantus's relevance-mass accuracy divides the signed in-mask sum by the signed total; our
  :func:`mass_in_mask` uses ``|a|``. On non-negative maps they coincide.
* Quantus's ``PixelFlipping`` / ``ROAD`` metrics need a classifier and score its logits; the removal they
  apply, ``noisy_linear_imputation``, is compared with ours directly (noise 0), which is the part that
  defines the ROAD curve. Quantus draws the noise from NumPy's global generator, ours from a seeded
  torch generator, so noisy values are compared in distribution only (not here).
"""

import numpy as np
import pytest
import quantus  # a test dependency (pyproject [test]): a missing install fails, it does not skip
import torch
from quantus.functions.perturb_func import noisy_linear_imputation

from ualib.metrics.localization import mass_in_mask, pointing_game
from ualib.metrics.road import noisy_linear_impute


def _example(seed=0, b=6, h=12, w=10):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(b, 1, h, w, generator=g, dtype=torch.float64)
    mask = torch.zeros(b, 1, h, w, dtype=torch.bool)
    for i in range(b):
        y, x = torch.randint(0, h - 4, (2,), generator=g).tolist()
        mask[i, 0, y : y + 4, x % (w - 4) : x % (w - 4) + 4] = True
    a[:2] += 3.0 * mask[:2]  # two maps that point at the mask
    return a, mask


def test_pointing_game_matches_quantus():
    a, mask = _example()
    q = quantus.PointingGame(disable_warnings=True).evaluate_batch(a_batch=a.numpy(), s_batch=mask.numpy())
    ours = pointing_game(a, mask).numpy().astype(float)
    np.testing.assert_array_equal(np.asarray(q, dtype=float), ours)
    assert ours[:2].all()


def test_relevance_mass_accuracy_matches_quantus():
    a, mask = _example(seed=1)
    q = quantus.RelevanceMassAccuracy(disable_warnings=True).evaluate_batch(a_batch=a.numpy(), s_batch=mask.numpy())
    np.testing.assert_allclose(np.asarray(q, dtype=float), mass_in_mask(a, mask).numpy(), rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_road_imputation_matches_quantus(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, 9, 11, generator=g, dtype=torch.float64)
    removed = torch.rand(1, 9, 11, generator=g) < 0.3
    removed[0, 0, 0] = False
    idx = np.flatnonzero(removed[0].numpy().reshape(-1))
    q = noisy_linear_imputation(x[0].numpy(), idx, noise=0.0)
    ours = noisy_linear_impute(x, removed, noise=0.0)[0].numpy()
    np.testing.assert_allclose(ours, q, rtol=1e-10, atol=1e-12)

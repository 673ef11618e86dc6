"""CovGI / CovIG against a naive per-(sample, input, class) loop and the exact variance of a linear model."""

import pytest
import torch
from torch import nn

from ualib import uncertainty as U
from ualib.attribution.covariance import cov_gi, cov_ig, covariance_attribution, covariance_from_explanations
from ualib.posteriors import MCDropout


def _posterior(bias: bool, hidden: bool = False, seed: int = 0) -> MCDropout:
    torch.manual_seed(seed)
    layers = [nn.Flatten(), nn.Dropout(0.3)]
    if hidden:
        layers += [nn.Linear(12, 7, bias=bias), nn.ReLU(), nn.Dropout(0.3), nn.Linear(7, 4, bias=bias)]
    else:
        layers += [nn.Linear(12, 4, bias=bias)]
    model = nn.Sequential(*layers).double()
    return MCDropout(model, num_samples=9, seed=seed)


def naive(post, x, output="probs", baseline=None, steps=1):
    """R[s, b, k] by one backward pass per (sample, input, class); IG by an explicit midpoint sum."""
    s_n, k_n = post.num_samples, 4
    r = torch.zeros(s_n, len(x), k_n, *x.shape[1:], dtype=x.dtype)
    base = torch.zeros_like(x) if baseline is None else baseline
    for s in range(s_n):
        for b in range(len(x)):
            for k in range(k_n):
                g_sum = torch.zeros_like(x[b])
                alphas = [1.0] if baseline is None else [(t + 0.5) / steps for t in range(steps)]
                for a in alphas:
                    xi = (base[b] + a * (x[b] - base[b]))[None].clone().requires_grad_(True)
                    z = post.logits(xi, indices=[s])[0, 0]
                    f = z.softmax(-1) if output == "probs" else z
                    (g,) = torch.autograd.grad(f[k], xi)
                    g_sum += g[0]
                r[s, b, k] = (x[b] - base[b]) * g_sum / len(alphas)
    return r


def full_matrix_rowsum(r):
    """Explicit pixel-by-pixel covariance matrix, summed over classes, then its row sums."""
    s, b = r.shape[:2]
    flat = r.flatten(3)  # [S, B, K, P]
    out = torch.zeros(b, flat.shape[-1], dtype=r.dtype)
    total = torch.zeros(b, dtype=r.dtype)
    for bi in range(b):
        for k in range(flat.shape[2]):
            v = flat[:, bi, k]  # [S, P]
            cov = (v - v.mean(0)).T @ (v - v.mean(0)) / s  # [P, P]
            out[bi] += cov.sum(1)
            total[bi] += cov.sum()
    return out.view(b, *r.shape[3:]), total


def test_decomposition_sums_to_the_variance_of_a_linear_model_exactly():
    post = _posterior(bias=False)
    x = torch.rand(3, 1, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    res = covariance_attribution(post, x, output="logits", return_details=True)
    with torch.no_grad():
        z = post.logits(x)
        var = ((z - z.mean(0)) ** 2).mean(0).sum(-1)
    torch.testing.assert_close(res["attribution"].flatten(1).sum(1), var, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(res["explained"], var, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(res["variance"], var, rtol=1e-12, atol=1e-14)


def test_decomposition_is_exact_for_a_bias_free_relu_network():
    post = _posterior(bias=False, hidden=True)
    x = torch.rand(2, 1, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    res = covariance_attribution(post, x, output="logits", return_details=True)
    torch.testing.assert_close(res["attribution"].flatten(1).sum(1), res["variance"], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("output", ["probs", "logits"])
def test_cov_gi_matches_the_naive_loop_and_full_matrix(output):
    post = _posterior(bias=True, hidden=True)
    x = torch.rand(2, 1, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    r = naive(post, x, output)
    want, total = full_matrix_rowsum(r)
    ref = covariance_from_explanations(r)
    torch.testing.assert_close(ref["attribution"], want, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(ref["explained"], total, rtol=1e-10, atol=1e-14)
    res = covariance_attribution(post, x, output=output, return_details=True)
    torch.testing.assert_close(res["attribution"], want, rtol=1e-9, atol=1e-13)
    torch.testing.assert_close(res["explained"], total, rtol=1e-9, atol=1e-13)
    if output == "probs":
        torch.testing.assert_close(res["variance"], U.predictive_variance(post.probs(x).detach(), reduce="sum"))
    # the diagonal (first-order) part is a variance: non-negative
    assert (ref["diagonal"] >= 0).all()
    torch.testing.assert_close(cov_gi(post, x, output=output), res["attribution"])


def test_cov_ig_matches_the_naive_loop():
    post = _posterior(bias=True, hidden=True)
    x = torch.rand(2, 1, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    base = torch.full_like(x, 0.2)
    r = naive(post, x, "probs", baseline=base, steps=5)
    want, _ = full_matrix_rowsum(r)
    got = cov_ig(post, x, baseline=0.2, steps=5, batch_size=1)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-13)


def test_bad_arguments():
    post = _posterior(bias=False)
    x = torch.rand(1, 1, 3, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="explanation"):
        covariance_attribution(post, x, explanation="lrp")
    with pytest.raises(TypeError, match="Posterior"):
        covariance_attribution(nn.Linear(2, 2), x)
    with pytest.raises(ValueError, match=r"\[S, B, K"):
        covariance_from_explanations(torch.zeros(2, 3, 4))


def test_registry_entries_call_cov_gi_and_cov_ig_on_the_variance_only():
    from ualib.attribution.registry import REGISTRY, uncertainty_attributor

    post = _posterior(bias=False)
    x = torch.rand(3, 12, dtype=torch.float64)
    assert REGISTRY["cov_gi"].fn is cov_gi and REGISTRY["cov_ig"].fn is cov_ig
    torch.testing.assert_close(uncertainty_attributor("cov_gi", post, "variance")(x), cov_gi(post, x))
    torch.testing.assert_close(uncertainty_attributor("cov_ig", post, "variance", steps=4)(x), cov_ig(post, x, steps=4))
    with pytest.raises(ValueError, match="kind"):
        uncertainty_attributor("cov_gi", post, "epistemic")
    with pytest.raises(ValueError, match="kind"):
        cov_ig(post, x, kind="total")

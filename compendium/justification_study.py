"""The experiments of the justification chapter: sparse GP vs kNN on a frozen network's features.

Small, composable steps that the chapter notebook calls (the algorithms themselves live in
:mod:`ualib.justification.features`, :mod:`ualib.justification.sparse_gp` and :mod:`ualib.justification.knn`):

* :func:`fit_layers` fits one sparse GP and one kNN justifier per layer;
* :func:`ood_scores` and :func:`ood_auroc_table` compare OOD scores (higher = more likely OOD);
* :func:`cost_scaling` measures memory (bytes of the query state) and query time as ``P`` and ``N``
  grow;
* :func:`justification_panel` lays out query images with their supporting and opposing training
  images for :func:`ualib.viz.plotting.image_grid`;
* :func:`state_fingerprint` hashes a network's parameters and buffers (to show it never changed);
* :func:`thread_count` runs a block with another torch thread count (the chapter's GP work runs on one
  thread, its networks are trained or loaded with the process's own count, so that they are the other
  chapters' networks: the thread count is part of the model cache key).

Everything here is part of the reconstruction of Ardis & Flenner (2024) described in
:mod:`ualib.justification.sparse_gp` [INF].
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from ualib import metrics
from ualib.justification.features import OUTPUT, FrozenFeatures, layer_features
from ualib.justification.knn import KNNJustification, KNNJustifier
from ualib.justification.sparse_gp import GPPrediction, Justification, SparseGP
from ualib.uncertainty import total_entropy

__all__ = [
    "LayerStudy",
    "study",
    "fit_layers",
    "ood_scores",
    "ood_auroc_table",
    "query_seconds",
    "cost_scaling",
    "justification_panel",
    "state_fingerprint",
    "thread_count",
]


@dataclass
class LayerStudy:
    """Everything :func:`study` computed for one frozen network (see there)."""

    frozen: FrozenFeatures
    models: dict[str, tuple[SparseGP, KNNJustifier]]
    h_train: dict[str, torch.Tensor]
    h_test: dict[str, torch.Tensor]
    h_ood: dict[str, dict[str, torch.Tensor]]
    logits_test: torch.Tensor
    gp_test: dict[str, GPPrediction]
    knn_test: dict[str, KNNJustification]
    accuracy: pd.DataFrame
    auroc: pd.DataFrame


def study(
    net: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    ood: Mapping[str, torch.Tensor],
    *,
    layers: Sequence[str],
    n_components: int | None,
    num_inducing: int,
    k: int = 10,
    iterations: int = 30,
    hyper_subset: int | None = 5000,
    pool: str | Mapping[str, str] = "avg",
    num_classes: int = 10,
    seed: int = 0,
) -> LayerStudy:
    """Features of ``layers`` of the frozen ``net`` (PCA + standardisation fitted on ``x_train``), one
    sparse GP and one kNN per layer, test accuracy and OOD AUROC.

    ``accuracy``: rows = layers, columns ``network`` / ``sparse GP head`` / ``kNN majority vote``.
    ``auroc``: :func:`ood_auroc_table` of :func:`ood_scores` for every set in ``ood`` (name -> images).
    Convolutional outputs are globally average-pooled by default (``pool``).
    """
    frozen = FrozenFeatures(net, layers, n_components=n_components, pool=pool)
    h_train = frozen.fit(x_train)
    h_test = frozen(x_test)

    def logits(x: torch.Tensor) -> torch.Tensor:
        return layer_features(net, x, [OUTPUT])[OUTPUT]

    models = fit_layers(
        h_train,
        y_train,
        num_inducing=num_inducing,
        k=k,
        iterations=iterations,
        hyper_subset=hyper_subset,
        num_classes=num_classes,
        seed=seed,
    )
    gp_test = {l: gp.predict(h_test[l]) for l, (gp, _) in models.items()}
    knn_test = {l: knn.query(h_test[l]) for l, (_, knn) in models.items()}
    logits_test = logits(x_test)
    net_acc = float((logits_test.argmax(1) == y_test).double().mean())
    accuracy = pd.DataFrame(
        {
            l: {
                "network": net_acc,
                "sparse GP head": float((gp_test[l].predicted == y_test).double().mean()),
                "kNN majority vote": float((knn_test[l].support.argmax(1) == y_test).double().mean()),
            }
            for l in layers
        }
    ).T
    scores_in = ood_scores(logits_test, gp_test, knn_test)
    h_ood, scores_out = {}, {}
    for name, x in ood.items():
        h_ood[name] = frozen(x)
        scores_out[name] = ood_scores(
            logits(x),
            {l: gp.predict(h_ood[name][l]) for l, (gp, _) in models.items()},
            {l: knn.query(h_ood[name][l]) for l, (_, knn) in models.items()},
        )
    return LayerStudy(
        frozen,
        models,
        h_train,
        h_test,
        h_ood,
        logits_test,
        gp_test,
        knn_test,
        accuracy,
        ood_auroc_table(scores_in, scores_out),
    )


def fit_layers(
    h_train: Mapping[str, torch.Tensor],
    y: torch.Tensor,
    *,
    num_inducing: int,
    k: int = 10,
    iterations: int = 30,
    hyper_subset: int | None = 5000,
    num_classes: int | None = None,
    seed: int = 0,
) -> dict[str, tuple[SparseGP, KNNJustifier]]:
    """One :class:`~ualib.justification.sparse_gp.SparseGP` (SGPR) and one :class:`~ualib.justification.knn.KNNJustifier`
    per layer, on training features ``h_train[layer] [N, d]`` and labels ``y [N]``."""
    out = {}
    for layer, h in h_train.items():
        gp = SparseGP(num_inducing, iterations=iterations, hyper_subset=hyper_subset, seed=seed).fit(
            h, y, num_classes=num_classes
        )
        out[layer] = (gp, KNNJustifier(k).fit(h, y, num_classes=num_classes))
    return out


def ood_scores(
    logits: torch.Tensor,
    gp: Mapping[str, GPPrediction],
    knn: Mapping[str, KNNJustification],
) -> dict[str, torch.Tensor]:
    """OOD scores ``[B]`` (higher = more likely OOD) from the network's logits ``[B, K]`` and each
    layer's GP prediction and kNN justification.

    ``"1 - max softmax"``, ``"softmax entropy"`` (of the network), ``"GP variance (layer)"``,
    ``"kNN distance (layer)"`` (mean distance to the k neighbours) and ``"kNN 1 - support (layer)"``
    (one minus the fraction of neighbours of the network's predicted class).
    """
    probs = logits.double().softmax(-1)
    pred = probs.argmax(-1)
    scores = {"1 - max softmax": 1 - probs.max(-1).values, "softmax entropy": total_entropy(probs[None])}
    for layer, p in gp.items():
        scores[f"GP variance ({layer})"] = p.variance
    for layer, r in knn.items():
        scores[f"kNN distance ({layer})"] = r.score
        scores[f"kNN 1 - support ({layer})"] = 1 - r.support_of(pred)
    return scores


def ood_auroc_table(
    scores_in: Mapping[str, torch.Tensor], scores_out: Mapping[str, Mapping[str, torch.Tensor]]
) -> pd.DataFrame:
    """AUROC (OOD positive) of every score: rows = score names, columns = OOD sets."""
    return pd.DataFrame(
        {ood: {name: metrics.auroc(scores_in[name], s[name]) for name in scores_in} for ood, s in scores_out.items()}
    )


def query_seconds(fn: Callable[[torch.Tensor], object], h: torch.Tensor, *, repeats: int = 3) -> float:
    """Seconds per query of ``fn(h)`` for a batch ``h [Q, d]``: the fastest of ``repeats`` runs / Q."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(h)
        best = min(best, time.perf_counter() - t0)
    return best / max(len(h), 1)


def cost_scaling(
    h: torch.Tensor,
    y: torch.Tensor,
    reference: SparseGP,
    queries: torch.Tensor,
    *,
    inducing_grid: Sequence[int],
    train_grid: Sequence[int],
    num_inducing: int,
    n_fit_inducing_sweep: int = 5000,
    k: int = 10,
    repeats: int = 3,
    seed: int = 0,
) -> pd.DataFrame:
    """Memory and query time of the sparse GP and the kNN justifier as ``P`` and ``N`` grow.

    Two sweeps over training features ``h [N_max, d]`` (their first ``N`` rows):

    * ``"N"``: ``N`` in ``train_grid`` with ``P = num_inducing``, GP and kNN;
    * ``"P"``: ``P`` in ``inducing_grid`` for the GP, fitted on the first ``n_fit_inducing_sweep`` rows
      (its query state does not depend on ``N``, which the ``"N"`` sweep checks), and the kNN on all rows.

    The GPs reuse ``reference``'s hyperparameters (no optimisation: memory and time do not depend on
    them). Query time is measured on ``queries [Q, d]`` (GP: mean and variance; kNN: neighbours,
    support and score). Returns one row per (sweep, method, P, N) with ``memory_bytes`` and
    ``query_ms`` (milliseconds per query).
    """
    hyper = dict(
        lengthscale=reference.lengthscale_, outputscale=float(reference.outputscale_), noise=float(reference.noise_)
    )
    rows = []

    def add_row(
        sweep: str,
        method: str,
        P: int | None,
        N: int,
        fitted: SparseGP | KNNJustifier,
        query: Callable[[torch.Tensor], object],
    ) -> None:
        rows.append(
            dict(
                sweep=sweep,
                method=method,
                P=P,
                N=N,
                memory_bytes=fitted.memory_bytes(),
                query_ms=1e3 * query_seconds(query, queries, repeats=repeats),
            )
        )

    def gp_row(sweep: str, P: int, N: int) -> None:
        gp = SparseGP(P, iterations=0, seed=seed).fit(h[:N], y[:N], num_classes=reference.num_classes_, **hyper)
        add_row(sweep, "sparse GP", P, N, gp, gp.predict)

    def knn_row(sweep: str, N: int) -> None:
        knn = KNNJustifier(k).fit(h[:N], y[:N], num_classes=reference.num_classes_)
        add_row(sweep, "kNN", None, N, knn, knn.query)

    for N in train_grid:
        gp_row("N", num_inducing, N)
        knn_row("N", N)
    n_p = min(n_fit_inducing_sweep, len(h))
    for P in inducing_grid:
        gp_row("P", P, n_p)
    knn_row("P", len(h))
    return pd.DataFrame(rows)


def justification_panel(
    x_query: torch.Tensor,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    just: Justification,
    *,
    class_names: Sequence[str] | None = None,
    query_titles: Sequence[str] | None = None,
) -> tuple[torch.Tensor, list[str]]:
    """Images and titles for :func:`ualib.viz.plotting.image_grid` with ``ncols = 1 + 2n``.

    One row per query ``b``: the query (titled with the explained class), its ``n`` supporting
    training images (``+weight`` and their label), then its ``n`` opposing ones (``-weight``).
    ``x_query [B, C, H, W]``; ``x_train [N, C, H, W]`` and ``y_train [N]`` are indexed by the
    justification's training indices.
    """

    def name(c: int) -> str:
        return str(class_names[c]) if class_names is not None else str(c)

    images, titles = [], []
    for b in range(len(x_query)):
        images.append(x_query[b])
        head = query_titles[b] if query_titles is not None else "query"
        titles.append(f"{head}\nGP: {name(int(just.classes[b]))}")
        for idx, w in ((just.support_index[b], just.support_weight[b]), (just.oppose_index[b], just.oppose_weight[b])):
            for i, wi in zip(idx.tolist(), w.tolist()):
                images.append(x_train[i])
                titles.append(f"{wi:+.2f}\n{name(int(y_train[i]))}")
    return torch.stack(images), titles


def state_fingerprint(module: nn.Module) -> str:
    """SHA-256 of every parameter and buffer of ``module`` (names, dtypes, shapes, bytes)."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


@contextmanager
def thread_count(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, then restore the previous count (``None``: unchanged).

    Training is bit-identical only for one thread count, so :func:`ualib.training.cache_key` includes it: a
    network trained (or looked up) under another count than the other chapters use is a different network,
    trained again. The chapter therefore switches to its ``num_threads`` for the GP work and back for training.
    """
    if n is None:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int or None, got {n!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)

r"""Per-sample gradient metrics: how hard the network would have to move to agree with itself.

For an input :math:`x` with predicted class :math:`\hat\kappa = \arg\max_k \hat y_k(x)` (the true
label is unknown at test time, so the prediction serves as a pseudo-label), take the cross-entropy
:math:`\mathcal L(x) = -\log \hat y_{\hat\kappa}(x)` and its gradient with respect to the weights
of each layer :math:`\ell`, :math:`g_\ell = \mathrm{vec}(\nabla_{w_\ell}\mathcal L(x))\in\mathbb
R^{n_\ell}`. Six statistics summarise each gradient (Oberdiek et al. 2018, METHODS §7.2):

.. math::

    \|g\|_1=\sum_i|g_i|,\quad \|g\|_2=\Big(\sum_i g_i^2\Big)^{1/2},\quad \max_i g_i,\quad
    \min_i g_i,\quad \bar g=\frac1n\sum_i g_i,\quad
    s_g=\Big(\frac1{n-1}\sum_i(g_i-\bar g)^2\Big)^{1/2}.

They are computed per layer (each parameter tensor is one group; biases optionally as their own
groups) and for the whole network (all selected groups concatenated). A confident, familiar input
gives a tiny gradient everywhere; an input the network is unsure about asks for large weight
changes, in some layers more than in others.

Which statistics, the pseudo-label and the signed max / min follow the first author's public
library ``gradient_metrics`` [CODE]; that they are taken **per layer** follows the abstract ("such
metrics gather information from all layers") [READ]; whether the paper also used whole-network
aggregates and how it treated biases could not be checked, so both are options here [INF].

Per-sample gradients are computed with :mod:`torch.func` (``vmap`` over ``grad`` of a
``functional_call``), in chunks sized to a memory budget; ``method="loop"`` computes the same
numbers one sample at a time with :func:`torch.autograd.grad`, as the author's library does (the
reference the speed benchmark compares against).

Column names are stable: ``"<parameter name>/<statistic>"`` (e.g. ``"features.0.weight/l2"``) and
``"network/<statistic>"`` for the whole network.

References
----------
.. [Oberdiek2018] P. Oberdiek, M. Rottmann, H. Gottschalk. Classification uncertainty of deep
   neural networks based on gradient information. ANNPR 2018, LNCS 11081, pp. 113-125.
   arXiv:1805.08440.
.. [Hendrycks2017] D. Hendrycks, K. Gimpel. A baseline for detecting misclassified and
   out-of-distribution examples in neural networks. ICLR 2017 (max probability baseline).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap
from tqdm import tqdm

from ._checks import check_choice, check_positive_int, check_tensor
from .posteriors._base import preserve_mode
from .uncertainty import total_entropy

__all__ = [
    "GRADIENT_STATISTICS",
    "SOFTMAX_METRICS",
    "GRADIENT_METHODS",
    "NETWORK",
    "gradient_groups",
    "gradient_metrics",
    "softmax_metrics",
    "metrics_frame",
    "auto_chunk_size",
]

#: The six statistics of a gradient vector, in column order.
GRADIENT_STATISTICS: tuple[str, ...] = ("l1", "l2", "max", "min", "mean", "std")
#: The metrics :func:`softmax_metrics` returns.
SOFTMAX_METRICS: tuple[str, ...] = ("entropy", "max_prob", "margin")
#: Options of ``method`` in :func:`gradient_metrics`.
GRADIENT_METHODS: tuple[str, ...] = ("vmap", "loop")
#: Group name of the whole-network statistics.
NETWORK = "network"


def gradient_groups(
    model: nn.Module, *, include_bias: bool = False, parameters: Sequence[str] | None = None
) -> list[str]:
    """The parameter tensors whose gradients :func:`gradient_metrics` summarises, in model order.

    Parameters
    ----------
    model
        Any ``nn.Module``.
    include_bias
        Also use the bias tensors (parameters whose name ends in ``"bias"``), each as its own group.
    parameters
        Restrict to these parameter names (e.g. ``["features.0.weight", "classifier.4.weight"]``);
        ``None`` means every weight (and, with ``include_bias``, every bias).

    Returns
    -------
    list of str
        Parameter names as in ``model.named_parameters()``.
    """
    names = [n for n, _ in model.named_parameters()]
    if parameters is not None:
        unknown = [p for p in parameters if p not in names]
        if unknown:
            raise ValueError(f"parameters {unknown} are not parameters of the model; it has {names}")
        wanted = set(parameters)
        names = [n for n in names if n in wanted]
    else:
        names = [n for n in names if include_bias or n.rsplit(".", 1)[-1] != "bias"]
    if not names:
        raise ValueError("no parameter tensor selected: the model has no weights (or parameters= is empty)")
    return names


def _statistics(grads: Mapping[str, torch.Tensor], statistics: Sequence[str], per_layer: bool, whole_network: bool) -> dict[str, torch.Tensor]:
    """Statistics of per-sample gradients ``{name: [C, *shape]}`` -> ``{column: [C]}``.

    The whole-network mean and standard deviation are pooled from the per-group means and centred
    sums of squares (Chan et al.'s parallel update), so no ``[C, P]`` concatenation is built.
    """
    out: dict[str, torch.Tensor] = {}
    parts = []
    for name, g in grads.items():
        g = g.flatten(1)
        n = g.shape[1]
        # five single reductions, no temporaries of the gradient's size (var_mean and aminmax are
        # several times slower on the CPU than these vectorised reductions)
        total = g.sum(1)
        mean = total / n
        l2 = torch.linalg.vector_norm(g, 2, dim=1)
        part = {
            "n": n,
            "l1": torch.linalg.vector_norm(g, 1, dim=1),
            "l2": l2,
            "max": g.amax(1),
            "min": g.amin(1),
            "mean": mean,
            # centred sum of squares; relative rounding error ~ eps * (1 + mean^2 / variance), and a
            # gradient's mean is small against its spread
            "m2": (l2.square() - total * mean).clamp_min(0),
        }
        parts.append(part)
        if per_layer:
            for stat in statistics:
                out[f"{name}/{stat}"] = _finish(part, stat)
    if whole_network:
        n_tot = sum(p["n"] for p in parts)
        mean = sum(p["mean"] * p["n"] for p in parts) / n_tot
        total = {
            "n": n_tot,
            "l1": sum(p["l1"] for p in parts),
            "l2": torch.stack([p["l2"] for p in parts]).square().sum(0).sqrt(),
            "max": torch.stack([p["max"] for p in parts]).amax(0),
            "min": torch.stack([p["min"] for p in parts]).amin(0),
            "mean": mean,
            "m2": sum(p["m2"] + p["n"] * (p["mean"] - mean).square() for p in parts),
        }
        for stat in statistics:
            out[f"{NETWORK}/{stat}"] = _finish(total, stat)
    return out


def _finish(part: Mapping, stat: str) -> torch.Tensor:
    if stat == "std":  # sample standard deviation (n - 1); a single entry has spread 0
        n = part["n"]
        return (part["m2"] / (n - 1)).sqrt() if n > 1 else torch.zeros_like(part["m2"])
    return part[stat]


def _activation_numel(model: nn.Module, x1: torch.Tensor) -> int:
    """Number of activation entries of one forward pass of ``x1 [1, ...]`` (leaf modules' outputs)."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(x1)
    finally:
        for h in handles:
            h.remove()
    return total


def auto_chunk_size(model: nn.Module, x: torch.Tensor, groups: Sequence[str], memory_mb: float = 1024.0) -> int:
    """How many samples' gradients fit in ``memory_mb`` MiB at once (at least 1, at most ``len(x)``).

    The estimate per sample is three copies of the selected gradients (the gradient, a centred and a
    squared temporary) plus four of the activations (forward values, saved tensors, their
    gradients), in the parameters' dtype. The model must already be in the mode it will run in.
    """
    if memory_mb <= 0:
        raise ValueError(f"memory_mb must be > 0, got {memory_mb}")
    params = dict(model.named_parameters())
    n_grad = sum(params[g].numel() for g in groups)
    n_act = _activation_numel(model, x[:1].to(params[groups[0]].device))
    per_sample = (3 * n_grad + 4 * n_act) * params[groups[0]].element_size()
    return int(max(1, min(len(x), memory_mb * 2**20 // per_sample)))


def gradient_metrics(
    model: nn.Module,
    x: torch.Tensor,
    *,
    labels: torch.Tensor | None = None,
    include_bias: bool = False,
    parameters: Sequence[str] | None = None,
    per_layer: bool = True,
    whole_network: bool = True,
    statistics: Sequence[str] = GRADIENT_STATISTICS,
    method: str = "vmap",
    chunk_size: int | None = None,
    memory_mb: float = 1024.0,
    return_logits: bool = False,
    progress: bool | str = False,
) -> dict[str, torch.Tensor] | tuple[dict[str, torch.Tensor], torch.Tensor]:
    r"""Per-sample statistics of the weight gradient of the cross-entropy at the predicted label.

    For each input ``x[b]`` the loss is :math:`-\log\mathrm{softmax}(f(x_b))_{\hat\kappa_b}` with
    :math:`\hat\kappa_b` the arg-max of the logits (or ``labels[b]`` when given), and its gradient is
    taken with respect to every selected parameter tensor, for that one input alone. The model runs
    in eval mode (dropout off, BatchNorm on its running statistics) and is left exactly as it was:
    its mode, ``requires_grad`` flags and ``.grad`` fields are untouched (the gradients are taken
    functionally, never accumulated into ``.grad``).

    Parameters
    ----------
    model
        A classifier ``[B, ...] -> [B, K]`` logits.
    x
        Inputs ``[B, ...]``, in the dtype of the model's parameters (moved to their device).
    labels
        Optional ``[B]`` integer labels to use instead of the predicted ones (e.g. the true labels,
        for analysis; at test time the prediction is all there is).
    include_bias
        Also summarise the bias gradients, each bias tensor as its own group (and, in the
        whole-network statistics, together with the weights).
    parameters
        Restrict to these parameter names (see :func:`gradient_groups`).
    per_layer, whole_network
        Return the statistics of each group, of all groups concatenated, or both.
    statistics
        A subset of :data:`GRADIENT_STATISTICS` (``l1``, ``l2``, ``max``, ``min``, ``mean``,
        ``std``; ``std`` is the sample standard deviation, with ``n - 1``).
    method
        ``"vmap"`` (default): ``torch.func.vmap`` over ``torch.func.grad`` of a
        ``functional_call``, one chunk of inputs at a time. ``"loop"``: one
        :func:`torch.autograd.grad` call per input (the slow reference; same numbers).
    chunk_size
        Inputs per vectorised chunk; ``None`` chooses it from ``memory_mb`` with
        :func:`auto_chunk_size`. The result does not depend on it.
    memory_mb
        Memory budget (MiB) of one chunk when ``chunk_size`` is ``None``.
    return_logits
        Also return the logits ``[B, K]`` of the forward pass that gave the pseudo-labels.
    progress
        Show a plain ``tqdm`` bar over the chunks (a string becomes its description).

    Returns
    -------
    dict of str to torch.Tensor
        Columns ``"<parameter>/<statistic>"`` (per layer) then ``"network/<statistic>"``, each a
        CPU tensor ``[B]`` in the parameters' dtype; with ``return_logits``, the pair
        ``(metrics, logits)``.

    Raises
    ------
    ValueError, TypeError
        On a non-floating or non-finite ``x``, a dtype different from the parameters', ``labels``
        of the wrong shape or range, an unknown statistic / method / parameter name, or
        ``per_layer = whole_network = False``.

    Notes
    -----
    Reconstruction [INF]: per-layer and whole-network aggregation, bias handling and the eval-mode
    forward are spec choices (METHODS §7.2); the statistics and the pseudo-label follow the first
    author's public ``gradient_metrics`` library [CODE].

    References
    ----------
    P. Oberdiek, M. Rottmann, H. Gottschalk. Classification uncertainty of deep neural networks
    based on gradient information. ANNPR 2018. arXiv:1805.08440.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    check_tensor(x, "x", ndim=(2, 3, 4, 5))
    check_choice(method, "method", GRADIENT_METHODS)
    statistics = tuple(statistics)
    for stat in statistics:
        check_choice(stat, "statistic", GRADIENT_STATISTICS)
    if not statistics:
        raise ValueError("statistics must name at least one of " + str(list(GRADIENT_STATISTICS)))
    if not (per_layer or whole_network):
        raise ValueError("per_layer and whole_network are both False: nothing to compute")
    if chunk_size is not None:
        check_positive_int(chunk_size, "chunk_size")
    groups = gradient_groups(model, include_bias=include_bias, parameters=parameters)
    params = dict(model.named_parameters())
    ref = params[groups[0]]
    if x.dtype != ref.dtype:
        raise ValueError(f"x has dtype {x.dtype} but the model's parameters have {ref.dtype}; cast one of them")
    if labels is not None:
        check_tensor(labels, "labels", ndim=1, floating=False)
        if len(labels) != len(x):
            raise ValueError(f"labels must have shape [{len(x)}], got {tuple(labels.shape)}")

    if x.shape[0] == 0:
        raise ValueError("x must hold at least one input")
    device = ref.device
    with preserve_mode(model, False):
        step = chunk_size or auto_chunk_size(model, x, groups, memory_mb)
        # parameters that are differentiated, and everything else as constants (no autograd state)
        diff = {n: params[n].detach() for n in groups}
        const = {n: p.detach() for n, p in params.items() if n not in diff}
        const.update({n: b for n, b in model.named_buffers()})

        def loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
            logits = functional_call(model, (p, const), (xi.unsqueeze(0),))
            return F.cross_entropy(logits, yi.unsqueeze(0))

        per_sample = vmap(grad(loss), in_dims=(None, 0, 0))
        columns: dict[str, list[torch.Tensor]] = {}
        all_logits = []
        starts = range(0, len(x), step)
        bar = tqdm(
            starts,
            desc=progress if isinstance(progress, str) else "gradient metrics",
            disable=not progress,
            file=sys.stderr,
            mininterval=2.0,
            unit="chunk",
        )
        for i in bar:
            xc = x[i : i + step].to(device)
            with torch.no_grad():
                logits = model(xc)
            if labels is None:
                yc = logits.argmax(-1)
            else:
                yc = labels[i : i + step].to(device)
                k = logits.shape[-1]
                if (yc < 0).any() or (yc >= k).any():
                    raise ValueError(f"labels must lie in [0, {k - 1}]")
            if method == "vmap":
                grads = per_sample(diff, xc, yc)
            else:
                grads = _loop_gradients(loss, diff, xc, yc)
            stats = _statistics(grads, statistics, per_layer, whole_network)
            for name, value in stats.items():
                columns.setdefault(name, []).append(value.detach().cpu())
            all_logits.append(logits.detach().cpu())
    metrics = {name: torch.cat(parts) for name, parts in columns.items()}
    if return_logits:
        return metrics, torch.cat(all_logits)
    return metrics


def _loop_gradients(loss, diff: dict[str, torch.Tensor], xc: torch.Tensor, yc: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample gradients ``{name: [C, *shape]}``, one :func:`torch.autograd.grad` per sample."""
    leaves = {n: t.clone().requires_grad_(True) for n, t in diff.items()}
    rows = []
    for j in range(len(xc)):
        with torch.enable_grad():
            value = loss(leaves, xc[j], yc[j])
            rows.append(torch.autograd.grad(value, list(leaves.values())))
    return {n: torch.stack([r[k] for r in rows]) for k, n in enumerate(leaves)}


def softmax_metrics(logits: torch.Tensor, *, normalize: bool = False) -> dict[str, torch.Tensor]:
    r"""The classical confidence scores of a softmax output.

    Parameters
    ----------
    logits
        ``[B, K]`` logits of a deterministic classifier.
    normalize
        Divide the entropy by :math:`\log K` (so it lies in ``[0, 1]``).

    Returns
    -------
    dict of str to torch.Tensor
        ``"entropy"`` :math:`-\sum_k \hat y_k\log\hat y_k` (high = uncertain), ``"max_prob"``
        :math:`\max_k\hat y_k` (the baseline of Hendrycks & Gimpel 2017; high = confident) and
        ``"margin"``, the top-1 minus the top-2 probability (high = confident; an extra [INF]),
        each ``[B]``.

    References
    ----------
    D. Hendrycks, K. Gimpel. A baseline for detecting misclassified and out-of-distribution examples
    in neural networks. ICLR 2017. METHODS §7.2.
    """
    check_tensor(logits, "logits", ndim=2)
    if logits.shape[-1] < 2:
        raise ValueError(f"logits must have at least 2 classes, got shape {tuple(logits.shape)}")
    p = logits.softmax(-1)
    entropy = total_entropy(p.unsqueeze(0))
    if normalize:
        entropy = entropy / math.log(p.shape[-1])
    top2 = p.topk(2, dim=-1).values
    return {"entropy": entropy, "max_prob": top2[:, 0], "margin": top2[:, 0] - top2[:, 1]}


def metrics_frame(model: nn.Module, x: torch.Tensor, **kwargs):
    """Softmax metrics and gradient metrics of ``x [B, ...]`` in one table, with the predictions.

    Parameters
    ----------
    model, x
        As in :func:`gradient_metrics`.
    **kwargs
        Passed to :func:`gradient_metrics` (``include_bias``, ``chunk_size``, ``progress``, ...).

    Returns
    -------
    frame : pandas.DataFrame
        ``B`` rows; columns ``entropy``, ``max_prob``, ``margin`` (:func:`softmax_metrics`), then the
        gradient metric columns.
    predictions : torch.Tensor
        ``[B]`` arg-max classes (the pseudo-labels of the gradient metrics).
    """
    import pandas as pd

    grads, logits = gradient_metrics(model, x, return_logits=True, **kwargs)
    columns = {**softmax_metrics(logits.double()), **grads}
    frame = pd.DataFrame({k: v.detach().cpu().double().numpy() for k, v in columns.items()})
    return frame, logits.argmax(-1)

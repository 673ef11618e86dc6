r"""Per-sample gradient metrics: how hard the network would have to move to agree with itself.

For an input :math:`x` with predicted class :math:`\hat\kappa = \arg\max_k \hat y_k(x)` (the true
label is unknown at test time, so the prediction serves as a pseudo-label), take the cross-entropy
:math:`\mathcal L(x) = -\log \hat y_{\hat\kappa}(x)` and its gradient with respect to the weights
of each layer :math:`\ell`, :math:`g_\ell = \mathrm{vec}(\nabla_{w_\ell}\mathcal L(x))\in\mathbb
R^{n_\ell}`. Six statistics summarise each gradient (Oberdiek et al. 2018; book: chapter 6, "Gradient meta classification", section "Gradient metrics" — notebooks/06_gradient_meta_classification.ipynb):

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
reference the speed benchmark compares against). ``method="hooks"`` gets them from one batched
forward and one batched backward of the summed per-sample losses: the gradient of sample ``b``'s
loss only flows through sample ``b``'s activations (no layer mixes samples: eval-mode BatchNorm is
fine), so a layer's per-sample weight gradient is a product of its input activations ``a_b``
(forward hook) and its output gradients ``g_b`` (captured in the backward). For ``nn.Linear``,
:math:`g_b a_b^\top` is rank one and its statistics follow from those of the two factors without
forming it (:math:`\|g a^\top\|_1=\|g\|_1\|a\|_1`, :math:`\|g a^\top\|_2=\|g\|_2\|a\|_2`, the sum
:math:`\sum g\sum a`, the extremes among the products of the factors' extremes); for
``nn.Conv2d`` it is a batched product of the output gradients with the unfolded input [Goodfellow2015]_.

Column names are stable: ``"<parameter name>/<statistic>"`` (e.g. ``"features.0.weight/l2"``) and
``"network/<statistic>"`` for the whole network.

References
----------
.. [Oberdiek2018] P. Oberdiek, M. Rottmann, H. Gottschalk. Classification uncertainty of deep
   neural networks based on gradient information. ANNPR 2018, LNCS 11081, pp. 113-125.
   arXiv:1805.08440.
.. [Goodfellow2015] I. Goodfellow. Efficient per-example gradient computations. arXiv:1510.01799,
   2015 (per-example gradients as outer products of activations and output gradients).
.. [Hendrycks2017] D. Hendrycks, K. Gimpel. A baseline for detecting misclassified and
   out-of-distribution examples in neural networks. ICLR 2017 (max probability baseline).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from ualib._checks import check_choice, check_positive_int, check_tensor, model_input_errors
from ualib._progress import progress_bar
from ualib.posteriors._base import preserve_mode
from ualib.uncertainty import total_entropy

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
GRADIENT_METHODS: tuple[str, ...] = ("vmap", "loop", "hooks")
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


def _part(g: torch.Tensor) -> dict:
    """Sufficient statistics of the per-sample gradients ``g [C, *shape]`` of one group (any
    strides: the reductions run over all but the first dimension, without a flattening copy)."""
    dims = tuple(range(1, g.dim()))
    n = g[0].numel()
    # five single reductions, no temporaries of the gradient's size (var_mean and aminmax are
    # several times slower on the CPU than these vectorised reductions)
    total = g.sum(dims)
    mean = total / n
    l2 = torch.linalg.vector_norm(g, 2, dim=dims)
    return {
        "n": n,
        "l1": torch.linalg.vector_norm(g, 1, dim=dims),
        "l2": l2,
        "max": g.amax(dims),
        "min": g.amin(dims),
        "mean": mean,
        # centred sum of squares; relative rounding error ~ eps * (1 + mean^2 / variance), and a
        # gradient's mean is small against its spread
        "m2": (l2.square() - total * mean).clamp_min(0),
    }


def _outer_part(g: torch.Tensor, a: torch.Tensor) -> dict:
    """:func:`_part` of the rank-one gradients ``g[c] a[c]^T`` from ``g [C, m]`` and ``a [C, k]``, without forming them.

    Every entry is a product ``g_i a_j``, so the 1- and 2-norms and the sum factorise, and the
    largest / smallest product is one of the four products of the factors' extremes.
    """
    n = g.shape[1] * a.shape[1]
    total = g.sum(1) * a.sum(1)
    mean = total / n
    l2 = torch.linalg.vector_norm(g, 2, dim=1) * torch.linalg.vector_norm(a, 2, dim=1)
    g_ext = torch.stack([g.amax(1), g.amin(1)])  # [2, C]
    a_ext = torch.stack([a.amax(1), a.amin(1)])
    products = (g_ext.unsqueeze(1) * a_ext.unsqueeze(0)).flatten(0, 1)  # [4, C]
    return {
        "n": n,
        "l1": torch.linalg.vector_norm(g, 1, dim=1) * torch.linalg.vector_norm(a, 1, dim=1),
        "l2": l2,
        "max": products.amax(0),
        "min": products.amin(0),
        "mean": mean,
        "m2": (l2.square() - total * mean).clamp_min(0),
    }


def _statistics(
    grads: Mapping[str, torch.Tensor], statistics: Sequence[str], per_layer: bool, whole_network: bool
) -> dict[str, torch.Tensor]:
    """Statistics of per-sample gradients ``{name: [C, *shape]}`` -> ``{column: [C]}``."""
    return _summarize({name: _part(g) for name, g in grads.items()}, statistics, per_layer, whole_network)


def _summarize(
    parts: Mapping[str, Mapping], statistics: Sequence[str], per_layer: bool, whole_network: bool
) -> dict[str, torch.Tensor]:
    """Columns ``{column: [C]}`` from the per-group sufficient statistics ``{name: part}`` (in column order).

    The whole-network mean and standard deviation are pooled from the per-group means and centred
    sums of squares (Chan et al.'s parallel update), so no ``[C, P]`` concatenation is built.
    """
    out: dict[str, torch.Tensor] = {}
    if per_layer:
        for name, part in parts.items():
            for stat in statistics:
                out[f"{name}/{stat}"] = _finish(part, stat)
    if whole_network:
        parts = list(parts.values())
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
        ``"hooks"``: one batched forward and backward per chunk, per-sample gradients from the
        captured layer inputs and output gradients (same numbers, several times faster than
        ``"vmap"`` on the CPU). It needs every selected parameter to be the weight or bias of an
        ``nn.Linear``, an ``nn.Conv2d`` with ``groups=1`` or an eval-mode BatchNorm, each run once
        per forward pass with the batch as the first dimension, and no layer that mixes samples
        (BatchNorm with ``track_running_stats=False`` does); otherwise it raises a ``ValueError``
        that points to ``"vmap"``.
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
        of the wrong shape or range, an unknown statistic / method / parameter name,
        ``per_layer = whole_network = False``, or a model ``method="hooks"`` does not support.

    Notes
    -----
    Reconstruction [INF]: per-layer and whole-network aggregation, bias handling and the eval-mode
    forward are spec choices (book: chapter 6, "Gradient meta classification", section "Gradient metrics" — notebooks/06_gradient_meta_classification.ipynb); the statistics and the pseudo-label follow the first
    author's public ``gradient_metrics`` library [CODE].

    References
    ----------
    P. Oberdiek, M. Rottmann, H. Gottschalk. Classification uncertainty of deep neural networks
    based on gradient information. ANNPR 2018. arXiv:1805.08440.

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> metrics = ualib.gradient_metrics(net, torch.rand(5, 4), statistics=("l2", "max"))
    >>> sorted(metrics)
    ['0.weight/l2', '0.weight/max', '2.weight/l2', '2.weight/max', 'network/l2', 'network/max']
    >>> tuple(metrics["network/l2"].shape)  # one value per input
    (5,)
    """
    groups, statistics = _check_arguments(
        model, x, labels, include_bias, parameters, per_layer, whole_network, statistics, method, chunk_size
    )
    summary = (statistics, per_layer, whole_network)
    device = dict(model.named_parameters())[groups[0]].device
    columns: dict[str, list[torch.Tensor]] = {}
    all_logits = []
    with preserve_mode(model, False):
        with model_input_errors("x", x):
            step = chunk_size or auto_chunk_size(model, x, groups, memory_mb)
        starts = progress_bar(range(0, len(x), step), progress=progress, desc="gradient metrics", unit="chunk")
        chunks = (
            (x[i : i + step].to(device), None if labels is None else labels[i : i + step].to(device)) for i in starts
        )
        for logits, stats in _BACKENDS[method](model, groups, chunks, summary):
            for name, value in stats.items():
                columns.setdefault(name, []).append(value.detach().cpu())
            all_logits.append(logits.detach().cpu())
    metrics = {name: torch.cat(parts) for name, parts in columns.items()}
    if return_logits:
        return metrics, torch.cat(all_logits)
    return metrics


def _check_arguments(
    model, x, labels, include_bias, parameters, per_layer, whole_network, statistics, method, chunk_size
) -> tuple[list[str], tuple[str, ...]]:
    """Validate :func:`gradient_metrics`' arguments; return the selected groups and statistics."""
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
    ref = dict(model.named_parameters())[groups[0]]
    if x.dtype != ref.dtype:
        raise ValueError(f"x has dtype {x.dtype} but the model's parameters have {ref.dtype}; cast one of them")
    if labels is not None:
        check_tensor(labels, "labels", ndim=1, floating=False, integer=True)
        if len(labels) != len(x):
            raise ValueError(f"labels must have shape [{len(x)}], got {tuple(labels.shape)}")
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one input")
    return groups, statistics


#: one chunk of inputs and their given labels (or None)
_Chunks = Iterable[tuple[torch.Tensor, "torch.Tensor | None"]]
#: (statistics, per_layer, whole_network), as passed to :func:`_summarize`
_Summary = tuple[Sequence[str], bool, bool]


def _functional_loss(model: nn.Module, groups: Sequence[str]):
    """The per-sample loss ``(params, x_i, y_i) -> scalar`` of a ``functional_call``, and the
    differentiated parameters; every other parameter and buffer is a constant (no autograd state)."""
    params = dict(model.named_parameters())
    diff = {n: params[n].detach() for n in groups}
    const = {n: p.detach() for n, p in params.items() if n not in diff}
    const.update({n: b for n, b in model.named_buffers()})

    def loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, (p, const), (xi.unsqueeze(0),))
        return F.cross_entropy(logits, yi.unsqueeze(0))

    return loss, diff


def _vmap_metrics(model: nn.Module, groups: Sequence[str], chunks: _Chunks, summary: _Summary):
    """``method="vmap"``: ``vmap`` over ``grad`` of the functional per-sample loss, per chunk."""
    loss, diff = _functional_loss(model, groups)
    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))
    for xc, given in chunks:
        with torch.no_grad(), model_input_errors("x", xc):
            logits = model(xc)
        yield logits, _statistics(per_sample(diff, xc, _labels(logits, given)), *summary)


def _loop_metrics(model: nn.Module, groups: Sequence[str], chunks: _Chunks, summary: _Summary):
    """``method="loop"``: one :func:`torch.autograd.grad` per sample (the slow reference)."""
    loss, diff = _functional_loss(model, groups)
    for xc, given in chunks:
        with torch.no_grad(), model_input_errors("x", xc):
            logits = model(xc)
        yield logits, _statistics(_loop_gradients(loss, diff, xc, _labels(logits, given)), *summary)


def _hooks_metrics(model: nn.Module, groups: Sequence[str], chunks: _Chunks, summary: _Summary):
    """``method="hooks"``: one batched forward and backward per chunk, per-sample gradients from the
    captured layer inputs and output gradients."""
    layers = _hook_plan(model, groups)
    copy = False  # copy captured tensors once an in-place operation has overwritten one
    for xc, given in chunks:
        result = None if copy else _hooks_chunk(model, layers, xc, given, copy=False)
        if result is None:
            copy = True
            result = _hooks_chunk(model, layers, xc, given, copy=True)
            if result is None:  # pragma: no cover - the copies are never modified
                raise RuntimeError("captured activations were modified in place")
        logits, parts = result
        yield logits, _summarize({g: parts[g] for g in groups}, *summary)


def _labels(logits: torch.Tensor, given: torch.Tensor | None) -> torch.Tensor:
    """The predicted classes, or the given labels after a range check."""
    if given is None:
        return logits.argmax(-1)
    k = logits.shape[-1]
    if (given < 0).any() or (given >= k).any():
        raise ValueError(f"labels must lie in [0, {k - 1}]")
    return given


def _loop_gradients(loss, diff: dict[str, torch.Tensor], xc: torch.Tensor, yc: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample gradients ``{name: [C, *shape]}``, one :func:`torch.autograd.grad` per sample."""
    leaves = {n: t.clone().requires_grad_(True) for n, t in diff.items()}
    rows = []
    for j in range(len(xc)):
        with torch.enable_grad():
            value = loss(leaves, xc[j], yc[j])
            rows.append(torch.autograd.grad(value, list(leaves.values())))
    return {n: torch.stack([r[k] for r in rows]) for k, n in enumerate(leaves)}


# --------------------------------------------------------------------------------------------------
# method="hooks": per-sample gradients from one batched forward and one batched backward

_BatchNorm = nn.modules.batchnorm._BatchNorm
_HOOKS_SUPPORTED = "nn.Linear, nn.Conv2d with groups=1 and eval-mode BatchNorm"


def _layer_kind(module: nn.Module) -> str | None:
    """``"linear"`` / ``"conv2d"`` / ``"batchnorm"`` for the layers whose per-sample gradients the
    hooks method derives (subclasses that override ``forward`` compute something else), else ``None``."""
    if isinstance(module, nn.Linear) and type(module).forward is nn.Linear.forward:
        return "linear"
    if isinstance(module, nn.Conv2d) and type(module).forward is nn.Conv2d.forward and module.groups == 1:
        return "conv2d"
    if isinstance(module, _BatchNorm) and type(module).forward is _BatchNorm.forward:
        return "batchnorm"
    return None


class _Layer:
    """One hooked layer: its selected groups and, during a chunk, its captured input and output."""

    def __init__(self, module: nn.Module, kind: str) -> None:
        self.module = module
        self.kind = kind
        self.groups: dict[str, str] = {}  # "weight" / "bias" -> group name
        self.reset()

    def reset(self) -> None:
        self.calls = 0
        self.a = self.out = None
        self.versions = (0, 0)

    def forward_hook(self, copy: bool, module: nn.Module, inputs: tuple, output: torch.Tensor):
        self.calls += 1
        if (
            self.calls > 1
            or not inputs
            or not isinstance(inputs[0], torch.Tensor)
            or not isinstance(output, torch.Tensor)
        ):
            return None  # reported after the forward pass
        a = inputs[0].detach()
        self.a = a.clone() if copy else a
        out = output
        replaced = not out.requires_grad
        if replaced:  # nothing before this layer needs a gradient: start the graph here
            out = out.detach().requires_grad_(True)
        self.out = out
        self.versions = (self.a._version, out._version)
        # a copy downstream, so in-place operations after the layer (ReLU(inplace=True)) leave the
        # captured output, and so the gradient taken with respect to it, intact
        return out.clone() if copy or replaced else None


def _hook_plan(model: nn.Module, groups: Sequence[str]) -> list[_Layer]:
    """The layers owning the selected groups, checked for what the hooks method can do."""
    for name, m in model.named_modules():
        if isinstance(m, _BatchNorm) and (m.training or m.running_mean is None):
            raise ValueError(
                f"method='hooks' needs samples that do not interact, but {name or 'the model'} "
                f"({type(m).__name__}) normalises with batch statistics (train mode or "
                "track_running_stats=False); use method='vmap'"
            )
    owners: dict[int, list[tuple[nn.Module, str]]] = {}
    for m in model.modules():
        for attr, p in m.named_parameters(recurse=False):
            owners.setdefault(id(p), []).append((m, attr))
    params = dict(model.named_parameters())
    layers: dict[int, _Layer] = {}
    for group in groups:
        found = owners[id(params[group])]
        prefix, _, attr = group.rpartition(".")
        module = model.get_submodule(prefix)
        kind = _layer_kind(module)
        if len(found) > 1:  # tied weights: the gradient also flows through the other owner
            raise ValueError(f"method='hooks' does not support the shared parameter {group!r}; use method='vmap'")
        if kind is None or attr not in ("weight", "bias"):
            extra = " (groups != 1)" if isinstance(module, nn.Conv2d) else ""
            raise ValueError(
                f"method='hooks' does not support parameter {group!r} of {type(module).__name__}{extra}: "
                f"it derives per-sample gradients of {_HOOKS_SUPPORTED} only; use method='vmap'"
            )
        layer = layers.setdefault(id(module), _Layer(module, kind))
        layer.groups[attr] = group
    return list(layers.values())


def _hooks_chunk(
    model: nn.Module, layers: list[_Layer], xc: torch.Tensor, given: torch.Tensor | None, copy: bool
) -> tuple[torch.Tensor, dict[str, dict]] | None:
    """Logits and ``{group: part}`` of one chunk; ``None`` when an in-place operation overwrote a
    captured tensor (the caller repeats the chunk with ``copy=True``)."""
    for layer in layers:
        layer.reset()
    handles = [layer.module.register_forward_hook(partial(layer.forward_hook, copy)) for layer in layers]
    try:
        with torch.enable_grad():
            with model_input_errors("x", xc):
                logits = model(xc)
            yc = _labels(logits.detach(), given)
            loss = F.cross_entropy(logits, yc, reduction="sum")  # sum of the per-sample losses
            for layer in layers:
                if layer.calls != 1 or layer.out is None:
                    name = next(iter(layer.groups.values())).rpartition(".")[0]
                    how = (
                        "ran more than once"
                        if layer.calls > 1
                        else ("did not run" if not layer.calls else "was not called on one tensor")
                    )
                    raise ValueError(f"method='hooks' needs each hooked layer to run once per forward pass, "
                                     f"but {name!r} {how}; use method='vmap'")  # fmt: skip
                if layer.a.shape[0] != len(xc) or layer.out.shape[0] != len(xc):
                    name = next(iter(layer.groups.values())).rpartition(".")[0]
                    raise ValueError(f"method='hooks' needs the batch as the first dimension of every hooked layer's "
                                     f"input, but {name!r} got {tuple(layer.a.shape)}; use method='vmap'")  # fmt: skip
                if (layer.a._version, layer.out._version) != layer.versions:
                    return None
            outs = [layer.out for layer in layers]
            if loss.requires_grad:
                grads = torch.autograd.grad(loss, outs, allow_unused=True)
            else:
                grads = [None] * len(outs)
    finally:
        for h in handles:
            h.remove()
    parts: dict[str, dict] = {}
    with torch.no_grad():
        for layer, g in zip(layers, grads):
            g = torch.zeros_like(layer.out) if g is None else g
            parts.update(_layer_parts(layer, layer.a, g))
    for layer in layers:
        layer.reset()
    return logits.detach(), parts


def _conv2d_weight_grads(m: nn.Conv2d, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    r"""Per-sample weight gradients ``[C, Cin, out, kh, kw]`` (a view; entries in another order than
    the weight's, which no statistic sees) of a ``groups=1`` convolution from its input
    ``a [C, Cin, H, W]`` and output gradients ``g [C, out, Ho, Wo]``.

    :math:`\partial w_{b,o,c,i,j}=\sum_{y,x} g_{b,o,y,x}\,a^{\mathrm{pad}}_{b,c,\,y s_h+i d_h,\,x s_w+j d_w}`
    is itself a convolution, of the padded input with the output gradient as the kernel (stride and
    dilation swapped), one group per sample and the input channels as its batch: the same products
    as ``bmm(g, unfold(a)^T)`` without the ``kh*kw``-fold copy of the input that unfolding writes
    (the memory traffic that dominates on the CPU).
    """
    c, cin = a.shape[:2]
    (kh, kw), out_channels = m.kernel_size, g.shape[1]
    if isinstance(m.padding, str) or m.padding_mode != "zeros":
        mode = "constant" if m.padding_mode == "zeros" else m.padding_mode
        a = F.pad(a, m._reversed_padding_repeated_twice, mode=mode)
    else:
        ph, pw = m.padding
        a = F.pad(a, (pw, pw, ph, ph))
    kernel = g.reshape(c * out_channels, 1, *g.shape[2:])
    # [Cin, C*out, kh', kw'] with kh' >= kh (the input rows past the last window come out as extras)
    full = F.conv2d(a.transpose(0, 1), kernel, stride=m.dilation, dilation=m.stride, groups=c)
    return full[:, :, :kh, :kw].unflatten(1, (c, out_channels)).transpose(0, 1)


def _layer_parts(layer: _Layer, a: torch.Tensor, g: torch.Tensor) -> dict[str, dict]:
    """Sufficient statistics of the per-sample gradients of one layer's selected groups from its
    input ``a [C, ...]`` and the gradient ``g [C, ...]`` of the summed loss w.r.t. its output."""
    m, c, out = layer.module, len(a), {}
    want_w, want_b = "weight" in layer.groups, "bias" in layer.groups
    if layer.kind == "linear":
        if a.dim() == 2:  # one position per sample: rank-one gradient, never formed
            if want_w:
                out["weight"] = _outer_part(g, a)
            gb = g
        else:  # [C, ..., in]: a sum of outer products over the positions
            a, g = a.reshape(c, -1, a.shape[-1]), g.reshape(c, -1, g.shape[-1])
            if want_w:
                out["weight"] = _part(torch.bmm(g.transpose(1, 2), a))
            gb = g.sum(1)
    elif layer.kind == "conv2d":
        if a.dim() != 4:
            raise ValueError(
                f"method='hooks' needs batched [B, C, H, W] inputs to Conv2d, got {tuple(a.shape)}; use method='vmap'"
            )
        if want_w:
            out["weight"] = _part(_conv2d_weight_grads(m, a, g))
        gb = g.sum((2, 3))
    else:  # eval-mode BatchNorm: y = w * (x - running_mean) / sqrt(running_var + eps) + b
        g = g.reshape(c, g.shape[1], -1)
        if want_w:
            a = a.reshape(c, a.shape[1], -1)
            xhat = (a - m.running_mean[:, None]) * torch.rsqrt(m.running_var[:, None] + m.eps)
            out["weight"] = _part((g * xhat).sum(2))
        gb = g.sum(2)
    if want_b:
        out["bias"] = _part(gb)
    return {layer.groups[k]: v for k, v in out.items()}


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
    in neural networks. ICLR 2017. book: chapter 6, "Gradient meta classification", section "Gradient metrics" — notebooks/06_gradient_meta_classification.ipynb.
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


#: method name -> its back-end: (model, groups, chunks, summary) -> iterator of (logits, columns)
_BACKENDS = {"vmap": _vmap_metrics, "loop": _loop_metrics, "hooks": _hooks_metrics}

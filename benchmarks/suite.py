"""ualib against the peer libraries a user would pick instead: same process, same inputs, same answer.

Every case builds its model and inputs once, then times ualib and the peer *interleaved* (A B, B A,
A B, ...) after one warm-up call each and keeps the best of ``repeats`` runs of each: on a shared
machine the minimum is the least noisy estimate of the cost, and interleaving spreads any change of
load over both. The ratio is ``peer time / ualib time`` (> 1: ualib faster). Every case also checks
that both give the same answer within a stated tolerance, or states the definitional difference.

``tiny=True`` shrinks every case to a few inputs: that is what the test suite runs (agreement only,
never timed assertions).
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

__all__ = ["CASES", "Agreement", "CaseResult", "interleaved_best", "run_case", "pearson_min"]


@dataclass
class Agreement:
    """How close ualib's answer is to the peer's: ``value <= tol`` passes."""

    measure: str  # what value is, e.g. "max |a-b| / max |b|" or "1 - min Pearson r"
    value: float
    tol: float

    @property
    def ok(self) -> bool:
        return bool(self.value <= self.tol)

    def text(self) -> str:
        return f"{self.measure} = {self.value:.2e} (tol {self.tol:.0e}) {'OK' if self.ok else 'MISMATCH'}"


@dataclass
class Case:
    """One comparison. ``setup(tiny)`` returns ``(ualib_fn, peer_fn, agree_fn)``; ``agree_fn(a, b)`` gets their outputs."""

    name: str
    peer: str
    setup: Callable[[bool], tuple[Callable, Callable, Callable]]
    target: float = 1.0  # required peer/ualib ratio
    note: str = ""  # why the target may not be reachable, or what differs by definition
    cheap: bool = True  # also timed with 2 threads by default


@dataclass
class CaseResult:
    name: str
    peer: str
    threads: int
    t_ualib: float
    t_peer: float
    agreement: Agreement
    target: float
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.t_peer / self.t_ualib

    def as_dict(self) -> dict:
        return {
            "case": self.name,
            "peer": self.peer,
            "threads": self.threads,
            "t_ualib_s": self.t_ualib,
            "t_peer_s": self.t_peer,
            "ratio": self.ratio,
            "target": self.target,
            "met": self.ratio >= self.target,
            "agreement": {"measure": self.agreement.measure, "value": self.agreement.value, "tol": self.agreement.tol},
            "agrees": self.agreement.ok,
            "note": self.note,
        }


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def interleaved_best(fa: Callable, fb: Callable, repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` wall times of ``fa`` and ``fb``, timed alternately (order flipped every round)."""
    fa(), fb()  # warm-up (lazy init, allocator, first completeness check)
    ta, tb = [], []

    def one(f):
        _sync()
        t = time.perf_counter()
        f()
        _sync()
        return time.perf_counter() - t

    for r in range(repeats):
        if r % 2 == 0:
            ta.append(one(fa))
            tb.append(one(fb))
        else:
            tb.append(one(fb))
            ta.append(one(fa))
    return min(ta), min(tb)


def rel_max(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = torch.as_tensor(a).detach().double().cpu(), torch.as_tensor(b).detach().double().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def pearson_min(a: torch.Tensor, b: torch.Tensor) -> float:
    """Smallest per-input Pearson correlation between two stacks of maps ``[B, ...]``."""
    a = torch.as_tensor(a).detach().double().cpu().flatten(1)
    b = torch.as_tensor(b).detach().double().cpu().flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    r = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-30)
    return float(r.min())


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _lenet(dropout: float = 0.0, size: int = 28) -> nn.Module:
    from ualib.models import LeNet

    torch.manual_seed(0)
    return LeNet(1, size, 10, dropout=dropout).eval().to(_device())


def _images(b: int, c: int = 1, s: int = 28, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, s, s, generator=torch.Generator().manual_seed(seed)).to(_device())


def resnet18(num_classes: int = 10) -> nn.Module:
    """torchvision ResNet-18 with non-trivial BatchNorm statistics (fresh ones make every BN bias 0)."""
    import torchvision

    torch.manual_seed(0)
    m = torchvision.models.resnet18(num_classes=num_classes).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.1, 0.1)
    return m.to(_device())


# ------------------------------------------------------------------------------------------------
# the cases
# ------------------------------------------------------------------------------------------------


def _gradcam_fullgrad(model: nn.Module):
    from pytorch_grad_cam import FullGrad as GCFullGrad

    with contextlib.redirect_stdout(io.StringIO()):  # it prints that target_layers is ignored
        return GCFullGrad(model, [])


def setup_fullgrad(tiny: bool, b: int = 16, s: int = 64):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from ualib.attribution.fullgrad import FullGrad

    b, s = (2, 32) if tiny else (b, s)
    model = resnet18()
    x = torch.randn(b, 3, s, s, generator=torch.Generator().manual_seed(0)).to(_device())
    with torch.no_grad():
        cls = model(x).argmax(1)
    fg = FullGrad(model)
    targets = [ClassifierOutputTarget(int(c)) for c in cls]
    seen = {}

    def peer():
        # built per call (a trivial cost next to its run) and released after it, so that grad-cam's
        # hooks do not stay on the shared model and slow down (and feed gradients from) ualib's calls
        gc = _gradcam_fullgrad(model)
        try:
            out = gc(x, targets)
            seen["grads"], seen["bias"] = list(gc.activations_and_grads.gradients), gc.bias_data
        finally:
            gc.activations_and_grads.release()
        return out

    def agree(a, p):
        # the display maps differ by definition (see the note), so the check is on what both are built
        # from: every bias term |grad_l * b_l|, against grad-cam's own captured gradients and biases
        dec = fg.decompose(x, cls)
        grads = seen["grads"]  # forward order, one per Conv2d/BatchNorm2d with a bias
        terms = [t for t in dec.bias_terms if t.ndim == 4]
        errs = [rel_max(t.abs(), (torch.as_tensor(g) * torch.as_tensor(bias)[None, :, None, None]).abs())
                for t, g, bias in zip(terms, grads, seen["bias"])]  # fmt: skip
        if len(terms) != len(grads):
            errs.append(float("inf"))
        r = pearson_min(a[:, 0], torch.from_numpy(p))
        return Agreement(
            f"max rel err of the {len(terms)} bias terms (display maps: min Pearson r {r:.3f})", max(errs), 1e-4
        )

    return (lambda: fg.saliency(x, cls)), peer, agree


def _lenet_loss_inputs(tiny: bool, b: int = 256, size: int = 28):
    b = 8 if tiny else b
    model = _lenet(size=size)
    x = _images(b, s=size)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if n.endswith("weight")}


def _norms(grads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {f"{n}/l2": g.flatten(1).norm(dim=1) for n, g in grads.items()}
    out["network/l2"] = torch.stack([g.flatten(1).pow(2).sum(1) for g in grads.values()]).sum(0).sqrt()
    return out


def _norm_agreement(a: dict, p: dict) -> Agreement:
    return Agreement("max rel |a-b| over l2 columns", max(rel_max(a[k], p[k]) for k in p), 1e-4)


def setup_grad_vmap(tiny: bool, b: int = 256, size: int = 28):
    from torch.func import functional_call, grad, vmap

    from ualib.meta.gradient_metrics import gradient_metrics

    model, x, y = _lenet_loss_inputs(tiny, b, size)
    weights = {k: v.detach() for k, v in _weights(model).items()}
    others = {n: p.detach() for n, p in model.named_parameters() if n not in weights}

    def loss(w, xi, yi):
        out = functional_call(model, {**w, **others}, (xi[None],))
        return nn.functional.cross_entropy(out, yi[None])

    def peer():
        return _norms(vmap(grad(loss), in_dims=(None, 0, 0))(weights, x, y))

    return (lambda: gradient_metrics(model, x, method="hooks", statistics=("l2",))), peer, _norm_agreement


def setup_grad_opacus(tiny: bool, b: int = 256, size: int = 28):
    from opacus import GradSampleModule

    from ualib.meta.gradient_metrics import gradient_metrics

    model, x, y = _lenet_loss_inputs(tiny, b, size)
    peer_model = _lenet(size=size)
    peer_model.load_state_dict(model.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gsm = GradSampleModule(peer_model, loss_reduction="sum")
    gsm.train()  # Opacus records activations in training mode only (this LeNet has no dropout, no BatchNorm)

    def peer():
        for p in gsm.parameters():
            p.grad_sample = None
            p.grad = None
        nn.functional.cross_entropy(gsm(x), y, reduction="sum").backward()
        return _norms({n: p.grad_sample for n, p in gsm._module.named_parameters() if n.endswith("weight")})

    return (lambda: gradient_metrics(model, x, method="hooks", statistics=("l2",))), peer, _norm_agreement


def setup_grad_loop(tiny: bool, b: int = 256):
    """The old benchmarks/bench_gradient_metrics.py: hooks against ualib's own per-sample loop (reference)."""
    from ualib.meta.gradient_metrics import gradient_metrics

    model, x, _ = _lenet_loss_inputs(tiny, b)

    def agree(a, p):
        return Agreement(
            "max rel |a-b| over all columns", max(rel_max(a[k], p[k]) for k in p if "/mean" not in k), 1e-4
        )

    return (
        (lambda: gradient_metrics(model, x, method="hooks")),
        (lambda: gradient_metrics(model, x, method="loop")),
        agree,
    )


def _classifier(tiny: bool, b: int = 64):
    from ualib.targets import class_logit

    b = 4 if tiny else b
    model = _lenet()
    x = _images(b)
    with torch.no_grad():
        c0 = int(model(x).argmax(1)[0])
    # one class for the batch: ualib's IG / SmoothGrad targets see the steps x B points as one batch
    return model, x, c0, class_logit(model, c0)


def _exact(a, p) -> Agreement:
    return Agreement("max |a-b| / max |b|", rel_max(a, p), 1e-4)


def setup_ig(tiny: bool):
    from captum.attr import IntegratedGradients

    from ualib.attribution import integrated_gradients

    model, x, cls, target = _classifier(tiny)
    ig = IntegratedGradients(model)
    peer = lambda: ig.attribute(x, baselines=0.0, target=cls, n_steps=32, method="riemann_right")  # noqa: E731
    return (lambda: integrated_gradients(target, x, steps=32)), peer, _exact


def setup_smoothgrad(tiny: bool, n: int = 50, stdev: float = 0.15):
    from captum.attr import NoiseTunnel, Saliency

    from ualib.attribution import smoothgrad

    model, x, c0, target = _classifier(tiny, b=32)
    nt = NoiseTunnel(Saliency(model))
    # Captum draws torch.normal(0, stdev) for the inputs repeated-interleaved [B * n, ...]; the same draws,
    # reordered to [n, B, ...], are handed to ualib, so both average the gradients at the same points
    torch.manual_seed(0)
    noise = torch.normal(0.0, torch.full((x.shape[0] * n, *x.shape[1:]), stdev, device=x.device))
    noise = noise.view(x.shape[0], n, *x.shape[1:]).transpose(0, 1).contiguous()

    def peer():
        torch.manual_seed(0)
        return nt.attribute(x, nt_type="smoothgrad", nt_samples=n, stdevs=stdev, target=c0, abs=False)

    return (lambda: smoothgrad(target, x, noise=noise)), peer, _exact


def setup_guided(tiny: bool):
    from captum.attr import GuidedBackprop

    from ualib.attribution import guided_backprop

    model, x, cls, target = _classifier(tiny)
    gb = GuidedBackprop(model)
    return (lambda: guided_backprop(target, x, model=model)), (lambda: gb.attribute(x, target=cls)), _exact


def setup_ixg(tiny: bool):
    from captum.attr import InputXGradient

    from ualib.attribution import input_x_gradient

    model, x, cls, target = _classifier(tiny)
    ixg = InputXGradient(model)
    return (lambda: input_x_gradient(target, x)), (lambda: ixg.attribute(x, target=cls)), _exact


def setup_lime(tiny: bool, b: int = 4, num_samples: int = 500):
    from lime.lime_image import LimeImageExplainer

    from ualib.attribution import lime as ua_lime
    from ualib.attribution.lime import grid_segmentation

    b, num_samples = (1, 50) if tiny else (b, num_samples)
    model, x, cls, target = _classifier(False, b=b)
    x = x.cpu()
    model = model.cpu()
    seg = grid_segmentation(28, 28, 4)
    c0 = cls  # the class explained in every image (ualib's target is one function for the batch)

    def peer():  # the lime package's own loop: one explain_instance per image, its data_labels
        maps = []
        for i in range(len(x)):

            def fn(imgs, c=c0):
                z = torch.from_numpy(np.ascontiguousarray(imgs.transpose(0, 3, 1, 2)[:, :1])).float()
                with torch.no_grad():
                    return model(z)[:, c : c + 1].double().numpy()

            image = np.repeat(x[i].double().permute(1, 2, 0).numpy(), 3, axis=2)
            with contextlib.redirect_stderr(io.StringIO()):  # its progress bar
                exp = LimeImageExplainer(
                kernel_width=0.25, feature_selection="none", random_state=np.random.RandomState(0)
                ).explain_instance(
                    image, fn, labels=(0,), hide_color=None, top_labels=None, num_features=int(seg.max()) + 1,
                    num_samples=num_samples, batch_size=100, segmentation_fn=lambda _i: seg, random_seed=0,
                )  # fmt: skip
            w = np.zeros(int(seg.max()) + 1)
            for f, v in exp.local_exp[0]:
                w[f] = v
            maps.append(torch.from_numpy(w[seg]))
        return torch.stack(maps)[:, None]

    def ua():  # one call for all images; the perturbed images of each go through the model in batches
        return ua_lime(lambda z: model(z)[:, c0], x, num_samples=num_samples, cell_size=4)

    return ua, peer, _exact


def setup_ece(tiny: bool, n: int = 100_000, k: int = 10):
    from torchmetrics.functional.classification import multiclass_calibration_error

    from ualib.metrics import ece

    n = 500 if tiny else n
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(n, k, generator=g), 1)
    y = torch.randint(0, k, (n,), generator=g)
    ua = lambda: ece(probs, y, n_bins=15)  # noqa: E731
    peer = lambda: float(multiclass_calibration_error(probs, y, num_classes=k, n_bins=15, norm="l1"))  # noqa: E731
    return ua, peer, lambda a, p: Agreement("|a-b|", abs(a - p), 1e-5)  # torchmetrics sums in float32


def setup_auroc(tiny: bool, n: int = 100_000):
    from sklearn.metrics import roc_auc_score

    from ualib.metrics import auroc

    n = 500 if tiny else n
    g = np.random.default_rng(0)
    s_in, s_out = g.normal(0, 1, n), g.normal(0.7, 1, n)
    s_in[: n // 10] = np.round(s_in[: n // 10], 1)  # some ties
    s_out[: n // 10] = np.round(s_out[: n // 10], 1)
    labels = np.r_[np.zeros(n), np.ones(n)]
    scores = np.r_[s_in, s_out]
    ua = lambda: auroc(s_in, s_out)  # noqa: E731
    return ua, (lambda: float(roc_auc_score(labels, scores))), lambda a, p: Agreement("|a-b|", abs(a - p), 1e-10)


def setup_auroc_torchmetrics(tiny: bool, n: int = 100_000):
    from torchmetrics.functional.classification import binary_auroc

    from ualib.metrics import auroc

    n = 500 if tiny else n
    g = torch.Generator().manual_seed(0)
    s_in, s_out = (
        torch.randn(n, generator=g, dtype=torch.float64),
        torch.randn(n, generator=g, dtype=torch.float64) + 0.7,
    )
    scores, labels = torch.cat([s_in, s_out]), torch.cat([torch.zeros(n), torch.ones(n)]).long()
    ua = lambda: auroc(s_in, s_out)  # noqa: E731
    peer = lambda: float(binary_auroc(scores, labels))  # noqa: E731
    return ua, peer, lambda a, p: Agreement("|a-b|", abs(a - p), 1e-6)


def setup_ua_backprop(tiny: bool, b: int = 64, s: int = 20, size: int = 28):
    from captum.attr import IntegratedGradients

    from ualib.attribution.ua_backprop import ua_backprop
    from ualib.posteriors import MCDropout
    from ualib.targets import uncertainty_target

    b, s = (2, 4) if tiny else (b, s)
    post = MCDropout(_lenet(dropout=0.3, size=size), num_samples=s, seed=0)
    x = _images(b, s=size)
    target = uncertainty_target(post, "epistemic")
    ig = IntegratedGradients(target)

    def agree(a, p):
        # different methods of the same target: both are complete, UA-Backprop for U(x) itself, IG for
        # U(x) - U(0) (up to its Riemann error); compare the totals against the target
        u, u0 = target(x).detach(), target(torch.zeros_like(x)).detach()
        err_ua = rel_max(a.flatten(1).sum(1), u)
        err_ig = rel_max(p.flatten(1).sum(1), u - u0)
        return Agreement("max completeness error (UA: U, IG-32: U - U(0))", max(err_ua, err_ig), 5e-2)

    ua = lambda: ua_backprop(post, x, kind="epistemic")  # noqa: E731
    peer = lambda: ig.attribute(x, baselines=0.0, n_steps=32, method="riemann_right")  # noqa: E731
    return ua, peer, agree


CASES: list[Case] = [
    Case("FullGrad saliency ResNet-18 16x3x64x64", "pytorch-grad-cam FullGrad", setup_fullgrad, target=1.2,
         note="maps differ by definition: grad-cam min-max scales every channel, the official code (ualib) each "
              "layer's C x h x w, so they agree in correlation; ualib also checks completeness on every call, "
              "grad-cam never, and grad-cam's backward() also fills the weight gradients", cheap=False),
    Case("per-sample grad norms LeNet B=256 (hooks)", "torch.func vmap(grad)", setup_grad_vmap),
    Case("per-sample grad norms LeNet B=256 (hooks)", "Opacus GradSampleModule", setup_grad_opacus),
    Case("gradient metrics, all 6 statistics (hooks)", "ualib loop (autograd per sample)", setup_grad_loop,
         note="reference loop of the former bench_gradient_metrics.py (target there: >= 10x)", cheap=False),
    Case("integrated gradients 32 steps LeNet B=64", "Captum IntegratedGradients riemann_right", setup_ig,
         note="both evaluate the gradient at the same 32 x B interpolated points (Captum in one batch, ualib in "
              "chunks of its batch_size) and sum them: the same work, so a ratio near 1 is the expected result "
              "and its spread the machine's noise (compare the thread rows and the committed runs)"),
    Case("SmoothGrad n=50 LeNet B=32 (same noise)", "Captum NoiseTunnel(Saliency)", setup_smoothgrad,
         note="both push the same n x B noisy points through one forward + backward: the same work, so a "
              "ratio near 1 is the expected result and its spread the machine's noise"),
    Case("guided backprop LeNet B=64", "Captum GuidedBackprop", setup_guided,
         note="both hook every nn.ReLU and clamp its incoming gradient (ualib: a tensor hook on the output, "
              "no copy; an earlier copy-through autograd.Function made ualib 0.86x Captum); same backward work"),
    Case("gradient x input LeNet B=64", "Captum InputXGradient", setup_ixg,
         note="one forward + backward on both sides; differences are noise (compare the thread rows)"),
    Case("LIME 500 samples 4 images (batched)", "lime LimeImageExplainer loop", setup_lime, cheap=False),
    Case("ECE 15 bins n=1e5 K=10", "torchmetrics multiclass_calibration_error", setup_ece,
         note="ualib converts to float64 NumPy and validates the inputs (probabilities sum to 1, labels in "
              "range) before binning; torchmetrics bins in float32 torch: the peer computes in lower precision"),
    Case("AUROC n=2x1e5 with ties", "scikit-learn roc_auc_score", setup_auroc),
    Case("AUROC n=2x1e5", "torchmetrics binary_auroc", setup_auroc_torchmetrics),
    Case("UA-Backprop epistemic MC dropout S=20 B=64", "Captum IG-32 on uncertainty_target", setup_ua_backprop,
         note="different methods of the same target (both complete: UA-Backprop for U, IG for U - U(0)); "
              "agreement checks each one's completeness"),
]  # fmt: skip


def run_case(case: Case, *, tiny: bool = False, repeats: int = 5, threads: int = 1) -> CaseResult:
    """Time (unless ``tiny``) and check one case."""
    torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Captum's and Opacus' deprecation chatter
        return _run(case, tiny, repeats, threads)


def _run(case: Case, tiny: bool, repeats: int, threads: int) -> CaseResult:
    ua, peer, agree = case.setup(tiny)
    a, p = ua(), peer()
    agreement = agree(a, p)
    if tiny:
        return CaseResult(case.name, case.peer, threads, float("nan"), float("nan"), agreement, case.target, case.note)
    t_ua, t_peer = interleaved_best(ua, peer, repeats)
    return CaseResult(case.name, case.peer, threads, t_ua, t_peer, agreement, case.target, case.note)

"""Seeded training with a progress bar, and a model cache keyed by the full configuration.

``train(config, x, y)`` builds the posterior that ``config`` describes, and either loads its trained
state from the cache or trains it and stores it. The cache key is a SHA-256 hash of the configuration,
a fingerprint of the training data, the device type, and everything else that changes the
floating-point result of training (:func:`numerics`: thread count, CPU instruction set, the
kernel-selecting environment variables, the versions of torch, torchvision and ualib), so any
change to any of them trains a new model instead of loading weights trained under other numerics. Entries are written atomically (a temporary
file, then ``os.replace``) and carry a checksum of their payload: a truncated or corrupted entry is
reported and retrained, never loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ualib import __version__
from ualib._checks import (
    check_choice,
    check_model_dtype,
    check_nonnegative_float,
    check_positive_int,
    check_tensor,
    model_input_errors,
)
from ualib._paths import cache_dir as default_cache_dir
from ualib._progress import progress_bar
from ualib.data.augment import AUGMENTATIONS
from ualib.data.augment import augment as _augment
from ualib.models import MODEL_NAMES, build_model
from ualib.posteriors import BayesByBackprop, DeepEnsemble, DropConnect, Evidential, MCDropout, Posterior
from ualib.posteriors.ensemble import check_members
from ualib.seeding import derive_seed, generator, preserve_rng, seed_everything

__all__ = [
    "TrainConfig",
    "build_posterior",
    "fit",
    "train",
    "cache_key",
    "numerics",
    "training_ledger",
    "reset_training_ledger",
    "KERNEL_ENV",
    "POSTERIOR_NAMES",
]

POSTERIOR_NAMES = ("mc_dropout", "dropconnect", "ensemble", "flipout", "edl")
SCHEDULES = ("constant", "onecycle")
# settings added after the cache existed: left out of the cache key at their defaults, so that the
# models trained before them keep their keys
_KEY_DEFAULTS = {"augment": None, "schedule": "constant"}
# posterior options that only change inference, never a training step: left out of the cache key, so that
# chapters drawing different numbers of samples from one trained network share it (issue #15). Training
# draws one dropout mask, one DropConnect mask or one Flipout perturbation per step, whatever the number of
# samples drawn later (tests/ualib/test_training.py trains with two values and compares the weights bit for bit)
# An ensemble's ``members`` (which members of the trained ensemble to use) is one too: one trained pool serves
# every draw from it (compendium.zoo.pool_draw)
_INFERENCE_ONLY = {
    "mc_dropout": ("num_samples",),
    "dropconnect": ("num_samples",),
    "flipout": ("num_samples",),
    "ensemble": ("members",),
}
# posteriors whose training code changed the weights it produces after the cache existed: the revision is part
# of their cache key, so a cache never serves weights that the current code would not train. Ensemble 2: the
# members train one after the other, each drawing its own dropout masks, instead of under one vmap (2026-12-07)
_TRAINING_REVISION = {"ensemble": 2}
# every train() call of this process, in order (training_ledger)
_LEDGER: list[dict[str, Any]] = []


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained posterior.

    Parameters
    ----------
    dataset
        A description of the training data (e.g. ``"mnist/train"``); the data's fingerprint is part
        of the cache key too, so this is for people reading the cache.
    model, model_kwargs
        Passed to :func:`ualib.models.build_model` (``in_channels``, ``in_size``, ``num_classes``
        and e.g. ``dropout``, ``batchnorm``).
    posterior, posterior_kwargs
        One of :data:`POSTERIOR_NAMES` and its options (``num_samples``, ``p``, ``num_members``,
        ``evidence``, ``loss``, Flipout's ``kl_weight`` and ``rho_init``, the (mean, std) of its
        layers' initial ``rho``, ``task="regression"`` for a regressor with one output ...). An
        ensemble's ``members``, a list of member indices, makes :func:`train` train (or load) the
        ensemble of ``num_members`` and return the ensemble of those members
        (:meth:`~ualib.posteriors.DeepEnsemble.subset`); it is not part of the cache key, so every draw
        from one pool shares the trained pool.
    epochs, batch_size, lr, weight_decay, seed
        Adam optimisation settings and the seed of initialisation, shuffling and training noise.
    augment
        ``None``, or a training-time augmentation of :data:`ualib.data.augment.AUGMENTATIONS`
        (``"crop_flip"``: random crops of the 4-pixel zero-padded image and horizontal flips, the
        standard CIFAR-10 augmentation), drawn per batch from a generator seeded with ``(seed, epoch)``.
    schedule
        ``"constant"`` (the learning rate ``lr`` throughout) or ``"onecycle"`` (Smith & Topin 2019,
        "Super-convergence": the rate rises from ``lr / 25`` to ``lr`` over the first 30 % of the
        steps, then anneals along a cosine to ``lr / 2.5e5``; PyTorch's
        :class:`~torch.optim.lr_scheduler.OneCycleLR` with its defaults).

    Examples
    --------
    >>> from ualib import TrainConfig
    >>> cfg = TrainConfig("mnist/train", model="lenet", posterior="mc_dropout", epochs=2)
    >>> cfg.posterior, cfg.epochs, cfg.seed
    ('mc_dropout', 2, 0)
    >>> cfg.to_dict()["model"]
    'lenet'
    """

    dataset: str
    model: str = "lenet"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    posterior: str = "mc_dropout"
    posterior_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 3
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    augment: str | None = None
    schedule: str = "constant"

    def __post_init__(self) -> None:
        check_choice(self.model, "model", MODEL_NAMES)
        check_choice(self.posterior, "posterior", POSTERIOR_NAMES)
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.batch_size, "batch_size")
        check_nonnegative_float(self.lr, "lr", positive=True)
        check_nonnegative_float(self.weight_decay, "weight_decay")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an int, got {type(self.seed).__name__}")
        if self.augment is not None:
            check_choice(self.augment, "augment", AUGMENTATIONS)
        check_choice(self.schedule, "schedule", SCHEDULES)
        if self.posterior == "ensemble" and "members" in self.posterior_kwargs:
            check_members(self.posterior_kwargs["members"], self.posterior_kwargs.get("num_members", 5))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def build_posterior(config: TrainConfig) -> Posterior:
    """The untrained posterior of ``config``, initialised deterministically from ``config.seed``."""
    mk = dict(config.model_kwargs)
    pk = dict(config.posterior_kwargs)
    if config.posterior == "flipout":
        # ``rho_init`` (a posterior option: the initial spread of q(W)) goes to every Flipout layer
        mk["flipout"] = {"rho_init": tuple(pk.pop("rho_init"))} if "rho_init" in pk else True
    with preserve_rng():
        torch.manual_seed(derive_seed(config.seed, "init"))
        if config.posterior == "ensemble":
            pk.pop("members", None)  # train() draws them from the trained ensemble
            return DeepEnsemble(lambda: build_model(config.model, **mk), seed=config.seed, **pk)
        model = build_model(config.model, **mk)
    if config.posterior == "mc_dropout":
        return MCDropout(model, seed=config.seed, **pk)
    if config.posterior == "dropconnect":
        return DropConnect(model, seed=config.seed, **pk)
    if config.posterior == "flipout":
        return BayesByBackprop(model, seed=config.seed, **pk)
    return Evidential(model, **pk)


def fit(
    posterior: Posterior,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    augment: str | None = None,
    schedule: str = "constant",
    progress: bool = True,
    desc: str | None = None,
) -> dict[str, list[float]]:
    """Train ``posterior`` in place with Adam on ``x [N, ...]``, ``y [N]``; return the history.

    ``y`` holds integer labels, or real targets for a posterior with ``task="regression"``
    (``posterior_kwargs={"task": "regression"}`` in a :class:`TrainConfig`).

    Shuffling uses a generator seeded with ``(seed, epoch)``; stochastic layers draw from the global
    RNG, seeded with ``seed`` here and restored afterwards, so the same call gives the same weights on
    the CPU. ``augment`` and ``schedule`` are those of :class:`TrainConfig`; augmentation draws from a
    generator seeded with ``(seed, "augment", epoch)``. ``progress`` shows one plain ``tqdm`` bar over
    all steps, with the epoch and running loss.
    """
    check_model_dtype(check_tensor(x, "x", ndim=(2, 3, 4), nonempty=True), "x", posterior.parameters())
    classification = getattr(posterior, "task", "classification") != "regression"
    check_tensor(y, "y", ndim=1, floating=not classification, integer=classification)
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if augment is not None:
        check_choice(augment, "augment", AUGMENTATIONS)
        if x.ndim != 4:
            raise ValueError(f"augment={augment!r} needs images x [N, C, H, W], got x of shape {tuple(x.shape)}")
    check_choice(schedule, "schedule", SCHEDULES)
    device = posterior.device
    opt = torch.optim.Adam(posterior.parameters(), lr=lr, weight_decay=weight_decay)
    history: dict[str, list[float]] = {"loss": [], "seconds": []}
    n = len(x)
    steps_per_epoch = (n + batch_size - 1) // batch_size
    sched = None
    if schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    bar = progress_bar(
        progress=bool(progress), desc=desc or posterior.name, total=epochs * steps_per_epoch, unit="step"
    )
    with preserve_rng():
        seed_everything(derive_seed(seed, "train"))
        posterior.module.train()
        try:
            for epoch in range(epochs):
                t0 = time.perf_counter()
                perm = torch.randperm(n, generator=generator(seed, "shuffle", epoch))
                aug_gen = generator(seed, "augment", epoch) if augment is not None else None
                total, count = 0.0, 0
                for i in range(0, n, batch_size):
                    idx = perm[i : i + batch_size]
                    xb, yb = x[idx], y[idx].to(device)
                    if aug_gen is not None:
                        xb = _augment(augment, xb, aug_gen)
                    xb = xb.to(device)
                    with model_input_errors("x", x), _label_errors(posterior, xb, y, classification):
                        loss = posterior.training_loss(xb, yb, epoch=epoch, num_train=n)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    if sched is not None:
                        sched.step()
                    total += loss.item() * len(idx)
                    count += len(idx)
                    bar.update(1)
                    bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{total / count:.4f}", refresh=False)
                history["loss"].append(total / count)
                history["seconds"].append(time.perf_counter() - t0)
        finally:
            bar.close()
            posterior.module.eval()
    return history


@contextmanager
def _label_errors(posterior: Posterior, xb: torch.Tensor, y: torch.Tensor, classification: bool) -> Iterator[None]:
    """Turn the loss's bare error for a class label outside the model's outputs into a ``ValueError``."""
    try:
        yield
    except (IndexError, RuntimeError) as err:
        if not classification or "out of bounds" not in str(err):
            raise
        with torch.no_grad():  # only on this error path: one forward pass to name the number of outputs
            k = posterior.logits(xb[:1], indices=[0]).shape[-1]
        raise ValueError(
            f"y: class labels must lie in [0, {k - 1}] for the model's {k} outputs, "
            f"got labels in [{int(y.min())}, {int(y.max())}]"
        ) from err


def _fingerprint(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


#: environment variables that select CPU kernels (and so change trained weights) without changing the code
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR")


def numerics() -> dict[str, Any]:
    """What decides a training run's floating-point arithmetic besides the code and the data.

    Training is bit-identical only for the same thread count (reductions are split across threads),
    the same CPU instruction set (oneDNN and MKL pick kernels by ISA) and the same library versions;
    on CUDA, the CUDA version and TF32 setting play that role. All of it is part of the cache key, so
    two processes with different settings never share, or overwrite, a cached model.
    """
    import torchvision

    out: dict[str, Any] = {
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "kernel_env": {k: os.environ[k] for k in KERNEL_ENV if k in os.environ},
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__, "ualib": __version__},
    }
    if torch.cuda.is_available():
        out["cuda"] = {"version": torch.version.cuda, "tf32": torch.backends.cuda.matmul.allow_tf32}
    return out


def cache_key(config: TrainConfig, x: torch.Tensor, y: torch.Tensor, device: str | torch.device = "cpu") -> str:
    """The SHA-256 cache key of a configuration, its training data, the device type and the
    :func:`numerics` of this process (thread count, CPU capability, kernel-selecting environment
    variables, library versions). Options that only change inference (the number of samples drawn
    from an MC-dropout, DropConnect or Flipout network) are left out: one trained network serves every
    sample count."""
    cfg = {k: v for k, v in config.to_dict().items() if not (k in _KEY_DEFAULTS and v == _KEY_DEFAULTS[k])}
    skip = _INFERENCE_ONLY.get(config.posterior, ())
    cfg["posterior_kwargs"] = {k: v for k, v in cfg["posterior_kwargs"].items() if k not in skip}
    doc = {
        "config": cfg,
        "data": _fingerprint(x, y),
        "device": torch.device(device).type,
        "numerics": numerics(),
    }
    if config.posterior in _TRAINING_REVISION:
        doc["revision"] = _TRAINING_REVISION[config.posterior]
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _write_atomic(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(payload).hexdigest().encode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(digest + b"\n" + payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_verified(path: Path) -> dict | None:
    """The stored entry, or ``None`` (with a warning) if it is truncated or corrupted."""
    try:
        raw = path.read_bytes()
        digest, payload = raw.split(b"\n", 1)
        if hashlib.sha256(payload).hexdigest().encode() != digest:
            raise ValueError("checksum mismatch")
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # any failure to read means: do not trust it
        warnings.warn(f"model cache entry {path} is unreadable ({exc}); retraining it", RuntimeWarning, stacklevel=3)
        return None


def train(
    config: TrainConfig,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    device: str | torch.device = "cpu",
    cache: bool | str | os.PathLike = True,
    progress: bool = True,
) -> tuple[Posterior, dict[str, Any]]:
    """Build and train the posterior of ``config`` on ``(x, y)``, or load it from the cache.

    Parameters
    ----------
    config
        The full training configuration.
    x, y
        Training inputs ``[N, ...]`` and integer labels ``[N]``.
    device
        Where to train (``"cpu"`` or ``"cuda"``); part of the cache key.
    cache
        ``True`` for the default cache folder (``UALIB_CACHE`` or ``<repo>/.cache/models``), a path
        for another folder, ``False`` to always train and store nothing.
    progress
        Show ``tqdm`` progress bars while training.

    Returns
    -------
    posterior, info
        The trained posterior in eval mode on ``device``, and ``info`` with ``cache_hit``, ``key``,
        ``history`` (loss and seconds per epoch) and ``train_seconds``.

    Examples
    --------
    >>> import torch, ualib
    >>> _ = torch.manual_seed(0)
    >>> cfg = ualib.TrainConfig("toy", model="mlp", model_kwargs={"in_channels": 4, "num_classes": 3}, epochs=1, batch_size=8)
    >>> x, y = torch.rand(16, 4), torch.randint(0, 3, (16,))
    >>> post, info = ualib.train(cfg, x, y, cache=False, progress=False)
    >>> type(post).__name__, info["cache_hit"]
    ('MCDropout', False)
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    t_call = time.perf_counter()
    posterior = build_posterior(config).to(device)
    key = cache_key(config, x, y, device)
    path = None
    if cache:
        folder = default_cache_dir() if cache is True else Path(cache)
        path = folder / f"{config.posterior}-{key[:16]}.pt"
        if path.exists():
            entry = _read_verified(path)
            if entry is not None and entry.get("key") == key:
                posterior.load_state_dict(entry["state"])
                posterior.to(device)
                posterior.module.eval()
                _record(config, len(x), key, True, 0.0, time.perf_counter() - t_call)
                info = {"cache_hit": True, "key": key, "history": entry["history"], "train_seconds": 0.0}
                return _drawn(posterior, config), info
    t0 = time.perf_counter()
    history = fit(
        posterior,
        x,
        y,
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        weight_decay=config.weight_decay,
        seed=config.seed,
        augment=config.augment,
        schedule=config.schedule,
        progress=progress,
        desc=f"{config.posterior} ({config.dataset})",
    )
    seconds = time.perf_counter() - t0
    if path is not None:
        buf = io.BytesIO()
        state = posterior.state_dict()
        state = {
            k: (v.cpu() if isinstance(v, torch.Tensor) else {kk: vv.cpu() for kk, vv in v.items()})
            for k, v in state.items()
        }
        torch.save(
            {"key": key, "config": json.dumps(config.to_dict(), default=str), "state": state, "history": history}, buf
        )
        _write_atomic(path, buf.getvalue())
    posterior.module.eval()
    _record(config, len(x), key, False, seconds, time.perf_counter() - t_call)
    return _drawn(posterior, config), {"cache_hit": False, "key": key, "history": history, "train_seconds": seconds}


def _drawn(posterior: Posterior, config: TrainConfig) -> Posterior:
    """The ensemble of ``config``'s ``members`` when it names them, else ``posterior`` itself."""
    if config.posterior == "ensemble" and "members" in config.posterior_kwargs:
        return posterior.subset(config.posterior_kwargs["members"])  # type: ignore[attr-defined]
    return posterior


def _record(config: TrainConfig, n: int, key: str, hit: bool, train_s: float, call_s: float) -> None:
    _LEDGER.append(
        {
            "posterior": config.posterior,
            "model": config.model,
            "dataset": config.dataset,
            "n": int(n),
            "epochs": config.epochs,
            "seed": config.seed,
            **({"members": list(config.posterior_kwargs["members"])} if "members" in config.posterior_kwargs else {}),
            "key": key[:16],
            "threads": torch.get_num_threads(),
            "cache_hit": hit,
            "train_seconds": round(train_s, 3),
            "call_seconds": round(call_s, 3),
        }
    )


def training_ledger() -> list[dict[str, Any]]:
    """Every :func:`train` call of this process so far, in order: what was trained and what was loaded.

    Each entry has the configuration's ``posterior``, ``model``, ``dataset``, ``epochs`` and ``seed`` (and an
    ensemble's ``members`` when it is drawn from a larger one), the
    number ``n`` of training examples, the first 16 hex digits of the cache ``key``, the CPU ``threads`` it was
    trained with (part of the key, :func:`numerics`), ``cache_hit``,
    ``train_seconds`` (0 for a model loaded from the cache) and ``call_seconds`` (the whole call: building,
    loading or training, storing). A chapter's results record it, so a reader sees how much of the chapter's
    running time went into training (:func:`compendium.results.write_results`).

    Examples
    --------
    >>> import torch, ualib
    >>> from ualib.training import reset_training_ledger, training_ledger
    >>> reset_training_ledger()
    >>> cfg = ualib.TrainConfig("toy", model="mlp", model_kwargs={"in_channels": 4, "num_classes": 3}, epochs=1, batch_size=8)
    >>> _ = ualib.train(cfg, torch.rand(16, 4), torch.randint(0, 3, (16,)), cache=False, progress=False)
    >>> [(e["posterior"], e["n"], e["cache_hit"]) for e in training_ledger()]
    [('mc_dropout', 16, False)]
    """
    return [dict(e) for e in _LEDGER]


def reset_training_ledger() -> None:
    """Forget the :func:`train` calls recorded so far (:func:`training_ledger` starts empty again)."""
    _LEDGER.clear()

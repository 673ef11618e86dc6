"""A planted-cause test set: in-distribution images with a foreign patch pasted in, and its mask.

The experiment of the book's planted-cause test (book: chapter 2, "UA-Backprop", section "A planted cause" — notebooks/02_ua_backprop.ipynb): paste a foreign stroke pattern (a notMNIST letter, an
inverted Omniglot character) onto correctly classified digits, so that the region responsible for
any added uncertainty is known. An uncertainty attribution should then point at the patch, which the
localization metrics of :mod:`ualib.metrics.localization` and the blurring test of
:mod:`ualib.metrics.perturbation` measure. The ground-truth design is a spec choice [INF] (book: chapter 2, "UA-Backprop", section "A planted cause" — notebooks/02_ua_backprop.ipynb), not
a protocol read in a paper.

Images follow the MNIST convention: ``[N, 1, H, W]`` in ``[0, 1]``, bright strokes on black. A patch
is pasted with ``max(x, patch)``, so its strokes are added to the digit (not a black box over it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ualib._checks import check_choice, check_positive_int, check_tensor
from ualib.seeding import generator
from ualib.data.shift import to_mnist_style

__all__ = ["PlantedSet", "POSITIONS", "plant_patches", "planted_cause_set"]

#: the named placement rules of :func:`plant_patches`
POSITIONS = ("random", "corners")


@dataclass(repr=False)
class PlantedSet:
    """Images with a planted foreign patch, and where the patch is.

    Attributes
    ----------
    x
        The planted images ``[N, C, H, W]`` (``C = 1`` for MNIST-style digits).
    mask
        Boolean ``[N, 1, H, W]``: the pixels where the pasted patch has ink (patch value
        ``> threshold``, any channel), whether or not the digit was already brighter there. The
        ground-truth cause.
    y
        The original labels ``[N]``, or ``None`` if none were given.
    patch_index
        ``int64`` ``[N]``: which patch was pasted into each image (a row of the ``patches`` given to
        :func:`plant_patches`, or of ``foreign_images`` for :func:`planted_cause_set`).
    position
        ``int64`` ``[N, 2]``: the (row, column) of the patch's top-left pixel.
    patch_size
        The patch side length ``s``; the patch box of image ``i`` is
        ``[row, row + s) x [col, col + s)``.
    x_clean
        The images before planting ``[N, C, H, W]``.
    source_index
        ``int64`` ``[N]``: the row of each image in the source set (``arange(N)`` for
        :func:`plant_patches`; the chosen digits for :func:`planted_cause_set`).
    threshold
        The ink threshold used for ``mask``.
    """

    x: torch.Tensor
    mask: torch.Tensor
    y: torch.Tensor | None
    patch_index: torch.Tensor
    position: torch.Tensor
    patch_size: int
    x_clean: torch.Tensor
    source_index: torch.Tensor
    threshold: float

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __repr__(self) -> str:
        return (
            f"PlantedSet(n={len(self)}, image={tuple(self.x.shape[1:])}, patch_size={self.patch_size}, "
            f"labels={'yes' if self.y is not None else 'no'}, mean mask pixels="
            f"{self.mask.flatten(1).sum(1).double().mean().item():.1f})"
        )

    def box(self) -> torch.Tensor:
        """Boolean ``[N, 1, H, W]``: the square box each patch was pasted into (a superset of ``mask``)."""
        n, _, h, w = self.x.shape
        rows = torch.arange(h, device=self.x.device)[None, :]
        cols = torch.arange(w, device=self.x.device)[None, :]
        r0, c0 = self.position[:, :1].to(rows.device), self.position[:, 1:].to(cols.device)
        in_r = (rows >= r0) & (rows < r0 + self.patch_size)  # [N, H]
        in_c = (cols >= c0) & (cols < c0 + self.patch_size)  # [N, W]
        return (in_r[:, :, None] & in_c[:, None, :])[:, None]


def _check_unit_interval(value: object, name: str, *, open_low: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    ok = (0 < value <= 1) if open_low else (0 <= value < 1)
    if not ok:
        raise ValueError(f"{name} must lie in {'(0, 1]' if open_low else '[0, 1)'}, got {value!r}")
    return float(value)


def plant_patches(
    x: torch.Tensor,
    patches: torch.Tensor,
    *,
    patch_size: int,
    seed: int = 0,
    positions: str | torch.Tensor = "random",
    alpha: float = 1.0,
    y: torch.Tensor | None = None,
    patch_index: torch.Tensor | None = None,
    threshold: float = 0.1,
) -> PlantedSet:
    """Paste one foreign patch into each image, at a seeded location, and record its ink mask.

    Inside the patch box of image ``i`` the result is
    ``(1 - alpha) * x_i + alpha * max(x_i, p)`` with ``p`` the patch (so ``alpha = 1`` gives
    ``max(x_i, p)``: the patch's strokes are added to the digit); outside the box ``x_i`` is unchanged.
    The mask is ``p > threshold`` inside the box (for any channel of ``p``), independent of ``alpha``
    and of the digit underneath.

    Parameters
    ----------
    x
        In-distribution images ``[N, C, H, W]``, MNIST convention (bright strokes on black).
    patches
        Foreign images ``[M, C', h, w]`` with ``C'`` in ``{1, C}``, in the same convention (invert
        Omniglot's dark-on-white characters first, e.g. with ``ualib.data.shift.to_mnist_style(...,
        invert=True)``). Patches not of size ``patch_size x patch_size`` are resized with
        :func:`ualib.data.shift.to_mnist_style` (bilinear, antialiased; 1 channel).
    patch_size
        The side ``s`` of the square patch box, ``1 <= s <= min(H, W)``.
    seed
        Seeds the patch assignment and the positions (``ualib.seeding.generator``).
    positions
        ``"random"``: the top-left corner is uniform over all positions that keep the patch inside
        the image, ``row in [0, H - s]``, ``col in [0, W - s]``. ``"corners"``: one of the four image
        corners, uniformly (MNIST digits leave the corners empty, so the patch rarely touches the
        digit). Or an integer tensor ``[N, 2]`` of (row, col) top-left corners.
    alpha
        Opacity of the patch in ``(0, 1]``.
    y
        Optional labels ``[N]``, carried through.
    patch_index
        Optional integer ``[N]``: which patch goes into each image. Default: patch ``i`` into image
        ``i`` when ``M == N``, else a seeded uniform draw with replacement.
    threshold
        A patch pixel with value ``> threshold`` is ink (part of the mask), in ``[0, 1)``.

    Returns
    -------
    PlantedSet
        The planted images, mask, labels, patch indices and positions.

    Raises
    ------
    ValueError
        For shapes that do not fit, a patch larger than the image, positions that put a patch outside
        the image, or a pasted patch without any ink above ``threshold`` (its mask would be empty).
    """
    x = check_tensor(x, "x", ndim=4)
    patches = check_tensor(patches, "patches", ndim=4)
    n, c, h, w = x.shape
    s = check_positive_int(patch_size, "patch_size")
    if s > min(h, w):
        raise ValueError(f"patch_size={s} does not fit into images of size {h}x{w}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    a = _check_unit_interval(alpha, "alpha", open_low=True)
    thr = _check_unit_interval(threshold, "threshold", open_low=False)
    m = patches.shape[0]
    if m == 0:
        raise ValueError("patches is empty: need at least one foreign image [M >= 1, C, h, w]")
    if patches.shape[1] not in (1, c):
        raise ValueError(f"patches must have 1 or {c} channels like x, got shape {tuple(patches.shape)}")
    if patches.shape[-2:] != (s, s):
        patches = to_mnist_style(patches, s)
    patches = patches.to(x.device, x.dtype)
    if y is not None:
        if not isinstance(y, torch.Tensor) or y.shape != (n,):
            raise ValueError(f"y must be a tensor of shape [{n}], got {getattr(y, 'shape', type(y).__name__)}")

    pidx = _resolve_patch_index(patch_index, n, m, seed)
    pos = _resolve_positions(positions, n, h, w, s, seed)
    chosen = patches[pidx.to(patches.device)]  # [N, C', s, s]
    ink = _ink_masks(chosen, pidx, thr, s)

    out = x.clone()
    mask = torch.zeros((n, 1, h, w), dtype=torch.bool, device=x.device)
    for i in range(n):  # one slice assignment per image; N is at most a few thousand
        r0, c0 = int(pos[i, 0]), int(pos[i, 1])
        region = out[i, :, r0 : r0 + s, c0 : c0 + s]
        out[i, :, r0 : r0 + s, c0 : c0 + s] = (1 - a) * region + a * torch.maximum(region, chosen[i])
        mask[i, :, r0 : r0 + s, c0 : c0 + s] = ink[i]
    return PlantedSet(
        x=out,
        mask=mask,
        y=y,
        patch_index=pidx,
        position=pos,
        patch_size=s,
        x_clean=x,
        source_index=torch.arange(n),
        threshold=thr,
    )


def _resolve_patch_index(patch_index: torch.Tensor | None, n: int, m: int, seed: int) -> torch.Tensor:
    """Which of the ``m`` patches goes into each of the ``n`` images: ``patch_index`` checked, or
    patch ``i`` into image ``i`` when ``m == n``, else a seeded draw with replacement (``long [n]``)."""
    if patch_index is None:
        if m == n:
            return torch.arange(n)
        return torch.randint(m, (n,), generator=generator(seed, "plant_patches", "patch_index"))
    if not isinstance(patch_index, torch.Tensor) or patch_index.dtype not in (torch.int32, torch.int64):
        raise TypeError("patch_index must be an integer tensor [N]")
    if patch_index.shape != (n,):
        raise ValueError(f"patch_index must have shape [{n}], got {tuple(patch_index.shape)}")
    if n and (patch_index.min() < 0 or patch_index.max() >= m):
        raise ValueError(f"patch_index must lie in [0, {m - 1}] (M={m} patches)")
    return patch_index.to("cpu", torch.long)


def _resolve_positions(positions: str | torch.Tensor, n: int, h: int, w: int, s: int, seed: int) -> torch.Tensor:
    """Top-left corners ``long [n, 2]`` (row, col) of the ``s x s`` patch boxes in ``h x w`` images:
    the given tensor checked to keep every box inside, or a seeded ``"random"`` / ``"corners"`` draw."""
    if isinstance(positions, torch.Tensor):
        if positions.dtype not in (torch.int32, torch.int64) or positions.shape != (n, 2):
            raise ValueError(
                f"positions as a tensor must be integer [{n}, 2] (row, col), got {positions.dtype} "
                f"{tuple(positions.shape)}"
            )
        pos = positions.to("cpu", torch.long)
        bad = (pos < 0).any(1) | (pos[:, 0] > h - s) | (pos[:, 1] > w - s)
        if bad.any():
            raise ValueError(
                f"positions put patches outside the image: need 0 <= row <= {h - s} and 0 <= col <= {w - s}; "
                f"rows {bad.nonzero().flatten().tolist()[:10]} violate it"
            )
        return pos
    check_choice(positions, "positions", POSITIONS)
    g = generator(seed, "plant_patches", "position")
    if positions == "random":
        rows = torch.randint(h - s + 1, (n,), generator=g)
        cols = torch.randint(w - s + 1, (n,), generator=g)
        return torch.stack([rows, cols], 1)
    corners = torch.tensor([[0, 0], [0, w - s], [h - s, 0], [h - s, w - s]])
    return corners[torch.randint(4, (n,), generator=g)]


def _ink_masks(chosen: torch.Tensor, pidx: torch.Tensor, thr: float, s: int) -> torch.Tensor:
    """``bool [N, 1, s, s]``: the pixels of each chosen patch above ``thr`` in any channel; refuses a
    patch without ink (its mask, and so every localization score on it, would be empty)."""
    ink = chosen.amax(1, keepdim=True) > thr
    empty = ~ink.flatten(1).any(1)
    if empty.any():
        bad_rows = pidx[empty.cpu()].unique().tolist()
        raise ValueError(
            f"patches {bad_rows[:10]} have no pixel above threshold={thr:g} at patch_size={s}: their masks "
            "would be empty (is the patch dark-on-white? invert it first)"
        )
    return ink


def planted_cause_set(
    digits: object,
    foreign_images: object,
    *,
    n: int,
    patch_size: int,
    seed: int = 0,
    positions: str = "random",
    alpha: float = 1.0,
    invert: bool | str = "auto",
    threshold: float = 0.1,
) -> PlantedSet:
    """``n`` digits, each with a different foreign character pasted in: the planted-cause test set.

    Chooses ``n`` distinct digits (kept in their original order) and ``n`` distinct foreign images
    (in a seeded random order) without replacement, resizes the foreign images to
    ``patch_size x patch_size`` (:func:`ualib.data.shift.to_mnist_style`, bilinear, antialiased; inverted
    if needed) and pastes foreign image ``j`` into digit ``j`` with :func:`plant_patches`. Everything
    is a deterministic function of ``seed``.

    Parameters
    ----------
    digits
        The in-distribution images: an object with ``.x`` ``[N, 1, H, W]`` and ``.y`` ``[N]`` (a
        :class:`ualib.data.Dataset`), e.g. correctly classified MNIST test digits.
    foreign_images
        ``[M, 1, h, w]`` tensor or an object with ``.x`` (e.g. ``load("notmnist", "test")`` or
        ``load("omniglot", "evaluation")``), ``M >= n``.
    n
        Number of planted images.
    patch_size
        Side of the pasted patch (e.g. 10-12 on 28x28 MNIST).
    seed
        Seeds the choice of digits and patches and the positions.
    positions, alpha, threshold
        As in :func:`plant_patches`.
    invert
        Invert the foreign images (``1 - v``) before pasting: ``True``, ``False`` or ``"auto"``
        (invert when the median pixel of the chosen images is above 0.5, i.e. dark strokes on a light
        background such as Omniglot).

    Returns
    -------
    PlantedSet
        ``patch_index`` indexes ``foreign_images`` and ``source_index`` indexes ``digits``.
    """
    dx, dy = getattr(digits, "x", None), getattr(digits, "y", None)
    if not isinstance(dx, torch.Tensor) or not isinstance(dy, torch.Tensor):
        raise TypeError(f"digits must have tensor attributes .x [N, 1, H, W] and .y [N], got {type(digits).__name__}")
    check_tensor(dx, "digits.x", ndim=4)
    if dy.shape != (dx.shape[0],):
        raise ValueError(f"digits.y must have shape [{dx.shape[0]}] like digits.x, got {tuple(dy.shape)}")
    fx = foreign_images if isinstance(foreign_images, torch.Tensor) else getattr(foreign_images, "x", None)
    if not isinstance(fx, torch.Tensor):
        raise TypeError(
            f"foreign_images must be a tensor [M, 1, h, w] or have a tensor .x, got {type(foreign_images).__name__}"
        )
    check_tensor(fx, "foreign_images", ndim=4)
    n = check_positive_int(n, "n")
    if n > dx.shape[0]:
        raise ValueError(f"n={n} exceeds the number of digits ({dx.shape[0]})")
    if n > fx.shape[0]:
        raise ValueError(f"n={n} exceeds the number of foreign images ({fx.shape[0]}); each digit gets a different one")
    if not (isinstance(invert, bool) or invert == "auto"):
        raise ValueError(f"invert must be True, False or 'auto', got {invert!r}")

    di = torch.randperm(dx.shape[0], generator=generator(seed, "planted_cause_set", "digits"))[:n].sort().values
    order = torch.randperm(fx.shape[0], generator=generator(seed, "planted_cause_set", "foreign"))
    inv = bool(fx[order[:n]].median() > 0.5) if invert == "auto" else invert
    resized = to_mnist_style(fx[order], check_positive_int(patch_size, "patch_size"), invert=inv)
    # foreign images that leave no ink at this patch size (blank or faint ones exist in notMNIST) are
    # skipped, keeping the seeded order, so every planted mask is non-empty
    inked = (resized > threshold).flatten(1).any(1)
    if int(inked.sum()) < n:
        raise ValueError(f"only {int(inked.sum())} foreign images keep ink above threshold={threshold} at "
                         f"patch_size={patch_size}; n={n} were asked for")
    fi = order[inked][:n]
    patches = resized[inked][:n]
    planted = plant_patches(
        dx[di],
        patches,
        patch_size=patch_size,
        seed=seed,
        positions=positions,
        alpha=alpha,
        y=dy[di],
        threshold=threshold,
    )
    planted.patch_index = fi[planted.patch_index]
    planted.source_index = di
    return planted

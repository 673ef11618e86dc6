"""Real datasets as tensors, resolved from the data root, an offline mirror, or a download.

Every dataset is looked up in this order:

1. the **data root** (``root=``, else ``UALIB_DATA``, else ``<repo>/data`` in a source checkout,
   else ``~/.ualib/data``), in torchvision's / scikit-learn's own folder layout;
2. an **offline mirror** (``mirror=``, else ``UALIB_DATA_MIRROR``): each needed mirror file is checked
   against the mirror's ``SHA256SUMS``, then copied / decompressed / extracted into the data root
   (atomically: into a temporary folder inside the data root, then renamed into place);
3. the normal **torchvision / scikit-learn download** into the data root (skipped with
   ``download=False`` or ``UALIB_OFFLINE=1``);
4. otherwise :class:`DatasetNotFoundError`, whose message says how to use each of the three.

Files that ``ualib`` puts into the data root are listed with their SHA-256 in the dataset folder's
``.ualib-manifest.json`` and verified on every load; a mismatch raises :class:`ChecksumError`.
``ualib`` never deletes or overwrites files in the data root.

Examples
--------
>>> from ualib.data import load
>>> ds = load("digits", "train")
>>> ds.x.shape, ds.y.shape  # doctest: +SKIP
(torch.Size([1347, 1, 8, 8]), torch.Size([1347]))
"""

from __future__ import annotations

import os
import pathlib

from torchvision.datasets import EMNIST

from ualib._checks import check_choice, check_positive_int
from ualib.data import _images, _tables
from ualib.data._resolve import Context
from ualib.data._store import data_root as _data_root
from ualib.data._store import mirror_dir, offline_env
from ualib.data._transforms import resize, to_grayscale, to_unit_float
from ualib.data._types import ChecksumError, Dataset, DatasetNotFoundError

__all__ = ["Dataset", "DatasetNotFoundError", "ChecksumError", "load", "data_root", "available", "ENV_MAX_N"]

_NAMES = (
    "digits",
    "mnist",
    "fashion_mnist",
    "emnist",
    "notmnist",
    "omniglot",
    "cifar10",
    "fer2013",
    "california_housing",
)
_SPLITS: dict[str, tuple[str, ...]] = {
    "digits": ("train", "test", "all"),
    "mnist": ("train", "test"),
    "fashion_mnist": ("train", "test"),
    "notmnist": ("test",),
    "omniglot": ("background", "evaluation"),
    "cifar10": ("train", "test"),
    "fer2013": ("train", "test"),
    "california_housing": ("all", "train", "test"),
}
_OMNIGLOT_ALIASES = {"train": "background", "test": "evaluation"}


#: caps every image load at this many examples: ``python -m compendium.book run --smoke`` sets it so that a
#: chapter's ``gpu`` parameters run on a CPU in minutes, through the same code paths
ENV_MAX_N = "UALIB_MAX_N"

def available() -> list[str]:
    """The names :func:`load` accepts.

    Returns
    -------
    list of str
        ``digits`` (bundled with scikit-learn, always available), ``mnist``, ``fashion_mnist``,
        ``emnist``, ``notmnist``, ``omniglot``, ``cifar10``, ``fer2013``, ``california_housing``.
    """
    return list(_NAMES)


def data_root(root: str | os.PathLike[str] | None = None) -> pathlib.Path:
    """The resolved data root.

    Parameters
    ----------
    root
        An explicit folder; if ``None``, the environment variable ``UALIB_DATA``, else ``<repo>/data``
        when ``ualib`` runs from a source checkout (the folder above the ``ualib`` package holds
        ``pyproject.toml``), else ``~/.ualib/data``.

    Returns
    -------
    pathlib.Path
        Absolute path; it is created only when a dataset is extracted into it.
    """
    return _data_root(root)


def _check_split(name: str, split: object, emnist_split: str | None) -> str:
    if not isinstance(split, str):
        raise TypeError(f"split must be a str, got {type(split).__name__}")
    if name == "emnist":
        return _emnist_key(split, emnist_split)
    if emnist_split is not None:
        raise ValueError(f"emnist_split is only for name='emnist', got name={name!r}")
    if name == "notmnist" and split != "test":
        raise ValueError(
            f"notmnist has only the split 'test' (notMNIST_small, 10,000 letters A-J): the offline mirror "
            f"has only the test split; got split={split!r}"
        )
    if name == "omniglot":
        split = _OMNIGLOT_ALIASES.get(split, split)
    return check_choice(split, f"split for {name!r}", _SPLITS[name])


def _emnist_key(split: str, emnist_split: str | None) -> str:
    if emnist_split is not None:
        check_choice(emnist_split, "emnist_split", EMNIST.splits)
    if split in ("train", "test"):
        if emnist_split is None:
            raise ValueError(
                f"emnist needs an EMNIST split: pass split='<s>-{split}' or emnist_split='<s>' with <s> one "
                f"of {list(EMNIST.splits)}"
            )
        return f"{emnist_split}-{split}"
    head, _, part = split.rpartition("-")
    if head not in EMNIST.splits or part not in ("train", "test"):
        raise ValueError(
            f"split for 'emnist' must be 'train' / 'test' (with emnist_split=...) or '<s>-train' / '<s>-test' "
            f"with <s> one of {list(EMNIST.splits)}, got {split!r}"
        )
    if emnist_split is not None and emnist_split != head:
        raise ValueError(f"split={split!r} contradicts emnist_split={emnist_split!r}")
    return split


def _optional_positive_int(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int or None, got {type(value).__name__}")
    return check_positive_int(value, name)


def load(
    name: str,
    split: str = "train",
    *,
    n: int | None = None,
    size: int | None = None,
    grayscale: bool = False,
    root: str | os.PathLike[str] | None = None,
    mirror: str | os.PathLike[str] | None = None,
    download: bool | None = None,
    emnist_split: str | None = None,
) -> Dataset:
    """Load a dataset split as tensors.

    Parameters
    ----------
    name
        One of :func:`available`:

        * ``"digits"``: scikit-learn's bundled 8x8 digits (1,797), always available; splits
          ``"train"`` / ``"test"`` (stratified 75/25, ``random_state=0``) and ``"all"``.
        * ``"mnist"``: 60,000 train / 10,000 test, ``[N, 1, 28, 28]``.
        * ``"fashion_mnist"``: 60,000 / 10,000, ``[N, 1, 28, 28]``. Besides the data root, mirror and
          download, the ``.gz`` files that Debian's ``dataset-fashion-mnist`` package installs in
          ``/usr/share/datasets/fashion-mnist/`` are used when present (decompressed into the data
          root).
        * ``"emnist"``: torchvision's EMNIST; ``split="digits-train"`` etc., or ``split="train"`` with
          ``emnist_split="digits"``. Images are transposed to upright (the files store them
          transposed). Not in the offline mirror.
        * ``"notmnist"``: split ``"test"`` only: notMNIST_small, 10,000 letters A-J, ``[N, 1, 28, 28]``.
        * ``"omniglot"``: splits ``"background"`` (964 characters x 20 = 19,280 images) and
          ``"evaluation"`` (659 x 20 = 13,180), ``[N, 1, 105, 105]``, pixel values as stored
          (background 1.0, strokes 0.0); labels index the characters (``classes`` =
          ``"<Alphabet>/characterNN"``). ``"train"`` / ``"test"`` are accepted as aliases. Only the
          first ``n`` PNGs are decoded.
        * ``"cifar10"``: ``[N, 3, 32, 32]``. The full CIFAR-10 when it is in the data root or can be
          downloaded; else the offline mirror's subset: the first 4,000 images of ``data_batch_1``
          (train) and the first 1,000 of ``test_batch`` (test), with a warning. A request with ``n``
          within the subset is served from the subset when it is available (the same images).
        * ``"fer2013"``: torchvision's ``FER2013`` CSV (``<root>/fer2013/fer2013.csv``,
          ``icml_face_data.csv`` or ``train.csv`` / ``test.csv``), ``[N, 1, 48, 48]``, 7 emotions.
          Never downloaded (Kaggle needs a login).
        * ``"california_housing"``: the 20,640 rows of scikit-learn's ``fetch_california_housing``,
          ``x`` ``[N, 8]`` (``features`` names the columns), ``y`` the median house value in
          100,000 USD; splits ``"all"``, ``"train"`` / ``"test"`` (80/20, ``random_state=0``).
    split
        The split (see above).
    n
        Return only the first ``n`` examples of the split, in the dataset's canonical order.
    size
        Resize images to ``size x size`` (bilinear, ``antialias=True``, ``align_corners=False``).
    grayscale
        Convert RGB images to luminance with ITU-R 601 weights (0.299, 0.587, 0.114); a no-op for
        grayscale datasets.
    root
        The data root (default: see :func:`data_root`).
    mirror
        An offline mirror folder with a ``SHA256SUMS`` file (default: ``UALIB_DATA_MIRROR``).
    download
        Allow the torchvision / scikit-learn download. ``None``: allowed unless the environment
        variable ``UALIB_OFFLINE=1`` is set; ``True`` / ``False`` override that variable.
    emnist_split
        The EMNIST split (``"byclass"``, ``"bymerge"``, ``"balanced"``, ``"letters"``, ``"digits"``,
        ``"mnist"``) when ``split`` is ``"train"`` / ``"test"``.

    Returns
    -------
    Dataset
        ``x``: images ``float32 [N, C, H, W]`` in ``[0, 1]`` (tables: ``float32 [N, F]``);
        ``y``: ``int64 [N]`` class labels (regression: ``float32 [N]``); ``classes``;
        ``features`` for tables.

    Raises
    ------
    DatasetNotFoundError
        The dataset is in none of the data root, the mirror, or the download.
    ChecksumError
        A mirror file differs from the mirror's ``SHA256SUMS``, or a file in the data root differs from
        the manifest written when it was extracted (or from a published checksum).
    ValueError, TypeError
        Unknown name or split, or invalid ``n`` / ``size`` / ``grayscale`` / ``download``.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    check_choice(name, "name", _NAMES)
    key = _check_split(name, split, emnist_split)
    n = _optional_positive_int(n, "n")
    if (cap := os.environ.get(ENV_MAX_N, "").strip()) and name != "california_housing":
        n = min(n, int(cap)) if n is not None else int(cap)  # a smoke run (compendium.book run --smoke)
    size = _optional_positive_int(size, "size")
    if not isinstance(grayscale, bool):
        raise TypeError(f"grayscale must be a bool, got {type(grayscale).__name__}")
    if download is not None and not isinstance(download, bool):
        raise TypeError(f"download must be a bool or None, got {type(download).__name__}")

    if name == "california_housing":
        if size is not None or grayscale:
            raise ValueError("size and grayscale apply to images; california_housing is a table")
        ctx = _context(root, mirror, download)
        x, y = _tables.read_california(ctx, key, n)
        return Dataset(name, key, x, y, [], list(_tables.CALIFORNIA_FEATURES))

    if name == "digits":
        images, labels, classes = _tables.read_digits(key, n)
    else:
        ctx = _context(root, mirror, download)
        if name == "mnist":
            images, labels, classes = _images.read_idx(_images.MNIST_SOURCE, ctx, key, n)
        elif name == "fashion_mnist":
            images, labels, classes = _images.read_idx(_images.FASHION_SOURCE, ctx, key, n)
        elif name == "notmnist":
            images, labels, classes = _images.read_idx(_images.NOTMNIST_SOURCE, ctx, key, n)
        elif name == "emnist":
            images, labels, classes = _images.read_emnist(ctx, key, n)
        elif name == "omniglot":
            images, labels, classes = _images.read_omniglot(ctx, key, n)
        elif name == "cifar10":
            images, labels, classes = _images.read_cifar10(ctx, key, n)
        else:
            images, labels, classes = _images.read_fer2013(ctx, key, n)

    x = to_unit_float(images)
    if grayscale:
        x = to_grayscale(x)
    if size is not None:
        x = resize(x, size)
    return Dataset(name, key, x.contiguous(), labels, list(classes))


def _context(
    root: str | os.PathLike[str] | None, mirror: str | os.PathLike[str] | None, download: bool | None
) -> Context:
    if download is None:
        allowed = not offline_env()
        reason = "" if allowed else "the environment variable UALIB_OFFLINE=1 is set"
    else:
        allowed = download
        reason = "" if allowed else "download=False was passed"
    return Context(root=_data_root(root), mirror=mirror_dir(mirror), download=allowed, download_off=reason)

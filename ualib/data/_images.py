"""Image datasets: where their files live, how the mirror / download produce them, how to read them.

Every reader returns ``uint8`` images ``[N, C, H, W]`` (the first ``n`` in the dataset's canonical
order), ``int64`` labels ``[N]`` and the class names; :mod:`ualib.data` converts to ``float32`` in
``[0, 1]`` and resizes. Files are verified (:func:`ualib.data._store.verify_files`) right before
torchvision's classes read them.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets import CIFAR10, EMNIST, MNIST, FashionMNIST, Omniglot

from ualib.data import _store
from ualib.data._resolve import Context, Source, ensure, not_found, relpaths_under
from ualib.data._torchvision import CIFAR10Subset, CIFAR10Verified, FER2013Any, NotMNIST, OmniglotFolder
from ualib.data._transforms import take
from ualib.data._types import ChecksumError, DatasetNotFoundError

__all__ = [
    "IDXSource",
    "EMNISTSource",
    "OmniglotSource",
    "CifarFullSource",
    "CifarSubsetSource",
    "FER2013Source",
    "MNIST_SOURCE",
    "FASHION_SOURCE",
    "NOTMNIST_SOURCE",
    "EMNIST_SOURCE",
    "OMNIGLOT_SOURCE",
    "CIFAR_FULL",
    "CIFAR_SUBSET",
    "FER_SOURCE",
    "read_idx",
    "read_emnist",
    "read_omniglot",
    "read_cifar10",
    "read_fer2013",
    "CIFAR_SUBSET_SIZES",
    "FER_CLASSES",
    "DEBIAN_FASHION_MNIST",
]

#: Debian's ``dataset-fashion-mnist`` package installs the four files here (``dpkg -L
#: dataset-fashion-mnist``), under the original ``.gz`` names; its package recompresses them, so their
#: ``.gz`` MD5s differ from upstream's, but they decompress to the upstream IDX files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
#: sizes of the offline mirror's CIFAR-10 subset (a prefix of data_batch_1 / test_batch)
CIFAR_SUBSET_SIZES = {"train": 4000, "test": 1000}
FER_CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
_IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


# --------------------------------------------------------------------------------------------------
# MNIST-format (IDX) datasets: MNIST, Fashion-MNIST, notMNIST, EMNIST
# --------------------------------------------------------------------------------------------------


class IDXSource(Source):
    """A folder ``<root>/<Folder>/raw`` of decompressed IDX files, read by an ``MNIST`` class.

    Mirror layout: ``<mirror>/<Folder>/raw/<file>.gz``.
    """

    def __init__(
        self,
        name: str,
        folder: str,
        tv_class: type[MNIST],
        splits: tuple[str, ...],
        *,
        known_md5: dict[str, str] | None = None,
        extra_mirrors: tuple[tuple[Path, str], ...] = (),
        downloader: str = "torchvision",
        no_download_hint: str = "",
        install_hint: str = "",
    ) -> None:
        self.name = name
        self.folder = folder
        self.tv_class = tv_class
        self.splits = splits
        self.mirror_prefix = f"{folder}/raw/"
        self.known_md5 = known_md5 or {}
        self.extra_mirrors = extra_mirrors
        self.downloader = downloader
        self.no_download_hint = no_download_hint
        self.install_hint = install_hint

    def split_files(self, split: str) -> list[str]:
        """The two files (images, labels) that ``split`` reads, relative to the dataset folder."""
        return [f"raw/{f}" for f in _IDX_NAMES[split]]

    def required(self, root: Path, split: str) -> list[str]:
        # torchvision's MNIST._check_exists wants the files of every split of the class
        return [rel for s in self.splits for rel in self.split_files(s)]

    def mirror_files(self, split: str, prefix: str) -> list[str]:
        return [prefix + Path(rel).name + ".gz" for rel in self.required(Path(), split)]

    def build_from_mirror(self, mirror: Path, prefix: str, staged: Path, split: str) -> None:
        for rel in self.required(Path(), split):
            src = mirror / (prefix + Path(rel).name + ".gz")
            dst = staged / rel
            _store.gunzip(src, dst)
            want = self.known_md5.get(rel)
            if want is not None and (got := _store.md5_file(dst)) != want:
                raise ChecksumError(
                    f"The mirror file {src} decompresses to data whose MD5 is {got}, not the published "
                    f"{want}; nothing was copied into the data root. Replace it with a good copy."
                )
            if (why := _store.check_idx(dst)) is not None:
                raise ChecksumError(f"The mirror file {src} does not decompress to a valid IDX file: {why}.")

    def download(self, staged: Path, split: str) -> None:
        self.tv_class(str(staged.parent), train=split == "train", download=True)
        _keep_only_idx(staged)


def _keep_only_idx(staged: Path) -> None:
    """Drop the downloaded archives from the staging folder; the data root keeps the IDX files."""
    for dirpath, _dirnames, filenames in os.walk(staged):
        for name in filenames:
            if not name.endswith("-ubyte"):
                os.unlink(Path(dirpath) / name)


def _idx_classes(ds: MNIST, name: str) -> list[str]:
    if name == "mnist":  # "0".."9" like digits, instead of torchvision's "0 - zero", ...
        return [str(k) for k in range(10)]
    return list(ds.classes)


def read_idx(src: IDXSource, ctx: Context, split: str, n: int | None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Read an MNIST-format split: ``uint8 [N, 1, 28, 28]``, ``int64 [N]``, class names."""
    ensure(src, ctx, split)
    _store.verify_files(ctx.root / src.folder, src.split_files(split), known_md5=src.known_md5)
    ds = src.tv_class(str(ctx.root), train=split == "train", download=False)
    k = take(n, len(ds.data), f"{src.name} split {split!r}")
    return ds.data[:k].unsqueeze(1).contiguous(), ds.targets[:k].long(), _idx_classes(ds, src.name)


class EMNISTSource(IDXSource):
    """EMNIST: ``<root>/EMNIST/raw/emnist-<split>-<train|test>-*-ubyte``; the split key is ``"<s>-<train|test>"``."""

    def __init__(self) -> None:
        super().__init__("emnist", "EMNIST", EMNIST, ())

    def split_files(self, split: str) -> list[str]:
        return [f"raw/emnist-{split}-images-idx3-ubyte", f"raw/emnist-{split}-labels-idx1-ubyte"]

    def required(self, root: Path, split: str) -> list[str]:
        return self.split_files(split)

    def download(self, staged: Path, split: str) -> None:
        emnist_split, part = split.rsplit("-", 1)
        EMNIST(str(staged.parent), split=emnist_split, train=part == "train", download=True)
        _keep_only_idx(staged)


def read_emnist(ctx: Context, split: str, n: int | None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Read EMNIST ``"<s>-<train|test>"``, transposed to upright like MNIST: ``uint8 [N, 1, 28, 28]``."""
    src = EMNIST_SOURCE
    ensure(src, ctx, split)
    _store.verify_files(ctx.root / src.folder, src.split_files(split))
    emnist_split, part = split.rsplit("-", 1)
    ds = EMNIST(str(ctx.root), split=emnist_split, train=part == "train", download=False)
    k = take(n, len(ds.data), f"emnist split {split!r}")
    # the EMNIST files store each image transposed; flip back so digits look like MNIST's
    x = ds.data[:k].transpose(1, 2).unsqueeze(1).contiguous()
    return x, ds.targets[:k].long(), list(ds.classes)


MNIST_SOURCE = IDXSource(
    "mnist",
    "MNIST",
    MNIST,
    ("train", "test"),
    known_md5={  # published MD5s of the decompressed files
        "raw/train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "raw/train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "raw/t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "raw/t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
)
FASHION_SOURCE = IDXSource(
    "fashion_mnist",
    "FashionMNIST",
    FashionMNIST,
    ("train", "test"),
    # MD5s of the decompressed upstream files (zalandoresearch/fashion-mnist; the same values are
    # pinned by other public loaders, and Debian's package decompresses to them)
    known_md5={
        "raw/train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "raw/train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "raw/t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "raw/t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
    extra_mirrors=((DEBIAN_FASHION_MNIST, ""),),
    install_hint=(
        "on Debian / Ubuntu install the package dataset-fashion-mnist (apt-get install dataset-fashion-mnist), "
        f"whose files in {DEBIAN_FASHION_MNIST} ualib decompresses into the data root"
    ),
)
NOTMNIST_SOURCE = IDXSource(
    "notmnist",
    "NotMNIST",
    NotMNIST,
    ("test",),
    downloader="",
    no_download_hint=(
        "torchvision has no notMNIST download: use the offline mirror, or (with internet) download "
        "notMNIST_small (Y. Bulatov, 2011) and convert it to the MNIST IDX files "
        "t10k-images-idx3-ubyte / t10k-labels-idx1-ubyte."
    ),
)
EMNIST_SOURCE = EMNISTSource()


# --------------------------------------------------------------------------------------------------
# Omniglot
# --------------------------------------------------------------------------------------------------

_OMNIGLOT_TARGETS = {"background": "images_background", "evaluation": "images_evaluation"}


class OmniglotSource(Source):
    """``<root>/omniglot-py/images_{background,evaluation}/<Alphabet>/characterNN/*.png`` (unzipped)."""

    name = "omniglot"
    folder = "omniglot-py"
    mirror_prefix = "omniglot-py/"

    def required(self, root: Path, split: str) -> list[str]:
        target = _OMNIGLOT_TARGETS[split] + "/"
        return [rel for rel in _store.read_manifest(root / self.folder) if rel.startswith(target)]

    def present(self, root: Path, split: str) -> bool:
        if not (root / self.folder / _OMNIGLOT_TARGETS[split]).is_dir():
            return False
        return super().present(root, split)

    def expected(self, root: Path, split: str) -> str:
        t = _OMNIGLOT_TARGETS[split]
        return f"{self.folder}/{t}/<Alphabet>/characterNN/*.png (the unzipped {t}.zip)"

    def mirror_files(self, split: str, prefix: str) -> list[str]:
        return [f"{prefix}{_OMNIGLOT_TARGETS[split]}.zip"]

    def build_from_mirror(self, mirror: Path, prefix: str, staged: Path, split: str) -> None:
        archive = mirror / self.mirror_files(split, prefix)[0]
        _store.extract_zip(archive, staged)
        if not (staged / _OMNIGLOT_TARGETS[split]).is_dir():
            raise ChecksumError(f"The mirror file {archive} has no folder {_OMNIGLOT_TARGETS[split]}/")

    def download(self, staged: Path, split: str) -> None:
        Omniglot(str(staged.parent), background=split == "background", download=True)
        for zipped in staged.glob("*.zip"):
            zipped.unlink()


def read_omniglot(ctx: Context, split: str, n: int | None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Read Omniglot: ``uint8 [N, 1, 105, 105]`` (white 255, strokes 0), character labels, character names.

    Only the first ``n`` images (sorted by alphabet, character, file name) are decoded and
    verified; the folder listing and file sizes are compared with the manifest every time, so a
    missing, extra or truncated PNG is caught.
    """
    src = OMNIGLOT_SOURCE
    ensure(src, ctx, split)
    folder = ctx.root / src.folder
    mpath = folder / _store.MANIFEST
    target = _OMNIGLOT_TARGETS[split]
    records = {rel: rec for rel, rec in _store.read_manifest(folder).items() if rel.startswith(target + "/")}
    if records:
        actual = relpaths_under(folder, target, ".png")
        for rel in sorted(actual):
            rec = records.get(rel)
            if rec is None:
                raise ChecksumError(
                    f"{folder / rel} is not one of the files ualib extracted (it is not in {mpath}); it would "
                    "change Omniglot's class list. Move it out of the data root."
                )
            if actual[rel] != rec["size"]:
                what = f"it has {actual[rel]} bytes, but ualib recorded {rec['size']} in {mpath}"
                raise _store.corrupt(folder / rel, what, mpath)

    def loader(path: str) -> np.ndarray:
        p = Path(path)
        data = p.read_bytes()
        rec = records.get(p.relative_to(folder).as_posix())
        if rec is not None and (digest := hashlib.sha256(data).hexdigest()) != rec["sha256"]:
            raise _store.corrupt(p, f"its SHA-256 is {digest}, but ualib recorded {rec['sha256']} in {mpath}", mpath)
        try:
            with Image.open(io.BytesIO(data)) as im:
                return np.asarray(im.convert("L"))
        except (OSError, SyntaxError, ValueError) as err:
            raise _store.corrupt(p, f"it cannot be decoded as a PNG image ({err})") from err

    ds = OmniglotFolder(str(ctx.root), background=split == "background", loader=loader)
    k = take(n, len(ds), f"omniglot split {split!r}")
    images = [ds[i] for i in range(k)]
    x = torch.from_numpy(np.stack([im for im, _ in images])) if k else torch.empty(0, 105, 105, dtype=torch.uint8)
    y = torch.tensor([label for _, label in images], dtype=torch.int64)
    return x.unsqueeze(1), y, ds.characters


OMNIGLOT_SOURCE = OmniglotSource()


# --------------------------------------------------------------------------------------------------
# CIFAR-10: the full set (data root / download) or the mirror's subset
# --------------------------------------------------------------------------------------------------


class CifarFullSource(Source):
    """Full CIFAR-10, ``<root>/cifar-10-batches-py`` (torchvision's layout)."""

    name = "cifar10"
    folder = "cifar-10-batches-py"
    known_md5 = {name: md5 for name, md5 in CIFAR10.train_list + CIFAR10.test_list} | {
        CIFAR10.meta["filename"]: CIFAR10.meta["md5"]
    }

    def required(self, root: Path, split: str) -> list[str]:
        return [name for name, _ in CIFAR10.train_list + CIFAR10.test_list] + [CIFAR10.meta["filename"]]

    def mirror_files(self, split: str, prefix: str) -> list[str]:
        return [prefix + CIFAR10.filename]

    def build_from_mirror(self, mirror: Path, prefix: str, staged: Path, split: str) -> None:
        _store.extract_tar(mirror / (prefix + CIFAR10.filename), staged.parent)

    def download(self, staged: Path, split: str) -> None:
        CIFAR10(str(staged.parent), train=True, download=True)


class CifarSubsetSource(Source):
    """The offline mirror's CIFAR-10 subset, ``<root>/cifar-10-subset-batches-py``."""

    name = "cifar10"
    folder = "cifar-10-subset-batches-py"
    downloader = ""
    no_download_hint = (
        "the subset is not downloadable (it exists only in the offline mirror); the full CIFAR-10 is "
        "downloaded by torchvision when there is internet."
    )

    def required(self, root: Path, split: str) -> list[str]:
        return ["data_batch_1", "test_batch", "batches.meta"]

    def mirror_files(self, split: str, prefix: str) -> list[str]:
        return [prefix + "cifar-10-subset-batches-py.tar.gz"]

    def build_from_mirror(self, mirror: Path, prefix: str, staged: Path, split: str) -> None:
        _store.extract_tar(mirror / self.mirror_files(split, prefix)[0], staged.parent)


class _CifarEither(Source):
    """Only for the error message when neither the full set nor the subset is available."""

    name = "cifar10"
    folder = "cifar-10-batches-py"

    def expected(self, root: Path, split: str) -> str:
        full = ", ".join(f"{CIFAR_FULL.folder}/{r}" for r in CIFAR_FULL.required(root, split))
        sub = ", ".join(f"{CIFAR_SUBSET.folder}/{r}" for r in CIFAR_SUBSET.required(root, split))
        return f"the full CIFAR-10 ({full}) or the mirror's subset ({sub})"

    def mirror_files(self, split: str, prefix: str) -> list[str]:
        return CIFAR_SUBSET.mirror_files(split, prefix)


CIFAR_FULL = CifarFullSource()
CIFAR_SUBSET = CifarSubsetSource()


def _read_cifar(
    src: Source, cls: type[CIFAR10], ctx: Context, split: str, n: int | None
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    batches = cls.train_list if split == "train" else cls.test_list
    files = [name for name, _ in batches] + [cls.meta["filename"]]
    _store.verify_files(ctx.root / src.folder, files, known_md5=src.known_md5)
    ds = cls(str(ctx.root), train=split == "train", download=False)
    k = take(n, len(ds.data), f"cifar10 split {split!r}")
    x = torch.from_numpy(np.ascontiguousarray(ds.data[:k])).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(ds.targets[:k], dtype=torch.int64), list(ds.classes)


def read_cifar10(ctx: Context, split: str, n: int | None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Read CIFAR-10: ``uint8 [N, 3, 32, 32]``, labels, the 10 class names.

    The full set is used when it is in the data root. A request that fits in the mirror's subset
    (``n`` at most 4,000 train / 1,000 test) is served from the subset (the same images: the subset is
    a prefix of ``data_batch_1`` / ``test_batch``), otherwise the full set is downloaded. If it cannot
    be, the subset is returned with a warning (``n=None``) or a :class:`DatasetNotFoundError` is
    raised (``n`` larger than the subset).
    """
    if CIFAR_FULL.present(ctx.root, split):
        return _read_cifar(CIFAR_FULL, CIFAR10Verified, ctx, split, n)
    limit = CIFAR_SUBSET_SIZES[split]
    if n is not None and n <= limit:
        try:
            ensure(CIFAR_SUBSET, ctx, split, allow_download=False)
            return _read_cifar(CIFAR_SUBSET, CIFAR10Subset, ctx, split, n)
        except DatasetNotFoundError:
            pass
    try:
        ensure(CIFAR_FULL, ctx, split)
        return _read_cifar(CIFAR_FULL, CIFAR10Verified, ctx, split, n)
    except DatasetNotFoundError as err:
        full_error = err
    cause = full_error.__cause__
    try:
        ensure(CIFAR_SUBSET, ctx, split, allow_download=False)
    except DatasetNotFoundError:
        raise not_found(_CifarEither(), ctx, split, download_error=cause) from cause
    if n is not None:
        raise not_found(
            CIFAR_FULL,
            ctx,
            split,
            download_error=cause,
            extra=f"n={n} needs the full CIFAR-10; only the mirror's subset ({limit} images) is available.",
        ) from cause
    warnings.warn(
        f"The full CIFAR-10 is not in the data root {ctx.root} and could not be downloaded; returning the "
        f"offline mirror's subset (the first {limit} images of "
        f"{'data_batch_1' if split == 'train' else 'test_batch'}). Put cifar-10-batches-py into the data "
        "root, or allow the download, for the full set.",
        UserWarning,
        stacklevel=3,
    )
    return _read_cifar(CIFAR_SUBSET, CIFAR10Subset, ctx, split, n)


# --------------------------------------------------------------------------------------------------
# FER2013
# --------------------------------------------------------------------------------------------------

_FER_FILES = ("fer2013.csv", "icml_face_data.csv")
_FER_URL = "https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-recognition-challenge"


class FER2013Source(Source):
    """``<root>/fer2013/{fer2013.csv | icml_face_data.csv | train.csv, test.csv}`` (torchvision's formats)."""

    name = "fer2013"
    folder = "fer2013"
    mirror_prefix = "fer2013/"
    downloader = ""
    no_download_hint = (
        f"torchvision cannot download FER2013 (Kaggle needs a login): on a machine with internet, download "
        f"fer2013.csv from {_FER_URL} and put it into the data root's fer2013/ folder."
    )

    def data_file(self, root: Path, split: str) -> str:
        """The file torchvision's ``FER2013`` reads for ``split`` (same precedence)."""
        for name in _FER_FILES:
            if (root / self.folder / name).is_file():
                return name
        return f"{split}.csv"

    def required(self, root: Path, split: str) -> list[str]:
        return [self.data_file(root, split)]

    def expected(self, root: Path, split: str) -> str:
        return "fer2013/fer2013.csv (or fer2013/icml_face_data.csv, or fer2013/train.csv and fer2013/test.csv)"

    def mirror_files(self, split: str, prefix: str) -> list[str]:
        return [prefix + "fer2013.csv"]

    def build_from_mirror(self, mirror: Path, prefix: str, staged: Path, split: str) -> None:
        shutil.copyfile(mirror / (prefix + "fer2013.csv"), staged / "fer2013.csv")


FER_SOURCE = FER2013Source()


def read_fer2013(ctx: Context, split: str, n: int | None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Read FER2013 with torchvision: ``uint8 [N, 1, 48, 48]``, emotion labels 0-6, the 7 emotion names."""
    src = FER_SOURCE
    ensure(src, ctx, split)
    name = src.data_file(ctx.root, split)
    path = ctx.root / src.folder / name
    _store.verify_files(ctx.root / src.folder, [name])
    try:
        ds = FER2013Any(str(ctx.root), split=split)
    except (KeyError, ValueError, RuntimeError) as err:
        raise ValueError(f"{path} is not a FER2013 CSV in torchvision's format ({type(err).__name__}: {err})") from err
    k = take(n, len(ds), f"fer2013 split {split!r}")
    samples = [ds[i] for i in range(k)]
    if any(label is None for _, label in samples):
        raise ValueError(
            f"{path} has no labels for the test split; put fer2013.csv or icml_face_data.csv (which label the "
            f"PublicTest and PrivateTest rows) into {ctx.root / src.folder}"
        )
    if k:
        x = torch.from_numpy(np.stack([np.asarray(im) for im, _ in samples]))
    else:
        x = torch.empty(0, 48, 48, dtype=torch.uint8)
    y = torch.tensor([int(label) for _, label in samples], dtype=torch.int64)
    return x.unsqueeze(1), y, list(FER_CLASSES)

"""scikit-learn datasets: the bundled ``digits`` images and the California Housing table."""

from __future__ import annotations

import tarfile
from pathlib import Path

import joblib
import numpy as np
import torch
from sklearn.datasets import fetch_california_housing, load_digits
from sklearn.model_selection import train_test_split

from ualib.data import _store
from ualib.data._resolve import Context, Source, ensure
from ualib.data._transforms import take

__all__ = [
    "CaliforniaSource",
    "CALIFORNIA_SOURCE",
    "CALIFORNIA_FEATURES",
    "CALIFORNIA_ARCHIVE_MEMBER",
    "build_california_cache",
    "read_california",
    "read_digits",
    "split_indices",
]

CALIFORNIA_FEATURES = ["MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude"]
CALIFORNIA_ARCHIVE_MEMBER = "CaliforniaHousing/cal_housing.data"
#: scikit-learn's reordering of the StatLib columns (longitude, latitude, housing_median_age,
#: total_rooms, total_bedrooms, population, households, median_income, median_house_value) into
#: (target, MedInc, HouseAge, total_rooms, total_bedrooms, population, households, Latitude, Longitude)
_CALIFORNIA_COLUMNS = [8, 7, 2, 3, 4, 5, 6, 1, 0]


def _california_cache_name() -> str:
    """The cache file name ``fetch_california_housing`` uses (``cal_housing_py3.pkz``)."""
    try:
        from sklearn.datasets._base import _pkl_filepath

        return Path(_pkl_filepath("", "cal_housing.pkz")).name
    except ImportError:  # pragma: no cover - private helper moved
        return "cal_housing_py3.pkz"


def split_indices(
    total: int, split: str, test_size: float, stratify: np.ndarray | None = None
) -> np.ndarray:
    """Row indices of ``split`` ("all", "train", "test") of a deterministic ``random_state=0`` split.

    Equal to ``train_test_split(X, y, test_size=test_size, stratify=stratify, random_state=0)``: the
    permutation depends only on the number of rows (and the strata), not on the data.
    """
    index = np.arange(total)
    if split == "all":
        return index
    train, test = train_test_split(index, test_size=test_size, stratify=stratify, random_state=0)
    return train if split == "train" else test


def build_california_cache(archive: Path, dst: Path) -> None:
    """Write scikit-learn's California Housing cache file from the StatLib archive, as sklearn does.

    Same steps as ``sklearn.datasets.fetch_california_housing`` on a cache miss: ``np.loadtxt`` of
    ``CaliforniaHousing/cal_housing.data``, reorder the columns to (target, features...), and
    ``joblib.dump(..., compress=6)``. The derived features (rooms, bedrooms and occupants per
    household) and the target scaling are applied by ``fetch_california_housing`` at load time.
    """
    with tarfile.open(archive, mode="r:gz") as f:
        member = f.extractfile(CALIFORNIA_ARCHIVE_MEMBER)
        if member is None:
            raise ValueError(f"{archive} has no file {CALIFORNIA_ARCHIVE_MEMBER}")
        table = np.loadtxt(member, delimiter=",")
    if table.ndim != 2 or table.shape[1] != 9:
        raise ValueError(f"{archive}: expected 9 comma-separated columns, got shape {table.shape}")
    joblib.dump(table[:, _CALIFORNIA_COLUMNS], dst, compress=6)


class CaliforniaSource(Source):
    """``<root>/california_housing/cal_housing_py3.pkz``: scikit-learn's cache (``data_home``)."""

    name = "california_housing"
    folder = "california_housing"
    mirror_prefix = "california_housing/"
    downloader = "scikit-learn"

    def required(self, root: Path, split: str) -> list[str]:
        return [_california_cache_name()]

    def mirror_files(self, split: str, prefix: str) -> list[str]:
        return [prefix + "cal_housing.tgz"]

    def build_from_mirror(self, mirror: Path, prefix: str, staged: Path, split: str) -> None:
        build_california_cache(mirror / (prefix + "cal_housing.tgz"), staged / _california_cache_name())

    def download(self, staged: Path, split: str) -> None:
        fetch_california_housing(data_home=str(staged), download_if_missing=True)
        for extra in staged.iterdir():  # keep only the cache file
            if extra.name != _california_cache_name() and extra.is_file():
                extra.unlink()


CALIFORNIA_SOURCE = CaliforniaSource()


def read_california(ctx: Context, split: str, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """California Housing rows ``float32 [N, 8]`` and median house values ``float32 [N]`` (100,000 USD)."""
    src = CALIFORNIA_SOURCE
    ensure(src, ctx, split)
    folder = ctx.root / src.folder
    _store.verify_files(folder, src.required(ctx.root, split))
    bunch = fetch_california_housing(data_home=str(folder), download_if_missing=False)
    index = split_indices(bunch.data.shape[0], split, 0.2)
    k = take(n, len(index), f"california_housing split {split!r}")
    index = index[:k]
    x = torch.from_numpy(np.ascontiguousarray(bunch.data[index], dtype=np.float32))
    y = torch.from_numpy(np.ascontiguousarray(bunch.target[index], dtype=np.float32))
    return x, y


def read_digits(split: str, n: int | None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """scikit-learn's bundled digits: ``float32 [N, 1, 8, 8]`` in ``[0, 1]`` (values / 16), labels 0-9."""
    bunch = load_digits()
    y_all = np.asarray(bunch.target)
    index = split_indices(len(y_all), split, 0.25, stratify=y_all)
    k = take(n, len(index), f"digits split {split!r}")
    index = index[:k]
    x = torch.from_numpy(np.ascontiguousarray(bunch.images[index] / 16.0, dtype=np.float32)).unsqueeze(1)
    y = torch.from_numpy(y_all[index].astype(np.int64))
    return x, y, [str(c) for c in bunch.target_names]

"""The value returned by :func:`ualib.data.load` and the two errors it raises."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Dataset", "DatasetNotFoundError", "ChecksumError"]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is neither in the data root, nor in an offline mirror, nor downloadable.

    The message names the data-root path that was searched and the files expected there, how to point
    ``UALIB_DATA_MIRROR`` at an offline mirror, and the download (with its error, if one was tried).
    """


class ChecksumError(RuntimeError):
    """A file's content differs from its recorded checksum.

    Raised for a mirror file whose SHA-256 differs from the mirror's ``SHA256SUMS`` (nothing is copied
    then), and for a file in the data root whose SHA-256 differs from the manifest that ``ualib`` wrote
    when it extracted the file (or from a published checksum). ``ualib`` never deletes or overwrites
    files: the message names the file and says how to fix it.
    """


@dataclass(repr=False)
class Dataset:
    """An in-memory dataset split.

    Attributes
    ----------
    name
        Dataset name, one of :func:`ualib.data.available`.
    split
        Split name, e.g. ``"train"``, ``"test"``, ``"background"``, ``"digits-train"``.
    x
        Inputs. Images: ``float32`` tensor ``[N, C, H, W]`` with values in ``[0, 1]``.
        Tables: ``float32`` tensor ``[N, F]``.
    y
        Targets ``[N]``: ``int64`` class indices into ``classes`` for classification, ``float32``
        for regression.
    classes
        Class names, ``classes[k]`` is the name of label ``k`` (``[]`` for regression).
    features
        Feature (column) names of a table, ``None`` for images.
    """

    name: str
    split: str
    x: torch.Tensor
    y: torch.Tensor
    classes: list[str]
    features: list[str] | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __repr__(self) -> str:
        def shape(t: torch.Tensor) -> str:
            return f"{str(t.dtype).removeprefix('torch.')}{list(t.shape)}"

        extra = f", features={len(self.features)}" if self.features is not None else ""
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, x={shape(self.x)}, y={shape(self.y)}, "
            f"classes={len(self.classes)}{extra})"
        )

"""The FER2013 loader on small files that the tests write in the dataset's CSV formats.

FER2013 / FER+ is not in the offline mirror (Kaggle needs a login), so these files stand in for it:
48x48 grayscale faces as space-separated pixel strings, emotion labels 0-6 and the ``Usage`` column
that splits ``Training`` from ``PublicTest`` / ``PrivateTest``.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from ualib.data import DatasetNotFoundError, load

EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def _rows(seed: int, usage: list[str]) -> list[tuple[int, np.ndarray, str]]:
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(0, 7)), rng.integers(0, 256, size=(48, 48)), u) for u in usage]


def _pixels(img: np.ndarray) -> str:
    return " ".join(str(int(v)) for v in img.ravel())


def _write_fer(path: Path, rows: list[tuple[int, np.ndarray, str]]) -> None:
    """Kaggle's fer2013.csv: header ``emotion,pixels,Usage``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        w.writerows((e, _pixels(img), u) for e, img, u in rows)


def _write_icml(path: Path, rows: list[tuple[int, np.ndarray, str]]) -> None:
    """The ICML 2013 workshop's icml_face_data.csv: header ``emotion, Usage, pixels`` (with spaces)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        f.write("emotion, Usage, pixels\n")
        for e, img, u in rows:
            f.write(f"{e},{u},{_pixels(img)}\n")


USAGE = ["Training", "PublicTest", "Training", "PrivateTest", "Training", "Training", "PublicTest"]


@pytest.mark.parametrize("writer", [_write_fer, _write_icml], ids=["fer2013.csv", "icml_face_data.csv"])
def test_fer2013_csv_formats(tmp_path: Path, writer) -> None:
    rows = _rows(0, USAGE)
    name = "fer2013.csv" if writer is _write_fer else "icml_face_data.csv"
    writer(tmp_path / "fer2013" / name, rows)
    train = load("fer2013", "train", root=tmp_path, download=False)
    test = load("fer2013", "test", root=tmp_path, download=False)
    tr = [r for r in rows if r[2] == "Training"]
    te = [r for r in rows if r[2] != "Training"]  # PublicTest and PrivateTest, in file order
    assert train.x.shape == (len(tr), 1, 48, 48) and test.x.shape == (len(te), 1, 48, 48)
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    np.testing.assert_allclose(train.x[:, 0].numpy(), np.stack([r[1] for r in tr]) / 255.0, atol=1e-7)
    np.testing.assert_allclose(test.x[:, 0].numpy(), np.stack([r[1] for r in te]) / 255.0, atol=1e-7)
    assert train.y.tolist() == [r[0] for r in tr] and test.y.tolist() == [r[0] for r in te]
    assert train.classes == EMOTIONS
    # n and size: the first n faces, resized
    small = load("fer2013", "test", root=tmp_path, n=2, size=24, download=False)
    assert small.x.shape == (2, 1, 24, 24)
    assert torch.allclose(small.x.mean((2, 3)), test.x[:2].mean((2, 3)), atol=2e-3)


def test_fer2013_from_a_mirror(tmp_path: Path) -> None:
    """A mirror holding fer2013/fer2013.csv: the loader verifies it, copies it into the data root, reads it."""
    rows = _rows(1, USAGE)
    mirror = tmp_path / "mirror"
    _write_fer(mirror / "fer2013" / "fer2013.csv", rows)
    digest = hashlib.sha256((mirror / "fer2013" / "fer2013.csv").read_bytes()).hexdigest()
    (mirror / "SHA256SUMS").write_text(f"{digest}  fer2013/fer2013.csv\n")
    root = tmp_path / "root"
    train = load("fer2013", "train", root=root, mirror=mirror, download=False)
    assert (root / "fer2013" / "fer2013.csv").is_file()
    assert train.y.tolist() == [r[0] for r in rows if r[2] == "Training"]
    # a second load reads the data root's copy, which now has a manifest entry
    again = load("fer2013", "train", root=root, download=False)
    assert torch.equal(again.x, train.x)


def test_fer2013_missing_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="fer2013"):
        load("fer2013", "train", root=tmp_path, download=False)


def test_fer2013_malformed_row(tmp_path: Path) -> None:
    folder = tmp_path / "fer2013"
    folder.mkdir()
    (folder / "fer2013.csv").write_text("emotion,pixels,Usage\n3,1 2 3,Training\n")  # not 48x48 pixels
    with pytest.raises(ValueError, match="FER2013"):
        load("fer2013", "train", root=tmp_path, download=False)

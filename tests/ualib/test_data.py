"""Tests of ``ualib.data``: real datasets from the offline mirror, integrity, resolution, transforms.

The mirror is ``UALIB_DATA_MIRROR`` or ``<repo>/../shared/data``. Without it these tests skip, except
in CI (``CI=true``), where they fail. Every test uses temporary data roots; nothing is written into the
mirror or into the repository's ``data/`` folder.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import shutil
import tarfile
import threading
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import prerequisite_missing
from PIL import Image

import ualib.data as data
from ualib.data import ChecksumError, Dataset, DatasetNotFoundError, available, data_root, load

REPO = Path(__file__).resolve().parents[2]
MANIFEST = ".ualib-manifest.json"
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


# --------------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root shared by the session, so each mirror dataset is extracted once."""
    return tmp_path_factory.mktemp("data-root")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No downloads, no implicit mirror, and a default data root that is never the repository's."""
    monkeypatch.setenv("UALIB_OFFLINE", "1")
    monkeypatch.delenv("UALIB_DATA_MIRROR", raising=False)
    monkeypatch.setenv("UALIB_DATA", str(tmp_path / "default-root"))


def _idx(path: Path) -> np.ndarray:
    """Independent IDX reader (gzip or plain) for uint8 files."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    nd = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def _write_idx(path: Path, array: np.ndarray, *, compress: bool = False) -> None:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if compress else payload)


def _listing(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _flip_byte(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def _partial_mirror(mirror: Path, dst: Path, files: list[str]) -> Path:
    for rel in files:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mirror / rel, dst / rel)
    shutil.copyfile(mirror / "SHA256SUMS", dst / "SHA256SUMS")
    return dst


MNIST_GZ = [f"MNIST/raw/{name}.gz" for name in MNIST_MD5]
NOTMNIST_GZ = ["NotMNIST/raw/t10k-images-idx3-ubyte.gz", "NotMNIST/raw/t10k-labels-idx1-ubyte.gz"]


# --------------------------------------------------------------------------------------------------
# bundled and mirror datasets
# --------------------------------------------------------------------------------------------------


def test_available_names() -> None:
    assert set(available()) == {
        "digits",
        "mnist",
        "fashion_mnist",
        "emnist",
        "notmnist",
        "omniglot",
        "cifar10",
        "fer2013",
        "california_housing",
    }


def test_digits_always_loads_and_matches_sklearn() -> None:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    full = load("digits", "all")
    assert full.x.shape == (1797, 1, 8, 8) and full.x.dtype == torch.float32
    assert full.y.dtype == torch.int64 and full.classes == [str(k) for k in range(10)]
    np.testing.assert_array_equal(full.x[:, 0].numpy() * 16, bunch.images.astype(np.float32))
    np.testing.assert_array_equal(full.y.numpy(), bunch.target)
    train, test = load("digits", "train"), load("digits", "test")
    assert (len(train), len(test)) == (1347, 450)
    assert 0.0 <= float(train.x.min()) and float(train.x.max()) <= 1.0
    # stratified: every class keeps its share within one example
    share = np.bincount(bunch.target) * 0.25
    assert np.all(np.abs(np.bincount(test.y.numpy(), minlength=10) - share) <= 1)
    # train and test partition "all"
    rows = lambda ds: sorted(map(bytes, ds.x.reshape(len(ds), -1).numpy()))  # noqa: E731
    assert sorted(rows(train) + rows(test)) == rows(full)


def test_digits_n_size_and_determinism() -> None:
    a, b = load("digits", "train"), load("digits", "train")
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    first = load("digits", "train", n=10)
    assert torch.equal(first.x, a.x[:10]) and torch.equal(first.y, a.y[:10])
    big = load("digits", "train", n=5, size=16)
    assert big.x.shape == (5, 1, 16, 16)
    # reference: PIL's antialiased bilinear resize (torch's antialias=True mirrors it)
    for img, out in zip(a.x[:5, 0].numpy(), big.x[:, 0].numpy()):
        ref = np.asarray(Image.fromarray(img, mode="F").resize((16, 16), Image.BILINEAR))
        np.testing.assert_allclose(out, ref, atol=1e-5)
    small = load("digits", "train", n=5, size=3)
    for img, out in zip(a.x[:5, 0].numpy(), small.x[:, 0].numpy()):
        ref = np.asarray(Image.fromarray(img, mode="F").resize((3, 3), Image.BILINEAR))
        np.testing.assert_allclose(out, ref, atol=1e-5)
    assert torch.equal(load("digits", "train", n=5, grayscale=True).x, a.x[:5])
    assert "float32[1347, 1, 8, 8]" in repr(a)


@pytest.mark.data
def test_mnist(mirror: Path, root: Path) -> None:
    train = load("mnist", "train", root=root, mirror=mirror)
    test = load("mnist", "test", root=root, mirror=mirror)
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert float(train.x.min()) == 0.0 and float(train.x.max()) == 1.0
    assert set(train.y.tolist()) == set(range(10)) == set(test.y.tolist())
    assert train.classes == [str(k) for k in range(10)]
    # independent reading of the mirror's gzip files
    images = _idx(mirror / "MNIST/raw/t10k-images-idx3-ubyte.gz")
    labels = _idx(mirror / "MNIST/raw/t10k-labels-idx1-ubyte.gz")
    np.testing.assert_array_equal(np.rint(test.x[:100, 0].numpy() * 255).astype(np.uint8), images[:100])
    np.testing.assert_array_equal(test.y.numpy(), labels)
    # decompressed files carry the published MD5s, and the manifest their SHA-256
    manifest = json.loads((root / "MNIST" / MANIFEST).read_text())["files"]
    for name, md5 in MNIST_MD5.items():
        path = root / "MNIST/raw" / name
        assert hashlib.md5(path.read_bytes()).hexdigest() == md5
        assert manifest[f"raw/{name}"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    again = load("mnist", "test", root=root, mirror=mirror, n=500)
    assert torch.equal(again.x, test.x[:500]) and torch.equal(again.y, test.y[:500])
    assert not list(root.glob(".ualib-tmp-*"))


@pytest.mark.data
def test_mnist_loads_from_the_data_root_without_mirror(mirror: Path, root: Path) -> None:
    load("mnist", "test", root=root, mirror=mirror, n=1)  # populated
    ds = load("mnist", "test", root=root, n=3)  # no mirror, offline: the data root alone
    assert ds.x.shape == (3, 1, 28, 28)


@pytest.mark.data
def test_notmnist(mirror: Path, root: Path) -> None:
    ds = load("notmnist", "test", root=root, mirror=mirror)
    assert ds.x.shape == (10000, 1, 28, 28)
    assert ds.classes == list("ABCDEFGHIJ")
    np.testing.assert_array_equal(np.bincount(ds.y.numpy()), np.full(10, 1000))
    assert 0.0 <= float(ds.x.min()) and float(ds.x.max()) <= 1.0
    with pytest.raises(ValueError, match="only the test split"):
        load("notmnist", "train", root=root, mirror=mirror)


def _omniglot_characters(mirror: Path, target: str) -> list[str]:
    with zipfile.ZipFile(mirror / f"omniglot-py/{target}.zip") as z:
        names = [n for n in z.namelist() if n.endswith(".png")]
    return sorted({"/".join(n.split("/")[1:3]) for n in names})


@pytest.mark.parametrize(("split", "count", "total"), [("background", 964, 19280), ("evaluation", 659, 13180)])
@pytest.mark.slow
@pytest.mark.data
def test_omniglot(mirror: Path, root: Path, split: str, count: int, total: int) -> None:
    ds = load("omniglot", split, n=45, root=root, mirror=mirror)
    characters = _omniglot_characters(mirror, f"images_{split}")
    assert len(characters) == count
    assert ds.classes == characters
    assert ds.x.shape == (45, 1, 105, 105) and ds.x.dtype == torch.float32
    assert set(torch.unique(ds.x).tolist()) <= {0.0, 1.0}
    assert float(ds.x.mean()) > 0.8  # white background, dark strokes
    assert ds.y.tolist() == [0] * 20 + [1] * 20 + [2] * 5
    # the first image is the first file of the first character, decoded independently
    with zipfile.ZipFile(mirror / f"omniglot-py/images_{split}.zip") as z:
        first = sorted(n for n in z.namelist() if n.startswith(f"images_{split}/{characters[0]}/"))[0]
        ref = np.asarray(Image.open(io.BytesIO(z.read(first))).convert("L"), dtype=np.float32) / 255
    np.testing.assert_array_equal(ds.x[0, 0].numpy(), ref)
    with pytest.raises(ValueError, match=f"exceeds the {total} examples"):
        load("omniglot", split, n=total + 1, root=root)
    alias = load("omniglot", {"background": "train", "evaluation": "test"}[split], n=2, root=root)
    assert alias.split == split and torch.equal(alias.x, ds.x[:2])


@pytest.mark.data
def test_cifar10_subset(mirror: Path, root: Path) -> None:
    with pytest.warns(UserWarning, match="subset"):
        train = load("cifar10", "train", root=root, mirror=mirror)
    with pytest.warns(UserWarning, match="subset"):
        test = load("cifar10", "test", root=root, mirror=mirror)
    assert train.x.shape == (4000, 3, 32, 32) and test.x.shape == (1000, 3, 32, 32)
    assert set(train.y.tolist()) == set(range(10))
    assert train.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert 0.0 <= float(train.x.min()) and float(train.x.max()) <= 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # n within the subset: no warning
        few = load("cifar10", "train", n=20, root=root, mirror=mirror)
    assert torch.equal(few.x, train.x[:20]) and torch.equal(few.y, train.y[:20])
    gray = load("cifar10", "test", n=8, grayscale=True, root=root)
    ref = 0.299 * test.x[:8, 0] + 0.587 * test.x[:8, 1] + 0.114 * test.x[:8, 2]
    assert gray.x.shape == (8, 1, 32, 32)
    torch.testing.assert_close(gray.x[:, 0], ref)
    with pytest.raises(DatasetNotFoundError, match="needs the full CIFAR-10"):
        load("cifar10", "test", n=1001, root=root)


@pytest.mark.data
def test_cifar10_prefers_full_set(mirror: Path, root: Path, tmp_path: Path) -> None:
    """A full ``cifar-10-batches-py`` in the data root is used, and its first n equal the subset's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        subset = load("cifar10", "train", root=root, mirror=mirror)
    src = root / "cifar-10-subset-batches-py"
    fake = tmp_path / "root"
    full = fake / "cifar-10-batches-py"
    full.mkdir(parents=True)
    for k in range(1, 6):  # a stand-in "full" set: five copies of the subset's batch
        shutil.copyfile(src / "data_batch_1", full / f"data_batch_{k}")
    shutil.copyfile(src / "test_batch", full / "test_batch")
    shutil.copyfile(src / "batches.meta", full / "batches.meta")
    records = {
        p.name: {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "size": p.stat().st_size} for p in full.iterdir()
    }
    (full / MANIFEST).write_text(json.dumps({"format": 1, "files": records}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load("cifar10", "train", root=fake)
        few = load("cifar10", "train", root=fake, n=50)
    assert len(ds) == 20000
    assert torch.equal(ds.x[:4000], subset.x) and torch.equal(few.x, subset.x[:50])


@pytest.mark.data
def test_california_housing(mirror: Path, root: Path) -> None:
    ds = load("california_housing", "all", root=root, mirror=mirror)
    assert ds.x.shape == (20640, 8) and ds.y.shape == (20640,)
    assert ds.x.dtype == torch.float32 and ds.y.dtype == torch.float32
    assert ds.classes == [] and ds.features == [
        "MedInc",
        "HouseAge",
        "AveRooms",
        "AveBedrms",
        "Population",
        "AveOccup",
        "Latitude",
        "Longitude",
    ]
    assert 0.14 < float(ds.y.min()) < 0.15 and float(ds.y.max()) == pytest.approx(5.00001)
    # hand computation from the raw StatLib rows: longitude, latitude, housing_median_age, total_rooms,
    # total_bedrooms, population, households, median_income, median_house_value
    with tarfile.open(mirror / "california_housing/cal_housing.tgz") as t:
        lines = t.extractfile("CaliforniaHousing/cal_housing.data").read().decode().splitlines()
    for i in (0, 1, 2, 1234, 20639):
        lon, lat, age, rooms, beds, pop, house, income, value = map(float, lines[i].split(","))
        want = [income, age, rooms / house, beds / house, pop, pop / house, lat, lon]
        np.testing.assert_allclose(ds.x[i].numpy(), np.float32(want), rtol=1e-6)
        assert float(ds.y[i]) == pytest.approx(value / 100000, rel=1e-6)
    train = load("california_housing", root=root)  # default split "train": 80 %
    test = load("california_housing", "test", root=root)
    assert (len(train), len(test)) == (16512, 4128)
    rows = lambda x: sorted(map(bytes, x.numpy()))  # noqa: E731
    assert sorted(rows(train.x) + rows(test.x)) == rows(ds.x)
    with pytest.raises(ValueError, match="table"):
        load("california_housing", "all", size=8, root=root)


# --------------------------------------------------------------------------------------------------
# integrity
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["flip", "truncate"])
@pytest.mark.data
def test_corrupted_mirror_raises_and_copies_nothing(mirror: Path, tmp_path: Path, damage: str) -> None:
    bad = _partial_mirror(mirror, tmp_path / "mirror", MNIST_GZ)
    target = bad / "MNIST/raw/train-labels-idx1-ubyte.gz"
    if damage == "flip":
        _flip_byte(target, 100)
    else:
        target.write_bytes(target.read_bytes()[:-10])
    fresh = tmp_path / "root"
    fresh.mkdir()
    (fresh / "mine.txt").write_text("user file")
    before = _listing(fresh)
    with pytest.raises(ChecksumError, match="train-labels-idx1-ubyte.gz"):
        load("mnist", "test", root=fresh, mirror=bad)
    assert _listing(fresh) == before


@pytest.mark.data
def test_mirror_file_missing_from_sha256sums(mirror: Path, tmp_path: Path) -> None:
    bad = _partial_mirror(mirror, tmp_path / "mirror", NOTMNIST_GZ)
    sums = bad / "SHA256SUMS"
    kept = [line for line in sums.read_text().splitlines() if "NotMNIST/raw/t10k-labels" not in line]
    sums.write_text("\n".join(kept) + "\n")
    with pytest.raises(ChecksumError, match="not listed"):
        load("notmnist", "test", root=tmp_path / "root", mirror=bad)
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize("damage", ["flip", "truncate"])
@pytest.mark.data
def test_corrupted_data_root_file_is_reported_and_kept(mirror: Path, root: Path, tmp_path: Path, damage: str) -> None:
    load("notmnist", "test", root=root, mirror=mirror, n=1)
    mine = tmp_path / "root"
    shutil.copytree(root / "NotMNIST", mine / "NotMNIST")
    target = mine / "NotMNIST/raw/t10k-images-idx3-ubyte"
    if damage == "flip":
        _flip_byte(target, 5000)
    else:
        target.write_bytes(target.read_bytes()[:-784])
    damaged = target.read_bytes()
    with pytest.raises(ChecksumError, match="t10k-images-idx3-ubyte") as info:
        load("notmnist", "test", root=mine, mirror=mirror)
    assert "delete" in str(info.value)
    assert target.read_bytes() == damaged  # still there, untouched
    # following the advice (delete it, re-run) restores it from the mirror
    target.unlink()
    ds = load("notmnist", "test", root=mine, mirror=mirror, n=10)
    assert ds.x.shape == (10, 1, 28, 28)
    assert (
        hashlib.sha256(target.read_bytes()).digest()
        == hashlib.sha256((root / "NotMNIST/raw/t10k-images-idx3-ubyte").read_bytes()).digest()
    )


@pytest.mark.data
def test_user_mnist_file_with_wrong_md5_is_rejected(mirror: Path, root: Path, tmp_path: Path) -> None:
    """Without a manifest, MNIST files are checked against the published MD5s."""
    load("mnist", "test", root=root, mirror=mirror, n=1)
    mine = tmp_path / "root"
    shutil.copytree(root / "MNIST/raw", mine / "MNIST/raw")  # user's own copy: no manifest
    assert load("mnist", "test", root=mine, n=2).x.shape == (2, 1, 28, 28)
    _flip_byte(mine / "MNIST/raw/t10k-labels-idx1-ubyte", 20)
    with pytest.raises(ChecksumError, match="published MD5"):
        load("mnist", "test", root=mine)


@pytest.mark.parametrize("damage", ["flip", "truncate", "extra"])
@pytest.mark.slow
@pytest.mark.data
def test_corrupted_omniglot_png(mirror: Path, root: Path, tmp_path: Path, damage: str) -> None:
    load("omniglot", "evaluation", n=1, root=root, mirror=mirror)
    mine = tmp_path / "root"
    shutil.copytree(root / "omniglot-py/images_evaluation", mine / "omniglot-py/images_evaluation")
    shutil.copyfile(root / "omniglot-py" / MANIFEST, mine / "omniglot-py" / MANIFEST)
    ds = load("omniglot", "evaluation", n=3, root=mine)
    first_char = mine / "omniglot-py/images_evaluation" / ds.classes[0]
    target = sorted(first_char.glob("*.png"))[1]
    if damage == "flip":
        _flip_byte(target, 60)
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:50])
    else:
        target = first_char / "9999_99.png"
        shutil.copyfile(sorted(first_char.glob("*.png"))[0], target)
    with pytest.raises(ChecksumError, match=target.name):
        load("omniglot", "evaluation", n=3, root=mine)
    assert target.exists()


# --------------------------------------------------------------------------------------------------
# resolution and errors
# --------------------------------------------------------------------------------------------------


def _assert_three_options(message: str, root: Path, expected: str) -> None:
    assert str(root) in message and expected in message  # 1. the data root and its files
    assert "UALIB_DATA_MIRROR" in message  # 2. the mirror
    assert "internet" in message and "download" in message  # 3. the download


def test_missing_dataset_offline(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    with pytest.raises(DatasetNotFoundError) as info:
        load("mnist", "train", root=empty)
    assert isinstance(info.value, FileNotFoundError)
    _assert_three_options(str(info.value), empty, "MNIST/raw/train-images-idx3-ubyte")
    assert "UALIB_OFFLINE" in str(info.value)
    with pytest.raises(DatasetNotFoundError, match="download=False") as info:
        load("omniglot", "background", root=empty, download=False)
    _assert_three_options(str(info.value), empty, "omniglot-py/images_background")
    assert not empty.exists()


def test_missing_dataset_reports_download_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    def fail(self: object) -> None:
        raise RuntimeError("Error downloading t10k-images-idx3-ubyte.gz: no route to host")

    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "download", fail)
    monkeypatch.setattr(data._images.FASHION_SOURCE, "extra_mirrors", ())
    with pytest.raises(DatasetNotFoundError, match="no route to host") as info:
        load("fashion_mnist", "test", root=tmp_path / "r", download=True)
    _assert_three_options(str(info.value), tmp_path / "r", "FashionMNIST/raw/t10k-images-idx3-ubyte")
    assert not list((tmp_path / "r").glob(".ualib-tmp-*"))


@pytest.mark.parametrize(
    ("name", "split", "expected"),
    [
        ("emnist", "digits-train", "EMNIST/raw/emnist-digits-train-images-idx3-ubyte"),
        ("fer2013", "train", "fer2013/fer2013.csv"),
        ("cifar10", "train", "cifar-10-subset-batches-py"),
        ("california_housing", "all", "california_housing/cal_housing_py3.pkz"),
    ],
)
def test_missing_others(tmp_path: Path, name: str, split: str, expected: str) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load(name, split, root=tmp_path)
    _assert_three_options(str(info.value), tmp_path, expected)


def test_data_root_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert data_root(tmp_path / "x") == (tmp_path / "x").resolve()
    assert data_root() == (tmp_path / "default-root").resolve()  # UALIB_DATA
    monkeypatch.delenv("UALIB_DATA")
    assert data_root() == REPO / "data"  # a source checkout


@pytest.mark.data
def test_concurrent_extraction(mirror: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "root"
    results: list[Dataset] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(load("notmnist", "test", root=fresh, mirror=mirror, n=100))
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 3
    assert all(torch.equal(r.x, results[0].x) for r in results)
    assert sorted(p.name for p in fresh.iterdir()) == [".ualib.lock", "NotMNIST"]


# --------------------------------------------------------------------------------------------------
# datasets without a mirror copy: small files in torchvision's formats
# --------------------------------------------------------------------------------------------------


def _fer_rows(rng: np.random.Generator, usage: list[str]) -> list[tuple[int, str, str, np.ndarray]]:
    rows = []
    for u in usage:
        pixels = rng.integers(0, 256, size=(48, 48))
        rows.append((int(rng.integers(0, 7)), " ".join(map(str, pixels.ravel())), u, pixels))
    return rows


def test_fer2013_from_csv(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = _fer_rows(rng, ["Training"] * 5 + ["PublicTest"] * 2 + ["PrivateTest"] * 2)
    folder = tmp_path / "fer2013"
    folder.mkdir()
    with open(folder / "fer2013.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["emotion", "pixels", "Usage"])
        writer.writerows(r[:3] for r in rows)
    train = load("fer2013", "train", root=tmp_path)
    test = load("fer2013", "test", root=tmp_path)
    assert train.x.shape == (5, 1, 48, 48) and test.x.shape == (4, 1, 48, 48)
    assert train.y.tolist() == [r[0] for r in rows[:5]] and test.y.tolist() == [r[0] for r in rows[5:]]
    np.testing.assert_allclose(train.x[:, 0].numpy(), np.stack([r[3] for r in rows[:5]]) / 255, atol=1e-7)
    assert train.classes == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert load("fer2013", "train", root=tmp_path, n=2, size=24).x.shape == (2, 1, 24, 24)


def test_fer2013_train_csv_without_test_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    folder = tmp_path / "fer2013"
    folder.mkdir()
    train_rows = _fer_rows(rng, ["Training"] * 3)
    with open(folder / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows([["emotion", "pixels"], *[(r[0], r[1]) for r in train_rows]])
    with open(folder / "test.csv", "w", newline="") as f:
        csv.writer(f).writerows([["pixels"], *[(r[1],) for r in train_rows[:2]]])
    assert load("fer2013", "train", root=tmp_path).y.tolist() == [r[0] for r in train_rows]
    with pytest.raises(ValueError, match="no labels for the test split"):
        load("fer2013", "test", root=tmp_path)


def test_emnist_from_idx_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    raw = tmp_path / "EMNIST/raw"
    images = rng.integers(0, 256, size=(7, 28, 28))
    labels = rng.integers(0, 10, size=7)
    _write_idx(raw / "emnist-digits-test-images-idx3-ubyte", images)
    _write_idx(raw / "emnist-digits-test-labels-idx1-ubyte", labels)
    ds = load("emnist", "test", emnist_split="digits", root=tmp_path)
    assert ds.split == "digits-test" and ds.x.shape == (7, 1, 28, 28)
    np.testing.assert_allclose(ds.x[:, 0].numpy(), images.transpose(0, 2, 1) / 255, atol=1e-7)
    assert ds.y.tolist() == labels.tolist() and ds.classes == [str(k) for k in range(10)]
    assert torch.equal(load("emnist", "digits-test", root=tmp_path).x, ds.x)
    with pytest.raises(DatasetNotFoundError):
        load("emnist", "digits-train", root=tmp_path)
    (raw / "emnist-digits-test-images-idx3-ubyte").write_bytes(
        (raw / "emnist-digits-test-images-idx3-ubyte").read_bytes()[:-5]
    )
    with pytest.raises(ChecksumError, match="emnist-digits-test-images-idx3-ubyte"):
        load("emnist", "digits-test", root=tmp_path)


def _debian_copy(debian: Path, rng: np.random.Generator, *, compress: bool) -> dict[str, np.ndarray]:
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(6, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, size=6),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(4, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, size=4),
    }
    for name, array in arrays.items():  # the original names, gzip data or (compress=False) raw IDX bytes
        _write_idx(debian / f"{name}.gz", array, compress=compress)
    return arrays


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw-idx-named-gz"])
def test_fashion_mnist_from_debian_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compress: bool) -> None:
    debian = tmp_path / "debian"
    arrays = _debian_copy(debian, np.random.default_rng(3), compress=compress)
    monkeypatch.setattr(data._images.FASHION_SOURCE, "extra_mirrors", ((debian, ""),))
    monkeypatch.setattr(data._images.FASHION_SOURCE, "known_md5", {})  # synthetic files, not the published ones
    ds = load("fashion_mnist", "train", root=tmp_path / "root")
    assert ds.x.shape == (6, 1, 28, 28) and ds.y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    np.testing.assert_allclose(ds.x[:, 0].numpy(), arrays["train-images-idx3-ubyte"] / 255, atol=1e-7)
    assert ds.classes[0] == "T-shirt/top"
    assert (tmp_path / "root/FashionMNIST" / MANIFEST).is_file()
    test = load("fashion_mnist", "test", root=tmp_path / "root")
    assert test.y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_fashion_mnist_debian_copy_with_wrong_md5_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    debian = tmp_path / "debian"
    _debian_copy(debian, np.random.default_rng(4), compress=True)
    monkeypatch.setattr(data._images.FASHION_SOURCE, "extra_mirrors", ((debian, ""),))
    with pytest.raises(DatasetNotFoundError) as info:
        load("fashion_mnist", "test", root=tmp_path / "root")
    message = str(info.value)
    assert f"the local copy {debian} could not be used" in message and "published" in message
    assert "apt-get install dataset-fashion-mnist" in message  # what to install
    _assert_three_options(message, tmp_path / "root", "FashionMNIST/raw/t10k-images-idx3-ubyte")
    assert not (tmp_path / "root/FashionMNIST/raw").exists()


def _debian_fashion() -> Path:
    """Debian's dataset-fashion-mnist folder: skipped where it is not installed, a failure in CI."""
    folder = data._images.DEBIAN_FASHION_MNIST
    if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        prerequisite_missing(
            f"Debian's dataset-fashion-mnist is not installed ({folder}); apt-get install dataset-fashion-mnist"
        )
    return folder


def _naive_idx(raw: bytes) -> np.ndarray:
    """Parse an IDX file by its specification alone: magic 0x0000 0x08 <ndim>, big-endian int32 sizes."""
    assert raw[:3] == b"\x00\x00\x08"
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(raw[3])]
    body = raw[4 + 4 * len(dims) :]
    assert len(body) == int(np.prod(dims))
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


@pytest.mark.data
def test_fashion_mnist_from_the_installed_debian_package(tmp_path: Path) -> None:
    folder = _debian_fashion()

    def raw(name: str) -> bytes:
        blob = (folder / f"{name}.gz").read_bytes()
        return gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob

    images, labels = _naive_idx(raw("t10k-images-idx3-ubyte")), _naive_idx(raw("t10k-labels-idx1-ubyte"))
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    ds = load("fashion_mnist", "test", root=tmp_path / "root")
    assert ds.x.shape == (10000, 1, 28, 28) and ds.x.dtype == torch.float32
    np.testing.assert_array_equal(ds.y.numpy(), labels)
    np.testing.assert_allclose(ds.x[:, 0].numpy(), images / 255.0, atol=1e-7)
    assert np.bincount(labels).tolist() == [1000] * 10  # Fashion-MNIST's test split is balanced
    assert ds.classes == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]  # fmt: skip
    train_labels = _naive_idx(raw("train-labels-idx1-ubyte"))
    np.testing.assert_array_equal(load("fashion_mnist", "train", root=tmp_path / "root", n=500).y.numpy(),
                                  train_labels[:500])  # fmt: skip
    # the data root now holds the decompressed files, each the published upstream file
    for rel, md5 in data._images.FASHION_SOURCE.known_md5.items():
        assert hashlib.md5((tmp_path / "root/FashionMNIST" / rel).read_bytes()).hexdigest() == md5


# --------------------------------------------------------------------------------------------------
# argument validation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "svhn"}, ValueError, "name must be one of"),
        ({"name": 3}, TypeError, "name must be a str"),
        ({"name": "mnist", "split": "val"}, ValueError, "split for 'mnist'"),
        ({"name": "digits", "n": 0}, ValueError, "n must be a positive integer"),
        ({"name": "digits", "n": 2.0}, TypeError, "n must be a positive int"),
        ({"name": "digits", "size": -1}, ValueError, "size must be a positive integer"),
        ({"name": "digits", "grayscale": 1}, TypeError, "grayscale must be a bool"),
        ({"name": "digits", "n": 2000}, ValueError, "exceeds the 1347 examples"),
        ({"name": "emnist", "split": "train"}, ValueError, "emnist needs an EMNIST split"),
        ({"name": "emnist", "split": "foo-train"}, ValueError, "split for 'emnist'"),
        ({"name": "mnist", "emnist_split": "digits"}, ValueError, "only for name='emnist'"),
    ],
)
def test_validation(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        load(**kwargs)  # type: ignore[arg-type]


def test_max_n_caps_every_image_load(monkeypatch: pytest.MonkeyPatch) -> None:
    full = load("digits", "train")
    monkeypatch.setenv(data.ENV_MAX_N, "7")
    capped = load("digits", "train")
    assert torch.equal(capped.x, full.x[:7]) and torch.equal(capped.y, full.y[:7])
    assert len(load("digits", "train", n=3)) == 3 and len(load("digits", "train", n=100)) == 7

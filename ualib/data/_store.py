"""Where datasets live on disk, and how they get there safely.

This module knows nothing about particular datasets. It provides

* the resolution of the **data root** (``root`` argument, ``UALIB_DATA``, ``<repo>/data``,
  ``~/.ualib/data``) and of the **offline mirror** (``mirror`` argument, ``UALIB_DATA_MIRROR``);
* verification of mirror files against the mirror's ``SHA256SUMS`` (:class:`ChecksumError`, nothing
  copied);
* :func:`populate`: build a dataset folder in a temporary folder *inside* the data root, then move it
  into place with ``os.rename`` (atomic on one file system), under a lock file, never replacing a file
  that already exists, and record the SHA-256 of every file it moved in the dataset folder's
  manifest ``.ualib-manifest.json``;
* :func:`verify_files`: check files against that manifest (or a published MD5, or the IDX header)
  before a load reads them.

Files in the data root are never deleted or overwritten: when a check fails the error names the file
and asks the user to delete it.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from ualib._paths import repo_root
from ualib.data._types import ChecksumError

__all__ = [
    "ENV_ROOT",
    "ENV_MIRROR",
    "ENV_OFFLINE",
    "MANIFEST",
    "data_root",
    "mirror_dir",
    "offline_env",
    "sha256_file",
    "md5_file",
    "verify_mirror",
    "read_manifest",
    "verify_files",
    "check_idx",
    "corrupt",
    "populate",
    "gunzip",
    "extract_zip",
    "extract_tar",
]

ENV_ROOT = "UALIB_DATA"
ENV_MIRROR = "UALIB_DATA_MIRROR"
ENV_OFFLINE = "UALIB_OFFLINE"
MANIFEST = ".ualib-manifest.json"
_LOCK = ".ualib.lock"
_TMP_PREFIX = ".ualib-tmp-"
_CHUNK = 1 << 20


# --------------------------------------------------------------------------------------------------
# Resolution of the data root and the mirror
# --------------------------------------------------------------------------------------------------


def _repo_data_folder() -> Path | None:
    """``<repo>/data`` when ``ualib`` runs from a source checkout (see :func:`ualib._paths.repo_root`)."""
    repo = repo_root()
    return repo / "data" if repo is not None else None


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The data root: where datasets are read from and extracted to.

    Parameters
    ----------
    root
        An explicit folder. If ``None``: the environment variable ``UALIB_DATA``; else ``<repo>/data``
        when ``ualib`` runs from a source checkout (the folder above the ``ualib`` package holds
        ``pyproject.toml``); else ``~/.ualib/data``.

    Returns
    -------
    pathlib.Path
        The absolute path (it need not exist yet; it is created when a dataset is extracted).
    """
    if root is None:
        env = os.environ.get(ENV_ROOT, "").strip()
        if env:
            root = env
        else:
            repo = _repo_data_folder()
            root = repo if repo is not None else Path("~/.ualib/data")
    elif not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a str or os.PathLike, got {type(root).__name__}")
    return Path(root).expanduser().resolve()


def mirror_dir(mirror: str | os.PathLike[str] | None = None) -> Path | None:
    """The offline mirror folder: the ``mirror`` argument, else ``UALIB_DATA_MIRROR``, else ``None``.

    The path is returned even if it does not exist; the loader then reports it in its
    :class:`DatasetNotFoundError` (a dataset already in the data root does not need the mirror).
    """
    if mirror is None:
        env = os.environ.get(ENV_MIRROR, "").strip()
        if not env:
            return None
        mirror = env
    elif not isinstance(mirror, (str, os.PathLike)):
        raise TypeError(f"mirror must be a str or os.PathLike, got {type(mirror).__name__}")
    return Path(mirror).expanduser().resolve()


def offline_env() -> bool:
    """Whether ``UALIB_OFFLINE`` asks to skip downloads (``1``, ``true``, ``yes``, ``on``)."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes", "on"}


# --------------------------------------------------------------------------------------------------
# Hashing and verification
# --------------------------------------------------------------------------------------------------


def _hash_file(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    return _hash_file(Path(path), "sha256")


def md5_file(path: str | os.PathLike[str]) -> str:
    """Hex MD5 of a file's bytes (only to compare with published MD5s)."""
    return _hash_file(Path(path), "md5")


def _read_sha256sums(mirror: Path) -> dict[str, str]:
    sums = mirror / "SHA256SUMS"
    if not sums.is_file():
        raise ChecksumError(
            f"The offline mirror {mirror} has no SHA256SUMS file, so its files cannot be verified; "
            "nothing was copied. Restore SHA256SUMS in the mirror."
        )
    table: dict[str, str] = {}
    for line in sums.read_text(encoding="utf8").splitlines():
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2:
            continue
        digest, name = parts
        name = name.lstrip("*").strip()
        table[name.removeprefix("./")] = digest.lower()
    return table


def verify_mirror(mirror: Path, relpaths: Iterable[str]) -> None:
    """Check mirror files against the mirror's ``SHA256SUMS`` before anything is copied.

    Raises
    ------
    ChecksumError
        Naming the first file that is not listed or whose SHA-256 differs.
    """
    table = _read_sha256sums(mirror)
    for rel in relpaths:
        path = mirror / rel
        want = table.get(rel)
        if want is None:
            raise ChecksumError(
                f"The mirror file {path} is not listed in {mirror / 'SHA256SUMS'}, so it cannot be verified; "
                "nothing was copied into the data root."
            )
        got = sha256_file(path)
        if got != want:
            raise ChecksumError(
                f"The mirror file {path} is corrupted: its SHA-256 is {got} but {mirror / 'SHA256SUMS'} "
                f"lists {want}. Nothing was copied into the data root. ualib never writes into the mirror: "
                "replace this file with a good copy (check with `sha256sum -c SHA256SUMS` in the mirror)."
            )


def read_manifest(folder: Path) -> dict[str, dict[str, object]]:
    """The ``{relative path: {"sha256": ..., "size": ...}}`` table of a dataset folder ({} if none)."""
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    try:
        files = json.loads(path.read_text(encoding="utf8"))["files"]
        if not isinstance(files, dict):
            raise TypeError("'files' is not an object")
    except (ValueError, KeyError, TypeError) as err:
        raise ChecksumError(
            f"The manifest {path} that ualib wrote is unreadable ({err}). Delete it yourself and re-run "
            "(the files it listed are then no longer verified)."
        ) from err
    return files


def corrupt(path: Path, what: str, manifest: Path | None = None) -> ChecksumError:
    """The :class:`ChecksumError` for a bad file in the data root (names it, says how to fix it)."""
    msg = (
        f"{path} is corrupted or was changed: {what}. ualib never deletes or overwrites files in the data "
        f"root: delete {path} yourself and re-run to restore it from the mirror or the download"
    )
    if manifest is not None:
        msg += f" (if you replaced the file on purpose, delete the manifest {manifest} instead)"
    return ChecksumError(msg + ".")


def check_idx(path: Path) -> str | None:
    """Return why an IDX (MNIST-format) file is malformed, or ``None`` if its size matches its header."""
    sizes = {8: 1, 9: 1, 11: 2, 12: 4, 13: 4, 14: 8}
    with open(path, "rb") as f:
        head = f.read(4)
        if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in sizes:
            return "it does not start with an IDX magic number"
        nd = head[3]
        dims_raw = f.read(4 * nd)
    if len(dims_raw) < 4 * nd:
        return "its IDX header is truncated"
    count = 1
    for i in range(nd):
        count *= int.from_bytes(dims_raw[4 * i : 4 * i + 4], "big")
    want = 4 + 4 * nd + count * sizes[head[2]]
    got = path.stat().st_size
    if got != want:
        return f"its IDX header announces {want} bytes but the file has {got} (truncated or padded)"
    return None


def verify_files(folder: Path, relpaths: Iterable[str], *, known_md5: Mapping[str, str] | None = None) -> None:
    """Verify the files a load is about to read.

    Each file is checked against the first of: the folder's manifest (size, then SHA-256); a published
    MD5 from ``known_md5``; the IDX header (``*-ubyte`` files). Files with none of these (a user's own
    files that ``ualib`` did not extract) are read as they are.

    Raises
    ------
    ChecksumError
        Naming the file and how to fix it.
    """
    manifest = read_manifest(folder)
    mpath = folder / MANIFEST
    for rel in relpaths:
        path = folder / rel
        record = manifest.get(rel)
        if record is not None:
            size = path.stat().st_size
            if size != record.get("size"):
                raise corrupt(path, f"it has {size} bytes, but ualib recorded {record.get('size')} in {mpath}", mpath)
            digest = sha256_file(path)
            if digest != record.get("sha256"):
                what = f"its SHA-256 is {digest}, but ualib recorded {record.get('sha256')} in {mpath}"
                raise corrupt(path, what, mpath)
            continue
        if known_md5 and rel in known_md5:
            digest = md5_file(path)
            if digest != known_md5[rel]:
                raise corrupt(path, f"its MD5 is {digest}, but the published MD5 is {known_md5[rel]}")
            continue
        if rel.endswith("-ubyte"):
            why = check_idx(path)
            if why is not None:
                raise corrupt(path, why)


# --------------------------------------------------------------------------------------------------
# Atomic population of the data root
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _lock(root: Path) -> Iterator[None]:
    """An exclusive inter-process lock on ``root/.ualib.lock`` (no-op where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(root / _LOCK, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _hash_tree(folder: Path) -> dict[str, dict[str, object]]:
    table: dict[str, dict[str, object]] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            if rel == MANIFEST:
                continue
            table[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return table


def _plan_moves(src: Path, dst: Path, rel: str = "") -> list[tuple[Path, Path, str]]:
    """Moves ``(source, destination, relative path)`` that add ``src``'s content to ``dst``.

    An entry is moved whole where the destination has nothing of that name; folders present on both
    sides are merged recursively; an existing destination file is always kept.
    """
    moves: list[tuple[Path, Path, str]] = []
    for name in sorted(os.listdir(src)):
        if not rel and name == MANIFEST:
            continue
        s, d = src / name, dst / name
        if not os.path.lexists(d):
            moves.append((s, d, rel + name))
        elif s.is_dir() and d.is_dir():
            moves.extend(_plan_moves(s, d, rel + name + "/"))
    return moves


def _write_json_atomic(path: Path, payload: object) -> None:
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf8") as f:
            json.dump(payload, f, indent=0, sort_keys=True)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the manifest is as readable as the data
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def populate(
    root: Path,
    folder: str,
    build: Callable[[Path], None],
    *,
    present: Callable[[], bool],
    message: str,
    source: str,
) -> None:
    """Create or complete ``root/folder`` atomically from what ``build`` writes.

    Parameters
    ----------
    root
        The data root (created if missing).
    folder
        The dataset folder's name inside the data root, e.g. ``"MNIST"``.
    build
        Called with an empty staging folder inside ``root``; writes the dataset folder's content there.
    present
        Re-checked under the lock: if it is already true (another process finished first), nothing is
        done.
    message
        One line printed to stderr before ``build`` runs.
    source
        Where the files came from, recorded in the manifest.
    """
    root.mkdir(parents=True, exist_ok=True)
    with _lock(root):
        if present():
            return
        print(message, file=sys.stderr, flush=True)
        tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=root))
        try:
            staged = tmp / folder
            staged.mkdir(parents=True)
            build(staged)
            entries = _hash_tree(staged)
            dest = root / folder
            if not os.path.lexists(dest):
                _write_json_atomic(staged / MANIFEST, {"format": 1, "source": source, "files": entries})
                os.rename(staged, dest)
                return
            moves = _plan_moves(staged, dest)
            moved = {
                rel: rec
                for rel, rec in entries.items()
                if any(rel == m or rel.startswith(m + "/") for _, _, m in moves)
            }
            if moved:
                old = read_manifest(dest)
                _write_json_atomic(dest / MANIFEST, {"format": 1, "source": source, "files": {**old, **moved}})
            for s, d, _ in moves:
                if not os.path.lexists(d):  # never replace what appeared meanwhile
                    os.rename(s, d)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# Decompression and extraction (into a staging folder)
# --------------------------------------------------------------------------------------------------


def gunzip(src: Path, dst: Path) -> None:
    """Decompress a ``.gz`` file to ``dst``; a file named ``.gz`` that is not gzip data is copied as it is.

    Some distribution packages ship the decompressed IDX files under the original ``.gz`` names; what
    comes out is checked by the caller (a published MD5, the IDX header), not by the name.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
    with (gzip.open(src, "rb") if compressed else open(src, "rb")) as f, open(dst, "wb") as g:
        shutil.copyfileobj(f, g, _CHUNK)


def extract_zip(src: Path, dst: Path) -> None:
    """Extract a zip archive into ``dst`` (``zipfile`` drops absolute and ``..`` components)."""
    with zipfile.ZipFile(src) as z:
        z.extractall(dst)


def extract_tar(src: Path, dst: Path) -> None:
    """Extract a tar archive into ``dst`` with the safe ``"data"`` filter."""
    with tarfile.open(src) as t:
        t.extractall(dst, filter="data")

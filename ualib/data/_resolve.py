"""The resolution order shared by every dataset: data root -> offline mirror -> download -> clear error.

A :class:`Source` describes one dataset folder in the data root: which files a split needs, which
mirror files produce them and how, and how torchvision / scikit-learn download them. :func:`ensure`
makes the files present (or raises), and the dataset modules then read them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ualib.data import _store
from ualib.data._types import ChecksumError, DatasetNotFoundError

__all__ = ["Context", "Source", "ensure", "not_found"]


@dataclass(frozen=True)
class Context:
    """Where one :func:`ualib.data.load` call looks.

    Attributes
    ----------
    root
        The data root.
    mirror
        The offline mirror folder, or ``None``.
    download
        Whether step (3), the torchvision / scikit-learn download, may run.
    download_off
        Why downloads are off (shown in the error message), ``""`` when they are on.
    """

    root: Path
    mirror: Path | None
    download: bool
    download_off: str = ""


class Source:
    """One dataset folder ``<root>/<folder>`` and the ways to fill it.

    Subclasses set the class attributes and override :meth:`required`, and where they have them
    :meth:`mirror_files` / :meth:`build_from_mirror` and :meth:`download`.
    """

    #: dataset name shown in messages
    name: str = ""
    #: folder inside the data root
    folder: str = ""
    #: where the files sit inside an offline mirror (``""`` = mirror root)
    mirror_prefix: str = ""
    #: "torchvision" / "scikit-learn"; ``""`` = cannot be downloaded
    downloader: str = "torchvision"
    #: shown instead of a download when ``downloader`` is empty
    no_download_hint: str = ""
    #: other, unverified local copies: ``(folder, prefix)`` pairs (e.g. a Debian package's folder)
    extra_mirrors: Sequence[tuple[Path, str]] = ()
    #: published MD5s of files (relative to the dataset folder), checked when there is no manifest
    known_md5: Mapping[str, str] = {}
    #: how to install a local copy that ``extra_mirrors`` reads (shown in the not-found message)
    install_hint: str = ""

    def required(self, root: Path, split: str) -> list[str]:
        """Files (relative to the dataset folder) that must exist for ``split`` to load."""
        raise NotImplementedError

    def expected(self, root: Path, split: str) -> str:
        """Human description of the required files, relative to the data root."""
        return ", ".join(f"{self.folder}/{rel}" for rel in self.required(root, split))

    def present(self, root: Path, split: str) -> bool:
        """Whether every required file exists in the data root."""
        folder = root / self.folder
        return all((folder / rel).is_file() for rel in self.required(root, split))

    def mirror_files(self, split: str, prefix: str) -> list[str]:
        """Files (relative to a mirror folder laid out with ``prefix``) needed for ``split``; [] = none."""
        return []

    def build_from_mirror(self, mirror: Path, prefix: str, staged: Path, split: str) -> None:
        """Write the dataset folder's content into ``staged`` from the (verified) mirror files."""
        raise NotImplementedError

    def download(self, staged: Path, split: str) -> None:
        """Download into ``staged`` (``staged.parent`` plays the role of torchvision's ``root``)."""
        raise NotImplementedError


def _mirror_hint(src: Source, split: str) -> str:
    files = src.mirror_files(split, src.mirror_prefix)
    return ", ".join(files) if files else f"the {src.name} files"


def not_found(
    src: Source,
    ctx: Context,
    split: str,
    *,
    mirror_notes: Sequence[str] = (),
    download_error: BaseException | None = None,
    extra: str = "",
) -> DatasetNotFoundError:
    """The error for a dataset that none of the three sources could provide.

    The message names the data-root path and the files expected there, how to set
    ``UALIB_DATA_MIRROR``, and the download (with its error, if one was tried).
    """
    lines = [f"Dataset {src.name!r} (split {split!r}) was not found.{(' ' + extra) if extra else ''}"]
    lines.append("ualib looks in three places; provide the data through any one of them:")
    lines.append(
        f"  1. the data root {ctx.root}: it expected {src.expected(ctx.root, split)} there. Put the files "
        f"there yourself, or choose another data root with load(..., root=...) or the environment "
        f"variable {_store.ENV_ROOT}."
    )
    mirror_files = _mirror_hint(src, split)
    if not src.mirror_files(split, src.mirror_prefix):
        mirror_line = (
            f"  2. an offline mirror (environment variable {_store.ENV_MIRROR} or mirror=...): ualib knows "
            f"no mirror files for {src.name}; copy its files into the data root instead."
        )
    elif ctx.mirror is None:
        mirror_line = (
            f"  2. an offline mirror: none is set. Set the environment variable {_store.ENV_MIRROR} to an "
            f"offline mirror folder (or pass mirror=...) holding SHA256SUMS and {mirror_files}; ualib "
            "verifies those files and extracts them into the data root."
        )
    else:
        mirror_line = (
            f"  2. an offline mirror: {_store.ENV_MIRROR} / mirror= points at {ctx.mirror}, which does not "
            f"provide {mirror_files}; point it at a mirror that has them (with SHA256SUMS)."
        )
    lines.append(mirror_line)
    for note in mirror_notes:
        lines.append(f"     ({note})")
    if src.install_hint:
        lines.append(f"     (or {src.install_hint})")
    if not src.downloader:
        lines.append(f"  3. a download: {src.no_download_hint}")
    elif download_error is not None:
        lines.append(
            f"  3. the {src.downloader} download into the data root failed with "
            f"{type(download_error).__name__}: {download_error}. Connect to the internet and re-run."
        )
    elif not ctx.download:
        lines.append(
            f"  3. the {src.downloader} download: skipped because {ctx.download_off}. Connect to the "
            f"internet and call load(..., download=True) (or unset {_store.ENV_OFFLINE}) to download it "
            "into the data root."
        )
    else:
        lines.append(f"  3. the {src.downloader} download: not attempted. Connect to the internet and re-run.")
    return DatasetNotFoundError("\n".join(lines))


def _try_mirrors(src: Source, ctx: Context, split: str, notes: list[str]) -> bool:
    candidates: list[tuple[Path, str, bool]] = []
    if ctx.mirror is not None:
        candidates.append((ctx.mirror, src.mirror_prefix, True))
    candidates.extend((Path(p), prefix, False) for p, prefix in src.extra_mirrors)
    for mirror, prefix, verified in candidates:
        files = src.mirror_files(split, prefix)
        if not files:
            continue
        if not mirror.is_dir():
            if verified:
                notes.append(f"the mirror {mirror} is not a folder")
            continue
        if not all((mirror / f).is_file() for f in files):
            continue  # the message's line 2 names the files this mirror lacks
        if verified:
            _store.verify_mirror(mirror, files)  # ChecksumError before anything is written
        kind = "mirror" if verified else "local copy"
        try:
            _store.populate(
                ctx.root,
                src.folder,
                lambda staged, m=mirror, p=prefix: src.build_from_mirror(m, p, staged, split),
                present=lambda: src.present(ctx.root, split),
                message=f"ualib.data: extracting {src.name} from the {kind} {mirror} into {ctx.root / src.folder}",
                source=f"{kind} {mirror}",
            )
        except (OSError, EOFError, ValueError, ChecksumError) as err:
            if verified:
                raise
            # an unverified local copy (e.g. a distribution package) that cannot be read: go on
            notes.append(f"the local copy {mirror} could not be used: {type(err).__name__}: {err}")
            continue
        if src.present(ctx.root, split):
            return True
        notes.append(f"extracting from {mirror} did not complete {ctx.root / src.folder}; files there are in the way")
    return False


def ensure(src: Source, ctx: Context, split: str, *, allow_download: bool = True) -> None:
    """Make ``split`` of ``src`` present in the data root, or raise.

    Order: (1) the data root as it is; (2) the offline mirror (verified against ``SHA256SUMS``, then
    extracted atomically), then any unverified local copies the source knows; (3) the torchvision /
    scikit-learn download into a staging folder, moved into place atomically; (4)
    :class:`DatasetNotFoundError`.

    Raises
    ------
    ChecksumError
        A mirror file differs from ``SHA256SUMS`` (nothing is copied).
    DatasetNotFoundError
        None of the sources provided the files.
    """
    if src.present(ctx.root, split):
        return
    notes: list[str] = []
    if _try_mirrors(src, ctx, split, notes):
        return
    error: BaseException | None = None
    if allow_download and ctx.download and src.downloader:
        try:
            _store.populate(
                ctx.root,
                src.folder,
                lambda staged: src.download(staged, split),
                present=lambda: src.present(ctx.root, split),
                message=f"ualib.data: downloading {src.name} with {src.downloader} into {ctx.root / src.folder}",
                source=f"{src.downloader} download",
            )
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as err:  # noqa: BLE001 - reported in the DatasetNotFoundError
            error = err
        if error is None and src.present(ctx.root, split):
            return
    exc = not_found(src, ctx, split, mirror_notes=notes, download_error=error)
    if error is not None:
        raise exc from error
    raise exc


def relpaths_under(folder: Path, sub: str, suffix: str) -> dict[str, int]:
    """``{relative path: size}`` of the files ending in ``suffix`` below ``folder/sub``."""
    out: dict[str, int] = {}
    base = folder / sub
    for dirpath, _dirnames, filenames in os.walk(base):
        for name in filenames:
            if name.endswith(suffix):
                path = Path(dirpath) / name
                out[path.relative_to(folder).as_posix()] = path.stat().st_size
    return out

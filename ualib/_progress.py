"""The one progress bar of the library: a plain ``tqdm`` bar on standard error.

Every long loop of :mod:`ualib` shows its bar through :func:`progress_bar`, so that all bars look
alike (standard error, redrawn at most every 2 s) and a ``progress`` argument means the same thing
everywhere: ``False`` hides the bar, ``True`` shows it with the default description, a string shows
it with that description.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm import tqdm

__all__ = ["progress_bar"]


def progress_bar(
    iterable: Iterable | None = None,
    *,
    progress: bool | str,
    desc: str,
    total: int | None = None,
    unit: str = "it",
    leave: bool = True,
) -> tqdm:
    """A ``tqdm`` bar over ``iterable`` (or a manual one with ``total``), hidden when ``progress`` is false.

    Parameters
    ----------
    iterable
        What to iterate over; ``None`` for a bar advanced by ``bar.update(n)``.
    progress
        ``False``: no bar; ``True``: a bar described by ``desc``; a string: a bar described by it.
    desc
        The default description.
    total, unit, leave
        As in ``tqdm``.

    Examples
    --------
    >>> from ualib._progress import progress_bar
    >>> sum(progress_bar(range(4), progress=False, desc="demo"))
    6
    """
    return tqdm(
        iterable,
        total=total,
        desc=progress if isinstance(progress, str) else desc,
        disable=not progress,
        file=sys.stderr,
        mininterval=2.0,
        unit=unit,
        leave=leave,
    )

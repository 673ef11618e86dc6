"""Results tables a reader can read: pandas ``Styler`` HTML wrapped to the page, numbers rounded.

A chapter shows a table with :func:`show` instead of ``print(df.to_string())``::

    from compendium.tables import show_table
    show_table(calibration, digits=3)    # was: print(calibration.round(3).to_string())
    show_table(claims_table(claims))     # a claims table: the verdict first, coloured, as a word

Two renderings, chosen by the environment so that the notebook's checked text stays what nbval compares:

- in the book (``compendium.book run`` sets ``UALIB_HTML_TABLES=1`` for the kernel), :func:`show` displays
  one ``display_data`` whose ``text/html`` is the styled table (inside a ``<div class="ualib-table">`` the
  book's CSS wraps to the page) and whose ``text/plain`` is the same text as below, so nothing in it
  depends on the machine (a ``Styler``'s own repr holds a memory address);
- anywhere else (nbval, a plain Jupyter session, a script) it prints exactly
  ``df.round(digits).to_string()`` (or ``df.map(lambda v: format(v, fmt)).to_string()``), the text the
  notebook's ``# NBVAL_CHECK_OUTPUT`` references hold.

A claims table (a column ``verdict`` with supported / refuted / inconclusive, or the older ``result`` with
pass / FAIL) gets its verdict column first, coloured and spelled out as a word (no emoji: Chromium without
an emoji font shows empty boxes). A checks table's boolean ``holds`` column is shown the same way, as
"holds" / "fails".
"""

from __future__ import annotations

import hashlib
import html as _html
import os
from typing import Any

__all__ = ["HTML_ENV", "VERDICT_COLORS", "Table", "styled", "show", "show_table", "html_enabled"]

#: the environment variable that switches :func:`show` to HTML (set by ``compendium.book.run_chapter``)
HTML_ENV = "UALIB_HTML_TABLES"

#: background / text colour per verdict word (Okabe-Ito derived, readable on white and in grey print)
VERDICT_COLORS = {
    "supported": ("#d5f0e3", "#00593d"),
    "pass": ("#d5f0e3", "#00593d"),
    "refuted": ("#f9dcd0", "#8a2b00"),
    "fail": ("#f9dcd0", "#8a2b00"),
    "inconclusive": ("#fbefcc", "#6b4a00"),
    "holds": ("#d5f0e3", "#00593d"),
    "fails": ("#f9dcd0", "#8a2b00"),
}
_VERDICT_COLUMNS = ("verdict", "result", "holds")


def html_enabled() -> bool:
    """Whether :func:`show` renders HTML (``UALIB_HTML_TABLES`` is set to a non-empty value other than 0)."""
    return os.environ.get(HTML_ENV, "") not in ("", "0")


def _text_frame(df, digits: int | None, fmt: str | None):
    if fmt is not None:
        return df.map(lambda v: format(v, fmt))
    if digits is not None:
        return df.round(digits)
    return df


def _verdict_column(df) -> str | None:
    cols = getattr(df, "columns", None)
    if cols is None:
        return None
    for c in _VERDICT_COLUMNS:
        if c in cols:
            return c
    return None


def _verdict_word(v: Any) -> str:
    if isinstance(v, bool) or type(v).__name__ == "bool_":  # a check's holds column
        return "holds" if v else "fails"
    s = str(v).strip()
    low = s.lower()
    return low if low in VERDICT_COLORS else s


def styled(df, *, digits: int | None = None, fmt: str | None = None, caption: str | None = None):
    """A ``pandas.io.formats.style.Styler`` of ``df`` for HTML: rounded numbers, claims verdict first.

    Parameters
    ----------
    df : pandas.DataFrame or pandas.Series
        The table (a Series is shown as one column).
    digits : int, optional
        Decimal places of every float (``df.round(digits)``); default: pandas' display precision.
    fmt : str, optional
        A format spec for every cell (``".1e"``), instead of ``digits``.
    caption : str, optional
        A caption above the table.

    Returns
    -------
    pandas.io.formats.style.Styler
    """
    import pandas as pd

    if isinstance(df, pd.Series):
        df = df.to_frame()
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"styled() takes a pandas DataFrame or Series, got {type(df).__name__}")
    verdict = _verdict_column(df)
    if verdict is not None:
        df = df.copy()
        df[verdict] = [_verdict_word(v) for v in df[verdict]]
        df = df[[verdict] + [c for c in df.columns if c != verdict]]
    # element ids from the content, not random: rebuilding the book gives the same HTML
    uuid = hashlib.sha1(df.to_string().encode()).hexdigest()[:10]
    st = df.style.set_uuid(uuid)
    if verdict is not None and isinstance(df.index, pd.RangeIndex):
        st = st.hide(axis="index")  # a claims table's row numbers say nothing
    if fmt is not None:
        st = st.format(lambda v: format(v, fmt) if isinstance(v, (int, float)) else _html.escape(str(v)))
    else:
        st = st.format(precision=digits if digits is not None else 3, na_rep="–", escape="html")
    if verdict is not None:

        def colour(v):
            bg, fg = VERDICT_COLORS.get(str(v).lower(), ("#eeeeee", "#222222"))
            return f"background-color: {bg}; color: {fg}; font-weight: 600; text-transform: none"

        st = st.map(colour, subset=[verdict])
    if caption:
        st = st.set_caption(_html.escape(caption))
    return st


class Table:
    """A table for display: ``text/html`` is the styled table, ``text/plain`` a deterministic text.

    IPython calls :meth:`_repr_html_` and :meth:`__repr__`; neither contains a memory address.
    """

    def __init__(self, df, *, digits: int | None = None, fmt: str | None = None, caption: str | None = None):
        self.df, self.digits, self.fmt, self.caption = df, digits, fmt, caption

    def text(self) -> str:
        """The plain text: what ``print(df.round(digits).to_string())`` printed."""
        return _text_frame(self.df, self.digits, self.fmt).to_string()

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        body = styled(self.df, digits=self.digits, fmt=self.fmt, caption=self.caption).to_html()
        return f'<div class="ualib-table">{body}</div>'


def show(df, *, digits: int | None = None, fmt: str | None = None, caption: str | None = None) -> None:
    """Show a results table: styled HTML in the book, its plain text elsewhere (see the module docstring).

    ``show(df, digits=3)`` prints what ``print(df.round(3).to_string())`` printed;
    ``show(df, fmt=".1e")`` what ``print(df.map(lambda v: f"{v:.1e}").to_string())`` printed.
    """
    if digits is not None and fmt is not None:
        raise ValueError("give digits or fmt, not both")
    table = Table(df, digits=digits, fmt=fmt, caption=caption)
    if not html_enabled():
        print(table.text())
        return
    from IPython.display import display

    display(table)


#: the name chapters import (``show`` alone is a common variable name in them)
show_table = show

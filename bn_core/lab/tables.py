"""Small arrays as tables, so a notebook can show a computation step by step.

pandas is not a dependency of the course. :func:`html_table` renders in Jupyter and in the built
book (myst-nb renders ``text/markdown`` outputs as CommonMark, which has no tables);
:func:`markdown_table` gives the same table as Markdown text, for a README or an issue::

    from IPython.display import HTML, display
    display(HTML(html_table(x, row_labels=["x1", "x2"], col_labels=["a", "b"])))
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

__all__ = ["html_table", "markdown_table"]


def _cells(values, row_labels, col_labels, fmt, footer):
    """Validate and format: (header, [(label, [cell, ...]), ...], has_labels)."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"values must be 1D or 2D, got shape {arr.shape}")
    n_rows, n_cols = arr.shape
    cols = [str(j) for j in range(n_cols)] if col_labels is None else list(col_labels)
    if len(cols) != n_cols:
        raise ValueError(f"{len(cols)} column labels for {n_cols} columns")
    if row_labels is not None and len(row_labels) != n_rows:
        raise ValueError(f"{len(row_labels)} row labels for {n_rows} rows")
    if footer and row_labels is None:
        raise ValueError("footer rows need row_labels (they are labelled in the first column)")

    def number(v: float) -> str:
        if np.isnan(v):
            return "–"
        text = fmt.format(v)
        # "-0.000" is rounding noise around zero, not a sign a reader should see
        if text.startswith("-") and not any(ch in "123456789" for ch in text):
            text = text[1:]
        return text

    rows = [
        (None if row_labels is None else str(row_labels[i]), [number(v) for v in arr[i]])
        for i in range(n_rows)
    ]
    for label, numbers in (footer or {}).items():
        numbers = np.asarray(numbers, dtype=float).ravel()
        if numbers.size != n_cols:
            raise ValueError(f"footer row {label!r} has {numbers.size} values for {n_cols} columns")
        rows.append((str(label), [number(v) for v in numbers]))
    return cols, rows, row_labels is not None


def markdown_table(
    values,
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    corner: str = "",
    fmt: str = "{:.3f}",
    footer: dict[str, Sequence[float]] | None = None,
) -> str:
    """Format a 1D or 2D array as a GitHub-flavoured Markdown table.

    Parameters
    ----------
    values : array_like, shape (R, C) or (C,)
        The numbers; a 1D array is one row. NaN is shown as a dash.
    row_labels : sequence of str, optional
        One label per row, shown in a first column (in bold); omitted if None.
    col_labels : sequence of str, optional
        Column headers; defaults to ``"0", "1", ...``.
    corner : str, default ""
        Header of the row-label column.
    fmt : str, default "{:.3f}"
        Format applied to every number.
    footer : dict of str to sequence of float, optional
        Extra labelled rows appended below the table (for example the column means); they
        need ``row_labels`` to have a label column to sit in.

    Returns
    -------
    str
        The table, one line per row.

    Raises
    ------
    ValueError
        If the labels do not match the shape of ``values``, or ``footer`` is given without
        ``row_labels``.

    Examples
    --------
    >>> print(markdown_table([[1, 2], [3, 4]], row_labels=["a", "b"], col_labels=["x", "y"],
    ...                      fmt="{:.1f}"))
    |  | x | y |
    |---|---:|---:|
    | **a** | 1.0 | 2.0 |
    | **b** | 3.0 | 4.0 |
    """
    cols, rows, labelled = _cells(values, row_labels, col_labels, fmt, footer)
    header = ([corner] if labelled else []) + cols
    align = (["---"] if labelled else []) + ["---:"] * len(cols)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for label, cells in rows:
        lead = [f"**{label}**"] if labelled else []
        lines.append("| " + " | ".join(lead + cells) + " |")
    return "\n".join(lines)


def html_table(
    values,
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    corner: str = "",
    fmt: str = "{:.3f}",
    footer: dict[str, Sequence[float]] | None = None,
) -> str:
    """Format a 1D or 2D array as an HTML table (same arguments as :func:`markdown_table`).

    Footer rows are set off by a top border, so a computed summary (mean, variance) reads as
    a summary and not as another example.

    Returns
    -------
    str
        A ``<table>`` element; show it with ``IPython.display.HTML``.

    Raises
    ------
    ValueError
        As :func:`markdown_table`.

    Examples
    --------
    >>> print(html_table([[1.5]], row_labels=["a"], col_labels=["x"], fmt="{:.1f}"))
    <table class="bn-table">
    <thead><tr><th style="padding:0.15em 0.9em"></th><th style="text-align:right;padding:0.15em 0.9em">x</th></tr></thead>
    <tbody>
    <tr><th style="text-align:left;padding:0.15em 0.9em">a</th><td style="text-align:right;padding:0.15em 0.9em">1.5</td></tr>
    </tbody>
    </table>
    """
    cols, rows, labelled = _cells(values, row_labels, col_labels, fmt, footer)
    esc = html.escape
    pad = "padding:0.15em 0.9em"
    right = f' style="text-align:right;{pad}"'
    head = ([f'<th style="{pad}">{esc(corner)}</th>'] if labelled else []) + [
        f"<th{right}>{esc(c)}</th>" for c in cols
    ]
    lines = ['<table class="bn-table">', f"<thead><tr>{''.join(head)}</tr></thead>", "<tbody>"]
    n_body = len(rows) - len(footer or {})
    for i, (label, cells) in enumerate(rows):
        style = ' style="border-top:2px solid #888"' if i == n_body else ""
        lead = [f'<th style="text-align:left;{pad}">{esc(label)}</th>'] if labelled else []
        tds = [f"<td{right}>{esc(c)}</td>" for c in cells]
        lines.append(f"<tr{style}>{''.join(lead + tds)}</tr>")
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines)

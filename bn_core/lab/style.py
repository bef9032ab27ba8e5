"""The book's plot style: one place for colours, fonts and the seed-spread band.

Figures have an opaque white background so they stay readable in the book's dark theme.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Okabe-Ito palette: distinguishable with the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000"]

#: One colour per method, used in every chapter so a reader learns them once.
COLORS = {
    "no BN": "#E69F00",
    "BN": "#0072B2",
    "noisy BN": "#CC79A7",
    "LayerNorm": "#009E73",
    "GroupNorm": "#D55E00",
    "dropout": "#56B4E9",
    "BN + dropout": "#000000",
}

RC = {
    "figure.figsize": (7.0, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "axes.facecolor": "white",
    "axes.edgecolor": "#333333",
    "axes.labelcolor": "#222222",
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "legend.fontsize": 9,  # legends must stay readable in multi-panel figures: do not shrink
    "legend.title_fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "font.size": 10,
    "lines.linewidth": 1.8,
}


def use() -> None:
    """Apply the book's matplotlib style (called by :func:`bn_core.lab.setup`)."""
    import matplotlib as mpl
    from cycler import cycler

    mpl.rcParams.update(RC)
    mpl.rcParams["axes.prop_cycle"] = cycler(color=PALETTE)


def band(
    ax,
    x: Sequence[float] | np.ndarray,
    ys: Sequence[Sequence[float]] | np.ndarray,
    *,
    label: str | None = None,
    color: str | None = None,
    spread: str = "minmax",
    alpha: float = 0.2,
    **line_kwargs,
):
    """Plot the mean over seeds as a line and the spread over seeds as a shaded band.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    x : array_like, shape (T,)
    ys : array_like, shape (S, T)
        One row per seed.
    label : str, optional
        Legend label; ``"(n seeds)"`` is not added, say it in the caption.
    color : str, optional
        Defaults to ``COLORS[label]`` when the label is a known method.
    spread : {"minmax", "std"}, default "minmax"
        The band covers the range over seeds, or the mean plus or minus one standard deviation.
    alpha : float, default 0.2
        Opacity of the band.

    Returns
    -------
    matplotlib.lines.Line2D
        The mean line.
    """
    ys = np.asarray(ys, dtype=float)
    if ys.ndim != 2:
        raise ValueError(f"ys must have shape (seeds, points), got shape {ys.shape}")
    x = np.asarray(x, dtype=float)
    if x.shape != ys.shape[1:]:
        raise ValueError(f"x has shape {x.shape} but ys has {ys.shape[1]} points per seed")
    if color is None and label in COLORS:
        color = COLORS[label]
    mean = ys.mean(axis=0)
    if spread == "minmax":
        lo, hi = ys.min(axis=0), ys.max(axis=0)
    elif spread == "std":
        sd = ys.std(axis=0)
        lo, hi = mean - sd, mean + sd
    else:
        raise ValueError(f"spread must be 'minmax' or 'std', got {spread!r}")
    (line,) = ax.plot(x, mean, label=label, color=color, **line_kwargs)
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=alpha, linewidth=0)
    return line

"""Explanatory diagrams drawn with matplotlib (no image files): which values share one
mean under each normalization, and the computational graph of batch normalization.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["NORM_KINDS", "norm_mask", "draw_norm_cubes", "GRAPH_NODES", "draw_bn_graph"]

#: Title of each normalization in :func:`draw_norm_cubes`.
NORM_KINDS = {
    "batch": "BatchNorm",
    "layer": "LayerNorm",
    "group": "GroupNorm",
    "instance": "InstanceNorm",
}


def norm_mask(kind: str, n: int = 6, c: int = 6, hw: int = 6, groups: int = 3) -> np.ndarray:
    """Boolean mask over an ``(N, C, H*W)`` block of the values that share one mean.

    The mask marks the set normalized together with element ``(0, 0, 0)``: BatchNorm takes
    every example and position of one channel, LayerNorm every channel and position of one
    example, GroupNorm one example's channels of one group, InstanceNorm one example's one
    channel.

    Parameters
    ----------
    kind : {"batch", "layer", "group", "instance"}
    n, c, hw : int
        Sizes of the batch, channel and (flattened) spatial axes.
    groups : int, default 3
        Number of channel groups for ``"group"``; must divide ``c``.

    Returns
    -------
    ndarray of bool, shape (n, c, hw)

    Raises
    ------
    ValueError
        Unknown ``kind`` or ``groups`` not dividing ``c``.

    Examples
    --------
    >>> [int(norm_mask(k).sum()) for k in ("batch", "layer", "group", "instance")]
    [36, 36, 12, 6]
    """
    if kind not in NORM_KINDS:
        raise ValueError(f"kind must be one of {sorted(NORM_KINDS)}, got {kind!r}")
    if c % groups:
        raise ValueError(f"groups={groups} must divide c={c}")
    mask = np.zeros((n, c, hw), dtype=bool)
    if kind == "batch":
        mask[:, 0, :] = True
    elif kind == "layer":
        mask[0, :, :] = True
    elif kind == "group":
        mask[0, : c // groups, :] = True
    else:
        mask[0, 0, :] = True
    return mask


def draw_norm_cubes(
    kinds: Sequence[str] = ("batch", "layer", "group"),
    *,
    n: int = 6,
    c: int = 6,
    hw: int = 6,
    groups: int = 3,
    color: str = "#0072B2",
    figsize: tuple[float, float] | None = None,
):
    """Draw the classic cube diagram (Wu & He 2018, Figure 2) for each normalization.

    Each cube is a batch of feature maps with axes N (examples), C (channels) and H, W
    (positions, flattened into one axis). The shaded cells are normalized by the same mean
    and variance.

    Parameters
    ----------
    kinds : sequence of {"batch", "layer", "group", "instance"}
        One panel per entry.
    n, c, hw, groups : int
        As in :func:`norm_mask`.
    color : str
        Colour of the cells that share one mean.
    figsize : tuple, optional
        Defaults to 2.6 inches wide per panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    figsize = figsize or (2.6 * len(kinds), 2.9)
    fig = plt.figure(figsize=figsize)
    for i, kind in enumerate(kinds):
        ax = fig.add_subplot(1, len(kinds), i + 1, projection="3d")
        mask = norm_mask(kind, n, c, hw, groups)
        # voxel axes: x = C, y = H*W, z = N (examples stacked vertically)
        filled = np.ones((c, hw, n), dtype=bool)
        # the camera looks at the high-C and low-H,W faces and at the top: put channel 0 and
        # example 0 there, so that a one-channel slab (BN) or one-example layer is seen face-on
        shared = np.transpose(mask, (1, 2, 0))[::-1, :, ::-1]
        faces = np.empty(filled.shape, dtype=object)
        faces[:] = "#f2f2f2"
        faces[shared] = color
        ax.voxels(filled, facecolors=faces, edgecolor="#7a7a7a", linewidth=0.4)
        ax.set_box_aspect((c, hw, n), zoom=0.82)
        ax.view_init(elev=22, azim=-58)
        ax.set_xlabel("C", labelpad=-12)
        ax.set_ylabel("H, W", labelpad=-12)
        ax.set_zlabel("N", labelpad=-12)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_zticks([])
        ax.grid(False)
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
            axis.pane.set_visible(False)
        ax.set_title(NORM_KINDS[kind], pad=0)
    fig.subplots_adjust(left=0.0, right=1.0, bottom=0.02, top=0.92, wspace=0.0)
    return fig


#: Nodes of the batch-norm forward graph: name -> (x, y, label, role).
GRAPH_NODES = {
    "x": (0.0, 1.0, r"$x_i$", "input"),
    "mu": (1.6, 2.3, r"$\mu = \frac{1}{m}\sum_i x_i$", "stat"),
    "xc": (3.2, 1.0, r"$x_i - \mu$", "example"),
    "var": (4.4, 2.3, r"$\sigma^2 = \frac{1}{m}\sum_i (x_i-\mu)^2$", "stat"),
    "istd": (6.7, 2.3, r"$\frac{1}{\sqrt{\sigma^2+\epsilon}}$", "stat"),
    "xhat": (6.7, 1.0, r"$\hat{x}_i$", "example"),
    "gamma": (8.2, 2.3, r"$\gamma$", "input"),
    "scaled": (8.2, 1.0, r"$\gamma\,\hat{x}_i$", "example"),
    "beta": (9.8, 2.3, r"$\beta$", "input"),
    "y": (9.8, 1.0, r"$y_i$", "example"),
}
GRAPH_EDGES = [
    ("x", "mu"),
    ("x", "xc"),
    ("mu", "xc"),
    ("xc", "var"),
    ("var", "istd"),
    ("istd", "xhat"),
    ("xc", "xhat"),
    ("xhat", "scaled"),
    ("gamma", "scaled"),
    ("scaled", "y"),
    ("beta", "y"),
]
_ROLE_STYLE = {
    "input": ("#fde9c4", "input or parameter"),
    "stat": ("#cfe3f3", "per-feature statistic (shared by the batch)"),
    "example": ("#e9e9e9", "per-example value"),
}


def draw_bn_graph(ax=None, *, numbers: bool = True):
    """Draw the forward computational graph of batch normalization for one feature.

    Boxes are coloured by role: inputs and parameters, per-feature statistics that every
    example of the batch shares (the reason the backward pass mixes examples), and
    per-example values. Arrows point forward; the backward pass walks them in reverse.

    Parameters
    ----------
    ax : matplotlib.axes.Axes, optional
        Drawn into a new figure if None.
    numbers : bool, default True
        Number the operations 1-7 in the order of the forward pass.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if ax is None:
        _, ax = plt.subplots(figsize=(8.5, 2.9))
    boxes = {}
    order = ["mu", "xc", "var", "istd", "xhat", "scaled", "y"]
    for name, (x, y, label, role) in GRAPH_NODES.items():
        text = ax.text(
            x,
            y,
            label,
            ha="center",
            va="center",
            fontsize=11,
            zorder=3,
            bbox={
                "boxstyle": "round,pad=0.35",
                "facecolor": _ROLE_STYLE[role][0],
                "edgecolor": "#555555",
            },
        )
        boxes[name] = text
        if numbers and name in order:
            dy = 0.45 if role == "stat" else -0.4  # keep clear of the arrows
            ax.text(
                x,
                y + dy,
                f"({order.index(name) + 1})",
                ha="center",
                va="center",
                fontsize=8,
                color="#555555",
            )
    for src, dst in GRAPH_EDGES:
        ax.annotate(
            "",
            xy=GRAPH_NODES[dst][:2],
            xytext=GRAPH_NODES[src][:2],
            arrowprops={
                "arrowstyle": "-|>",
                "color": "#333333",
                "lw": 1.2,
                "shrinkA": 2,
                "shrinkB": 2,
                # clip at the drawn boxes; the arrows are drawn after the boxes (higher zorder)
                # because a text box is only positioned when it is drawn
                "patchA": boxes[src].get_bbox_patch(),
                "patchB": boxes[dst].get_bbox_patch(),
            },
            zorder=4,
        )
    ax.set_xlim(-0.6, 10.6)
    ax.set_ylim(0.3, 3.0)
    ax.axis("off")
    handles = [Patch(facecolor=c, edgecolor="#555555", label=t) for c, t in _ROLE_STYLE.values()]
    ax.legend(handles=handles, loc="lower center", ncol=3, bbox_to_anchor=(0.5, -0.12))
    return ax

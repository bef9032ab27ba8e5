"""A small convolutional network on the 8x8 digits, with or without batch normalization.

The chapters of Part III train it on :func:`bn_core.lab.data.digits`: the 64 pixels of each row
are viewed as a ``(1, 8, 8)`` image, so the training loop of :mod:`bn_core.lab.train` works
unchanged. Each stage is ``Conv2d -> BatchNorm2d -> ReLU`` (``order="pre"``, BN before the
activation as in the paper) or ``Conv2d -> ReLU -> BatchNorm2d`` (``order="post"``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


class DigitsCNN(nn.Module):
    """``[Conv3x3 -> (BN) -> ReLU] x len(channels) -> flatten -> Linear``.

    Parameters
    ----------
    channels : sequence of int, default (8, 16, 16)
        Output channels of the convolutions; the second one has stride 2 (8x8 -> 4x4).
    n_classes : int, default 10
    norm : {None, "batch"}, default None
        ``"batch"`` puts a ``BatchNorm2d`` in every stage (statistics per channel over N, H, W).
    order : {"pre", "post"}, default "pre"
        ``"pre"``: BN before the ReLU; ``"post"``: after it.
    init : {"he", None}, default "he"
        ``"he"`` draws conv and linear weights from N(0, 2 / fan_in) with zero biases (the
        BN-free fan-in initialization); ``None`` keeps torch's default.
    track_running_stats : bool, default True
        Passed to ``BatchNorm2d``.
    side : int, default 8
        Height and width of the images; inputs may be ``(N, side * side)`` or ``(N, 1, side, side)``.
    """

    def __init__(
        self,
        channels: Sequence[int] = (8, 16, 16),
        n_classes: int = 10,
        *,
        norm: str | None = None,
        order: str = "pre",
        init: str | None = "he",
        track_running_stats: bool = True,
        side: int = 8,
    ):
        super().__init__()
        if norm not in (None, "batch"):
            raise ValueError(f"norm must be None or 'batch', got {norm!r}")
        if order not in ("pre", "post"):
            raise ValueError(f"order must be 'pre' (BN, then ReLU) or 'post', got {order!r}")
        if init not in ("he", None):
            raise ValueError(f"init must be 'he' or None, got {init!r}")
        self.side, self.norm, self.order = side, norm, order
        layers: list[nn.Module] = []
        c_in = 1
        for i, c in enumerate(channels):
            # a bias right before BN is cancelled by the mean subtraction (kept after a ReLU)
            bias = norm is None or order == "post"
            layers.append(nn.Conv2d(c_in, c, 3, stride=2 if i == 1 else 1, padding=1, bias=bias))
            bn = [nn.BatchNorm2d(c, track_running_stats=track_running_stats)] if norm else []
            act = [nn.ReLU()]
            layers += bn + act if order == "pre" else act + bn
            c_in = c
        self.features = nn.Sequential(*layers)
        out_side = (side + 1) // 2 if len(channels) > 1 else side  # the stride-2 stage halves it
        self.head = nn.Linear(c_in * out_side * out_side, n_classes)
        if init == "he":
            for m in self.modules():
                if isinstance(m, nn.Conv2d | nn.Linear):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.view(-1, 1, self.side, self.side)
        return self.head(self.features(x).flatten(1))


def bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch-normalization layers of ``model``, in order."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def effective_sample_size(values: np.ndarray, statistic: str = "mean") -> float:
    """How many independent values a channel's batch mean (or variance) over N x H x W is worth.

    ``values`` has shape ``(N, H, W)`` (one channel over a batch). The variance of the batch
    statistic is compared with what independent values would give: for the mean,
    ``n_eff = var(x) / var(batch mean)``, where the variance of the batch mean is estimated from
    the image means (images are independent, positions within an image are not):
    ``var(batch mean) = var(image means) / N``. For the variance, the same with
    ``(x - mean(x))**2`` in place of ``x``.

    Parameters
    ----------
    values : array of shape (N, H, W)
    statistic : {"mean", "var"}, default "mean"

    Returns
    -------
    float
        ``N * H * W`` for independent positions, ``N`` when all positions of an image are equal;
        more than ``N * H * W`` when positions within an image are negatively correlated (image
        means that vary less from image to image than independent values would).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> iid = rng.normal(size=(400, 4, 4))
    >>> 0.8 < effective_sample_size(iid) / (400 * 16) < 1.2
    True
    >>> same = np.repeat(rng.normal(size=(400, 1, 1)), 16, axis=1).reshape(400, 4, 4)
    >>> 0.8 < effective_sample_size(same) / 400 < 1.2
    True
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 3:
        raise ValueError(f"values must have shape (N, H, W), got {values.shape}")
    if statistic not in ("mean", "var"):
        raise ValueError(f"statistic must be 'mean' or 'var', got {statistic!r}")
    if statistic == "var":
        values = (values - values.mean()) ** 2
    n = values.shape[0]
    var_x = values.var()
    var_of_mean = values.mean((1, 2)).var(ddof=1) / n
    return float(var_x / var_of_mean)

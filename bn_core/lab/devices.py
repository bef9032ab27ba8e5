"""Helpers for the chapter on batch normalization across devices.

* :class:`ShardedEnsembleMLP`: an :class:`~bn_core.lab.ensemble.EnsembleMLP` whose batch
  normalization sees the batch as ``num_devices`` shards, as data-parallel training does:
  ``"per_device"`` normalizes each shard with its own statistics and keeps the running
  statistics of shard 0 (DDP with ``broadcast_buffers=True`` hands rank 0's buffers to every
  rank); ``"sync"`` normalizes with the statistics of the whole batch, which is what
  synchronized BN computes (``bn_core.sync`` and the multi-process tests show it equals one
  BN over the concatenated batch).
* :func:`resnet50_bn_layers` and :func:`resnet50_num_parameters`: the sizes a cost estimate
  for ResNet-50 needs, counted from its architecture.
* :func:`sync_cost`: bytes and collectives per training step of synchronized BN, and a
  latency/bandwidth time model for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .ensemble import _ACTIVATIONS, EnsembleMLP

__all__ = [
    "AccumulatedEnsembleMLP",
    "RenormEnsembleMLP",
    "ShardedEnsembleMLP",
    "WSEnsembleMLP",
    "resnet50_bn_layers",
    "resnet50_num_parameters",
    "sync_cost",
]


class ShardedEnsembleMLP(EnsembleMLP):
    """An ensemble MLP with batch normalization over ``num_devices`` simulated devices.

    Parameters
    ----------
    n_models, in_features, hidden, out_features, **kwargs
        As :class:`~bn_core.lab.ensemble.EnsembleMLP` (``norm`` is ``"batch"``).
    num_devices : int, default 1
        The training batch is split into this many equal consecutive shards; the batch size
        must be a multiple of it.
    mode : {"per_device", "sync"}, default "per_device"
        ``"per_device"``: each shard is normalized with its own mean and variance, and the
        running statistics are those of shard 0. ``"sync"``: the whole batch's statistics
        (then ``num_devices`` does not change the result).
    """

    def __init__(
        self,
        n_models: int,
        in_features: int,
        hidden: Sequence[int] = (100, 100, 100),
        out_features: int = 10,
        *,
        num_devices: int = 1,
        mode: str = "per_device",
        **kwargs,
    ):
        kwargs.setdefault("norm", "batch")
        if kwargs["norm"] != "batch":
            raise ValueError(f"ShardedEnsembleMLP needs norm='batch', got {kwargs['norm']!r}")
        if mode not in ("per_device", "sync"):
            raise ValueError(f"mode must be 'per_device' or 'sync', got {mode!r}")
        if int(num_devices) < 1:
            raise ValueError(f"num_devices must be >= 1, got {num_devices!r}")
        super().__init__(n_models, in_features, hidden, out_features, **kwargs)
        self.num_devices, self.mode = int(num_devices), mode

    def _normalize(self, i: int, z: torch.Tensor) -> torch.Tensor:
        if not self.training or self.mode == "sync" or self.num_devices == 1:
            return super()._normalize(i, z)
        s, b, w = z.shape
        R = self.num_devices
        if b % R:
            raise ValueError(f"batch size {b} is not a multiple of num_devices={R}")
        m = b // R
        if m < 2:
            raise ValueError(
                f"Expected more than 1 value per channel when training: {b} examples on "
                f"{R} devices leave {m} per device"
            )
        zs = z.reshape(s, R, m, w)
        mean = zs.mean(2, keepdim=True)
        var = (zs - mean).square().mean(2, keepdim=True)
        rm, rv = getattr(self, f"running_mean{i}"), getattr(self, f"running_var{i}")
        with torch.no_grad():  # rank 0's statistics (its own shard), as DDP broadcasts them
            rm.mul_(1 - self.momentum).add_(self.momentum * mean[:, 0])
            rv.mul_(1 - self.momentum).add_(self.momentum * var[:, 0] * m / (m - 1))
        zhat = ((zs - mean) / torch.sqrt(var + self.eps)).reshape(s, b, w)
        return self.gammas[i] * zhat + self.betas[i]


# --------------------------------------------------------------------------------------
# ResNet-50 sizes (He et al. 2016, torchvision's layout: stride on the 3x3 convolution)
# --------------------------------------------------------------------------------------

_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))  # bottleneck width, number of blocks


def resnet50_bn_layers() -> list[int]:
    """Channels of every batch-norm layer of ResNet-50, input to output (53 layers).

    Stem BN(64); each bottleneck BN(w), BN(w), BN(4w); the first block of each stage adds a
    BN(4w) on its projection shortcut.
    """
    layers = [64]
    for width, blocks in _STAGES:
        for b in range(blocks):
            layers += [width, width, 4 * width]
            if b == 0:
                layers.append(4 * width)
    return layers


def resnet50_num_parameters(num_classes: int = 1000) -> int:
    """Number of parameters of ResNet-50 (convolutions without bias, BN gamma and beta, fc)."""
    total = 3 * 64 * 7 * 7  # stem convolution
    in_ch = 64
    for width, blocks in _STAGES:
        for b in range(blocks):
            total += in_ch * width + width * width * 9 + width * 4 * width
            if b == 0:
                total += in_ch * 4 * width  # projection shortcut
            in_ch = 4 * width
    total += 2 * sum(resnet50_bn_layers())
    total += in_ch * num_classes + num_classes
    return total


def sync_cost(
    channels: Sequence[int],
    world_size: int,
    *,
    latency_s: float,
    bandwidth_Bps: float,
    bytes_per_value: int = 4,
) -> dict:
    """Per-step cost of synchronized BN on ``world_size`` devices (per device).

    Each layer makes one all-gather of ``(count, mean, M2)`` (``2C + 1`` values from every
    device) in the forward pass and one all-reduce of ``2C`` values in the backward pass;
    both block the layer. Time model: ``latency_s * ceil(log2 R)`` per collective (tree or
    recursive doubling) plus bytes received / ``bandwidth_Bps`` (all-gather: ``(R - 1)``
    shards; ring all-reduce: ``2 (R - 1) / R`` of the vector).

    Parameters
    ----------
    channels : sequence of int
        Channels of each synchronized layer.
    world_size : int
        Number of devices R.
    latency_s : float
        Start-up time of one collective step, in seconds.
    bandwidth_Bps : float
        Bytes per second one device receives.
    bytes_per_value : int, default 4
        float32.

    Returns
    -------
    dict
        ``collectives``, ``gather_bytes``, ``reduce_bytes``, ``bytes`` (received per device per
        step), ``latency_s`` and ``bandwidth_s`` (the two terms of the time model), ``time_s``.
    """
    R = int(world_size)
    if R < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size!r}")
    L = len(channels)
    C = sum(channels)
    if R == 1:
        return dict(
            collectives=0,
            gather_bytes=0,
            reduce_bytes=0,
            bytes=0,
            latency_s=0.0,
            bandwidth_s=0.0,
            time_s=0.0,
        )
    gather = (R - 1) * (2 * C + L) * bytes_per_value
    reduce = 2 * (R - 1) / R * 2 * C * bytes_per_value
    lat = 2 * L * latency_s * math.ceil(math.log2(R))
    bw = (gather + reduce) / bandwidth_Bps
    return dict(
        collectives=2 * L,
        gather_bytes=gather,
        reduce_bytes=reduce,
        bytes=gather + reduce,
        latency_s=lat,
        bandwidth_s=bw,
        time_s=lat + bw,
    )


# --------------------------------------------------------------------------------------
# The small-batch family (chapter "small-batch fixes"): accumulation, renorm, WS + GN
# --------------------------------------------------------------------------------------


class AccumulatedEnsembleMLP(ShardedEnsembleMLP):
    """Gradient accumulation over ``num_devices`` micro-batches, simulated in one pass.

    Accumulating the gradients of ``k`` micro-batches (each loss a mean over its micro-batch,
    divided by ``k``) gives the gradient of the mean loss over the ``k * m`` examples of a
    network whose BN normalizes each micro-batch by itself: per-device BN on ``k`` shards. What
    differs from data parallelism is the running statistics: every micro-batch's forward updates
    them, one after the other (not only shard 0's).
    """

    def _normalize(self, i: int, z: torch.Tensor) -> torch.Tensor:
        if not self.training or self.num_devices == 1:
            return super()._normalize(i, z)
        s, b, w = z.shape
        R = self.num_devices
        if b % R:
            raise ValueError(f"batch size {b} is not a multiple of num_devices={R}")
        m = b // R
        if m < 2:
            raise ValueError(
                f"Expected more than 1 value per channel when training: micro-batches of {m}"
            )
        zs = z.reshape(s, R, m, w)
        mean = zs.mean(2, keepdim=True)
        var = (zs - mean).square().mean(2, keepdim=True)
        rm, rv = getattr(self, f"running_mean{i}"), getattr(self, f"running_var{i}")
        with torch.no_grad():  # one update per micro-batch, in order
            for k in range(R):
                rm.mul_(1 - self.momentum).add_(self.momentum * mean[:, k])
                rv.mul_(1 - self.momentum).add_(self.momentum * var[:, k] * m / (m - 1))
        zhat = ((zs - mean) / torch.sqrt(var + self.eps)).reshape(s, b, w)
        return self.gammas[i] * zhat + self.betas[i]


class RenormEnsembleMLP(EnsembleMLP):
    """An ensemble MLP with batch renormalization (Ioffe 2017) in place of BN.

    Training normalizes with the batch statistics corrected by ``r`` and ``d`` (held constant
    in the backward pass, as ``bn_core.renorm``); evaluation is BN's. As in the paper, training
    starts as plain BN (``rmax = 1, dmax = 0``) and the limits are relaxed linearly to ``rmax``
    and ``dmax`` between ``warmup`` and ``2 * warmup`` training forwards.

    Parameters
    ----------
    rmax, dmax : float, default 3 and 5
    warmup : int, default 50
    momentum : float, default 0.01
        Weight of a new batch in the running statistics (the paper's rate).
    """

    def __init__(self, *args, rmax=3.0, dmax=5.0, warmup=50, momentum=0.01, **kwargs):
        kwargs["norm"] = "batch"
        super().__init__(*args, momentum=momentum, **kwargs)
        self.rmax, self.dmax, self.warmup = float(rmax), float(dmax), int(warmup)
        self.forwards = 0

    def limits(self) -> tuple[float, float]:
        """(rmax, dmax) at the current training forward."""
        if self.warmup <= 0:
            return self.rmax, self.dmax
        t = min(max((self.forwards - self.warmup) / self.warmup, 0.0), 1.0)
        return 1.0 + t * (self.rmax - 1.0), t * self.dmax

    def forward(self, x):
        if self.training:
            self.forwards += 1
        return super().forward(x)

    def _normalize(self, i: int, z: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super()._normalize(i, z)
        m = z.shape[1]
        if m < 2:
            raise ValueError("Expected more than 1 value per channel when training")
        rmax, dmax = self.limits()
        rm, rv = getattr(self, f"running_mean{i}"), getattr(self, f"running_var{i}")
        mean = z.mean(1, keepdim=True)
        var = (z - mean).square().mean(1, keepdim=True)
        sigma_b = torch.sqrt(var + self.eps)
        sigma = torch.sqrt(rv + self.eps)
        r = (sigma_b / sigma).clamp(1.0 / rmax, rmax).detach()
        d = ((mean - rm) / sigma).clamp(-dmax, dmax).detach()
        with torch.no_grad():
            rm.mul_(1 - self.momentum).add_(self.momentum * mean)
            rv.mul_(1 - self.momentum).add_(self.momentum * var * m / (m - 1))
        zhat = (z - mean) / sigma_b * r + d
        return self.gammas[i] * zhat + self.betas[i]


class WSEnsembleMLP(EnsembleMLP):
    """Weight standardization (Qiao et al. 2019) of the hidden Linear layers, with any norm.

    Each hidden unit's incoming weights are standardized to mean 0 and variance 1 over the
    fan-in, then scaled by ``1 / sqrt(fan_in)`` so that unit-variance inputs give unit-variance
    outputs at the start; the output layer is left as is. Use with ``norm="group"`` for WS+GN.
    """

    def standardized(self, i: int) -> torch.Tensor:
        """Hidden layer ``i``'s weight ``(S, in, out)``, standardized over ``in``."""
        w = self.weights[i]
        mu = w.mean(1, keepdim=True)
        sd = torch.sqrt(w.var(1, unbiased=False, keepdim=True) + 1e-5)
        return (w - mu) / sd / w.shape[1] ** 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """As :meth:`EnsembleMLP.forward`, with standardized hidden weights."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n_models, -1, -1)
        act = _ACTIVATIONS[self.activation]
        for i in range(self.n_hidden):
            z = torch.bmm(x, self.standardized(i))
            bias = self._bias(i)
            if bias is not None:
                z = z + bias
            x = act(z if self.norm is None else self._normalize(i, z))
        return torch.baddbmm(self.biases[-1], x, self.weights[-1])

"""A synchronized batch normalization for torch that runs wherever ``torch.distributed`` runs.

``torch.nn.SyncBatchNorm`` needs a GPU: on CPU it raises "SyncBatchNorm expected input
tensor to be on GPU", its kernels (``batch_norm_stats``,
``batch_norm_gather_stats_with_counts``) have no CPU implementation, and
``DistributedDataParallel`` refuses it on CPU. :class:`SyncBatchNorm` here has the same
semantics, written with two collectives of ``torch.distributed`` that every backend
(gloo on CPU included) provides:

* forward: ``all_gather`` of each rank's ``(count, mean, M2)`` (counts may differ, a rank
  may hold an empty shard), merged with Chan's parallel formula (never
  ``E[x^2] - E[x]^2``), then every rank normalizes with the global mean and biased variance;
  the running buffers get the global mean and the global *unbiased* variance, so they are
  the same on every rank;
* backward: ``all_reduce`` (sum) of the two per-channel sums of the closed-form backward,
  ``sum(dy)`` and ``sum(dy * x_hat)``, then ``dx`` with the *global* count. The gradients
  of ``weight`` and ``bias`` are this rank's own: DDP's gradient all-reduce combines them;
* no synchronization in eval mode, with a world of one, or without an initialized process
  group (then it is ``torch.nn.functional.batch_norm``).

Every rank must call the layer (and its backward) the same number of times: the collectives
are matched across ranks in call order.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["SyncBatchNorm", "SyncBatchNormFunction", "convert_sync_batchnorm"]


def _channels_first_2d(x: torch.Tensor) -> torch.Tensor:
    """(N, C, ...) -> (C, M), M = N * prod(spatial); works for N = 0."""
    return x.transpose(0, 1).reshape(x.shape[1], -1)


def _col(v: torch.Tensor, ndim: int) -> torch.Tensor:
    return v.reshape((-1,) + (1,) * (ndim - 2))


def _local_stats(x: torch.Tensor):
    """count, mean, M2 of this rank's shard, per channel (corrected two-pass)."""
    v = _channels_first_2d(x)
    count = v.shape[1]
    if count == 0:
        z = v.new_zeros(v.shape[0])
        return 0, z, z.clone()
    mean = v.mean(dim=1)
    d = v - mean[:, None]
    delta = d.mean(dim=1)  # rounding error of the first mean
    m2 = (d * d).sum(dim=1) - count * delta * delta
    return count, mean + delta, m2.clamp_min(0)


def _chan_merge(gathered: list[torch.Tensor], C: int):
    """Merge [count, mean(C), M2(C)] rows from every rank (float64, rank order)."""
    n = 0.0
    mean = m2 = None
    for g in gathered:
        g = g.to(torch.float64)
        nb = float(g[0])
        if nb == 0:
            continue
        mb, m2b = g[1 : 1 + C], g[1 + C :]
        if n == 0:
            n, mean, m2 = nb, mb.clone(), m2b.clone()
            continue
        total = n + nb
        delta = mb - mean
        mean = mean + delta * (nb / total)
        m2 = m2 + m2b + delta * delta * (n * nb / total)
        n = total
    return n, mean, m2


class SyncBatchNormFunction(torch.autograd.Function):
    """Autograd function: synchronized forward (all-gather) and backward (all-reduce)."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum, group):
        C = x.shape[1]
        count, mean, m2 = _local_stats(x.detach())
        packed = torch.cat([mean.new_tensor([float(count)]), mean, m2])
        world = dist.get_world_size(group)
        gathered = [torch.empty_like(packed) for _ in range(world)]
        dist.all_gather(gathered, packed, group=group)
        n, gmean, gm2 = _chan_merge(gathered, C)
        if n <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got {int(n)} in the "
                f"whole batch over {world} ranks (input size {tuple(x.shape)} on this rank); "
                f"give the ranks together at least 2 values per channel"
            )
        var = gm2 / n
        invstd = torch.rsqrt(var + eps)
        with torch.no_grad():
            if running_mean is not None:
                running_mean.mul_(1 - momentum).add_(momentum * gmean.to(running_mean.dtype))
            if running_var is not None:
                unbiased = gm2 / (n - 1)
                running_var.mul_(1 - momentum).add_(momentum * unbiased.to(running_var.dtype))
        dt = x.dtype
        mean_t, invstd_t = gmean.to(dt), invstd.to(dt)
        x_hat = (x.detach() - _col(mean_t, x.ndim)) * _col(invstd_t, x.ndim)
        out = x_hat
        if weight is not None:
            out = out * _col(weight.detach().to(dt), x.ndim)
        if bias is not None:
            out = out + _col(bias.detach().to(dt), x.ndim)
        ctx.save_for_backward(x_hat, invstd_t, weight)
        ctx.count = n
        ctx.group = group
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x_hat, invstd, weight = ctx.saved_tensors
        dy = grad_out.contiguous()
        C = dy.shape[1]
        dy2 = _channels_first_2d(dy)
        sum_dy = dy2.sum(dim=1)
        sum_dy_xhat = (dy2 * _channels_first_2d(x_hat)).sum(dim=1)
        # gamma/beta: this rank's own contributions; DDP's all-reduce combines them
        grad_weight = sum_dy_xhat.clone() if ctx.needs_input_grad[1] else None
        grad_bias = sum_dy.clone() if ctx.needs_input_grad[2] else None
        grad_input = None
        if ctx.needs_input_grad[0]:
            both = torch.cat([sum_dy, sum_dy_xhat])
            dist.all_reduce(both, op=dist.ReduceOp.SUM, group=ctx.group)
            n = ctx.count
            k = invstd if weight is None else weight.to(invstd.dtype) * invstd
            nd = dy.ndim
            grad_input = _col(k, nd) * (
                dy - _col(both[:C] / n, nd) - x_hat * _col(both[C:] / n, nd)
            )
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        return grad_input, grad_weight, grad_bias, None, None, None, None, None


class SyncBatchNorm(_BatchNorm):
    """``torch.nn.SyncBatchNorm`` that runs on CPU (gloo) and on any ``torch.distributed`` backend.

    Same constructor, parameters and buffers as ``torch.nn.SyncBatchNorm`` (so state dicts
    load both ways); inputs of shape (N, C, ...). In training mode, with an initialized
    process group of more than one rank, every rank normalizes with the statistics of the
    whole global batch; otherwise it is plain batch normalization.

    Parameters
    ----------
    num_features : int
        C, the number of channels (axis 1).
    eps : float, default 1e-5
    momentum : float or None, default 0.1
        ``None`` gives the cumulative average, as in torch.
    affine : bool, default True
    track_running_stats : bool, default True
    process_group : ProcessGroup, optional
        The ranks that share statistics (default: the whole world).
    device, dtype : optional
        As for any torch module.

    Examples
    --------
    >>> import torch
    >>> bn = SyncBatchNorm(3)  # no process group: plain batch normalization
    >>> x = torch.randn(8, 3, 4)
    >>> torch.allclose(bn(x), torch.nn.functional.batch_norm(x, None, None, training=True))
    True
    """

    def __init__(
        self,
        num_features,
        eps=1e-5,
        momentum=0.1,
        affine=True,
        track_running_stats=True,
        process_group=None,
        device=None,
        dtype=None,
    ):
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype
        )
        self.process_group = process_group

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(
                f"expected at least 2D input (got {input.dim()}D input): SyncBatchNorm takes "
                f"(N, C, ...) with the channels on axis 1"
            )

    def _group_and_world(self):
        if not (dist.is_available() and dist.is_initialized()):
            return None, 1
        group = self.process_group or dist.group.WORLD
        return group, dist.get_world_size(group)

    def forward(self, input):
        self._check_input_dim(input)
        if input.shape[1] != self.num_features:
            raise ValueError(
                f"SyncBatchNorm({self.num_features}) got input of shape {tuple(input.shape)} "
                f"with {input.shape[1]} channels on axis 1"
            )
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        if self.training:
            bn_training = True
        else:
            bn_training = self.running_mean is None and self.running_var is None
        update = not self.training or self.track_running_stats
        running_mean = self.running_mean if update else None
        running_var = self.running_var if update else None
        group, world = self._group_and_world()
        if not (bn_training and self.training and world > 1):  # no sync: plain BN
            return F.batch_norm(
                input,
                running_mean,
                running_var,
                self.weight,
                self.bias,
                bn_training,
                factor,
                self.eps,
            )
        return SyncBatchNormFunction.apply(
            input, self.weight, self.bias, running_mean, running_var, self.eps, factor, group
        )

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """Replace every batch-norm layer in ``module`` by a :class:`SyncBatchNorm`.

        See :func:`convert_sync_batchnorm`.
        """
        return convert_sync_batchnorm(module, process_group)


def convert_sync_batchnorm(module: nn.Module, process_group=None) -> nn.Module:
    """Replace every ``BatchNorm*d`` layer in ``module`` by a :class:`SyncBatchNorm`.

    Like ``torch.nn.SyncBatchNorm.convert_sync_batchnorm``: parameters, buffers, training
    mode and ``requires_grad`` are carried over; the model is changed in place.

    Parameters
    ----------
    module : torch.nn.Module
        A model, or a single batch-norm layer.
    process_group : ProcessGroup, optional
        Passed to every new layer.

    Returns
    -------
    torch.nn.Module
        ``module`` itself, or the replacement if ``module`` is a batch-norm layer.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    >>> type(convert_sync_batchnorm(net)[1]).__name__
    'SyncBatchNorm'
    """
    if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
        new = SyncBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
            process_group,
        )
        if module.affine:
            with torch.no_grad():
                new.weight = module.weight
                new.bias = module.bias
        new.running_mean = module.running_mean
        new.running_var = module.running_var
        new.num_batches_tracked = module.num_batches_tracked
        new.training = module.training
        if hasattr(module, "qconfig"):
            new.qconfig = module.qconfig
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child, process_group))
    return module

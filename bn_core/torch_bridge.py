"""PyTorch drop-ins whose forward and backward run ``bn_core`` (numpy).

:class:`BatchNorm1d`, :class:`BatchNorm2d` and :class:`BatchNorm3d` subclass
``torch.nn.BatchNorm1d`` / ``BatchNorm2d`` / ``BatchNorm3d``: same constructor, same ``weight``/``bias`` parameters and
``running_mean``/``running_var``/``num_batches_tracked`` buffers, so ``load_state_dict``
works both ways and a model can swap one for the other. Only the arithmetic differs: it
goes through :func:`batch_norm`, a ``torch.autograd.Function`` whose forward is
:func:`bn_core.batch_norm` and whose backward is :func:`bn_core.batch_norm_backward`.

This is the only module of ``bn_core`` that imports torch (an optional dependency:
``pip install bn_core[torch]``). Tensors are moved to the CPU and viewed as numpy arrays
(float16/bfloat16 ones are computed in float32, as torch does); double backward is not
supported.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from bn_core.functional import _batch_norm_impl, batch_norm_backward

# The frozen and synchronized layers live in their own modules; bn_core.torch_bridge is the
# one place to import torch layers from.
from bn_core.torch_frozen import FrozenBatchNorm1d, FrozenBatchNorm2d, freeze_batchnorm
from bn_core.torch_sync import SyncBatchNorm, convert_sync_batchnorm

__all__ = [
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "BatchNormFunction",
    "FrozenBatchNorm1d",
    "FrozenBatchNorm2d",
    "SyncBatchNorm",
    "batch_norm",
    "convert_sync_batchnorm",
    "freeze_batchnorm",
    "swap_batchnorm",
]


def _np(t):
    """A CPU tensor as a numpy array (a view for float32/float64; half types in float32)."""
    if t is None:
        return None
    t = t.detach().cpu()
    if t.dtype in _HALF:  # numpy has no bfloat16, and half statistics go through float32
        t = t.float()
    return t.numpy()


# torch normalizes float16/bfloat16 input with float32 statistics and returns the input's
# dtype; so does the bridge (numpy has no bfloat16: such tensors are copied to float32)
_HALF = (torch.float16, torch.bfloat16)


def _memory_format(x):
    """channels_last(_3d) if ``x`` is stored that way (torch keeps it in the output)."""
    if (
        x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    ):
        return torch.channels_last
    if (
        x.dim() == 5
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last_3d)
    ):
        return torch.channels_last_3d
    return torch.contiguous_format


def _to_torch(a, like, memory_format):
    """numpy result -> tensor on ``like``'s device, in its dtype and memory format."""
    t = torch.from_numpy(np.ascontiguousarray(a)).to(like.device, like.dtype)
    return t.contiguous(memory_format=memory_format)


class BatchNormFunction(torch.autograd.Function):
    """Autograd function: numpy forward (``bn_core``), numpy closed-form backward."""

    @staticmethod
    def forward(
        ctx,
        x,
        weight,
        bias,
        running_mean,
        running_var,
        training,
        momentum,
        eps,
        check_finite,
        need_grad=True,
    ):
        # float32/float64 CPU buffers are viewed, not copied, so bn_core's in-place update
        # reaches them; others (on a GPU, or half precision) are updated through a float32
        # copy, rounded once when copied back, as torch does
        buffers = [running_mean, running_var]
        views = [_np(b) for b in buffers]
        out, cache = _batch_norm_impl(
            _np(x),
            views[0],
            views[1],
            _np(weight),
            _np(bias),
            training,
            momentum,
            eps,
            check_finite,
            need_cache=need_grad,
        )
        for b, v in zip(buffers, views, strict=True):
            if b is not None and (b.device.type != "cpu" or b.dtype in _HALF):
                b.copy_(torch.from_numpy(v))
        ctx.cache = cache
        ctx.check_finite = check_finite
        ctx.param_dtypes = [None if p is None else p.dtype for p in (weight, bias)]
        ctx.memory_format = _memory_format(x)
        ctx.x_dtype = x.dtype
        return _to_torch(out, x, ctx.memory_format)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        dx, dgamma, dbeta = batch_norm_backward(
            _np(grad_out), ctx.cache, check_finite=ctx.check_finite
        )
        device = grad_out.device
        need = ctx.needs_input_grad
        wdt, bdt = ctx.param_dtypes
        return (
            torch.from_numpy(dx).to(device, ctx.x_dtype).contiguous(memory_format=ctx.memory_format)
            if need[0]
            else None,
            torch.from_numpy(dgamma).to(device, wdt) if need[1] else None,
            torch.from_numpy(dbeta).to(device, bdt) if need[2] else None,
            *([None] * 7),
        )


def batch_norm(
    input,
    running_mean,
    running_var,
    weight=None,
    bias=None,
    training=False,
    momentum=0.1,
    eps=1e-5,
    *,
    check_finite=True,
):
    """``torch.nn.functional.batch_norm`` computed by ``bn_core``, with autograd.

    Parameters
    ----------
    input : Tensor
        float32 or float64, shape (N, C, ...); float16 and bfloat16 are normalized in
        float32 (statistics, buffer updates, gradients) and returned in their own dtype, as
        torch does. A channels-last input gives a channels-last output.
    running_mean, running_var : Tensor of shape (C,) or None
        Updated in place when ``training``.
    weight, bias : Tensor of shape (C,), optional
    training : bool, default False
    momentum : float, default 0.1
    eps : float, default 1e-5
    check_finite : bool, default True
        Raise on NaN or inf (torch would propagate them).

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[1.0, 10.0], [3.0, 30.0]], dtype=torch.float64)
    >>> batch_norm(x, None, None, training=True).round(decimals=4)
    tensor([[-1., -1.],
            [ 1.,  1.]], dtype=torch.float64)
    """
    need_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (input, weight, bias)
    )
    return BatchNormFunction.apply(
        input,
        weight,
        bias,
        running_mean,
        running_var,
        training,
        momentum,
        eps,
        check_finite,
        need_grad,
    )


class _BridgeMixin:
    """torch's ``_BatchNorm.forward``, with ``F.batch_norm`` replaced by bn_core's."""

    check_finite = True  # set to False on an instance to let NaN propagate as torch does

    def forward(self, input):
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
        if self.training:
            bn_training = True
        else:  # eval mode without buffers normalizes with batch statistics
            bn_training = self.running_mean is None and self.running_var is None
        update = not self.training or self.track_running_stats
        return batch_norm(
            input,
            self.running_mean if update else None,
            self.running_var if update else None,
            self.weight,
            self.bias,
            bn_training,
            factor,
            self.eps,
            check_finite=self.check_finite,
        )


class BatchNorm1d(_BridgeMixin, nn.BatchNorm1d):
    """Drop-in for ``torch.nn.BatchNorm1d`` computed by ``bn_core`` (same arguments).

    Examples
    --------
    >>> import torch
    >>> bn = BatchNorm1d(3)
    >>> y = bn(torch.randn(8, 3))
    >>> sorted(bn.state_dict()) == sorted(torch.nn.BatchNorm1d(3).state_dict())
    True
    """


class BatchNorm2d(_BridgeMixin, nn.BatchNorm2d):
    """Drop-in for ``torch.nn.BatchNorm2d`` computed by ``bn_core`` (same arguments).

    Examples
    --------
    >>> import torch
    >>> bn = BatchNorm2d(3)
    >>> y = bn(torch.randn(4, 3, 5, 5))
    >>> tuple(y.shape)
    (4, 3, 5, 5)
    """


class BatchNorm3d(_BridgeMixin, nn.BatchNorm3d):
    """Drop-in for ``torch.nn.BatchNorm3d`` computed by ``bn_core`` (same arguments).

    Examples
    --------
    >>> import torch
    >>> bn = BatchNorm3d(3)
    >>> y = bn(torch.randn(2, 3, 4, 5, 5))
    >>> tuple(y.shape)
    (2, 3, 4, 5, 5)
    """


def swap_batchnorm(module: nn.Module) -> nn.Module:
    """Replace, in place, every ``nn.BatchNorm1d``/``2d``/``3d`` inside ``module`` by ours.

    Each replacement gets the same constructor arguments, parameters, buffers, device,
    dtype and training mode, so the model computes the same function, now through bn_core.

    Parameters
    ----------
    module : torch.nn.Module
        A model (or a single batch-norm layer).

    Returns
    -------
    torch.nn.Module
        ``module`` itself, or the replacement if ``module`` is a batch-norm layer.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    >>> type(swap_batchnorm(net)[1]).__module__
    'bn_core.torch_bridge'
    """
    ours = {nn.BatchNorm1d: BatchNorm1d, nn.BatchNorm2d: BatchNorm2d, nn.BatchNorm3d: BatchNorm3d}
    cls = ours.get(type(module))
    if cls is not None:
        new = cls(
            module.num_features,
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
        )
        if module.affine and module.bias is None:  # torch >= 2.13: bias=False
            new.register_parameter("bias", None)
        ref = module.weight if module.weight is not None else module.running_mean
        if ref is not None:
            new = new.to(device=ref.device, dtype=ref.dtype)
        new.load_state_dict(module.state_dict())
        return new.train(module.training)
    for name, child in module.named_children():
        setattr(module, name, swap_batchnorm(child))
    return module

"""PyTorch drop-ins whose forward and backward run ``bn_core`` (numpy).

:class:`BatchNorm1d` and :class:`BatchNorm2d` subclass ``torch.nn.BatchNorm1d`` /
``BatchNorm2d``: same constructor, same ``weight``/``bias`` parameters and
``running_mean``/``running_var``/``num_batches_tracked`` buffers, so ``load_state_dict``
works both ways and a model can swap one for the other. Only the arithmetic differs: it
goes through :func:`batch_norm`, a ``torch.autograd.Function`` whose forward is
:func:`bn_core.batch_norm` and whose backward is :func:`bn_core.batch_norm_backward`.

This is the only module of ``bn_core`` that imports torch (an optional dependency:
``pip install bn_core[torch]``). Tensors are moved to the CPU and viewed as numpy arrays;
double backward is not supported.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from bn_core.functional import _batch_norm_impl, batch_norm_backward

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNormFunction", "batch_norm", "swap_batchnorm"]


def _np(t):
    return None if t is None else t.detach().cpu().numpy()


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
        # CPU buffers are viewed, not copied, so bn_core's in-place update reaches them
        buffers = [running_mean, running_var]
        views = [None if b is None else b.detach().cpu().numpy() for b in buffers]
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
            if b is not None and b.device.type != "cpu":
                b.copy_(torch.from_numpy(v))
        ctx.cache = cache
        ctx.check_finite = check_finite
        ctx.param_dtypes = [None if p is None else p.dtype for p in (weight, bias)]
        return torch.from_numpy(np.ascontiguousarray(out)).to(x.device)

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
            torch.from_numpy(dx).to(device) if need[0] else None,
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
        float32 or float64, shape (N, C, ...).
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


def swap_batchnorm(module: nn.Module) -> nn.Module:
    """Replace, in place, every ``nn.BatchNorm1d``/``BatchNorm2d`` inside ``module`` by ours.

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
    ours = {nn.BatchNorm1d: BatchNorm1d, nn.BatchNorm2d: BatchNorm2d}
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


from bn_core.torch_sync import SyncBatchNorm, convert_sync_batchnorm  # noqa: E402, F401

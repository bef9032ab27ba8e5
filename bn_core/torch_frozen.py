"""Batch normalization frozen for fine-tuning: fixed statistics and affine map, whatever the mode.

``requires_grad_(False)`` on a ``BatchNorm`` layer freezes ``weight`` and ``bias`` but not the
running statistics: the next ``model.train()`` (which every training loop calls) puts the layer
back in training mode, where it normalizes with the statistics of each batch and overwrites
``running_mean`` and ``running_var``. :class:`FrozenBatchNorm2d` (and :class:`FrozenBatchNorm1d`)
follow torchvision's ``torchvision.ops.FrozenBatchNorm2d``: the four tensors ``weight``,
``bias``, ``running_mean`` and ``running_var`` are *buffers*, not parameters, so an optimizer
never sees them, and the forward pass is always the inference-mode affine map

    y = x * weight / sqrt(running_var + eps) + (bias - running_mean * weight / sqrt(running_var + eps))

in training mode too. The state dict has BatchNorm's keys except ``num_batches_tracked``, which
is dropped when loading a BatchNorm checkpoint. :func:`freeze_batchnorm` swaps every BatchNorm
layer of a model for its frozen copy.

Imports torch (re-exported by :mod:`bn_core.torch_bridge`); ``bn_core`` itself does not import it.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FrozenBatchNorm1d", "FrozenBatchNorm2d", "freeze_batchnorm"]


class _FrozenBatchNorm(nn.Module):
    """Shared code of the 1-d and 2-d frozen layers (``_dims``: the input ranks accepted)."""

    _dims: tuple[int, ...] = ()
    _hint = ""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        if not eps > 0:
            raise ValueError(f"eps must be positive (it keeps 1/sqrt(var + eps) finite), got {eps}")
        self.num_features = num_features
        self.eps = eps
        # Buffers, not parameters: they move with .to() and are saved, but no optimizer updates them.
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        # A BatchNorm checkpoint carries num_batches_tracked; a frozen layer has no use for it.
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in self._dims:
            raise ValueError(
                f"{type(self).__name__} expects a {' or '.join(f'{d}D' for d in self._dims)} "
                f"input {self._hint}, got {x.dim()}D with shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}) got {x.shape[1]} channels on axis 1 "
                f"(input shape {tuple(x.shape)}); channels must be on axis 1"
            )
        # Inference-mode BN as one affine map per channel (what torchvision computes).
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * scale.reshape(shape) + shift.reshape(shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


class FrozenBatchNorm1d(_FrozenBatchNorm):
    """``BatchNorm1d`` with fixed statistics and affine parameters (all buffers).

    Parameters
    ----------
    num_features : int
        Number of features ``C`` of an ``(N, C)`` or ``(N, C, L)`` input.
    eps : float, default 1e-5
        Added to ``running_var`` under the square root, as in ``BatchNorm1d``.

    Examples
    --------
    >>> import torch
    >>> bn = torch.nn.BatchNorm1d(3).eval()
    >>> frozen = FrozenBatchNorm1d(3)
    >>> frozen.load_state_dict(bn.state_dict())  # num_batches_tracked is dropped
    <All keys matched successfully>
    >>> x = torch.randn(4, 3)
    >>> bool(torch.allclose(frozen.train()(x), bn(x)))
    True
    """

    _dims = (2, 3)
    _hint = "(N, C) or (N, C, L)"


class FrozenBatchNorm2d(_FrozenBatchNorm):
    """``BatchNorm2d`` with fixed statistics and affine parameters, as torchvision's.

    Parameters
    ----------
    num_features : int
        Number of channels ``C`` of an ``(N, C, H, W)`` input.
    eps : float, default 1e-5
        Added to ``running_var`` under the square root, as in ``BatchNorm2d``.

    Examples
    --------
    >>> import torch
    >>> frozen = FrozenBatchNorm2d(2)
    >>> [name for name, _ in frozen.named_buffers()]
    ['weight', 'bias', 'running_mean', 'running_var']
    >>> list(frozen.parameters())
    []
    """

    _dims = (4,)
    _hint = "(N, C, H, W)"


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm1d``/``BatchNorm2d`` in ``module`` by a frozen copy.

    The copy holds the layer's current ``weight``, ``bias``, ``running_mean`` and
    ``running_var`` (ones and zeros for a layer built with ``affine=False``) on the same device
    and dtype, so the frozen model computes what the original computes in eval mode, and keeps
    computing it after ``model.train()``. Other layers are left alone; subclasses of torch's
    BatchNorm (such as :class:`bn_core.torch_bridge.BatchNorm2d`) are frozen too.

    Parameters
    ----------
    module : torch.nn.Module
        Changed in place (children are replaced).

    Returns
    -------
    torch.nn.Module
        ``module`` itself, or the frozen replacement if ``module`` is a BatchNorm layer.

    Raises
    ------
    ValueError
        If a BatchNorm layer has ``track_running_stats=False``: it has no statistics to freeze.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    >>> type(freeze_batchnorm(net)[1]).__name__
    'FrozenBatchNorm1d'
    """
    frozen_cls = None
    if isinstance(module, nn.BatchNorm2d):
        frozen_cls = FrozenBatchNorm2d
    elif isinstance(module, nn.BatchNorm1d):
        frozen_cls = FrozenBatchNorm1d
    elif isinstance(module, nn.modules.batchnorm._BatchNorm):
        raise TypeError(
            f"freeze_batchnorm handles BatchNorm1d and BatchNorm2d, got {type(module).__name__}"
        )
    if frozen_cls is not None:
        if module.running_mean is None:
            raise ValueError(
                f"{type(module).__name__} was built with track_running_stats=False: it has no "
                "running statistics to freeze (it always normalizes with batch statistics)"
            )
        new = frozen_cls(module.num_features, eps=module.eps)
        new = new.to(device=module.running_mean.device, dtype=module.running_mean.dtype)
        with torch.no_grad():
            new.running_mean.copy_(module.running_mean)
            new.running_var.copy_(module.running_var)
            if module.weight is not None:
                new.weight.copy_(module.weight)
            if getattr(module, "bias", None) is not None:
                new.bias.copy_(module.bias)
        return new
    for name, child in module.named_children():
        setattr(module, name, freeze_batchnorm(child))
    return module

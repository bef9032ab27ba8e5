"""Stateful batch-normalization layers with PyTorch's interface, in numpy.

:class:`BatchNorm1d`, :class:`BatchNorm2d` and :class:`BatchNorm3d` are thin wrappers over
:mod:`bn_core.functional`: they own ``weight``, ``bias`` and the running buffers, switch
between training and evaluation mode, and keep the forward cache for ``backward``.
"""

from __future__ import annotations

import numbers

import numpy as np

from bn_core._validation import check_eps, check_input, check_momentum, check_rank
from bn_core.functional import _batch_norm_impl, batch_norm_backward

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d"]


class _BatchNorm:
    """Shared implementation; use :class:`BatchNorm1d`, :class:`BatchNorm2d` or
    :class:`BatchNorm3d`."""

    _ranks: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        bias: bool = True,
        dtype=np.float64,
    ):
        if (
            isinstance(num_features, bool)
            or not isinstance(num_features, numbers.Integral)
            or num_features < 1
        ):
            raise ValueError(
                f"num_features must be a positive int (the number of channels C), got "
                f"{num_features!r}"
            )
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        self.num_features = int(num_features)
        self.eps = check_eps(eps)
        self.momentum = check_momentum(momentum, allow_none=True)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        self.dtype = dtype
        self.training = True
        if self.affine:
            self.weight = np.ones(self.num_features, dtype)
            self.bias = np.zeros(self.num_features, dtype) if bias else None
        else:
            self.weight = None
            self.bias = None
        self.grad_weight = None
        self.grad_bias = None
        if self.track_running_stats:
            self.running_mean = np.zeros(self.num_features, dtype)
            self.running_var = np.ones(self.num_features, dtype)
            self.num_batches_tracked = 0
        else:
            self.running_mean = None
            self.running_var = None
            self.num_batches_tracked = None
        self._cache = None

    # -- mode ------------------------------------------------------------------------
    def train(self, mode: bool = True):
        """Set training mode (batch statistics, buffers updated); returns ``self``."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Set evaluation mode (running statistics, nothing updated); returns ``self``."""
        return self.train(False)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, batch count 0 (as torch)."""
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked = 0

    def reset_parameters(self) -> None:
        """Reset the running statistics, weight to 1 and bias to 0 (as torch)."""
        self.reset_running_stats()
        if self.affine:
            self.weight[...] = 1
            if self.bias is not None:
                self.bias[...] = 0

    # -- computation -----------------------------------------------------------------
    def forward(self, x: np.ndarray, *, check_finite: bool = True) -> np.ndarray:
        """Normalize ``x``; in training mode also update the running statistics.

        Parameters
        ----------
        x : ndarray
            float32 or float64 input with the channels on axis 1 (float16 is normalized in
            float32, with the layer's float32/float64 statistics, and rounded back, as torch
            does with half-precision input).
        check_finite : bool, default True
            Raise on NaN or inf in the input (see :func:`bn_core.batch_norm`).

        Returns
        -------
        ndarray
            Same shape and dtype as ``x``.

        Raises
        ------
        TypeError, ValueError
            Wrong rank for the layer (torch's message), a channel count other than
            ``num_features``, one value per channel in training, non-float or non-finite
            input (see :func:`bn_core.batch_norm`).
        """
        x = check_input(x, "input", allow_half=True)
        check_rank(x, self._ranks, type(self).__name__)
        tracking = self.training and self.track_running_stats
        factor = self.momentum
        if tracking and self.momentum is None:  # cumulative moving average
            factor = 1.0 / (self.num_batches_tracked + 1)
        # eval mode without running statistics normalizes with batch statistics (as torch)
        out, self._cache = _batch_norm_impl(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training or not self.track_running_stats,
            0.0 if factor is None else factor,
            self.eps,
            check_finite,
            need_cache=True,
        )
        if tracking:  # counted only once the batch went through, unlike torch
            self.num_batches_tracked += 1
        self._in_dtype = x.dtype
        return out

    def __call__(self, x: np.ndarray, **kwargs) -> np.ndarray:
        """Same as :meth:`forward`."""
        return self.forward(x, **kwargs)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Backpropagate through the last ``forward``; sets ``grad_weight``, ``grad_bias``.

        Parameters
        ----------
        grad_out : ndarray
            Gradient of the loss with respect to the last output.

        Returns
        -------
        ndarray
            Gradient with respect to the last input, in its dtype.

        Raises
        ------
        RuntimeError
            If ``forward`` has not been called.
        """
        if self._cache is None:
            raise RuntimeError("call forward(x) before backward(grad_out)")
        dx, dgamma, dbeta = batch_norm_backward(grad_out, self._cache)
        dx = dx.astype(self._in_dtype, copy=False)  # float16 input: computed in float32
        if self.weight is not None:
            self.grad_weight = dgamma.astype(self.dtype, copy=False)
        if self.bias is not None:
            self.grad_bias = dbeta.astype(self.dtype, copy=False)
        return dx

    # -- state -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of parameters and buffers under torch's names."""
        state = {}
        if self.weight is not None:
            state["weight"] = self.weight.copy()
        if self.bias is not None:
            state["bias"] = self.bias.copy()
        if self.track_running_stats:
            state["running_mean"] = self.running_mean.copy()
            state["running_var"] = self.running_var.copy()
            state["num_batches_tracked"] = np.array(self.num_batches_tracked, np.int64)
        return state

    def load_state_dict(self, state) -> None:
        """Load a dict from :meth:`state_dict` or from a torch ``state_dict()``."""
        expected = set(self.state_dict())
        missing = expected - set(state)
        unexpected = set(state) - expected
        if missing or unexpected:
            raise KeyError(
                f"state dict mismatch: missing {sorted(missing)}, unexpected {sorted(unexpected)}"
            )
        for name in expected:
            value = state[name]
            if hasattr(value, "detach"):  # a torch tensor
                value = value.detach().cpu().numpy()
            value = np.asarray(value)
            if name == "num_batches_tracked":
                self.num_batches_tracked = int(value)
                continue
            if value.shape != (self.num_features,):
                raise ValueError(
                    f"state[{name!r}] must have shape ({self.num_features},), got {value.shape}"
                )
            getattr(self, name)[...] = value

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.num_features}, eps={self.eps}, "
            f"momentum={self.momentum}, affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats})"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalization over (N, C) or (N, C, L) inputs, like ``torch.nn.BatchNorm1d``.

    Parameters
    ----------
    num_features : int
        Number of channels C.
    eps : float, default 1e-5
        Added to the variance inside the square root.
    momentum : float in [0, 1] or None, default 0.1
        Weight of the new batch in the running averages; ``None`` gives the cumulative
        average over all batches seen (weight ``1 / num_batches_tracked``).
    affine : bool, default True
        Learn a per-channel ``weight`` (gamma, starts at 1) and ``bias`` (beta, starts at 0).
    track_running_stats : bool, default True
        Keep ``running_mean`` (starts at 0), ``running_var`` (starts at 1) and
        ``num_batches_tracked``. If False, evaluation mode uses batch statistics as well.
    bias : bool, default True
        Keyword-only, as in torch 2.13: with ``affine=True, bias=False`` only ``weight`` is
        learned.
    dtype : float32 or float64, default float64
        dtype of the parameters and buffers (the output always has the input's dtype).

    Attributes
    ----------
    training : bool
    weight, bias : ndarray of shape (C,) or None
    grad_weight, grad_bias : ndarray of shape (C,) or None
        Set by :meth:`backward`.
    running_mean, running_var : ndarray of shape (C,) or None
    num_batches_tracked : int or None

    Examples
    --------
    >>> import numpy as np
    >>> bn = BatchNorm1d(2)
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> bn(x).round(4)
    array([[-1., -1.],
           [ 1.,  1.]])
    >>> bn.running_mean, bn.running_var, bn.num_batches_tracked
    (array([0.2, 2. ]), array([ 1.1, 20.9]), 1)
    >>> dx = bn.backward(np.ones_like(x))
    >>> bn.grad_bias
    array([2., 2.])
    >>> bn.eval()(x).round(3)
    array([[0.763, 1.75 ],
           [2.67 , 6.125]])
    """

    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Spatial batch normalization over (N, C, H, W), like ``torch.nn.BatchNorm2d``.

    Statistics are per channel over the batch and both spatial axes (``m = N * H * W``
    values each). Parameters and attributes as :class:`BatchNorm1d`.

    Examples
    --------
    >>> import numpy as np
    >>> bn = BatchNorm2d(3)
    >>> x = np.random.default_rng(0).normal(5.0, 2.0, size=(4, 3, 8, 8))
    >>> y = bn(x)
    >>> y.mean(axis=(0, 2, 3)).round(6) + 0.0, y.var(axis=(0, 2, 3)).round(3)
    (array([0., 0., 0.]), array([1., 1., 1.]))
    """

    _ranks = (4,)


class BatchNorm3d(_BatchNorm):
    """Volumetric batch normalization over (N, C, D, H, W), like ``torch.nn.BatchNorm3d``.

    Statistics are per channel over the batch and the three spatial axes
    (``m = N * D * H * W`` values each). Parameters and attributes as :class:`BatchNorm1d`.

    Examples
    --------
    >>> import numpy as np
    >>> bn = BatchNorm3d(2)
    >>> x = np.random.default_rng(0).normal(5.0, 2.0, size=(2, 2, 3, 4, 4))
    >>> y = bn(x)
    >>> y.mean(axis=(0, 2, 3, 4)).round(6) + 0.0, y.var(axis=(0, 2, 3, 4)).round(3)
    (array([0., 0.]), array([1., 1.]))
    """

    _ranks = (5,)

"""Batch normalization as plain numpy functions.

The conventions are PyTorch's: the channel axis is 1 (inputs ``(N, C)``, ``(N, C, L)`` or
``(N, C, H, W)``), statistics are taken per channel over every other axis, the batch is
normalized with the *biased* variance, ``running_var`` stores the *unbiased* one, and
``momentum`` weights the new batch: ``running = (1 - momentum) * running + momentum * batch``.

Three entry points:

* :func:`batch_norm` is the numpy twin of ``torch.nn.functional.batch_norm``.
* :func:`batch_norm_forward` is the training-mode forward pass of Ioffe & Szegedy's
  Algorithm 1; it returns the output and a :class:`BatchNormCache` for the backward pass.
* :func:`batch_norm_backward` (closed form, few passes over the data) and
  :func:`batch_norm_backward_graph` (node by node through the computational graph) return
  ``(dx, dgamma, dbeta)``; they agree to rounding error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bn_core._validation import (
    check_batch_size,
    check_buffer,
    check_eps,
    check_input,
    check_momentum,
    check_per_channel,
    raise_non_finite,
)

__all__ = [
    "BatchNormCache",
    "batch_norm",
    "batch_norm_forward",
    "batch_norm_backward",
    "batch_norm_backward_graph",
]


# --------------------------------------------------------------------------------------
# Layout helpers. Internally an input is seen as (N, C) or, for ndim >= 3, as (N, C, S)
# with S = L or H * W: a reshape of a C-contiguous array is free, and per-channel vectors
# then broadcast as (C,) or (C, 1).
# --------------------------------------------------------------------------------------


def _view(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        return a
    return a.reshape(a.shape[0], a.shape[1], math.prod(a.shape[2:]))  # not -1: N may be 0


def _col(v: np.ndarray, ndim: int, near: np.ndarray | None = None) -> np.ndarray:
    """Per-channel vector (C,) shaped to broadcast against a (N, C) or (N, C, S) view.

    For a (N, C) view, ``near`` is the array the operation writes: the vector is then
    copied to an address half a page away from it (modulo 4096). Each row of a (N, C)
    array is read against the same vector; when the two sit at the same offset within a
    page (always so, row after row, when C * itemsize is a multiple of 4096), the CPU
    stalls on false store-to-load dependencies ("4K aliasing"): measured 3.7x slower for
    a float32 (256, 4096) eval pass. The copy costs C elements.
    """
    if ndim != 2:
        return v[:, None]
    if near is None or v.nbytes < 4096:
        return v
    step = 4096 // v.itemsize
    buf = np.empty(v.size + step, v.dtype)
    start = ((near.ctypes.data + 2048 - buf.ctypes.data) % 4096) // v.itemsize
    placed = buf[start : start + v.size]
    placed[...] = v
    return placed


# Blocks of about this many bytes per array along the batch axis: a chain of elementwise
# operations on one block keeps its operands in the CPU's L2 cache (512 KiB per core on the
# course's machine) instead of streaming the whole array from L3 or memory once per
# operation (float32 multiply: 0.23 ns per element on a 128 KiB array, 0.41 on a 4 MiB one).
# Used for (N, C, S) views only, one or a few examples per block: forward+backward at
# (64, 64, 32, 32) took 5-14% less time. For (N, C) it gained nothing measurable (the
# broadcast multiply costs as much in cache as from L3) and adds a Python loop, so the 2-D
# path keeps whole-array operations.
_BLOCK_BYTES = 128 * 1024


def _row_blocks(a: np.ndarray) -> list[slice]:
    """Slices of the batch axis of ``a``: blocks of about ``_BLOCK_BYTES`` for a (N, C, S)
    view, the whole array for a (N, C) one."""
    if a.ndim == 2:
        return [slice(None)]
    row = a.nbytes // max(a.shape[0], 1)
    step = max(1, _BLOCK_BYTES // max(row, 1))
    return [slice(i, i + step) for i in range(0, a.shape[0], step)]


def _channel_sum(a: np.ndarray) -> np.ndarray:
    """Sum a (N, C) or (N, C, S) view over every axis but the channel axis, shape (C,)."""
    if a.ndim == 2:
        return a.sum(axis=0)  # a row-by-row vector add, in memory order
    return np.einsum("ncs->c", a)  # one pass, no temporary (faster than sum(axis=(0, 2)))


def _channel_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-channel ``sum(a * b)`` of two same-shape views, without a full-size temporary."""
    if a.ndim == 2:
        return np.einsum("nc,nc->c", a, b)
    if _vecdot is None:  # numpy < 2.0
        return np.einsum("ncs,ncs->c", a, b)
    return _vecdot(a, b).sum(axis=0)  # contiguous dot products along S, then over N


_vecdot = getattr(np, "vecdot", None)


# Re-center only when the first mean was off by more than rounding noise (in units of the
# standard deviation): it costs one more pass over the data.
_RECENTER_TOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-14}


def _batch_axes(ndim: int) -> tuple[int, ...]:
    return (0, *range(2, ndim))


@dataclass
class BatchNormCache:
    """What the backward pass needs from the forward pass.

    Attributes
    ----------
    x_hat : ndarray
        The normalized input, same shape and dtype as the input.
    mean : ndarray, shape (C,)
        Per-channel mean used to normalize (the batch mean in training, the running mean
        in evaluation).
    var : ndarray, shape (C,)
        Per-channel variance used to normalize (biased batch variance in training, the
        running variance in evaluation).
    inv_std : ndarray, shape (C,)
        ``1 / sqrt(var + eps)``.
    gamma : ndarray of shape (C,) or None
        The scale (``None`` means 1), in the input's dtype.
    eps : float
        The epsilon added to the variance.
    training : bool
        True if batch statistics were used (then the gradient flows through ``mean`` and
        ``var`` too); False for evaluation mode, where they are constants.
    """

    x_hat: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    inv_std: np.ndarray
    gamma: np.ndarray | None
    eps: float
    training: bool = True

    @property
    def m(self) -> int:
        """Number of values per channel (N, N*L or N*H*W)."""
        return self.x_hat.size // self.x_hat.shape[1]

    @property
    def x_centered(self) -> np.ndarray:
        """The centered input ``x - mean``, recomputed as ``x_hat / inv_std``."""
        shape = (-1,) + (1,) * (self.x_hat.ndim - 2)
        return self.x_hat / self.inv_std.reshape(shape)


def _param(a, name, C, x):
    a = check_per_channel(a, name, C, x.shape)
    return None if a is None else a.astype(x.dtype, copy=False)


# Non-finite values are either reported by our own checks (with a better message than
# numpy's warnings) or let through on purpose with check_finite=False.
_quiet = np.errstate(over="ignore", invalid="ignore", divide="ignore")


@_quiet
def _train_forward(x, gamma, beta, eps, check_finite):
    """Algorithm 1 of the paper on validated inputs; returns out, cache."""
    xv = _view(x)
    nd = xv.ndim
    m = x.size // x.shape[1]
    m_ = x.dtype.type(m)
    # 1. mini-batch mean
    mean = _channel_sum(xv) / m_
    if check_finite:
        raise_non_finite("input", mean, x.shape)
    # 2. mini-batch (biased) variance from the centered input, never E[x^2] - E[x]^2, which
    #    cancels catastrophically when |mean| >> std. "Corrected two-pass" (Chan, Golub &
    #    LeVeque 1983): delta, the mean of the centered input, is the rounding error of the
    #    first mean (large for float32 data with a big offset); it corrects mean and var.
    xc = np.empty(xv.shape, x.dtype)
    np.subtract(xv, _col(mean, nd, xc), out=xc)
    delta = _channel_sum(xc) / m_
    var = _channel_dot(xc, xc) / m_ - delta * delta
    np.maximum(var, 0, out=var)
    if check_finite:
        raise_non_finite("input (its squared deviations)", var, x.shape)
    mean += delta
    inv_std = 1.0 / np.sqrt(var + x.dtype.type(eps))
    # 3. normalize (xc's buffer becomes x_hat: no new temporary), 4. scale and shift; one
    #    block of rows at a time, so that the block stays in cache through the whole chain
    recenter = np.any(np.abs(delta) * inv_std > _RECENTER_TOL[x.dtype])
    x_hat = xc
    out = np.empty(x_hat.shape, x.dtype)
    d_ = _col(delta, nd, xc)
    s_ = _col(inv_std, nd, xc)
    g_ = None if gamma is None else _col(gamma, nd, out)
    b_ = None if beta is None else _col(beta, nd, out)
    for rows in _row_blocks(xc):
        xh, o = x_hat[rows], out[rows]
        if recenter:
            np.subtract(xh, d_, out=xh)
        np.multiply(xh, s_, out=xh)
        if g_ is not None:
            np.multiply(xh, g_, out=o)
        else:
            o[...] = xh
        if b_ is not None:
            np.add(o, b_, out=o)
    cache = BatchNormCache(
        x_hat=x_hat.reshape(x.shape),
        mean=mean,
        var=var,
        inv_std=inv_std,
        gamma=gamma,
        eps=eps,
        training=True,
    )
    return out.reshape(x.shape), cache


def _split_mean(mean, dt):
    """``mean`` (float64) as ``hi + lo``: ``hi`` rounded to ``dt``, ``lo`` the float64 rest.

    ``x - hi`` is exact in ``dt`` for an ``x`` near the mean (Sterbenz), so no digit of the
    small centered value is lost; ``lo`` (non-zero only when the buffers are wider than the
    input, e.g. float64 buffers with float32 input) is folded into the per-channel shift.
    """
    hi = mean.astype(dt)
    return hi, mean - hi.astype(np.float64)


@_quiet
def _eval_forward(x, mean, var, gamma, beta, eps, check_finite, need_cache):
    """Normalize with given (running) statistics: one affine map per channel.

    Computed in torch's order, ``(x - mean) * (gamma * inv_std) + beta``: centering first
    keeps the output accurate when ``|mean| >> std``. The tempting precomputed form
    ``x * scale + (beta - mean * scale)`` is one pass cheaper but, in float32, loses
    ``|mean| / std`` ulps to cancellation (max relative error 5e-5 at mean 1e3, std 1).
    """
    dt = x.dtype
    mean = mean.astype(np.float64)
    var = var.astype(np.float64)
    if check_finite:
        raise_non_finite("running_mean", mean, mean.shape)
        raise_non_finite("running_var", var, var.shape)
        if (var + eps <= 0).any():
            raise ValueError(
                f"running_var + eps must be > 0, got running_var min {var.min()!r}: the "
                f"variance buffer holds a negative value; reset it to ones"
            )
        if not np.isfinite(x).all():
            raise_non_finite("input", np.array([np.nan]), x.shape)
    inv_std = 1.0 / np.sqrt(var + eps)
    g = np.ones_like(mean) if gamma is None else gamma.astype(np.float64)
    b = np.zeros_like(mean) if beta is None else beta.astype(np.float64)
    xv = _view(x)
    nd = xv.ndim
    hi, lo = _split_mean(mean, dt)
    centered = np.empty(xv.shape, dt)
    np.subtract(xv, _col(hi, nd, centered), out=centered)  # exact near the mean
    if need_cache:
        x_hat = np.multiply(centered, _col(inv_std.astype(dt), nd, centered), out=centered)
        if lo.any():
            np.add(x_hat, _col((-lo * inv_std).astype(dt), nd, x_hat), out=x_hat)
        out = np.empty(xv.shape, dt)
        np.multiply(x_hat, _col(g.astype(dt), nd, out), out=out)
        np.add(out, _col(b.astype(dt), nd, out), out=out)
        cache = BatchNormCache(
            x_hat=x_hat.reshape(x.shape),
            mean=mean.astype(dt),
            var=var.astype(dt),
            inv_std=inv_std.astype(dt),
            gamma=gamma,
            eps=eps,
            training=False,
        )
        return out.reshape(x.shape), cache
    scale = g * inv_std
    out = np.multiply(centered, _col(scale.astype(dt), nd, centered), out=centered)
    np.add(out, _col((b - lo * scale).astype(dt), nd, out), out=out)
    return out.reshape(x.shape), None


def _empty_cache(x, gamma, eps, training):
    """Cache of an empty batch (N = 0): no statistics exist, so they are NaN."""
    nan = np.full(x.shape[1], np.nan, x.dtype)
    return BatchNormCache(
        x_hat=np.empty_like(x, order="C"),
        mean=nan,
        var=nan.copy(),
        inv_std=nan.copy(),
        gamma=gamma,
        eps=eps,
        training=training,
    )


def _batch_norm_impl(
    x,
    running_mean,
    running_var,
    weight,
    bias,
    training,
    momentum,
    eps,
    check_finite,
    need_cache=False,
):
    """Shared body of :func:`batch_norm` and the layers; returns (out, cache or None)."""
    x = check_input(x, "input", allow_half=True)
    if x.dtype == np.float16:
        # torch's rule for half precision: statistics and arithmetic in float32, the output
        # rounded back (the cache stays float32; backward returns float32 gradients)
        out, cache = _batch_norm_impl(
            x.astype(np.float32),
            running_mean,
            running_var,
            weight,
            bias,
            training,
            momentum,
            eps,
            check_finite,
            need_cache,
        )
        return out.astype(np.float16), cache
    C = x.shape[1]
    running_mean = check_buffer(running_mean, "running_mean", C, x.shape)
    running_var = check_buffer(running_var, "running_var", C, x.shape)
    weight = _param(weight, "weight", C, x)
    bias = _param(bias, "bias", C, x)
    eps = check_eps(eps)
    if not training:
        if running_mean is None or running_var is None:
            missing = "running_mean" if running_mean is None else "running_var"
            raise ValueError(
                f"{missing} must be defined in evaluation mode (training=False): pass the "
                f"running statistics, or training=True to normalize with batch statistics"
            )
        return _eval_forward(
            x, running_mean, running_var, weight, bias, eps, check_finite, need_cache
        )
    if (running_mean is None) != (running_var is None):
        # torch raises too: tracking one statistic but not the other is always a mistake
        given, missing = ("running_mean", "running_var")
        if running_mean is None:
            given, missing = missing, given
        raise ValueError(
            f"running_mean and running_var must either both be None or neither be None "
            f"(torch's rule): {given} was given without {missing}; pass both running "
            f"buffers (they are updated together), or neither to skip tracking"
        )
    m = check_batch_size(x)
    if running_mean is not None:
        momentum = check_momentum(momentum)
        for name, buf in (("running_mean", running_mean), ("running_var", running_var)):
            if not buf.flags.writeable:
                raise ValueError(
                    f"{name} is read-only, but training updates it in place; pass a writeable "
                    f"array (e.g. {name}.copy()), or None to skip tracking"
                )
    if m == 0:
        # An empty batch (N = 0, or an empty spatial axis), as torch: an empty output, and
        # the running buffers are left as they are (there is no batch statistic to add).
        out = np.empty_like(x, order="C")
        return out, (_empty_cache(out, weight, eps, True) if need_cache else None)
    out, cache = _train_forward(x, weight, bias, eps, check_finite)
    if running_mean is not None:
        running_mean *= 1.0 - momentum
        running_mean += momentum * cache.mean.astype(running_mean.dtype)
        unbiased = cache.var.astype(np.float64) * (m / (m - 1))
        running_var *= 1.0 - momentum
        running_var += (momentum * unbiased).astype(running_var.dtype)
    return out, cache


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
    """Batch normalization, the numpy twin of ``torch.nn.functional.batch_norm``.

    In training mode the input is normalized with the statistics of the batch (biased
    variance) and the running buffers, if given, are updated **in place**:
    ``running_mean = (1 - momentum) * running_mean + momentum * batch_mean`` and the same
    for ``running_var`` with the *unbiased* batch variance. In evaluation mode the running
    buffers are used instead and nothing is updated.

    Edge cases follow torch 2.13: an empty batch (``N = 0``, or an empty spatial axis) gives
    an empty output and leaves the running buffers as they are, in both modes; float16
    input is normalized in float32 (statistics, buffer updates) and returned as float16.

    Parameters
    ----------
    input : ndarray, shape (N, C) or (N, C, *spatial)
        float32 or float64 input (float16 is computed in float32); channels on axis 1.
        Never modified.
    running_mean, running_var : ndarray of shape (C,) or None
        Running statistics. Required when ``training=False``; when training, pass both
        (updated in place) or neither (nothing is tracked).
    weight, bias : ndarray of shape (C,), optional
        The learnable scale gamma (default 1) and shift beta (default 0).
    training : bool, default False
        Use batch statistics (and update the buffers) if True.
    momentum : float in [0, 1], default 0.1
        Weight of the new batch in the running averages (torch's convention; a Keras or
        CS231n decay ``d`` corresponds to ``momentum = 1 - d``).
    eps : float > 0, default 1e-5
        Added to the variance inside the square root.
    check_finite : bool, default True
        Raise if the input holds NaN or inf (in training this costs nothing: the per-channel
        sums are checked). ``False`` lets them propagate, as torch does.

    Returns
    -------
    ndarray
        Output with the shape and dtype of ``input``.

    Raises
    ------
    TypeError
        Non-float input or parameters, or a running buffer that is not an ndarray.
    ValueError
        Rank below 2, a per-channel array whose length is not C, a single value per channel
        in training, ``eps <= 0``, ``momentum`` outside [0, 1], missing running statistics
        in evaluation mode, one running buffer without the other in training, or non-finite
        values (with ``check_finite``).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> rm, rv = np.zeros(2), np.ones(2)
    >>> batch_norm(x, rm, rv, training=True).round(4)
    array([[-1., -1.],
           [ 1.,  1.]])
    >>> rm, rv  # updated in place: 0.1 * batch mean, 0.9 + 0.1 * unbiased variance
    (array([0.2, 2. ]), array([ 1.1, 20.9]))
    >>> batch_norm(x, rm, rv).round(3)  # evaluation: running statistics
    array([[0.763, 1.75 ],
           [2.67 , 6.125]])
    """
    out, _ = _batch_norm_impl(
        input, running_mean, running_var, weight, bias, training, momentum, eps, check_finite
    )
    return out


def batch_norm_forward(x, gamma, beta, eps=1e-5, *, check_finite=True):
    """Training-mode forward pass (the paper's Algorithm 1), keeping what backward needs.

    ``y = gamma * (x - mean) / sqrt(var + eps) + beta`` with the mean and biased variance
    taken per channel over every axis but axis 1.

    Parameters
    ----------
    x : ndarray, shape (N, C), (N, C, L) or (N, C, H, W)
        float32 or float64 input. Never modified.
    gamma, beta : ndarray of shape (C,) or None
        Scale and shift (``None`` means 1 and 0).
    eps : float > 0, default 1e-5
        Added to the variance inside the square root.
    check_finite : bool, default True
        Raise if the input holds NaN or inf (checked on the per-channel sums, for free).

    Returns
    -------
    out : ndarray
        Same shape and dtype as ``x``.
    cache : BatchNormCache
        Normalized input, batch mean, biased variance, inverse std, gamma and eps.

    Raises
    ------
    TypeError, ValueError
        As :func:`batch_norm`.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 60.0]])
    >>> out, cache = batch_norm_forward(x, np.ones(2), np.zeros(2))
    >>> out.mean(axis=0).round(6), out.var(axis=0).round(4)
    (array([0., 0.]), array([1., 1.]))
    >>> cache.mean, cache.var.round(3)
    (array([ 2., 30.]), array([  0.667, 466.667]))
    """
    x = check_input(x, "x")
    C = x.shape[1]
    gamma = _param(gamma, "gamma", C, x)
    beta = _param(beta, "beta", C, x)
    eps = check_eps(eps)
    if check_batch_size(x) == 0:  # empty batch: empty output, no statistics (as torch)
        out = np.empty_like(x, order="C")
        return out, _empty_cache(out, gamma, eps, True)
    return _train_forward(x, gamma, beta, eps, check_finite)


def _check_grad(grad_out, cache):
    if not isinstance(cache, BatchNormCache):
        raise TypeError(
            f"cache must be the BatchNormCache returned by batch_norm_forward, got "
            f"{type(cache).__name__}"
        )
    dy = check_input(grad_out, "grad_out", allow_half=True)  # computed in the cache's dtype
    if dy.shape != cache.x_hat.shape:
        raise ValueError(
            f"grad_out must have the shape of the forward output {tuple(cache.x_hat.shape)}, "
            f"got {tuple(dy.shape)}; pass the gradient of the loss with respect to the output"
        )
    return dy.astype(cache.x_hat.dtype, copy=False)


@_quiet
def batch_norm_backward(grad_out, cache, *, check_finite=True):
    """Backward pass in closed form: ``(dx, dgamma, dbeta)`` in a few passes over the data.

    With ``k = gamma / sqrt(var + eps)`` and ``m`` values per channel,

    ``dbeta = sum(dy)``, ``dgamma = sum(dy * x_hat)`` and
    ``dx = k * (dy - dbeta / m - x_hat * dgamma / m)``

    (sums over every axis but the channel axis). The last formula is the graph backward
    (:func:`batch_norm_backward_graph`) with the paths through the mean and the variance
    collected algebraically. For a cache from evaluation mode the statistics are constants
    and ``dx = k * dy``.

    Parameters
    ----------
    grad_out : ndarray
        Gradient of the loss with respect to the forward output (same shape).
    cache : BatchNormCache
        From :func:`batch_norm_forward`.
    check_finite : bool, default True
        Raise if ``grad_out`` holds NaN or inf (checked on ``dbeta``, for free).

    Returns
    -------
    dx : ndarray
        Same shape and dtype as the input.
    dgamma, dbeta : ndarray, shape (C,)
        Gradients of the scale and shift.

    Raises
    ------
    TypeError, ValueError
        Wrong cache type, non-float ``grad_out``, shape mismatch, non-finite ``grad_out``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, dy = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
    >>> out, cache = batch_norm_forward(x, np.ones(3), np.zeros(3))
    >>> dx, dgamma, dbeta = batch_norm_backward(dy, cache)
    >>> bool(np.allclose(dx.sum(axis=0), 0))  # a shift of x does not change the output
    True
    """
    dy = _check_grad(grad_out, cache)
    x_hat = _view(cache.x_hat)
    dyv = _view(dy)
    nd = x_hat.ndim
    dt = x_hat.dtype
    m = dt.type(cache.m)
    k = cache.inv_std if cache.gamma is None else cache.gamma * cache.inv_std
    dbeta = _channel_sum(dyv)
    if check_finite:
        raise_non_finite("grad_out", dbeta, dy.shape)
    dgamma = _channel_dot(dyv, x_hat)
    if not cache.training:
        dx = np.empty(dyv.shape, dt)
        return np.multiply(dyv, _col(k, nd, dx), out=dx).reshape(dy.shape), dgamma, dbeta
    # dx = k * (dy - dbeta/m - x_hat * dgamma/m), in one buffer, one block of rows at a time
    # (the block stays in cache through the four operations)
    t = np.empty(dyv.shape, dt)
    a_, b_, k_ = _col(dgamma / m, nd, t), _col(dbeta / m, nd, t), _col(k, nd, t)
    for rows in _row_blocks(t):
        tb = t[rows]
        np.multiply(x_hat[rows], a_, out=tb)
        np.subtract(dyv[rows], tb, out=tb)
        np.subtract(tb, b_, out=tb)
        np.multiply(tb, k_, out=tb)
    return t.reshape(dy.shape), dgamma, dbeta


def batch_norm_backward_graph(grad_out, cache):
    """Backward pass node by node through the computational graph (the derivation).

    The forward graph, per channel over its ``m`` values::

        mu    = mean(x)                 # 1. batch mean
        xc    = x - mu                  # 2. centered input
        var   = mean(xc ** 2)           # 3. batch variance (biased)
        istd  = 1 / sqrt(var + eps)     # 4. inverse standard deviation
        x_hat = xc * istd               # 5. normalized input
        y     = gamma * x_hat + beta    # 6. scale, 7. shift

    Walking it backwards, each node receives the gradient of its output and passes the
    chain rule to its inputs; a node used twice (``xc`` feeds ``var`` and ``x_hat``, ``x``
    feeds ``mu`` and ``xc``) adds up the gradients from both paths. Same result as
    :func:`batch_norm_backward`, to rounding error, only slower.

    Parameters
    ----------
    grad_out : ndarray
        Gradient of the loss with respect to the output ``y``.
    cache : BatchNormCache
        From :func:`batch_norm_forward`.

    Returns
    -------
    dx : ndarray
        Same shape and dtype as the input.
    dgamma, dbeta : ndarray, shape (C,)

    Raises
    ------
    TypeError, ValueError
        Wrong cache type, non-float ``grad_out`` or a shape that differs from the output.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, dy = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
    >>> out, cache = batch_norm_forward(x, rng.normal(size=3), rng.normal(size=3))
    >>> [bool(np.allclose(a, b)) for a, b in zip(batch_norm_backward_graph(dy, cache),
    ...                                             batch_norm_backward(dy, cache))]
    [True, True, True]
    """
    dy = _check_grad(grad_out, cache)
    axes = _batch_axes(dy.ndim)  # every axis but the channel axis
    shape = (-1,) + (1,) * (dy.ndim - 2)  # per-channel values broadcast along axis 1
    m = cache.m
    gamma = dy.dtype.type(1) if cache.gamma is None else cache.gamma.reshape(shape)
    var, istd = cache.var.reshape(shape), cache.inv_std.reshape(shape)
    x_hat, xc, eps = cache.x_hat, cache.x_centered, cache.eps

    # 7. y = s + beta:        beta is added to every value of its channel
    dbeta = dy.sum(axis=axes)
    # 6. s = gamma * x_hat:   gamma multiplies every x_hat of its channel
    dgamma = (dy * x_hat).sum(axis=axes)
    dx_hat = dy * gamma
    if not cache.training:  # evaluation: mu and var are constants, x_hat = (x - mu) * istd
        return dx_hat * istd, dgamma, dbeta
    # 5. x_hat = xc * istd:   two inputs; istd is shared by the m values of a channel
    dxc = dx_hat * istd  # path 1 into xc
    distd = (dx_hat * xc).sum(axis=axes, keepdims=True)
    # 4. istd = (var + eps) ** (-1/2)
    dvar = distd * -0.5 * (var + eps) ** -1.5
    # 3. var = sum(xc ** 2) / m
    dxc = dxc + dvar * 2.0 * xc / m  # path 2 into xc
    # 2. xc = x - mu:         two inputs; mu is shared by the m values of a channel
    dmu = -dxc.sum(axis=axes, keepdims=True)
    # 1. mu = sum(x) / m:     x reaches the loss through xc (path 1) and through mu (path 2)
    dx = dxc + dmu / m
    return dx, dgamma, dbeta

"""Batch renormalization (Ioffe, 2017), in numpy.

Batch normalization trains with the statistics of the mini-batch and infers with the running
ones; when batches are small or not i.i.d. the two disagree. Batch renormalization keeps the
mini-batch normalization but corrects it, in training, towards the running statistics
(Algorithm 1 of the paper), per channel::

    mu_B, sigma_B = batch mean, sqrt(batch biased variance + eps)
    mu, sigma     = running_mean, sqrt(running_var + eps)
    r = stop_gradient(clip(sigma_B / sigma, 1 / rmax, rmax))
    d = stop_gradient(clip((mu_B - mu) / sigma, -dmax, dmax))
    x_hat = (x - mu_B) / sigma_B * r + d
    y = gamma * x_hat + beta

then the running statistics are updated. With ``r = 1, d = 0`` (``rmax = 1, dmax = 0``) this is
batch normalization. Inference uses ``(x - mu) / sigma``, exactly as batch normalization does.

Conventions are bn_core's (torch's): channel axis 1, ``momentum`` weights the new batch, and
the running buffers are ``running_mean`` and ``running_var`` (the *unbiased* batch variance is
averaged, as in ``torch.nn.BatchNorm``; the paper averages ``sigma_B`` itself, a different
estimator of the same quantity). The paper's default momentum for these averages is larger
than BN's usual one, since r and d rely on them; it also starts with ``rmax = 1, dmax = 0`` and
relaxes them over training: pass the values for the current step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bn_core._validation import (
    check_batch_size,
    check_buffer,
    check_eps,
    check_input,
    check_momentum,
    check_per_channel,
)

__all__ = ["RenormCache", "batch_renorm", "batch_renorm_backward", "batch_renorm_forward"]


@dataclass
class RenormCache:
    """What the backward pass needs from the training forward pass.

    Attributes
    ----------
    x_tilde : ndarray
        ``(x - mu_B) / sigma_B``, the plain batch-normalized input.
    inv_std : ndarray, shape (C,)
        ``1 / sigma_B``.
    r, d : ndarray, shape (C,)
        The correction factors (constants for the gradient).
    gamma : ndarray of shape (C,) or None
    """

    x_tilde: np.ndarray
    inv_std: np.ndarray
    r: np.ndarray
    d: np.ndarray
    gamma: np.ndarray | None


def _col(v, ndim):
    return v.reshape((-1,) + (1,) * (ndim - 2))


def _axes(ndim):
    return (0, *range(2, ndim))


def _check_clip(rmax, dmax):
    if not (np.isfinite(rmax) and rmax >= 1):
        raise ValueError(
            f"rmax must be a finite number >= 1 (r is clipped to [1/rmax, rmax]), got {rmax!r}"
        )
    if not (np.isfinite(dmax) and dmax >= 0):
        raise ValueError(
            f"dmax must be a finite number >= 0 (d is clipped to [-dmax, dmax]), got {dmax!r}"
        )
    return float(rmax), float(dmax)


def batch_renorm_forward(
    x,
    gamma,
    beta,
    running_mean,
    running_var,
    *,
    rmax=3.0,
    dmax=5.0,
    momentum=0.01,
    eps=1e-5,
):
    """Training-mode forward pass of batch renormalization; updates the buffers in place.

    Parameters
    ----------
    x : ndarray, shape (N, C) or (N, C, *spatial)
        float32 or float64.
    gamma, beta : ndarray of shape (C,) or None
        Scale and shift (``None`` means 1 and 0).
    running_mean, running_var : ndarray, shape (C,)
        The running statistics r and d are computed from (before this batch updates them).
    rmax : float >= 1, default 3
        ``r`` is clipped to ``[1 / rmax, rmax]`` (1 gives batch normalization's forward).
    dmax : float >= 0, default 5
        ``d`` is clipped to ``[-dmax, dmax]`` (0 gives batch normalization's forward).
    momentum : float in [0, 1], default 0.01
        Weight of the new batch in the running averages.
    eps : float > 0, default 1e-5

    Returns
    -------
    out : ndarray
    cache : RenormCache

    Raises
    ------
    TypeError, ValueError
        Bad shapes, dtypes, a single value per channel, ``rmax < 1`` or ``dmax < 0``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0], [3.0]])
    >>> rm, rv = np.array([0.0]), np.array([1.0])
    >>> out, cache = batch_renorm_forward(x, None, None, rm, rv)
    >>> cache.r.round(3), cache.d.round(3), out.ravel().round(3)
    (array([1.]), array([2.]), array([1., 3.]))
    """
    x = check_input(x, "x")
    C = x.shape[1]
    gamma = check_per_channel(gamma, "gamma", C, x.shape)
    beta = check_per_channel(beta, "beta", C, x.shape)
    running_mean = check_buffer(running_mean, "running_mean", C, x.shape)
    running_var = check_buffer(running_var, "running_var", C, x.shape)
    if running_mean is None or running_var is None:
        raise ValueError(
            "batch renormalization needs running_mean and running_var (r and d compare the "
            "batch with them); start them at zeros and ones"
        )
    eps = check_eps(eps)
    momentum = check_momentum(momentum)
    rmax, dmax = _check_clip(rmax, dmax)
    m = check_batch_size(x)
    dt = x.dtype
    axes = _axes(x.ndim)
    mu_b = x.mean(axis=axes)
    xc = x - _col(mu_b, x.ndim)
    var_b = (xc * xc).mean(axis=axes)
    sigma_b = np.sqrt(var_b + dt.type(eps))
    sigma = np.sqrt(running_var.astype(np.float64) + eps)
    r = np.clip(sigma_b / sigma, 1.0 / rmax, rmax).astype(dt)
    d = np.clip((mu_b - running_mean) / sigma, -dmax, dmax).astype(dt)
    inv_std = (1.0 / sigma_b).astype(dt)
    x_tilde = xc * _col(inv_std, x.ndim)
    x_hat = x_tilde * _col(r, x.ndim) + _col(d, x.ndim)
    out = x_hat if gamma is None else x_hat * _col(gamma.astype(dt), x.ndim)
    if beta is not None:
        out = out + _col(beta.astype(dt), x.ndim)
    # update after r and d were computed from the previous running statistics
    running_mean *= 1.0 - momentum
    running_mean += (momentum * mu_b).astype(running_mean.dtype)
    running_var *= 1.0 - momentum
    running_var += (momentum * var_b.astype(np.float64) * m / (m - 1)).astype(running_var.dtype)
    g = None if gamma is None else gamma.astype(dt)
    return out.astype(dt, copy=False), RenormCache(x_tilde, inv_std, r, d, g)


def batch_renorm_backward(grad_out, cache):
    """Backward pass of batch renormalization, with r and d held constant (stop-gradient).

    With ``k = gamma * r / sigma_B`` and means over the ``m`` values of a channel,
    ``dx = k * (dy - mean(dy) - x_tilde * mean(dy * x_tilde))``: batch normalization's
    closed form with the scale multiplied by ``r``. ``dgamma = sum(dy * x_hat)`` and
    ``dbeta = sum(dy)``.

    Parameters
    ----------
    grad_out : ndarray
        Gradient of the loss with respect to the output.
    cache : RenormCache
        From :func:`batch_renorm_forward`.

    Returns
    -------
    dx : ndarray
    dgamma, dbeta : ndarray, shape (C,)

    Examples
    --------
    >>> import numpy as np
    >>> x, dy = np.array([[1.0], [2.0], [6.0]]), np.array([[1.0], [0.0], [0.0]])
    >>> out, cache = batch_renorm_forward(x, None, None, np.zeros(1), np.ones(1), rmax=1, dmax=0)
    >>> batch_renorm_backward(dy, cache)[0].ravel().round(4)  # r=1, d=0: BN's gradient
    array([ 0.1763, -0.2204,  0.0441])
    """
    if not isinstance(cache, RenormCache):
        raise TypeError(
            f"cache must be the RenormCache returned by batch_renorm_forward, got "
            f"{type(cache).__name__}"
        )
    dy = check_input(grad_out, "grad_out")
    if dy.shape != cache.x_tilde.shape:
        raise ValueError(
            f"grad_out must have the shape of the forward output {tuple(cache.x_tilde.shape)}, "
            f"got {tuple(dy.shape)}"
        )
    dy = dy.astype(cache.x_tilde.dtype, copy=False)
    nd = dy.ndim
    axes = _axes(nd)
    xt = cache.x_tilde
    x_hat = xt * _col(cache.r, nd) + _col(cache.d, nd)
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * x_hat).sum(axis=axes)
    k = cache.r * cache.inv_std
    if cache.gamma is not None:
        k = k * cache.gamma
    mean_dy = dy.mean(axis=axes)
    mean_dy_xt = (dy * xt).mean(axis=axes)
    dx = _col(k, nd) * (dy - _col(mean_dy, nd) - xt * _col(mean_dy_xt, nd))
    return dx, dgamma, dbeta


def batch_renorm(
    input,
    running_mean,
    running_var,
    weight=None,
    bias=None,
    training=False,
    momentum=0.01,
    eps=1e-5,
    *,
    rmax=3.0,
    dmax=5.0,
):
    """Batch renormalization, in the style of ``torch.nn.functional.batch_norm``.

    Training: :func:`batch_renorm_forward` (buffers updated in place). Evaluation: the running
    statistics, exactly as batch normalization.

    Parameters
    ----------
    input : ndarray, shape (N, C, ...)
    running_mean, running_var : ndarray, shape (C,)
    weight, bias : ndarray of shape (C,), optional
    training : bool, default False
    momentum : float, default 0.01
    eps : float, default 1e-5
    rmax, dmax : float, default 3 and 5
        Clipping of r and d (training only).

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0], [3.0]])
    >>> batch_renorm(x, np.array([2.0]), np.array([1.0 - 1e-5])).ravel().round(3)
    array([-1.,  1.])
    """
    if training:
        return batch_renorm_forward(
            input,
            weight,
            bias,
            running_mean,
            running_var,
            rmax=rmax,
            dmax=dmax,
            momentum=momentum,
            eps=eps,
        )[0]
    from bn_core.functional import batch_norm

    return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)

"""Reference implementations the graders compare a learner's answers with.

Written here with numpy in float64 (two-pass statistics), independent of ``bn_core``'s public
functions, and tested against PyTorch in ``tests/test_grading_reference.py``. The grading cells
do not show these computations: the learner sees the inputs and the expected values only in a
failure message.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "batch_norm_eval",
    "batch_norm_grads",
    "batch_norm_train",
    "channel_axes",
    "inference_affine",
    "stats",
]


def channel_axes(ndim: int) -> tuple[int, ...]:
    """The axes a batch statistic reduces over: all but the channel axis 1."""
    return (0, *range(2, ndim))


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    return np.asarray(v, np.float64).reshape((1, -1) + (1,) * (ndim - 2))


def stats(x: np.ndarray, ddof: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance per channel (axis 1), two-pass, in float64."""
    x = np.asarray(x, np.float64)
    axes = channel_axes(x.ndim)
    mu = x.mean(axis=axes)
    count = x.size // x.shape[1]
    xc = x - _per_channel(mu, x.ndim)
    return mu, (xc**2).sum(axis=axes) / (count - ddof)


def batch_norm_train(x, gamma, beta, eps=1e-5) -> np.ndarray:
    """Training-mode batch normalization with the biased batch variance, in float64."""
    x = np.asarray(x, np.float64)
    mu, var = stats(x)
    nd = x.ndim
    x_hat = (x - _per_channel(mu, nd)) / np.sqrt(_per_channel(var, nd) + eps)
    return _per_channel(gamma, nd) * x_hat + _per_channel(beta, nd)


def batch_norm_eval(x, gamma, beta, running_mean, running_var, eps=1e-5) -> np.ndarray:
    """Eval-mode batch normalization with the running statistics, in float64."""
    x = np.asarray(x, np.float64)
    nd = x.ndim
    x_hat = (x - _per_channel(running_mean, nd)) / np.sqrt(_per_channel(running_var, nd) + eps)
    return _per_channel(gamma, nd) * x_hat + _per_channel(beta, nd)


def running_update(running_mean, running_var, x, momentum=0.1):
    """PyTorch's update: the momentum weights the new batch; running_var stores the unbiased."""
    mu, var_unbiased = stats(x, ddof=1)
    rm = (1 - momentum) * np.asarray(running_mean, np.float64) + momentum * mu
    rv = (1 - momentum) * np.asarray(running_var, np.float64) + momentum * var_unbiased
    return rm, rv


def batch_norm_grads(x, gamma, dy, eps=1e-5):
    """``(dx, dgamma, dbeta, x_hat, inv_std)`` of training-mode batch norm, in float64."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    nd = x.ndim
    axes = channel_axes(nd)
    m = x.size // x.shape[1]
    mu, var = stats(x)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - _per_channel(mu, nd)) * _per_channel(inv_std, nd)
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * x_hat).sum(axis=axes)
    dx_hat = dy * _per_channel(gamma, nd)
    dx = (
        _per_channel(inv_std, nd)
        / m
        * (
            m * dx_hat
            - dx_hat.sum(axis=axes, keepdims=True)
            - x_hat * (dx_hat * x_hat).sum(axis=axes, keepdims=True)
        )
    )
    return dx, dgamma, dbeta, x_hat, inv_std


def inference_affine(gamma, beta, running_mean, running_var, eps=1e-5):
    """``(a, b)`` with eval-mode batch norm equal to ``a * z + b`` per channel, in float64."""
    a = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(running_var, np.float64) + eps)
    return a, np.asarray(beta, np.float64) - a * np.asarray(running_mean, np.float64)

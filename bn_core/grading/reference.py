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
    "group_norm",
    "group_norm_grads",
    "inference_affine",
    "layer_norm",
    "layer_norm_grads",
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


# -- batch-free normalizations (exercise 10) ---------------------------------------------------
def _row_stats(rows: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """x_hat and 1/sqrt(var + eps) of each row of a 2-D float64 array (two passes)."""
    mu = rows.mean(axis=1, keepdims=True)
    xc = rows - mu
    inv_std = 1.0 / np.sqrt((xc**2).mean(axis=1, keepdims=True) + eps)
    return xc * inv_std, inv_std


def _row_dx(dx_hat_rows: np.ndarray, x_hat: np.ndarray, inv_std: np.ndarray) -> np.ndarray:
    """The closed-form backward of row normalization (K values per row)."""
    return inv_std * (
        dx_hat_rows
        - dx_hat_rows.mean(axis=1, keepdims=True)
        - x_hat * (dx_hat_rows * x_hat).mean(axis=1, keepdims=True)
    )


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5) -> np.ndarray:
    """``torch.nn.functional.layer_norm`` in float64: statistics over the trailing axes."""
    x = np.asarray(x, np.float64)
    shape = tuple(normalized_shape)
    x_hat, _ = _row_stats(x.reshape(-1, int(np.prod(shape))), eps)
    y = x_hat.reshape(x.shape)
    if weight is not None:
        y = y * np.asarray(weight, np.float64)
    if bias is not None:
        y = y + np.asarray(bias, np.float64)
    return y


def layer_norm_grads(x, normalized_shape, weight, dy, eps=1e-5):
    """``(dx, dweight, dbias)`` of :func:`layer_norm` for the upstream gradient ``dy``."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    shape = tuple(normalized_shape)
    k = int(np.prod(shape))
    x_hat, inv_std = _row_stats(x.reshape(-1, k), eps)
    lead = tuple(range(x.ndim - len(shape)))
    dweight = (dy * x_hat.reshape(x.shape)).sum(axis=lead)
    dbias = dy.sum(axis=lead)
    dx_hat = (dy * np.asarray(weight, np.float64)).reshape(-1, k)
    return _row_dx(dx_hat, x_hat, inv_std).reshape(x.shape), dweight, dbias


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5) -> np.ndarray:
    """``torch.nn.functional.group_norm`` in float64: per example, per contiguous channel block."""
    x = np.asarray(x, np.float64)
    x_hat, _ = _row_stats(x.reshape(x.shape[0] * num_groups, -1), eps)
    y = x_hat.reshape(x.shape)
    if weight is not None:
        y = y * _per_channel(weight, x.ndim)
    if bias is not None:
        y = y + _per_channel(bias, x.ndim)
    return y


def group_norm_grads(x, num_groups, weight, dy, eps=1e-5):
    """``(dx, dweight, dbias)`` of :func:`group_norm` for the upstream gradient ``dy``."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    x_hat, inv_std = _row_stats(x.reshape(x.shape[0] * num_groups, -1), eps)
    axes = channel_axes(x.ndim)
    dweight = (dy * x_hat.reshape(x.shape)).sum(axis=axes)
    dbias = dy.sum(axis=axes)
    dx_hat = (dy * _per_channel(weight, x.ndim)).reshape(x_hat.shape)
    return _row_dx(dx_hat, x_hat, inv_std).reshape(x.shape), dweight, dbias

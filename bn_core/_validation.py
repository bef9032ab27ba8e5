"""Argument checks shared by the public functions.

Every check raises a ``ValueError`` or ``TypeError`` whose message names the argument, says
what was seen and what was expected, and how to fix it. The checks only look at shapes,
dtypes and a handful of per-channel numbers, so they cost nothing next to the arithmetic.
"""

from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# float16 input is normalized in float32 and the output rounded back (torch's rule for half
# precision: statistics in float32); the training-mode primitives stay float32/float64.
HALF = np.dtype(np.float16)


def check_input(x, name: str = "input", *, allow_half: bool = False) -> np.ndarray:
    """Return ``x`` as a float32/float64 (or, if allowed, float16) ndarray of rank >= 2."""
    if not isinstance(x, np.ndarray):
        if hasattr(x, "detach") and hasattr(x, "numpy"):
            raise TypeError(
                f"{name} must be a numpy array, got a {type(x).__name__}; "
                f"pass {name}.detach().cpu().numpy(), or use bn_core.torch_bridge for tensors"
            )
        x = np.asarray(x)
    if x.dtype == HALF and not allow_half:
        raise TypeError(
            f"{name} is float16: batch_norm and the layers accept it (computing in float32, "
            f"as torch does), this function works in float32 or float64; pass "
            f"{name}.astype(np.float32)"
        )
    if x.dtype not in FLOAT_DTYPES and not (allow_half and x.dtype == HALF):
        raise TypeError(
            f"{name} must be a float32 or float64 array, got dtype {x.dtype}; "
            f"convert it first, e.g. {name}.astype(np.float64)"
        )
    if x.ndim < 2:
        raise ValueError(
            f"{name} must have shape (N, C, ...) with the channel axis at 1, got shape "
            f"{tuple(x.shape)} ({x.ndim}D); add a batch axis, e.g. {name}[None, :] or "
            f"{name}[:, None]"
        )
    return x


def check_rank(x: np.ndarray, allowed: tuple[int, ...], layer: str) -> None:
    """Raise torch's rank error (``expected 4D input (got 3D input)``), with a hint."""
    if x.ndim in allowed:
        return
    want = " or ".join(f"{d}D" for d in allowed)
    shapes = {2: "(N, C)", 3: "(N, C, L)", 4: "(N, C, H, W)", 5: "(N, C, D, H, W)"}
    want_shapes = " or ".join(shapes[d] for d in allowed)
    hint = {
        "BatchNorm1d": "use BatchNorm2d for images (N, C, H, W)",
        "BatchNorm2d": "use BatchNorm1d for (N, C) or (N, C, L) inputs, BatchNorm3d for "
        "volumes (N, C, D, H, W)",
        "BatchNorm3d": "use BatchNorm2d for images (N, C, H, W), BatchNorm1d for (N, C) or "
        "(N, C, L)",
    }[layer]
    raise ValueError(
        f"expected {want} input (got {x.ndim}D input): {layer} takes {want_shapes}, "
        f"got shape {tuple(x.shape)}; {hint}"
    )


def check_per_channel(a, name: str, num_channels: int, x_shape, *, allow_none: bool = True):
    """Check a per-channel vector (gamma, beta, running buffers): shape (C,), float dtype."""
    if a is None:
        if allow_none:
            return None
        raise ValueError(f"{name} must be an array of shape ({num_channels},), got None")
    if not isinstance(a, np.ndarray):
        a = np.asarray(a)
    if a.dtype not in FLOAT_DTYPES and a.dtype != HALF:
        raise TypeError(
            f"{name} must be a float32 or float64 array, got dtype {a.dtype}; "
            f"convert it first, e.g. {name}.astype(np.float64)"
        )
    if a.shape != (num_channels,):
        raise ValueError(
            f"{name} should contain {num_channels} elements not {a.size}: input of shape "
            f"{tuple(x_shape)} has C={num_channels} channels on axis 1, so {name} must have "
            f"shape ({num_channels},), got {tuple(a.shape)}; build it with "
            f"np.ones({num_channels}) / np.zeros({num_channels}) or check which axis holds "
            f"the channels"
        )
    return a


def check_buffer(a, name: str, num_channels: int, x_shape) -> np.ndarray:
    """A running buffer that is updated in place must be a writeable float ndarray."""
    if a is not None and not isinstance(a, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy array (it is updated in place when training), got "
            f"{type(a).__name__}; pass np.asarray({name}, dtype=np.float64)"
        )
    a = check_per_channel(a, name, num_channels, x_shape)
    return a


def check_eps(eps) -> float:
    """eps must be a finite positive real number."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps must be a positive float (e.g. 1e-5), got {type(eps).__name__}")
    if not np.isfinite(eps) or eps <= 0:
        raise ValueError(
            f"eps must be a finite number > 0 (it keeps the division away from zero), got "
            f"{eps!r}; use the default eps=1e-5"
        )
    return float(eps)


def check_momentum(momentum, allow_none: bool = False):
    """momentum must be in [0, 1] (it weights the new batch, as in torch)."""
    if momentum is None:
        if allow_none:
            return None
        raise ValueError(
            "momentum must be a number in [0, 1], got None; the cumulative average "
            "(momentum=None) needs the batch count, so use BatchNorm1d/BatchNorm2d(momentum=None)"
            " or pass momentum=1 / num_batches_tracked yourself"
        )
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        raise TypeError(f"momentum must be a float in [0, 1], got {type(momentum).__name__}")
    if not 0.0 <= momentum <= 1.0:
        hint = ""
        if 1.0 < momentum:
            hint = "; it weights the new batch (torch's convention)"
        raise ValueError(
            f"momentum must be in [0, 1], got {momentum!r}{hint}; a Keras/CS231n-style "
            f"decay d (e.g. 0.9, weighting the old value) is momentum = 1 - d (e.g. 0.1)"
        )
    return float(momentum)


def check_batch_size(x: np.ndarray) -> int:
    """Training needs more than one value per channel (torch's message).

    An empty batch (m = 0) passes, as in torch: it has nothing to normalize and gives an
    empty output (see :func:`bn_core.batch_norm`).
    """
    m = x.size // x.shape[1] if x.shape[1] else 0
    if m == 1:
        raise ValueError(
            f"Expected more than 1 value per channel when training, got input size "
            f"{tuple(x.shape)}: the batch variance of a single value is 0 and its output "
            f"carries no information; use a batch of N >= 2, or eval mode (running statistics)"
        )
    return m


def raise_non_finite(what: str, values: np.ndarray, x_shape) -> None:
    """Raise if a per-channel statistic came out NaN or inf (it means the input holds one)."""
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        chans = ", ".join(str(int(c)) for c in bad[:8]) + (", ..." if bad.size > 8 else "")
        raise ValueError(
            f"{what} of shape {tuple(x_shape)} contains NaN or inf values (or values so large "
            f"that their sum overflows) in channel(s) {chans}: find where they come from "
            f"(e.g. np.isfinite(...).all(axis=...)), or pass check_finite=False to let them "
            f"propagate as torch does"
        )


def check_all_finite(a: np.ndarray, what: str) -> None:
    """Full check used where no reduction is computed anyway (eval mode)."""
    if not np.isfinite(a).all():
        raise ValueError(
            f"{what} of shape {tuple(a.shape)} contains NaN or inf values: find where they "
            f"come from (np.isfinite(...)), or pass check_finite=False to let them propagate "
            f"as torch does"
        )

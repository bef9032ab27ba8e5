"""Numerical gradients by central differences, and CS231n's relative error.

Use them to check an analytic backward pass: for a function ``f`` of an array ``x`` and an
upstream gradient ``df`` (same shape as ``f(x)``), :func:`numerical_gradient` approximates
``d sum(f(x) * df) / dx`` one element at a time; :func:`rel_error` compares it with the
analytic gradient. In float64 with ``h=1e-5`` a correct batch-norm backward gives relative
errors around 1e-9 to 1e-11; a wrong one gives 1e-2 or worse.
"""

from __future__ import annotations

import numpy as np

__all__ = ["numerical_gradient", "rel_error"]


def numerical_gradient(f, x, df=None, h=1e-5):
    """Gradient of ``sum(f(x) * df)`` (or of scalar ``f(x)``) by central differences.

    Each element ``x[i]`` is moved to ``x[i] + h`` and ``x[i] - h`` in turn and
    ``(f(x + h e_i) - f(x - h e_i)) / (2 h)`` is contracted with ``df``. ``f`` is called on a
    float64 copy of ``x`` that is perturbed and restored, so the caller's array is never
    modified.

    Parameters
    ----------
    f : callable
        ``f(x) -> ndarray`` (or a scalar, when ``df`` is None). It must not keep a
        reference to its argument across calls, or modify it.
    x : array_like
        The point at which to differentiate.
    df : array_like, optional
        Upstream gradient, with the shape of ``f(x)``. None if ``f`` returns a scalar.
    h : float, default 1e-5
        Step size.

    Returns
    -------
    ndarray
        float64 array with the shape of ``x``.

    Raises
    ------
    ValueError
        If ``h <= 0``, or ``df``'s shape does not match ``f(x)``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([1.0, 2.0, 3.0])
    >>> numerical_gradient(lambda v: v**2, x, np.ones(3)).round(6)
    array([2., 4., 6.])
    >>> numerical_gradient(lambda v: float((v**3).sum()), x).round(6)
    array([ 3., 12., 27.])
    """
    if not h > 0:
        raise ValueError(f"h must be > 0 (the finite-difference step), got {h!r}; try 1e-5")
    xp = np.array(x, dtype=np.float64)  # our own copy: the caller's x stays untouched
    grad = np.zeros_like(xp)
    df = None if df is None else np.asarray(df, dtype=np.float64)
    it = np.nditer(xp, flags=["multi_index"])
    while not it.finished:
        i = it.multi_index
        old = xp[i]
        xp[i] = old + h
        pos = np.array(f(xp), dtype=np.float64)  # copy: f may return a view of a buffer
        xp[i] = old - h
        neg = np.array(f(xp), dtype=np.float64)
        xp[i] = old
        if df is None:
            if pos.size != 1:
                raise ValueError(
                    f"f returned an array of shape {pos.shape}; pass df (the upstream "
                    f"gradient, same shape) or make f return a scalar"
                )
            grad[i] = (pos.item() - neg.item()) / (2 * h)
        else:
            if pos.shape != df.shape:
                raise ValueError(f"df must have the shape of f(x), {pos.shape}, got {df.shape}")
            grad[i] = np.sum((pos - neg) * df) / (2 * h)
        it.iternext()
    return grad


def rel_error(a, b):
    """Maximum elementwise relative error, exactly as CS231n computes it.

    ``max(|a - b| / max(1e-8, |a| + |b|))``

    Parameters
    ----------
    a, b : array_like
        Arrays of the same shape.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the shapes differ (broadcasting would hide a bug).

    Examples
    --------
    >>> rel_error([1.0, 2.0], [1.0, 2.0 + 1e-6]) < 1e-6
    True
    >>> rel_error([1.0], [-1.0])
    1.0
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))

"""Exercise 5: the closed-form backward pass."""

from __future__ import annotations

import numpy as np

from .. import reference as ref
from ..checks import allclose
from ..core import Grader
from ._common import F32, F64, Inputs, check_value, label


def _mistakes(x_hat, gamma, inv_std, dy, x):
    x_hat, gamma, inv_std, dy, x = (np.asarray(a, F64) for a in (x_hat, gamma, inv_std, dy, x))
    n = dy.shape[0]
    dxh = dy * gamma
    return (
        {
            "the branch through mu is missing (no -sum(dx_hat) term)": inv_std
            / n
            * (n * dxh - x_hat * (dxh * x_hat).sum(0)),
            "the branch through sigma2 is missing (no -x_hat * sum(dx_hat * x_hat) term)": inv_std
            / n
            * (n * dxh - dxh.sum(0)),
            "you divide by N - 1 instead of N": inv_std
            / (n - 1)
            * ((n - 1) * dxh - dxh.sum(0) - x_hat * (dxh * x_hat).sum(0)),
            "gamma is missing: dx_hat = gamma * dy, not dy": inv_std
            / n
            * (n * dy - dy.sum(0) - x_hat * (dy * x_hat).sum(0)),
            "inv_std is used as the standard deviation (you multiply by sqrt(var + eps) instead "
            "of dividing)": 1 / inv_std / n * (n * dxh - dxh.sum(0) - x_hat * (dxh * x_hat).sum(0)),
        },
        {
            "dgamma uses x instead of x_hat": (dy * x).sum(0),
            "dgamma is not summed over the batch": dy * x_hat,
            "dgamma is multiplied by gamma": gamma * (dy * x_hat).sum(0),
        },
        {"dbeta is not summed over the batch": dy},
    )


def _grade_case(grader: Grader, d: Inputs, backward_closed, x, gamma, dy):
    _, _, _, x_hat, inv_std = ref.batch_norm_grads(x, gamma, dy)
    x_hat, inv_std = x_hat.astype(x.dtype), inv_std.astype(x.dtype)
    expected = ref.batch_norm_grads(x, gamma, dy)[:3]
    # The closed form is exact for the x_hat and inv_std it is given: compare with that.
    dxh = dy.astype(F64) * gamma.astype(F64)
    n = x.shape[0]
    xh64, s64 = x_hat.astype(F64), inv_std.astype(F64)
    exact = (
        s64 / n * (n * dxh - dxh.sum(0) - xh64 * (dxh * xh64).sum(0)),
        (dy.astype(F64) * xh64).sum(0),
        dy.astype(F64).sum(0),
    )
    if x.dtype == F64:
        expected = exact
    got = grader.call(backward_closed, dy, x_hat, gamma, inv_std, outputs=("dx", "dgamma", "dbeta"))
    shown = d.show(dy=dy, x_hat=x_hat, gamma=gamma, inv_std=inv_std)
    tag = label(x)
    for name, g, e, m in zip(
        ("dx", "dgamma", "dbeta"),
        got,
        expected,
        _mistakes(x_hat, gamma, inv_std, dy, x),
        strict=True,
    ):
        check_value(grader, f"{name} {tag}", g, e, x.dtype, shown, m,
                    tol=(1e-6, 1e-9) if x.dtype == F64 else (1e-3, 1e-4))  # fmt: skip
    return got


def check_small(grader: Grader, backward_closed) -> None:
    """Grading cell 1."""
    d = Inputs(grader, 1)
    for shape, dtype, loc in [((2, 3), F64, 0.0), ((7, 4), F32, 1.0), ((5, 9), F64, 3.0)]:
        x = d.normal(shape, loc=loc, scale=2.0, dtype=dtype)
        gamma = d.normal(shape[1:], loc=0.5, scale=1.0, dtype=dtype)
        dy = d.normal(shape, dtype=dtype)
        _grade_case(grader, d, backward_closed, x, gamma, dy)
    grader.check_rules()


def check_properties(grader: Grader, backward_closed) -> None:
    """Grading cell 2: a larger batch, dx summing to zero, float32 in and out."""
    d = Inputs(grader, 2)
    x = d.normal((64, 32), loc=-2.0, scale=5.0)
    gamma, dy = d.normal((32,)), d.normal((64, 32))
    dx, _, _ = _grade_case(grader, d, backward_closed, x, gamma, dy)
    grader.check_true(
        "dx sums to 0 over the batch",
        lambda: (
            np.shape(dx) == x.shape and allclose(np.asarray(dx, F64).sum(axis=0), 0.0, atol=1e-9)
        ),
        "dx does not sum to 0 over the batch, for each feature: the branch through mu (the "
        "-sum(dx_hat) / N term, that is -gamma * dbeta / N) is missing or wrong.",
        needs=[dx],
    )
    x32 = d.normal((12, 5), loc=1.0, scale=2.0, dtype=F32)
    _grade_case(
        grader, d, backward_closed, x32, d.normal((5,), dtype=F32), d.normal((12, 5), dtype=F32)
    )
    grader.check_rules()

"""Exercise 2: scale, shift and recovering the identity."""

from __future__ import annotations

import numpy as np

from .. import reference as ref
from ..checks import allclose
from ..core import Grader
from ._common import CANCELLATION, F32, F64, Inputs, check_value, label


def check_scale_shift(grader: Grader, scale_shift) -> None:
    """Grading cell 1."""
    d = Inputs(grader, 1)
    for shape, dtype in [((5, 3), F64), ((4, 6), F32), ((7, 2), F64)]:
        x_hat = d.normal(shape, dtype=dtype)
        gamma = d.normal(shape[1:], loc=1.0, scale=1.0, dtype=dtype)
        beta = d.normal(shape[1:], loc=0.0, scale=2.0, dtype=dtype)
        got = grader.call(scale_shift, x_hat, gamma, beta)
        xh, g, b = x_hat.astype(F64), gamma.astype(F64), beta.astype(F64)
        check_value(
            grader,
            f"y = scale_shift(x_hat, gamma, beta) {label(x_hat)}",
            got,
            g * xh + b,
            dtype,
            d.show(x_hat=x_hat, gamma=gamma, beta=beta),
            mistakes={
                "gamma and beta are swapped (beta * x_hat + gamma)": b * xh + g,
                "you shift before scaling, gamma * (x_hat + beta)": g * (xh + b),
                "beta is not added": g * xh,
            },
            hint="gamma multiplies, beta is added, one value per feature (column).",
        )
    grader.check_rules()


def check_identity_params(grader: Grader, identity_params) -> None:
    """Grading cell 2."""
    d = Inputs(grader, 2)
    cases = [
        (d.normal((10, 4), loc=[3.0, 3.0, 3.0, -1.0], scale=[2.0, 2.0, 2.0, 2e-3]), None),
        (d.normal((6, 5), loc=1.0, scale=0.5, dtype=F32), 0.05),
        (d.normal((4, 7), loc=-2.0, scale=0.03), 1e-3),
        (d.normal((16, 3), loc=1e4, scale=1.0, dtype=F32), None),
    ]
    for x, eps in cases:
        e = 1e-5 if eps is None else eps
        got = grader.call(
            identity_params, *((x,) if eps is None else (x, eps)), outputs=("gamma", "beta")
        )
        gamma, beta = got
        x64 = x.astype(F64)
        mu, var = ref.stats(x)
        offset = abs(float(mu.mean())) > 1e3
        hint = (
            CANCELLATION.format(offset=1e4, spread=1.0, sq=1e8, var=1.0)
            if offset
            else "gamma must undo the division by sqrt(sigma2_B + eps)."
        )
        shown = d.show(x=x) + ("" if eps is None else f" eps = {eps}.")
        tag = label(x, **({} if eps is None else {"eps": eps}))
        check_value(
            grader,
            f"gamma {tag}",
            gamma,
            np.sqrt(var + e),
            x.dtype,
            shown,
            mistakes={
                "gamma = sqrt(var) without eps; batch norm divides by sqrt(var + eps), so gamma "
                "must multiply it back": np.sqrt(var),
                "you ignore the eps argument and always use 1e-5": np.sqrt(var + 1e-5),
                "gamma = var + eps, without the square root": var + e,
                "you use the unbiased variance (divide by N - 1); batch norm normalizes with the "
                "biased one": np.sqrt(x64.var(axis=0, ddof=1) + e),
                "you return (beta, gamma) instead of (gamma, beta)": mu,
            },
            hint=hint,
            tol=(1e-2, 1e-2) if offset else None,
        )
        check_value(
            grader,
            f"beta {tag}",
            beta,
            mu,
            x.dtype,
            shown,
            mistakes={"you return (beta, gamma) instead of (gamma, beta)": np.sqrt(var + e)},
            hint="beta must undo the subtraction of the batch mean mu_B.",
        )
        if eps is None and not offset:
            # The point of the pair: batch norm with these parameters gives back x.
            grader.check_true(
                f"batch norm with your (gamma, beta) gives back x {tag}",
                lambda x=x, gamma=gamma, beta=beta: allclose(
                    ref.batch_norm_train(x, np.asarray(gamma, F64), np.asarray(beta, F64)),
                    x,
                    rtol=1e-9,
                    atol=1e-9,
                ),  # fmt: skip
                "batch norm of x with your gamma and beta does not return x.",
                needs=[gamma, beta],
            )
    grader.check_rules()


def check_undo(grader: Grader, undo_batchnorm) -> None:
    """Grading cell 3."""
    d = Inputs(grader, 3)
    cases = [
        (d.normal((6, 3), loc=[-2.0, 1.0, 0.5], scale=[3.0, 1.0, 3e-3]), None),
        (d.normal((5, 4), loc=1.0, scale=2.0, dtype=F32), 0.05),
        (d.normal((3, 7), loc=0.0, scale=0.03), 1e-3),
    ]
    for x, eps in cases:
        e = 1e-5 if eps is None else eps
        D = x.shape[1]
        gamma = d.normal((D,), loc=1.5, scale=0.3, dtype=x.dtype)
        beta = d.normal((D,), loc=0.0, scale=1.0, dtype=x.dtype)
        mu, var = (v.astype(x.dtype) for v in ref.stats(x))
        y = ref.batch_norm_train(x, gamma, beta, e).astype(x.dtype)
        args = (y, gamma, beta, mu, var) + (() if eps is None else (eps,))
        got = grader.call(undo_batchnorm, *args)
        y64, g, b, m64, v64 = (a.astype(F64) for a in (y, gamma, beta, mu, var))
        expected = (y64 - b) / g * np.sqrt(v64 + e) + m64
        tag = label(y, **({} if eps is None else {"eps": eps}))
        check_value(
            grader,
            f"x = undo_batchnorm(y, gamma, beta, mu, var{'' if eps is None else ', eps'}) {tag}",
            got,
            expected,
            x.dtype,
            d.show(y=y, gamma=gamma, beta=beta, mu=mu, var=var)
            + ("" if eps is None else f" eps = {eps}."),
            mistakes={
                "eps is left out: multiply by sqrt(var + eps), the same factor batch norm "
                "divided by": (y64 - b) / g * np.sqrt(v64) + m64,
                "you ignore the eps argument and always use 1e-5": (y64 - b)
                / g
                * np.sqrt(v64 + 1e-5)
                + m64,
                "you do not divide by gamma before undoing the normalization": (y64 - b)
                * np.sqrt(v64 + e)
                + m64,
                "you add mu before multiplying by the standard deviation": ((y64 - b) / g + m64)
                * np.sqrt(v64 + e),
                "you multiply by var + eps instead of its square root": (y64 - b) / g * (v64 + e)
                + m64,
            },
            hint="invert y = gamma * x_hat + beta first, then x_hat = (x - mu) / sqrt(var + eps).",
        )
    grader.check_rules()

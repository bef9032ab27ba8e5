"""Exercise 1: batch statistics and the training forward pass."""

from __future__ import annotations

import numpy as np

from .. import reference as ref
from ..core import Grader
from ._common import CANCELLATION, F32, F64, Inputs, check_value, label

AXIS_HINT = "a batch statistic has one value per feature: reduce over axis 0, the batch."


def _cases(d: Inputs):
    """(x, note) pairs: non-square shapes, float64 and float32, a large-offset float32 batch."""
    return [
        (d.normal((5, 3), loc=[1.0, -2.0, 4.0], scale=[2.0, 0.5, 3.0]), None),
        (d.normal((7, 4), loc=0.5, scale=1.5, dtype=F32), None),
        (d.normal((4, 6), loc=-1.0, scale=2.0), None),
        (d.normal((16, 3), loc=1e4, scale=1.0, dtype=F32), "offset"),
    ]


def _offset_text(x: np.ndarray) -> str:
    var = float(np.asarray(x, np.float64).var(axis=0).mean())
    return CANCELLATION.format(offset=float(np.abs(x).mean()), spread=var**0.5, sq=1e8, var=var)


def check_batch_mean(grader: Grader, batch_mean) -> None:
    """Grading cell 1."""
    d = Inputs(grader, 1)
    for x, _ in _cases(d)[:3]:
        got = grader.call(batch_mean, x)
        x64 = x.astype(F64)
        check_value(
            grader,
            f"batch_mean(x) {label(x)}",
            got,
            x64.mean(axis=0),
            x.dtype,
            d.show(x=x),
            mistakes={
                "you sum instead of averaging": x64.sum(axis=0),
                "you divide by N - 1": x64.sum(axis=0) / (x.shape[0] - 1),
            },
            hint=AXIS_HINT,
        )
    grader.check_rules()


def check_batch_var(grader: Grader, batch_var) -> None:
    """Grading cell 2."""
    d = Inputs(grader, 2)
    for x, note in _cases(d):
        got = grader.call(batch_var, x)
        x64 = x.astype(F64)
        mu = x64.mean(axis=0)
        check_value(
            grader,
            f"batch_var(x) {label(x)}",
            got,
            ref.stats(x)[1],
            x.dtype,
            d.show(x=x),
            mistakes={
                "you divide by N - 1 (the unbiased variance). Batch normalization normalizes "
                "with the biased variance: divide by N": x64.var(axis=0, ddof=1),
                "you return the standard deviation instead of the variance": x64.std(axis=0),
                "you do not subtract the mean before squaring": (x64**2).mean(axis=0),
                "you square the mean deviation instead of averaging the squares": (
                    (x64 - mu).mean(axis=0) ** 2
                ),
            },
            hint=_offset_text(x) if note == "offset" else AXIS_HINT,
            tol=(1e-2, 1e-2) if note == "offset" else None,
        )
    grader.check_rules()


def check_forward_train(grader: Grader, batchnorm_forward_train) -> None:
    """Grading cell 3."""
    d = Inputs(grader, 3)
    x0 = d.normal((6, 3), loc=[1.0, 2.0, 7.0], scale=[3.0, 1e-3, 0.0])  # var ~1e-6, and 0
    cases = [(x0, None, None)]
    cases.append((d.normal((7, 4), loc=0.5, scale=1.5, dtype=F32), 0.05, None))
    cases.append((d.normal((4, 6), loc=-1.0, scale=0.03), 1e-3, None))
    cases.append((d.normal((16, 3), loc=1e4, scale=1.0, dtype=F32), None, "offset"))
    for x, eps, note in cases:
        n_feat = x.shape[1]
        gamma = d.normal((n_feat,), loc=1.0, scale=0.5, dtype=x.dtype)
        beta = d.normal((n_feat,), loc=0.0, scale=1.0, dtype=x.dtype)
        e = 1e-5 if eps is None else eps
        args = (x, gamma, beta) if eps is None else (x, gamma, beta, eps)
        got = grader.call(batchnorm_forward_train, *args)
        x64, g, b = x.astype(F64), gamma.astype(F64), beta.astype(F64)
        mu, var, var1 = x64.mean(0), x64.var(0), x64.var(0, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            no_eps = g * (x64 - mu) / np.sqrt(var) + b
        mistakes = {
            "eps is added outside the square root, (x - mu) / (sqrt(var) + eps)": g
            * (x64 - mu)
            / (np.sqrt(var) + e)
            + b,
            "eps is missing": no_eps,
            "you ignore the eps argument and always use 1e-5": g * (x64 - mu) / np.sqrt(var + 1e-5)
            + b,
            "you normalize with the unbiased variance (divide by N - 1); use the biased one": g
            * (x64 - mu)
            / np.sqrt(var1 + e)
            + b,
            "gamma and beta are swapped": b * (x64 - mu) / np.sqrt(var + e) + g,
            "gamma and beta are not applied": (x64 - mu) / np.sqrt(var + e),
        }
        shown = d.show(x=x, gamma=gamma, beta=beta) + ("" if eps is None else f" eps = {eps}.")
        check_value(
            grader,
            f"y = batchnorm_forward_train(x, gamma, beta{'' if eps is None else ', eps'}) "
            + label(x, **({} if eps is None else {"eps": eps})),
            got,
            ref.batch_norm_train(x, gamma, beta, e),
            x.dtype,
            shown,
            mistakes=mistakes,
            hint=_offset_text(x)
            if note == "offset"
            else "compare your formula with x_hat = (x - mu) / sqrt(var + eps), "
            "y = gamma * x_hat + beta, and use the eps you are given.",
            tol=(1e-2, 1e-2) if note == "offset" else None,
        )
    grader.check_rules()

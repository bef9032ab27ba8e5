"""Exercise 3: running statistics and inference."""

from __future__ import annotations

import numpy as np

from .. import reference as ref
from ..core import Grader
from ._common import CANCELLATION, F32, F64, Inputs, check_value, label

REVERSED = (
    "the momentum is reversed: momentum must weight the new batch statistic and 1 - momentum "
    "the old running value (PyTorch's convention; Keras and CS231n write it the other way)"
)


def _running_mistakes(rm, rv, x, momentum):
    rm, rv, x = (np.asarray(a, F64) for a in (rm, rv, x))
    mu, var0, var1 = x.mean(0), x.var(0), x.var(0, ddof=1)
    m = momentum
    mean = {
        REVERSED: m * rm + (1 - m) * mu,
        "the running mean is not updated": rm,
        "running_mean is replaced by the batch mean instead of averaged": mu,
        "you ignore the momentum argument and always use 0.1": 0.9 * rm + 0.1 * mu,
    }
    var = {
        "you store the biased variance (divide by N); running_var stores the unbiased one "
        "(divide by N - 1)": (1 - m) * rv + m * var0,
        REVERSED: m * rv + (1 - m) * var1,
        "the running variance is not updated": rv,
        "running_var is replaced by the batch variance instead of averaged": var1,
        "you ignore the momentum argument and always use 0.1": 0.9 * rv + 0.1 * var1,
        "you average the standard deviation instead of the variance": (1 - m) * rv
        + m * np.sqrt(var1),
    }
    return mean, var


def _stats_cases(d: Inputs):
    """(x, running_mean, running_var, momentum or None, note)."""
    out = []
    for shape, dtype, momentum, loc, note in [
        ((5, 3), F64, None, [1.0, -2.0, 5.0], None),
        ((7, 4), F32, 0.3, 0.5, None),
        ((4, 6), F64, 0.25, -1.0, None),
        ((16, 3), F32, 0.5, 1e4, "offset"),
    ]:
        x = d.normal(shape, loc=loc, scale=2.0 if note is None else 1.0, dtype=dtype)
        rm = d.normal(shape[1:], loc=0.0, scale=1.0, dtype=dtype)
        rv = d.uniform(shape[1:], 0.5, 2.0, dtype=dtype)
        out.append((x, rm, rv, momentum, note))
    return out


def check_update(grader: Grader, update_running_stats) -> None:
    """Grading cell 1."""
    d = Inputs(grader, 1)
    for x, rm, rv, momentum, note in _stats_cases(d):
        m = 0.1 if momentum is None else momentum
        args = (rm, rv, x) + (() if momentum is None else (momentum,))
        new_mean, new_var = grader.call(
            update_running_stats, *args, outputs=("new_running_mean", "new_running_var")
        )
        e_mean, e_var = ref.running_update(rm, rv, x, m)
        mm, mv = _running_mistakes(rm, rv, x, m)
        tag = label(x, **({} if momentum is None else {"momentum": momentum}))
        shown = d.show(running_mean=rm, running_var=rv, x=x) + (
            "" if momentum is None else f" momentum = {momentum}."
        )
        check_value(grader, f"new_running_mean {tag}", new_mean, e_mean, x.dtype, shown, mm)
        check_value(
            grader,
            f"new_running_var {tag}",
            new_var,
            e_var,
            x.dtype,
            shown,
            mv,
            hint=CANCELLATION.format(offset=1e4, spread=1.0, sq=1e8, var=1.0)
            if note == "offset"
            else "running_var = (1 - momentum) * running_var + momentum * (unbiased batch var).",
            tol=(1e-2, 1e-2) if note == "offset" else None,
        )
    grader.check_rules()


def _forward_cases(d: Inputs, training: bool):
    cases = []
    for shape, dtype, momentum, eps in [
        ((5, 3), F64, None, None),
        ((6, 4), F32, 0.3, 0.05),
        ((4, 7), F64, 0.2, 1e-3),
    ]:
        x = d.normal(
            shape, loc=2.0 if training else 6.0, scale=[0.03] + [2.0] * (shape[1] - 1), dtype=dtype
        )
        gamma = d.normal(shape[1:], loc=1.0, scale=0.5, dtype=dtype)
        beta = d.normal(shape[1:], loc=0.0, scale=1.0, dtype=dtype)
        rm = d.normal(shape[1:], loc=0.0, scale=1.0, dtype=dtype)
        rv = d.uniform(shape[1:], 0.5, 2.0, dtype=dtype)
        if not training:
            rv[-1] = 0.0  # a feature that never varied: only eps keeps the division finite
        cases.append((x, gamma, beta, rm, rv, momentum, eps))
    if training:
        x = d.normal((16, 3), loc=1e4, scale=1.0, dtype=F32)
        gamma, beta = np.ones(3, F32), np.zeros(3, F32)
        cases.append((x, gamma, beta, np.zeros(3, F32), np.ones(3, F32), None, None))
    return cases


def _kwargs(momentum, eps):
    kw = {}
    if momentum is not None:
        kw["momentum"] = momentum
    if eps is not None:
        kw["eps"] = eps
    return kw


def check_forward_training(grader: Grader, batchnorm_forward) -> None:
    """Grading cell 2."""
    d = Inputs(grader, 2)
    for x, gamma, beta, rm, rv, momentum, eps in _forward_cases(d, training=True):
        m, e = (0.1 if momentum is None else momentum), (1e-5 if eps is None else eps)
        kw = _kwargs(momentum, eps)
        y, new_mean, new_var = grader.call(
            batchnorm_forward, x, gamma, beta, rm, rv, True,
            outputs=("y", "running_mean", "running_var"), **kw,
        )  # fmt: skip
        offset = abs(float(x.mean())) > 1e3
        tag = label(x, **kw)
        shown = d.show(x=x, gamma=gamma, beta=beta, running_mean=rm, running_var=rv) + (
            f" {kw}." if kw else ""
        )
        x64, g, b, rm64, rv64 = (np.asarray(a, F64) for a in (x, gamma, beta, rm, rv))
        mu, var, var1 = x64.mean(0), x64.var(0), x64.var(0, ddof=1)
        new_rm, new_rv = ref.running_update(rm, rv, x, m)
        check_value(
            grader,
            f"y (training mode) {tag}",
            y,
            ref.batch_norm_train(x, gamma, beta, e),
            x.dtype,
            shown,
            mistakes={
                "you normalize with the running statistics; in training mode use the batch's "
                "own mean and variance": g * (x64 - rm64) / np.sqrt(rv64 + e) + b,
                "you normalize with the unbiased batch variance; use the biased one (divide by "
                "N)": g * (x64 - mu) / np.sqrt(var1 + e) + b,
                "you normalize with the updated running statistics": g
                * (x64 - new_rm)
                / np.sqrt(new_rv + e)
                + b,
                "you ignore the eps argument and always use 1e-5": g
                * (x64 - mu)
                / np.sqrt(var + 1e-5)
                + b,
            },
            hint=CANCELLATION.format(offset=1e4, spread=1.0, sq=1e8, var=1.0)
            if offset
            else "in training mode y = gamma * (x - mu_B) / sqrt(var_B + eps) + beta.",
            tol=(1e-2, 1e-2) if offset else None,
        )
        mm, mv = _running_mistakes(rm, rv, x, m)
        mm["running_mean is not updated in training mode"] = mm.pop(
            "the running mean is not updated"
        )
        mv["running_var is not updated in training mode"] = mv.pop(
            "the running variance is not updated"
        )
        check_value(
            grader, f"running_mean (training mode) {tag}", new_mean, new_rm, x.dtype, shown, mm
        )
        check_value(
            grader,
            f"running_var (training mode) {tag}",
            new_var,
            new_rv,
            x.dtype,
            shown,
            mv,
            hint=CANCELLATION.format(offset=1e4, spread=1.0, sq=1e8, var=1.0) if offset else None,
            tol=(1e-2, 1e-2) if offset else None,
        )
    x, gamma, beta, rm, rv, _, _ = _forward_cases(d, training=True)[0]
    grader.check_raises(
        "training with one example raises ValueError",
        batchnorm_forward, x[:1], gamma, beta, rm, rv, True,
        exception=ValueError,
        match="more than 1 value",
        hint="With N = 1 the batch variance is 0 and x_hat is 0 whatever x is; PyTorch refuses.",
    )  # fmt: skip
    grader.check_rules()


def check_forward_eval(grader: Grader, batchnorm_forward) -> None:
    """Grading cell 3."""
    d = Inputs(grader, 3)
    for x, gamma, beta, rm, rv, momentum, eps in _forward_cases(d, training=False):
        e = 1e-5 if eps is None else eps
        kw = _kwargs(momentum, eps)
        tag = label(x, **kw)
        shown = d.show(x=x, gamma=gamma, beta=beta, running_mean=rm, running_var=rv) + (
            f" {kw}." if kw else ""
        )
        x64, g, b = (np.asarray(a, F64) for a in (x, gamma, beta))
        expected = ref.batch_norm_eval(x, gamma, beta, rm, rv, e)
        y, new_mean, new_var = grader.call(
            batchnorm_forward, x, gamma, beta, rm, rv, False,
            outputs=("y", "running_mean", "running_var"), **kw,
        )  # fmt: skip
        mu, var = x64.mean(0), x64.var(0)
        check_value(
            grader,
            f"y (eval mode) {tag}",
            y,
            expected,
            x.dtype,
            shown,
            mistakes={
                "you use the batch statistics in eval mode; use running_mean and running_var": g
                * (x64 - mu)
                / np.sqrt(var + e)
                + b,
                "you ignore the eps argument and always use 1e-5": ref.batch_norm_eval(
                    x, gamma, beta, rm, rv, 1e-5
                ),
            },
            hint="in eval mode y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta.",
        )
        for name, got, before in [("running_mean", new_mean, rm), ("running_var", new_var, rv)]:
            check_value(
                grader,
                f"{name} (eval mode) {tag}",
                got,
                before,
                x.dtype,
                shown,
                hint="the running statistics must not change in eval mode.",
            )
        # One example at a time gives the same answer as the whole batch.
        y0, _, _ = grader.call(
            batchnorm_forward, x[:1], gamma, beta, rm, rv, False,
            outputs=("y", "running_mean", "running_var"), **kw,
        )  # fmt: skip
        check_value(
            grader,
            f"y (eval mode) for a single example {tag}",
            y0,
            expected[:1],
            x.dtype,
            d.show(x=x[:1]),
            hint="in eval mode an example's output must not depend on the rest of the batch.",
        )
    grader.check_rules()


def check_momentum_conversion(grader: Grader, torch_momentum_from_keras) -> None:
    """Grading cell 4."""
    d = Inputs(grader, 4)
    drawn = d.uniform((3,), 0.5, 0.999)
    for value in [float(drawn[0]), np.float32(drawn[1]), np.float64(drawn[2]), drawn.astype(F32)]:
        got = grader.call(torch_momentum_from_keras, value)
        dtype = np.asarray(value).dtype
        expected = 1.0 - np.asarray(value, F64)
        grader.check_close(
            f"torch_momentum_from_keras({value!r})",
            got,
            expected,
            rtol=1e-6 if dtype == F32 else 1e-12,
            atol=1e-7 if dtype == F32 else 1e-12,
            dtype=None if isinstance(value, float) else dtype,
            mistakes={"you return the Keras momentum unchanged": np.asarray(value, F64)},
            hint="Keras weights the old value by momentum; PyTorch weights the new one.",
            inputs=f"keras_momentum = {value!r}.",
        )
    grader.check_rules()

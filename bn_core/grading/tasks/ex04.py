"""Exercise 4: the backward pass through the computational graph."""

from __future__ import annotations

import numpy as np

from .. import reference as ref
from ..checks import allclose
from ..core import Grader
from ._common import CANCELLATION, F32, F64, Inputs, check_value, label, ok


def _dx_mistakes(x, gamma, dy, eps):
    x, gamma, dy = (np.asarray(a, F64) for a in (x, gamma, dy))
    n = x.shape[0]
    xc = x - x.mean(0)
    inv = 1 / np.sqrt(x.var(0) + eps)
    dxh = dy * gamma
    dvar = -0.5 * (dxh * xc).sum(0) * inv**3
    first = dxh * inv
    through_var = 2 * xc * dvar / n
    return {
        "the branch through mu is missing (dx gets no -sum(dxc) / N term)": first + through_var,
        "the branch through sigma2 (var) is missing": first - first.mean(0),
        "both branches, through mu and through sigma2, are missing": first,
        "gamma is missing: dx_hat = gamma * dy, not dy": ref.batch_norm_grads(
            x, np.ones_like(gamma), dy, eps
        )[0],
    }


def check_forward(grader: Grader, forward_with_cache) -> None:
    """Grading cell 1."""
    d = Inputs(grader, 1)
    for shape, dtype, eps, loc in [
        ((6, 4), F64, None, 1.0),
        ((5, 3), F32, 0.05, -0.5),
        ((4, 7), F64, 1e-3, 2.0),
        ((16, 3), F32, None, 1e4),
    ]:
        x = d.normal(shape, loc=loc, scale=2.0 if loc < 100 else 1.0, dtype=dtype)
        gamma = d.normal(shape[1:], loc=1.0, scale=0.5, dtype=dtype)
        beta = d.normal(shape[1:], dtype=dtype)
        e = 1e-5 if eps is None else eps
        args = (x, gamma, beta) + (() if eps is None else (eps,))
        y, _cache = grader.call(forward_with_cache, *args, outputs=("y", "cache"))
        x64, g, b = (a.astype(F64) for a in (x, gamma, beta))
        offset = loc > 100
        check_value(
            grader,
            f"y {label(x, **({} if eps is None else {'eps': eps}))}",
            y,
            ref.batch_norm_train(x, gamma, beta, e),
            dtype,
            d.show(x=x, gamma=gamma, beta=beta) + ("" if eps is None else f" eps = {eps}."),
            mistakes={
                "you normalize with the unbiased variance; use the biased one (mean of xc ** 2)": g
                * (x64 - x64.mean(0))
                / np.sqrt(x64.var(0, ddof=1) + e)
                + b,
                "you ignore the eps argument and always use 1e-5": ref.batch_norm_train(
                    x, gamma, beta
                ),
            },
            hint=CANCELLATION.format(offset=1e4, spread=1.0, sq=1e8, var=1.0)
            if offset
            else "follow the table above node by node.",
            tol=(1e-2, 1e-2) if offset else None,
        )
    grader.check_rules()


def _square(v):
    return v**2


def _cube(v):
    return v**3


def _coupled(v):
    return v * v.sum()


def check_numerical_gradient(grader: Grader, numerical_gradient) -> None:
    """Grading cell 2."""
    d = Inputs(grader, 2)
    cases = [
        # f, its name, x, df, h (None: the default), expected gradient of sum(f(x) * df)
        (_square, "x ** 2", d.normal((2, 3)), None, lambda x, df, h: 2 * x * df),
        (
            _coupled,
            "x * sum(x)",
            d.normal((4,)),
            None,
            lambda x, df, h: df * x.sum() + (df * x).sum(),
        ),
        (_cube, "x ** 3", d.normal((3, 2)), 1e-2, lambda x, df, h: (3 * x**2 + h**2) * df),
        (_square, "x ** 2", d.normal((3, 5), dtype=F32), None, lambda x, df, h: 2 * x * df),
    ]
    for f, fname, x, h, grad in cases:
        df = d.normal(x.shape, dtype=x.dtype)
        hh = 1e-5 if h is None else h
        args = (f, x, df) + (() if h is None else (h,))
        got = grader.call(numerical_gradient, *args, allowed=(f,))
        x64, df64 = x.astype(F64), df.astype(F64)
        expected = grad(x64, df64, hh)
        mistakes = {
            "df is ignored (you differentiate sum(f(x)) instead of sum(f(x) * df))": grad(
                x64, np.ones_like(df64), hh
            ),
            "you divide by h instead of 2 h": 2 * expected,
        }
        if f is _square:
            mistakes[
                "you use the one-sided difference (f(x + h) - f(x)) / h; use the centred one"
            ] = (2 * x64 + hh) * df64
        if f is _cube:
            mistakes["you ignore the argument h and always use 1e-5"] = (3 * x64**2 + 1e-10) * df64
        if f is _coupled:
            mistakes["you only vary f at element k, not the whole output"] = (
                df64 * x64.sum() + df64 * x64
            )
        tag = label(x, **({} if h is None else {"h": h}))
        check_value(
            grader,
            f"numerical_gradient of sum({fname} * df) {tag}",
            got,
            expected,
            x.dtype,
            d.show(x=x, df=df) + ("" if h is None else f" h = {h}."),
            mistakes=mistakes,
            hint=(
                "in float32 a step h = 1e-5 is lost to rounding (float32 keeps about 7 digits): "
                "perturb a float64 copy of x and return the gradient as x's dtype "
                "(grad.astype(x.dtype))."
                if x.dtype == F32
                else "(sum(f(x + h e_k) * df) - sum(f(x - h e_k) * df)) / (2 h) for each element k."
            ),
            tol=(1e-6, 1e-7) if x.dtype == F64 else (1e-3, 1e-4),
        )
    grader.check_rules()


def _backward_cases(d: Inputs):
    return [
        (d.normal((4, 3), loc=0.5, scale=2.0), None),
        (d.normal((16, 10), loc=-1.0, scale=3.0), 1e-3),
        (d.normal((6, 5), loc=0.5, scale=1.5, dtype=F32), 0.05),
    ]


def check_backward(grader: Grader, forward_with_cache, backward_graph) -> None:
    """Grading cell 3."""
    d = Inputs(grader, 3)
    for x, eps in _backward_cases(d):
        e = 1e-5 if eps is None else eps
        D = x.shape[1]
        gamma = d.normal((D,), loc=1.0, scale=0.7, dtype=x.dtype)
        beta = d.normal((D,), dtype=x.dtype)
        dy = d.normal(x.shape, dtype=x.dtype)
        dx_e, dg_e, db_e, x_hat, _ = ref.batch_norm_grads(x, gamma, dy, e)
        args = (x, gamma, beta) + (() if eps is None else (eps,))
        _, cache = grader.call(forward_with_cache, *args, outputs=("y", "cache"))
        dx, dgamma, dbeta = grader.call(
            backward_graph, dy, cache, outputs=("dx", "dgamma", "dbeta")
        )
        tag = label(x, **({} if eps is None else {"eps": eps}))
        shown = d.show(x=x, gamma=gamma, beta=beta, dy=dy) + (
            "" if eps is None else f" eps = {eps}."
        )
        dy64, x64 = dy.astype(F64), x.astype(F64)
        check_value(grader, f"dx {tag}", dx, dx_e, x.dtype, shown, _dx_mistakes(x, gamma, dy, e),
                    hint="add the gradients of every path from x to the loss (through x_hat, mu "
                    "and sigma2).")  # fmt: skip
        check_value(
            grader,
            f"dgamma {tag}",
            dgamma,
            dg_e,
            x.dtype,
            shown,
            {
                "dgamma uses x instead of x_hat": (dy64 * x64).sum(0),
                "dgamma is not summed over the batch": dy64 * x_hat,
            },
            hint="dgamma = sum over the batch of dy * x_hat.",
        )
        check_value(
            grader,
            f"dbeta {tag}",
            dbeta,
            db_e,
            x.dtype,
            shown,
            {"dbeta is not summed over the batch": dy64},
            hint="dbeta = sum over the batch of dy.",
        )
    grader.check_rules()


def _rel_error(a, b) -> float:
    a, b = np.asarray(a, F64), np.asarray(b, F64)
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def check_gradient_check(grader: Grader, forward_with_cache, backward_graph, numerical_gradient):
    """Grading cell 4: the learner's analytic gradients against their numerical ones."""
    d = Inputs(grader, 4)
    x = d.normal((5, 4), loc=-1.0, scale=3.0)
    gamma, beta, dy = d.normal((4,)), d.normal((4,)), d.normal((5, 4))
    shown = d.show(x=x, gamma=gamma, beta=beta, dy=dy)
    true = dict(zip(("dx", "dgamma", "dbeta"), ref.batch_norm_grads(x, gamma, dy)[:3], strict=True))
    _, cache = grader.call(forward_with_cache, x, gamma, beta, outputs=("y", "cache"))
    analytic = grader.call(backward_graph, dy, cache, outputs=("dx", "dgamma", "dbeta"))

    def y_of_x(v):
        return forward_with_cache(v, gamma, beta)[0]

    def y_of_gamma(v):
        return forward_with_cache(x, v, beta)[0]

    def y_of_beta(v):
        return forward_with_cache(x, gamma, v)[0]

    fns = {"dx": (y_of_x, x), "dgamma": (y_of_gamma, gamma), "dbeta": (y_of_beta, beta)}
    for (name, (f, at)), grad in zip(fns.items(), analytic, strict=True):
        numeric = grader.call(numerical_gradient, f, at, dy, allowed=(f,))
        expected = true[name]
        good = {}
        for who, value in [("backward_graph", grad), ("numerical_gradient", numeric)]:
            good[who] = (
                ok(value)
                and np.shape(value) == expected.shape
                and allclose(np.asarray(value, F64), expected, rtol=1e-6, atol=1e-8)
            )
        if ok(grad) and ok(numeric) and np.shape(grad) == np.shape(numeric) == expected.shape:
            print(f"relative error of {name}: {_rel_error(grad, numeric):.1e}")
        if good["backward_graph"] and good["numerical_gradient"]:
            grader.check_true(f"{name}: backward_graph agrees with numerical_gradient", True, "")
            continue
        wrong = [who for who, g in good.items() if not g]
        for who, value in [("backward_graph", grad), ("numerical_gradient", numeric)]:
            if who in wrong:
                other = "numerical_gradient" if who == "backward_graph" else "backward_graph"
                cause = (
                    f" Your {other} gives the right {name} here: use it to find the mistake."
                    if other not in wrong
                    else ""
                )
                check_value(
                    grader,
                    f"{name}: backward_graph agrees with numerical_gradient ({who}'s {name} is "
                    "the wrong one)",
                    value,
                    expected,
                    x.dtype,
                    shown,
                    hint=f"the {name} from {who} differs from the true gradient.{cause}",
                    tol=(1e-6, 1e-8),
                )
                break
    grader.check_rules()

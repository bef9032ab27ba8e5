"""Exercise 7: folding batch normalization into the previous layer."""

from __future__ import annotations

import numpy as np

from ..core import Grader
from ._common import F32, F64, Inputs, check_value

ROWS = {
    "could not be broadcast": (
        "a has one value per OUTPUT unit (out_features,), and W is (out_features, in_features): "
        "scale the rows, a[:, None] * W (a * W lines a up with the columns)."
    )
}
FILTERS = {
    "could not be broadcast": (
        "a has one value per output channel (C_out,), and weight is (C_out, C_in, kH, kW): "
        "reshape a to (C_out, 1, 1, 1) to scale each filter weight[k] (a * weight lines a up "
        "with the last axis kW; a.reshape(1, -1, 1, 1) with the input channels)."
    )
}


def _bn_params(d: Inputs, c: int, dtype, zero_var: bool = False):
    gamma = d.normal((c,), loc=1.0, scale=0.5, dtype=dtype)
    beta = d.normal((c,), dtype=dtype)
    rm = d.normal((c,), loc=0.5, scale=1.0, dtype=dtype)
    rv = d.uniform((c,), 0.1, 2.0, dtype=dtype)
    if zero_var:
        rv[-1] = 0.0  # a channel that never varied
    return gamma, beta, rm, rv


def _affine_mistakes(gamma, beta, rm, rv, e):
    g, b, m, v = (np.asarray(a, F64) for a in (gamma, beta, rm, rv))
    a = g / np.sqrt(v + e)
    with np.errstate(divide="ignore"):
        a_no_eps = g / np.sqrt(v)
    return (
        a,
        {
            "eps is missing": a_no_eps,
            "you ignore the eps argument and always use 1e-5": g / np.sqrt(v + 1e-5),
            "you divide by the variance instead of the standard deviation": g / (v + e),
        },
        {
            "b has the wrong sign of the running-mean term: b = beta - a * running_mean": b + a * m,
            "b forgets beta": -a * m,
            "b subtracts the running mean without scaling it by a": b - m,
            "you ignore the eps argument and always use 1e-5": b - g / np.sqrt(v + 1e-5) * m,
        },
    )


def _kw(eps):
    return {} if eps is None else {"eps": eps}


def check_affine(grader: Grader, bn_inference_affine) -> None:
    """Grading cell 1."""
    d = Inputs(grader, 1)
    for c, dtype, eps in [(3, F64, None), (5, F32, 0.05), (4, F64, 1e-3)]:
        gamma, beta, rm, rv = _bn_params(d, c, dtype, zero_var=dtype == F64)
        e = 1e-5 if eps is None else eps
        a, b = grader.call(bn_inference_affine, gamma, beta, rm, rv, outputs=("a", "b"), **_kw(eps))
        a_e, ma, mb = _affine_mistakes(gamma, beta, rm, rv, e)
        b_e = np.asarray(beta, F64) - a_e * np.asarray(rm, F64)
        tag = f"[{np.dtype(dtype).name}, C={c}{'' if eps is None else f', eps={eps:g}'}]"
        shown = d.show(gamma=gamma, beta=beta, running_mean=rm, running_var=rv) + (
            "" if eps is None else f" eps = {eps}."
        )
        check_value(grader, f"a (the scale) {tag}", a, a_e, dtype, shown, ma,
                    hint="a = gamma / sqrt(running_var + eps).")  # fmt: skip
        check_value(grader, f"b (the shift) {tag}", b, b_e, dtype, shown, mb,
                    hint="b = beta - a * running_mean.")  # fmt: skip
    grader.check_rules()


def check_fold_linear(grader: Grader, fold_linear) -> None:
    """Grading cell 2."""
    d = Inputs(grader, 2)
    for (n_out, n_in), dtype, eps, with_bias in [
        ((4, 3), F64, None, True),
        ((5, 2), F32, 0.05, True),
        ((3, 6), F64, 1e-3, False),
        ((2, 7), F32, None, False),
    ]:
        W = d.normal((n_out, n_in), dtype=dtype)
        bias = d.normal((n_out,), dtype=dtype) if with_bias else None
        gamma, beta, rm, rv = _bn_params(d, n_out, dtype)
        e = 1e-5 if eps is None else eps
        Wf, bf = grader.call(
            fold_linear, W, bias, gamma, beta, rm, rv, outputs=("W_folded", "bias_folded"),
            error_causes=ROWS, **_kw(eps),
        )  # fmt: skip
        a_e, ma, _ = _affine_mistakes(gamma, beta, rm, rv, e)
        W64 = W.astype(F64)
        c = np.zeros(n_out) if bias is None else bias.astype(F64)
        b64, m64 = beta.astype(F64), rm.astype(F64)
        tag = f"[{np.dtype(dtype).name}, W {W.shape}{'' if eps is None else f', eps={eps:g}'}" + (
            "]" if with_bias else ", bias=None]"
        )
        shown = d.show(W=W, bias=bias, gamma=gamma, beta=beta, running_mean=rm, running_var=rv) + (
            "" if eps is None else f" eps = {eps}."
        )
        check_value(
            grader,
            f"W_folded {tag}",
            Wf,
            a_e[:, None] * W64,
            dtype,
            shown,
            {f"{k} (in a)": v[:, None] * W64 for k, v in ma.items()},
            hint="scale row j of W (output unit j) by a[j] = gamma[j] / sqrt(running_var[j] + eps).",
        )
        check_value(
            grader,
            f"bias_folded {tag}",
            bf,
            a_e * (c - m64) + b64,
            dtype,
            shown,
            {
                "the old bias is dropped": b64 - a_e * m64,
                "the old bias is not scaled by a": c + b64 - a_e * m64,
                "you ignore the eps argument and always use 1e-5": (
                    np.asarray(gamma, F64) / np.sqrt(rv.astype(F64) + 1e-5) * (c - m64) + b64
                ),
            },
            hint="bias_folded = a * (bias - running_mean) + beta"
            + (
                ", with a missing bias treated as zeros of shape (out_features,)."
                if bias is None
                else "."
            ),
        )
    grader.check_rules()


def check_fold_conv(grader: Grader, fold_conv) -> None:
    """Grading cell 3."""
    d = Inputs(grader, 3)
    for shape, dtype, eps, with_bias in [
        ((4, 2, 3, 5), F64, None, True),
        ((3, 5, 1, 2), F32, 0.05, True),
        ((5, 3, 4, 2), F64, 1e-3, False),
    ]:
        weight = d.normal(shape, dtype=dtype)
        c_out = shape[0]
        bias = d.normal((c_out,), dtype=dtype) if with_bias else None
        gamma, beta, rm, rv = _bn_params(d, c_out, dtype)
        e = 1e-5 if eps is None else eps
        wf, bf = grader.call(
            fold_conv, weight, bias, gamma, beta, rm, rv,
            outputs=("weight_folded", "bias_folded"), error_causes=FILTERS, **_kw(eps),
        )  # fmt: skip
        a_e, ma, _ = _affine_mistakes(gamma, beta, rm, rv, e)
        w64 = weight.astype(F64)
        c = np.zeros(c_out) if bias is None else bias.astype(F64)
        b64, m64 = beta.astype(F64), rm.astype(F64)
        tag = (
            f"[{np.dtype(dtype).name}, weight {shape}{'' if eps is None else f', eps={eps:g}'}"
            + ("]" if with_bias else ", bias=None]")
        )
        shown = d.show(weight=weight, bias=bias, gamma=gamma, beta=beta, running_mean=rm,
                       running_var=rv) + ("" if eps is None else f" eps = {eps}.")  # fmt: skip
        check_value(
            grader,
            f"weight_folded {tag}",
            wf,
            a_e.reshape(-1, 1, 1, 1) * w64,
            dtype,
            shown,
            {f"{k} (in a)": v.reshape(-1, 1, 1, 1) * w64 for k, v in ma.items()},
            hint="scale each output filter weight[k] by a[k]: a.reshape(-1, 1, 1, 1) * weight.",
        )
        check_value(
            grader,
            f"bias_folded {tag}",
            bf,
            a_e * (c - m64) + b64,
            dtype,
            shown,
            {
                "the old bias is dropped": b64 - a_e * m64,
                "the old bias is not scaled by a": c + b64 - a_e * m64,
            },
            hint="bias_folded = a * (bias - running_mean) + beta, one value per output channel.",
        )
    grader.check_rules()

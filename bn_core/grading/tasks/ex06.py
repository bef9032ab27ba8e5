"""Exercise 6: spatial batch normalization for images."""

from __future__ import annotations

import numpy as np

from .. import reference as ref
from ..core import Grader
from ._common import CANCELLATION, F32, F64, Inputs, check_value, label, per_channel

BROADCAST = {
    "could not be broadcast": (
        "gamma, beta (and any per-channel statistic without keepdims) have shape (C,); against "
        "(N, C, H, W) numpy lines them up with the last axis W, not the channels. Reshape them "
        "to (1, C, 1, 1) (or use keepdims=True for the statistics)."
    )
}


def _rows_route(values: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> rows with channels last -> reshaped back WITHOUT moving the axis back."""
    n, c, h, w = values.shape
    return np.moveaxis(values, 1, -1).reshape(-1, c).reshape(n, c, h, w)


def _no_transpose(x, gamma, beta, e):
    n, c, h, w = x.shape
    rows = np.asarray(x, F64).reshape(-1, c)
    mu, var = rows.mean(0), rows.var(0)
    return (np.asarray(gamma, F64) * (rows - mu) / np.sqrt(var + e) + beta).reshape(x.shape)


def _cases(d: Inputs):
    """(x, eps, note): shapes whose N, C, H, W all differ, both dtypes, a view, an offset."""
    nhwc = d.normal((4, 3, 5, 2), loc=0.5, scale=1.5)  # (N, H, W, C)
    view = d.note(np.moveaxis(nhwc, 3, 1), "np.moveaxis(x_nhwc, 3, 1) (a non-contiguous view)")
    return [
        (
            d.normal(
                (2, 3, 4, 5),
                loc=[[[[0.0]], [[-3.0]], [[2.0]]]],
                scale=[[[[1.0]], [[4.0]], [[1e-3]]]],
            ),
            None,
            None,
        ),
        (d.normal((3, 4, 5, 2), loc=1.0, scale=2.0, dtype=F32), 0.05, None),
        (view, 1e-3, "view"),
        (d.normal((1, 2, 3, 4), loc=0.0, scale=1.0), None, None),
        (d.normal((2, 3, 4, 5), loc=1e4, scale=1.0, dtype=F32), None, "offset"),
    ]


def check_forward(grader: Grader, spatial_batchnorm_forward, only_view: bool = False) -> None:
    """Grading cell 1 (and, with ``only_view``, the forward half of cell 3)."""
    d = Inputs(grader, 1)
    for x, eps, note in _cases(d):
        if (note == "view") != only_view:
            continue
        c = x.shape[1]
        gamma = d.normal((c,), loc=1.0, scale=0.5, dtype=x.dtype)
        beta = d.normal((c,), dtype=x.dtype)
        e = 1e-5 if eps is None else eps
        args = (x, gamma, beta) + (() if eps is None else (eps,))
        got = grader.call(spatial_batchnorm_forward, *args, error_causes=BROADCAST)
        x64 = x.astype(F64)
        g4, b4 = per_channel(gamma, 4), per_channel(beta, 4)

        def over(axes, ddof=0, x64=x64, g4=g4, b4=b4, e=e):
            mu = x64.mean(axis=axes, keepdims=True)
            var = x64.var(axis=axes, keepdims=True, ddof=ddof)
            return g4 * (x64 - mu) / np.sqrt(var + e) + b4

        expected = ref.batch_norm_train(x, gamma, beta, e)
        mistakes = {
            "you normalize each example over (C, H, W): that is layer normalization; batch norm "
            "takes statistics per channel over (N, H, W)": over((1, 2, 3)),
            "you take statistics over the batch axis only (one per channel and position); "
            "reduce over (N, H, W)": over((0,)),
            "you take statistics over (N, H) or (N, W) only; reduce over (N, H, W)": over((0, 2)),
            "you reshape to (N * H * W, C) without moving the channel axis last first "
            "(transpose before the reshape)": _no_transpose(x, gamma, beta, e),
            "you moved the channel axis last, but reshaped back to (N, C, H, W) without moving "
            "it back (transpose after the reshape)": _rows_route(expected),
            "you normalize with the unbiased variance; use the biased one": over((0, 2, 3), 1),
            "you ignore the eps argument and always use 1e-5": ref.batch_norm_train(x, gamma, beta),
        }
        tag = label(x, **({} if eps is None else {"eps": eps}))
        check_value(
            grader,
            f"y {tag}" + (" for a channels-last view" if note == "view" else ""),
            got,
            expected,
            x.dtype,
            (
                d.show(x_nhwc=x.base if x.base is not None else x)
                + " x = np.moveaxis(x_nhwc, 3, 1). "
                if note == "view"
                else d.show(x=x)
            )
            + d.show(gamma=gamma, beta=beta)
            + ("" if eps is None else f" eps = {eps}."),
            mistakes=mistakes,
            hint=CANCELLATION.format(offset=1e4, spread=1.0, sq=1e8, var=1.0)
            if note == "offset"
            else "statistics per channel (axis 1) over axes (0, 2, 3); gamma and beta reshaped "
            "to (1, C, 1, 1).",
            tol=(1e-2, 1e-2) if note == "offset" else None,
        )
    grader.check_rules()


def check_backward(grader: Grader, spatial_batchnorm_backward, only_view: bool = False) -> None:
    """Grading cell 2 (and, with ``only_view``, the backward half of cell 3)."""
    d = Inputs(grader, 2)
    for x, eps, note in _cases(d)[:4]:
        if (note == "view") != only_view:
            continue
        c = x.shape[1]
        gamma = d.normal((c,), loc=1.0, scale=0.5, dtype=x.dtype)
        dy = d.normal(x.shape, dtype=x.dtype)
        e = 1e-5 if eps is None else eps
        args = (dy, x, gamma) + (() if eps is None else (eps,))
        dx, dgamma, dbeta = grader.call(
            spatial_batchnorm_backward, *args, outputs=("dx", "dgamma", "dbeta"),
            error_causes=BROADCAST,
        )  # fmt: skip
        dx_e, dg_e, db_e, x_hat, _ = ref.batch_norm_grads(x, gamma, dy, e)
        dy64, x64 = dy.astype(F64), x.astype(F64)
        tag = label(x, **({} if eps is None else {"eps": eps})) + (
            " for a channels-last view" if note == "view" else ""
        )
        shown = (
            (
                d.show(x_nhwc=x.base) + " x = np.moveaxis(x_nhwc, 3, 1). "
                if note == "view"
                else d.show(x=x)
            )
            + d.show(gamma=gamma, dy=dy)
            + ("" if eps is None else f" eps = {eps}.")
        )
        n, _, h, w = x.shape
        rows_dx = ref.batch_norm_grads(
            np.moveaxis(x64, 1, -1).reshape(-1, c),
            gamma,
            np.moveaxis(dy64, 1, -1).reshape(-1, c),
            e,
        )[0]
        check_value(
            grader,
            f"dx {tag}",
            dx,
            dx_e,
            x.dtype,
            shown,
            {
                "you moved the channel axis last, but reshaped dx back to (N, C, H, W) without "
                "moving it back (transpose after the reshape)": rows_dx.reshape(n, c, h, w),
                "you ignore the eps argument and always use 1e-5": ref.batch_norm_grads(
                    x, gamma, dy
                )[0],
                "the branch through mu is missing": dx_e
                + per_channel(gamma, 4)
                * per_channel(ref.stats(x, 0)[1] + e, 4) ** -0.5
                * dy64.mean(axis=(0, 2, 3), keepdims=True),
            },
            hint="the closed form per channel, with m = N * H * W and sums over axes (0, 2, 3).",
        )
        check_value(
            grader,
            f"dgamma {tag}",
            dgamma,
            dg_e,
            x.dtype,
            shown,
            {"dgamma uses x instead of x_hat": (dy64 * x64).sum((0, 2, 3))},
            hint="dgamma sums dy * x_hat over every axis except the channel axis.",
        )
        check_value(
            grader,
            f"dbeta {tag}",
            dbeta,
            db_e,
            x.dtype,
            shown,
            hint="dbeta sums dy over every axis except the channel axis (0, 2, 3).",
        )
    grader.check_rules()


def check_view(grader: Grader, spatial_batchnorm_forward, spatial_batchnorm_backward) -> None:
    """Grading cell 3: a non-contiguous (N, C, H, W) view of a channels-last array."""
    check_forward(grader, spatial_batchnorm_forward, only_view=True)
    check_backward(grader, spatial_batchnorm_backward, only_view=True)

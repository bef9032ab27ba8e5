"""Exercise 10: layer normalization and group normalization, forward and backward, in numpy.

Every expected value is PyTorch's (``torch.nn.functional.layer_norm`` / ``group_norm``),
computed by :mod:`bn_core.grading.reference` in float64 with two passes and tested against
torch in ``tests/test_grading_reference.py``. The named causes are the real mistakes of a
hand-written LayerNorm or GroupNorm: statistics over the batch axis (that is batch norm),
``normalized_shape`` ignored, the unbiased variance, eps outside the square root, groups taken
as strided channels or through a reshape that mixes examples, weight per group, a backward
without the terms through the mean and the variance, and dweight summed over the wrong axes.
The last cell asks the chapter's question: the output of one example must not depend on the
rest of the batch (and a batch of one must work).
"""

from __future__ import annotations

import numpy as np

from .. import reference as ref
from ..core import Grader
from ..i18n import _
from ._common import CANCELLATION, F32, F64, Inputs, check_value, label, ok, per_channel

# -- learner-facing texts: literal templates through _(), looked up when a check runs (not at
# import), so a catalogue loaded after this module is imported still translates them ------------


def _msg_broadcast_ln() -> str:
    return _(
        "weight and bias have the shape normalized_shape: they broadcast against x as they are "
        "(numpy lines up trailing axes). The statistics must keep their axes (keepdims=True, or a "
        "reshape to (..., 1, 1)) to broadcast against x."
    )


def _msg_broadcast_gn() -> str:
    return _(
        "weight and bias have shape (C,); against (N, C, H, W) or (N, C, L) numpy lines them up "
        "with the LAST axis, not the channels. Reshape them to (1, C, 1, 1) or (1, C, 1), i.e. "
        "(1, C) followed by one 1 per axis after the channels, and apply them on x's own shape "
        "(after reshaping the normalized groups back), not on the grouped view."
    )


def _msg_batch_ln() -> str:
    return _(
        "you take the statistics over the batch axis (one mean per position, over the examples): "
        "that is batch normalization; LayerNorm takes them per example, over the trailing axes "
        "given by normalized_shape"
    )


def _msg_all_axes() -> str:
    return _(
        "you normalize each example over ALL its axes, ignoring normalized_shape: only the trailing "
        "len(normalized_shape) axes are normalized together (axes -len(normalized_shape) ... -1)"
    )


def _msg_last_axis() -> str:
    return _(
        "you normalize over the last axis only: normalized_shape has {k} axes here, and the "
        "statistics are taken over all of them together"
    )


def _msg_unbiased() -> str:
    return _("you normalize with the unbiased variance (ddof=1); use the biased one (divide by K)")


def _msg_eps_outside() -> str:
    return _(
        "you add eps outside the square root, (x - mean) / (sqrt(var) + eps); PyTorch divides by "
        "sqrt(var + eps)"
    )


def _msg_eps_ignored() -> str:
    return _("you ignore the eps argument and always use 1e-5")


def _msg_no_affine() -> str:
    return _("you ignore weight and bias")


def _msg_swapped() -> str:
    return _("you swapped weight and bias (bias * x_hat + weight)")


def _msg_batch_gn() -> str:
    return _(
        "you take the statistics per channel over (N, H, W) or (N, L): that is batch normalization; "
        "GroupNorm takes them per example and per group of channels"
    )


def _msg_groups_ignored() -> str:
    return _(
        "you normalize each example over all its channels at once (num_groups ignored, as with "
        "num_groups=1, LayerNorm); each of the num_groups blocks of C / num_groups channels gets "
        "its own statistics"
    )


def _msg_per_channel() -> str:
    return _(
        "you normalize each channel of each example on its own (num_groups ignored, as with "
        "num_groups=C, InstanceNorm)"
    )


def _msg_strided() -> str:
    return _(
        "your groups are strided channels (channel c in group c % num_groups, as from "
        "x.reshape(N, C // G, G, ...)); PyTorch's groups are CONTIGUOUS blocks: channels 0 .. C/G - 1 "
        "are group 0, the next C/G group 1, ... (x.reshape(N, G, -1))"
    )


def _msg_mixed() -> str:
    return _(
        "your reshape mixes examples and channels (x.reshape(num_groups, -1) or an axis order "
        "that puts N after C): a group's statistics then pool values of several examples. Keep N "
        "first: x.reshape(N, num_groups, -1)"
    )


def _msg_weight_per_group() -> str:
    return _(
        "you apply one weight and one bias per group (weight[g] for the channels of group g); "
        "weight and bias have one value per CHANNEL, shape (C,)"
    )


def _msg_no_mean_terms() -> str:
    return _(
        "the terms through the mean and the variance are missing (dx = weight * dy / std): every "
        "x of a group moves its mean and variance, which moves every output of the group"
    )


def _msg_no_mu() -> str:
    return _("the term through the mean is missing (no - mean(dx_hat) inside the bracket)")


def _msg_no_var() -> str:
    return _(
        "the term through the variance is missing (no - x_hat * mean(dx_hat * x_hat) inside the "
        "bracket)"
    )


def _msg_bn_backward() -> str:
    return _(
        "this is batch norm's backward: the sums run over the batch axis, where LayerNorm's and "
        "GroupNorm's run over the values one mean and variance were computed from"
    )


def _msg_no_weight() -> str:
    return _("weight is missing: dx_hat = weight * dy, not dy")


def _msg_count_n() -> str:
    return _(
        "you divide the two sums by the batch size N (copied from batch norm's backward); the "
        "mean and variance of LayerNorm are over the K = prod(normalized_shape) values of one example"
    )


def _msg_count_hw() -> str:
    return _(
        "you divide the two sums by the count of one channel (H * W or L); a group holds "
        "C / num_groups * H * W values"
    )


def _msg_weight_after() -> str:
    return _(
        "you multiply by weight AFTER the normalization's backward (weight * backward(dy)); weight "
        "differs between the channels of one group, so dx_hat = weight * dy must come first"
    )


def _msg_dw_x() -> str:
    return _("dweight uses x instead of x_hat")


def _msg_dw_group() -> str:
    return _("dweight is summed per group (shape (G,)); there is one weight per channel")


def _msg_gradcheck() -> str:
    return _(
        "dx is compared here with central differences of the loss sum(y * dy) (step {h:g}), a "
        "gradient computed without any formula: if this check fails and the one against the "
        "closed form too, the formula is wrong, not the reference."
    )


# -- wrong answers, computed in float64 ------------------------------------------------------------
def _normalize(x, axes, eps, ddof=0, outside=False):
    """x_hat with statistics over ``axes`` (float64, keepdims)."""
    x = np.asarray(x, F64)
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True, ddof=ddof)
    return (x - mu) / (np.sqrt(var) + eps if outside else np.sqrt(var + eps))


def _grouped(x, g, eps, ddof=0, outside=False):
    """GroupNorm's x_hat computed on the (N, G, -1) view (right when ddof=0, outside=False)."""
    x = np.asarray(x, F64)
    rows = x.reshape(x.shape[0], g, -1)
    return _normalize(rows, (2,), eps, ddof, outside).reshape(x.shape)


def _strided(x, g, eps):
    x = np.asarray(x, F64)
    n, c = x.shape[:2]
    v = x.reshape(n, c // g, g, -1)
    return _normalize(v, (1, 3), eps).reshape(x.shape)


def _mixed(x, g, eps):
    x = np.asarray(x, F64)
    return _normalize(x.reshape(g, -1), (1,), eps).reshape(x.shape)


def _affine(x_hat, weight, bias, shape_fn=lambda v: v):
    y = x_hat
    if weight is not None:
        y = y * shape_fn(np.asarray(weight, F64))
    if bias is not None:
        y = y + shape_fn(np.asarray(bias, F64))
    return y


def _ln_axes(x, normalized_shape):
    return tuple(range(x.ndim - len(normalized_shape), x.ndim))


def _ln_forward_mistakes(x, ns, weight, bias, e):
    axes = _ln_axes(x, ns)

    def y(x_hat, w=weight, b=bias):
        return _affine(x_hat, w, b)

    out = {
        _msg_batch_ln(): y(_normalize(x, (0,), e)),
        _msg_all_axes(): y(_normalize(x, tuple(range(1, x.ndim)), e)),
        _msg_last_axis().format(k=len(ns)): y(_normalize(x, (-1,), e)),
        _msg_unbiased(): y(_normalize(x, axes, e, ddof=1)),
        _msg_eps_outside(): y(_normalize(x, axes, e, outside=True)),
        _msg_eps_ignored(): y(_normalize(x, axes, 1e-5)),
    }
    if weight is not None:
        out[_msg_no_affine()] = _normalize(x, axes, e)
        out[_msg_swapped()] = y(_normalize(x, axes, e), bias, weight)
    return out


def _gn_forward_mistakes(x, g, weight, bias, e):
    c = x.shape[1]

    def y(x_hat, w=weight, b=bias, nd=x.ndim):
        return _affine(x_hat, w, b, lambda v: per_channel(v, nd))

    rest = tuple(range(2, x.ndim))
    out = {
        _msg_batch_gn(): y(_normalize(x, (0, *rest), e)),
        _msg_groups_ignored(): y(_normalize(x, (1, *rest), e)),
        _msg_per_channel(): y(_normalize(x, rest, e)),
        _msg_strided(): y(_strided(x, g, e)),
        _msg_mixed(): y(_mixed(x, g, e)),
        _msg_unbiased(): y(_grouped(x, g, e, ddof=1)),
        _msg_eps_outside(): y(_grouped(x, g, e, outside=True)),
        _msg_eps_ignored(): y(_grouped(x, g, 1e-5)),
    }
    if weight is not None:
        x_hat = _grouped(x, g, e)
        out[_msg_no_affine()] = x_hat
        out[_msg_swapped()] = y(x_hat, bias, weight)
        if g < c:
            rows = x_hat.reshape(x.shape[0], g, -1)
            w = np.asarray(weight, F64)[:g].reshape(1, g, 1)
            b = np.asarray(bias, F64)[:g].reshape(1, g, 1)
            out[_msg_weight_per_group()] = (rows * w + b).reshape(x.shape)
    return out


def _rows_backward(dxh_rows, xh_rows, inv, count=None, mu=True, var=True):
    """The closed-form backward on rows, with the count or a term possibly wrong."""
    k = xh_rows.shape[1] if count is None else count
    out = dxh_rows.copy()
    if mu:
        out = out - dxh_rows.sum(axis=1, keepdims=True) / k
    if var:
        out = out - xh_rows * (dxh_rows * xh_rows).sum(axis=1, keepdims=True) / k
    return inv * out


def _dx_mistakes(x, dy, weight_b, rows_shape, e, e_default, kind):
    """Wrong dx of LayerNorm or GroupNorm; ``weight_b`` broadcasts against x."""
    x64, dy64 = np.asarray(x, F64), np.asarray(dy, F64)

    def parts(eps):
        xr = x64.reshape(rows_shape)
        mu = xr.mean(1, keepdims=True)
        inv = 1 / np.sqrt(((xr - mu) ** 2).mean(1, keepdims=True) + eps)
        return (xr - mu) * inv, inv

    xh, inv = parts(e)
    dxh = (dy64 * weight_b).reshape(rows_shape)

    def back(**kw):
        return _rows_backward(dxh, xh, inv, **kw).reshape(x.shape)

    out = {
        _msg_no_mean_terms(): back(mu=False, var=False),
        _msg_no_mu(): back(mu=False),
        _msg_no_var(): back(var=False),
        _msg_no_weight(): _rows_backward(dy64.reshape(rows_shape), xh, inv).reshape(x.shape),
    }
    xh_e, inv_e = parts(e_default)
    out[_msg_eps_ignored()] = _rows_backward(dxh, xh_e, inv_e).reshape(x.shape)
    if kind == "ln":
        flat = (x.shape[0], -1)
        bn = ref.batch_norm_grads(
            x64.reshape(flat), np.ones(x64[0].size), dxh.reshape(x.shape).reshape(flat), e
        )[0]
        out[_msg_bn_backward()] = bn.reshape(x.shape)
        out[_msg_count_n()] = back(count=x.shape[0])
    else:
        out[_msg_bn_backward()] = ref.batch_norm_grads(x64, weight_b.reshape(-1), dy64, e)[0]
        hw = int(np.prod(x.shape[2:]))
        out[_msg_count_hw()] = back(count=hw)
        plain = _rows_backward(dy64.reshape(rows_shape), xh, inv).reshape(x.shape)
        out[_msg_weight_after()] = weight_b * plain
    return out


def _central_differences(f, x, dy, h):
    """d sum(f(x) * dy) / dx by central differences, one element at a time, float64."""
    xp = np.array(x, F64)
    grad = np.zeros_like(xp)
    flat, gflat = xp.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = float((f(xp) * dy).sum())
        flat[i] = old - h
        down = float((f(xp) * dy).sum())
        flat[i] = old
        gflat[i] = (up - down) / (2 * h)
    return grad


def _per_example(d: Inputs, shape, dtype, loc=0.0, spread=1.0, scale=1.5):
    """Examples with their own offsets (and channels with their own scales)."""
    locs = loc + spread * np.arange(shape[0], dtype=F64).reshape((-1,) + (1,) * (len(shape) - 1))
    scales = scale * (1.0 + 0.5 * np.arange(shape[1])).reshape((1, -1) + (1,) * (len(shape) - 2))
    return d.normal(shape, loc=locs - spread * (shape[0] - 1) / 2, scale=scales, dtype=dtype)


def _tag(x, **kw):
    return label(x, **kw)


def _eps_args(eps):
    return {} if eps is None else {"eps": eps}


def _shown_eps(eps):
    return "" if eps is None else f" eps = {eps}."


# -- LayerNorm -----------------------------------------------------------------------------------
#: (shape, normalized_shape, dtype, eps, affine, note). N, and the sizes of every shape, differ.
LN_CASES = [
    ((2, 3, 4, 5), (3, 4, 5), F64, None, True, None),
    ((3, 5, 4), (4,), F32, 0.05, True, None),
    ((4, 3, 5, 2), (5, 2), F64, 1e-3, False, None),
    ((2, 7, 3), (7, 3), F32, None, True, "offset"),
]


def _ln_inputs(d: Inputs, shape, ns, dtype, affine, note):
    if note == "offset":
        x = d.normal(shape, loc=1e4, scale=1.0, dtype=dtype)
    else:
        x = _per_example(d, shape, dtype)
    w = d.normal(ns, loc=1.0, scale=0.5, dtype=dtype) if affine else None
    b = d.normal(ns, dtype=dtype) if affine else None
    return x, w, b


def check_layer_norm(grader: Grader, layer_norm) -> None:
    """Grading cell 1: ``layer_norm(x, normalized_shape, weight, bias, eps)``."""
    d = Inputs(grader, 1)
    for shape, ns, dtype, eps, affine, note in LN_CASES:
        x, w, b = _ln_inputs(d, shape, ns, dtype, affine, note)
        e = 1e-5 if eps is None else eps
        got = grader.call(layer_norm, x, ns, w, b, error_causes={"broadcast": _msg_broadcast_ln()},
                          **_eps_args(eps))  # fmt: skip
        expected = ref.layer_norm(x, ns, w, b, e)
        extra = {"normalized_shape": ns, **_eps_args(eps)}
        if not affine:
            extra["weight"] = "None"
        check_value(
            grader,
            _("y {tag}").format(tag=_tag(x, **extra)),
            got,
            expected,
            x.dtype,
            d.show(x=x, normalized_shape=ns, weight=w, bias=b) + _shown_eps(eps),
            mistakes=_ln_forward_mistakes(x, ns, w, b, e),
            hint=CANCELLATION.format(offset=1e4, spread=1.0, sq=1e8, var=1.0)
            if note == "offset"
            else _(
                "per example, the mean and the biased variance over the trailing axes given by "
                "normalized_shape (axis=tuple(range(-len(normalized_shape), 0)), keepdims=True), "
                "then weight * x_hat + bias (or x_hat alone when they are None)."
            ),
            tol=(1e-2, 1e-2) if note == "offset" else None,
        )
    grader.check_rules()


#: (shape, normalized_shape, dtype, eps); the last is the gradient check's small case.
LN_BACKWARD_CASES = [
    ((2, 3, 4, 5), (3, 4, 5), F64, None),
    ((3, 5, 4), (4,), F32, 0.05),
    ((4, 3, 5, 2), (5, 2), F64, 1e-3),
]
LN_GRADCHECK = ((3, 2, 4), (2, 4), 0.02)


def check_layer_norm_backward(grader: Grader, layer_norm_backward) -> None:
    """Grading cell 2: ``layer_norm_backward(dy, x, normalized_shape, weight, eps)``."""
    d = Inputs(grader, 2)
    for shape, ns, dtype, eps in LN_BACKWARD_CASES:
        x = _per_example(d, shape, dtype)
        w = d.normal(ns, loc=1.0, scale=0.5, dtype=dtype)
        dy = d.normal(shape, dtype=dtype)
        e = 1e-5 if eps is None else eps
        dx, dw, db = grader.call(
            layer_norm_backward, dy, x, ns, w, outputs=("dx", "dweight", "dbias"),
            error_causes={"broadcast": _msg_broadcast_ln()}, **_eps_args(eps),
        )  # fmt: skip
        dx_e, dw_e, db_e = ref.layer_norm_grads(x, ns, w, dy, e)
        tag = _tag(x, normalized_shape=ns, **_eps_args(eps))
        shown = d.show(dy=dy, x=x, normalized_shape=ns, weight=w) + _shown_eps(eps)
        k = int(np.prod(ns))
        lead = tuple(range(x.ndim - len(ns)))
        dy64 = dy.astype(F64)
        check_value(
            grader,
            _("dx {tag}").format(tag=tag),
            dx,
            dx_e,
            x.dtype,
            shown,
            _dx_mistakes(x, dy, w.astype(F64), (-1, k), e, 1e-5, "ln"),
            hint=_(
                "per example, with K = prod(normalized_shape) values: dx = (1 / std) * (dx_hat - "
                "mean(dx_hat) - x_hat * mean(dx_hat * x_hat)), dx_hat = weight * dy, the means "
                "over the normalized axes."
            ),
        )
        check_value(
            grader,
            _("dweight {tag}").format(tag=tag),
            dw,
            dw_e,
            x.dtype,
            shown,
            {_msg_dw_x(): (dy64 * x.astype(F64)).sum(axis=lead)},
            hint=_(
                "dweight has the shape of normalized_shape: sum dy * x_hat over every axis that "
                "is NOT normalized (the leading ones)."
            ),
        )
        check_value(
            grader,
            _("dbias {tag}").format(tag=tag),
            db,
            db_e,
            x.dtype,
            shown,
            hint=_("dbias sums dy over every axis that is not normalized (the leading ones)."),
        )
    _gradcheck(
        grader,
        d,
        layer_norm_backward,
        LN_GRADCHECK,
        lambda x, ns, w, e: ref.layer_norm(x, ns, w, None, e),
        "normalized_shape",
        lambda shape, ns: tuple(ns),
    )
    grader.check_rules()


def _gradcheck(grader, d, backward, case, forward_ref, what, weight_shape):
    """A float64 case whose expected dx comes from central differences of the forward."""
    shape, arg, eps = case
    x = _per_example(d, shape, F64)
    w = d.normal(weight_shape(shape, arg), loc=1.0, scale=0.5)
    dy = d.normal(shape)
    h = 1e-5
    numeric = _central_differences(lambda v: forward_ref(v, arg, w, eps), x, dy, h)
    dx = grader.call(backward, dy, x, arg, w, eps=eps, outputs=("dx", "dweight", "dbias"))[0]
    check_value(
        grader,
        _("dx {tag} against central differences").format(tag=_tag(x, **{what: arg, "eps": eps})),
        dx,
        numeric,
        F64,
        d.show(dy=dy, x=x, weight=w) + f" {what} = {arg!r}; eps = {eps}.",
        hint=_msg_gradcheck().format(h=h),
        tol=(1e-6, 1e-8),
    )


# -- GroupNorm -----------------------------------------------------------------------------------
#: (shape, num_groups, dtype, eps, affine, note): G in {other divisor, 1, C}, (N, C, H, W) and
#: (N, C, L); every shape's sizes differ.
GN_CASES = [
    ((3, 6, 4, 5), 2, F64, None, True, None),
    ((2, 6, 7), 3, F32, 0.05, True, None),
    ((4, 6, 2, 3), 6, F64, 1e-3, True, None),
    ((5, 4, 3), 1, F64, None, False, None),
    ((2, 6, 3, 5), 3, F32, None, True, "offset"),
]


def check_group_norm(grader: Grader, group_norm) -> None:
    """Grading cell 3: ``group_norm(x, num_groups, weight, bias, eps)``."""
    d = Inputs(grader, 3)
    for shape, g, dtype, eps, affine, note in GN_CASES:
        c = shape[1]
        if note == "offset":
            x = d.normal(shape, loc=1e4, scale=1.0, dtype=dtype)
        else:
            x = _per_example(d, shape, dtype)
        w = d.normal((c,), loc=1.0, scale=0.5, dtype=dtype) if affine else None
        b = d.normal((c,), dtype=dtype) if affine else None
        e = 1e-5 if eps is None else eps
        got = grader.call(group_norm, x, g, w, b, error_causes={"broadcast": _msg_broadcast_gn()},
                          **_eps_args(eps))  # fmt: skip
        extra = {"num_groups": g, **_eps_args(eps)}
        if not affine:
            extra["weight"] = "None"
        check_value(
            grader,
            _("y {tag}").format(tag=_tag(x, **extra)),
            got,
            ref.group_norm(x, g, w, b, e),
            x.dtype,
            d.show(x=x, num_groups=g, weight=w, bias=b) + _shown_eps(eps),
            mistakes=_gn_forward_mistakes(x, g, w, b, e),
            hint=CANCELLATION.format(offset=1e4, spread=1.0, sq=1e8, var=1.0)
            if note == "offset"
            else _(
                "view x as (N, num_groups, -1) (contiguous blocks of C / num_groups channels), "
                "take the mean and the biased variance of each row, reshape x_hat back to x's "
                "shape, then weight and bias per channel, reshaped to (1, C, 1, ...)."
            ),
            tol=(1e-2, 1e-2) if note == "offset" else None,
        )
    grader.check_rules()


GN_BACKWARD_CASES = [
    ((3, 6, 4, 5), 2, F64, None),
    ((2, 6, 7), 3, F32, 0.05),
    ((4, 6, 2, 3), 6, F64, 1e-3),
    ((5, 4, 3), 1, F64, None),
]
GN_GRADCHECK = ((2, 4, 3), 2, 0.02)


def check_group_norm_backward(grader: Grader, group_norm_backward) -> None:
    """Grading cell 4: ``group_norm_backward(dy, x, num_groups, weight, eps)``."""
    d = Inputs(grader, 4)
    for shape, g, dtype, eps in GN_BACKWARD_CASES:
        c = shape[1]
        x = _per_example(d, shape, dtype)
        w = d.normal((c,), loc=1.0, scale=0.5, dtype=dtype)
        dy = d.normal(shape, dtype=dtype)
        e = 1e-5 if eps is None else eps
        dx, dw, db = grader.call(
            group_norm_backward, dy, x, g, w, outputs=("dx", "dweight", "dbias"),
            error_causes={"broadcast": _msg_broadcast_gn()}, **_eps_args(eps),
        )  # fmt: skip
        dx_e, dw_e, db_e = ref.group_norm_grads(x, g, w, dy, e)
        tag = _tag(x, num_groups=g, **_eps_args(eps))
        shown = d.show(dy=dy, x=x, num_groups=g, weight=w) + _shown_eps(eps)
        dy64, x64 = dy.astype(F64), x.astype(F64)
        axes = (0, *range(2, x.ndim))
        x_hat = _grouped(x, g, e)
        check_value(
            grader,
            _("dx {tag}").format(tag=tag),
            dx,
            dx_e,
            x.dtype,
            shown,
            _dx_mistakes(x, dy, per_channel(w, x.ndim), (x.shape[0] * g, -1), e, 1e-5, "gn"),
            hint=_(
                "per example and group, with K = C / num_groups * H * W values: dx = (1 / std) * "
                "(dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)), dx_hat = weight * dy "
                "(weight per channel), the means over the group's values."
            ),
        )
        dw_group = (dy64 * x_hat).reshape(x.shape[0], g, -1).sum(axis=(0, 2))
        check_value(
            grader,
            _("dweight {tag}").format(tag=tag),
            dw,
            dw_e,
            x.dtype,
            shown,
            {
                _msg_dw_x(): (dy64 * x64).sum(axis=axes),
                **({_msg_dw_group(): dw_group} if g < c else {}),
            },
            hint=_("dweight has shape (C,): sum dy * x_hat over every axis but the channels."),
        )
        check_value(
            grader,
            _("dbias {tag}").format(tag=tag),
            db,
            db_e,
            x.dtype,
            shown,
            hint=_("dbias has shape (C,): sum dy over every axis but the channels."),
        )
    _gradcheck(
        grader,
        d,
        group_norm_backward,
        GN_GRADCHECK,
        lambda x, g, w, e: ref.group_norm(x, g, w, None, e),
        "num_groups",
        lambda shape, g: (shape[1],),
    )
    grader.check_rules()


# -- batch independence --------------------------------------------------------------------------


def _msg_batch_dependent() -> str:
    return _(
        "{fn}'s output for example {i} changed when the OTHER examples of the batch changed "
        "(largest change {err:.3g}): its statistics must come from example {i} alone. If yours "
        "are taken over the batch axis, that is batch normalization, the very dependence LayerNorm "
        "and GroupNorm remove."
    )


def _msg_single() -> str:
    return _(
        "you take the statistics over the batch axis: with one example in the batch each value is "
        "its own mean, so x - mean is 0 and y is just bias. LayerNorm and GroupNorm never look "
        "across examples, so a batch of one works like any other"
    )


def check_batch_independence(grader: Grader, layer_norm, group_norm) -> None:
    """Grading cell 5: one example's output does not depend on the rest of the batch; N=1."""
    d = Inputs(grader, 5)
    setups = [
        (layer_norm, "layer_norm", (5, 3, 4), (3, 4), lambda s: s[1:]),
        (group_norm, "group_norm", (5, 6, 4), 3, lambda s: (s[1],)),
    ]
    for fn, name, shape, arg, wshape in setups:
        x = _per_example(d, shape, F64)
        w = d.normal(wshape(shape), loc=1.0, scale=0.5)
        b = d.normal(wshape(shape))
        i = 2
        others = d.normal((3, *shape[1:]), loc=-4.0, scale=3.0)
        x2 = np.concatenate([others[:1], x[i : i + 1], others[1:]])
        single = np.ascontiguousarray(x[i : i + 1])
        d.note(x2, "np.concatenate([others[:1], x[2:3], others[1:]]) (example 2 of x at index 1)")
        d.note(single, "x[2:3]")
        y = grader.call(fn, x, arg, w, b, eps=0.01)
        y2 = grader.call(fn, x2, arg, w, b, eps=0.01)
        y1 = grader.call(fn, single, arg, w, b, eps=0.01)
        if name == "layer_norm":
            expected = ref.layer_norm(single, arg, w, b, 0.01)
        else:
            expected = ref.group_norm(single, arg, w, b, 0.01)
        shown = d.show(x=x, others=others, weight=w, bias=b) + _(
            " eps = 0.01; example i = {i}. The second batch is np.concatenate([others[:1], "
            "x[{i}:{j}], others[1:]]) (example {i} of x at index 1); the batch of one is x[{i}:{j}]."
        ).format(i=i, j=i + 1)

        title = _("{fn}: example {i}'s output does not depend on the other examples").format(
            fn=name, i=i
        )
        if _both(y, y2, shape, x2):
            change = float(np.abs(np.asarray(y, F64)[i] - np.asarray(y2, F64)[1]).max())
            grader.check_true(
                title,
                change <= 1e-9 * max(1.0, float(np.abs(np.asarray(y, F64)).max())),
                _msg_batch_dependent().format(fn=name, i=i, err=change)
                + " "
                + _("Input: {shown}").format(shown=shown),
            )
        else:
            grader.check_true(
                title,
                False,
                _(
                    "not checked, because {fn} did not return arrays of the input's shape "
                    "(the checks of cells 1 and 3 say what is wrong)."
                ).format(fn=name),
                needs=[y, y2],
            )
        if name == "layer_norm":
            bn_one = _affine(_normalize(single, (0,), 0.01), w, b)
        else:
            bn_one = _affine(_normalize(single, (0, 2), 0.01), w, b, lambda v: per_channel(v, 3))
        check_value(
            grader,
            _("{fn}(x[{i}:{j}]) (a batch of one example)").format(fn=name, i=i, j=i + 1),
            y1,
            expected,
            F64,
            shown,
            mistakes={_msg_single(): bn_one},
            hint=_(
                "a batch of one must give that example's output in any batch: the checks of "
                "cells 1 and 3 show what else is wrong."
            ),
        )
    grader.check_rules()


def _both(y, y2, shape, x2) -> bool:
    return ok(y) and ok(y2) and np.shape(y) == shape and np.shape(y2) == x2.shape


__all__ = [
    "check_batch_independence",
    "check_group_norm",
    "check_group_norm_backward",
    "check_layer_norm",
    "check_layer_norm_backward",
]

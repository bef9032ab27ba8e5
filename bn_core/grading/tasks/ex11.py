"""Exercise 11: a residual block with batch normalization, and the residual stream at init.

The learner writes, with numpy only:

- ``init_block(W1, W2, zero_init_last_gamma=False)``: the block's BN parameters and running
  statistics at initialization (gamma of the *last* BN zero with the option, Goyal et al. 2017);
- ``block_forward(x, p, block="post", momentum=0.1, eps=1e-5)``: one block in training mode,
  returning the output and the updated running statistics. Post-activation (He et al. 2015):
  ``relu(x + BN2(relu(BN1(x @ W1)) @ W2))``; pre-activation (He et al. 2016):
  ``x + relu(BN2(relu(BN1(x)) @ W1)) @ W2`` (the blocks of chapter 11, ``bn_core.lab.resnets``);
- ``stream_mean_squares(x, weights, block, norm, zero_init_last_gamma, eps)``: the mean square
  ``E[x_l^2]`` (over examples and units) of the residual stream entering every block and after
  the last, at initialization: the quantity chapter 11 measures (De & Smith 2020).

The references below are written here in float64 (no bn_core function), with switches that
reproduce the named mistakes: BN after the addition, the skip forgotten, a ReLU after the
addition of a pre-activation block, eval-mode statistics, the unbiased variance to normalize,
the wrong BN's gamma set to zero, the variance (or the wrong axis) instead of the mean square.
"""

from __future__ import annotations

import numpy as np

from ..core import Grader
from ..i18n import _
from ..safe_call import CallFailed
from ._common import F32, F64, Inputs, check_value, label

KEYS = ("gamma1", "beta1", "gamma2", "beta2")
RUNNING = ("running_mean1", "running_var1", "running_mean2", "running_var2")


# -- references (float64) ------------------------------------------------------------------------
def _relu(h):
    return np.maximum(h, 0.0)


def _bn(h, gamma, beta, rm, rv, momentum, eps, *, eval_stats=False, unbiased=False):
    """Training-mode BN over axis 0 (or eval-mode with ``eval_stats``); (out, new_rm, new_rv)."""
    h = np.asarray(h, F64)
    n = h.shape[0]
    mu, var = h.mean(0), ((h - h.mean(0)) ** 2).mean(0)
    new_rm = (1 - momentum) * np.asarray(rm, F64) + momentum * mu
    new_rv = (1 - momentum) * np.asarray(rv, F64) + momentum * var * n / (n - 1)
    if eval_stats:
        mu, var = np.asarray(rm, F64), np.asarray(rv, F64)
    elif unbiased:
        var = var * n / (n - 1)
    out = np.asarray(gamma, F64) * (h - mu) / np.sqrt(var + eps) + np.asarray(beta, F64)
    return out, new_rm, new_rv


def _block(x, p, block, momentum=0.1, eps=1e-5, mistake=None):
    """One block in float64; ``mistake`` switches on one named mistake. Returns (y, running)."""
    x = np.asarray(x, F64)
    W1, W2 = (np.asarray(p[k], F64) for k in ("W1", "W2"))
    kw = {"eval_stats": mistake == "eval", "unbiased": mistake == "unbiased"}
    e = 1e-5 if mistake == "eps" else eps

    def bn(h, k):
        return _bn(h, p[f"gamma{k}"], p[f"beta{k}"], p[f"running_mean{k}"],
                   p[f"running_var{k}"], momentum, e, **kw)  # fmt: skip

    if mistake == "other-block":
        block = "pre" if block == "post" else "post"
    skip = 0.0 if mistake == "no-skip" else x
    if block == "post":
        h1, m1, v1 = bn(x @ W1, 1)
        branch = _relu(h1) @ W2
        if mistake == "bn-after-add":
            h2, m2, v2 = bn(skip + branch, 2)
            y = _relu(h2)
        else:
            h2, m2, v2 = bn(branch, 2)
            y = _relu(skip + h2)
    else:
        h1, m1, v1 = bn(x, 1)
        h2, m2, v2 = bn(_relu(h1) @ W1, 2)
        y = skip + _relu(h2) @ W2
        if mistake == "relu-after-add":
            y = _relu(y)
    return y, dict(zip(RUNNING, (m1, v1, m2, v2), strict=True))


def _init(W1, W2, zero_init_last_gamma=False, which=2):
    d = np.shape(W1)[1]
    p = {"W1": W1, "W2": W2, "gamma1": np.ones(d), "beta1": np.zeros(d), "gamma2": np.ones(d),
         "beta2": np.zeros(d), "running_mean1": np.zeros(d), "running_var1": np.ones(d),
         "running_mean2": np.zeros(d), "running_var2": np.ones(d)}  # fmt: skip
    if zero_init_last_gamma:
        p[f"gamma{which}"] = np.zeros(d)
    return p


def _stream(x, weights, block, norm, zero, eps, mistake=None):
    """Mean squares of the stream entering each block and after the last (float64)."""
    if mistake == "other-block":
        block, mistake = ("pre" if block == "post" else "post"), None
    h = np.asarray(x, F64)
    hs = [h]
    for W1, W2 in weights:
        W1, W2 = np.asarray(W1, F64), np.asarray(W2, F64)
        if norm:
            p = _init(W1, W2, zero, which=1 if mistake == "gamma1" else 2)
            h, _r = _block(h, p, block, eps=eps, mistake=mistake)
        elif block == "post":
            h = _relu(h + _relu(h @ W1) @ W2)
        else:
            h = h + _relu(_relu(h) @ W1) @ W2
        hs.append(h)
    if mistake == "var":
        return np.array([v.var() for v in hs])
    if mistake == "var-axis1":
        return np.array([v.var(axis=1).mean() for v in hs])
    if mistake == "var-axis0":
        return np.array([v.var(axis=0).mean() for v in hs])
    return np.array([np.mean(v**2) for v in hs])


# -- grading cell 1: init_block ------------------------------------------------------------------
def check_init(grader: Grader, init_block) -> None:
    """Grading cell 1."""
    d = Inputs(grader, 1)
    for width, dtype, zero in [(5, F64, True), (7, F32, False), (6, F32, True), (4, F64, None)]:
        W1 = d.normal((width, width), scale=np.sqrt(2 / width), dtype=dtype)
        W2 = d.normal((width, width), scale=np.sqrt(2 / width), dtype=dtype)
        args = (W1, W2) if zero is None else (W1, W2, zero)
        got = grader.call(init_block, *args)
        z = bool(zero)
        tag = label(W1, zero_init_last_gamma=z if zero is not None else "default")
        shown = d.show(W1=W1, W2=W2) + (
            f" zero_init_last_gamma={zero}." if zero is not None else ""
        )
        ok = isinstance(got, dict)
        if not ok and not isinstance(got, CallFailed):
            grader.check_true(
                _("init_block returns a dict {tag}").format(tag=tag),
                False,
                _("init_block returned {kind}; return a dict with the keys {keys}.").format(
                    kind=type(got).__name__, keys=", ".join(("W1", "W2") + KEYS + RUNNING)
                ),
            )
            continue
        expected = _init(W1, W2, z)
        for key in KEYS + RUNNING:
            value = got.get(key) if ok else got
            if ok and key not in got:
                grader.check_true(
                    _("{key} {tag}").format(key=key, tag=tag),
                    False,
                    _("the dict has no key {key!r} (keys: {keys}).").format(
                        key=key, keys=", ".join(map(repr, got))
                    ),
                )
                continue
            mistakes = {}
            if key == "gamma1" and z:
                mistakes[_("you set the FIRST BN's gamma to zero; zero_init_last_gamma zeroes "
                           "the gamma of the LAST BN of the block (BN2), so that the block "
                           "starts as relu(x) (post) or x (pre)")] = np.zeros(width)  # fmt: skip
            if key == "gamma2":
                mistakes[
                    _("you ignore zero_init_last_gamma (gamma2 should be all zeros with it)")
                    if z
                    else _("you set gamma2 to zero although zero_init_last_gamma is False")
                ] = np.ones(width) if z else np.zeros(width)
            if key.startswith("running_var"):
                mistakes[_("running_var starts at 1 (PyTorch's init), not 0")] = np.zeros(width)
            check_value(grader, _("{key} {tag}").format(key=key, tag=tag), value, expected[key],
                        dtype, shown, mistakes=mistakes,
                        hint=_("gamma starts at 1 and beta at 0 (gamma2 at 0 with "
                               "zero_init_last_gamma=True); running_mean at 0, running_var at 1; "
                               "all of shape (width,), of the weights' dtype."))  # fmt: skip
    grader.check_rules()


# -- grading cell 2: block_forward ---------------------------------------------------------------
def _params(d: Inputs, width, dtype):
    p = {
        "W1": d.normal((width, width), scale=np.sqrt(2 / width), dtype=dtype),
        "W2": d.normal((width, width), scale=np.sqrt(2 / width), dtype=dtype),
        "gamma1": d.normal((width,), loc=1.0, scale=0.4, dtype=dtype),
        "beta1": d.normal((width,), scale=0.5, dtype=dtype),
        "gamma2": d.normal((width,), loc=1.0, scale=0.4, dtype=dtype),
        "beta2": d.normal((width,), scale=0.5, dtype=dtype),
        "running_mean1": d.normal((width,), scale=0.5, dtype=dtype),
        "running_var1": d.uniform((width,), 0.5, 2.0, dtype=dtype),
        "running_mean2": d.normal((width,), scale=0.5, dtype=dtype),
        "running_var2": d.uniform((width,), 0.5, 2.0, dtype=dtype),
    }
    return p


FORWARD_CASES = [
    # (N, width, dtype, block, kwargs)
    ((7, 5), F64, "post", {"momentum": 0.3, "eps": 0.05}),
    ((9, 4), F32, "post", {}),
    ((6, 8), F64, "pre", {"momentum": 0.2}),
    ((11, 3), F32, "pre", {"eps": 1e-3, "momentum": 0.25}),
]


def _named() -> dict[str, str]:
    """The named mistakes of a block (translated when called, not at import)."""
    return {
        "bn-after-add": _("BN2 is applied after the addition, to x + branch: the skip must carry x "
                          "itself, and BN2 normalizes the branch only (post: relu(x + BN2(...)))"),
        "no-skip": _("the skip connection is missing: the block returns f(x) (or relu(f(x))), "
                     "not x + f(x)"),
        "relu-after-add": _("a ReLU follows the addition in the pre-activation block; in a "
                            "pre-activation block the stream is never rectified: y = x + f(x)"),
        "eval": _("BN uses running_mean and running_var (eval-mode statistics); in training mode "
                  "it normalizes with the batch's mean and biased variance"),
        "unbiased": _("you normalize with the unbiased variance (ddof=1); BN normalizes with the "
                      "biased one and stores the unbiased one in running_var"),
        "eps": _("you ignore the eps argument and always use 1e-5"),
        "other-block": _("you compute the other kind of block (check the `block` argument: 'post' "
                         "is relu(x + BN2(relu(BN1(x @ W1)) @ W2)), 'pre' is "
                         "x + relu(BN2(relu(BN1(x)) @ W1)) @ W2)"),
    }  # fmt: skip


def check_forward(grader: Grader, block_forward) -> None:
    """Grading cell 2."""
    d = Inputs(grader, 2)
    for (n, width), dtype, block, kw in FORWARD_CASES:
        x = d.normal((n, width), loc=0.3, scale=1.5, dtype=dtype)
        p = _params(d, width, dtype)
        y, running = grader.call(block_forward, x, p, block, outputs=("y", "running"), **kw)
        m, e = kw.get("momentum", 0.1), kw.get("eps", 1e-5)
        tag = label(x, block=block, **kw)
        shown = d.show(x=x, **p) + f" block={block!r}" + (f", {kw}." if kw else ".")
        exp_y, exp_r = _block(x, p, block, m, e)
        mistakes = {}
        for key, text in _named().items():
            if key == "relu-after-add" and block == "post":
                continue
            if key == "eps" and "eps" not in kw:
                continue
            mistakes[text] = _block(x, p, block, m, e, mistake=key)[0]
        check_value(grader, _("y {tag}").format(tag=tag), y, exp_y, dtype, shown,
                    mistakes=mistakes,
                    hint=_("post: y = relu(x + BN2(relu(BN1(x @ W1)) @ W2)); pre: y = x + "
                           "relu(BN2(relu(BN1(x)) @ W1)) @ W2; BN in training mode: the batch's "
                           "mean and biased variance over axis 0, with this call's eps."))  # fmt: skip
        if not isinstance(running, dict) and not isinstance(running, CallFailed):
            grader.check_true(
                _("running {tag}").format(tag=tag),
                False,
                _("the second value returned should be a dict with the keys {keys}, got "
                  "{kind}.").format(keys=", ".join(RUNNING), kind=type(running).__name__),
            )  # fmt: skip
            continue
        for key in RUNNING:
            value = running if not isinstance(running, dict) else running.get(key)
            k = key[-1]
            h_in = _bn_input(x, p, block, k, m, e)
            mu, var = h_in.mean(0), h_in.var(0)
            old = np.asarray(p[key], F64)
            new = mu if key.startswith("running_mean") else var * n / (n - 1)
            wrong = {
                _("the momentum is reversed: running = momentum * running + (1 - momentum) * "
                  "batch"): m * old + (1 - m) * new,
                _("you return the running statistics unchanged: in training mode they are "
                  "updated"): old,
            }  # fmt: skip
            if key.startswith("running_var"):
                wrong[_("you store the biased variance; running_var stores the unbiased one "
                        "(times n / (n - 1))")] = (1 - m) * old + m * var  # fmt: skip
            check_value(grader, _("running[{key!r}] {tag}").format(key=key, tag=tag), value,
                        exp_r[key], dtype, shown, mistakes=wrong,
                        hint=_("running = (1 - momentum) * running + momentum * (batch mean, or "
                               "unbiased batch variance) of what this BN normalizes."))  # fmt: skip
    grader.check_rules()


def _bn_input(x, p, block, k, momentum, eps):
    """What BN ``k`` ("1" or "2") of the block normalizes, in float64."""
    x = np.asarray(x, F64)
    W1, W2 = np.asarray(p["W1"], F64), np.asarray(p["W2"], F64)
    bn = {
        k2: (p[f"gamma{k2}"], p[f"beta{k2}"], p[f"running_mean{k2}"], p[f"running_var{k2}"])
        for k2 in "12"
    }
    if block == "post":
        h = x @ W1
        if k == "1":
            return h
        return _relu(_bn(h, *bn["1"], momentum, eps)[0]) @ W2
    if k == "1":
        return x
    return _relu(_bn(x, *bn["1"], momentum, eps)[0]) @ W1


# -- grading cell 3: the residual stream at initialization ----------------------------------------
STREAM_CASES = [
    # (N, width, depth, dtype, block, norm, zero_init_last_gamma, eps)
    ((32, 12), 6, F64, "pre", True, False, None),
    ((32, 12), 6, F64, "pre", False, False, None),
    ((40, 10), 5, F32, "post", True, True, 1e-3),
    ((24, 9), 7, F32, "post", True, False, None),
    ((24, 9), 4, F64, "post", False, False, None),
]


def _stream_named() -> dict[str, str]:
    """The named mistakes of the stream measurement (translated when called)."""
    named = _named()
    return {
        "var": _("you compute the variance (the mean removed); chapter 11 tracks the mean square "
                 "E[x^2] over examples and units, which the stream's mean counts in"),
        "var-axis1": _("you compute each example's variance over the units (axis=1), then average; "
                       "the quantity is the mean square over examples and units"),
        "var-axis0": _("you compute each unit's variance over the batch (axis=0), then average; the "
                       "quantity is the mean square, mean removed nowhere"),
        "eval": _("the blocks' BN uses the running statistics (eval mode, 0 and 1 at init); at "
                  "initialization the network is in training mode: BN uses the batch's statistics"),
        "gamma1": _("zero_init_last_gamma zeroes the FIRST BN's gamma; it is the LAST BN's (BN2)"),
        "no-skip": named["no-skip"],
        "relu-after-add": named["relu-after-add"],
        "bn-after-add": named["bn-after-add"],
        "other-block": named["other-block"],
    }  # fmt: skip


def check_stream(grader: Grader, stream_mean_squares) -> None:
    """Grading cell 3."""
    d = Inputs(grader, 3)
    for (n, width), depth, dtype, block, norm, zero, eps in STREAM_CASES:
        x = d.normal((n, width), loc=0.2, scale=1.0, dtype=dtype)
        start = d.count
        weights = [
            (
                d.normal((width, width), scale=np.sqrt(2 / width), dtype=dtype),
                d.normal((width, width), scale=np.sqrt(2 / width), dtype=dtype),
            )
            for _l in range(depth)
        ]
        kw = {"block": block, "norm": norm, "zero_init_last_gamma": zero}
        if eps is not None:
            kw["eps"] = eps
        e = 1e-5 if eps is None else eps
        got = grader.call(stream_mean_squares, x, weights, **kw)
        tag = label(x, depth=depth, **kw)
        keys = [[grader.seed, d.base + k] for k in (start, d.count - 1)]
        shown = d.show(x=x) + _(
            " weights = [(W1, W2) for each of {depth} blocks], each W = np.round(np.sqrt(2 / "
            "{w}) * np.random.default_rng(key).standard_normal(({w}, {w})).round(2), 6) with "
            "key from {first} to {last} in order (W1, W2, W1, ...); {kw}."
        ).format(depth=depth, w=width, first=keys[0], last=keys[1], kw=kw)
        if dtype == F32:
            shown += _(" All arrays are float32.")
        expected = _stream(x, weights, block, norm, zero, e)
        mistakes = {text: _stream(x, weights, block, norm, zero, e, mistake=key)
                    for key, text in _stream_named().items()
                    if (norm or key in ("var", "var-axis1", "var-axis0", "other-block"))
                    and not (key == "relu-after-add" and block == "post")
                    and not (key == "gamma1" and not zero)}  # fmt: skip
        mistakes[_("you ignore the norm argument")] = _stream(x, weights, block, not norm, zero, e)
        if zero:
            mistakes[_("you ignore zero_init_last_gamma")] = _stream(
                x, weights, block, norm, False, e
            )
        mistakes[_("the list starts after the first block: it must start with E[x^2] of the "
                   "input (depth + 1 values)")] = expected[1:]  # fmt: skip
        check_value(grader, _("stream mean squares {tag}").format(tag=tag), got, expected,
                    dtype, shown, mistakes=mistakes,
                    tol=(2e-3, 1e-4) if dtype == F32 else None,
                    hint=_("out[0] = np.mean(x ** 2); then for every (W1, W2): the block at "
                           "initialization (gamma 1, beta 0, gamma2 0 with zero_init_last_gamma;"
                           " without norm the BN layers are left out), and out[l + 1] = "
                           "np.mean(h ** 2) of its output."))  # fmt: skip
    grader.check_rules()

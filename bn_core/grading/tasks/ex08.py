"""Exercise 8: synchronized batch normalization by hand, over simulated ranks.

Every expected value is that of one batch normalization over the concatenated batch
(:mod:`bn_core.grading.reference`, float64, two passes), whatever the split into shards.
The named causes are the real mistakes of a hand-written synchronized BN: the variance
averaged without the between-shard term, an unweighted mean of the shards' means, M2 built
from unbiased per-shard variances, the local N in the backward, the sums not reduced across
ranks, synchronizing in eval mode, and the sum-of-squares merge (which only the float32
large-offset case exposes, with a message about catastrophic cancellation).
"""

from __future__ import annotations

import numpy as np

from .. import reference as ref
from ..checks import allclose
from ..core import Grader
from ..safe_call import CallFailed
from ._common import CANCELLATION, F32, F64, Inputs, check_value, label

#: Shown when a float32 large-offset case fails without a named cause.
SUM_OF_SQUARES = (
    "These float32 shards have a large offset (values near {offset:g}, spread about 1). If you "
    "are right in float64 but wrong here, the usual cause is a merge through sums of squares, "
    "var = E[x^2] - E[x]^2 (or sum(x**2) / N - mean**2): both terms are about {sq:.0e}, "
    "float32 keeps about 7 significant digits, so their difference (about 1) is lost to "
    "rounding: catastrophic cancellation. Merge (count, mean, M2) with Chan's formula instead: "
    "only differences of means (small numbers) are squared."
)
NO_BETWEEN = (
    "you add the shards' M2 (or average their variances) without the between-shard term "
    "delta**2 * n_a * n_b / n: the spread of the shards' means around each other is lost"
)
UNWEIGHTED = (
    "you average the shards' means without weighting them by their counts: a shard of 1 "
    "example counts as much as a shard of 7 (and an empty shard's 0 drags the mean)"
)
UNBIASED_SHARDS = (
    "each shard's M2 comes from its unbiased variance (n_r * var with ddof=1); M2 is the sum of "
    "squared deviations, n_r * (biased variance) = (n_r - 1) * (unbiased variance)"
)
LOCAL = (
    "each shard is normalized with its own statistics (plain per-device BN): the statistics "
    "are never merged across ranks"
)


# -- the wrong merges, computed in float64 from the shards --------------------------------------
def _parts(shards):
    """(n_r, mean_r, biased var_r, unbiased var_r) of each non-empty shard, in float64."""
    out = []
    for s in shards:
        s = np.asarray(s, F64)
        if s.shape[0] == 0:
            continue
        var1 = s.var(0, ddof=1) if s.shape[0] > 1 else np.zeros(s.shape[1])
        out.append((s.shape[0], s.mean(0), s.var(0), var1))
    return out


def _chan(parts):
    """(count, mean, m2) merged from (n, mean, m2) triples, float64."""
    n, mean, m2 = 0, 0.0, 0.0
    for nb, mb, m2b in parts:
        if n == 0:
            n, mean, m2 = nb, mb, m2b
            continue
        total = n + nb
        delta = mb - mean
        mean = mean + delta * nb / total
        m2 = m2 + m2b + delta**2 * n * nb / total
        n = total
    return n, mean, m2


def _wrong_globals(shards):
    """{cause: (mean, biased var)} of the usual wrong merges of these shards."""
    parts = _parts(shards)
    n = sum(p[0] for p in parts)
    mean, _ = ref.stats(np.concatenate([np.asarray(s, F64) for s in shards]))
    means = [p[1] for p in parts]
    all_means = [p[1] for p in parts] + [
        np.zeros_like(parts[0][1]) for s in shards if np.shape(s)[0] == 0
    ]
    within = sum(p[0] * p[2] for p in parts)
    _, _, m2_unb = _chan([(p[0], p[1], p[0] * p[3]) for p in parts])
    return {
        NO_BETWEEN: (mean, within / n),
        "you average the shards' variances (without weights or the between-shard term)": (
            mean,
            np.mean([p[2] for p in parts], axis=0),
        ),
        UNWEIGHTED: (np.mean(means, axis=0), ref.stats(np.concatenate(shards))[1]),
        UNWEIGHTED + " (empty shards included)": (
            np.mean(all_means, axis=0),
            ref.stats(np.concatenate(shards))[1],
        ),
        UNBIASED_SHARDS: (mean, m2_unb / n),
    }


# -- cases -----------------------------------------------------------------------------------
#: (shard sizes, channels, dtype, loc). Every case has unequal shards and one is empty in
#: most; sizes differ from the channel count, so a transposed answer has the wrong shape.
CASES = [
    ((3, 0, 5), 4, F64, 1.0),
    ((2, 7, 1, 0), 3, F32, -2.0),
    ((6, 9), 5, F64, 0.5),
]
OFFSET_CASE = ((5, 0, 8, 2), 3, F32, 1e4)


def _shards(d: Inputs, sizes, channels, dtype, loc, spread=None):
    """Shards drawn with per-shard offsets, so the between-shard term is large."""
    out = []
    for r, n in enumerate(sizes):
        shift = loc + (spread if spread is not None else 2.0) * (r - len(sizes) / 2)
        out.append(d.normal((n, channels), loc=shift, scale=1.5, dtype=dtype))
    return out


def _show(d: Inputs, shards, **extra) -> str:
    return d.show(**{f"shards[{i}]": s for i, s in enumerate(shards)}, **extra)


def _tag(shards, **kw) -> str:
    sizes = tuple(int(np.shape(s)[0]) for s in shards)
    dt = shards[0].dtype.name
    extra = "".join(f", {k}={v:g}" if isinstance(v, float) else f", {k}={v}" for k, v in kw.items())
    return f"[{dt} shards of sizes {sizes}, C={shards[0].shape[1]}{extra}]"


def _joined(got, shards, what: str):
    """The learner's per-shard list concatenated, or CallFailed saying what is wrong with it."""
    if isinstance(got, CallFailed) or got is None:
        return got
    if not isinstance(got, list | tuple):
        return CallFailed(
            f"{what} should be a list with one array per shard ({len(shards)} shards), got "
            f"{type(got).__name__}"
        )
    if len(got) != len(shards):
        return CallFailed(
            f"{what} should hold one array per shard: {len(shards)} shards, got {len(got)} "
            "arrays (an empty shard still gets its empty output, of shape (0, C))"
        )
    for i, (g, s) in enumerate(zip(got, shards, strict=True)):
        if np.shape(g) != s.shape:
            return CallFailed(
                f"{what}[{i}] has shape {np.shape(g)}, expected {s.shape} (the shape of "
                f"shards[{i}])"
            )
    dtypes = {np.asarray(g).dtype for g in got}
    return np.concatenate([np.asarray(g) for g in got]).astype(
        dtypes.pop() if len(dtypes) == 1 else F64, copy=False
    )


def _arrays_in(value) -> list[np.ndarray]:
    """The arrays inside lists and tuples (the shards, the per-rank statistics)."""
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, list | tuple):
        return [a for v in value for a in _arrays_in(v)]
    return []


def _detached(value, inputs: list[np.ndarray]):
    """``value`` with the arrays that share memory with ``inputs`` copied (in lists too)."""
    if isinstance(value, np.ndarray):
        return value.copy() if any(np.may_share_memory(value, a) for a in inputs) else value
    if isinstance(value, list | tuple):
        return type(value)(_detached(v, inputs) for v in value)
    return value


def _call(grader: Grader, fn, *args, outputs, **kwargs):
    """``grader.call``, plus a check that the arrays inside list arguments are left unchanged.

    ``Grader.call`` compares array arguments; here the shards (and the per-rank statistics)
    come in lists, so their arrays are compared (and restored) here.
    """
    inner = [a for arg in args if isinstance(arg, list) for a in _arrays_in(arg)]
    saved = [a.copy() for a in inner]
    got = grader.call(fn, *args, outputs=outputs, **kwargs)
    changed = [
        i
        for i, (a, before) in enumerate(zip(inner, saved, strict=True))
        if not np.array_equal(a, before, equal_nan=True)
    ]
    if changed:
        # what the function computed is judged, not the restored input it may have returned
        got = tuple(_detached(v, inner) for v in got)
    for i in changed:
        inner[i][...] = saved[i]
    name = getattr(fn, "__name__", "your function")
    grader.check_true(
        f"{name} leaves the arrays in its list arguments unchanged",
        # like Grader.call: not checked (failed) when the call itself failed
        got[0] if not changed and isinstance(got[0], CallFailed) else not changed,
        f"{name} changed {len(changed)} array(s) inside a list it was given, in place (a rank "
        "must not overwrite the shards or the statistics it received). `a -= b`, `a += b`, "
        "`a[...] = ` or `out=a` change the caller's array; write `a = a - b` instead.",
    )
    return got


# -- grading cell 1: what one rank sends -----------------------------------------------------------
def check_shard_stats(grader: Grader, shard_stats) -> None:
    """Grading cell 1."""
    d = Inputs(grader, 1)
    for sizes, channels, dtype, loc in [*CASES, OFFSET_CASE]:
        offset = loc > 1e3
        for x in _shards(d, sizes, channels, dtype, loc, spread=0.3 if offset else None):
            count, mean, m2 = grader.call(shard_stats, x, outputs=("count", "mean", "m2"))
            tag = label(x)
            shown = d.show(x=x)
            grader.check_close(f"count {tag}", count, np.asarray(x.shape[0]), rtol=0, atol=0,
                               hint="count is the number of values per channel, x.shape[0].",
                               inputs=shown)  # fmt: skip
            x64 = np.asarray(x, F64)
            n = x.shape[0]
            e_mean = x64.mean(0) if n else np.zeros(channels)
            e_m2 = ((x64 - e_mean) ** 2).sum(0) if n else np.zeros(channels)
            empty = (
                " For an empty shard return (0, zeros, zeros) of shape (C,): x.mean(axis=0) is NaN."
            )
            tol = (1e-2, 1e-2) if offset else None
            check_value(grader, f"mean {tag}", mean, e_mean, dtype, shown, tol=tol,
                        hint="the mean over the shard's examples (axis 0)." + empty)  # fmt: skip
            check_value(
                grader, f"m2 {tag}", m2, e_m2, dtype, shown, tol=tol,
                mistakes={
                    UNBIASED_SHARDS: n * x64.var(0, ddof=1) if n > 1 else e_m2,
                    "you return the biased variance, not M2 (the sum of squared deviations)":
                        x64.var(0) if n else e_m2,
                    "you return the sum of squares sum(x**2), not the sum of squared deviations "
                    "from the mean": (x64**2).sum(0),
                },
                hint=CANCELLATION.format(offset=loc, spread=1.5, sq=loc**2, var=2.25)
                if offset
                else "M2 = sum over the shard of (x - mean)**2, per channel." + empty,
            )  # fmt: skip
    grader.check_rules()


def _stats_of(shards, dtype):
    """Per-shard (count, mean, m2) in ``dtype``: float64 two-pass values, then cast."""
    out = []
    for s in shards:
        s64 = np.asarray(s, F64)
        c = s.shape[1]
        if s.shape[0] == 0:
            out.append((0, np.zeros(c, dtype), np.zeros(c, dtype)))
        else:
            mu = s64.mean(0)
            out.append((s.shape[0], mu.astype(dtype), ((s64 - mu) ** 2).sum(0).astype(dtype)))
    return out


def check_merge(grader: Grader, merge_stats) -> None:
    """Grading cell 2."""
    d = Inputs(grader, 2)
    for sizes, channels, dtype, loc in [*CASES, OFFSET_CASE]:
        offset = loc > 1e3
        shards = _shards(d, sizes, channels, dtype, loc, spread=0.3 if offset else None)
        stats = _stats_of(shards, dtype)
        whole = np.concatenate([np.asarray(s, F64) for s in shards])
        e_mean, e_var = ref.stats(whole)
        n = whole.shape[0]
        count, mean, m2 = _call(grader, merge_stats, stats, outputs=("count", "mean", "m2"))
        tag = _tag(shards)
        shown = (
            "stats = [(count, mean, m2) of each shard, computed in float64 and cast to "
            f"{np.dtype(dtype).name}], with "
            + d.show(
                **{
                    f"stats[{i}]": np.concatenate([[c], mu, m]).astype(dtype)
                    for i, (c, mu, m) in enumerate(stats)
                }  # fmt: skip
            )
            + " (each row is [count, mean..., m2...])"
        )
        wrong = _wrong_globals(shards)
        tol = (1e-2, 1e-2) if offset else None
        hint_offset = SUM_OF_SQUARES.format(offset=loc, sq=loc**2) if offset else None
        grader.check_close(f"count {tag}", count, np.asarray(n), rtol=0, atol=0,
                           hint="the counts add up.", inputs=shown)  # fmt: skip
        check_value(
            grader, f"mean {tag}", mean, e_mean, dtype, shown,
            mistakes={k: v[0] for k, v in wrong.items()},
            hint=hint_offset or "mean = sum(n_r * mean_r) / sum(n_r), or Chan's update "
            "mean_a + delta * n_b / n, one shard at a time.",
            tol=tol,
        )  # fmt: skip
        check_value(
            grader, f"m2 {tag}", m2, e_var * n, dtype, shown,
            mistakes={k: v[1] * n for k, v in wrong.items()},
            hint=hint_offset or "m2 = m2_a + m2_b + delta**2 * n_a * n_b / n with delta = "
            "mean_b - mean_a, one shard at a time (skip empty shards).",
            tol=tol,
        )  # fmt: skip
    grader.check_rules()


# -- grading cell 3: the synchronized forward, training and eval -------------------------------
def _params(d: Inputs, channels, dtype):
    gamma = d.normal((channels,), loc=1.0, scale=0.5, dtype=dtype)
    beta = d.normal((channels,), loc=0.0, scale=1.0, dtype=dtype)
    rm = d.normal((channels,), loc=0.0, scale=1.0, dtype=dtype)
    rv = d.uniform((channels,), 0.5, 2.0, dtype=dtype)
    return gamma, beta, rm, rv


FORWARD_KW = [{"momentum": 0.3, "eps": 0.05}, {"momentum": 0.2}, {"eps": 1e-3}]


def check_forward(grader: Grader, sync_forward) -> None:
    """Grading cell 3."""
    d = Inputs(grader, 3)
    cases = [(*c, kw) for c, kw in zip(CASES, FORWARD_KW, strict=True)]
    cases.append((*OFFSET_CASE, {"momentum": 0.5}))
    for sizes, channels, dtype, loc, kw in cases:
        offset = loc > 1e3
        shards = _shards(d, sizes, channels, dtype, loc, spread=0.3 if offset else None)
        gamma, beta, rm, rv = _params(d, channels, dtype)
        if offset:
            gamma, beta = np.ones(channels, dtype), np.zeros(channels, dtype)
        m, e = kw.get("momentum", 0.1), kw.get("eps", 1e-5)
        whole = np.concatenate([np.asarray(s, F64) for s in shards])
        mu, var = ref.stats(whole)
        g64, b64, rm64, rv64 = (np.asarray(a, F64) for a in (gamma, beta, rm, rv))
        tag = _tag(shards, **kw)
        shown = _show(d, shards, gamma=gamma, beta=beta, running_mean=rm, running_var=rv) + (
            f" {kw}." if kw else ""
        )
        tol = (1e-2, 1e-2) if offset else None
        hint_offset = SUM_OF_SQUARES.format(offset=loc, sq=loc**2) if offset else None

        # training mode
        outs, new_rm, new_rv = _call(
            grader, sync_forward, shards, gamma, beta, rm, rv, True,
            outputs=("outs", "running_mean", "running_var"), **kw,
        )  # fmt: skip
        y = _joined(outs, shards, "outs")
        mistakes = {
            k: g64 * (whole - a) / np.sqrt(v + e) + b64
            for k, (a, v) in _wrong_globals(shards).items()
        }
        local = [
            g64 * (np.asarray(s, F64) - np.asarray(s, F64).mean(0))
            / np.sqrt(np.asarray(s, F64).var(0) + e) + b64
            for s in shards if s.shape[0] > 0
        ]  # fmt: skip
        mistakes[LOCAL] = np.concatenate(local)
        mistakes["you normalize with the global unbiased variance; normalize with the biased "
                 "one (M2 / N) and store the unbiased one (M2 / (N - 1)) in running_var"] = (
            g64 * (whole - mu) / np.sqrt(var * len(whole) / (len(whole) - 1) + e) + b64
        )  # fmt: skip
        mistakes["you ignore the eps argument and always use 1e-5"] = (
            g64 * (whole - mu) / np.sqrt(var + 1e-5) + b64
        )
        check_value(
            grader, f"outs (training) {tag}", y, ref.batch_norm_train(whole, gamma, beta, e),
            dtype, shown, mistakes=mistakes, tol=tol,
            hint=hint_offset or "every shard is normalized with the mean and biased variance of "
            "the whole (concatenated) batch, from merge_stats of the shards' shard_stats.",
        )  # fmt: skip
        n = len(whole)
        first = next(np.asarray(s, F64) for s in shards if s.shape[0] > 1)
        no_between = _wrong_globals(shards)[NO_BETWEEN][1]
        check_value(
            grader, f"running_mean (training) {tag}", new_rm, (1 - m) * rm64 + m * mu, dtype,
            shown, tol=tol,
            mistakes={
                "you update the running mean from one shard (rank 0's statistics, as DDP's "
                "buffer broadcast would keep them), not the merged ones": (1 - m) * rm64
                + m * first.mean(0),
                "the momentum is reversed": m * rm64 + (1 - m) * mu,
                UNWEIGHTED: (1 - m) * rm64 + m * _wrong_globals(shards)[UNWEIGHTED][0],
            },
            hint="running_mean = (1 - momentum) * running_mean + momentum * (global mean).",
        )  # fmt: skip
        check_value(
            grader, f"running_var (training) {tag}", new_rv,
            (1 - m) * rv64 + m * var * n / (n - 1), dtype, shown, tol=tol,
            mistakes={
                "you store the biased global variance (M2 / N); running_var stores the unbiased "
                "one, M2 / (N - 1), with N the global count": (1 - m) * rv64 + m * var,
                "you use the local count: M2 / (n_r - 1) with one shard's size instead of the "
                "global N - 1": (1 - m) * rv64 + m * var * n / (first.shape[0] - 1),
                "you update the running variance from one shard (rank 0's statistics), not the "
                "merged ones": (1 - m) * rv64 + m * first.var(0, ddof=1),
                NO_BETWEEN: (1 - m) * rv64 + m * no_between * n / (n - 1),
                "the momentum is reversed": m * rv64 + (1 - m) * var * n / (n - 1),
            },
            hint=hint_offset or "running_var = (1 - momentum) * running_var + momentum * M2 / "
            "(N - 1), with M2 and N of the whole batch.",
        )  # fmt: skip

        # eval mode: no synchronization, the running statistics, nothing updated
        outs, new_rm, new_rv = _call(
            grader, sync_forward, shards, gamma, beta, rm, rv, False,
            outputs=("outs", "running_mean", "running_var"), **kw,
        )  # fmt: skip
        y = _joined(outs, shards, "outs")
        check_value(
            grader, f"outs (eval) {tag}", y, ref.batch_norm_eval(whole, gamma, beta, rm, rv, e),
            dtype, shown,
            mistakes={
                "you synchronize in eval mode: the merged batch statistics are used; in eval "
                "mode every rank uses running_mean and running_var and nothing is exchanged": (
                    g64 * (whole - mu) / np.sqrt(var + e) + b64
                ),
                "you use each shard's own batch statistics in eval mode; use running_mean and "
                "running_var": mistakes.get(LOCAL, np.full_like(whole, np.nan)),
                "you normalize with the running statistics after updating them: in eval mode "
                "they are used as they are": g64 * (whole - ((1 - m) * rm64 + m * mu))
                / np.sqrt((1 - m) * rv64 + m * var * n / (n - 1) + e) + b64,
            },
            hint="in eval mode y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta, "
            "shard by shard.",
        )  # fmt: skip
        for name, got, before in [("running_mean", new_rm, rm), ("running_var", new_rv, rv)]:
            check_value(grader, f"{name} (eval) {tag}", got, before, dtype, shown,
                        hint="the running statistics must not change in eval mode.")  # fmt: skip
    grader.check_rules()


# -- grading cell 4: the synchronized backward ---------------------------------------------------
BACKWARD_KW = [{"eps": 0.05}, {}, {"eps": 1e-3}]


def check_backward(grader: Grader, sync_backward) -> None:
    """Grading cell 4."""
    d = Inputs(grader, 4)
    for (sizes, channels, dtype, loc), kw in zip(CASES, BACKWARD_KW, strict=True):
        shards = _shards(d, sizes, channels, dtype, loc)
        dys = [d.normal(s.shape, dtype=dtype) for s in shards]
        gamma = d.normal((channels,), loc=1.0, scale=0.5, dtype=dtype)
        e = kw.get("eps", 1e-5)
        dxs, dgamma, dbeta = _call(
            grader, sync_backward, dys, shards, gamma, outputs=("dxs", "dgamma", "dbeta"), **kw
        )
        dx = _joined(dxs, shards, "dxs")
        whole = np.concatenate([np.asarray(s, F64) for s in shards])
        dy = np.concatenate([np.asarray(s, F64) for s in dys])
        e_dx, e_dg, e_db, x_hat, inv_std = ref.batch_norm_grads(whole, gamma, dy, e)
        g64 = np.asarray(gamma, F64)
        k = g64 * inv_std
        s_dy, s_dyx = dy.sum(0), (dy * x_hat).sum(0)
        local_n, local_sums, local_all = [], [], []
        for s, g in zip(shards, dys, strict=True):
            if s.shape[0] == 0:
                continue
            xs = (np.asarray(s, F64) - whole.mean(0)) * inv_std
            gs = np.asarray(g, F64)
            nr = s.shape[0]
            local_n.append(k * (gs - s_dy / nr - xs * s_dyx / nr))
            local_sums.append(k * (gs - gs.sum(0) / nr - xs * (gs * xs).sum(0) / nr))
            local_all.append(ref.batch_norm_grads(s, gamma, g, e)[0] if nr > 1 else gs * np.nan)
        n = len(whole)
        tag = _tag(shards, **kw)
        shown = _show(d, shards, **{f"dys[{i}]": g for i, g in enumerate(dys)}, gamma=gamma) + (
            f" {kw}." if kw else ""
        )
        x_hat0 = (np.asarray(shards[0], F64) - whole.mean(0)) * inv_std
        first_dg = (np.asarray(dys[0], F64) * x_hat0).sum(0)
        mistakes_dx = {
            "you divide the global sums by the local N (this shard's size) instead of the "
            "global N": np.concatenate(local_n),
            "the two sums are not reduced across ranks: each shard uses sum(dy) and "
            "sum(dy * x_hat) over its own rows only (and its own N)": np.concatenate(local_sums),
            "you run a plain per-shard backward (each shard's own statistics, sums and N)": (
                np.concatenate(local_all)
            ),
            "you divide by N - 1 instead of N": k * (dy - s_dy / (n - 1) - x_hat * s_dyx / (n - 1)),
            "gamma is missing: dx_hat = gamma * dy, not dy": inv_std
            * (dy - s_dy / n - x_hat * s_dyx / n),
            "the branch through the variance is missing (no -x_hat * sum(dy * x_hat) / N term)": k
            * (dy - s_dy / n),
            "you ignore the eps argument and always use 1e-5": ref.batch_norm_grads(
                whole, gamma, dy, 1e-5
            )[0],
        }
        check_value(
            grader, f"dxs {tag}", dx, e_dx, dtype, shown,
            tol=(1e-6, 1e-9) if dtype == F64 else (1e-3, 1e-4), mistakes=mistakes_dx,
            hint="dx_r = gamma * inv_std * (dy_r - sum(dy) / N - x_hat_r * sum(dy * x_hat) / N), "
            "the two sums over every shard and N the global count.",
        )  # fmt: skip
        check_value(
            grader, f"dgamma {tag}", dgamma, e_dg, dtype, shown,
            mistakes={"dgamma comes from one shard only (sum it over every shard)": first_dg,
                      "dgamma is multiplied by gamma": g64 * e_dg},
            hint="dgamma = sum over every shard of dy * x_hat.",
        )  # fmt: skip
        check_value(
            grader, f"dbeta {tag}", dbeta, e_db, dtype, shown,
            mistakes={"dbeta comes from one shard only (sum it over every shard)":
                      np.asarray(dys[0], F64).sum(0)},
            hint="dbeta = sum over every shard of dy.",
        )  # fmt: skip
        grader.check_true(
            f"dxs sum to 0 over the whole batch {tag}",
            lambda dx=dx, atol=1e-3 if dtype == F32 else 1e-9: allclose(
                np.asarray(dx, F64).sum(0), 0.0, atol=atol
            ),
            "the gradients of all shards together do not sum to 0 per channel: the branch "
            "through the global mean (-sum(dy) / N with the global sum and N) is missing or "
            "uses local values.",
            needs=[dx],
        )  # fmt: skip
    grader.check_rules()

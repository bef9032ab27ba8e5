"""bn_core.batch_norm / batch_norm_forward against torch.nn.functional.batch_norm."""

import numpy as np
import pytest
from _bncore_helpers import (
    SHAPES,
    TOL,
    assert_close,
    check_eval_accurate,
    check_running_mean_accurate,
    eval_offset_errors,
    load_mutant,
    make_inputs,
    max_rel_err,
    torch_reference,
)

import bn_core
from bn_core import batch_norm, batch_norm_forward

torch = pytest.importorskip("torch")
F = torch.nn.functional

DTYPES = [np.float64, np.float32]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_training_forward_matches_torch(shape, dtype):
    x, dy, gamma, beta = make_inputs(shape, dtype)
    want = torch_reference(x, dy, gamma, beta)[0]
    out, cache = batch_norm_forward(x, gamma, beta)
    assert out.dtype == dtype and out.shape == x.shape
    assert_close(out, want, dtype, "batch_norm_forward")
    out2 = batch_norm(x, None, None, gamma, beta, training=True)
    assert_close(out2, want, dtype, "batch_norm(training=True)")
    # the cache holds the batch statistics (biased variance)
    axes = (0, *range(2, x.ndim))
    x64 = x.astype(np.float64)
    assert_close(cache.mean, x64.mean(axis=axes), dtype, "cache.mean")
    assert_close(cache.var, x64.var(axis=axes), dtype, "cache.var")
    assert_close(cache.x_centered, x64 - x64.mean(axis=axes, keepdims=True), dtype, "xc")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_eval_matches_torch(shape, dtype):
    x, _, gamma, beta = make_inputs(shape, dtype, seed=1)
    rng = np.random.default_rng(2)
    rm = rng.normal(size=shape[1]).astype(dtype)
    rv = rng.uniform(0.2, 3.0, size=shape[1]).astype(dtype)
    rm0, rv0 = rm.copy(), rv.copy()
    t64 = [torch.tensor(a, dtype=torch.float64) for a in (x, rm, rv, gamma, beta)]
    want = F.batch_norm(*t64[:3], *t64[3:], training=False).numpy()
    out = batch_norm(x, rm, rv, gamma, beta, training=False)
    assert out.dtype == dtype
    assert_close(out, want, dtype, "eval output")
    # evaluation never touches the buffers
    np.testing.assert_array_equal(rm, rm0)
    np.testing.assert_array_equal(rv, rv0)


@pytest.mark.parametrize("momentum", [0.1, 0.5, 1.0, 0.0])
@pytest.mark.parametrize("shape", [(2, 3), (6, 4, 5), (3, 2, 4, 5)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_running_buffers_match_torch_after_25_steps(shape, momentum, dtype):
    C = shape[1]
    rm, rv = np.zeros(C, dtype), np.ones(C, dtype)
    rmt, rvt = torch.zeros(C, dtype=torch.float64), torch.ones(C, dtype=torch.float64)
    rng = np.random.default_rng(3)
    for _ in range(25):
        x = rng.normal(1.0, 2.0, size=shape).astype(dtype)
        out = batch_norm(x, rm, rv, training=True, momentum=momentum)
        want = F.batch_norm(
            torch.tensor(x, dtype=torch.float64), rmt, rvt, training=True, momentum=momentum
        )
        assert_close(out, want.numpy(), dtype, "output")
    assert_close(rm, rmt.numpy(), dtype, "running_mean")
    assert_close(rv, rvt.numpy(), dtype, "running_var")
    assert rm.dtype == dtype and rv.dtype == dtype


@pytest.mark.parametrize("shape", SHAPES)
def test_float32_matches_torch_float32(shape):
    # well-conditioned data: both float32 results agree to 1e-5
    x, dy, gamma, beta = make_inputs(shape, np.float32, seed=6, loc=0.0, scale=1.0)
    if shape[0] * int(np.prod(shape[2:])) < 4:
        x[1] = x[0] + 1.0  # keep the two values of a channel apart
    want = F.batch_norm(
        torch.tensor(x), None, None, torch.tensor(gamma), torch.tensor(beta), training=True
    ).numpy()
    assert_close(batch_norm_forward(x, gamma, beta)[0], want, np.float32)


def test_float32_at_least_as_accurate_as_torch():
    # N=2 with close values: x - mean cancels; count how far each float32 result is from
    # the float64 answer over many random batches
    rng = np.random.default_rng(3)
    worst_ours = worst_torch = 0.0
    for _ in range(200):
        x = rng.normal(1.0, 2.0, size=(2, 3)).astype(np.float32)
        exact = F.batch_norm(
            torch.tensor(x, dtype=torch.float64), None, None, training=True
        ).numpy()
        ours = batch_norm(x, None, None, training=True)
        theirs = F.batch_norm(torch.tensor(x), None, None, training=True).numpy()
        worst_ours = max(worst_ours, max_rel_err(ours, exact))
        worst_torch = max(worst_torch, max_rel_err(theirs, exact))
    assert worst_ours <= 1e-5
    assert worst_ours <= worst_torch


def test_running_var_stores_unbiased_variance_and_normalizes_with_biased():
    x = np.array([[1.0], [2.0], [6.0]])  # mean 3, biased var 14/3, unbiased var 7
    rm, rv = np.zeros(1), np.ones(1)
    out = batch_norm(x, rm, rv, training=True, momentum=1.0)
    np.testing.assert_allclose(rm, [3.0], rtol=1e-15)
    np.testing.assert_allclose(rv, [7.0], rtol=1e-15)
    np.testing.assert_allclose(out[:, 0], (x[:, 0] - 3.0) / np.sqrt(14 / 3 + 1e-5), rtol=1e-14)


def test_momentum_weights_the_new_batch():
    x = np.array([[0.0], [2.0]])  # mean 1, unbiased var 2
    rm, rv = np.full(1, 10.0), np.full(1, 10.0)
    batch_norm(x, rm, rv, training=True, momentum=0.1)
    np.testing.assert_allclose(rm, [0.9 * 10 + 0.1 * 1])
    np.testing.assert_allclose(rv, [0.9 * 10 + 0.1 * 2])


def test_weight_and_bias_default_to_one_and_zero():
    x, _, _, _ = make_inputs((6, 3, 4))
    C = x.shape[1]
    a = batch_norm(x, None, None, training=True)
    b = batch_norm(x, None, None, np.ones(C), np.zeros(C), training=True)
    np.testing.assert_array_equal(a, b)
    c, _ = batch_norm_forward(x, None, None)
    np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("training", [True, False])
def test_inputs_are_never_modified(training):
    x, _, gamma, beta = make_inputs((5, 3, 4))
    rm, rv = np.zeros(3), np.ones(3)
    copies = [a.copy() for a in (x, gamma, beta)]
    batch_norm(x, rm, rv, gamma, beta, training=training)
    batch_norm_forward(x, gamma, beta)
    for a, c in zip((x, gamma, beta), copies, strict=True):
        np.testing.assert_array_equal(a, c)


def test_output_does_not_alias_input():
    x, _, _, _ = make_inputs((4, 3))
    out, cache = batch_norm_forward(x, None, None)
    assert not np.shares_memory(out, x) and not np.shares_memory(cache.x_hat, x)
    out[...] = 0  # the caller may write into the output
    assert np.abs(x).sum() > 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(256, 8), (512, 3), (16, 4, 6, 6), (64, 2, 9)])
def test_large_offset_still_gives_unit_variance(shape, dtype):
    # 1e6 + unit noise: E[x^2] - E[x]^2 would cancel all the digits (see below)
    rng = np.random.default_rng(3)
    x = (1e6 + rng.normal(size=shape)).astype(dtype)
    out, cache = batch_norm_forward(x, None, None)
    axes = (0, *range(2, x.ndim))
    x64 = x.astype(np.float64)
    var = x64.var(axis=axes)
    expected_var = var / (var + 1e-5)  # eps is the only reason it is not exactly 1
    np.testing.assert_allclose(out.astype(np.float64).var(axis=axes), expected_var, rtol=1e-5)
    np.testing.assert_allclose(out.astype(np.float64).mean(axis=axes), 0, atol=1e-5)
    np.testing.assert_allclose(cache.var, var, rtol=1e-4)


def test_naive_variance_formula_fails_the_large_offset_check():
    # shows the test above can fail: the one-pass formula is wrong by orders of magnitude
    rng = np.random.default_rng(3)
    x = (1e6 + rng.normal(size=(256, 8))).astype(np.float32)
    naive_var = (x * x).mean(axis=0) - x.mean(axis=0) ** 2
    assert np.abs(naive_var - x.astype(np.float64).var(axis=0)).max() > 1.0


def test_large_offset_float32_matches_float64():
    rng = np.random.default_rng(3)
    x = 1e6 + rng.normal(size=(300, 4))
    x32 = x.astype(np.float32)
    out32, _ = batch_norm_forward(x32, None, None)
    out64, _ = batch_norm_forward(x32.astype(np.float64), None, None)
    assert max_rel_err(out32, out64) < 1e-5


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs(dtype):
    x, dy, gamma, beta = make_inputs((3, 4, 5, 6), dtype)
    xt = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # channels last
    assert not xt.flags.c_contiguous
    want = torch_reference(x, dy, gamma, beta)[0]
    out, _ = batch_norm_forward(xt, gamma, beta)
    assert_close(out, want, dtype)
    x2 = make_inputs((7, 6), dtype)[0][:, ::2]
    assert_close(
        batch_norm_forward(x2, None, None)[0], batch_norm_forward(x2.copy(), None, None)[0], dtype
    )


def test_mixed_dtypes_follow_the_input():
    x, _, gamma, beta = make_inputs((8, 3), np.float32)
    out = batch_norm(
        x, None, None, gamma.astype(np.float64), beta.astype(np.float64), training=True
    )
    assert out.dtype == np.float32
    rm, rv = np.zeros(3, np.float64), np.ones(3, np.float64)
    batch_norm(x, rm, rv, training=True)
    assert rm.dtype == np.float64 and rm[0] != 0


@pytest.mark.parametrize(
    "wrong",
    [
        # learners' mistakes: the comparison must reject each of them
        lambda x, ax: (
            (x - x.mean(ax, keepdims=True)) / np.sqrt(x.var(ax, ddof=1, keepdims=True) + 1e-5)
        ),
        lambda x, ax: (x - x.mean(ax, keepdims=True)) / (np.sqrt(x.var(ax, keepdims=True)) + 1e-5),
        lambda x, ax: (x - x.mean(ax, keepdims=True)) / np.sqrt(x.var(ax, keepdims=True)),
    ],
    ids=["unbiased-variance", "eps-outside-sqrt", "no-eps"],
)
def test_comparison_rejects_wrong_variants(wrong):
    x, dy, _, _ = make_inputs((6, 3, 2))
    x = x * 0.01  # small variance: eps matters
    want = torch_reference(x, dy, None, None)[0]
    assert max_rel_err(wrong(x, (0, 2)), want) > TOL[np.float64]
    assert max_rel_err(batch_norm_forward(x, None, None)[0], want) <= TOL[np.float64]


def test_public_api_is_exported():
    for name in bn_core.__all__:
        assert getattr(bn_core, name).__doc__, f"{name} lacks a docstring"


def _wrong_momentum_reversed(rm, rv, mean, var_biased, m, momentum):
    rm[:] = momentum * rm + (1 - momentum) * mean
    rv[:] = momentum * rv + (1 - momentum) * var_biased * m / (m - 1)


def _wrong_biased_running_var(rm, rv, mean, var_biased, m, momentum):
    rm[:] = (1 - momentum) * rm + momentum * mean
    rv[:] = (1 - momentum) * rv + momentum * var_biased


@pytest.mark.parametrize("wrong", [_wrong_momentum_reversed, _wrong_biased_running_var])
def test_running_buffer_comparison_rejects_wrong_updates(wrong):
    # the learners' mistakes in the running statistics must fail the buffer comparison
    rmt, rvt = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    rm, rv = np.zeros(3), np.ones(3)
    rm_ok, rv_ok = np.zeros(3), np.ones(3)
    rng = np.random.default_rng(8)
    for _ in range(20):
        x = rng.normal(1.0, 2.0, size=(6, 3))
        F.batch_norm(torch.tensor(x), rmt, rvt, training=True, momentum=0.1)
        batch_norm(x, rm_ok, rv_ok, training=True, momentum=0.1)
        wrong(rm, rv, x.mean(axis=0), x.var(axis=0), 6, 0.1)
    assert max(max_rel_err(rm, rmt.numpy()), max_rel_err(rv, rvt.numpy())) > 1e-3
    assert max(max_rel_err(rm_ok, rmt.numpy()), max_rel_err(rv_ok, rvt.numpy())) <= 1e-10


# -- issue 10: the edges where bn_core must match torch 2.13 ------------------------------


def test_float32_eval_as_accurate_as_torch_at_large_running_means():
    # max relative error against the float64 answer on the same float32 values, at running
    # means 1e3 and 1e4 (std ~1), float32 and float64 buffers: no worse than BatchNorm1d.eval()
    check_eval_accurate(batch_norm)


def test_float32_eval_module_path_and_functional_path_agree():
    # the layers keep a cache for backward (need_cache=True); batch_norm does not: one answer
    rng = np.random.default_rng(1)
    x = (1e3 + rng.normal(size=(64, 5, 3))).astype(np.float32)
    bn = bn_core.BatchNorm1d(5, dtype=np.float32)
    bn.running_mean[:] = 1e3 + rng.normal(size=5)
    bn.running_var[:] = rng.uniform(0.5, 2, size=5)
    bn.weight[:] = rng.normal(1, 0.3, size=5)
    bn.bias[:] = rng.normal(size=5)
    layer = bn.eval()(x)
    functional = batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias)
    assert max_rel_err(layer, functional) < 1e-6


def test_eval_accuracy_check_kills_the_precomputed_shift():
    broken = load_mutant("eval-precomputed-shift")
    ours, theirs = eval_offset_errors(broken.batch_norm, 1e3)
    assert ours > 1e-5 > theirs  # 1.9e-5 against torch's 8.3e-6 (and our 8.5e-8)
    with pytest.raises(AssertionError, match="relative error"):
        check_eval_accurate(broken.batch_norm)


def test_float32_running_mean_is_correctly_rounded_at_large_offsets():
    check_running_mean_accurate(batch_norm)


def test_running_mean_check_kills_the_missing_rounding_correction():
    broken = load_mutant("no-mean-correction")
    with pytest.raises(AssertionError, match="running_mean off by"):
        check_running_mean_accurate(broken.batch_norm)


@pytest.mark.parametrize("given", ["running_mean", "running_var"])
def test_a_running_buffer_alone_raises_in_training_like_torch(given):
    x = np.random.default_rng(0).normal(size=(4, 3))
    buffers = {"running_mean": None, "running_var": None, given: np.ones(3)}
    with pytest.raises(ValueError, match="must either both be None or neither be None"):
        F.batch_norm(
            torch.tensor(x),
            None if buffers["running_mean"] is None else torch.ones(3, dtype=torch.float64),
            None if buffers["running_var"] is None else torch.ones(3, dtype=torch.float64),
            training=True,
        )
    with pytest.raises(ValueError, match=f"neither be None \\(torch's rule\\): {given} was given"):
        batch_norm(x, buffers["running_mean"], buffers["running_var"], training=True)
    np.testing.assert_array_equal(buffers[given], np.ones(3))  # nothing was updated


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(0, 3), (0, 3, 5), (0, 3, 2, 2), (2, 3, 0), (0, 3, 2, 2, 2)])
def test_empty_batch_like_torch(shape, training):
    # torch 2.13: an empty batch gives an empty output and leaves the running buffers alone
    rm, rv = np.full(3, 2.0), np.full(3, 3.0)
    w, b = np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.2, 0.3])
    rmt, rvt = torch.tensor(rm), torch.tensor(rv)
    want = F.batch_norm(
        torch.zeros(shape, dtype=torch.float64),
        rmt,
        rvt,
        torch.tensor(w),
        torch.tensor(b),
        training=training,
    )
    out = batch_norm(np.zeros(shape), rm, rv, w, b, training=training)
    assert out.shape == tuple(want.shape) == shape and out.dtype == np.float64
    np.testing.assert_array_equal(rm, rmt.numpy())
    np.testing.assert_array_equal(rv, rvt.numpy())
    np.testing.assert_array_equal(rm, np.full(3, 2.0))
    if training:  # the primitives too: empty output, zero parameter gradients
        y, cache = batch_norm_forward(np.zeros(shape), w, b)
        dx, dgamma, dbeta = bn_core.batch_norm_backward(np.zeros(shape), cache)
        assert y.shape == dx.shape == shape
        np.testing.assert_array_equal(dgamma, 0)
        np.testing.assert_array_equal(dbeta, 0)


@pytest.mark.parametrize("training", [True, False])
def test_float16_input_is_normalized_in_float32_like_torch(training):
    # torch on CPU: half input, float32 statistics and buffers, half output
    rng = np.random.default_rng(4)
    x = (3.0 + 2.0 * rng.normal(size=(16, 4, 5))).astype(np.float16)
    rm, rv = np.full(4, 2.5, np.float32), np.full(4, 3.0, np.float32)
    w, b = rng.normal(1, 0.3, 4).astype(np.float32), rng.normal(size=4).astype(np.float32)
    rmt, rvt = torch.tensor(rm), torch.tensor(rv)
    want = F.batch_norm(
        torch.tensor(x), rmt, rvt, torch.tensor(w), torch.tensor(b), training=training
    )
    out = batch_norm(x, rm, rv, w, b, training=training)
    assert out.dtype == np.float16 and want.dtype == torch.float16
    # half has 11 bits: the two agree to a rounding of the output (2 ulps of float16)
    assert max_rel_err(out, want.numpy()) <= 2 * 2.0**-10
    np.testing.assert_allclose(rm, rmt.numpy(), rtol=1e-6)
    np.testing.assert_allclose(rv, rvt.numpy(), rtol=1e-6)

"""Properties of batch normalization, checked on generated inputs (hypothesis).

Bounded, derandomized examples: fast and the same on every run.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bn_core import (
    BatchNorm1d,
    BatchNorm2d,
    batch_norm,
    batch_norm_backward,
    batch_norm_backward_graph,
    batch_norm_forward,
    fold_batch_norm,
)

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None)


@st.composite
def batches(draw, min_m=3):
    """(x, seed): a float64 batch of rank 2-4 with >= min_m values per channel, whose
    channels have random offsets and scales (std in [1e-2, 1e2], |mean| <= 1e3)."""
    ndim = draw(st.integers(2, 4))
    n = draw(st.integers(2, 6))
    c = draw(st.integers(1, 4))
    spatial = [draw(st.integers(1, 4)) for _ in range(ndim - 2)]
    shape = (n, c, *spatial)
    if n * int(np.prod(spatial)) < min_m:
        shape = (min_m, c, *spatial)
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    bshape = (1, c) + (1,) * (ndim - 2)
    loc = rng.uniform(-1e3, 1e3, size=bshape)
    scale = 10.0 ** rng.uniform(-2, 2, size=bshape)
    x = loc + scale * rng.normal(size=shape)
    return x, seed


def _axes(x):
    return (0, *range(2, x.ndim))


def _distinct(x):
    # a channel whose values are (almost) all equal has variance ~0: nothing to normalize
    return (x.std(axis=_axes(x)) > 1e-6 * (1 + np.abs(x).max(axis=_axes(x)))).all()


@SETTINGS
@given(batches())
def test_output_has_zero_mean_and_unit_variance(data):
    x, _ = data
    out, cache = batch_norm_forward(x, None, None)
    var = x.var(axis=_axes(x))
    np.testing.assert_allclose(out.mean(axis=_axes(x)), 0, atol=1e-9)
    # exactly var / (var + eps): eps is the only reason it is not 1
    np.testing.assert_allclose(out.var(axis=_axes(x)), var / (var + 1e-5), rtol=1e-9)


@SETTINGS
@given(batches(), st.data())
def test_invariant_to_positive_scale_and_any_shift(data, draw):
    x, seed = data
    rng = np.random.default_rng(seed + 1)
    c = x.shape[1]
    bshape = (1, c) + (1,) * (x.ndim - 2)
    a = 10.0 ** rng.uniform(-1, 1, size=bshape)
    b = rng.uniform(-100, 100, size=bshape)
    out1, c1 = batch_norm_forward(x, None, None)
    out2, _ = batch_norm_forward(a * x + b, None, None)
    # up to eps: the normalizer changes from sqrt(var + eps) to sqrt(a^2 var + eps)
    var = c1.var.reshape(bshape)
    expected = out1 * np.sqrt(var + 1e-5) * a / np.sqrt(a**2 * var + 1e-5)
    np.testing.assert_allclose(out2, expected, atol=1e-8)


@SETTINGS
@given(batches())
def test_identity_recovery(data):
    # gamma = sqrt(var + eps), beta = mean gives the input back
    x, _ = data
    mean, var = x.mean(axis=_axes(x)), x.var(axis=_axes(x))
    out, _ = batch_norm_forward(x, np.sqrt(var + 1e-5), mean)
    np.testing.assert_allclose(out, x, rtol=1e-9, atol=1e-9 * np.abs(x).max())


@SETTINGS
@given(batches())
def test_backward_projections_vanish(data):
    # dx is orthogonal to the constant and to x_hat per channel: a shift or a positive
    # scale of a channel's input leaves the output unchanged (up to eps)
    x, seed = data
    dy = np.random.default_rng(seed + 2).normal(size=x.shape)
    gamma = np.random.default_rng(seed + 3).normal(size=x.shape[1])
    _, cache = batch_norm_forward(x, gamma, None)
    for backward in (batch_norm_backward, batch_norm_backward_graph):
        dx, _, _ = backward(dy, cache)
        scale = np.abs(dy).max() * np.abs(gamma).max() * cache.inv_std.max() * cache.m
        np.testing.assert_allclose(dx.sum(axis=_axes(x)), 0, atol=1e-10 * scale)
        # sum(dx * x_hat) = k * eps / (var + eps) * sum(dy * x_hat): zero up to eps
        k = gamma * cache.inv_std
        proj = (dx * cache.x_hat).sum(axis=_axes(x))
        dgamma = (dy * cache.x_hat).sum(axis=_axes(x))
        expected = k * 1e-5 / (cache.var + 1e-5) * dgamma
        np.testing.assert_allclose(proj, expected, atol=1e-10 * scale)


@SETTINGS
@given(batches(), st.integers(1, 5))
def test_folding_equals_eval_mode(data, steps):
    x, seed = data
    rng = np.random.default_rng(seed + 4)
    c = x.shape[1]
    layer = BatchNorm2d(c) if x.ndim == 4 else BatchNorm1d(c)
    layer.weight[:] = rng.normal(size=c)
    layer.bias[:] = rng.normal(size=c)
    for _ in range(steps):
        layer(x * rng.uniform(0.5, 2) + rng.normal())
    layer.eval()
    # a linear layer (or 1x1 convolution) from c_in channels to c, then BN
    c_in = 3
    W = rng.normal(size=(c, c_in))
    b = rng.normal(size=c)
    z_in = rng.normal(size=(x.shape[0], c_in, *x.shape[2:]))
    bshape = (c,) + (1,) * (x.ndim - 2)

    def lin(w, bb):
        return np.einsum("oi,ni...->no...", w, z_in) + bb.reshape(bshape)

    W2, b2 = fold_batch_norm(W, b, layer)
    want = layer(lin(W, b))
    np.testing.assert_allclose(lin(W2, b2), want, rtol=1e-9, atol=1e-9 * np.abs(want).max())


@SETTINGS
@given(batches(min_m=2), st.sampled_from([0.0, 0.1, 0.5, 1.0]))
def test_running_stats_are_convex_combinations(data, momentum):
    x, _ = data
    rm, rv = np.full(x.shape[1], 3.0), np.full(x.shape[1], 2.0)
    batch_norm(x, rm, rv, training=True, momentum=momentum)
    m = x.size // x.shape[1]
    np.testing.assert_allclose(rm, (1 - momentum) * 3.0 + momentum * x.mean(axis=_axes(x)))
    np.testing.assert_allclose(
        rv, (1 - momentum) * 2.0 + momentum * x.var(axis=_axes(x)) * m / (m - 1)
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@SETTINGS
@given(batches())
def test_dtype_preserved_and_input_untouched(dtype, data):
    x = data[0].astype(dtype)
    x0 = x.copy()
    out, cache = batch_norm_forward(x, None, None)
    dx, dg, db = batch_norm_backward(np.ones_like(x), cache)
    assert out.dtype == dx.dtype == dg.dtype == cache.x_hat.dtype == dtype
    np.testing.assert_array_equal(x, x0)
    assert np.isfinite(out).all()

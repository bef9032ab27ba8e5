"""Both backward passes against torch autograd and against numerical gradients."""

import inspect

import numpy as np
import pytest
from _bncore_helpers import SHAPES, TOL, assert_close, make_inputs, max_rel_err, torch_reference

from bn_core import (
    batch_norm,
    batch_norm_backward,
    batch_norm_backward_graph,
    batch_norm_forward,
    numerical_gradient,
    rel_error,
)

BACKWARDS = [batch_norm_backward, batch_norm_backward_graph]
DTYPES = [np.float64, np.float32]


@pytest.mark.parametrize("backward", BACKWARDS, ids=["closed", "graph"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_matches_torch_autograd(shape, dtype, backward):
    pytest.importorskip("torch")
    x, dy, gamma, beta = make_inputs(shape, dtype)
    _, dx_t, dg_t, db_t = torch_reference(x, dy, gamma, beta)
    _, cache = batch_norm_forward(x, gamma, beta)
    dx, dgamma, dbeta = backward(dy, cache)
    assert dx.dtype == dtype and dx.shape == x.shape
    assert dgamma.shape == dbeta.shape == (shape[1],)
    assert_close(dx, dx_t, dtype, "dx")
    assert_close(dgamma, dg_t, dtype, "dgamma")
    assert_close(dbeta, db_t, dtype, "dbeta")


@pytest.mark.parametrize("backward", BACKWARDS, ids=["closed", "graph"])
def test_backward_without_affine_matches_torch(backward):
    pytest.importorskip("torch")
    x, dy, _, _ = make_inputs((5, 3, 4))
    _, dx_t, _, _ = torch_reference(x, dy, None, None)
    _, cache = batch_norm_forward(x, None, None)
    dx, dgamma, dbeta = backward(dy, cache)
    assert_close(dx, dx_t)
    # gradients of the would-be parameters are still returned
    np.testing.assert_allclose(dbeta, dy.sum(axis=(0, 2)))
    np.testing.assert_allclose(dgamma, (dy * cache.x_hat).sum(axis=(0, 2)))


@pytest.mark.parametrize("shape", SHAPES)
def test_graph_and_closed_form_agree(shape):
    x, dy, gamma, beta = make_inputs(shape, seed=7)
    _, cache = batch_norm_forward(x, gamma, beta)
    for a, b in zip(
        batch_norm_backward(dy, cache), batch_norm_backward_graph(dy, cache), strict=True
    ):
        assert max_rel_err(a, b) < 1e-12


@pytest.mark.parametrize("backward", BACKWARDS, ids=["closed", "graph"])
@pytest.mark.parametrize("shape", [(4, 3), (2, 1), (3, 2, 5), (2, 3, 2, 3)])
def test_gradient_check(shape, backward):
    # CS231n's bar: relative error below 1e-8 against central differences
    x, dy, gamma, beta = make_inputs(shape, seed=8)
    _, cache = batch_norm_forward(x, gamma, beta)
    dx, dgamma, dbeta = backward(dy, cache)
    h = 1e-5 if cache.m > 2 else 1e-7  # make_inputs shrinks the m=2 data to ~sqrt(eps)
    num_dx = numerical_gradient(lambda v: batch_norm_forward(v, gamma, beta)[0], x, dy, h)
    num_dg = numerical_gradient(lambda v: batch_norm_forward(x, v, beta)[0], gamma, dy, h)
    num_db = numerical_gradient(lambda v: batch_norm_forward(x, gamma, v)[0], beta, dy, h)
    assert rel_error(dx, num_dx) < 1e-8
    assert rel_error(dgamma, num_dg) < 1e-8
    assert rel_error(dbeta, num_db) < 1e-8


def _backward_missing_mean_branch(dy, cache):
    # a classic mistake: forgets that mu depends on x (no dmu term)
    g = cache.gamma
    dxhat = dy * g
    dvar = (dxhat * cache.x_centered).sum(0) * -0.5 * cache.inv_std**3
    dx = dxhat * cache.inv_std + dvar * 2 * cache.x_centered / cache.m
    return dx, (dy * cache.x_hat).sum(0), dy.sum(0)


def _backward_dgamma_uses_x(dy, cache):
    dx, _, dbeta = batch_norm_backward(dy, cache)
    return dx, (dy * (cache.x_centered + cache.mean)).sum(0), dbeta


def _backward_dgamma_not_summed(dy, cache):
    dx, _, dbeta = batch_norm_backward(dy, cache)
    return dx, (dy * cache.x_hat)[0], dbeta


@pytest.mark.parametrize(
    "wrong", [_backward_missing_mean_branch, _backward_dgamma_uses_x, _backward_dgamma_not_summed]
)
def test_gradient_check_catches_wrong_backward(wrong):
    x, dy, gamma, beta = make_inputs((6, 3), seed=9)
    _, cache = batch_norm_forward(x, gamma, beta)
    dx, dgamma, dbeta = wrong(dy, cache)
    num_dx = numerical_gradient(lambda v: batch_norm_forward(v, gamma, beta)[0], x, dy)
    num_dg = numerical_gradient(lambda v: batch_norm_forward(x, v, beta)[0], gamma, dy)
    assert max(rel_error(dx, num_dx), rel_error(dgamma, num_dg)) > 1e-3


@pytest.mark.parametrize("backward", BACKWARDS, ids=["closed", "graph"])
def test_eval_mode_backward(backward):
    # in evaluation mode the statistics are constants: dx = gamma / sqrt(rv + eps) * dy
    from bn_core.functional import _batch_norm_impl

    x, dy, gamma, beta = make_inputs((5, 3, 2), seed=10)
    rm = np.array([0.1, -0.2, 0.3])
    rv = np.array([0.5, 1.5, 2.0])
    _, cache = _batch_norm_impl(x, rm, rv, gamma, beta, False, 0.1, 1e-5, True, need_cache=True)
    dx, dgamma, dbeta = backward(dy, cache)
    f = lambda v: batch_norm(v, rm, rv, gamma, beta)  # noqa: E731
    assert rel_error(dx, numerical_gradient(f, x, dy)) < 1e-8
    fg = lambda v: batch_norm(x, rm, rv, v, beta)  # noqa: E731
    assert rel_error(dgamma, numerical_gradient(fg, gamma, dy)) < 1e-8
    np.testing.assert_allclose(dbeta, dy.sum(axis=(0, 2)))


@pytest.mark.parametrize("backward", BACKWARDS, ids=["closed", "graph"])
def test_backward_does_not_modify_its_inputs(backward):
    x, dy, gamma, beta = make_inputs((4, 3, 5), seed=11)
    _, cache = batch_norm_forward(x, gamma, beta)
    saved = [dy.copy(), cache.x_hat.copy(), cache.inv_std.copy(), cache.gamma.copy()]
    backward(dy, cache)
    backward(dy, cache)  # twice: the cache is reusable
    for a, b in zip([dy, cache.x_hat, cache.inv_std, cache.gamma], saved, strict=True):
        np.testing.assert_array_equal(a, b)


def test_backward_two_values_per_channel():
    # with var >> eps the output is flat in x: dx ~ 0; compare on the scale of dy
    rng = np.random.default_rng(12)
    x, dy = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    gamma, beta = np.ones(3), np.zeros(3)
    _, dx_t, dg_t, db_t = torch_reference(x, dy, gamma, beta)
    _, cache = batch_norm_forward(x, gamma, beta)
    for backward in BACKWARDS:
        dx, dgamma, dbeta = backward(dy, cache)
        assert np.abs(dx).max() < 1e-3 * np.abs(dy).max()
        assert np.abs(dx - dx_t).max() < 1e-14 * np.abs(dy).max()
        assert_close(dgamma, dg_t)
        assert_close(dbeta, db_t)


def test_graph_backward_reads_like_the_derivation():
    # the graph version is shown in a chapter with inspect.getsource: one step per node
    src = inspect.getsource(batch_norm_backward_graph)
    for node in [
        "mu    = mean(x)",
        "xc    = x - mu",
        "var   = mean(xc ** 2)",
        "istd  = 1 / sqrt(var + eps)",
        "x_hat = xc * istd",
        "y     = gamma * x_hat + beta",
    ]:
        assert node in src
    for step in range(1, 8):
        assert f"# {step}." in src


def test_float32_gradients_are_float32():
    x, dy, gamma, beta = make_inputs((8, 3), np.float32)
    _, cache = batch_norm_forward(x, gamma, beta)
    for backward in BACKWARDS:
        assert all(a.dtype == np.float32 for a in backward(dy, cache))
    assert TOL[np.float32] == 1e-5

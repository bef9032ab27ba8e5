"""bn_core.renorm: batch renormalization against the paper's equations and torch autograd."""

import doctest

import numpy as np
import pytest

import bn_core.renorm as renorm
from bn_core import batch_norm, batch_norm_backward, batch_norm_forward
from bn_core.renorm import batch_renorm, batch_renorm_backward, batch_renorm_forward


def _data(shape=(6, 3), seed=0):
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = rng.normal(2.0, 3.0, size=shape)
    dy = rng.normal(size=shape)
    return x, dy, rng.normal(1, 0.3, size=C), rng.normal(size=C)


def _paper(x, gamma, beta, mu, sigma, rmax, dmax, eps, dy):
    """Algorithm 1 and the gradients printed in Ioffe (2017), Section 3, for (m, C) input."""
    m = x.shape[0]
    mu_b = x.sum(0) / m
    sigma_b = np.sqrt(eps + ((x - mu_b) ** 2).sum(0) / m)
    r = np.clip(sigma_b / sigma, 1 / rmax, rmax)
    d = np.clip((mu_b - mu) / sigma, -dmax, dmax)
    x_hat = (x - mu_b) / sigma_b * r + d
    y = gamma * x_hat + beta
    dx_hat = dy * gamma
    dsigma_b = (dx_hat * (x - mu_b) * (-r / sigma_b**2)).sum(0)
    dmu_b = (dx_hat * (-r / sigma_b)).sum(0)
    dx = dx_hat * r / sigma_b + dsigma_b * (x - mu_b) / (m * sigma_b) + dmu_b / m
    return y, dx, (dy * x_hat).sum(0), dy.sum(0), r, d


@pytest.mark.parametrize(("rmax", "dmax"), [(3.0, 5.0), (1.2, 0.3), (1.0, 0.0)])
def test_matches_the_papers_equations(rmax, dmax):
    x, dy, g, b = _data()
    rm, rv = np.array([0.5, 3.0, -1.0]), np.array([4.0, 20.0, 0.5])
    sigma = np.sqrt(rv + 1e-5)
    want = _paper(x, g, b, rm.copy(), sigma, rmax, dmax, 1e-5, dy)
    out, cache = batch_renorm_forward(x, g, b, rm, rv, rmax=rmax, dmax=dmax)
    dx, dg, db = batch_renorm_backward(dy, cache)
    for got, ref in zip((out, dx, dg, db, cache.r, cache.d), want, strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    # the clipping was active in the middle case (so the test exercises it)
    if rmax == 1.2:
        assert np.any(np.abs(cache.d) == dmax) and np.any(np.isin(cache.r, [rmax, 1 / rmax]))


def test_matches_torch_autograd_with_stop_gradient():
    torch = pytest.importorskip("torch")
    x, dy, g, b = _data((4, 3, 5))
    rm, rv = np.array([0.5, 3.0, -1.0]), np.array([4.0, 20.0, 0.5])
    out, cache = batch_renorm_forward(x, g, b, rm.copy(), rv.copy(), rmax=1.5, dmax=1.0)
    dx, dg, db = batch_renorm_backward(dy, cache)
    xt = torch.tensor(x, requires_grad=True)
    gt = torch.tensor(g, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    mu_b = xt.mean((0, 2), keepdim=True)
    sigma_b = torch.sqrt(xt.var((0, 2), unbiased=False, keepdim=True) + 1e-5)
    sigma = torch.sqrt(torch.tensor(rv) + 1e-5).view(1, -1, 1)
    r = (sigma_b / sigma).clamp(1 / 1.5, 1.5).detach()
    d = ((mu_b - torch.tensor(rm).view(1, -1, 1)) / sigma).clamp(-1.0, 1.0).detach()
    y = gt.view(1, -1, 1) * ((xt - mu_b) / sigma_b * r + d) + bt.view(1, -1, 1)
    (y * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(out, y.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dg, gt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_r1_d0_is_batch_norm_including_running_statistics():
    x, dy, g, b = _data((5, 2, 3), seed=1)
    rm, rv = np.zeros(2), np.ones(2)
    out, cache = batch_renorm_forward(x, g, b, rm, rv, rmax=1.0, dmax=0.0, momentum=0.1)
    rm2, rv2 = np.zeros(2), np.ones(2)
    want = batch_norm(x, rm2, rv2, g, b, training=True, momentum=0.1)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rm, rm2, rtol=1e-12)
    np.testing.assert_allclose(rv, rv2, rtol=1e-12)
    _, bn_cache = batch_norm_forward(x, g, b)
    for got, ref in zip(
        batch_renorm_backward(dy, cache), batch_norm_backward(dy, bn_cache), strict=True
    ):
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_when_the_running_statistics_are_the_batch_statistics_r_is_1_and_d_is_0():
    x, _, g, b = _data((8, 3), seed=2)
    rm, rv = x.mean(0), x.var(0)  # biased, as sigma_B
    _, cache = batch_renorm_forward(x, g, b, rm.copy(), rv.copy())
    np.testing.assert_allclose(cache.r, 1.0, rtol=1e-12)
    np.testing.assert_allclose(cache.d, 0.0, atol=1e-12)


def test_inference_is_batch_norms():
    x, _, g, b = _data()
    rm, rv = np.array([0.5, 3.0, -1.0]), np.array([4.0, 20.0, 0.5])
    np.testing.assert_allclose(
        batch_renorm(x, rm, rv, g, b), batch_norm(x, rm, rv, g, b), rtol=1e-12
    )
    rm0, rv0 = rm.copy(), rv.copy()
    batch_renorm(x, rm, rv, g, b, training=True)
    assert not np.allclose(rm, rm0) and not np.allclose(rv, rv0)  # training updates them


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(rmax=0.5), ValueError, "rmax must be"),
        (dict(dmax=-1.0), ValueError, "dmax must be"),
        (dict(momentum=2.0), ValueError, "momentum"),
    ],
)
def test_clear_errors(kwargs, exc, match):
    x = np.ones((4, 2))
    with pytest.raises(exc, match=match):
        batch_renorm_forward(x, None, None, np.zeros(2), np.ones(2), **kwargs)


def test_missing_buffers_and_bad_cache():
    with pytest.raises(ValueError, match="needs running_mean"):
        batch_renorm_forward(np.ones((4, 2)), None, None, None, None)
    with pytest.raises(TypeError, match="RenormCache"):
        batch_renorm_backward(np.ones((4, 2)), object())
    with pytest.raises(ValueError, match="more than 1 value"):
        batch_renorm_forward(np.ones((1, 2)), None, None, np.zeros(2), np.ones(2))


def test_docstring_examples():
    result = doctest.testmod(renorm, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0

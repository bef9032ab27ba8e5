"""bn_core.grading.reference: the graders' expected values agree with PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from bn_core.grading import reference as ref

torch = pytest.importorskip("torch")
F = torch.nn.functional


@pytest.mark.parametrize("shape", [(5, 3), (4, 7), (2, 3, 4, 5), (3, 4, 5, 2)])
@pytest.mark.parametrize("eps", [1e-5, 0.05])
def test_forward_and_gradients_match_torch(shape, eps):
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(1.0, 2.0, size=shape)
    c = shape[1]
    gamma, beta, dy = rng.normal(size=c), rng.normal(size=c), rng.normal(size=shape)
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    y = F.batch_norm(xt, None, None, gt, bt, training=True, eps=eps)
    y.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(
        ref.batch_norm_train(x, gamma, beta, eps), y.detach().numpy(), 1e-10, 1e-12
    )
    dx, dgamma, dbeta, _, _ = ref.batch_norm_grads(x, gamma, dy, eps)
    np.testing.assert_allclose(dx, xt.grad.numpy(), 1e-8, 1e-10)
    np.testing.assert_allclose(dgamma, gt.grad.numpy(), 1e-8, 1e-10)
    np.testing.assert_allclose(dbeta, bt.grad.numpy(), 1e-10, 1e-12)


@pytest.mark.parametrize("momentum", [0.1, 0.3])
def test_running_update_and_eval_match_torch(momentum):
    rng = np.random.default_rng(3)
    x = rng.normal(2.0, 3.0, size=(6, 4))
    rm, rv = rng.normal(size=4), rng.uniform(0.5, 2.0, size=4)
    gamma, beta = rng.normal(size=4), rng.normal(size=4)
    bn = torch.nn.BatchNorm1d(4, momentum=momentum, dtype=torch.float64)
    with torch.no_grad():
        bn.running_mean.copy_(torch.from_numpy(rm))
        bn.running_var.copy_(torch.from_numpy(rv))
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(beta))
    bn.train()(torch.from_numpy(x))
    new_rm, new_rv = ref.running_update(rm, rv, x, momentum)
    np.testing.assert_allclose(new_rm, bn.running_mean.numpy(), 1e-12)
    np.testing.assert_allclose(new_rv, bn.running_var.numpy(), 1e-12)
    y = bn.eval()(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ref.batch_norm_eval(x, gamma, beta, new_rm, new_rv), y, 1e-10, 1e-12)
    a, b = ref.inference_affine(gamma, beta, new_rm, new_rv)
    np.testing.assert_allclose(a * x + b, y, 1e-10, 1e-12)


def test_two_pass_statistics_survive_a_large_offset_in_float32():
    x = (1e4 + np.random.default_rng(0).standard_normal((16, 3)).round(2)).astype(np.float32)
    mu, var = ref.stats(x)
    np.testing.assert_allclose(var, x.astype(np.float64).var(axis=0), rtol=1e-9)
    assert mu.dtype == np.float64


@pytest.mark.parametrize(
    ("shape", "normalized_shape"),
    [((5, 3), (3,)), ((2, 7, 4), (4,)), ((2, 3, 4, 5), (3, 4, 5)), ((3, 4, 5, 2), (5, 2))],
)
@pytest.mark.parametrize("eps", [1e-5, 0.05])
def test_layer_norm_and_gradients_match_torch(shape, normalized_shape, eps):
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(1.0, 2.0, size=shape)
    w, b = rng.normal(size=normalized_shape), rng.normal(size=normalized_shape)
    dy = rng.normal(size=shape)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.layer_norm(xt, normalized_shape, wt, bt, eps=eps)
    y.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(
        ref.layer_norm(x, normalized_shape, w, b, eps), y.detach().numpy(), 1e-10, 1e-12
    )
    plain = F.layer_norm(torch.from_numpy(x), normalized_shape, eps=eps).numpy()
    np.testing.assert_allclose(ref.layer_norm(x, normalized_shape, eps=eps), plain, 1e-10, 1e-12)
    dx, dw, db = ref.layer_norm_grads(x, normalized_shape, w, dy, eps)
    np.testing.assert_allclose(dx, xt.grad.numpy(), 1e-8, 1e-10)
    np.testing.assert_allclose(dw, wt.grad.numpy(), 1e-8, 1e-10)
    np.testing.assert_allclose(db, bt.grad.numpy(), 1e-10, 1e-12)


@pytest.mark.parametrize(
    ("shape", "groups"),
    [((3, 6, 4, 5), 2), ((3, 6, 4, 5), 1), ((3, 6, 4, 5), 6), ((2, 6, 7), 3), ((1, 4, 3), 2)],
)
@pytest.mark.parametrize("eps", [1e-5, 0.05])
def test_group_norm_and_gradients_match_torch(shape, groups, eps):
    rng = np.random.default_rng(sum(shape) + groups)
    x = rng.normal(1.0, 2.0, size=shape)
    c = shape[1]
    w, b, dy = rng.normal(size=c), rng.normal(size=c), rng.normal(size=shape)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.group_norm(xt, groups, wt, bt, eps=eps)
    y.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(
        ref.group_norm(x, groups, w, b, eps), y.detach().numpy(), 1e-10, 1e-12
    )
    plain = F.group_norm(torch.from_numpy(x), groups, eps=eps).numpy()
    np.testing.assert_allclose(ref.group_norm(x, groups, eps=eps), plain, 1e-10, 1e-12)
    dx, dw, db = ref.group_norm_grads(x, groups, w, dy, eps)
    np.testing.assert_allclose(dx, xt.grad.numpy(), 1e-8, 1e-10)
    np.testing.assert_allclose(dw, wt.grad.numpy(), 1e-8, 1e-10)
    np.testing.assert_allclose(db, bt.grad.numpy(), 1e-10, 1e-12)

"""bn_core.BatchNorm1d / 2d / 3d against torch.nn.BatchNorm1d / 2d / 3d."""

import numpy as np
import pytest
from _bncore_helpers import (
    SHAPES_1D,
    SHAPES_2D,
    assert_close,
    check_state_dict_copies,
    load_mutant,
    max_rel_err,
)

from bn_core import BatchNorm1d, BatchNorm2d, BatchNorm3d

torch = pytest.importorskip("torch")

SHAPES_3D = [(2, 3, 2, 3, 4), (3, 1, 1, 2, 2)]
PAIRS = (
    [(BatchNorm1d, torch.nn.BatchNorm1d, s) for s in SHAPES_1D]
    + [(BatchNorm2d, torch.nn.BatchNorm2d, s) for s in SHAPES_2D]
    + [(BatchNorm3d, torch.nn.BatchNorm3d, s) for s in SHAPES_3D]
)


def _train_both(ours, theirs, shape, steps, seed, dtype=np.float64, lr=0.05):
    """Train both layers side by side on the same batches (SGD on weight and bias)."""
    rng = np.random.default_rng(seed)
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    theirs = theirs.to(tdtype)
    opt = torch.optim.SGD(theirs.parameters(), lr=lr) if ours.affine else None
    # two values per channel normalize to +-1 whatever they are: keep the spread near
    # sqrt(eps) there, or grad_input is ~0 and its relative error measures cancellation only
    spread = 0.004 if shape[0] * np.prod(shape[2:]) == 2 else 3.0
    for _ in range(steps):
        x = rng.normal(2.0, spread, size=shape).astype(dtype)
        dy = rng.normal(size=shape).astype(dtype)
        y = ours(x)
        dx = ours.backward(dy)
        xt = torch.tensor(x, dtype=torch.float64).to(tdtype).requires_grad_(True)
        yt = theirs(xt)
        if opt:
            opt.zero_grad()
        yt.backward(torch.tensor(dy).to(tdtype))
        if ours.affine:
            assert_close(ours.grad_weight, theirs.weight.grad.numpy(), dtype, "grad_weight")
            assert_close(ours.grad_bias, theirs.bias.grad.numpy(), dtype, "grad_bias")
            ours.weight -= lr * ours.grad_weight
            ours.bias -= lr * ours.grad_bias
            opt.step()
    return y, dx, yt.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("momentum", [0.1, None, 0.7])
@pytest.mark.parametrize(("ours_cls", "torch_cls", "shape"), PAIRS)
def test_training_matches_torch_module(ours_cls, torch_cls, shape, momentum):
    C = shape[1]
    ours = ours_cls(C, momentum=momentum)
    theirs = torch_cls(C, momentum=momentum)
    y, dx, yt, dxt = _train_both(ours, theirs, shape, steps=22, seed=13)
    assert_close(y, yt, what="output")
    assert_close(dx, dxt, what="grad_input")
    assert_close(ours.weight, theirs.weight.detach().numpy(), what="weight")
    assert_close(ours.running_mean, theirs.running_mean.numpy(), what="running_mean")
    assert_close(ours.running_var, theirs.running_var.numpy(), what="running_var")
    assert ours.num_batches_tracked == int(theirs.num_batches_tracked) == 22
    # evaluation mode: running statistics, on a fresh batch
    x = np.random.default_rng(14).normal(size=shape)
    ours.eval()
    theirs.eval()
    dy = np.ones(shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.tensor(dy))
    assert_close(ours(x), yt.detach().numpy(), what="eval output")
    assert_close(ours.backward(dy), xt.grad.numpy(), what="eval grad_input")
    assert ours.num_batches_tracked == 22  # eval does not count


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_layers(dtype):
    ours = BatchNorm2d(3, dtype=dtype)
    theirs = torch.nn.BatchNorm2d(3)
    y, dx, yt, dxt = _train_both(ours, theirs, (4, 3, 5, 5), steps=20, seed=15, dtype=dtype)
    assert y.dtype == dtype and dx.dtype == dtype and ours.running_var.dtype == dtype
    assert_close(y, yt, dtype)
    assert_close(dx, dxt, dtype)
    assert_close(ours.running_var, theirs.running_var.numpy(), dtype)


def test_float32_input_through_float64_layer_keeps_float32():
    bn = BatchNorm1d(3)
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    assert bn(x).dtype == np.float32
    assert bn.backward(np.ones_like(x)).dtype == np.float32
    assert bn.grad_weight.dtype == np.float64  # parameters keep their own dtype


@pytest.mark.parametrize("affine", [True, False])
def test_without_running_stats_eval_uses_batch_statistics(affine):
    ours = BatchNorm1d(4, track_running_stats=False, affine=affine)
    theirs = torch.nn.BatchNorm1d(4, track_running_stats=False, affine=affine).double()
    assert ours.running_mean is None and ours.running_var is None
    assert ours.num_batches_tracked is None
    _train_both(ours, theirs, (6, 4), steps=3, seed=16)
    ours.eval()
    theirs.eval()
    x = np.random.default_rng(17).normal(5.0, 2.0, size=(6, 4))
    y = ours(x)
    assert_close(y, theirs(torch.tensor(x)).detach().numpy())
    np.testing.assert_allclose(y.mean(axis=0), (0 if not affine else ours.bias), atol=1e-12)


def test_affine_without_bias_like_torch_2_13():
    bn = BatchNorm1d(3, bias=False)
    assert bn.bias is None and bn.weight is not None
    x = np.random.default_rng(18).normal(size=(6, 3))
    bn(x)
    bn.backward(np.ones_like(x))
    assert bn.grad_bias is None and bn.grad_weight is not None
    try:
        ref = torch.nn.BatchNorm1d(3, bias=False)
    except TypeError:  # torch < 2.13 has no bias argument
        return
    assert set(bn.state_dict()) == set(ref.state_dict())
    assert repr(bn) == repr(ref)


def test_affine_false():
    bn = BatchNorm1d(3, affine=False)
    assert bn.weight is None and bn.bias is None
    x = np.random.default_rng(18).normal(size=(6, 3))
    bn(x)
    bn.backward(np.ones_like(x))
    assert bn.grad_weight is None and bn.grad_bias is None
    assert set(bn.state_dict()) == set(torch.nn.BatchNorm1d(3, affine=False).state_dict())


def test_initial_state_and_modes():
    bn = BatchNorm2d(3)
    np.testing.assert_array_equal(bn.weight, np.ones(3))
    np.testing.assert_array_equal(bn.bias, np.zeros(3))
    np.testing.assert_array_equal(bn.running_mean, np.zeros(3))
    np.testing.assert_array_equal(bn.running_var, np.ones(3))
    assert bn.num_batches_tracked == 0
    assert (bn.eps, bn.momentum, bn.training) == (1e-5, 0.1, True)
    assert bn.eval() is bn and bn.training is False
    assert bn.train() is bn and bn.training is True
    assert repr(bn) == repr(torch.nn.BatchNorm2d(3))
    bn(np.random.default_rng(0).normal(size=(2, 3, 2, 2)))
    bn.weight[:] = 5
    bn.reset_parameters()
    np.testing.assert_array_equal(bn.running_var, np.ones(3))
    np.testing.assert_array_equal(bn.weight, np.ones(3))
    assert bn.num_batches_tracked == 0


def test_eval_mode_does_not_update_buffers():
    bn = BatchNorm1d(2)
    bn.eval()
    x = np.random.default_rng(19).normal(3.0, 1.0, size=(5, 2))
    before = bn.state_dict()
    bn(x)
    after = bn.state_dict()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


def test_state_dict_round_trips_with_torch():
    theirs = torch.nn.BatchNorm1d(3).double()
    with torch.no_grad():
        theirs(torch.randn(8, 3, dtype=torch.float64) * 2 + 1)
        theirs.weight.mul_(3)
    ours = BatchNorm1d(3)
    ours.load_state_dict(theirs.state_dict())
    x = np.random.default_rng(20).normal(size=(4, 3))
    assert_close(ours.eval()(x), theirs.eval()(torch.tensor(x)).detach().numpy())
    back = torch.nn.BatchNorm1d(3).double()
    back.load_state_dict({k: torch.as_tensor(v) for k, v in ours.state_dict().items()})
    for k, v in theirs.state_dict().items():
        assert torch.equal(back.state_dict()[k], v)
    with pytest.raises(KeyError, match="missing"):
        ours.load_state_dict({"weight": np.ones(3)})


def test_forward_does_not_modify_input():
    bn = BatchNorm2d(2)
    x = np.random.default_rng(21).normal(size=(3, 2, 4, 4))
    x0 = x.copy()
    bn(x)
    bn.backward(np.ones_like(x))
    bn.eval()(x)
    np.testing.assert_array_equal(x, x0)


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="call forward"):
        BatchNorm1d(2).backward(np.ones((2, 2)))


def test_failed_batch_is_not_counted():
    bn = BatchNorm1d(3)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        bn(np.ones((1, 3)))
    assert bn.num_batches_tracked == 0
    np.testing.assert_array_equal(bn.running_var, np.ones(3))


# -- issue 10 ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [BatchNorm1d, BatchNorm2d, BatchNorm3d])
def test_state_dict_returns_copies(cls):
    check_state_dict_copies(cls)


@pytest.mark.parametrize("key", ["state-dict-alias-running-mean", "state-dict-alias-weight"])
def test_state_dict_check_kills_aliases(key):
    broken = load_mutant(key)
    with pytest.raises(AssertionError, match="changed"):
        check_state_dict_copies(broken.BatchNorm1d)


def test_batchnorm3d_rank_errors():
    with pytest.raises(ValueError, match=r"expected 5D input \(got 4D input\).*BatchNorm2d"):
        BatchNorm3d(3)(np.ones((2, 3, 4, 4)))
    with pytest.raises(ValueError, match=r"expected 4D input \(got 5D input\).*BatchNorm3d"):
        BatchNorm2d(3)(np.ones((2, 3, 4, 4, 4)))


@pytest.mark.parametrize("training", [True, False])
def test_float16_input_through_a_layer_like_torch(training):
    rng = np.random.default_rng(9)
    x = (1.0 + 2.0 * rng.normal(size=(8, 3, 4, 4))).astype(np.float16)
    ours, theirs = BatchNorm2d(3, dtype=np.float32), torch.nn.BatchNorm2d(3)
    ours.train(training)
    theirs.train(training)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    y = ours(x)
    assert y.dtype == np.float16 and yt.dtype == torch.float16
    assert max_rel_err(y, yt.detach().numpy()) <= 2 * 2.0**-10
    dy = rng.normal(size=x.shape).astype(np.float16)
    yt.backward(torch.tensor(dy))
    dx = ours.backward(dy)
    assert dx.dtype == np.float16
    assert max_rel_err(dx, xt.grad.numpy()) <= 4 * 2.0**-10
    np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=1e-6)

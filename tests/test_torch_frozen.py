"""bn_core.torch_frozen: frozen batch normalization against torch's BatchNorm in eval mode."""

import pytest

torch = pytest.importorskip("torch")
from bn_core import torch_bridge  # noqa: E402
from bn_core.torch_frozen import (  # noqa: E402
    FrozenBatchNorm1d,
    FrozenBatchNorm2d,
    freeze_batchnorm,
)

nn = torch.nn


def _trained_bn(cls, c, shape, seed=0):
    """A BatchNorm layer with non-trivial gamma, beta and running statistics."""
    g = torch.Generator().manual_seed(seed)
    bn = cls(c)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(c, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(c, generator=g))
    bn.train()
    for _ in range(5):
        bn(3 * torch.randn(*shape, generator=g) + 2)
    return bn.eval()


@pytest.mark.parametrize(
    "cls, frozen_cls, shape",
    [
        (nn.BatchNorm1d, FrozenBatchNorm1d, (8, 3)),
        (nn.BatchNorm1d, FrozenBatchNorm1d, (8, 3, 5)),
        (nn.BatchNorm2d, FrozenBatchNorm2d, (8, 3, 4, 5)),
    ],
)
def test_frozen_matches_eval_mode_batchnorm_in_both_modes(cls, frozen_cls, shape):
    bn = _trained_bn(cls, 3, shape)
    frozen = frozen_cls(3)
    result = frozen.load_state_dict(bn.state_dict())  # num_batches_tracked dropped, rest match
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(9))
    expected = bn(x)
    for mode in (True, False):
        frozen.train(mode)
        torch.testing.assert_close(frozen(x), expected, rtol=1e-5, atol=1e-6)
    # nothing moved in training mode
    torch.testing.assert_close(frozen.running_mean, bn.running_mean)
    torch.testing.assert_close(frozen.running_var, bn.running_var)


def test_buffers_not_parameters_and_state_dict_keys():
    frozen = FrozenBatchNorm2d(4)
    assert list(frozen.parameters()) == []
    assert list(frozen.state_dict()) == ["weight", "bias", "running_mean", "running_var"]
    bn_keys = set(nn.BatchNorm2d(4).state_dict())
    assert bn_keys - set(frozen.state_dict()) == {"num_batches_tracked"}
    # the other direction: BatchNorm accepts a state without num_batches_tracked (it fills in 0)
    frozen.running_var.fill_(2.0)
    bn = nn.BatchNorm2d(4)
    bn.load_state_dict(frozen.state_dict())  # strict
    torch.testing.assert_close(bn.running_var, torch.full((4,), 2.0))


def test_eps_is_used_inside_the_square_root():
    frozen = FrozenBatchNorm1d(1, eps=0.5)
    frozen.running_var.fill_(0.5)
    out = frozen(torch.ones(2, 1))
    torch.testing.assert_close(out, torch.ones(2, 1))  # 1 / sqrt(0.5 + 0.5)
    bn = nn.BatchNorm1d(1, eps=0.5).eval()
    bn.running_var.fill_(0.5)
    torch.testing.assert_close(out, bn(torch.ones(2, 1)))


def test_batch_of_one_works_in_training_mode():
    # BatchNorm raises "Expected more than 1 value per channel"; the frozen layer never looks
    # at the batch
    out = FrozenBatchNorm1d(3).train()(torch.ones(1, 3))
    assert out.shape == (1, 3)


def test_freeze_batchnorm_survives_train_and_optimizer():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 5 * 5, 6),
        nn.BatchNorm1d(6),
    )
    net.train()
    for _ in range(3):
        net(torch.randn(8, 2, 5, 5) * 2 + 1)
    net.eval()
    x = torch.randn(8, 2, 5, 5)
    expected = net(x).detach()
    frozen = freeze_batchnorm(net)
    assert frozen is net
    assert isinstance(net[1], FrozenBatchNorm2d) and isinstance(net[5], FrozenBatchNorm1d)
    net.train()  # the trap: model.train() re-enables batch statistics in plain BN
    torch.testing.assert_close(net(x), expected)
    before = {k: v.clone() for k, v in net.state_dict().items() if "1." in k or "5." in k}
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    loss = net(x).square().mean()
    loss.backward()
    opt.step()
    for k, v in before.items():
        torch.testing.assert_close(net.state_dict()[k], v)  # BN buffers untouched
    assert not torch.equal(net(x), expected)  # while the conv and linear layers did learn


def test_plain_requires_grad_false_does_not_freeze_statistics():
    # The control: the trap the module exists for, in torch's own BatchNorm.
    bn = _trained_bn(nn.BatchNorm1d, 3, (8, 3))
    bn.requires_grad_(False)
    saved = bn.running_mean.clone()
    bn.train()
    bn(torch.randn(8, 3))
    assert not torch.equal(bn.running_mean, saved)


def test_freeze_batchnorm_affine_false_dtype_and_bridge_subclass():
    bn = nn.BatchNorm1d(3, affine=False).double()
    bn.running_mean.fill_(1.0)
    frozen = freeze_batchnorm(bn)
    assert isinstance(frozen, FrozenBatchNorm1d)
    assert frozen.weight.dtype == torch.float64
    torch.testing.assert_close(frozen.weight, torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(frozen.running_mean, torch.ones(3, dtype=torch.float64))
    ours = torch_bridge.BatchNorm2d(2)
    assert isinstance(freeze_batchnorm(ours), FrozenBatchNorm2d)


def test_bridge_reexports():
    assert torch_bridge.FrozenBatchNorm2d is FrozenBatchNorm2d
    assert torch_bridge.FrozenBatchNorm1d is FrozenBatchNorm1d
    assert torch_bridge.freeze_batchnorm is freeze_batchnorm


def test_clear_errors():
    with pytest.raises(ValueError, match="track_running_stats=False"):
        freeze_batchnorm(nn.BatchNorm1d(3, track_running_stats=False))
    with pytest.raises(TypeError, match="BatchNorm3d"):
        freeze_batchnorm(nn.BatchNorm3d(3))
    with pytest.raises(ValueError, match="4D"):
        FrozenBatchNorm2d(3)(torch.ones(2, 3))
    with pytest.raises(ValueError, match="channels must be on axis 1"):
        FrozenBatchNorm2d(3)(torch.ones(2, 4, 5, 3))
    with pytest.raises(ValueError, match="num_features"):
        FrozenBatchNorm1d(0)
    with pytest.raises(ValueError, match="eps"):
        FrozenBatchNorm1d(2, eps=0.0)


def test_docstring_examples():
    import doctest

    from bn_core import torch_frozen

    result = doctest.testmod(torch_frozen, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0

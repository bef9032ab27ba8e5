"""Tests for bn_core.lab.inference: recalibrating running statistics and folding BN."""

import numpy as np
import pytest
import torch
from torch import nn

from bn_core.lab import inference
from bn_core.lab.models import MLP


def _trained_net(norm="batch", seed=0):
    torch.manual_seed(seed)
    net = MLP(6, hidden=(16, 16), out_features=3, norm=norm)
    x = torch.randn(200, 6) * 2 + 0.5
    with torch.no_grad():
        net.train()
        for _ in range(5):
            net(x[torch.randperm(200)[:40]])
    return net.eval(), x


def test_recalibrate_gives_average_of_batch_statistics():
    net, x = _trained_net()
    net.norms[0].running_mean.fill_(123.0)  # stale on purpose
    inference.recalibrate_bn(net, x, batch_size=50, seed=3)
    order = torch.from_numpy(np.random.default_rng(3).permutation(200))
    z = (x @ net.linears[0].weight.T)[order].reshape(4, 50, 16)
    bn = net.norms[0]
    torch.testing.assert_close(bn.running_mean, z.mean(1).mean(0), atol=1e-5, rtol=1e-5)
    # running_var is the average of the unbiased batch variances
    torch.testing.assert_close(
        bn.running_var, z.var(1, unbiased=True).mean(0), atol=1e-4, rtol=1e-4
    )
    assert bn.num_batches_tracked.item() == 4


def test_recalibrate_restores_mode_and_momentum_and_keeps_parameters():
    net, x = _trained_net()
    net.norms[1].momentum = 0.3
    params = [p.clone() for p in net.parameters()]
    inference.recalibrate_bn(net, x)
    assert not net.training
    assert net.norms[0].momentum == 0.1 and net.norms[1].momentum == 0.3
    for before, after in zip(params, net.parameters(), strict=True):
        assert torch.equal(before, after)


def test_recalibrate_drops_the_incomplete_last_batch():
    net, x = _trained_net()
    inference.recalibrate_bn(net, x[:130], batch_size=60)
    assert net.norms[0].num_batches_tracked.item() == 2


def test_recalibrate_rejects_bad_input():
    net, x = _trained_net(norm=None)
    with pytest.raises(ValueError, match="no batch-norm layer"):
        inference.recalibrate_bn(net, x)
    net, x = _trained_net()
    with pytest.raises(ValueError, match="batch_size"):
        inference.recalibrate_bn(net, x, batch_size=1)


def test_fold_mlp_matches_eval_mode_and_leaves_model_alone():
    net, x = _trained_net()
    with torch.no_grad():
        net.norms[0].weight.uniform_(0.5, 2.0)
        net.norms[1].bias.uniform_(-1.0, 1.0)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    folded = inference.fold_mlp(net)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), atol=1e-5, rtol=1e-5)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in folded.modules())
    assert all(lin.bias is not None for lin in folded.linears)
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k])


def test_fold_mlp_wrong_fold_would_be_caught():
    # guard against a test that cannot fail: a model whose stats changed must differ
    net, x = _trained_net()
    folded = inference.fold_mlp(net)
    with torch.no_grad():
        net.norms[0].running_mean.add_(1.0)
        assert (folded(x) - net(x)).abs().max() > 1e-3


def test_fold_mlp_rejects_layer_norm():
    net, _ = _trained_net(norm="layer")
    with pytest.raises(ValueError, match="batch-norm"):
        inference.fold_mlp(net)

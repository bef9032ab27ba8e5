"""bn_core.lab.devices: simulated per-device BN, ResNet-50 sizes, the synchronization cost model."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bn_core.lab.devices import (  # noqa: E402
    ShardedEnsembleMLP,
    resnet50_bn_layers,
    resnet50_num_parameters,
    sync_cost,
)
from bn_core.lab.ensemble import EnsembleMLP  # noqa: E402


def _models(**kw):
    common = dict(hidden=(8, 6), out_features=3, activation="relu", seeds=[0, 1])
    return ShardedEnsembleMLP(2, 5, **common, **kw), EnsembleMLP(2, 5, norm="batch", **common)


def test_one_device_and_sync_mode_are_plain_batch_norm():
    x = torch.randn(12, 5)
    for kw in (dict(num_devices=1), dict(num_devices=4, mode="sync")):
        ours, ref = _models(**kw)
        torch.testing.assert_close(ours(x), ref(x))
        torch.testing.assert_close(ours.running_var0, ref.running_var0)


def test_per_device_normalizes_each_shard_and_keeps_shard_0_statistics():
    x = torch.randn(12, 5)
    ours, _ = _models(num_devices=3)
    ours.record = True
    ours(x)
    u = ours.preactivations[0]  # gamma=1, beta=0 at init: the normalized pre-activations
    for shard in u.reshape(2, 3, 4, 8).unbind(1):
        torch.testing.assert_close(shard.mean(1), torch.zeros(2, 8), atol=1e-5, rtol=0)
    # shard 0's statistics only (rank 0's buffers under DDP)
    z0 = torch.bmm(x[:4].unsqueeze(0).expand(2, -1, -1), ours.weights[0])
    torch.testing.assert_close(ours.running_mean0[:, 0], 0.1 * z0.mean(1))
    ref, _ = _models(num_devices=1)
    assert not torch.allclose(ours(x), ref(x))


def test_sharding_errors():
    ours, _ = _models(num_devices=5)
    with pytest.raises(ValueError, match="not a multiple"):
        ours(torch.randn(12, 5))
    ours, _ = _models(num_devices=12)
    with pytest.raises(ValueError, match="more than 1 value"):
        ours(torch.randn(12, 5))
    with pytest.raises(ValueError, match="mode"):
        _models(mode="ghost")


def test_resnet50_sizes():
    layers = resnet50_bn_layers()
    assert len(layers) == 53 and sum(layers) == 26560
    assert resnet50_num_parameters() == 25_557_032  # torchvision.models.resnet50()


def test_sync_cost_model():
    assert sync_cost([4], 1, latency_s=1e-5, bandwidth_Bps=1e9)["bytes"] == 0
    c = sync_cost([4, 2], 4, latency_s=1e-5, bandwidth_Bps=1e9)
    assert c["collectives"] == 4
    assert c["gather_bytes"] == 3 * (2 * 6 + 2) * 4
    assert c["reduce_bytes"] == pytest.approx(2 * 3 / 4 * 12 * 4)
    assert c["latency_s"] == pytest.approx(4 * 1e-5 * 2)
    assert c["time_s"] == pytest.approx(c["latency_s"] + c["bytes"] / 1e9)
    big = sync_cost([4, 2], 512, latency_s=1e-5, bandwidth_Bps=1e9)
    assert big["gather_bytes"] > 100 * c["gather_bytes"]  # the all-gather grows with R
    assert np.isfinite(big["time_s"])


def test_accumulation_updates_running_statistics_once_per_micro_batch():
    from bn_core.lab.devices import AccumulatedEnsembleMLP

    common = dict(hidden=(6,), out_features=3, activation="relu", seeds=[0])
    acc = AccumulatedEnsembleMLP(1, 5, num_devices=2, **common)
    per = ShardedEnsembleMLP(1, 5, num_devices=2, **common)
    x = torch.randn(8, 5)
    torch.testing.assert_close(acc(x), per(x))  # same outputs: each micro-batch on its own
    z = torch.bmm(x.unsqueeze(0), acc.weights[0])
    want = torch.zeros(6)
    for k in range(2):
        want = 0.9 * want + 0.1 * z[0, 4 * k : 4 * (k + 1)].mean(0)
    torch.testing.assert_close(acc.running_mean0[0, 0], want)


def test_renorm_ensemble_matches_bn_core_renorm():
    from bn_core.lab.devices import RenormEnsembleMLP
    from bn_core.renorm import batch_renorm_backward, batch_renorm_forward

    model = RenormEnsembleMLP(
        1,
        4,
        hidden=(3,),
        out_features=2,
        activation="relu",
        seeds=[0],
        warmup=0,
        rmax=1.5,
        dmax=0.5,
    ).double()
    with torch.no_grad():
        model.running_mean0.fill_(0.3)
        model.running_var0.fill_(0.2)
        model.gammas[0].copy_(torch.tensor([[[1.5, 0.5, 1.0]]]))
    rm, rv = model.running_mean0[0, 0].numpy().copy(), model.running_var0[0, 0].numpy().copy()
    x = torch.randn(6, 4, dtype=torch.float64)
    z = torch.bmm(x.unsqueeze(0), model.weights[0]).detach().requires_grad_(True)
    u = model._normalize(0, z)
    dy = torch.randn_like(u)
    (u * dy).sum().backward()
    gamma = model.gammas[0].detach()[0, 0].numpy()
    want, cache = batch_renorm_forward(
        z.detach()[0].numpy(), gamma, np.zeros(3), rm, rv, rmax=1.5, dmax=0.5, momentum=0.01
    )
    np.testing.assert_allclose(u.detach()[0].numpy(), want, rtol=1e-10, atol=1e-12)
    dx = batch_renorm_backward(dy[0].numpy(), cache)[0]
    np.testing.assert_allclose(z.grad[0].numpy(), dx, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(model.running_var0[0, 0].numpy(), rv, rtol=1e-12)
    assert np.any(np.abs(cache.d) == 0.5) or np.any(np.isin(cache.r, [1.5, 1 / 1.5]))


def test_renorm_warmup_schedule():
    from bn_core.lab.devices import RenormEnsembleMLP

    m = RenormEnsembleMLP(1, 4, hidden=(4,), out_features=2, warmup=10)
    assert m.limits() == (1.0, 0.0)
    m.forwards = 15
    assert m.limits() == pytest.approx((2.0, 2.5))
    m.forwards = 100
    assert m.limits() == (3.0, 5.0)


def test_weight_standardization():
    from bn_core.lab.devices import WSEnsembleMLP

    m = WSEnsembleMLP(2, 5, hidden=(8, 8), out_features=3, norm="group", num_groups=4, seeds=[0, 1])
    w = m.standardized(0)
    torch.testing.assert_close(w.mean(1), torch.zeros(2, 8), atol=1e-6, rtol=0)
    # unit variance up to the eps (1e-5) added to the weight variance (about 1/15 here)
    torch.testing.assert_close(w.var(1, unbiased=False) * 5, torch.ones(2, 8), atol=2e-3, rtol=0)
    out = m(torch.randn(4, 5))
    assert out.shape == (2, 4, 3)
    out.sum().backward()
    assert m.weights[0].grad is not None

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

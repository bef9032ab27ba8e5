"""Tests of bn_core.lab.noise and bn_core.lab.landscape (chapters 7, 8 and 9)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bn_core.lab import ensemble, landscape, noise
from bn_core.lab.models import MLP


def test_normalized_in_batches_matches_a_direct_computation():
    x = np.random.default_rng(0).normal(size=(50, 2))
    vals = noise.normalized_in_batches(x, 3, batch_size=5, n_batches=30, seed=1)
    assert vals.shape == (30, 2)
    # recompute one batch by hand with the same random keys
    rng = np.random.default_rng(1)
    pick = np.argsort(rng.random((30, 49)), axis=1)[:, :4]
    others = np.delete(np.arange(50), 3)[pick[0]]
    batch = np.concatenate([x[[3]], x[others]])
    expected = (x[3] - batch.mean(0)) / np.sqrt(batch.var(0) + 1e-5)
    np.testing.assert_allclose(vals[0], expected, rtol=1e-12)


def test_normalized_spread_follows_the_theory_for_gaussian_data():
    x = np.random.default_rng(0).normal(size=(3000, 1))
    x = (x - x.mean()) / x.std()
    i = int(np.argmin(np.abs(x[:, 0] - 1.0)))
    sd = noise.normalized_in_batches(x, i, 64, 3000, seed=0)[:, 0].std()
    assert sd == pytest.approx(float(noise.normalized_sd_theory(1.0, 64)), rel=0.1)
    # and the spread shrinks by about 2 when the batch grows 4 times
    sd4 = noise.normalized_in_batches(x, i, 256, 3000, seed=0)[:, 0].std()
    assert sd / sd4 == pytest.approx(2.0, rel=0.15)


def test_normalized_in_batches_rejects_bad_sizes():
    with pytest.raises(ValueError, match="batch_size"):
        noise.normalized_in_batches(np.zeros((10, 1)), 0, 1, 5)


def test_batch_stat_errors_follow_one_over_sqrt_m():
    x = np.random.default_rng(1).normal(size=(5000, 3))
    errs = noise.batch_stat_errors(x, [4, 64], n_batches=2000, seed=0)
    np.testing.assert_allclose(errs["mean_err"][0], 0.5, rtol=0.1)
    np.testing.assert_allclose(errs["mean_err"][1], 0.125, rtol=0.1)
    # biased variance: spread sqrt(2/m) plus bias -1/m for Gaussian data
    np.testing.assert_allclose(errs["var_err"][1], np.sqrt(2 / 64 + 1 / 64**2), rtol=0.1)


def test_accuracy_with_batch_stats_leaves_running_stats_alone():
    torch.manual_seed(0)
    net = MLP(4, (8,), 3, norm="batch")
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    y = np.arange(20) % 3
    acc = noise.accuracy_with_batch_stats(net, x, y, batch_size=5)
    assert acc.shape == (1,) and 0 <= acc[0] <= 1
    assert not net.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_accuracy_with_batch_stats_is_per_member_and_keeps_running_stats():
    # running statistics far off: training-mode evaluation must neither use nor change them
    ens = ensemble.EnsembleMLP(2, 1, (4,), 2, norm="batch", seeds=[0, 1])
    x = np.concatenate([np.full((10, 1), -1.0), np.full((10, 1), 1.0)]).astype(np.float32)
    y = np.array([0] * 10 + [1] * 10)
    with torch.no_grad():
        ens.running_mean0.fill_(100.0)
    a_batch = noise.accuracy_with_batch_stats(ens, x, y, batch_size=20)
    assert a_batch.shape == (2,)
    assert float(ens.running_mean0.max()) == 100.0


def test_noisy_bn_changes_distribution_each_step_and_only_in_training():
    nz = noise.NoisyBN(mean_range=1.0, scale_max=3.0, jitter=0.0, seed=0)
    u = torch.randn(1, 256, 6)
    out1 = nz(0, u)
    shift, scale = nz.params[0]
    assert torch.allclose(out1, u * scale + shift)
    assert (scale >= 1).all() and (scale <= 3).all() and (shift.abs() <= 1).all()
    nz.resample()
    out2 = nz(0, u)
    assert not torch.allclose(out1, out2)
    ens = ensemble.EnsembleMLP(1, 5, (6,), 2, norm="batch", seeds=[0])
    x = torch.randn(8, 5)
    ens.eval()
    clean = ens(x)
    ens.post_norm = nz
    assert torch.equal(ens(x), clean)  # evaluation mode ignores the hook
    with pytest.raises(ValueError, match="scale_max"):
        noise.NoisyBN(scale_max=0.5)


def test_layer_input_moments_for_mlp_and_ensemble():
    torch.manual_seed(0)
    net = MLP(4, (6, 6), 3, norm="batch", activation="relu")
    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    m = landscape.layer_input_moments(net, x)
    assert m["mean"].shape == (1, 2, 6) and m["std"].shape == (1, 2, 6)
    assert torch.equal(net.norms[0].running_mean, torch.zeros(6))
    net.record = True
    net.train()
    net(torch.from_numpy(x))
    h1 = torch.relu(net.preactivations[0])
    np.testing.assert_allclose(m["mean"][0, 0], h1.mean(0).detach().numpy(), rtol=1e-5)


def test_gradient_landscape_restores_model_and_agrees_with_a_direct_step():
    torch.manual_seed(0)
    net = MLP(4, (8,), 3, norm="batch")
    x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    y = np.arange(10) % 3
    # pretend a training step left gradients behind
    landscape.member_losses(net, torch.from_numpy(x), torch.from_numpy(y)).sum().backward()
    grads = [p.grad.clone() for p in net.parameters()]
    state = {k: v.clone() for k, v in net.state_dict().items()}
    out = landscape.gradient_landscape(net, x, y, [0.1, 0.5])
    for p, g in zip(net.parameters(), grads, strict=True):
        assert torch.equal(p.grad, g)
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k
    # the loss 0.5 along the gradient, computed directly (running stats restored afterwards)
    clone = MLP(4, (8,), 3, norm="batch")
    clone.load_state_dict(state)
    with torch.no_grad():
        for p, g in zip(clone.parameters(), grads, strict=True):
            p -= 0.5 * g
    direct = landscape.member_losses(clone, torch.from_numpy(x), torch.from_numpy(y)).item()
    assert out["loss"][0, 1] == pytest.approx(direct, rel=1e-5)
    expected_beta = max(out["grad_change"][0] / (np.array([0.1, 0.5]) * out["grad_norm"][0]))
    assert out["beta"][0] == pytest.approx(expected_beta, rel=1e-5)


def test_gradient_landscape_is_per_member_in_an_ensemble():
    ens = ensemble.EnsembleMLP(2, 4, (8,), 3, norm=None, seeds=[0, 1])
    x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    y = np.arange(10) % 3
    out = landscape.gradient_landscape(ens, x, y, [0.1])
    single = ensemble.EnsembleMLP(1, 4, (8,), 3, norm=None, seeds=[1])
    out1 = landscape.gradient_landscape(single, x, y, [0.1])
    np.testing.assert_allclose(out["loss"][1], out1["loss"][0], rtol=1e-5)
    np.testing.assert_allclose(out["grad_norm"][1], out1["grad_norm"][0], rtol=1e-5)


def test_scale_invariance_before_bn():
    ens = ensemble.EnsembleMLP(1, 4, (8,), 3, norm="batch", seeds=[0])
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32))
    y = torch.arange(16) % 3
    base = landscape.member_losses(ens, x, y).item()
    with torch.no_grad():
        ens.weights[0].mul_(10.0)
    assert landscape.member_losses(ens, x, y).item() == pytest.approx(base, rel=1e-4)


def test_noisy_bn_random_walk_drifts_slowly_and_is_off_by_default():
    u = torch.zeros(1, 4, 50)
    walk = noise.NoisyBN(mean_range=0.0, scale_max=1.0, jitter=0.0, walk_shift=0.02, seed=0)
    walk(0, u)
    shifts = []
    for _ in range(400):
        walk.resample()
        walk(0, u)
        shifts.append(walk.params[0][0].clone())
    shifts = torch.stack(shifts)[:, 0, 0]  # (steps, units)
    steps = (shifts[1:] - shifts[:-1]).std()
    assert float(steps) == pytest.approx(0.02, rel=0.1)  # one step of the walk
    # after t steps the walk has wandered about 0.02 sqrt(t) (a random walk, not a jitter)
    assert float((shifts[-1] - shifts[0]).std()) == pytest.approx(0.02 * 399**0.5, rel=0.3)
    still = noise.NoisyBN(mean_range=0.0, scale_max=1.0, jitter=0.0, seed=0)
    still(0, u)
    still.resample()
    assert torch.equal(still(0, u), u) and not still.walk
    with pytest.raises(ValueError, match="walk_shift"):
        noise.NoisyBN(walk_shift=-1.0)


def test_noise_through_next_bn_keeps_per_example_noise_and_removes_affine_noise():
    ens = ensemble.EnsembleMLP(2, 5, (16, 16, 16), 3, norm="batch", activation="relu", seeds=[0, 1])
    x = np.random.default_rng(0).normal(size=(128, 5)).astype(np.float32)
    ens.post_norm = lambda i, u: 3.0 * u  # positive rescaling commutes with ReLU: BN undoes it
    out = noise.noise_through_next_bn(ens, x)
    assert out["before"].shape == (2, 2)
    assert (out["before"] > 1.0).all() and (out["after"] < 1e-3).all()
    gen = torch.Generator().manual_seed(0)
    ens.post_norm = lambda i, u: u + 0.5 * torch.randn(u.shape, generator=gen)  # per example
    out = noise.noise_through_next_bn(ens, x)
    assert (out["after"] > 0.1).all() and (out["kept"] > 0.3).all()
    assert ens.post_norm is not None and float(ens.running_mean0.abs().max()) == 0.0


def test_gradient_landscape_relative_steps_are_scale_invariant_with_bn():
    x = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    y = np.arange(32) % 3
    ens = ensemble.EnsembleMLP(1, 4, (8, 8), 3, norm="batch", activation="relu", seeds=[0])
    big = ensemble.EnsembleMLP(1, 4, (8, 8), 3, norm="batch", activation="relu", seeds=[0])
    with torch.no_grad():  # scale every hidden weight matrix (each followed by BN) by 10
        for w in list(big.weights)[:-1]:
            w.mul_(10.0)
    a = landscape.gradient_landscape(ens, x, y, [0.05, 0.1])
    b = landscape.gradient_landscape(big, x, y, [0.05, 0.1])
    assert a["loss0"][0] == pytest.approx(b["loss0"][0], rel=1e-4)  # same function
    # the raw step length shrinks with the weights' scale, so raw numbers are not comparable
    assert not np.allclose(a["loss"], b["loss"], rtol=1e-2)
    rel = landscape.gradient_landscape(ens, x, y, [0.01], relative=True)
    np.testing.assert_allclose(
        rel["eta"][0, 0] * rel["grad_norm_w"][0] / rel["weight_norm"][0], 0.01, rtol=1e-5
    )
    assert np.isfinite(rel["beta_rel"]).all() and (rel["beta_rel"] > 0).all()


def test_window_average_and_drift_with_dead_units():
    from bn_core.lab import ics

    jitter = np.tile([[1.0], [-1.0]], (50, 1))  # +-1 every evaluation, no trend
    ramp = np.linspace(0.0, 10.0, 100)[:, None]
    std = np.ones((100, 1))
    assert ics.drift(jitter, std)[0].mean() == pytest.approx(2.0)
    assert ics.drift(ics.window_average(jitter, 10), ics.window_average(std, 10))[0].max() < 1e-12
    assert ics.drift(ics.window_average(ramp, 10), ics.window_average(std, 10))[0].mean() > 0.9
    with pytest.raises(ValueError, match="window"):
        ics.window_average(ramp, 0)

"""Tests of the lab helpers behind chapters 3-5 and 8 added for issue 11: timing ratios,
linear outputs, per-image statistics."""

import numpy as np
import pytest

from bn_core.lab import data, preacts, timing


def test_median_ratio_orders_a_slow_and_a_fast_function():
    ratio, t_slow, t_fast = timing.median_ratio(
        lambda: sum(range(20_000)), lambda: sum(range(200)), repeat=3, budget=0.002
    )
    assert ratio > 5  # 100x the work; a generous bound for a loaded machine
    assert t_slow > t_fast > 0


def test_median_ratio_rejects_no_rounds():
    with pytest.raises(ValueError, match="repeat"):
        timing.median_ratio(lambda: None, lambda: None, repeat=0)


def test_random_layer_outputs_keeps_its_old_name():
    d = data.digits(seed=0)
    a = preacts.random_layer_outputs(d, n=20, width=7, seed=3)
    b = preacts.random_layer_preactivations(d, n=20, width=7, seed=3)
    assert a.shape == (20, 7)
    np.testing.assert_array_equal(a, b)


def test_member_as_mlp_computes_what_the_member_computes_in_both_modes():
    import torch

    from bn_core.lab import ensemble, inference

    ens = ensemble.EnsembleMLP(3, 5, (6, 6), 4, norm="batch", seeds=[0, 1, 2])
    ens.train()
    ens(torch.randn(20, 5))  # move the running statistics away from 0 and 1
    x = torch.randn(9, 5)
    for k in range(3):
        net = inference.member_as_mlp(ens, k)
        ens.eval()
        torch.testing.assert_close(net(x), ens(x)[k], atol=1e-6, rtol=1e-5)
        ens.train()
        torch.testing.assert_close(net.train()(x), ens(x)[k], atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="k must be"):
        inference.member_as_mlp(ens, 3)
    with pytest.raises(ValueError, match="norm"):
        inference.member_as_mlp(ensemble.EnsembleMLP(2, 5, (8,), 4, norm="layer"), 0)


def test_mean_effective_sample_size_sees_correlated_positions():
    rng = np.random.default_rng(1)
    iid = rng.normal(size=(300, 1, 4, 4))
    # every position of an image equal to one draw: 16 values are worth one
    copies = np.broadcast_to(rng.normal(size=(300, 1, 1, 1)), (300, 1, 4, 4))
    ess_iid = preacts.mean_effective_sample_size(iid, [2, 8], n_batches=3000)[:, 0]
    ess_copies = preacts.mean_effective_sample_size(copies, [2, 8], n_batches=3000)[:, 0]
    np.testing.assert_allclose(ess_iid, [32, 128], rtol=0.2)
    np.testing.assert_allclose(ess_copies, [2, 8], rtol=0.2)
    with pytest.raises(ValueError, match="batch size"):
        preacts.mean_effective_sample_size(iid, [301])
    with pytest.raises(ValueError, match="N, C, H, W"):
        preacts.mean_effective_sample_size(iid[0], [1])


def test_conv_digit_maps_shapes_and_repeatability():
    d = data.digits(seed=0)
    a_train, a_test = preacts.conv_digit_maps(d, channels=3, seed=2)
    b_train, _ = preacts.conv_digit_maps(d, channels=3, seed=2)
    assert a_train.shape == (len(d.x_train), 3, 8, 8) and a_test.shape == (len(d.x_test), 3, 8, 8)
    np.testing.assert_array_equal(a_train, b_train)
    with pytest.raises(ValueError, match="64"):
        preacts.conv_digit_maps(
            data.Dataset("x", d.x_train[:, :10], d.y_train, d.x_test[:, :10], d.y_test)
        )

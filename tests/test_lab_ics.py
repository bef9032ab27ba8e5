"""Tests of bn_core.lab.ics, the probes chapter 1 uses to measure internal covariate shift."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bn_core.lab import ics
from bn_core.lab.ensemble import EnsembleMLP
from bn_core.lab.models import MLP


def sigmoid_slope(z: float) -> float:
    s = 1.0 / (1.0 + np.exp(-z))
    return s * (1.0 - s)


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5, 0.9])
def test_saturation_threshold_is_where_the_slope_drops_to_the_fraction(fraction):
    z = ics.saturation_threshold(fraction)
    assert sigmoid_slope(z) == pytest.approx(fraction * ics.SIGMOID_PEAK_SLOPE, rel=1e-9)
    # beyond the threshold the slope is smaller, inside it larger
    assert sigmoid_slope(z + 0.1) < fraction * 0.25 < sigmoid_slope(z - 0.1)


def test_saturation_threshold_rejects_bad_fractions():
    for bad in (0.0, 1.0, -0.1, 2.0):
        with pytest.raises(ValueError, match="fraction"):
            ics.saturation_threshold(bad)


def test_activation_probe_matches_a_direct_computation_on_an_mlp():
    torch.manual_seed(0)
    model = MLP(6, hidden=(7, 7), out_features=3, init_std=2.0)
    x = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    limit = 1.5
    out = ics.activation_probe(x, unit=2, layer=0, threshold=limit)(model, 0)

    with torch.no_grad():
        z1 = model.linears[0](torch.from_numpy(x)).numpy()
        z2 = model.linears[1](torch.sigmoid(torch.from_numpy(z1))).numpy()
    np.testing.assert_allclose(out["mean"], np.stack([z1.mean(0), z2.mean(0)]), rtol=1e-5)
    np.testing.assert_allclose(out["std"], np.stack([z1.std(0), z2.std(0)]), rtol=1e-4)
    np.testing.assert_allclose(out["percentiles"], np.percentile(z1[:, 2], [15, 50, 85]), rtol=1e-5)
    expected_sat = [np.mean(np.abs(z1) > limit), np.mean(np.abs(z2) > limit)]
    np.testing.assert_allclose(out["saturated"], expected_sat)
    assert 0 < expected_sat[0] < 1  # the example exercises both sides of the threshold


def test_activation_probe_uses_eval_mode_and_restores_the_model_state():
    torch.manual_seed(0)
    model = MLP(4, hidden=(5, 5), norm="batch", init_std=1.0)
    model.train()
    before = [bn.running_mean.clone() for bn in model.norms]
    x = np.random.default_rng(1).normal(size=(30, 4)).astype(np.float32)
    out = ics.activation_probe(x)(model, 0)
    assert model.training and model.record is False
    for bn, old in zip(model.norms, before, strict=True):
        torch.testing.assert_close(bn.running_mean, old)  # eval mode: statistics not updated
    # fresh running statistics (mean 0, var 1) leave the linear outputs unnormalized
    with torch.no_grad():
        z1 = model.linears[0](torch.from_numpy(x)).numpy() / np.sqrt(1 + 1e-5)
    np.testing.assert_allclose(out["mean"][0], z1.mean(0), rtol=1e-4, atol=1e-6)


def test_activation_probe_gives_each_ensemble_member_its_own_statistics():
    model = EnsembleMLP(3, 4, hidden=(5, 5), out_features=2, init_std=[0.1, 1.0, 10.0])
    x = np.random.default_rng(2).normal(size=(40, 4)).astype(np.float32)
    out = ics.activation_probe(x)(model, 0)
    assert out["mean"].shape == (3, 2, 5)
    assert out["std"].shape == (3, 2, 5)
    assert out["percentiles"].shape == (3, 3)
    assert out["saturated"].shape == (3, 2)
    # a larger initial scale gives wider pre-activations and more saturation, member by member
    assert np.all(np.diff(out["std"][:, 0].mean(-1)) > 0)
    assert out["saturated"][0, 0] == 0.0 and out["saturated"][2, 0] > 0.5
    with torch.no_grad():
        z = torch.bmm(torch.from_numpy(x).expand(3, -1, -1), model.weights[0]).numpy()
    np.testing.assert_allclose(out["std"][:, 0], z.std(1), rtol=1e-4)


def test_activation_probe_without_moments_records_the_same_percentiles_and_saturation():
    model = EnsembleMLP(3, 4, hidden=(5, 5), out_features=2, init_std=[0.1, 1.0, 10.0])
    x = np.random.default_rng(3).normal(size=(40, 4)).astype(np.float32)
    full = ics.activation_probe(x)(model, 0)
    lean = ics.activation_probe(x, moments=False)(model, 0)
    assert sorted(lean) == ["percentiles", "saturated"]
    for key in lean:
        np.testing.assert_array_equal(lean[key], full[key])


def test_grad_norm_probe_matches_the_gradients_and_skips_steps():
    torch.manual_seed(0)
    model = MLP(4, hidden=(5, 5), out_features=3)
    model(torch.ones(2, 4)).pow(2).sum().backward()
    probe = ics.grad_norm_probe(every=3)
    norms = probe(model, 1)["grad_norm"]
    expected = [layer.weight.grad.norm().item() for layer in model.layers]
    np.testing.assert_allclose(norms, expected, rtol=1e-6)
    assert probe(model, 2) is None and probe(model, 3) is None
    assert probe(model, 4) is not None
    with pytest.raises(ValueError, match="every"):
        ics.grad_norm_probe(every=0)


def test_grad_norm_probe_on_an_ensemble_is_per_member():
    model = EnsembleMLP(2, 4, hidden=(5,), out_features=3, init_std=[1.0, 1.0], seeds=[0, 1])
    out = model(torch.ones(6, 4))
    (out[0].sum() + 0 * out[1].sum()).backward()  # only member 0 has a nonzero gradient
    norms = ics.grad_norm_probe()(model, 1)["grad_norm"]
    assert norms.shape == (2, 2)
    assert np.all(norms[0] > 0) and np.all(norms[1] == 0)


def test_drift_of_a_stationary_distribution_is_zero_and_of_a_moving_one_is_exact():
    mean = np.zeros((4, 3))
    std = np.ones((4, 3))
    shift, scale = ics.drift(mean, std)
    assert shift.shape == (3,) and np.all(shift == 0) and np.all(scale == 0)
    # every unit moves by one old standard deviation and doubles its spread at each evaluation
    mean = np.cumsum(np.r_[0.0, 1.0, 2.0, 4.0])[:, None] * np.ones((1, 3))
    std = (2.0 ** np.arange(4))[:, None] * np.ones((1, 3))
    shift, scale = ics.drift(mean, std)
    np.testing.assert_allclose(shift, [1.0, 1.0, 1.0])
    np.testing.assert_allclose(scale, np.log(2.0) * np.ones(3))
    np.testing.assert_allclose(ics.spread_growth(std), [1.0, 2.0, 4.0, 8.0])


def test_drift_validates_its_inputs():
    with pytest.raises(ValueError, match="same shape"):
        ics.drift(np.zeros((3, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="two evaluations"):
        ics.drift(np.zeros((1, 2)), np.ones((1, 2)))


def test_first_step_reaching_per_run():
    steps = np.array([0, 50, 100, 150])
    values = np.array([[0.1, 0.95, 0.2, 0.99], [0.1, 0.2, 0.3, 0.4], [np.nan, 0.9, 0.9, 0.9]])
    np.testing.assert_array_equal(ics.first_step_reaching(steps, values, 0.9), [50.0, np.nan, 50.0])
    with pytest.raises(ValueError, match="evaluations"):
        ics.first_step_reaching(steps[:3], values, 0.9)


def test_select_members_keeps_the_chosen_members_of_every_array():
    from bn_core.lab import data, ensemble

    d = data.digits(seed=0)
    model = ensemble.EnsembleMLP(3, d.n_features, (8,), d.n_classes, init_std=[0.1, 1.0, 3.0])
    hist = ensemble.train_ensemble(
        model,
        d,
        steps=4,
        eval_every=2,
        on_eval=ics.activation_probe(d.x_test[:20]),
        on_step=ics.grad_norm_probe(),
    )
    sub = ics.select_members(hist, [2, 0])
    np.testing.assert_array_equal(sub.steps, hist.steps)
    np.testing.assert_array_equal(sub.test_acc, hist.test_acc[[2, 0]])
    np.testing.assert_array_equal(sub.records["std"], hist.records["std"][[2, 0]])
    np.testing.assert_array_equal(
        sub.step_records["grad_norm"], hist.step_records["grad_norm"][[2, 0]]
    )
    assert sub.diverged.shape == (2,)
    mask = np.array([False, True, False])
    np.testing.assert_array_equal(ics.select_members(hist, mask).train_loss, hist.train_loss[1:2])


def test_select_members_of_a_run_without_training_set_evaluation():
    from bn_core.lab import data, ensemble

    d = data.digits(seed=0)
    model = ensemble.EnsembleMLP(3, d.n_features, (8,), d.n_classes, init_std=0.1)
    hist = ensemble.train_ensemble(model, d, steps=2, eval_every=1, eval_train=False)
    sub = ics.select_members(hist, [1])
    assert sub.train_acc is None and sub.train_loss is None
    np.testing.assert_array_equal(sub.test_acc, hist.test_acc[[1]])


def test_docstring_examples_of_ics_run():
    import doctest

    result = doctest.testmod(ics, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0

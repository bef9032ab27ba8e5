"""The experiment helpers the chapters rely on: data, models, training loops, plot style."""

from unittest import mock

import numpy as np
import pytest
import torch

from bn_core import lab
from bn_core.lab import ensemble, ics, models, train


@pytest.fixture(scope="module")
def digits():
    return lab.data.digits(seed=0)


@pytest.fixture(scope="module")
def small(digits):
    """A quick subset for training tests."""
    return lab.data.Dataset(
        "digits-small", digits.x_train[:240], digits.y_train[:240], digits.x_test, digits.y_test
    )


def test_digits_are_read_exactly_as_scikit_learn_reads_them():
    """lab.data reads the digits file itself (importing sklearn costs seconds): same arrays."""
    from sklearn.datasets import load_digits

    x, y = lab.data._load_digits()
    x_ref, y_ref = load_digits(return_X_y=True)
    assert x.dtype == x_ref.dtype and y.dtype == y_ref.dtype
    np.testing.assert_array_equal(x, x_ref)
    np.testing.assert_array_equal(y, y_ref)


def test_digits_split_is_disjoint_complete_and_seeded(digits):
    assert digits.x_train.shape == (1300, 64) and digits.x_test.shape == (497, 64)
    assert digits.x_train.dtype == np.float32 and digits.y_train.dtype == np.int64
    assert digits.n_classes == 10
    assert 0.0 <= digits.x_train.min() and digits.x_train.max() <= 1.0
    rows = {r.tobytes() for r in digits.x_train} | {r.tobytes() for r in digits.x_test}
    assert len(rows) > 1700  # the two parts together are (nearly all distinct) digits
    again, other = lab.data.digits(seed=0), lab.data.digits(seed=1)
    np.testing.assert_array_equal(again.x_train, digits.x_train)
    assert not np.array_equal(other.x_train, digits.x_train)


def test_mnist1d_shapes_and_subset():
    d = lab.data.mnist1d(n_train=500, seed=3)
    assert d.x_train.shape == (500, 40) and d.x_test.shape == (1000, 40)
    assert d.n_classes == 10 and d.x_train.dtype == np.float32
    with pytest.raises(ValueError, match="n_train"):
        lab.data.mnist1d(n_train=0)


def test_mlp_places_norm_before_activation_and_drops_redundant_bias():
    torch.manual_seed(0)
    net = models.MLP(64, hidden=(20, 20), norm="batch")
    assert all(layer.bias is None for layer in net.linears)
    assert net.head.bias is not None
    net.record = True
    out = net(torch.randn(32, 64))
    assert out.shape == (32, 10)
    u = net.preactivations[0]  # after BN, training mode: standardized per unit
    torch.testing.assert_close(u.mean(0), torch.zeros(20), atol=1e-5, rtol=0)
    torch.testing.assert_close(u.var(0, unbiased=False), torch.ones(20), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="norm"):
        models.MLP(4, norm="batchnorm")


def test_mlp_small_gaussian_init():
    torch.manual_seed(0)
    net = models.MLP(64, hidden=(100,), init_std=0.01)
    assert abs(net.linears[0].weight.std().item() - 0.01) < 0.001
    assert torch.count_nonzero(net.linears[0].bias) == 0


def test_training_is_repeatable_and_learns(small):
    def run():
        torch.manual_seed(0)
        return train.train(
            models.MLP(64, hidden=(32,), norm="batch"), small, steps=60, lr=0.5, eval_every=20
        )

    a, b = run(), run()
    np.testing.assert_array_equal(a.test_acc, b.test_acc)
    assert a.steps.tolist() == [0, 20, 40, 60]
    assert a.test_acc[-1] > 0.6 > a.test_acc[0]
    assert train.steps_to_reach(a, 0.6) in (20.0, 40.0, 60.0)
    assert np.isnan(train.steps_to_reach(a, 1.01))


def test_training_marks_divergence(small):
    torch.manual_seed(0)
    h = train.train(
        models.MLP(64, hidden=(32,), activation="relu", init_std=3.0),
        small,
        steps=40,
        lr=1e30,
        eval_every=10,
    )
    assert h.diverged and np.isnan(h.test_acc[-1])


@pytest.mark.parametrize("norm", [None, "batch", "layer", "group"])
def test_ensemble_member_equals_the_same_network_alone(norm, small):
    """Member s of an ensemble computes exactly what an MLP with its weights computes."""
    ens = ensemble.EnsembleMLP(3, 64, hidden=(16, 8), norm=norm, seeds=[5, 6, 7])
    torch_norm = {None: None, "batch": "batch", "layer": "layer", "group": "group"}[norm]
    x = torch.from_numpy(small.x_train[:50])
    out = ens(x)  # one training-mode pass, so running statistics see one batch, as for `net`
    for s in range(3):
        net = models.MLP(64, hidden=(16, 8), norm=torch_norm)
        with torch.no_grad():
            for i, layer in enumerate(net.linears):
                layer.weight.copy_(ens.weights[i][s].T)
                if layer.bias is not None:
                    layer.bias.copy_(ens.biases[i][s, 0])
            net.head.weight.copy_(ens.weights[-1][s].T)
            net.head.bias.copy_(ens.biases[-1][s, 0])
        torch.testing.assert_close(out[s], net(x), atol=1e-5, rtol=1e-5)
    if norm == "batch":  # running statistics, then eval mode, agree too
        ens.eval()
        net.eval()
        torch.testing.assert_close(ens(x)[2], net(x), atol=1e-5, rtol=1e-5)


def test_ensemble_training_equals_training_alone(small):
    """Training member s in the ensemble = training it alone with the same seed and SGD."""
    steps, lr = 30, 0.3
    ens = ensemble.EnsembleMLP(2, 64, hidden=(16,), norm="batch", seeds=[0, 1])
    single = ensemble.EnsembleMLP(1, 64, hidden=(16,), norm="batch", seeds=[1])
    h2 = ensemble.train_ensemble(
        ens, small, steps=steps, lr=[0.05, lr], seeds=[0, 1], eval_every=10
    )
    h1 = ensemble.train_ensemble(single, small, steps=steps, lr=lr, seeds=[1], eval_every=10)
    torch.testing.assert_close(ens.weights[0][1], single.weights[0][0], atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(h2.test_loss[1], h1.test_loss[0], rtol=1e-4)
    assert h2.test_acc.shape == (2, 4) and not h2.diverged.any()


def test_ensemble_eval_train_false_skips_only_the_training_set(small):
    """eval_train=False records no training-set metrics and changes nothing else."""
    runs = {}
    for eval_train in (True, False):
        ens = ensemble.EnsembleMLP(2, 64, hidden=(16,), norm="batch", seeds=[0, 1])
        runs[eval_train] = ensemble.train_ensemble(
            ens, small, steps=20, lr=0.3, eval_every=10, eval_train=eval_train
        )
    full, lean = runs[True], runs[False]
    assert lean.train_acc is None and lean.train_loss is None
    assert full.train_acc.shape == (2, 3) and np.isfinite(full.train_acc).all()
    np.testing.assert_array_equal(lean.steps, full.steps)
    np.testing.assert_allclose(lean.test_loss, full.test_loss, rtol=1e-6)
    np.testing.assert_allclose(lean.test_acc, full.test_acc)


def test_ensemble_eval_target_skips_only_evaluations_after_every_member_reached_it(small):
    """eval_target: same training, same steps to the target and final values, fewer evaluations."""
    runs, probed = {}, {}
    for target in (None, 0.5):
        # members 0 and 1 learn fast; member 2 (tiny weights, tiny lr) never reaches 50%
        ens = ensemble.EnsembleMLP(3, 64, hidden=(16,), seeds=[0, 1, 2], init_std=[1, 1, 1e-3])
        probed[target] = []

        def probe(model, step, seen=probed[target]):
            seen.append(step)

        kwargs = dict(steps=60, lr=[0.5, 0.5, 0.01], eval_every=5, eval_train=False)
        runs[target] = ensemble.train_ensemble(ens, small, **kwargs, eval_target=target)
        runs[target, "pair"] = ensemble.train_ensemble(
            ensemble.EnsembleMLP(2, 64, hidden=(16,), seeds=[0, 1], init_std=1.0),
            small,
            **kwargs | dict(lr=0.5),
            on_eval=probe,
            eval_target=target,
        )
    full, lean = runs[None], runs[0.5]
    assert not (full.test_acc[2] >= 0.5).any()  # while one member has not got there ...
    np.testing.assert_array_equal(lean.steps, full.steps)  # ... nothing is skipped
    np.testing.assert_array_equal(lean.test_acc, full.test_acc)
    full, lean = runs[None, "pair"], runs[0.5, "pair"]
    last_first = ics.first_step_reaching(full.steps, full.test_acc, 0.5).max()
    assert 0 < last_first < 55  # the test needs members that get there early
    np.testing.assert_array_equal(lean.steps, [*full.steps[full.steps <= last_first], 60])
    keep = np.isin(full.steps, lean.steps)
    np.testing.assert_array_equal(lean.test_acc, full.test_acc[:, keep])
    np.testing.assert_array_equal(lean.test_loss, full.test_loss[:, keep])
    np.testing.assert_array_equal(
        ics.first_step_reaching(lean.steps, lean.test_acc, 0.5),
        ics.first_step_reaching(full.steps, full.test_acc, 0.5),
    )
    # on_eval follows the evaluations
    assert probed[None] == full.steps.tolist() and probed[0.5] == lean.steps.tolist()


def test_fused_bn_equals_the_default_path(small):
    """fused_bn=True: same outputs, gradients and running estimates, up to float rounding."""
    x = torch.from_numpy(small.x_train[:30])
    nets = [
        ensemble.EnsembleMLP(3, 64, hidden=(16, 8), norm="batch", seeds=[0, 1, 2], fused_bn=f)
        for f in (False, True)
    ]
    outs, calls = [], []
    for net in nets:
        with torch.no_grad():
            net.gammas[0].mul_(torch.linspace(0.5, 2.0, 16))  # gamma and beta matter too
            net.betas[1].add_(0.3)
        with mock.patch.object(ensemble.F, "batch_norm", wraps=ensemble.F.batch_norm) as spy:
            out = net(x)
        calls.append(spy.call_count)
        out.square().sum().backward()
        outs.append(out)
    assert calls == [0, 2]  # the fused kernel is used, once per BN layer, only when asked
    torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=1e-5)
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=1e-4)
    for a, b in zip(nets[0].buffers(), nets[1].buffers(), strict=True):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-5)
    assert not torch.equal(nets[1].running_var0, torch.ones_like(nets[1].running_var0))


def test_ensemble_isolates_a_diverging_member(small):
    ens = ensemble.EnsembleMLP(2, 64, hidden=(16,), activation="relu", init_std=[0.1, 5.0])
    h = ensemble.train_ensemble(ens, small, steps=30, lr=[0.1, 1e30], eval_every=10)
    assert h.diverged.tolist() == [False, True]
    assert np.isfinite(h.test_acc[0]).all() and np.isnan(h.test_acc[1, -1])


def test_band_plots_mean_and_checks_shapes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lab.setup()
    fig, ax = plt.subplots()
    ys = np.array([[0.0, 1.0, 2.0], [2.0, 3.0, 4.0]])
    line = lab.style.band(ax, [0, 1, 2], ys, label="BN")
    np.testing.assert_allclose(line.get_ydata(), [1.0, 2.0, 3.0])
    assert line.get_color() == lab.style.COLORS["BN"]
    with pytest.raises(ValueError, match="points per seed"):
        lab.style.band(ax, [0, 1], ys)
    assert matplotlib.rcParams["figure.facecolor"] == "white"
    plt.close(fig)


@pytest.mark.parametrize("init, gain", [("he", 2.0), ("lecun", 1.0)])
def test_fan_in_init_scales_with_fan_in(init, gain):
    """The fan-in initializations: Var(w) = gain / fan_in in every layer, biases zero."""
    net = models.MLP(400, hidden=(300, 200), out_features=10, init_std=init)
    ens = ensemble.EnsembleMLP(3, 400, hidden=(300, 200), out_features=10, init_std=init)
    for layer in net.layers:
        assert layer.weight.std().item() == pytest.approx(
            (gain / layer.in_features) ** 0.5, rel=0.05
        )
        if layer.bias is not None:
            assert not layer.bias.any()
    for w in ens.linear_weights():
        assert w.std().item() == pytest.approx((gain / w.shape[1]) ** 0.5, rel=0.05)
    with pytest.raises(ValueError, match="'he' or 'lecun'"):
        models.MLP(4, hidden=(3,), init_std="xavier")
    with pytest.raises(ValueError, match="'he' or 'lecun'"):
        ensemble.EnsembleMLP(2, 4, hidden=(3,), init_std="xavier")

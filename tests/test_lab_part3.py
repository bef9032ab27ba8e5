"""bn_core.lab.convnets and bn_core.lab.finetune: the helpers of Part III."""

import doctest

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from bn_core.lab import convnets, finetune  # noqa: E402
from bn_core.lab.data import Dataset  # noqa: E402

nn = torch.nn


def _toy_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 64), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    return Dataset("toy", x, y, x[:16], y[:16])


def test_docstring_examples():
    result = doctest.testmod(convnets)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("order", ["pre", "post"])
def test_cnn_layout_and_order(order):
    model = convnets.DigitsCNN(norm="batch", order=order)
    kinds = [type(m).__name__ for m in model.features]
    stage = (
        ["Conv2d", "BatchNorm2d", "ReLU"] if order == "pre" else ["Conv2d", "ReLU", "BatchNorm2d"]
    )
    assert kinds == stage * 3
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    # a conv bias is redundant only right before BN
    assert all((c.bias is None) == (order == "pre") for c in convs)
    assert convs[1].stride == (2, 2)
    out = model(torch.zeros(5, 64))
    assert out.shape == (5, 10)
    assert len(convnets.bn_layers(model)) == 3


def test_cnn_without_bn_he_init():
    torch.manual_seed(0)
    model = convnets.DigitsCNN(channels=(64, 64, 64))
    assert not convnets.bn_layers(model)
    w = model.features[2].weight  # fan_in = 64 * 9
    assert abs(w.var().item() * 64 * 9 / 2 - 1) < 0.1
    assert all(
        m.bias is None or not m.bias.any() for m in model.features if isinstance(m, nn.Conv2d)
    )


def test_cnn_bad_arguments():
    with pytest.raises(ValueError, match="order"):
        convnets.DigitsCNN(norm="batch", order="middle")
    with pytest.raises(ValueError, match="norm"):
        convnets.DigitsCNN(norm="layer")


def test_effective_sample_size_between_n_and_nhw():
    rng = np.random.default_rng(1)
    n = 300
    smooth = rng.normal(size=(n, 1, 1)) + 0.5 * rng.normal(size=(n, 4, 4))
    ess = convnets.effective_sample_size(smooth)
    assert n < ess < n * 16
    # the formula: var(x) / (var(image means) / n)
    expected = smooth.var() / (smooth.mean((1, 2)).var(ddof=1) / n)
    assert ess == pytest.approx(expected)
    iid = rng.normal(size=(2000, 4, 4))
    assert 0.8 < convnets.effective_sample_size(iid, "var") / (2000 * 16) < 1.2
    with pytest.raises(ValueError, match="statistic"):
        convnets.effective_sample_size(iid, "median")
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        convnets.effective_sample_size(np.zeros((3, 4)))


def test_shifted_domain():
    d = _toy_data()
    s = finetune.shifted(d, contrast=0.5, brightness=0.4)
    np.testing.assert_allclose(s.x_train, 0.5 * d.x_train + 0.4, rtol=1e-6)
    assert s.x_train.dtype == np.float32 and s.y_test is d.y_test


def _bn_model(seed=0):
    torch.manual_seed(seed)
    return convnets.DigitsCNN(norm="batch")


@pytest.mark.parametrize(
    "rg, mode, params_move, stats_move",
    [
        (True, "train", True, True),
        (True, "eval", True, False),
        (False, "train", False, True),
        (False, "eval", False, False),
    ],
)
def test_two_by_two(rg, mode, params_move, stats_move):
    d = _toy_data()
    model = _bn_model()
    before = finetune.bn_state(model)
    finetune.fine_tune_steps(
        model,
        d.x_train,
        d.y_train,
        steps=3,
        batch_size=8,
        lr=0.1,
        bn_mode=mode,
        bn_requires_grad=rg,
    )
    ch = finetune.bn_change(before, finetune.bn_state(model))
    assert (max(ch["gamma"], ch["beta"]) > 0) == params_move
    assert (max(ch["running_mean"], ch["running_var"]) > 0) == stats_move
    assert all(m.training == (mode == "train") for m in convnets.bn_layers(model))


def test_sorted_batches_follow_labels():
    d = _toy_data()
    seen = []
    model = _bn_model()
    handle = model.register_forward_pre_hook(lambda m, a: seen.append(a[0].clone()))
    finetune.fine_tune_steps(
        model, d.x_train, d.y_train, steps=2, batch_size=4, lr=0.0, sorted_by_label=True
    )
    handle.remove()
    order = np.argsort(d.y_train, kind="stable")
    np.testing.assert_array_equal(seen[0].numpy(), d.x_train[order[:4]])
    np.testing.assert_array_equal(seen[1].numpy(), d.x_train[order[4:8]])


def test_recalibrate_gives_population_statistics():
    d = _toy_data(n=90)
    model = _bn_model().eval()
    with torch.no_grad():
        model.features[1].running_mean.fill_(5.0)
    finetune.recalibrate(model, finetune.batches_of(d.x_train, 30))
    bn = model.features[1]
    with torch.no_grad():
        z = model.features[0](torch.from_numpy(d.x_train).view(-1, 1, 8, 8))
    # cumulative average of 3 equal-sized batch means = the mean over all 90 images
    torch.testing.assert_close(bn.running_mean, z.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert bn.momentum == 0.1 and not model.training


def test_recalibrate_needs_a_batch():
    with pytest.raises(ValueError, match="at least one batch"):
        finetune.recalibrate(_bn_model(), [])


def test_nan_check_and_guard():
    model = _bn_model().train()
    x = torch.rand(8, 64)
    x[2, 5] = float("nan")
    handles = finetune.guard_batchnorm(model)
    with pytest.raises(FloatingPointError, match="non-finite input"):
        model(x)
    assert finetune.nonfinite_bn_buffers(model) == []
    for h in handles:
        h.remove()
    with torch.no_grad():
        model(x)
    bad = finetune.nonfinite_bn_buffers(model)
    assert "features.1.running_mean" in bad and "features.7.running_var" in bad
    assert finetune.bn_change(finetune.bn_state(_bn_model()), finetune.bn_state(model))[
        "running_mean"
    ] == float("inf")


def test_accuracy_batching_matters_only_without_running_stats():
    d = _toy_data()
    model = _bn_model()
    finetune.fine_tune_steps(model, d.x_train, d.y_train, steps=5, batch_size=16, lr=0.1)
    a = finetune.accuracy(model, d.x_test, d.y_test)
    assert a == finetune.accuracy(model, d.x_test, d.y_test, batch_size=3)
    assert model.training  # mode restored
    untracked = convnets.DigitsCNN(norm="batch", track_running_stats=False).eval()
    xt = torch.from_numpy(d.x_test)
    with torch.no_grad():
        assert not torch.allclose(untracked(xt)[:2], untracked(xt[:2]))

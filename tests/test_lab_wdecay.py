"""bn_core.lab.wdecay: weight decay, update ratios and dropout before BN (chapter 13)."""

import copy
import doctest

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from bn_core.lab import ensemble, wdecay  # noqa: E402
from bn_core.lab.data import Dataset  # noqa: E402


def _toy_data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 12), dtype=np.float32)
    y = rng.integers(0, 3, n).astype(np.int64)
    return Dataset("toy", x, y, x[:32], y[:32])


def _model(n=3, norm="batch", **kw):
    return ensemble.EnsembleMLP(n, 12, (8, 8), 3, activation="relu", norm=norm, **kw)


def test_docstring_examples():
    result = doctest.testmod(wdecay)
    assert result.attempted > 0 and result.failed == 0


def test_groups_cover_every_parameter_once():
    for norm in ("batch", None):
        model = _model(norm=norm)
        groups = wdecay.decay_groups(model)
        ids = [id(p) for ps in groups.values() for p in ps]
        assert len(ids) == len(set(ids))
        assert set(ids) == {id(p) for p in model.parameters()}
        assert (len(groups["norm"]) > 0) == (norm is not None)


def test_zero_decay_is_plain_sgd_and_records_norms():
    data = _toy_data()
    a, b = _model(), _model()
    ha = ensemble.train_ensemble(a, data, steps=5, batch_size=16, lr=0.1, eval_every=5)
    hook = wdecay.WeightDecay(3, 0.0)
    hb = ensemble.train_ensemble(
        b, data, steps=5, batch_size=16, lr=0.1, eval_every=5, on_step=hook
    )
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    np.testing.assert_array_equal(ha.test_acc, hb.test_acc)
    assert hb.step_records["w_norm"].shape == (3, 5, 3)
    # the last recorded norm is that of the weights before the last update
    assert hb.step_records["w_norm"][0, 0, 0] == pytest.approx(
        _model().weights[0][0].norm().item(), rel=1e-6
    )


@pytest.mark.parametrize(
    "groups", [("weights", "head"), ("weights", "head", "norm", "bias"), ("norm",)]
)
def test_decay_matches_torch_sgd_weight_decay(groups):
    """One step equals torch.optim.SGD(weight_decay=wd) on the decayed groups only."""
    data = _toy_data()
    wd = np.array([0.0, 0.05, 0.3], dtype=np.float32)
    model = _model()
    with torch.no_grad():  # non-trivial gamma/beta, so that decaying them is visible
        for g in model.gammas:
            g.add_(0.5)
        for b in model.betas:
            b.add_(0.2)
    ref = copy.deepcopy(model)
    ensemble.train_ensemble(
        model,
        data,
        steps=1,
        batch_size=16,
        lr=0.1,
        eval_every=1,
        on_step=wdecay.WeightDecay(3, dict.fromkeys(groups, wd)),
    )
    # the same step member by member, with torch's optimizer
    groups_ref = wdecay.decay_groups(ref)
    decayed = {id(p) for g in groups for p in groups_ref[g]}
    names = {id(p): n for n, p in ref.named_parameters()}
    decayed_names = {names[i] for i in decayed}
    for s in range(3):  # member s draws its batch from its own seed, s
        idx = torch.from_numpy(np.random.default_rng(s).permutation(96)[:16])
        net = copy.deepcopy(ref)
        logits = net(torch.from_numpy(data.x_train)[idx].unsqueeze(0).expand(3, -1, -1))
        loss = torch.nn.functional.cross_entropy(logits[s], torch.from_numpy(data.y_train)[idx])
        opt = torch.optim.SGD(
            [
                {"params": [p for n, p in net.named_parameters() if n in decayed_names]},
                {"params": [p for n, p in net.named_parameters() if n not in decayed_names]},
            ],
            lr=0.1,
        )
        opt.param_groups[0]["weight_decay"] = float(wd[s])
        loss.backward()
        opt.step()
        for (name, p_ref), p_new in zip(net.named_parameters(), model.parameters(), strict=True):
            torch.testing.assert_close(p_new[s], p_ref[s], rtol=1e-5, atol=1e-6, msg=name)


def test_bn_fed_weights_are_scale_invariant_with_orthogonal_gradient():
    """The premise of the chapter: grad(cW) = grad(W) / c and W . grad = 0 per unit."""
    torch.manual_seed(0)
    model = _model(n=2)
    x = torch.rand(32, 12)
    y = torch.randint(0, 3, (32,))

    def grad_at(scale):
        net = copy.deepcopy(model)
        with torch.no_grad():
            net.weights[0].mul_(scale)
        out = net(x)
        loss = sum(torch.nn.functional.cross_entropy(out[s], y) for s in range(2))
        loss.backward()
        return out.detach(), net.weights[0].grad.clone(), net.weights[0].detach()

    out1, g1, w1 = grad_at(1.0)
    out10, g10, _ = grad_at(10.0)
    torch.testing.assert_close(out1, out10, rtol=1e-4, atol=1e-4)
    # equal up to BN's eps (1e-5 next to variances of about 0.03 here) and float32 rounding
    torch.testing.assert_close(g10 * 10, g1, rtol=1e-2, atol=1e-3 * g1.abs().max().item())
    # cosine between each unit's weight vector and its gradient (columns of (S, in, out))
    cos = (w1 * g1).sum(dim=1) / (w1.norm(dim=1) * g1.norm(dim=1))
    assert cos.abs().max() < 1e-3
    # without BN the same weights have a radial gradient component: the check can fail
    net = _model(n=2, norm=None)
    with torch.no_grad():
        net.weights[0].copy_(w1)
    out = net(x)
    sum(torch.nn.functional.cross_entropy(out[s], y) for s in range(2)).backward()
    g = net.weights[0].grad
    cos = (w1 * g).sum(dim=1) / (w1.norm(dim=1) * g.norm(dim=1))
    assert torch.nan_to_num(cos).abs().max() > 0.05  # nan: a dead ReLU unit, zero gradient


def test_equilibrium_ratio_is_where_the_norm_stops_moving():
    """Simulate W' = (1 - lr wd) W - lr g with g orthogonal to W and |g| = c / |W|."""
    rng = np.random.default_rng(0)
    lr, wd = 0.2, 0.01
    w = rng.normal(size=50)
    ratios = []
    for _ in range(4000):
        g = rng.normal(size=50)
        g -= (g @ w) / (w @ w) * w  # scale invariance: the gradient has no radial part
        g *= 3.0 / np.linalg.norm(w) / np.linalg.norm(g)
        ratios.append(lr * np.linalg.norm(g) / np.linalg.norm(w))
        w = (1 - lr * wd) * w - lr * g
    rms = np.sqrt(np.mean(np.square(ratios[-1000:])))
    assert rms == pytest.approx(wdecay.equilibrium_ratio(lr, wd), rel=1e-3)
    assert wdecay.equilibrium_ratio(0.1, 0.0) == 0.0


def test_update_ratio_shapes_and_values():
    wn = np.full((2, 4, 3), 2.0)
    gn = np.full((2, 4, 3), 0.5)
    r = wdecay.update_ratio(wn, gn, np.array([0.1, 0.4]))
    assert r.shape == (2, 4, 3)
    np.testing.assert_allclose(r[:, 0, 0], [0.025, 0.1])


def test_dropout_hook_rates_scaling_and_relu_commutation():
    hook = wdecay.DropoutHook([0.0, 0.25, 0.5], layers=[1], seed=0)
    u = torch.randn(3, 4000, 8)
    assert hook(0, u) is u  # other layers untouched
    out = hook(1, u)
    torch.testing.assert_close(out[0], u[0])
    for s, p in [(1, 0.25), (2, 0.5)]:
        zero = (out[s] == 0).float().mean().item()
        assert zero == pytest.approx(p, abs=0.02)
        kept = out[s] != 0
        torch.testing.assert_close(out[s][kept], u[s][kept] / (1 - p))
    # applied before ReLU, it is dropout after ReLU with the same mask
    mask = out / u
    torch.testing.assert_close(torch.relu(out), mask * torch.relu(u))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        wdecay.DropoutHook(1.0, layers=[0])


def test_dropout_before_bn_shifts_variance_and_recalibration_removes_it():
    data = _toy_data(n=192)
    torch.manual_seed(0)
    model = _model(n=2, seeds=[0, 1])
    model.post_norm = wdecay.DropoutHook([0.0, 0.5], layers=[0], seed=1)
    ensemble.train_ensemble(model, data, steps=60, batch_size=32, lr=0.05, eval_every=60)
    shift = wdecay.variance_shift(model, data.x_train)
    assert shift.shape == (2, 2)
    # p = 0: the running variance estimates the inference variance (moving-average error only)
    assert abs(shift[0, 1] - 1) < 0.2
    # p = 0.5 before layer 1's BN: the recorded variance is well above the inference variance
    assert shift[1, 1] > 1.3
    # and close to what the second moments of the dropped activations predict
    pred = wdecay.predicted_variance_shift(model, data.x_train, [0.0, 0.5], layer=1)
    assert pred[0] == 1.0
    assert pred[1] == pytest.approx(shift[1, 1], rel=0.15)
    hook = model.post_norm
    wdecay.recalibrate(model, data.x_train, batch_size=data.x_train.shape[0])
    assert model.post_norm is hook and model.momentum == 0.1 and model.training
    # one batch of everything: the first layer's running_var is exactly its inference variance;
    # the second differs by the biased (batch) vs unbiased (running) variance of the first,
    # a factor n / (n - 1) = 192 / 191
    shift = wdecay.variance_shift(model, data.x_train)
    np.testing.assert_allclose(shift[:, 0], 1.0, rtol=1e-4)
    np.testing.assert_allclose(shift[:, 1], 1.0, rtol=1e-2)


def test_recalibrate_averages_batch_statistics():
    data = _toy_data()
    model = _model(n=1)
    model.eval()
    wdecay.recalibrate(model, data.x_train, batch_size=32)
    assert not model.training
    z = torch.from_numpy(data.x_train) @ model.weights[0][0]
    means = torch.stack([z[i : i + 32].mean(0) for i in range(0, 96, 32)]).mean(0)
    torch.testing.assert_close(model.running_mean0[0, 0], means, rtol=1e-5, atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown parameter groups"):
        wdecay.WeightDecay(2, 0.1, groups=("weights", "gamma"))
    with pytest.raises(ValueError, match="unknown parameter groups"):
        wdecay.WeightDecay(2, {"weights": 0.1, "gammas": 0.1})
    with pytest.raises(ValueError, match="one per member"):
        wdecay.WeightDecay(2, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=">= 0"):
        wdecay.WeightDecay(2, -0.1)
    with pytest.raises(ValueError, match="norm='batch'"):
        wdecay.variance_shift(_model(norm="layer"), np.zeros((4, 12), np.float32))
    with pytest.raises(ValueError, match="layer must be between 1"):
        wdecay.predicted_variance_shift(_model(), np.zeros((4, 12), np.float32), 0.5, layer=0)
    with pytest.raises(ValueError, match="fewer than one batch"):
        wdecay.recalibrate(_model(), np.zeros((4, 12), np.float32), batch_size=8)

"""bn_core.lab.resnets: residual MLPs with and without BN, SkipInit, zero-init gamma."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from bn_core.lab import ensemble, resnets  # noqa: E402
from bn_core.lab.data import Dataset  # noqa: E402

F = torch.nn.functional
torch.set_num_threads(1)  # tiny tensors: one thread avoids wake-up latency on a loaded machine


def _x(n=48, d=12, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32))


def _reference(model, s, x, stats):
    """Member ``s`` of ``model`` written out with torch's own layers, one network at a time.

    ``stats`` maps a BN index to ``[running_mean, running_var]`` of this member (updated in
    place in training mode, as nn.BatchNorm1d does).
    """
    width = model.width
    n_plain = len(model.weights) - len(model.biases)

    def linear(k, h):
        bias = None if k < n_plain else model.biases[k - n_plain][s, 0]
        return F.linear(h, model.weights[k][s].T, bias)

    def bn(i, z):
        if model.norm is None:
            return z
        rm, rv = stats[i]
        return F.batch_norm(
            z,
            rm,
            rv,
            model.gammas[i][s, 0],
            model.betas[i][s, 0],
            training=model.training,
            momentum=model.momentum,
            eps=model.eps,
        )

    assert x.shape[1] == model.weights[0].shape[1] and width == model.weights[1].shape[1]
    h = linear(0, x)
    if model.block == "post":
        h = F.relu(bn(0, h))
    for i in range(model.depth):
        if model.block == "pre":
            f = linear(
                2 + 2 * i, F.relu(bn(2 + 2 * i, linear(1 + 2 * i, F.relu(bn(1 + 2 * i, h)))))
            )
        else:
            f = bn(2 + 2 * i, linear(2 + 2 * i, F.relu(bn(1 + 2 * i, linear(1 + 2 * i, h)))))
        if model.skipinit:
            f = model.alphas[i][s, 0, 0] * f
        h = h + f if model.block == "pre" else F.relu(h + f)
    if model.block == "pre":
        h = F.relu(bn(0, h))
    return linear(len(model.weights) - 1, h)


def _member_stats(model, s):
    if model.norm is None:
        return {}
    w = model.width
    return {
        i: [
            getattr(model, f"running_mean{i}")[s * w : (s + 1) * w].clone(),
            getattr(model, f"running_var{i}")[s * w : (s + 1) * w].clone(),
        ]
        for i in range(2 * model.depth + 1)
    }


CONFIGS = [
    {"norm": None, "block": "pre"},
    {"norm": None, "block": "post"},
    {"norm": "batch", "block": "pre"},
    {"norm": "batch", "block": "post"},
    {"norm": None, "block": "pre", "skipinit": True},
]


@pytest.mark.parametrize("kw", CONFIGS)
def test_each_member_is_the_network_written_with_torch_layers(kw):
    model = resnets.EnsembleResMLP(3, 12, width=8, depth=3, out_features=5, seeds=[4, 5, 6], **kw)
    with torch.no_grad():  # move every parameter off its initial value so all of them matter
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = _x()
    refs = [_member_stats(model, s) for s in range(3)]
    model.train()
    out = model(x)
    for s in range(3):
        torch.testing.assert_close(out[s], _reference(model, s, x, refs[s]), rtol=1e-5, atol=1e-5)
        # the running statistics moved exactly as nn.BatchNorm1d's would
        for i, (rm, rv) in _member_stats(model, s).items():
            torch.testing.assert_close(rm, refs[s][i][0])
            torch.testing.assert_close(rv, refs[s][i][1])
    model.eval()
    out = model(x)
    for s in range(3):
        stats = _member_stats(model, s)
        torch.testing.assert_close(out[s], _reference(model, s, x, stats), rtol=1e-5, atol=1e-5)


def test_members_are_independent_and_seeded():
    a = resnets.EnsembleResMLP(2, 12, width=8, depth=2, norm="batch", seeds=[0, 1])
    b = resnets.EnsembleResMLP(1, 12, width=8, depth=2, norm="batch", seeds=[1])
    torch.testing.assert_close(a(_x())[1], b(_x())[0])
    with torch.no_grad():
        a.weights[1][0].mul_(3.0)  # change member 0 only
    torch.testing.assert_close(a(_x())[1], b(_x())[0])


def test_he_init_and_biases():
    model = resnets.EnsembleResMLP(4, 64, width=256, depth=1, norm=None)
    w = model.weights[1]
    assert abs(w.var().item() * 256 / 2 - 1) < 0.02
    assert len(model.biases) == len(model.weights) and not any(b.any() for b in model.biases)
    bn = resnets.EnsembleResMLP(4, 64, width=16, depth=3, norm="batch")
    assert len(bn.biases) == 1  # only the head: a bias before BN is cancelled by it
    assert len(bn.gammas) == 2 * 3 + 1


def test_zero_init_gamma_starts_each_block_as_relu_and_gamma_learns():
    model = resnets.EnsembleResMLP(2, 12, width=8, depth=3, norm="batch", block="post",
                                   zero_init_gamma=True)  # fmt: skip
    x = _x()
    _, branch = resnets.stream_moments(model, x)
    assert np.all(branch == 0)
    assert all(model.gammas[2 + 2 * i].abs().sum() == 0 for i in range(3))
    assert all(model.gammas[1 + 2 * i].eq(1).all() for i in range(3))
    model(x).square().mean().backward()
    # Goyal et al.'s zero gamma is not stuck: the branch's normalized output reaches it
    assert all(model.gammas[2 + 2 * i].grad.abs().sum() > 0 for i in range(3))


def test_zero_init_gamma_rejected_where_it_would_be_stuck():
    with pytest.raises(ValueError, match="ReLU"):
        resnets.EnsembleResMLP(1, 12, norm="batch", block="pre", zero_init_gamma=True)
    with pytest.raises(ValueError, match="norm='batch'"):
        resnets.EnsembleResMLP(1, 12, block="post", zero_init_gamma=True)


def test_skipinit_starts_as_identity_and_alpha_learns():
    model = resnets.EnsembleResMLP(2, 12, width=8, depth=4, skipinit=True)
    x = _x()
    stream, branch = resnets.stream_moments(model, x)
    assert np.all(branch == 0)
    np.testing.assert_allclose(stream, stream[:, :1].repeat(5, 1))
    model(x).square().mean().backward()
    assert all(a.grad.abs().min() > 0 for a in model.alphas)
    # the branch weights get no gradient while alpha is 0, which is why alpha must learn first
    assert model.weights[1].grad.abs().sum() == 0


def test_stream_grows_linearly_with_bn_and_doubles_without():
    x = _x(n=256, d=64, seed=1)
    bn = resnets.EnsembleResMLP(4, 64, width=256, depth=6, norm="batch")
    stream, branch = resnets.stream_moments(bn, x)
    # with BN in the branch each block adds about 1 (unit-variance BN output, He init)
    assert abs(np.diff(stream, axis=1).mean() - 1) < 0.1 and abs(branch.mean() - 1) < 0.1
    assert np.all(np.abs(branch - 1) < 0.4)
    plain = resnets.EnsembleResMLP(4, 64, width=256, depth=6, norm=None)
    stream, _ = resnets.stream_moments(plain, x)
    # without it a variance-preserving branch doubles the stream at every block
    growth = stream[:, 1:] / stream[:, :-1]
    assert abs(np.exp(np.log(growth).mean()) - 2) < 0.2 and np.all(np.abs(growth - 2) < 0.8)


def test_stream_moments_leaves_running_statistics_alone():
    model = resnets.EnsembleResMLP(2, 12, width=8, depth=2, norm="batch")
    before = {k: v.clone() for k, v in model.named_buffers()}
    resnets.stream_moments(model, _x())
    for k, v in model.named_buffers():
        assert torch.equal(v, before[k])
    assert model.training and model.probe is None


def test_trains_with_train_ensemble():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 12)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    data = Dataset("toy", x, y, x[:32], y[:32])
    model = resnets.EnsembleResMLP(2, 12, width=16, depth=3, out_features=2, norm="batch")
    h = ensemble.train_ensemble(model, data, steps=40, batch_size=32, lr=[0.1, 0.3], eval_every=40)
    assert np.all(h.train_loss[:, -1] < 0.5 * h.train_loss[:, 0])


def test_bad_arguments():
    with pytest.raises(ValueError, match="norm"):
        resnets.EnsembleResMLP(1, 12, norm="layer")
    with pytest.raises(ValueError, match="block"):
        resnets.EnsembleResMLP(1, 12, block="middle")
    with pytest.raises(ValueError, match="init"):
        resnets.EnsembleResMLP(1, 12, init="xavier")
    with pytest.raises(ValueError, match="depth"):
        resnets.EnsembleResMLP(1, 12, depth=0)
    with pytest.raises(ValueError, match="seeds"):
        resnets.EnsembleResMLP(2, 12, seeds=[0])

"""bn_core.torch_bridge: drop-in torch modules whose arithmetic is bn_core's."""

import subprocess
import sys

import numpy as np
import pytest
from _bncore_helpers import assert_close

torch = pytest.importorskip("torch")
from bn_core import torch_bridge as tb  # noqa: E402

nn = torch.nn


def test_importing_bn_core_does_not_import_torch():
    code = "import sys, bn_core; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _mlp(bn_cls):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(10, 16),
        bn_cls(16),
        nn.ReLU(),
        nn.Linear(16, 16),
        bn_cls(16),
        nn.ReLU(),
        nn.Linear(16, 4),
    ).double()


def _convnet(bn_cls):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        bn_cls(4),
        nn.ReLU(),
        nn.Conv2d(4, 3, 1),
        bn_cls(3),
        nn.Flatten(),
        nn.Linear(3 * 6 * 6, 3),
    ).double()


def _train(model, make_batch, steps=25):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, y = make_batch(g)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return loss.item()


def _assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert_close(sa[k].double().numpy(), sb[k].double().numpy(), what=k)


@pytest.mark.parametrize(
    ("build", "batch", "ref_cls", "our_cls"),
    [
        (
            _mlp,
            lambda g: (
                torch.randn(12, 10, generator=g, dtype=torch.float64),
                torch.randint(0, 4, (12,), generator=g),
            ),
            nn.BatchNorm1d,
            tb.BatchNorm1d,
        ),
        (
            _convnet,
            lambda g: (
                torch.randn(5, 2, 6, 6, generator=g, dtype=torch.float64),
                torch.randint(0, 3, (5,), generator=g),
            ),
            nn.BatchNorm2d,
            tb.BatchNorm2d,
        ),
    ],
    ids=["mlp-BatchNorm1d", "convnet-BatchNorm2d"],
)
def test_trains_to_the_same_parameters_as_torch(build, batch, ref_cls, our_cls):
    ref, ours = build(ref_cls), build(our_cls)
    loss_ref, loss_ours = _train(ref, batch), _train(ours, batch)
    assert loss_ours == pytest.approx(loss_ref, rel=1e-10)
    _assert_same_state(ref, ours)
    # and the two agree in evaluation mode
    ref.eval()
    ours.eval()
    x = batch(torch.Generator().manual_seed(2))[0]
    assert_close(ours(x).detach().numpy(), ref(x).detach().numpy())


def test_training_changes_parameters():
    # guards the test above against comparing two untrained models
    ours = _mlp(tb.BatchNorm1d)
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    _train(
        ours,
        lambda g: (
            torch.randn(12, 10, generator=g, dtype=torch.float64),
            torch.randint(0, 4, (12,), generator=g),
        ),
        steps=3,
    )
    assert not torch.equal(before["1.weight"], ours.state_dict()["1.weight"])
    assert not torch.equal(before["1.running_mean"], ours.state_dict()["1.running_mean"])


def test_state_dict_both_ways_and_isinstance():
    ours, ref = tb.BatchNorm2d(3), nn.BatchNorm2d(3)
    assert isinstance(ours, nn.BatchNorm2d)
    ref(torch.randn(4, 3, 2, 2) + 3)
    ours.load_state_dict(ref.state_dict())
    ref.load_state_dict(ours.state_dict())
    assert sorted(ours.state_dict()) == sorted(ref.state_dict())
    assert repr(ours).endswith(repr(ref)[len("BatchNorm2d") :])


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("track", [True, False])
def test_module_options_match_torch(momentum, affine, track):
    kw = dict(momentum=momentum, affine=affine, track_running_stats=track)
    ours, ref = tb.BatchNorm1d(3, **kw).double(), nn.BatchNorm1d(3, **kw).double()
    g = torch.Generator().manual_seed(3)
    for _ in range(21):
        x = torch.randn(6, 3, 4, generator=g, dtype=torch.float64) * 2 + 1
        assert_close(ours(x).detach().numpy(), ref(x).detach().numpy())
    _assert_same_state(ref, ours)
    ours.eval()
    ref.eval()
    assert_close(ours(x).detach().numpy(), ref(x).detach().numpy())


def test_float32_matches_torch():
    ours, ref = tb.BatchNorm1d(5), nn.BatchNorm1d(5)
    x = torch.randn(16, 5, generator=torch.Generator().manual_seed(4), requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    y, y2 = ours(x), ref(x2)
    assert y.dtype == torch.float32
    dy = torch.randn(16, 5, generator=torch.Generator().manual_seed(5))
    y.backward(dy)
    y2.backward(dy)
    assert_close(y.detach().numpy(), y2.detach().numpy(), np.float32)
    assert_close(x.grad.numpy(), x2.grad.numpy(), np.float32)
    assert_close(ours.weight.grad.numpy(), ref.weight.grad.numpy(), np.float32)


def test_autograd_gradcheck():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(5, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    f = lambda x, w, b: tb.batch_norm(x, None, None, w, b, training=True)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, w, b))
    rm, rv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64) * 2
    fe = lambda x, w, b: tb.batch_norm(x, rm, rv, w, b, training=False)  # noqa: E731
    assert torch.autograd.gradcheck(fe, (x, w, b))


def test_errors_come_through():
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        tb.BatchNorm1d(3)(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        tb.BatchNorm1d(3)(torch.randn(1, 3))
    x = torch.randn(4, 3)
    x[0, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        tb.BatchNorm1d(3)(x)
    bn = tb.BatchNorm1d(3)
    bn.check_finite = False  # torch's behaviour: NaN propagates
    assert torch.isnan(bn(x)[:, 1]).all()


def test_inference_under_no_grad():
    ours, ref = tb.BatchNorm2d(3).double(), nn.BatchNorm2d(3).double()
    x = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    ours(x * 2 + 1)
    ref(x * 2 + 1)
    ours.eval()
    ref.eval()
    with torch.no_grad():
        y = ours(x)
    assert not y.requires_grad
    assert_close(y.numpy(), ref(x).detach().numpy())


def test_swap_batchnorm_keeps_the_function():
    ref = _convnet(nn.BatchNorm2d)
    _train(
        ref,
        lambda g: (
            torch.randn(5, 2, 6, 6, generator=g, dtype=torch.float64),
            torch.randint(0, 3, (5,), generator=g),
        ),
        steps=3,
    )
    ref.eval()
    x = torch.randn(3, 2, 6, 6, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    want = ref(x).detach().numpy()
    swapped = tb.swap_batchnorm(ref)
    assert type(swapped[1]) is tb.BatchNorm2d and type(swapped[4]) is tb.BatchNorm2d
    assert not swapped[1].training
    assert_close(swapped(x).detach().numpy(), want)
    assert type(tb.swap_batchnorm(nn.BatchNorm1d(3))) is tb.BatchNorm1d


# -- issue 10: half precision, memory format, BatchNorm3d, eval accuracy --------------------

HALF_ULP = {torch.float16: 2.0**-10, torch.bfloat16: 2.0**-7}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("half_module", [False, True], ids=["float32-module", "half-module"])
def test_half_precision_input_like_torch(dtype, half_module):
    # torch on CPU: statistics in float32, output (and grad_input) in the input's dtype;
    # a module converted with .half()/.bfloat16() keeps its buffers in that dtype
    g = torch.Generator().manual_seed(11)
    x0 = (torch.randn(6, 3, 4, 4, generator=g) * 2 + 1).to(dtype)
    ref, ours = nn.BatchNorm2d(3), tb.BatchNorm2d(3)
    if half_module:
        ref, ours = ref.to(dtype), ours.to(dtype)
    for training in (True, False):
        ref.train(training)
        ours.train(training)
        xr, xo = x0.clone().requires_grad_(True), x0.clone().requires_grad_(True)
        yr, yo = ref(xr), ours(xo)
        assert yo.dtype == yr.dtype == dtype
        tol = 2 * HALF_ULP[dtype]
        assert (yo.float() - yr.float()).abs().max() <= tol * yr.float().abs().max()
        dy = torch.randn(x0.shape, generator=g).to(dtype)
        yr.backward(dy)
        yo.backward(dy)
        assert xo.grad.dtype == dtype
        assert (xo.grad.float() - xr.grad.float()).abs().max() <= (
            4 * tol * xr.grad.float().abs().max()
        )
        assert ours.weight.grad.dtype == ref.weight.grad.dtype
        ref.weight.grad = ours.weight.grad = None
    # buffers: float32 statistics, rounded once to the buffer's dtype (1 ulp of it)
    for name in ("running_mean", "running_var"):
        a, b = getattr(ours, name), getattr(ref, name)
        assert a.dtype == b.dtype == (dtype if half_module else torch.float32)
        ulp = HALF_ULP.get(a.dtype, 2.0**-23)
        assert (a.float() - b.float()).abs().max() <= 2 * ulp * b.float().abs().max(), name


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_swap_batchnorm_on_a_half_precision_model(dtype):
    ref = _convnet(nn.BatchNorm2d).to(dtype)
    g = torch.Generator().manual_seed(12)
    x = torch.randn(5, 2, 6, 6, generator=g).to(dtype)
    ref.train()
    ref(x)  # move the running statistics
    ref.eval()
    want = ref(x).float()
    swapped = tb.swap_batchnorm(ref)
    assert type(swapped[1]) is tb.BatchNorm2d and swapped[1].weight.dtype == dtype
    got = swapped(x)
    assert got.dtype == dtype
    tol = 8 * HALF_ULP[dtype] * want.abs().max()
    assert (got.float() - want).abs().max() <= tol
    swapped.train()
    swapped(x).float().sum().backward()  # and it trains
    assert swapped[1].weight.grad.dtype == dtype


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(
    ("cls", "ref_cls", "shape", "fmt"),
    [
        (tb.BatchNorm2d, nn.BatchNorm2d, (4, 3, 5, 6), torch.channels_last),
        (tb.BatchNorm3d, nn.BatchNorm3d, (2, 3, 3, 4, 5), torch.channels_last_3d),
    ],
)
def test_memory_format_is_kept(cls, ref_cls, shape, fmt, training):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    x = x.contiguous(memory_format=fmt).requires_grad_(True)
    ours, ref = cls(3).double().train(training), ref_cls(3).double().train(training)
    y, want = ours(x), ref(x)
    assert want.is_contiguous(memory_format=fmt)
    assert y.is_contiguous(memory_format=fmt) and not y.is_contiguous()
    assert_close(y.detach().numpy(), want.detach().numpy())
    y.sum().backward()
    assert x.grad.is_contiguous(memory_format=fmt)
    assert tb.BatchNorm2d(3)(torch.randn(2, 3, 4, 4)).is_contiguous()  # and NCHW stays NCHW


def test_batchnorm3d_bridge_trains_like_torch():
    g = torch.Generator().manual_seed(14)
    ours, ref = tb.BatchNorm3d(3).double(), nn.BatchNorm3d(3).double()
    for _ in range(3):
        x = torch.randn(2, 3, 3, 4, 4, generator=g, dtype=torch.float64) * 2 + 1
        assert_close(ours(x).detach().numpy(), ref(x).detach().numpy())
    _assert_same_state(ref, ours)
    with pytest.raises(ValueError, match="expected 5D input"):
        ours(torch.randn(2, 3, 4, 4))
    assert type(tb.swap_batchnorm(nn.BatchNorm3d(3))) is tb.BatchNorm3d


def test_eval_under_no_grad_as_accurate_as_torch_at_large_running_means():
    from _bncore_helpers import check_eval_accurate

    def bridge(x, rm, rv, w, b, training):
        with torch.no_grad():
            return tb.batch_norm(
                torch.from_numpy(x),
                *(torch.from_numpy(a) for a in (rm, rv, w, b)),
                training=training,
            ).numpy()

    check_eval_accurate(bridge)


def test_empty_batch_through_the_bridge_like_torch():
    ours, ref = tb.BatchNorm1d(3), nn.BatchNorm1d(3)
    x = torch.empty(0, 3, requires_grad=True)
    y, want = ours(x), ref(x)
    assert y.shape == want.shape == (0, 3)
    _assert_same_state(ref, ours)
    y.sum().backward()
    assert x.grad.shape == (0, 3)

"""fold_batch_norm: an eval-mode BN layer folded into the preceding layer."""

import numpy as np
import pytest
from _bncore_helpers import assert_close

from bn_core import BatchNorm1d, BatchNorm2d, fold_batch_norm


def _trained_bn(cls, C, shape, seed=0, steps=5):
    rng = np.random.default_rng(seed)
    bn = cls(C)
    bn.weight[:] = rng.normal(1.0, 0.5, C)
    bn.bias[:] = rng.normal(size=C)
    for _ in range(steps):
        bn(rng.normal(rng.normal(size=1), 3.0, size=shape))
    return bn.eval()


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fold_into_linear(with_bias, dtype):
    rng = np.random.default_rng(1)
    W = rng.normal(size=(5, 7)).astype(dtype)
    b = rng.normal(size=5).astype(dtype) if with_bias else None
    bn = _trained_bn(BatchNorm1d, 5, (16, 5))
    x = rng.normal(size=(9, 7)).astype(dtype)
    copies = (W.copy(), None if b is None else b.copy())
    W2, b2 = fold_batch_norm(W, b, bn)
    z = x @ W.T + (0 if b is None else b)
    assert_close(x @ W2.T + b2, bn(z), dtype, "folded output")
    assert W2.dtype == dtype and b2.shape == (5,)
    np.testing.assert_array_equal(W, copies[0])  # inputs untouched
    if b is not None:
        np.testing.assert_array_equal(b, copies[1])
        assert not np.shares_memory(b2, b)
    assert not np.shares_memory(W2, W)


def test_fold_into_1x1_convolution():
    rng = np.random.default_rng(2)
    W = rng.normal(size=(4, 3, 1, 1))
    b = rng.normal(size=4)
    bn = _trained_bn(BatchNorm2d, 4, (6, 4, 3, 3))
    x = rng.normal(size=(2, 3, 5, 5))
    conv = lambda w, bb: np.einsum("oi,nihw->nohw", w[:, :, 0, 0], x) + bb[:, None, None]  # noqa: E731
    W2, b2 = fold_batch_norm(W, b, bn)
    assert_close(conv(W2, b2), bn(conv(W, b)), what="folded 1x1 conv")


def test_fold_into_3x3_convolution_against_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1).double()
    bn = _trained_bn(BatchNorm2d, 4, (6, 4, 3, 3), seed=3)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        want = bn(conv(x).numpy())
        W2, b2 = fold_batch_norm(conv.weight.numpy(), conv.bias.numpy(), bn)
        got = torch.nn.functional.conv2d(
            x, torch.from_numpy(W2), torch.from_numpy(b2), padding=1
        ).numpy()
    assert_close(got, want)


def test_fold_a_torch_batchnorm():
    torch = pytest.importorskip("torch")
    bn = torch.nn.BatchNorm1d(3).double()
    bn(torch.randn(10, 3, dtype=torch.float64) * 2 + 1)
    bn.eval()
    rng = np.random.default_rng(4)
    W, b, x = rng.normal(size=(3, 2)), rng.normal(size=3), rng.normal(size=(4, 2))
    W2, b2 = fold_batch_norm(W, b, bn)
    with torch.no_grad():
        want = bn(torch.from_numpy(x @ W.T + b)).numpy()
    assert_close(x @ W2.T + b2, want)


def test_fold_without_affine():
    bn = BatchNorm1d(3, affine=False)
    bn(np.random.default_rng(5).normal(2.0, 3.0, size=(8, 3)))
    bn.eval()
    W = np.eye(3)
    W2, b2 = fold_batch_norm(W, None, bn)
    x = np.random.default_rng(6).normal(size=(4, 3))
    assert_close(x @ W2.T + b2, bn(x))


def test_fold_errors():
    bn = BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"training mode.*bn\.eval\(\)"):
        fold_batch_norm(np.ones((3, 2)), None, bn)
    bn.eval()
    with pytest.raises(ValueError, match=r"out = bn\.num_features = 3, got \(4, 2\)"):
        fold_batch_norm(np.ones((4, 2)), None, bn)
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        fold_batch_norm(np.ones((3, 2)), np.ones(2), bn)
    with pytest.raises(TypeError, match="float32 or float64"):
        fold_batch_norm(np.ones((3, 2), dtype=int), None, bn)
    nostats = BatchNorm1d(3, track_running_stats=False).eval()
    with pytest.raises(ValueError, match="no running statistics"):
        fold_batch_norm(np.ones((3, 2)), None, nostats)


def test_folding_the_wrong_way_is_caught():
    # scaling the input columns instead of the output rows must fail the comparison
    rng = np.random.default_rng(7)
    W, b = rng.normal(size=(3, 3)), rng.normal(size=3)
    bn = _trained_bn(BatchNorm1d, 3, (16, 3))
    W2, b2 = fold_batch_norm(W, b, bn)
    x = rng.normal(size=(5, 3))
    scale = W2[:, 0] / W[:, 0]
    wrong = W * scale[None, :]
    assert np.abs(x @ wrong.T + b2 - bn(x @ W.T + b)).max() > 1e-3


# -- issue 10: transposed convolutions, Conv1d and Conv3d --------------------------------


def _torch_eval_bn(torch, C, seed):
    """A torch BatchNorm (any rank: only the buffers and parameters are used) in eval mode."""
    g = torch.Generator().manual_seed(seed)
    bn = torch.nn.BatchNorm1d(C).double()
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(C, generator=g, dtype=torch.float64))
        bn.running_var.copy_(torch.rand(C, generator=g, dtype=torch.float64) + 0.5)
        bn.weight.copy_(torch.randn(C, generator=g, dtype=torch.float64))
        bn.bias.copy_(torch.randn(C, generator=g, dtype=torch.float64))
    return bn.eval()


def _bn_after(torch, bn, z):
    """``bn`` applied to ``z`` of any rank (channels on axis 1), in eval mode."""
    shape = (1, -1) + (1,) * (z.dim() - 2)
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (z - bn.running_mean.view(shape)) * s.view(shape) + bn.bias.view(shape)


@pytest.mark.parametrize(
    ("layer", "x_shape"),
    [
        ("Conv1d", (2, 4, 9)),
        ("Conv2d", (2, 4, 7, 6)),
        ("Conv3d", (2, 4, 5, 4, 6)),
        ("ConvTranspose1d", (2, 4, 9)),
        ("ConvTranspose2d", (2, 4, 7, 6)),
        ("ConvTranspose3d", (2, 4, 5, 4, 6)),
    ],
)
@pytest.mark.parametrize("groups", [1, 2])
def test_fold_into_every_convolution_against_torch(layer, x_shape, groups):
    # in == out == 4: the layouts (out, in/g, *k) and (in, out/g, *k) have the same shape,
    # so only the right axis (and the right grouping) passes
    torch = pytest.importorskip("torch")
    torch.manual_seed(groups)
    conv = getattr(torch.nn, layer)(4, 4, 3, groups=groups).double()
    bn = _torch_eval_bn(torch, 4, seed=len(layer) + groups)
    x = torch.randn(*x_shape, dtype=torch.float64)
    transposed = layer.startswith("ConvTranspose")
    with torch.no_grad():
        want = _bn_after(torch, bn, conv(x))
        W2, b2 = fold_batch_norm(conv.weight, conv.bias, bn, transposed=transposed, groups=groups)
        conv.weight.copy_(torch.from_numpy(W2))
        conv.bias.copy_(torch.from_numpy(b2))
        got = conv(x)
    assert_close(got.numpy(), want.numpy(), what=f"folded {layer}")


def test_transposed_weight_folded_as_an_ordinary_one_is_caught():
    # the silent failure of the issue: in == out, no transposed=True -> the wrong axis; the
    # comparison above would see it
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    conv = torch.nn.ConvTranspose2d(3, 3, 3).double()
    bn = _torch_eval_bn(torch, 3, seed=1)
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        want = _bn_after(torch, bn, conv(x))
        W2, b2 = fold_batch_norm(conv.weight, conv.bias, bn)  # wrong: axis 0 is `in`
        got = torch.nn.functional.conv_transpose2d(x, torch.from_numpy(W2), torch.from_numpy(b2))
    assert (got - want).abs().max() > 1e-3


def test_transposed_weight_errors_say_what_to_do():
    bn = BatchNorm2d(6).eval()
    w = np.ones((4, 6, 3, 3))  # ConvTranspose2d(4, 6, 3): (in, out, kh, kw)
    with pytest.raises(ValueError, match="transposed=True"):
        fold_batch_norm(w, None, bn)
    W2, _ = fold_batch_norm(w, None, bn, transposed=True)
    assert W2.shape == w.shape
    with pytest.raises(ValueError, match="pass groups=2"):
        fold_batch_norm(np.ones((4, 3, 3, 3)), None, bn, transposed=True)
    with pytest.raises(ValueError, match="groups must be a positive int"):
        fold_batch_norm(w, None, bn, transposed=True, groups=0)
    with pytest.raises(ValueError, match=r"\(in, out/groups, \*k\)"):
        fold_batch_norm(np.ones((4, 6)), None, bn, transposed=True)
    with pytest.raises(ValueError, match="Conv1d/2d/3d"):
        fold_batch_norm(np.ones((6, 1, 1, 1, 1, 1)), None, bn)

"""Bad input raises ValueError/TypeError naming the argument, what was seen and expected."""

import numpy as np
import pytest

from bn_core import (
    BatchNorm1d,
    BatchNorm2d,
    batch_norm,
    batch_norm_backward,
    batch_norm_backward_graph,
    batch_norm_forward,
)

X = np.random.default_rng(0).normal(size=(4, 3))


@pytest.mark.parametrize(
    ("layer", "shape", "match"),
    [
        (BatchNorm1d, (4, 3, 2, 2), r"expected 2D or 3D input \(got 4D input\).*\(4, 3, 2, 2\)"),
        (BatchNorm1d, (3,), r"input must have shape \(N, C, \.\.\.\).*got shape \(3,\)"),
        (BatchNorm2d, (4, 3, 2), r"expected 4D input \(got 3D input\).*BatchNorm1d"),
        (BatchNorm2d, (4, 3), r"expected 4D input \(got 2D input\)"),
    ],
)
def test_wrong_rank(layer, shape, match):
    with pytest.raises(ValueError, match=match):
        layer(3)(np.ones(shape))


def test_rank_below_two_in_functions():
    with pytest.raises(ValueError, match=r"x must have shape \(N, C, \.\.\.\).*x\[None, :\]"):
        batch_norm_forward(np.ones(5), None, None)
    with pytest.raises(ValueError, match=r"input must have shape"):
        batch_norm(np.float64(1.0), None, None, training=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(weight=np.ones(4)), r"weight should contain 3 elements not 4.*shape \(3,\)"),
        (dict(bias=np.ones((3, 1))), r"bias should contain 3 elements not 3.*got \(3, 1\)"),
        (dict(running_mean=np.zeros(2)), r"running_mean should contain 3 elements not 2"),
        (dict(running_var=np.ones(5)), r"running_var should contain 3 elements not 5"),
    ],
)
def test_channel_count_mismatch(kwargs, match):
    args = dict(running_mean=None, running_var=None)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        batch_norm(X, training=True, **args)


def test_channel_count_mismatch_in_layers_and_forward():
    with pytest.raises(ValueError, match=r"should contain 5 elements not 3.*C=5 channels"):
        BatchNorm1d(3)(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"gamma should contain 3 elements not 2"):
        batch_norm_forward(X, np.ones(2), np.zeros(3))


@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1), (1, 2, 1, 1)])
def test_single_value_per_channel_in_training(shape):
    msg = (
        r"Expected more than 1 value per channel when training, got input size "
        + r"\(1, .*\).*batch of N >= 2"
    )
    with pytest.raises(ValueError, match=msg):
        batch_norm(np.ones(shape), None, None, training=True)
    with pytest.raises(ValueError, match=msg):
        batch_norm_forward(np.ones(shape), None, None)
    layer = BatchNorm2d(shape[1]) if len(shape) == 4 else BatchNorm1d(shape[1])
    with pytest.raises(ValueError, match=msg):
        layer(np.ones(shape))
    # a single sample is fine in evaluation mode
    assert layer.eval()(np.ones(shape)).shape == shape


def test_a_single_sample_with_spatial_extent_is_fine():
    # (1, C, L) with L > 1 has L values per channel, as in torch
    assert batch_norm(np.arange(6.0).reshape(1, 2, 3), None, None, training=True).shape == (1, 2, 3)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, bool, np.complex128])
def test_non_float_input(dtype):
    with pytest.raises(
        TypeError,
        match=rf"input must be a float32 or float64 array, got "
        rf"dtype {np.dtype(dtype)}.*astype",
    ):
        batch_norm(np.ones((4, 3), dtype=dtype), None, None, training=True)
    with pytest.raises(TypeError, match=r"x must be a float32 or float64 array"):
        batch_norm_forward(np.ones((4, 3), dtype=dtype), None, None)


def test_float16_goes_to_batch_norm_not_to_the_primitives():
    # batch_norm and the layers compute float16 in float32 (as torch); the training
    # primitives batch_norm_forward / backward say so and how to convert
    x16 = np.ones((4, 3), dtype=np.float16)
    assert batch_norm(x16, None, None, training=True).dtype == np.float16
    with pytest.raises(
        TypeError,
        match=r"x is float16: batch_norm and the layers accept it.*"
        r"x\.astype\(np\.float32\)",
    ):
        batch_norm_forward(x16, None, None)


@pytest.mark.parametrize("shape", [(0, 3), (0, 3, 4), (3, 2, 0, 4)])
def test_empty_batch_is_not_an_error(shape):
    # torch 2.13 returns an empty output; the old message ("more than 1 value per
    # channel") misled: an empty batch is no single value
    for training in (True, False):
        assert (
            batch_norm(
                np.ones(shape), np.zeros(shape[1]), np.ones(shape[1]), training=training
            ).shape
            == shape
        )
    layer = BatchNorm2d(shape[1]) if len(shape) == 4 else BatchNorm1d(shape[1])
    assert layer(np.ones(shape)).shape == shape
    assert layer.backward(np.ones(shape)).shape == shape
    np.testing.assert_array_equal(layer.grad_weight, 0)


def test_non_float_parameters_and_buffers():
    with pytest.raises(TypeError, match=r"gamma must be a float32 or float64 array, got dtype int"):
        batch_norm_forward(X, np.ones(3, dtype=int), None)
    with pytest.raises(TypeError, match=r"running_mean must be a float32 or float64"):
        batch_norm(X, np.zeros(3, dtype=int), np.ones(3), training=True)
    with pytest.raises(TypeError, match=r"running_var must be a numpy array .*updated in place"):
        batch_norm(X, np.zeros(3), [1.0, 1.0, 1.0], training=True)


def test_torch_tensor_input_points_to_the_bridge():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"numpy array, got a Tensor.*torch_bridge"):
        batch_norm(torch.ones(4, 3), None, None, training=True)


@pytest.mark.parametrize("eps", [0.0, -1e-5, float("nan"), float("inf")])
def test_bad_eps(eps):
    with pytest.raises(ValueError, match=rf"eps must be a finite number > 0.*got {eps!r}"):
        batch_norm(X, None, None, training=True, eps=eps)
    with pytest.raises(ValueError, match="eps must be"):
        batch_norm_forward(X, None, None, eps=eps)
    with pytest.raises(ValueError, match="eps must be"):
        BatchNorm1d(3, eps=eps)


def test_eps_of_wrong_type():
    with pytest.raises(TypeError, match="eps must be a positive float"):
        batch_norm_forward(X, None, None, eps="1e-5")


@pytest.mark.parametrize("momentum", [-0.1, 1.5, 9.0, float("nan")])
def test_bad_momentum(momentum):
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\].*momentum = 1 - d"):
        batch_norm(X, np.zeros(3), np.ones(3), training=True, momentum=momentum)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]"):
        BatchNorm2d(3, momentum=momentum)


def test_momentum_none_in_functional_form():
    with pytest.raises(ValueError, match=r"momentum must be a number in \[0, 1\], got None"):
        batch_norm(X, np.zeros(3), np.ones(3), training=True, momentum=None)
    # without buffers there is nothing to average: momentum is not used, as in torch
    batch_norm(X, None, None, training=True, momentum=None)


def test_momentum_is_checked_before_anything_changes():
    rm, rv = np.zeros(3), np.ones(3)
    with pytest.raises(ValueError):
        batch_norm(X, rm, rv, training=True, momentum=2.0)
    np.testing.assert_array_equal(rm, 0)
    np.testing.assert_array_equal(rv, 1)


def test_read_only_running_buffer_in_training():
    rm = np.zeros(3)
    rm.flags.writeable = False
    with pytest.raises(ValueError, match=r"running_mean is read-only.*\.copy\(\)"):
        batch_norm(X, rm, np.ones(3), training=True)
    batch_norm(X, rm, np.ones(3), training=False)  # evaluation only reads it


def test_missing_running_stats_in_eval():
    with pytest.raises(ValueError, match=r"running_mean must be defined in evaluation mode"):
        batch_norm(X, None, np.ones(3))
    with pytest.raises(ValueError, match=r"running_var must be defined in evaluation mode"):
        batch_norm(X, np.zeros(3), None)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("shape", [(5, 3), (3, 3, 4), (2, 3, 2, 2)])
def test_non_finite_input(bad, shape):
    x = np.random.default_rng(1).normal(size=shape)
    x[(1, 2) + (0,) * (len(shape) - 2)] = bad
    with pytest.raises(ValueError, match=r"input of shape .* NaN or inf .*channel\(s\) 2\b"):
        batch_norm(x, None, None, training=True)
    with pytest.raises(ValueError, match=r"NaN or inf.*check_finite=False"):
        batch_norm(x, np.zeros(3), np.ones(3), training=False)
    layer = BatchNorm2d(3) if len(shape) == 4 else BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"NaN or inf"):
        layer(x)
    # opting out gives torch's behaviour: the bad channel is NaN, the others are fine
    out = batch_norm(x, None, None, training=True, check_finite=False)
    assert np.isnan(out[:, 2]).all() and np.isfinite(out[:, :2]).all()


def test_overflowing_float32_input():
    x = np.full((4, 2), 3e38, dtype=np.float32)
    x[0] = -3e38
    with pytest.raises(ValueError, match="overflows"):
        batch_norm(x, None, None, training=True)


def test_non_finite_grad_out():
    _, cache = batch_norm_forward(X, None, None)
    dy = np.ones_like(X)
    dy[0, 1] = np.nan
    with pytest.raises(ValueError, match=r"grad_out of shape \(4, 3\) contains NaN"):
        batch_norm_backward(dy, cache)


def test_non_finite_or_negative_running_stats():
    with pytest.raises(ValueError, match=r"running_var of shape \(3,\) contains NaN"):
        batch_norm(X, np.zeros(3), np.array([1.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match=r"running_var \+ eps must be > 0.*reset"):
        batch_norm(X, np.zeros(3), np.array([1.0, -1.0, 1.0]))


@pytest.mark.parametrize("backward", [batch_norm_backward, batch_norm_backward_graph])
def test_backward_argument_errors(backward):
    _, cache = batch_norm_forward(X, None, None)
    with pytest.raises(
        ValueError,
        match=r"grad_out must have the shape of the forward output "
        r"\(4, 3\), got \(3, 4\)",
    ):
        backward(np.ones((3, 4)), cache)
    with pytest.raises(TypeError, match="cache must be the BatchNormCache"):
        backward(np.ones((4, 3)), (X, X))
    with pytest.raises(TypeError, match="grad_out must be a float32 or float64"):
        backward(np.ones((4, 3), dtype=int), cache)


@pytest.mark.parametrize("n", [0, -2, 2.5, True])
def test_bad_num_features(n):
    with pytest.raises(ValueError, match="num_features must be a positive int"):
        BatchNorm1d(n)

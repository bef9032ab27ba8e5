"""bn_core.gradcheck: the checker itself must be right, or every gradient test is moot."""

import numpy as np
import pytest

from bn_core import numerical_gradient, rel_error


def test_numerical_gradient_of_known_functions():
    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.3]])
    df = np.array([[1.0, 2.0, -1.0], [0.5, 1.0, 3.0]])
    g = numerical_gradient(np.sin, x, df)
    np.testing.assert_allclose(g, np.cos(x) * df, rtol=1e-9)
    A = np.arange(6.0).reshape(2, 3)
    g = numerical_gradient(lambda v: v @ A, x[:, :2], np.ones((2, 3)))
    np.testing.assert_allclose(g, np.ones((2, 3)) @ A.T, rtol=1e-9)


def test_scalar_function_without_df():
    x = np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(numerical_gradient(lambda v: np.sum(v**3), x), 3 * x**2, rtol=1e-8)


def test_input_not_modified_and_float32_input_accepted():
    x = np.array([1.0, 2.0], dtype=np.float32)
    x0 = x.copy()
    g = numerical_gradient(lambda v: v**2, x, np.ones(2))
    np.testing.assert_array_equal(x, x0)
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, [2.0, 4.0], rtol=1e-6)


def test_function_returning_a_reused_buffer():
    buf = np.empty(3)

    def f(v):  # returns the same array object every call
        np.multiply(v, v, out=buf)
        return buf

    np.testing.assert_allclose(
        numerical_gradient(f, np.array([1.0, 2.0, 3.0]), np.ones(3)), [2.0, 4.0, 6.0], rtol=1e-8
    )


def test_numerical_gradient_errors():
    with pytest.raises(ValueError, match="h must be > 0"):
        numerical_gradient(np.sin, np.ones(2), np.ones(2), h=0)
    with pytest.raises(ValueError, match="df must have the shape of f"):
        numerical_gradient(np.sin, np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="pass df"):
        numerical_gradient(np.sin, np.ones(2))


def test_rel_error_is_cs231ns_formula():
    a = np.array([1.0, 0.0, 1e-9, -2.0])
    b = np.array([1.0 + 1e-6, 0.0, 0.0, -2.0])
    want = np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b)))
    assert rel_error(a, b) == want
    assert rel_error(1e-9, 0.0) == pytest.approx(0.1)  # the 1e-8 floor
    assert rel_error([3.0], [3.0]) == 0.0
    assert rel_error([1.0], [-1.0]) == 1.0
    assert isinstance(rel_error(a, b), float)
    with pytest.raises(ValueError, match="same shape"):
        rel_error(np.ones(2), np.ones(3))

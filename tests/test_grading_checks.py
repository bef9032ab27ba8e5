"""bn_core.grading.checks: every wrong value gets a message naming it and, if known, its cause."""

from __future__ import annotations

import numpy as np
import pytest

from bn_core.grading.checks import describe, diagnose, problem, shape_hint
from bn_core.grading.safe_call import CallFailed

EXPECTED = np.array([1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    ("got", "text"),
    [
        (None, "is None: did you forget a `return`"),
        (np.zeros((1, 3)), "keepdims=True"),
        ((EXPECTED,), "is a tuple of 1 value(s)"),
        ((EXPECTED, EXPECTED), "is a tuple of 2 value(s)"),
        ({"a": 1}, "is a dict"),
        ("text", "not an array of numbers"),
        ([[1.0], [2.0, 3.0]], "is a list of 2 value(s)"),
        (np.array([1, 2, 3]), "integer dtype"),
        (np.array([True, False, True]), "an array of booleans"),
        (np.array([np.nan, 2.0, 3.0]), "NaN"),
        (np.array([1.0, 2.0, 4.0]), "largest error 1 at index (2,)"),
        (CallFailed("f raised KeyError: 'a'"), "not checked, because f raised KeyError"),
    ],
)
def test_problem_names_the_quantity_and_cause(got, text):
    msg = problem("q", got, EXPECTED, 1e-7, 1e-9)
    assert msg is not None and text in msg


def test_right_value_has_no_problem_and_a_list_of_numbers_is_read():
    assert problem("q", EXPECTED.copy(), EXPECTED, 1e-7, 1e-9) is None
    assert problem("q", [1.0, 2.0, 3.0], EXPECTED, 1e-7, 1e-9) is None


def test_dtype_is_checked():
    msg = problem("q", EXPECTED, EXPECTED.astype(np.float32), 1e-7, 1e-9, dtype=np.float32)
    assert "dtype float64, expected float32" in msg and "astype(x.dtype)" in msg


def test_shape_hints():
    assert "keepdims=True" in shape_hint((1, 3, 1, 1), (3,))
    moved = shape_hint((2, 4, 5, 3), (2, 3, 4, 5))
    assert "another order, (0, 2, 3, 1)" in moved and "move it" in moved
    assert "reshape" in shape_hint((6, 2), (3, 4))
    assert "wrong axis" in shape_hint((5,), (3,))
    assert "reduce over the batch" in shape_hint((4, 3), (3,))


def test_diagnose_names_a_known_mistake():
    mistakes = {"you sum instead of averaging": EXPECTED * 3}
    assert diagnose(EXPECTED * 3, mistakes, 1e-7, 1e-9, EXPECTED) == "you sum instead of averaging"
    assert diagnose(EXPECTED * 2, mistakes, 1e-7, 1e-9, EXPECTED) is None


def test_diagnose_never_blames_a_mistake_equal_to_the_right_value():
    # On this input the "mistake" gives the right answer, so it cannot be the cause.
    mistakes = {"the running mean is not updated": EXPECTED}
    assert diagnose(EXPECTED, mistakes, 1e-7, 1e-9, EXPECTED) is None


def test_describe():
    assert describe(np.arange(20.0)).startswith("array of shape (20,)")
    assert describe(None) == "None"
    assert describe(np.array([1.0, 2.5])) == "[1.00000 2.50000]"


@pytest.mark.parametrize(
    "name",
    ["bn_core.grading.checks", "bn_core.grading.core", "bn_core.grading.safe_call",
     "bn_core.grading.rules"],
)  # fmt: skip
def test_docstring_examples_of_the_grading_package(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0

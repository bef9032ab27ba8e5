"""Checks and diagnosis: is a learner's value right, and if not, what is wrong and why.

These functions are pure: they take values and return a message (or None when the value is
right). :class:`bn_core.grading.Grader` records their verdicts.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .safe_call import CallFailed

# numpy's comparison functions as they were when grading started: an answer cell that
# replaces np.allclose (say) does not change how the grader compares.
allclose, array_equal, isfinite = np.allclose, np.array_equal, np.isfinite

__all__ = ["Check", "describe", "diagnose", "problem", "shape_hint", "sentence"]


@dataclass
class Check:
    """One recorded check: its name, whether it passed, and the message if it did not."""

    name: str
    passed: bool
    message: str = ""


def sentence(text: str) -> str:
    """``text`` stripped and ending with a full stop (or ? or !)."""
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."


def describe(value: Any, max_items: int = 12) -> str:
    """Return a short, deterministic text for ``value`` as a learner should see it.

    Parameters
    ----------
    value : object
        Usually a numpy array.
    max_items : int
        Arrays with at most this many elements are printed in full, others summarized.

    Returns
    -------
    str

    Examples
    --------
    >>> describe(np.array([1.0, 2.5]))
    '[1.00000 2.50000]'
    >>> describe(None)
    'None'
    """
    if isinstance(value, np.ndarray):
        if value.size <= max_items:
            with np.printoptions(precision=5, suppress=True, floatmode="fixed"):
                return " ".join(np.array2string(value).split())
        finite = value[isfinite(value)] if value.dtype.kind in "fc" else value
        stats = (
            f", min {finite.min():.5g}, max {finite.max():.5g}"
            if finite.size and value.dtype.kind in "biufc"
            else ", no finite values"
        )
        return f"array of shape {value.shape}, dtype {value.dtype}{stats}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def is_torch_tensor(value: Any) -> bool:
    """Whether ``value`` is a torch tensor (without importing torch)."""
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def problem(
    name: str,
    got: Any,
    expected: np.ndarray,
    rtol: float,
    atol: float,
    dtype: Any = None,
) -> str | None:
    """What is wrong with ``got`` as the value of ``name`` (None if it is right)."""
    if isinstance(got, CallFailed):
        return f"not checked, because {sentence(got.reason)}"
    if got is None:
        return f"{name} is None: did you forget a `return` statement?"
    if is_torch_tensor(got):
        return f"{name} is a torch.Tensor; return a numpy array (no torch in your answer)."
    if isinstance(got, tuple | list) and not (
        expected.ndim >= 1 and len(got) == expected.shape[0] and not _holds_arrays(got)
    ):
        kind = type(got).__name__
        return (
            f"{name} is a {kind} of {len(got)} value(s), expected one array of shape "
            f"{expected.shape}: return the array itself, not a {kind} around it (a trailing "
            "comma, or `return y, something` where only y is asked for?)."
        )
    if isinstance(got, dict):
        return f"{name} is a dict; return a numpy array of shape {expected.shape}."
    try:
        arr = np.asarray(got)
    except Exception as exc:  # e.g. ragged lists
        return f"{name} could not be read as an array ({exc})."
    if arr.dtype == object or arr.dtype.kind not in "biufc":
        return f"{name} is {describe(got)}, not an array of numbers."
    if arr.shape != expected.shape:
        return f"{name} has shape {arr.shape}, expected {expected.shape}." + shape_hint(
            arr.shape, expected.shape
        )
    if arr.dtype.kind == "b" and expected.dtype.kind != "b":
        return (
            f"{name} is an array of booleans (True/False), expected numbers: a comparison "
            "(`>`, `==`) where arithmetic was meant?"
        )
    if dtype is not None and arr.dtype != np.dtype(dtype):
        if arr.dtype.kind in "biu":
            return (
                f"{name} has integer dtype {arr.dtype}, expected {np.dtype(dtype)}: an array "
                "created with np.zeros_like on an int input, or a fixed dtype=int?"
            )
        return (
            f"{name} has dtype {arr.dtype}, expected {np.dtype(dtype)} (the dtype of the "
            "input): keep the input's dtype. Arrays built with a fixed dtype (np.zeros(n), "
            "np.float64(...)) or a float64 constant array promote float32 to float64; cast the "
            "result back with .astype(x.dtype) if you compute in float64."
        )
    if expected.dtype.kind in "fc" and arr.dtype.kind in "biu":
        return (
            f"{name} has integer dtype {arr.dtype}, expected floating point: an integer "
            "array created with np.zeros_like on an int input, or integer division?"
        )
    with np.errstate(all="ignore"):
        bad = ~isfinite(arr) & isfinite(expected)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        return (
            f"{name} contains {int(bad.sum())} NaN or infinite value(s) (first at index "
            f"{where}) where the expected value is finite: a division by zero? A feature "
            "whose values are all equal has variance 0, and only eps inside the square root "
            "keeps the division finite."
        )
    with np.errstate(all="ignore"):
        if allclose(arr, expected, rtol=rtol, atol=atol, equal_nan=True):
            return None
        err = np.abs(arr.astype(np.float64) - expected.astype(np.float64))
    err = np.where(np.isnan(err), np.inf, err)
    where = np.unravel_index(int(np.argmax(err)), err.shape) if err.ndim else ()
    where_t = tuple(int(i) for i in where)
    msg = (
        f"{name} is wrong: largest error {float(err[where]):.3g} at index {where_t} "
        f"(expected {float(expected[where]):.6g}, got {float(arr[where]):.6g})."
    )
    if expected.size <= 12:
        msg += f" Expected {describe(expected)}, got {describe(arr)}."
    return msg


def _holds_arrays(values) -> bool:
    return any(isinstance(v, np.ndarray | tuple | list) for v in values)


def diagnose(
    got: Any,
    mistakes: Mapping[str, Any],
    rtol: float,
    atol: float,
    expected: Any = None,
) -> str | None:
    """The description of the first known mistake ``got`` matches (None if none does).

    A mistake whose value equals the expected value on this input is skipped, so a right
    quantity is never blamed.
    """
    if isinstance(got, CallFailed) or got is None or is_torch_tensor(got):
        return None
    try:
        arr = np.asarray(got, dtype=np.float64)
    except Exception:
        return None
    exp = None if expected is None else np.asarray(expected, dtype=np.float64)
    rtol, atol = max(rtol, 1e-6), max(atol, 1e-8)
    for description, value in mistakes.items():
        try:
            wrong = np.asarray(value, dtype=np.float64)
        except Exception:
            continue
        if wrong.shape != arr.shape:
            continue
        with np.errstate(all="ignore"):
            if exp is not None and exp.shape == wrong.shape and allclose(wrong, exp, rtol, atol):
                continue
            if allclose(arr, wrong, rtol=rtol, atol=atol, equal_nan=True):
                return description
    return None


def shape_hint(got: tuple, expected: tuple) -> str:
    """The usual cause of a value of shape ``got`` where ``expected`` was asked for."""
    if tuple(d for d in got if d != 1) == tuple(d for d in expected if d != 1) and len(got) > len(
        expected
    ):
        return (
            " The extra axes of length 1 are what `keepdims=True` leaves: drop keepdims for "
            "this value (or reshape it to the expected shape before returning)."
        )
    if len(got) == len(expected) and sorted(got) == sorted(expected) and len(set(got)) == len(got):
        order = tuple(expected.index(d) for d in got)
        return (
            f" It holds the same axes in another order, {order} (axis numbers of the expected "
            "shape): you moved an axis (e.g. the channels last for a reshape) and did not move it "
            "back, or transposed a 2-D array. Undo the transpose before returning."
        )
    if math.prod(got) == math.prod(expected):
        return " Same number of elements, different layout: check your reshape and transpose."
    if len(got) > len(expected):
        return (
            " Did you forget to reduce over the batch (a sum or mean with axis=0), or keep a "
            "dimension you should have summed over?"
        )
    if len(got) == len(expected):
        return " Did you reduce over the wrong axis?"
    return " Did you reduce over the wrong axis or too many axes?"


def permutations_of(shape: tuple) -> list[tuple[int, ...]]:
    """All axis orders of ``shape`` (used to name transposes)."""
    return list(itertools.permutations(range(len(shape))))

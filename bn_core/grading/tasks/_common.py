"""What the exercises' checks share: inputs drawn at grading time, shown exactly; tolerances."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..core import Grader
from ..safe_call import CallFailed

F64, F32 = np.dtype(np.float64), np.dtype(np.float32)

#: Why the float32 large-offset case exists, said whenever it fails.
CANCELLATION = (
    "This float32 batch has a large offset (values near {offset:g}, spread about {spread:g}). "
    "If your answer is right in float64 but wrong here, the usual cause is the one-pass "
    "variance E[x^2] - E[x]^2: both terms are about {sq:.0e}, float32 keeps about 7 digits, and "
    "their difference (the variance, about {var:g}) is lost to rounding: catastrophic "
    "cancellation. Compute the mean first, then the mean of (x - mean) ** 2 (two passes)."
)


def tolerances(dtype) -> tuple[float, float]:
    """(rtol, atol) for comparing a result of this dtype with the float64 reference."""
    return (1e-3, 1e-4) if np.dtype(dtype) == F32 else (1e-7, 1e-9)


class Inputs:
    """Draws a cell's inputs at grading time and says exactly how to rebuild them.

    Every array comes from its own ``np.random.default_rng([seed, k])``, rounded to two
    decimals (times ``scale``, plus ``loc``) so that small arrays print exactly and large ones
    can be rebuilt from the one-line recipe the failure message shows.
    """

    def __init__(self, grader: Grader, salt: int):
        self.seed = grader.seed
        self.base = 1000 * salt
        self.count = 0
        self._recipes: dict[int, tuple[np.ndarray, str]] = {}

    def normal(self, shape, loc=0.0, scale=1.0, dtype=F64) -> np.ndarray:
        """``loc + scale * z.round(2)`` with ``z`` standard normal, cast to ``dtype``."""
        key = [self.seed, self.base + self.count]
        self.count += 1
        z = np.random.default_rng(key).standard_normal(shape).round(2)
        loc_a, scale_a = np.asarray(loc, np.float64), np.asarray(scale, np.float64)
        value = np.round(loc_a + scale_a * z, 6).astype(dtype)
        recipe = (
            f"np.round({_lit(loc_a)} + {_lit(scale_a)} * np.random.default_rng({key})"
            f".standard_normal({tuple(shape)}).round(2), 6)"
        )
        if np.dtype(dtype) != F64:
            recipe += f".astype(np.{np.dtype(dtype).name})"
        self._recipes[id(value)] = (value, recipe)
        return value

    def uniform(self, shape, low, high, dtype=F64) -> np.ndarray:
        """Uniform values in [low, high), rounded to two decimals."""
        key = [self.seed, self.base + self.count]
        self.count += 1
        value = np.random.default_rng(key).uniform(low, high, shape).round(2).astype(dtype)
        recipe = f"np.random.default_rng({key}).uniform({low}, {high}, {tuple(shape)}).round(2)"
        if np.dtype(dtype) != F64:
            recipe += f".astype(np.{np.dtype(dtype).name})"
        self._recipes[id(value)] = (value, recipe)
        return value

    def note(self, value: np.ndarray, recipe: str) -> np.ndarray:
        """Register how ``value`` was made from drawn arrays (e.g. a view)."""
        self._recipes[id(value)] = (value, recipe)
        return value

    def show(self, **values: Any) -> str:
        """The exact inputs: small arrays in full, larger ones by their recipe."""
        parts = []
        for name, v in values.items():
            if isinstance(v, np.ndarray):
                if v.size <= 24:
                    text = np.array2string(
                        v, separator=", ", floatmode="unique", max_line_width=10**6
                    )
                    text = (
                        re.sub(r"\s+", " ", text)
                        .replace(" ,", ",")
                        .replace("[ ", "[")
                        .replace(" ]", "]")
                    )
                    parts.append(f"{name} = np.array({text}, dtype=np.{v.dtype.name})")
                elif id(v) in self._recipes and self._recipes[id(v)][0] is v:
                    parts.append(f"{name} = {self._recipes[id(v)][1]}")
                else:
                    parts.append(f"{name}: array of shape {v.shape}, dtype {v.dtype}")
            else:
                parts.append(f"{name} = {v!r}")
        return "; ".join(parts) + "."


def cast(dtype, *arrays):
    """The arrays cast to ``dtype`` (float64 references given to a float32 case)."""
    out = tuple(np.asarray(a).astype(dtype) for a in arrays)
    return out[0] if len(out) == 1 else out


def per_channel(v, ndim: int) -> np.ndarray:
    """A (C,) array reshaped to broadcast against axis 1 of an ndim-dimensional array."""
    return np.asarray(v, np.float64).reshape((1, -1) + (1,) * (ndim - 2))


def check_value(
    grader: Grader,
    name: str,
    got: Any,
    expected: Any,
    dtype,
    inputs: str,
    mistakes: Mapping[str, Any] | None = None,
    hint: str | None = None,
    tol: tuple[float, float] | None = None,
) -> bool:
    """check_close with the dtype's tolerances and the output dtype checked."""
    rtol, atol = tol or tolerances(dtype)
    return grader.check_close(
        name,
        got,
        expected,
        rtol=rtol,
        atol=atol,
        dtype=dtype,
        mistakes=mistakes,
        hint=hint,
        inputs=inputs,
    )


def label(x: np.ndarray, **kw: Any) -> str:
    """A short description of a case for a check's name, e.g. '[float32 (7, 4), eps=0.05]'."""
    extra = "".join(f", {k}={v:g}" if isinstance(v, float) else f", {k}={v}" for k, v in kw.items())
    return f"[{x.dtype.name} {x.shape}{extra}]"


def ok(value: Any) -> bool:
    """Whether a value returned by a learner's call can be used for further computation."""
    return not isinstance(value, CallFailed) and value is not None


Call = Callable[..., Any]


def _lit(a: np.ndarray) -> str:
    """A Python literal for a loc or scale (a number, or a nested list)."""
    return repr(float(a)) if a.ndim == 0 else f"np.array({a.tolist()!r})"

"""Grading helpers for the course's exercise notebooks.

A grading cell looks like this::

    with grader.cell("batch_mean on a 3 x 2 batch"):
        x = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]])
        got = grader.call(batch_mean, x)
        grader.check_close("batch_mean(x)", got, np.array([3.0, 6.0]),
                           mistakes={"you averaged over features (axis=1)": x.mean(axis=1)})

Every check is recorded (pass or fail). When the ``with`` block ends, the cell prints one
line per check and, if any check failed, raises :class:`GradingFailure` (an
``AssertionError``) whose message says which quantity is wrong, on which input, expected
versus got, and the usual cause. nbval turns that error into a failed test; in Jupyter it
shows as a short message, not a long traceback. The learner's function never crashes the
grader: exceptions, timeouts, ``None``, wrong shapes or dtypes, NaN and in-place changes to
the inputs all become failed checks.

The expected values always come from the grading cell itself (a value derived by hand, or
PyTorch), never from :mod:`bn_core`, so a learner cannot pass by calling the library.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "CallFailed",
    "CallTimeout",
    "Check",
    "Grader",
    "GradingFailure",
    "describe",
    "time_limit",
]

#: Names an answer may not use: the exercise is to write batch normalization yourself.
FORBIDDEN_NAMES = frozenset(
    {
        "torch",
        "bn_core",
        "batch_norm",
        "batch_norm_forward",
        "batch_norm_backward",
        "batch_norm_backward_graph",
        "BatchNorm1d",
        "BatchNorm2d",
        "functional",
    }
)


class GradingFailure(AssertionError):
    """Raised at the end of a grading cell when at least one of its checks failed."""

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing a traceback: the learner sees only the message.
        return [
            "GradingFailure: " + line if i == 0 else line
            for i, line in enumerate(str(self).splitlines())
        ]


class CallTimeout(Exception):
    """Raised inside a learner's function when it runs longer than the grader allows."""


@dataclass(frozen=True)
class CallFailed:
    """What :meth:`Grader.call` returns in place of a value when the call did not succeed.

    Checks given a ``CallFailed`` fail with its ``reason`` instead of comparing values.
    """

    reason: str

    def __repr__(self) -> str:
        return f"CallFailed({self.reason!r})"


@dataclass
class Check:
    """One recorded check: its name, whether it passed, and the message if it did not."""

    name: str
    passed: bool
    message: str = ""


@dataclass
class _Cell:
    title: str
    checks: list[Check] = field(default_factory=list)


@contextmanager
def time_limit(seconds: float | None):
    """Raise :class:`CallTimeout` in the running code after ``seconds`` of wall-clock time.

    Parameters
    ----------
    seconds : float or None
        The limit. ``None`` or a non-positive value means no limit.

    Notes
    -----
    Uses ``SIGALRM``, so it only works in the main thread on POSIX systems (a Jupyter kernel
    runs cells in its main thread). Elsewhere it does nothing, and nbval's
    ``--nbval-cell-timeout`` is the backstop. A previously armed timer (e.g. pytest-timeout) is
    re-armed with its remaining time afterwards.

    Examples
    --------
    >>> with time_limit(1.0):
    ...     total = sum(range(10))
    >>> total
    45
    """
    usable = (
        seconds is not None
        and seconds > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def _raise(signum, frame):
        raise CallTimeout(f"did not return within {seconds:g} s")

    start = time.monotonic()
    old_handler = signal.signal(signal.SIGALRM, _raise)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay > 0:
            remaining = max(old_delay - (time.monotonic() - start), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, remaining, old_interval)


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
    '[1.     2.5   ]'
    >>> describe(None)
    'None'
    """
    if isinstance(value, np.ndarray):
        if value.size <= max_items:
            with np.printoptions(precision=5, suppress=True, floatmode="fixed"):
                return " ".join(np.array2string(value).split())
        finite = value[np.isfinite(value)] if value.dtype.kind in "fc" else value
        stats = (
            f", min {finite.min():.5g}, max {finite.max():.5g}"
            if finite.size
            else ", no finite values"
        )
        return f"array of shape {value.shape}, dtype {value.dtype}{stats}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_torch_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names) | set(code.co_varnames) | set(code.co_freevars)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


class Grader:
    """Records the checks of one exercise notebook and reports them to the learner.

    Parameters
    ----------
    exercise : str
        The exercise's name, printed in the summary.
    n_cells : int, optional
        How many grading cells the notebook has, so the summary can say how many were run.
    timeout : float, optional
        Limit in seconds for one call of a learner's function (default 10, or the environment
        variable ``BN_GRADING_TIMEOUT``).

    Examples
    --------
    >>> g = Grader("demo", n_cells=1)
    >>> with g.cell("square"):
    ...     got = g.call(lambda x: x * x, np.array([3.0]))
    ...     _ = g.check_close("square(x)", got, np.array([9.0]))
    ✓ square: all 2 checks passed
    >>> g.summary()
    demo: 2/2 checks passed in 1/1 grading cells.
    """

    def __init__(self, exercise: str, n_cells: int | None = None, timeout: float | None = None):
        self.exercise = exercise
        self.n_cells = n_cells
        if timeout is None:
            # The tests shorten it to run answers that never return quickly.
            timeout = float(os.environ.get("BN_GRADING_TIMEOUT", "10"))
        self.timeout = timeout
        self._cells: dict[str, _Cell] = {}
        self._current: _Cell | None = None

    # -- cells ---------------------------------------------------------------------------
    @contextmanager
    def cell(self, title: str):
        """Group the checks of one grading cell; raise :class:`GradingFailure` if any failed.

        Parameters
        ----------
        title : str
            What the cell grades; re-running a cell replaces its earlier results.

        Raises
        ------
        GradingFailure
            When at least one check in the block failed, with one paragraph per failed check.
        """
        cell = _Cell(title)
        self._cells[title] = cell
        self._current = cell
        try:
            yield self
        except GradingFailure:
            raise
        except Exception as exc:  # a bug in a grading cell, or a learner's value it chokes on
            self._record(
                "grading cell",
                False,
                f"the grading cell stopped with {type(exc).__name__}: {exc}. Usually a value "
                "returned by your code has an unexpected type or shape; look at the checks above.",
            )
        finally:
            self._current = None
        passed = sum(c.passed for c in cell.checks)
        failed = [c for c in cell.checks if not c.passed]
        if not cell.checks:
            self._record("grading cell", False, "no checks ran in this cell")
            failed = cell.checks
        if failed:
            lines = [f"✗ {title}: {passed}/{len(cell.checks)} checks passed."]
            for c in failed:
                lines.append(f"  ✗ {c.name}: {c.message}")
            raise GradingFailure("\n".join(lines))
        print(f"✓ {title}: all {len(cell.checks)} checks passed")

    def _record(self, name: str, passed: bool, message: str = "") -> bool:
        if not passed and self._current is not None:
            # The same cause (typically one failed call) is explained once per cell.
            if any(c.message == message for c in self._current.checks if not c.passed):
                message = "not checked (same reason as above)."
        check = Check(name, passed, message)
        if self._current is None:
            # A check outside a cell still counts; it gets a cell of its own.
            self._cells.setdefault(name, _Cell(name)).checks.append(check)
            if not passed:
                raise GradingFailure(f"✗ {name}: {message}")
        else:
            self._current.checks.append(check)
        return passed

    # -- calling the learner's code ------------------------------------------------------
    def call(
        self,
        fn: Callable,
        *args: Any,
        outputs: Iterable[str] | None = None,
        timeout: float | None = None,
        check_inputs: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Call a learner's function safely and return its value (or :class:`CallFailed`).

        Parameters
        ----------
        fn : callable
            The learner's function.
        *args, **kwargs
            Its arguments. Array arguments are compared before and after the call.
        outputs : iterable of str, optional
            Names of the values ``fn`` must return as a tuple; then a tuple of that length is
            returned (made of ``CallFailed`` if the call failed or returned the wrong number).
        timeout : float, optional
            Seconds allowed (default: the grader's ``timeout``).
        check_inputs : bool
            Record a check that ``fn`` did not change its array arguments in place (and
            restore them if it did, so later checks still see the original input).

        Returns
        -------
        object or tuple
            What ``fn`` returned, or ``CallFailed`` (one per name in ``outputs``).
        """
        name = getattr(fn, "__name__", "your function")
        outputs = list(outputs) if outputs is not None else None
        arrays = {
            key: (arg, arg.copy())
            for key, arg in [
                *((f"argument {i + 1}", a) for i, a in enumerate(args)),
                *kwargs.items(),
            ]
            if isinstance(arg, np.ndarray)
        }
        failure: CallFailed | None = None
        result: Any = None
        upstream = [a for a in (*args, *kwargs.values()) if isinstance(a, CallFailed)]
        if upstream:
            # An argument came from an earlier call that failed: report that cause.
            failure = upstream[0]
        elif not callable(fn):
            failure = CallFailed(f"{name} is not a function (it is {describe(fn)})")
        else:
            try:
                with time_limit(self.timeout if timeout is None else timeout):
                    result = fn(*args, **kwargs)
            except CallTimeout as exc:
                failure = CallFailed(
                    f"{name} {exc}: is there a loop that never ends (a while loop whose "
                    "condition never changes)?"
                )
            except NotImplementedError:
                failure = CallFailed(
                    f"{name} raised NotImplementedError: write your code where it says "
                    "`# YOUR CODE HERE` and delete the `raise NotImplementedError()` line"
                )
            except (Exception, SystemExit) as exc:
                where = _last_frame(exc)
                failure = CallFailed(f"{name} raised {type(exc).__name__}: {exc}{where}")
        if check_inputs:
            changed = [
                key
                for key, (arg, before) in arrays.items()
                if arg.shape != before.shape or not np.array_equal(arg, before, equal_nan=True)
            ]
            if failure is not None:
                self._record(
                    f"{name} leaves its inputs unchanged",
                    False,
                    "not checked, because the call failed (the reason is in the next check).",
                )
            elif changed:
                for key in changed:
                    arg, before = arrays[key]
                    if arg.shape == before.shape:
                        arg[...] = before
                self._record(
                    f"{name} leaves its inputs unchanged",
                    False,
                    f"{name} modified its input ({', '.join(changed)}) in place. Work on a copy "
                    "or build new arrays: `x -= mu` changes the caller's x; write `xc = x - mu`.",
                )
            else:
                self._record(f"{name} leaves its inputs unchanged", True)
        if outputs is None:
            return failure if failure is not None else result
        if failure is not None:
            return tuple(failure for _ in outputs)
        if not isinstance(result, tuple | list) or len(result) != len(outputs):
            got = (
                f"a {type(result).__name__} of length {len(result)}"
                if isinstance(result, tuple | list)
                else f"a single {type(result).__name__}"
            )
            bad = CallFailed(
                f"{name} should return {len(outputs)} values ({', '.join(outputs)}) "
                f"but returned {got}"
            )
            return tuple(bad for _ in outputs)
        return tuple(result)

    # -- checks --------------------------------------------------------------------------
    def check_close(
        self,
        name: str,
        got: Any,
        expected: Any,
        *,
        rtol: float = 1e-6,
        atol: float = 1e-8,
        hint: str | None = None,
        mistakes: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        dtype: Any = None,
    ) -> bool:
        """Check that ``got`` equals ``expected`` within tolerance, and explain if not.

        Parameters
        ----------
        name : str
            The quantity, as the learner calls it (e.g. ``"running_var"``); starts every message.
        got : object
            The learner's value (or ``CallFailed``).
        expected : array_like
            The right value, derived in the grading cell or by PyTorch.
        rtol, atol : float
            Tolerances of :func:`numpy.allclose`.
        hint : str, optional
            The usual cause of a wrong value, added to the message.
        mistakes : mapping of str to array_like, optional
            Known wrong answers: if ``got`` matches one, its description is the diagnosis
            ("this is what you get when ...").
        inputs : mapping of str to array_like, optional
            Small inputs to show in the message, so the learner can redo the computation.
        dtype : numpy dtype, optional
            If given, ``got`` must have exactly this dtype.

        Returns
        -------
        bool
            Whether the check passed.
        """
        expected = np.asarray(expected)
        problem = self._problem(name, got, expected, rtol, atol, dtype)
        if problem is None:
            return self._record(name, True)
        parts = [problem]
        diagnosis = _diagnose(got, mistakes or {}, rtol, atol)
        if diagnosis:
            parts.append(f"Your {name} matches what you get when {diagnosis}.")
        if hint and not isinstance(got, CallFailed):
            parts.append(f"Hint: {hint}")
        if inputs and not isinstance(got, CallFailed):
            shown = "; ".join(f"{k} = {describe(np.asarray(v))}" for k, v in inputs.items())
            parts.append(f"Input: {shown}.")
        return self._record(name, False, " ".join(parts))

    def _problem(self, name, got, expected, rtol, atol, dtype) -> str | None:
        if isinstance(got, CallFailed):
            return f"not checked, because {_sentence(got.reason)}"
        if got is None:
            return f"{name} is None: did you forget a `return` statement?"
        if _is_torch_tensor(got):
            return f"{name} is a torch.Tensor; return a numpy array (no torch in your answer)."
        try:
            arr = np.asarray(got)
        except Exception as exc:  # e.g. ragged lists
            return f"{name} could not be read as an array ({exc})."
        if arr.dtype == object:
            return f"{name} is {describe(got)}, not an array of numbers."
        if arr.dtype.kind not in "biufc":
            return f"{name} is {describe(got)}, not an array of numbers."
        if arr.shape != expected.shape:
            return f"{name} has shape {arr.shape}, expected {expected.shape}." + _shape_hint(
                arr.shape, expected.shape
            )
        if dtype is not None and arr.dtype != np.dtype(dtype):
            return (
                f"{name} has dtype {arr.dtype}, expected {np.dtype(dtype)}: keep the input's "
                "dtype (do not build arrays with a fixed dtype such as np.float64 or int)."
            )
        if expected.dtype.kind in "fc" and arr.dtype.kind in "biu":
            return (
                f"{name} has integer dtype {arr.dtype}, expected floating point: an integer "
                "array created with np.zeros_like on an int input, or integer division?"
            )
        bad = ~np.isfinite(arr) & np.isfinite(expected)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            return (
                f"{name} contains {int(bad.sum())} NaN or infinite value(s) (first at index "
                f"{where}) where the expected value is finite: a division by zero? A feature "
                "whose values are all equal has variance 0, and only eps inside the square root "
                "keeps the division finite."
            )
        if np.allclose(arr, expected, rtol=rtol, atol=atol, equal_nan=True):
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

    def check_true(
        self, name: str, condition: Any, message: str, *, needs: Iterable[Any] = ()
    ) -> bool:
        """Record a yes/no check; ``message`` is shown when ``condition`` is false.

        Parameters
        ----------
        name : str
            The property checked, e.g. ``"y has mean 0 per feature"``.
        condition : bool, callable or CallFailed
            The outcome, or a function of no arguments computing it (called only if every
            value in ``needs`` is usable; an exception in it fails the check). A
            ``CallFailed`` fails with its reason.
        message : str
            What is wrong and the usual cause.
        needs : iterable
            Values the condition is computed from: if one is ``CallFailed`` or ``None``, the
            check fails saying so, without evaluating ``condition``.

        Returns
        -------
        bool
        """
        for value in [*needs, condition]:
            if isinstance(value, CallFailed):
                return self._record(name, False, f"not checked, because {_sentence(value.reason)}")
            if value is None:
                return self._record(name, False, "not checked, because a value it needs is None.")
        try:
            ok = bool(condition() if callable(condition) else condition)
        except Exception as exc:
            return self._record(
                name, False, f"could not be decided ({type(exc).__name__}: {exc}). {message}"
            )
        return self._record(name, ok, "" if ok else message)

    def check_raises(
        self,
        name: str,
        fn: Callable,
        *args: Any,
        exception: type[BaseException] = ValueError,
        match: str | None = None,
        hint: str = "",
        **kwargs: Any,
    ) -> bool:
        """Check that calling ``fn`` raises ``exception`` (whose message contains ``match``).

        Returns
        -------
        bool
        """
        fname = getattr(fn, "__name__", "your function")
        try:
            with time_limit(self.timeout):
                fn(*args, **kwargs)
        except NotImplementedError:
            return self._record(
                name,
                False,
                f"not checked, because {fname} raised NotImplementedError: write your code first.",
            )
        except exception as exc:
            if match is None or match.lower() in str(exc).lower():
                return self._record(name, True)
            return self._record(
                name,
                False,
                f"{fname} raised {type(exc).__name__}({str(exc)!r}); the message "
                f"should contain {match!r}. {hint}",
            )
        except (Exception, SystemExit, CallTimeout) as exc:
            return self._record(
                name,
                False,
                f"{fname} raised {type(exc).__name__}: {exc}; expected "
                f"{exception.__name__}. {hint}",
            )
        return self._record(
            name,
            False,
            f"{fname} returned normally; expected it to raise {exception.__name__}. {hint}",
        )

    def check_rules(self, *fns: Callable) -> bool:
        """Check that the answers do not call a ready-made batch normalization.

        A function passes if its code (including nested functions and lambdas) does not
        mention torch, bn_core or a batch-norm function by name.

        Returns
        -------
        bool
        """
        offenders = []
        for fn in fns:
            code = getattr(fn, "__code__", None)
            if code is None:
                offenders.append(f"{describe(fn)} (not a plain function)")
                continue
            used = sorted(_code_names(code) & FORBIDDEN_NAMES)
            if used:
                offenders.append(f"{fn.__name__} uses {', '.join(used)}")
        return self._record(
            "rules: no torch or bn_core inside your answers",
            not offenders,
            "; ".join(offenders) + ". The exercise is to write it with numpy only.",
        )

    def passed(self, title: str | None = None) -> bool:
        """Whether the grading cell ``title`` (or, without a title, every cell run) passed.

        A cell that has not been run has not passed. Demonstration cells use this to run only
        once the learner's code is right.
        """
        if title is None:
            return bool(self._cells) and all(c.passed for c in self.checks)
        cell = self._cells.get(title)
        return cell is not None and bool(cell.checks) and all(c.passed for c in cell.checks)

    # -- summary -------------------------------------------------------------------------
    @property
    def checks(self) -> list[Check]:
        """All recorded checks, in cell order."""
        return [c for cell in self._cells.values() for c in cell.checks]

    def summary(self) -> None:
        """Print checks passed out of total, and which grading cells failed or were not run."""
        checks = self.checks
        passed = sum(c.passed for c in checks)
        n_run = len(self._cells)
        cells = f"{n_run}/{self.n_cells}" if self.n_cells else f"{n_run}"
        print(f"{self.exercise}: {passed}/{len(checks)} checks passed in {cells} grading cells.")
        for cell in self._cells.values():
            bad = [c for c in cell.checks if not c.passed]
            if bad:
                names = ", ".join(dict.fromkeys(c.name for c in bad))
                print(f"  ✗ {cell.title}: {len(bad)} failed ({names})")
        if self.n_cells and n_run < self.n_cells:
            print(f"  {self.n_cells - n_run} grading cell(s) not run yet.")


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."


def _last_frame(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if len(frames) < 2:
        return ""
    frame = frames[-1]
    line = (frame.line or "").strip()
    return f" (in {frame.name}, at `{line}`)" if line else f" (in {frame.name})"


def _diagnose(got: Any, mistakes: Mapping[str, Any], rtol: float, atol: float) -> str | None:
    if isinstance(got, CallFailed) or got is None or _is_torch_tensor(got):
        return None
    try:
        arr = np.asarray(got, dtype=np.float64)
    except Exception:
        return None
    for description, value in mistakes.items():
        try:
            wrong = np.asarray(value, dtype=np.float64)
        except Exception:
            continue
        if wrong.shape == arr.shape and np.allclose(
            arr, wrong, rtol=max(rtol, 1e-6), atol=max(atol, 1e-8), equal_nan=True
        ):
            return description
    return None


def _shape_hint(got: tuple, expected: tuple) -> str:
    if math.prod(got) == math.prod(expected):
        return " Same number of elements, different layout: check your reshape and transpose."
    if len(got) > len(expected):
        return (
            " Did you forget to reduce over the batch (a sum or mean with axis=0), or keep a "
            "dimension you should have summed over?"
        )
    if len(got) == len(expected) and got != expected:
        return " Did you reduce over the wrong axis?"
    return " Did you reduce over the wrong axis or too many axes?"

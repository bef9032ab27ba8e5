"""The :class:`Grader`: records the checks of one exercise notebook, cell by cell."""

from __future__ import annotations

import inspect
import os
import secrets
import traceback
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import report
from .checks import Check, array_equal, describe, diagnose, problem, sentence
from .rules import CallWatch
from .safe_call import CallFailed, CallTimeout, cell_watchdog, time_limit

__all__ = ["Grader", "GradingFailure", "RULE_CHECK"]

SAME = "not checked (same reason as above)."
RULE_CHECK = "rules: no torch or bn_core while your functions run"
RULE_MESSAGE = (
    "the exercise is to write it with numpy only, and while your functions ran they called "
    "{calls} (called from {fns}). Whatever name reaches it (an alias, getattr, __import__, a "
    "helper), a call into torch or bn_core breaks the rule; helpers of your own that use numpy "
    "are fine, whatever they are called."
)


class GradingFailure(AssertionError):
    """Raised at the end of a grading cell when at least one of its checks failed."""

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing a traceback: the learner sees only the message.
        return [
            "GradingFailure: " + line if i == 0 else line
            for i, line in enumerate(str(self).splitlines())
        ]


@dataclass
class _Cell:
    title: str
    checks: list[Check] = field(default_factory=list)
    violations: dict[str, list[str]] = field(default_factory=dict)
    rule_recorded: bool = False
    calls_returned: int = 0


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


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
        variable ``BN_GRADING_TIMEOUT``). It holds against ``except Exception``.
    cell_timeout : float, optional
        Limit in seconds for one grading cell (default 60, or ``BN_GRADING_CELL_TIMEOUT``);
        past it the process ends, which holds even against ``except BaseException``.
    seed : int, optional
        Seed of the inputs drawn at grading time (default: fresh each run, or
        ``BN_GRADING_SEED``). Messages show the inputs, so a failure can be reproduced.

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

    def __init__(
        self,
        exercise: str,
        n_cells: int | None = None,
        timeout: float | None = None,
        cell_timeout: float | None = None,
        seed: int | None = None,
    ):
        self.exercise = exercise
        self.n_cells = n_cells
        self.timeout = _env_float("BN_GRADING_TIMEOUT", 10.0) if timeout is None else timeout
        self.cell_timeout = (
            _env_float("BN_GRADING_CELL_TIMEOUT", 60.0) if cell_timeout is None else cell_timeout
        )
        if seed is None:
            env = os.environ.get("BN_GRADING_SEED", "")
            seed = int(env) if env.strip().isdigit() else secrets.randbelow(10**6)
        self.seed = int(seed)
        self._cells: dict[str, _Cell] = {}
        self._current: _Cell | None = None

    # -- cells ---------------------------------------------------------------------------
    def rng(self, salt: int = 0) -> np.random.Generator:
        """A generator for this cell's inputs, from the grader's seed, the cell and ``salt``."""
        index = len(self._cells)
        return np.random.default_rng([self.seed, index, salt])

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
        self._cells.pop(title, None)
        self._cells[title] = cell
        self._current = cell
        try:
            with cell_watchdog(self.cell_timeout, title):
                yield self
        except GradingFailure:
            raise
        except NameError as exc:  # the learner's function is missing
            self._record(
                "grading cell",
                False,
                f"the grading cell stopped with NameError: {exc}. Run the cell that defines it "
                "first (from the top), and check that it runs without an error.",
            )
        except Exception as exc:  # a bug in a grading cell, or a learner's value it chokes on
            self._record(
                "grading cell",
                False,
                f"the grading cell stopped with {type(exc).__name__}: {exc}. Usually a value "
                "returned by your code has an unexpected type or shape; look at the checks above.",
            )
        finally:
            if cell.violations and not cell.rule_recorded:
                self.check_rules()
            self._current = None
            report.save(self)
        passed = sum(c.passed for c in cell.checks)
        failed = [c for c in cell.checks if not c.passed]
        if not cell.checks:
            self._record_in(cell, Check("grading cell", False, "no checks ran in this cell"))
            failed = cell.checks
        if failed:
            lines = [f"✗ {title}: {passed}/{len(cell.checks)} checks passed."]
            same = [c for c in failed if c.message == SAME]
            for c in failed:
                if c.message != SAME:
                    lines.append(f"  ✗ {c.name}: {c.message}")
            if same:
                names = list(dict.fromkeys(c.name for c in same))
                shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
                lines.append(
                    f"  ✗ {len(same)} more check(s) not checked for a reason above ({shown})"
                )
            raise GradingFailure("\n".join(lines))
        print(f"✓ {title}: all {len(cell.checks)} checks passed")

    def _record_in(self, cell: _Cell, check: Check) -> None:
        cell.checks.append(check)

    def _record(self, name: str, passed: bool, message: str = "") -> bool:
        if not passed and self._current is not None:
            # The same cause (typically one failed call) is explained once per cell.
            if any(c.message == message for c in self._current.checks if not c.passed):
                message = SAME
        check = Check(name, passed, message)
        if self._current is None:
            # A check outside a cell still counts; it gets a cell of its own.
            self._cells.setdefault(name, _Cell(name)).checks.append(check)
            report.save(self)
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
        allowed: Iterable[Callable] = (),
        error_causes: Mapping[str, str] | None = None,
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
        allowed : iterable of callable
            Grader-made callbacks passed to ``fn`` that the rule watch must not flag.
        error_causes : mapping of str to str, optional
            If the learner's exception message contains a key, the value is added as the cause.

        Returns
        -------
        object or tuple
            What ``fn`` returned, or ``CallFailed`` (one per name in ``outputs``).
        """
        name = getattr(fn, "__name__", "your function")
        outputs = list(outputs) if outputs is not None else None
        labels = _argument_labels(fn, args, kwargs)
        arrays = {
            label: (arg, arg.copy())
            for label, arg in _array_arguments(labels, (*args, *kwargs.values()))
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
            codes = frozenset(getattr(f, "__code__", None) for f in allowed) - {None}
            watch = CallWatch(allowed_codes=codes)
            try:
                with time_limit(self.timeout if timeout is None else timeout), watch:
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
                text = f"{name} raised {type(exc).__name__}: {exc}{where}"
                for key, cause in (error_causes or {}).items():
                    if key in str(exc):
                        text = f"{sentence(text)} {cause}"
                        break
                failure = CallFailed(text)
            if failure is None and self._current is not None:
                self._current.calls_returned += 1
            if watch.violations and self._current is not None:
                for what in watch.violations:
                    self._current.violations.setdefault(what, [])
                    if name not in self._current.violations[what]:
                        self._current.violations[what].append(name)
        changed = [
            key
            for key, (arg, before) in arrays.items()
            if arg.shape != before.shape or not array_equal(arg, before, equal_nan=True)
        ]
        returned_input = False
        if failure is None and arrays:
            # A result that shares memory with an argument is copied before the argument is
            # restored, so the value checks judge what the function computed.
            result, returned_input = _detach(result, [a for a, _ in arrays.values()])
        for key in changed:
            arg, before = arrays[key]
            if arg.shape == before.shape:
                arg[...] = before
        if check_inputs:
            check = f"{name} leaves its inputs unchanged"
            if failure is not None and not changed:
                self._record(
                    check,
                    False,
                    "not checked, because the call failed (the reason is in the next check).",
                )
            elif changed:
                also = " and returned that same array" if returned_input else ""
                self._record(
                    check,
                    False,
                    f"{name} changed its input {', '.join(changed)} in place{also}. Work on a "
                    "copy or build new arrays: `x -= mu` (or `x[...] = `, `out=x`) changes the "
                    "caller's array; write `xc = x - mu`. (The checks of the returned values "
                    "below judge what your function computed.)",
                )
            else:
                self._record(check, True)
        if outputs is None:
            return failure if failure is not None else result
        if failure is not None:
            return tuple(failure for _ in outputs)
        if not isinstance(result, tuple | list) or len(result) != len(outputs):
            got = (
                f"a {type(result).__name__} of length {len(result)}"
                if isinstance(result, tuple | list)
                else f"a single {type(result).__name__}"
                + (f" of shape {result.shape}" if isinstance(result, np.ndarray) else "")
            )
            bad = CallFailed(
                f"{name} should return {len(outputs)} values ({', '.join(outputs)}) as a tuple, "
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
        inputs: Mapping[str, Any] | str | None = None,
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
            The right value.
        rtol, atol : float
            Tolerances of :func:`numpy.allclose`.
        hint : str, optional
            The usual cause of a wrong value, added to the message.
        mistakes : mapping of str to array_like, optional
            Known wrong answers: if ``got`` matches one (and it differs from ``expected``), its
            description is the diagnosis ("this is what you get when ...").
        inputs : mapping of str to array_like, or str, optional
            The inputs to show in the message, so the learner can redo the computation.
        dtype : numpy dtype, optional
            If given, ``got`` must have exactly this dtype.

        Returns
        -------
        bool
            Whether the check passed.
        """
        expected = np.asarray(expected)
        found = problem(name, got, expected, rtol, atol, dtype)
        if found is None:
            return self._record(name, True)
        parts = [found]
        diagnosis = diagnose(got, mistakes or {}, rtol, atol, expected)
        if diagnosis:
            parts.append(f"Your {name} matches what you get when {diagnosis}.")
        elif hint and not isinstance(got, CallFailed):
            parts.append(f"Hint: {hint}")
        if inputs and not isinstance(got, CallFailed):
            if isinstance(inputs, str):
                parts.append(f"Input: {inputs}")
            else:
                shown = "; ".join(f"{k} = {describe(np.asarray(v))}" for k, v in inputs.items())
                parts.append(f"Input: {shown}.")
        return self._record(name, False, " ".join(parts))

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
            value in ``needs`` is usable; an exception in it fails the check).
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
                return self._record(name, False, f"not checked, because {sentence(value.reason)}")
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
        """Check that calling ``fn`` raises ``exception`` (whose message contains ``match``)."""
        fname = getattr(fn, "__name__", "your function")
        watch = CallWatch()
        try:
            with time_limit(self.timeout), watch:
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
        finally:
            if watch.violations and self._current is not None:
                for what in watch.violations:
                    self._current.violations.setdefault(what, []).append(fname)
        return self._record(
            name,
            False,
            f"{fname} returned normally; expected it to raise {exception.__name__}. {hint}",
        )

    def check_rules(self, *fns: Callable) -> bool:
        """Record whether the learner's functions called torch or bn_core in this cell.

        The verdict is behaviour-based: it comes from watching the calls made while the
        functions given to :meth:`call` ran (see :mod:`bn_core.grading.rules`), not from the
        names they use. ``fns`` are accepted for backward compatibility and not needed.
        """
        cell = self._current
        violations = cell.violations if cell is not None else {}
        if cell is not None:
            cell.rule_recorded = True
        if cell is not None:
            # One rule check per cell: a later verdict replaces an earlier one.
            cell.checks[:] = [c for c in cell.checks if c.name != RULE_CHECK]
        if not violations:
            if cell is not None and cell.calls_returned == 0:
                return self._record(
                    RULE_CHECK,
                    False,
                    "not checked, because none of your functions returned normally in this cell.",
                )
            return self._record(RULE_CHECK, True)
        calls = ", ".join(violations)
        fns_used = ", ".join(dict.fromkeys(f for v in violations.values() for f in v))
        return self._record(RULE_CHECK, False, RULE_MESSAGE.format(calls=calls, fns=fns_used))

    def passed(self, title: str | None = None) -> bool:
        """Whether the grading cell ``title`` (or, without a title, every cell run) passed."""
        if title is None:
            return bool(self._cells) and all(c.passed for c in self.checks)
        cell = self._cells.get(title)
        return cell is not None and bool(cell.checks) and all(c.passed for c in cell.checks)

    # -- summary -------------------------------------------------------------------------
    @property
    def checks(self) -> list[Check]:
        """All recorded checks, in cell order."""
        return [c for cell in self._cells.values() for c in cell.checks]

    @property
    def cells(self) -> dict[str, list[Check]]:
        """The checks of every grading cell run, by title."""
        return {title: list(cell.checks) for title, cell in self._cells.items()}

    def summary(self) -> None:
        """Print checks passed out of total, and which grading cells failed or were not run."""
        print(report.summary_text(self))
        report.save(self)


def _holds_arrays(values) -> bool:
    return any(isinstance(v, np.ndarray) for v in values)


def _argument_labels(fn: Callable, args: tuple, kwargs: dict) -> list[str]:
    """The learner's parameter names for ``args`` and ``kwargs`` (or 'argument i')."""
    labels = [f"argument {i + 1}" for i in range(len(args))] + list(kwargs)
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return labels
    for i in range(len(args)):
        if i < len(params) and params[i].kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            labels[i] = f"`{params[i].name}`"
    return labels


def _array_arguments(labels: list[str], args: tuple) -> list[tuple[str, np.ndarray]]:
    """The arrays among ``args``, and those one level inside a tuple, list or dict argument.

    A cache (ex04's ``backward_graph(dy, cache)``) holds the caller's arrays: changing one in
    place is the same mistake as changing an argument, and is reported as ``cache[2]``.
    """
    found = []
    for label, arg in zip(labels, args, strict=True):
        if isinstance(arg, np.ndarray):
            found.append((label, arg))
        elif isinstance(arg, tuple | list | dict):
            items = arg.items() if isinstance(arg, dict) else enumerate(arg)
            found.extend(
                (f"{label}[{key!r}]", value)
                for key, value in items
                if isinstance(value, np.ndarray)
            )
    return found


def _detach(result: Any, inputs: list[np.ndarray]) -> tuple[Any, bool]:
    """Copy the arrays of ``result`` that share memory with an input; say if any did."""

    def fix(value):
        if isinstance(value, np.ndarray) and any(np.may_share_memory(value, a) for a in inputs):
            return value.copy(), True
        return value, False

    if isinstance(result, tuple | list):
        fixed = [fix(v) for v in result]
        values = [v for v, _ in fixed]
        return (tuple(values) if isinstance(result, tuple) else values), any(s for _, s in fixed)
    return fix(result)


def _last_frame(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if len(frames) < 2:
        return ""
    frame = frames[-1]
    line = (frame.line or "").strip()
    return f" (in {frame.name}, at `{line}`)" if line else f" (in {frame.name})"

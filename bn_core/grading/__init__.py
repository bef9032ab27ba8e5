"""Grading helpers for the course's exercise notebooks.

A grading cell looks like this::

    with grader.cell("1. batch_mean"):
        tasks.ex01.check_batch_mean(grader, batch_mean)

and a check inside it like this::

    got = grader.call(batch_mean, x)
    grader.check_close("batch_mean(x)", got, expected, dtype=x.dtype,
                       mistakes={"you averaged over features (axis=1)": x.mean(axis=1)})

Every check is recorded (pass or fail). When the ``with`` block ends, the cell prints one line
and, if any check failed, raises :class:`GradingFailure` (an ``AssertionError``) whose message
says which quantity is wrong, on which input, expected versus got, and the usual cause. nbval
turns that error into a failed test; in Jupyter it shows as a short message.

The package's parts:

- :mod:`~bn_core.grading.safe_call`: calling a learner's code safely (time limits that
  ``except Exception`` cannot swallow, and a cell limit that ``except BaseException`` cannot);
- :mod:`~bn_core.grading.checks`: checks and diagnosis (named causes for known mistakes);
- :mod:`~bn_core.grading.rules`: the rule, judged by what the code calls while it runs;
- :mod:`~bn_core.grading.core`: the :class:`Grader` that records checks cell by cell;
- :mod:`~bn_core.grading.report`: the score line and the record ``make grade`` reads;
- :mod:`~bn_core.grading.reference`: numpy reference implementations the graders compare to;
- :mod:`~bn_core.grading.tasks`: the checks of each exercise (``tasks.ex01`` ...).
"""

from __future__ import annotations

from .checks import Check, describe
from .core import Grader, GradingFailure
from .safe_call import CallFailed, CallTimeout, cell_watchdog, time_limit

__all__ = [
    "CallFailed",
    "CallTimeout",
    "Check",
    "Grader",
    "GradingFailure",
    "cell_watchdog",
    "describe",
    "time_limit",
]

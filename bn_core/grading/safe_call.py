"""Calling a learner's code safely: time limits that the learner's code cannot swallow.

Two limits protect grading from code that never returns:

- the **per-call limit** (:func:`time_limit`) raises :class:`CallTimeout` inside the learner's
  function. It derives from ``BaseException``, so ``try: ... except Exception: pass`` in a
  learner's loop does not stop it;
- the **cell limit** (:func:`cell_watchdog`) is the backstop against code that swallows even
  ``BaseException``: when a grading cell runs longer than allowed, a watchdog thread prints why
  and ends the process (the Jupyter kernel, or the child process of the tests' in-process
  runner). nbval then reports the cell as failed.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["CallFailed", "CallTimeout", "cell_watchdog", "time_limit"]


class CallTimeout(BaseException):  # noqa: N818 - the name says what happened to the learner
    """Raised inside a learner's function when it runs longer than the grader allows.

    A ``BaseException`` on purpose: ``except Exception`` in the learner's code cannot swallow it.
    """


@dataclass(frozen=True)
class CallFailed:
    """What :meth:`Grader.call` returns in place of a value when the call did not succeed.

    Checks given a ``CallFailed`` fail with its ``reason`` instead of comparing values.
    """

    reason: str

    def __repr__(self) -> str:
        return f"CallFailed({self.reason!r})"


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
    runs cells in its main thread); elsewhere the cell limit is the backstop. A previously
    armed timer (e.g. pytest-timeout) is re-armed with its remaining time afterwards.

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


def _end_process(title: str, seconds: float) -> None:  # pragma: no cover - ends the process
    message = (
        f"\nGRADING STOPPED: the grading cell {title!r} ran longer than {seconds:g} s. Your code "
        "kept running after the per-call time limit; it probably swallows it with "
        "`except BaseException` or a bare `except:` inside a loop. Catch only the exceptions "
        "you expect (e.g. `except ValueError`). The kernel is stopped; restart it and run the "
        "cells again.\n"
    )
    try:
        sys.__stderr__.write(message)
        sys.__stderr__.flush()
        sys.__stdout__.write(message)
        sys.__stdout__.flush()
    finally:
        os._exit(3)


@contextmanager
def cell_watchdog(seconds: float | None, title: str = "grading cell"):
    """End the process if the block runs longer than ``seconds`` (the cell-level limit).

    The per-call limit raises an exception, which code that catches ``BaseException`` can
    swallow; this limit cannot be swallowed. ``None`` or a non-positive value means no limit.
    """
    if seconds is None or seconds <= 0:
        yield
        return
    done = threading.Event()

    def watch():
        if not done.wait(seconds):
            _end_process(title, seconds)

    thread = threading.Thread(target=watch, name="bn_core.grading watchdog", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()

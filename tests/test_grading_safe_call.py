"""bn_core.grading.safe_call: time limits a learner's code cannot swallow, and the runner's own."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bn_core.grading.safe_call import CallFailed, CallTimeout, time_limit

ROOT = Path(__file__).resolve().parent.parent


def _tools():
    spec = importlib.util.spec_from_file_location(
        "exercises_tool_sc", ROOT / "tools" / "exercises.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["exercises_tool_sc"] = module
    spec.loader.exec_module(module)
    return module


def test_call_timeout_is_not_an_exception():
    assert issubclass(CallTimeout, BaseException)
    assert not issubclass(CallTimeout, Exception)


def test_time_limit_holds_against_except_exception():
    stopped = False
    try:
        with time_limit(0.2):
            while True:
                try:
                    sum(range(100))
                except Exception:
                    pass
    except CallTimeout as exc:
        stopped = "did not return within 0.2 s" in str(exc)
    assert stopped


def test_time_limit_without_a_limit_does_nothing():
    with time_limit(None):
        value = 1 + 1
    assert value == 2


def test_call_failed_repr():
    assert "CallFailed('x')" == repr(CallFailed("x"))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_cell_watchdog_ends_code_that_swallows_base_exception():
    code = textwrap.dedent(
        """
        import numpy as np
        from bn_core.grading import Grader

        g = Grader("demo", n_cells=1, timeout=0.2, cell_timeout=1.0)

        def stubborn(x):
            while True:
                try:
                    sum(range(100))
                except BaseException:
                    pass

        with g.cell("stubborn"):
            g.call(stubborn, np.ones(2))
        print("not reached")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 3
    assert "not reached" not in done.stdout
    assert "except BaseException" in done.stderr and "GRADING STOPPED" in done.stderr


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_in_process_runner_has_its_own_limit():
    tools = _tools()
    cell = {
        "cell_type": "code",
        "metadata": {"tags": ["grade"]},
        "source": "while True:\n    try:\n        pass\n    except BaseException:\n        pass\n",
        "outputs": [],
        "execution_count": None,
    }
    first = dict(cell, metadata={}, source="x = 1\nprint(x)\n")
    last = dict(cell, metadata={"tags": ["summary"]}, source="print('after')\n")
    res = tools.run_in_process({"cells": [first, cell, last]}, cell_timeout=3.0)
    assert [c.index for c in res.cells] == [0, 1, 2]
    assert res.cells[0].error is None and res.cells[0].stdout == "1\n"
    assert res.cells[1].error.startswith("CellTimeout")
    assert res.failures == [res.cells[1].error]
    assert res.cells[2].error.startswith("NotRun")

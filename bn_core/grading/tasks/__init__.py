"""The checks of each exercise, one module per notebook (``tasks.ex01`` ... ``tasks.ex11``).

A grading cell calls one function here with the grader and the learner's function(s). The
expected values are computed here from inputs drawn at grading time (by
:mod:`bn_core.grading.reference`), so the notebook never shows the answers in the open.
"""

from . import ex01, ex02, ex03, ex04, ex05, ex06, ex07, ex08, ex09, ex10, ex11

__all__ = ["ex01", "ex02", "ex03", "ex04", "ex05", "ex06", "ex07", "ex08", "ex09", "ex10", "ex11"]

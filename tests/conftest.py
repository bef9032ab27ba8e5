"""Session setup for the library, grader and notebook tests.

torch imports ``torch._dynamo`` lazily, the first time an optimizer is built. The graders run
learners' code under a per-call time limit (a signal) and a profile hook; an import of
torch._dynamo interrupted there leaves ``torch._inductor`` half-initialized in the worker, and
every later optimizer in that worker then fails with "partially initialized module
'torch._inductor'" (seen once, in tests/test_lab.py under pytest-xdist). Importing it here,
once per process and before any test runs, takes that import out of the tests' way.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("torch") is not None:
    import torch._dynamo  # noqa: F401

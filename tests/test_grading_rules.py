"""bn_core.grading.rules: the rule judges what code does, not what it is called."""

from __future__ import annotations

import functools
import importlib

import numpy as np
import pytest

from bn_core.grading.rules import CallWatch

torch = pytest.importorskip("torch")
X = np.random.default_rng(0).normal(size=(4, 3))


def watched(fn, *args, allow_torch=False):
    with CallWatch(allow_torch=allow_torch) as watch:
        try:
            fn(*args)
        except Exception:
            pass
    return watch.violations


def test_honest_numpy_passes_whatever_its_helpers_are_called():
    def batch_norm_forward(x):
        def functional(v):
            return (v - v.mean(axis=0)) / np.sqrt(v.var(axis=0) + 1e-5)

        return functional(x)

    def batch_norm(x):
        return np.einsum("nd->d", x) / len(x)

    assert watched(batch_norm_forward, X) == []
    assert watched(batch_norm, X) == []


@pytest.mark.parametrize(
    "route",
    [
        lambda x: torch.nn.functional.batch_norm(torch.from_numpy(x), None, None, training=True),
        lambda x: __import__("torch").native_batch_norm(
            __import__("torch").from_numpy(x), None, None, None, None, True, 0.1, 1e-5
        ),
        lambda x: getattr(importlib.import_module("torch"), "from_numpy")(x),  # noqa: B009
        lambda x: torch.tensor(x).mean(0).numpy(),
        # No Python frame and no c_call event: only torch's dispatcher sees these operators.
        lambda x: functools.partial(torch.Tensor.numpy)(
            functools.partial(torch.native_batch_norm)(
                functools.partial(torch.from_numpy)(x), None, None, None, None, True, 0.1, 1e-5
            )[0]
        ),
        lambda x: list(map(torch.relu, [functools.partial(torch.from_numpy)(x)])),
    ],
    ids=[
        "functional",
        "native_batch_norm via __import__",
        "getattr import_module",
        "tensor",
        "functools.partial",
        "map",
    ],
)
def test_any_route_into_torch_is_caught(route):
    violations = watched(route, X)
    assert violations and all(v.startswith("torch") for v in violations)


@pytest.mark.parametrize(
    "route",
    [
        lambda x: getattr(__import__("bn_core"), "batch_norm_forward")(  # noqa: B009
            x, np.ones(3), np.zeros(3)
        ),
        lambda x: importlib.import_module("bn_core.functional").batch_norm_forward(
            x, np.ones(3), np.zeros(3)
        ),
        lambda x: importlib.import_module("bn_core.grading.reference").batch_norm_train(
            x, np.ones(3), np.zeros(3)
        ),
    ],
    ids=["getattr", "import_module", "the grader's reference"],
)
def test_any_route_into_bn_core_is_caught(route):
    violations = watched(route, X)
    assert violations and violations[0].startswith("bn_core")


def test_allow_torch_lets_torch_run_and_still_catches_bn_core():
    def torch_then_bn_core(x):
        torch.nn.functional.batch_norm(torch.from_numpy(x), None, None, training=True)
        torch.relu(torch.from_numpy(x))
        return importlib.import_module("bn_core").batch_norm_forward(x, np.ones(3), np.zeros(3))

    assert watched(lambda x: torch.relu(torch.from_numpy(x)), X, allow_torch=True) == []
    violations = watched(torch_then_bn_core, X, allow_torch=True)
    assert violations and all(v.startswith("bn_core") for v in violations)


def test_allowed_callbacks_and_the_previous_profiler_are_kept():
    import sys

    def callback(v):  # a grader-made function passed to the learner's code
        return v**2

    def learner(f, x):
        return f(x)

    before = sys.getprofile()
    with CallWatch(allowed_codes=frozenset({callback.__code__})) as watch:
        learner(callback, X)
    assert sys.getprofile() is before
    assert watch.violations == []

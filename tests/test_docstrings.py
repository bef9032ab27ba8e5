"""The docstring examples of bn_core's public API run and print what they claim."""

import doctest
import importlib

import numpy as np
import pytest

MODULES = [
    "bn_core.functional",
    "bn_core.modules",
    "bn_core.fold",
    "bn_core.gradcheck",
    "bn_core.torch_bridge",
    "bn_core.sync",
    "bn_core.renorm",
    "bn_core.torch_sync",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name in ("bn_core.torch_bridge", "bn_core.torch_sync"):
        pytest.importorskip("torch")
    module = importlib.import_module(name)
    # numpy's default print options: another test in the same worker may have changed them
    with np.printoptions(precision=8, suppress=False, threshold=1000, linewidth=75):
        result = doctest.testmod(
            module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
        )
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0


def test_public_functions_have_numpydoc_sections():
    import bn_core

    for name in bn_core.__all__:
        obj = getattr(bn_core, name)
        doc = obj.__doc__ or ""
        if callable(obj) and not isinstance(obj, type):
            for section in ("Parameters", "Returns", "Examples"):
                assert f"{section}\n    ---" in doc, f"{name} lacks a {section} section"

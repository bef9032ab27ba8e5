"""The exercises' rule, judged by behaviour: no call into torch or bn_core while your code runs.

While a learner's function runs, :class:`CallWatch` follows every call with
:func:`sys.setprofile`: Python functions by the file their code lives in, C functions (torch's
operators, ``torch.native_batch_norm``, tensor methods) by the module they belong to. A call
that lands in torch or in ``bn_core`` (other than this grading package's own plumbing) breaks
the rule, whatever name, alias, ``getattr`` or ``__import__`` route reached it; a learner's
helper called ``batch_norm`` that only uses numpy does not.

This is a guide for self-study, not a security boundary: code that sets out to hide from it
(e.g. by replacing ``sys.setprofile``) can.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CallWatch", "forbidden_origin"]

_BN_CORE = str(Path(__file__).resolve().parent.parent) + os.sep
_GRADING = str(Path(__file__).resolve().parent) + os.sep
#: Files of this package a learner's call may reach: the plumbing that calls and times it.
#: The reference implementations (``reference.py``) are not among them.
_ALLOWED = {
    _GRADING + name
    for name in ("safe_call.py", "rules.py", "checks.py", "core.py", "report.py", "__init__.py")
}
_FORBIDDEN_MODULES = ("torch", "bn_core", "functorch")


@functools.cache
def _torch_dirs() -> tuple[str, ...]:
    """Where torch's code lives, found without importing it (it may be imported later)."""
    dirs = []
    for name in ("torch", "functorch"):
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if not path:
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                spec = None
            path = getattr(spec, "origin", None)
        if path:
            dirs.append(str(Path(path).resolve().parent) + os.sep)
    return tuple(dirs)


def forbidden_origin(filename: str, torch_dirs: tuple[str, ...] = ()) -> str | None:
    """Which forbidden package the code in ``filename`` belongs to, or None."""
    if not filename or filename.startswith("<"):
        return None
    path = os.path.realpath(filename) if not filename.startswith(_BN_CORE) else filename
    if path.startswith(_BN_CORE):
        return None if path in _ALLOWED else "bn_core"
    if any(path.startswith(d) for d in torch_dirs):
        return "torch"
    return None


def _c_function_origin(fn: object) -> str | None:
    module = getattr(fn, "__module__", None) or ""
    owner = getattr(fn, "__self__", None)
    names = [module]
    if owner is not None:
        names.append(owner.__name__ if isinstance(owner, types.ModuleType) else "")
        names.append(type(owner).__module__ or "")
    for name in names:
        if name and name.split(".")[0] in _FORBIDDEN_MODULES:
            return name.split(".")[0]
    return None


@functools.cache
def _watch_mode_class():
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Watch(TorchDispatchMode):
        def __init__(self, note):
            super().__init__()
            self.note = note

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.note(f"torch ({getattr(func, '__name__', func)})")
            return func(*args, **(kwargs or {}))

    return _Watch


def _torch_mode(note):
    """An entered torch dispatch mode that notes every torch operator run, or None.

    The profile hook sees C functions only when Python code calls them directly; a torch
    operator called through ``functools.partial``, ``map`` or ``operator.methodcaller`` has no
    Python frame and no ``c_call`` event. Every operator that computes on a tensor still goes
    through torch's dispatcher, which this mode watches. Only when torch is already imported
    (this package never imports it).
    """
    if "torch" not in sys.modules:
        return None
    try:
        mode = _watch_mode_class()(note)
        mode.__enter__()
    except Exception:  # noqa: BLE001 - an old or odd torch: the profile hook still watches
        return None
    return mode


@dataclass
class CallWatch:
    """Records calls into torch or bn_core made while it is active (a context manager).

    Examples
    --------
    >>> import numpy as np
    >>> with CallWatch() as watch:
    ...     _ = np.mean(np.ones(3))
    >>> watch.violations
    []
    """

    allowed_codes: frozenset = frozenset()
    violations: list[str] = field(default_factory=list)
    #: Let torch run (an exercise written in torch, e.g. ex09): only bn_core calls are noted.
    allow_torch: bool = False

    def __enter__(self) -> CallWatch:
        self._dirs = () if self.allow_torch else _torch_dirs()
        self._cache: dict[types.CodeType, str | None] = {}
        self._mode = None if self.allow_torch else _torch_mode(self._note)
        self._old = sys.getprofile()
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc) -> None:
        sys.setprofile(self._old)
        if self._mode is not None:
            self._mode.__exit__(None, None, None)

    def _note(self, what: str) -> None:
        if self.allow_torch and not what.startswith("bn_core"):
            return
        if what not in self.violations and len(self.violations) < 5:
            self.violations.append(what)

    def _profile(self, frame, event, arg) -> None:
        if event == "call":
            code = frame.f_code
            origin = self._cache.get(code, "?")
            if origin == "?":
                origin = (
                    None
                    if code in self.allowed_codes
                    else forbidden_origin(code.co_filename, self._dirs)
                )
                self._cache[code] = origin
            if origin is not None:
                self._note(f"{origin} ({code.co_name} in {Path(code.co_filename).name})")
        elif event == "c_call":
            origin = _c_function_origin(arg)
            if origin is not None:
                name = getattr(arg, "__qualname__", None) or getattr(arg, "__name__", repr(arg))
                self._note(f"{origin} ({name})")

"""Shared helpers for bn_core's own tests (comparison with torch, tolerances, shapes)."""

from __future__ import annotations

import numpy as np

try:  # tiny tensors: one thread avoids wake-up latency on a loaded 2-core machine
    import torch

    torch.set_num_threads(1)
except ImportError:  # torch is optional; tests that need it skip
    pass

# (N, C), (N, C, L), (N, C, H, W): N=2, C=1, odd sizes
SHAPES = [
    (2, 1),
    (2, 3),
    (7, 5),
    (2, 1, 3),
    (5, 3, 7),
    (2, 1, 3, 3),
    (3, 4, 5, 7),
    (2, 3, 1, 1),
]
SHAPES_1D = [s for s in SHAPES if len(s) in (2, 3)]
SHAPES_2D = [s for s in SHAPES if len(s) == 4]

# relative error bars required by the brief
TOL = {np.float64: 1e-10, np.float32: 1e-5}


def max_rel_err(got, want) -> float:
    """max |got - want| / max |want|: a relative error that is not inflated by elements
    that happen to be close to 0 (CS231n's elementwise rel_error is, for outputs that
    cross zero, which every normalized output does)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    scale = max(np.abs(want).max(initial=0.0), 1e-300)
    return float(np.abs(got - want).max(initial=0.0) / scale)


def assert_close(got, want, dtype=np.float64, what="value"):
    """Assert ``got`` matches ``want`` to the brief's relative tolerance for ``dtype``."""
    tol = TOL[np.dtype(dtype).type]
    err = max_rel_err(got, want)
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol:g}"


def make_inputs(shape, dtype=np.float64, seed=0, loc=0.5, scale=2.0):
    """Input, upstream gradient, gamma, beta for one shape (fixed seed)."""
    rng = np.random.default_rng(seed)
    if shape[0] * int(np.prod(shape[2:])) == 2 and scale > 0.01:
        # Two values per channel normalize to -1 and +1 whatever they are (if var >> eps):
        # the output is flat in x, dx is ~eps/var times dy and its relative error only
        # measures cancellation. A spread comparable to sqrt(eps) keeps it well-posed.
        # (test_backward_two_values_per_channel covers the flat case.)
        scale = 0.004
    C = shape[1]
    x = rng.normal(loc, scale, size=shape).astype(dtype)
    dy = rng.normal(size=shape).astype(dtype)
    gamma = rng.normal(1.0, 0.5, size=C).astype(dtype)
    beta = rng.normal(size=C).astype(dtype)
    return x, dy, gamma, beta


def _t64(a, grad=True):
    import torch

    return None if a is None else torch.tensor(np.asarray(a, np.float64), requires_grad=grad)


def torch_reference(x, dy, gamma, beta, eps=1e-5):
    """Training-mode output and (dx, dgamma, dbeta) from torch autograd, in float64.

    float32 inputs are compared with torch's float64 result on the same (exactly
    representable) values, i.e. with the correctly rounded answer: torch's own float32
    result can be off by 2e-5 on badly conditioned batches (N=2, two close values), where
    ours is not (see test_float32_at_least_as_accurate_as_torch).
    """
    import torch.nn.functional as F

    xt, gt, bt = _t64(x), _t64(gamma), _t64(beta)
    out = F.batch_norm(xt, None, None, gt, bt, training=True, eps=eps)
    out.backward(_t64(dy, grad=False))
    return (
        out.detach().numpy(),
        xt.grad.numpy(),
        None if gt is None else gt.grad.numpy(),
        None if bt is None else bt.grad.numpy(),
    )


# --------------------------------------------------------------------------------------
# Deliberate breakages (mutants). A check that guards a property of the library is a
# function of the implementation; each test runs it on the library (it must pass) and on a
# copy of the library's own source with one deliberate change (it must fail), which proves
# the check can fail. ``mutant`` refuses to run when the line it breaks no longer exists,
# so the catalogue stays in step with the code.
# --------------------------------------------------------------------------------------


def mutant(module_name: str, old: str, new: str):
    """A fresh copy of module ``module_name`` whose source has ``old`` replaced by ``new``."""
    import importlib
    import inspect
    import sys
    import types

    original = importlib.import_module(module_name)
    src = inspect.getsource(original)
    assert src.count(old) == 1, (
        f"mutant of {module_name}: {old!r} occurs {src.count(old)} times in the source, "
        f"expected once; update the mutant to the code"
    )
    name = f"{module_name}__mutant"
    module = types.ModuleType(name)
    module.__file__ = original.__file__
    sys.modules[name] = module  # dataclasses look their module up by name
    try:
        exec(compile(src.replace(old, new), f"<mutant of {module_name}>", "exec"), module.__dict__)
    finally:
        del sys.modules[name]
    return module


MUTANTS = {
    # float32 eval as x * scale + (beta - mean * scale): what the eval path did before; the
    # product and the shift cancel when |running_mean| >> sqrt(running_var)
    "eval-precomputed-shift": (
        "bn_core.functional",
        "    out = np.multiply(centered, _col(scale.astype(dt), nd, centered), out=centered)\n"
        "    np.add(out, _col((b - lo * scale).astype(dt), nd, out), out=out)\n",
        "    out = np.multiply(xv, _col(scale.astype(dt), nd))\n"
        "    np.add(out, _col((b - mean * scale).astype(dt), nd), out=out)\n",
    ),
    # the corrected two-pass mean: without it running_mean gets the first, rounded mean
    "no-mean-correction": ("bn_core.functional", "    mean += delta\n", "    pass\n"),
    # state_dict handing out the live buffers / parameters instead of copies
    "state-dict-alias-running-mean": (
        "bn_core.modules",
        'state["running_mean"] = self.running_mean.copy()',
        'state["running_mean"] = self.running_mean',
    ),
    "state-dict-alias-weight": (
        "bn_core.modules",
        'state["weight"] = self.weight.copy()',
        'state["weight"] = self.weight',
    ),
}


def load_mutant(key: str):
    return mutant(*MUTANTS[key])


def eval_offset_errors(batch_norm_fn, offset: float, buffer_dtype=np.float32, seed=0):
    """(ours, torch) max relative errors of float32 evaluation at running mean ``offset``.

    Input ``offset + N(0, 1)`` in float32, running statistics near those of the data, the
    exact answer computed in float64 from the same float32 values; ``ours`` is
    ``batch_norm_fn(x, rm, rv, w, b, training=False)``, ``torch`` is
    ``nn.BatchNorm1d.eval()`` in float32 on the same values.
    """
    import torch

    rng = np.random.default_rng(seed)
    C = 8
    x = (offset + rng.normal(size=(512, C))).astype(np.float32)
    rm = (offset + 0.1 * rng.normal(size=C)).astype(buffer_dtype)
    rv = rng.uniform(0.5, 2.0, size=C).astype(buffer_dtype)
    w = rng.normal(1.0, 0.3, size=C).astype(np.float32)
    b = rng.normal(size=C).astype(np.float32)
    f64 = [a.astype(np.float64) for a in (x, rm, rv, w, b)]
    exact = (f64[0] - f64[1]) / np.sqrt(f64[2] + 1e-5) * f64[3] + f64[4]
    ours = batch_norm_fn(x, rm, rv, w, b, training=False)
    assert ours.dtype == np.float32
    ref = torch.nn.BatchNorm1d(C).eval()
    with torch.no_grad():
        ref.running_mean.copy_(torch.from_numpy(rm.astype(np.float32)))
        ref.running_var.copy_(torch.from_numpy(rv.astype(np.float32)))
        ref.weight.copy_(torch.from_numpy(w))
        ref.bias.copy_(torch.from_numpy(b))
        theirs = ref(torch.from_numpy(x)).numpy()
    if buffer_dtype != np.float32:  # torch's buffers are float32: its exact answer differs
        f64_t = f64[:]
        f64_t[1] = rm.astype(np.float32).astype(np.float64)
        f64_t[2] = rv.astype(np.float32).astype(np.float64)
        exact_t = (f64_t[0] - f64_t[1]) / np.sqrt(f64_t[2] + 1e-5) * f64_t[3] + f64_t[4]
    else:
        exact_t = exact
    return max_rel_err(ours, exact), max_rel_err(theirs, exact_t)


def check_eval_accurate(batch_norm_fn):
    """float32 evaluation at running means 1e3 and 1e4 is at least as accurate as torch's."""
    for offset in (1e3, 1e4):
        for buffer_dtype in (np.float32, np.float64):
            ours, theirs = eval_offset_errors(batch_norm_fn, offset, buffer_dtype)
            # torch's own float32 eval loses digits here too (8e-6 at 1e3, 6e-5 at 1e4 on
            # the course's machine); ours must be no worse, and within 1e-6 in any case
            assert ours <= 1e-6 and ours <= max(theirs, 2e-7), (
                f"eval at running mean {offset:g} ({np.dtype(buffer_dtype)} buffers): "
                f"relative error {ours:.3g}, torch's {theirs:.3g}"
            )


def running_mean_error(batch_norm_fn, offset=1e4, shape=(4096, 4), seed=0):
    """|running_mean - exact batch mean| in ulps of the mean, float32 data at ``offset``."""
    rng = np.random.default_rng(seed)
    x = (offset + rng.normal(size=shape)).astype(np.float32)
    C = shape[1]
    rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
    batch_norm_fn(x, rm, rv, training=True, momentum=1.0)
    exact = x.astype(np.float64).mean(axis=(0, *range(2, x.ndim)))
    return float(np.max(np.abs(rm - exact) / np.spacing(np.float32(offset))))


def check_running_mean_accurate(batch_norm_fn):
    """float32 running_mean at an offset of 1e4 within one ulp of the exact batch mean."""
    for shape in [(4096, 4), (64, 4, 16, 16)]:
        err = running_mean_error(batch_norm_fn, shape=shape)
        assert err <= 1.0, f"running_mean off by {err:.3g} ulps at shape {shape}"


def check_state_dict_copies(cls):
    """``state_dict()`` returns copies: training after it, or editing it, changes nothing."""
    bn = cls(3)
    bn.weight[:] = [1.0, 2.0, 3.0]
    state = bn.state_dict()
    frozen = {k: np.array(v, copy=True) for k, v in state.items()}
    rng = np.random.default_rng(0)
    shape = (8, 3) + (2,) * (cls._ranks[0] - 2)  # (N, C), (N, C, H, W) or (N, C, D, H, W)
    bn(rng.normal(5.0, 2.0, size=shape))  # training moves the running buffers
    bn.weight *= 2.0  # an optimizer step writes into the parameters in place
    for k, v in state.items():
        np.testing.assert_array_equal(v, frozen[k], err_msg=f"state_dict()[{k!r}] changed")
    state = bn.state_dict()
    before = {k: np.array(v, copy=True) for k, v in bn.state_dict().items()}
    for v in state.values():
        v[...] = -1  # a caller editing the dict must not reach into the layer
    for k, v in bn.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=f"layer's {k} changed")

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

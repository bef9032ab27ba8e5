"""An independent review's wrong and correct answers (issue 9, brief G), used by the tests.

Written from the learner notebooks and the book, not from the graders, and checked to differ
from the entries of ``tests/exercise_mutants.py`` and ``tests/exercise_variants.py``. The wrong
answers (``REVIEW_MUTANTS``) join ``MUTANTS`` and the correct ones (``REVIEW_VARIANTS``) join
``VARIANTS``, so ``make test`` keeps proving that the graders tell them apart.
"""

from __future__ import annotations

# The same names as in exercise_mutants.py; this file imports nothing from it (no cycle).
EX1, EX2, EX3 = "ex01_batch_statistics", "ex02_scale_shift_identity", "ex03_running_stats_inference"
EX4, EX5, EX6 = "ex04_backward_graph", "ex05_backward_closed_form", "ex06_spatial_batchnorm"
EX7 = "ex07_folding"


def r(exercise, name, edits, expect, mistake):
    """A wrong answer: the arguments of ``exercise_mutants.m``."""
    return (exercise, "review-" + name, edits, expect, mistake)


def v(exercise, name, edits):
    """A correct answer: the arguments of ``exercise_variants.v``."""
    return (exercise, "review-" + name, edits)


MEAN = "return x.mean(axis=0)"
VAR = "return ((x - batch_mean(x)) ** 2).mean(axis=0)"
FWD1 = "x_hat = (x - mu) / np.sqrt(var + eps)\n    return gamma * x_hat + beta"
SS = "return gamma * x_hat + beta"
IDP = "return np.sqrt(var + eps), mu"
UNDO = "x_hat = (y - beta) / gamma\n    return x_hat * np.sqrt(var + eps) + mu"
UPD = "new_mean = (1 - momentum) * running_mean + momentum * mu"
UPDV = "var_unbiased = ((x - mu) ** 2).sum(axis=0) / (n - 1)"
EVAL = "mu, var = running_mean, running_var"
YF = "y = gamma * (x - mu) / np.sqrt(var + eps) + beta"
KER = "return 1.0 - keras_momentum"
NG = "grad[idx] = (plus - minus) / (2 * h)"
BWN = (
    "n = dy.shape[0]\n    dbeta = dy.sum(axis=0)\n    dgamma = (dy * x_hat).sum(axis=0)\n    dx_hat"
)
BWS = "dstd = -dinv_std / std**2"
BWR = "dmu = -dxc.sum(axis=0)\n    dx = dxc + dmu / n\n    return dx, dgamma, dbeta"
CL = (
    "dx = (gamma * inv_std) * (dy - dbeta / n - x_hat * (dgamma / n))\n    return dx, dgamma, dbeta"
)
CLB = (
    "n = dy.shape[0]\n    dbeta = dy.sum(axis=0)\n    dgamma = (dy * x_hat).sum(axis=0)\n    # sum"
)
S6F = "x_hat = (x - mu) / np.sqrt(var + eps)\n    return gamma.reshape(1, -1, 1, 1) * x_hat + beta.reshape(1, -1, 1, 1)"
S6M = "m = x.shape[0] * x.shape[2] * x.shape[3]"
S6R = "return dx, dgamma, dbeta\n"
AFF = "a = gamma / np.sqrt(running_var + eps)\n    return a, beta - a * running_mean"
LIN = "return a[:, None] * W, a * bias + b"
LINNONE = "if bias is None:\n        bias = np.zeros_like(running_mean)\n    return a[:, None] * W"
CONV = "return a.reshape(-1, 1, 1, 1) * weight, a * bias + b"
CONVNONE = "if bias is None:\n        bias = np.zeros_like(running_mean)\n    return a.reshape"

REVIEW_MUTANTS: list[tuple] = [
    # -- ex01 ------------------------------------------------------------------------------------
    r(
        EX1,
        "mean-median",
        (MEAN, "return np.median(x, axis=0)"),
        ["batch_mean(x)"],
        "median for mean",
    ),
    r(
        EX1,
        "mean-always-float32",
        (MEAN, "return x.mean(axis=0).astype(np.float32)"),
        ["batch_mean(x) [float64", "dtype float32, expected float64"],
        "float64 in, float32 out",
    ),
    r(
        EX1,
        "mean-first-five-rows",
        (MEAN, "return x[:5].mean(axis=0)"),
        ["batch_mean(x) [float32 (7, 4)]"],
        "answer right for one shape only",
    ),
    r(
        EX1,
        "var-mean-abs-squared",
        (VAR, "return np.abs(x - batch_mean(x)).mean(axis=0) ** 2"),
        ["batch_var(x)"],
        "mean absolute deviation squared",
    ),
    r(
        EX1,
        "var-one-pass-float64-mean",
        (VAR, "return (x**2).mean(axis=0, dtype=np.float64).astype(x.dtype) - batch_mean(x) ** 2"),
        ["batch_var(x) [float32 (16, 3)]", "catastrophic cancellation"],
        "one-pass variance in float32",
    ),
    r(
        EX1,
        "forward-global-stats",
        ("mu = batch_mean(x)\n    var = batch_var(x)", "mu = x.mean()\n    var = x.var()"),
        ["y = batchnorm_forward_train("],
        "statistics over every element",
    ),
    r(
        EX1,
        "forward-always-float32",
        (
            FWD1,
            "x_hat = (x - mu) / np.sqrt(var + eps)\n    return (gamma * x_hat + beta).astype(np.float32)",
        ),
        ["[float64", "dtype float32, expected float64"],
        "float64 in, float32 out",
    ),
    r(
        EX1,
        "forward-var-clipped",
        (FWD1, "x_hat = (x - mu) / np.sqrt(np.maximum(var, eps))\n    return gamma * x_hat + beta"),
        ["y = batchnorm_forward_train("],
        "eps as a floor, not added",
    ),
    r(
        EX1,
        "forward-mutates-gamma",
        (
            FWD1,
            "x_hat = (x - mu) / np.sqrt(var + eps)\n    gamma *= 1.0 + 0.0 * x_hat[0]\n    gamma += 0.5\n    return (gamma - 0.5) * x_hat + beta",
        ),
        ["changed its input `gamma` in place"],
        "input mutated",
    ),
    r(
        EX1,
        "forward-importlib-torch",
        (
            FWD1,
            "import importlib\n    F = importlib.import_module('torch.nn.functional')\n    t = importlib.import_module('torch')\n    return F.batch_norm(t.from_numpy(x), None, None, t.from_numpy(gamma), t.from_numpy(beta), True, 0.1, eps).numpy()",
        ),
        ["rules", "torch"],
        "reaches torch through importlib (rules)",
    ),
    r(
        EX1,
        "forward-sys-modules-torch",
        (
            FWD1,
            "import sys\n    t = sys.modules['torch']\n    return np.asarray(t.native_batch_norm(t.as_tensor(x), t.as_tensor(gamma), t.as_tensor(beta), None, None, True, 0.1, eps)[0])",
        ),
        ["rules", "torch"],
        "reaches torch through sys.modules (rules)",
    ),
    r(
        EX1,
        "forward-partial-torch",
        (
            FWD1,
            "import functools, sys\n    t = sys.modules['torch']\n    run = functools.partial(t.native_batch_norm)\n    out = functools.partial(t.Tensor.numpy)\n    conv = functools.partial(t.from_numpy)\n    return out(run(conv(x), conv(gamma), conv(beta), None, None, True, 0.1, eps)[0])",
        ),
        ["rules", "torch"],
        "reaches torch through functools.partial (rules)",
    ),
    r(
        EX1,
        "forward-bn-core-partial",
        (
            FWD1,
            "import functools, sys\n    f = functools.partial(sys.modules['bn_core'].batch_norm_forward)\n    return f(x, gamma, beta, eps=eps)[0]",
        ),
        ["rules", "bn_core"],
        "reaches bn_core through functools.partial (rules)",
    ),
    # -- ex02 ------------------------------------------------------------------------------------
    r(
        EX2,
        "scale-shift-first-feature",
        (SS, "return gamma[0] * x_hat + beta[0]"),
        ["y = scale_shift("],
        "scalar parameters",
    ),
    r(
        EX2,
        "scale-shift-dot",
        (SS, "return np.dot(x_hat, gamma) + beta"),
        ["y = scale_shift("],
        "matrix product for elementwise",
    ),
    r(
        EX2,
        "identity-inverse",
        (IDP, "return 1.0 / np.sqrt(var + eps), mu"),
        ["gamma ["],
        "inverse confused",
    ),
    r(
        EX2,
        "identity-eps-outside",
        (IDP, "return np.sqrt(var) + eps, mu"),
        ["gamma ["],
        "eps outside sqrt",
    ),
    r(
        EX2,
        "identity-float64",
        (
            "mu = x.mean(axis=0)\n    var",
            "x = x.astype(np.float64)\n    mu = x.mean(axis=0)\n    var",
        ),
        ["gamma [float32", "dtype float64, expected float32"],
        "float32 in, float64 out",
    ),
    r(
        EX2,
        "undo-multiply",
        (UNDO, "x_hat = (y - beta) * gamma\n    return x_hat * np.sqrt(var + eps) + mu"),
        ["x = undo_batchnorm("],
        "step not inverted",
    ),
    r(
        EX2,
        "undo-var-as-std",
        (UNDO, "x_hat = (y - beta) / gamma\n    return x_hat * (var + eps) + mu"),
        ["x = undo_batchnorm("],
        "variance for standard deviation",
    ),
    r(
        EX2,
        "undo-float64",
        (
            UNDO,
            "x_hat = (y - beta) / gamma\n    return x_hat * np.sqrt(var.astype(np.float64) + eps) + mu",
        ),
        ["[float32", "dtype float64, expected float32"],
        "float32 in, float64 out",
    ),
    r(
        EX2,
        "undo-in-place",
        (UNDO, "y -= beta\n    y /= gamma\n    y *= np.sqrt(var + eps)\n    y += mu\n    return y"),
        ["changed its input `y` in place"],
        "in place then return",
    ),
    # -- ex03 ------------------------------------------------------------------------------------
    r(
        EX3,
        "update-mutates-returns-new",
        (UPD, "running_mean *= 1 - momentum\n    new_mean = running_mean + momentum * mu"),
        ["changed its input `running_mean` in place"],
        "input mutated",
    ),
    r(
        EX3,
        "update-d-minus-1",
        (UPDV, "var_unbiased = ((x - mu) ** 2).sum(axis=0) / (x.shape[1] - 1)"),
        ["new_running_var ["],
        "N from the wrong axis",
    ),
    r(
        EX3,
        "update-tuple-swapped",
        (
            "momentum * var_unbiased\n    return new_mean, new_var",
            "momentum * var_unbiased\n    return new_var, new_mean",
        ),
        ["new_running_mean ["],
        "outputs swapped",
    ),
    r(
        EX3,
        "single-example-runtime-error",
        (
            'raise ValueError("Expected more than 1 value per channel when training")',
            'raise RuntimeError("Expected more than 1 value per channel when training")',
        ),
        ["training with one example raises ValueError"],
        "wrong exception type",
    ),
    r(
        EX3,
        "eval-eps-outside",
        (
            YF,
            "y = gamma * (x - mu) / (np.sqrt(var) + eps) + beta if not training else gamma * (x - mu) / np.sqrt(var + eps) + beta",
        ),
        ["y (eval mode) ["],
        "eps outside sqrt",
    ),
    r(
        EX3,
        "eval-float64",
        (EVAL, "mu, var = running_mean.astype(np.float64), running_var.astype(np.float64)"),
        ["y (eval mode) [float32", "dtype float64, expected float32"],
        "float32 in, float64 out",
    ),
    r(
        EX3,
        "eval-updates-stats",
        (
            "new_mean, new_var = running_mean.copy(), running_var.copy()",
            "new_mean, new_var = update_running_stats(running_mean, running_var, x, momentum)",
        ),
        ["running_mean (eval mode)"],
        "running statistics updated in eval mode",
    ),
    r(
        EX3,
        "keras-sign",
        (KER, "return keras_momentum - 1.0"),
        ["torch_momentum_from_keras("],
        "sign of the conversion",
    ),
    r(
        EX3,
        "eval-getattr-torch",
        (
            YF,
            "y = gamma * (x - mu) / np.sqrt(var + eps) + beta\n    if not training:\n        t = getattr(__import__('sys'), 'modules')['torch']\n        y = getattr(t, 'batch_norm')(t.as_tensor(x), t.as_tensor(running_mean), t.as_tensor(running_var), t.as_tensor(gamma), t.as_tensor(beta), False, momentum, eps, False).numpy()",
        ),
        ["rules", "torch"],
        "reaches torch through getattr and sys.modules (rules)",
    ),
    # -- ex04 ------------------------------------------------------------------------------------
    r(
        EX4,
        "numgrad-whole-array",
        (NG, "grad[idx] = (np.sum(f(xp + h) * df) - np.sum(f(xp - h) * df)) / (2 * h)"),
        ["numerical_gradient of sum("],
        "whole array perturbed",
    ),
    r(
        EX4,
        "backward-n-from-axis-1",
        (
            BWN,
            "n = dy.shape[1]\n    dbeta = dy.sum(axis=0)\n    dgamma = (dy * x_hat).sum(axis=0)\n    dx_hat",
        ),
        ["dx ["],
        "N from the wrong axis",
    ),
    r(
        EX4,
        "backward-dstd-not-squared",
        (BWS, "dstd = -dinv_std / std"),
        ["dx ["],
        "derivative of 1/std wrong",
    ),
    r(
        EX4,
        "backward-eps-hardcoded",
        ("dvar = dstd / (2.0 * std)", "dvar = dstd / (2.0 * np.sqrt(var + 1e-5))"),
        ["dx [", "eps"],
        "argument ignored",
    ),
    r(
        EX4,
        "backward-outputs-swapped",
        (BWR, "dmu = -dxc.sum(axis=0)\n    dx = dxc + dmu / n\n    return dx, dbeta, dgamma"),
        ["dgamma ["],
        "outputs swapped",
    ),
    r(
        EX4,
        "backward-dbeta-scalar",
        (
            BWN,
            "n = dy.shape[0]\n    dbeta = dy.sum()\n    dgamma = (dy * x_hat).sum(axis=0)\n    dx_hat",
        ),
        ["dbeta [", "shape"],
        "sum over every axis",
    ),
    r(
        EX4,
        "backward-dgamma-wrong-shape-gc",
        (
            "dgamma = (dy * x_hat).sum(axis=0)\n    dx_hat",
            "dgamma = (dy * x_hat).sum(axis=0)[:-1]\n    dx_hat",
        ),
        ["dgamma", "shape"],
        "wrong shape",
    ),
    r(
        EX4,
        "backward-mutates-cache",
        ("dxc = dx_hat * inv_std\n", "dxc = xc\n    dxc *= dx_hat * inv_std\n"),
        ["backward_graph changed its input `cache`[1] in place"],
        "input mutated (the cache)",
    ),
    # -- ex05 ------------------------------------------------------------------------------------
    r(
        EX5,
        "closed-n-axis-1",
        (
            CLB,
            "n = dy.shape[1]\n    dbeta = dy.sum(axis=0)\n    dgamma = (dy * x_hat).sum(axis=0)\n    # sum",
        ),
        ["dx ["],
        "N from the wrong axis",
    ),
    r(
        EX5,
        "closed-dbeta-mean",
        (
            CLB,
            "n = dy.shape[0]\n    dbeta = dy.mean(axis=0) * n\n    dbeta = dbeta / n\n    dgamma = (dy * x_hat).sum(axis=0)\n    # sum",
        ),
        ["dbeta ["],
        "mean instead of sum",
    ),
    r(
        EX5,
        "closed-sign",
        (
            CL,
            "dx = (gamma * inv_std) * (dy + dbeta / n - x_hat * (dgamma / n))\n    return dx, dgamma, dbeta",
        ),
        ["dx ["],
        "sign error",
    ),
    r(
        EX5,
        "closed-outputs-swapped",
        (
            CL,
            "dx = (gamma * inv_std) * (dy - dbeta / n - x_hat * (dgamma / n))\n    return dx, dbeta, dgamma",
        ),
        ["dgamma ["],
        "outputs swapped",
    ),
    r(
        EX5,
        "closed-float32-always",
        (
            CL,
            "dx = (gamma * inv_std) * (dy - dbeta / n - x_hat * (dgamma / n))\n    return dx.astype(np.float32), dgamma, dbeta",
        ),
        ["dx [float64", "dtype float32, expected float64"],
        "float64 in, float32 out",
    ),
    r(
        EX5,
        "closed-dgamma-mean",
        (
            CLB,
            "n = dy.shape[0]\n    dbeta = dy.sum(axis=0)\n    dgamma = (dy * x_hat).mean(axis=0)\n    # sum",
        ),
        ["dgamma ["],
        "mean instead of sum",
    ),
    r(
        EX5,
        "closed-in-place-return-dy",
        (
            CL,
            "dy -= dbeta / n\n    dy -= x_hat * (dgamma / n)\n    dy *= gamma * inv_std\n    return dy, dgamma, dbeta",
        ),
        ["changed its input `dy` in place"],
        "in place then return",
    ),
    r(
        EX5,
        "closed-x-hat-term-not-averaged",
        (
            CL,
            "dx = (gamma * inv_std) * (dy - dbeta / n - x_hat * dgamma)\n    return dx, dgamma, dbeta",
        ),
        ["dx ["],
        "N missing in one term",
    ),
    r(
        EX5,
        "closed-dbeta-keepdims",
        (
            CLB,
            "n = dy.shape[0]\n    dbeta = dy.sum(axis=0, keepdims=True)\n    dgamma = (dy * x_hat).sum(axis=0)\n    # sum",
        ),
        ["dbeta [", "keepdims"],
        "keepdims kept",
    ),
    # -- ex06 ------------------------------------------------------------------------------------
    r(
        EX6,
        "forward-keepdims-forgotten",
        (
            "mu = x.mean(axis=(0, 2, 3), keepdims=True)\n    var = ((x - mu) ** 2).mean(axis=(0, 2, 3), keepdims=True)",
            "mu = x.mean(axis=(0, 2, 3))\n    var = ((x - mu) ** 2).mean(axis=(0, 2, 3))",
        ),
        ["y [", "keepdims"],
        "keepdims forgotten",
    ),
    r(
        EX6,
        "forward-float64",
        (
            S6F,
            "x_hat = (x - mu) / np.sqrt(var.astype(np.float64) + eps)\n    return gamma.reshape(1, -1, 1, 1) * x_hat + beta.reshape(1, -1, 1, 1)",
        ),
        ["y [float32", "dtype float64, expected float32"],
        "float32 in, float64 out",
    ),
    r(
        EX6,
        "forward-var-all-axes",
        (
            "var = ((x - mu) ** 2).mean(axis=(0, 2, 3), keepdims=True)",
            "var = ((x - mu) ** 2).mean()",
        ),
        ["y ["],
        "variance over every element",
    ),
    r(EX6, "backward-m-size", (S6M, "m = x.size"), ["dx ["], "m counts the channels"),
    r(
        EX6,
        "backward-gamma-not-reshaped",
        ("dx_hat = dy * gamma.reshape(1, -1, 1, 1)", "dx_hat = dy * gamma"),
        ["dx", "gamma"],
        "images: gamma not reshaped",
    ),
    r(
        EX6,
        "backward-eps-hardcoded",
        (
            "inv_std = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=axes, keepdims=True) + eps)",
            "inv_std = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=axes, keepdims=True) + 1e-5)",
        ),
        ["dx [", "eps"],
        "argument ignored",
    ),
    r(
        EX6,
        "backward-float64",
        (S6R, "return dx.astype(np.float64), dgamma, dbeta\n"),
        ["dx [float32", "dtype float64, expected float32"],
        "float32 in, float64 out",
    ),
    r(
        EX6,
        "backward-dbeta-all-axes",
        ("dbeta = dy.sum(axis=axes)", "dbeta = dy.sum()"),
        ["dbeta [", "shape"],
        "sum over every axis",
    ),
    r(
        EX6,
        "backward-outputs-swapped",
        (S6R, "return dx, dbeta, dgamma\n"),
        ["dgamma ["],
        "outputs swapped",
    ),
    # -- ex07 ------------------------------------------------------------------------------------
    r(
        EX7,
        "affine-shift-unscaled",
        (AFF, "a = gamma / np.sqrt(running_var + eps)\n    return a, beta - gamma * running_mean"),
        ["b (the shift) ["],
        "shift not scaled by 1/std",
    ),
    r(
        EX7,
        "affine-shift-order",
        (AFF, "a = gamma / np.sqrt(running_var + eps)\n    return a, (beta - running_mean) * a"),
        ["b (the shift) ["],
        "beta scaled",
    ),
    r(
        EX7,
        "affine-eps-after-sqrt",
        (AFF, "a = gamma / (np.sqrt(running_var) + eps)\n    return a, beta - a * running_mean"),
        ["a (the scale) ["],
        "eps outside sqrt",
    ),
    r(
        EX7,
        "linear-bias-none-float64",
        (
            LINNONE,
            "if bias is None:\n        bias = np.zeros(W.shape[0])\n    return a[:, None] * W",
        ),
        ["bias_folded [float32", "dtype float64, expected float32"],
        "float32 in, float64 out",
    ),
    r(
        EX7,
        "linear-bias-no-mean",
        (LIN, "return a[:, None] * W, a * bias + beta"),
        ["bias_folded ["],
        "running mean dropped",
    ),
    r(
        EX7,
        "conv-bias-none-crash",
        (CONVNONE, "return a.reshape"),
        ["bias_folded", "None"],
        "bias None not handled",
    ),
    r(
        EX7,
        "conv-in-place",
        (CONV, "weight *= a.reshape(-1, 1, 1, 1)\n    return weight, a * bias + b"),
        ["changed its input `weight` in place"],
        "in place then return",
    ),
    r(
        EX7,
        "conv-a-flat",
        (CONV, "return a * weight, a * bias + b"),
        ["weight_folded"],
        "conv: scale not reshaped",
    ),
    r(
        EX7,
        "linear-float64",
        (LIN, "return a[:, None] * W.astype(np.float64), a * bias + b"),
        ["W_folded [float32", "dtype float64, expected float32"],
        "float32 in, float64 out",
    ),
]

REVIEW_VARIANTS: list[tuple] = [
    # -- ex01 ------------------------------------------------------------------------------------
    v(
        EX1,
        "mean-matmul-ones",
        (MEAN, "return np.ones(x.shape[0], dtype=x.dtype) @ x / x.shape[0]"),
    ),
    v(
        EX1,
        "mean-helper-named-functional",
        (
            MEAN,
            "def functional(v):\n        return np.add.reduce(v, axis=0) / len(v)\n\n    return functional(x)",
        ),
    ),
    v(
        EX1,
        "var-np-var-ddof-rescaled",
        (VAR, "n = x.shape[0]\n    return np.var(x, axis=0, ddof=1) * ((n - 1) / n)"),
    ),
    v(
        EX1,
        "var-generator-loop",
        (VAR, "m = batch_mean(x)\n    return sum((row - m) ** 2 for row in x) / len(x)"),
    ),
    v(
        EX1,
        "forward-in-place-on-own-copy",
        (
            FWD1,
            "x_hat = x - mu\n    x_hat /= np.sqrt(var + eps)\n    x_hat *= gamma\n    x_hat += beta\n    return x_hat",
        ),
    ),
    v(
        EX1,
        "forward-power-minus-half",
        (FWD1, "return gamma * (x - mu) * (var + eps) ** -0.5 + beta"),
    ),
    v(
        EX1,
        "forward-helper-batch-norm-float64",
        (
            FWD1,
            "def batch_norm(v, g, b, e):\n        v64 = v.astype(np.float64)\n        m = v64.mean(axis=0)\n        s = v64.var(axis=0)\n        return (g * (v64 - m) / np.sqrt(s + e) + b).astype(v.dtype)\n\n    return batch_norm(x, gamma, beta, eps)",
        ),
    ),
    # -- ex02 ------------------------------------------------------------------------------------
    v(
        EX2,
        "scale-shift-column-loop",
        (
            SS,
            "out = np.empty_like(x_hat)\n    for j in range(x_hat.shape[1]):\n        out[:, j] = gamma[j] * x_hat[:, j] + beta[j]\n    return out",
        ),
    ),
    v(EX2, "scale-shift-transposes", (SS, "return (x_hat.T * gamma[:, None] + beta[:, None]).T")),
    v(
        EX2,
        "identity-np-average-std",
        (IDP, "return np.sqrt(np.std(x, axis=0) ** 2 + eps), np.average(x, axis=0)"),
    ),
    v(EX2, "identity-list", (IDP, "return [np.sqrt(var + eps), mu]")),
    v(EX2, "undo-one-ratio", (UNDO, "return (y - beta) * (np.sqrt(var + eps) / gamma) + mu")),
    # -- ex03 ------------------------------------------------------------------------------------
    v(EX3, "update-bessel-factor", (UPDV, "var_unbiased = x.var(axis=0) * (n / (n - 1))")),
    v(
        EX3,
        "update-in-place-on-copies",
        (
            "new_mean = (1 - momentum) * running_mean + momentum * mu\n    new_var = (1 - momentum) * running_var + momentum * var_unbiased",
            "new_mean = running_mean.copy()\n    new_mean *= 1 - momentum\n    new_mean += momentum * mu\n    new_var = running_var.copy()\n    new_var += momentum * (var_unbiased - new_var)",
        ),
    ),
    v(
        EX3,
        "forward-functional-class",
        (
            YF,
            "class functional:\n        @staticmethod\n        def batch_norm(v, m, s, g, b, e):\n            return g * (v - m) / np.sqrt(s + e) + b\n\n    y = functional.batch_norm(x, mu, var, gamma, beta, eps)",
        ),
    ),
    v(EX3, "keras-np-subtract", (KER, "return np.subtract(1, keras_momentum)")),
    v(
        EX3,
        "forward-std-form",
        (YF, "std = np.sqrt(var + eps)\n    y = (x - mu) / std * gamma + beta"),
    ),
    # -- ex04 ------------------------------------------------------------------------------------
    v(
        EX4,
        "numgrad-flat-index",
        (
            "for idx in np.ndindex(xp.shape):",
            "for idx in (np.unravel_index(k, xp.shape) for k in range(xp.size)):",
        ),
    ),
    v(
        EX4,
        "backward-einsum",
        (
            "dgamma = (dy * x_hat).sum(axis=0)\n    dx_hat",
            "dgamma = np.einsum('nd,nd->d', dy, x_hat)\n    dx_hat",
        ),
    ),
    # float64 differences stored in an array of x's dtype: the float32 gradient asked for.
    v(EX4, "numgrad-grad-in-x-dtype", ("grad = np.zeros_like(xp)", "grad = np.zeros_like(x)")),
    # A list of D numbers is read as an array of shape (D,) (by design; a tuple of arrays is not).
    v(EX1, "mean-list-of-numbers", (MEAN, "return [x[:, j].mean() for j in range(x.shape[1])]")),
    v(EX4, "forward-np-var", ("var = (xc**2).mean(axis=0)", "var = np.var(x, axis=0)")),
    v(
        EX4,
        "backward-closed-form-inside",
        (
            BWR,
            "dx = (gamma * inv_std / n) * (n * dy - dbeta - x_hat * dgamma)\n    return dx, dgamma, dbeta",
        ),
    ),
    # -- ex05 ------------------------------------------------------------------------------------
    v(
        EX5,
        "closed-feature-loop",
        (
            CL,
            "dx = np.empty_like(dy)\n    for j in range(dy.shape[1]):\n        dx[:, j] = gamma[j] * inv_std[j] * (dy[:, j] - dbeta[j] / n - x_hat[:, j] * dgamma[j] / n)\n    return dx, dgamma, dbeta",
        ),
    ),
    v(
        EX5,
        "closed-helper-batch-norm-backward",
        (
            CL,
            "def batch_norm_backward(g, xh, s, gm):\n        return (gm * s) * (g - g.mean(axis=0) - xh * (g * xh).mean(axis=0))\n\n    return batch_norm_backward(dy, x_hat, inv_std, gamma), dgamma, dbeta",
        ),
    ),
    v(
        EX5,
        "closed-transposes",
        (
            CL,
            "dx = ((gamma * inv_std)[:, None] * (dy.T - dbeta[:, None] / n - x_hat.T * dgamma[:, None] / n)).T\n    return dx, dgamma, dbeta",
        ),
    ),
    v(
        EX5,
        "closed-keepdims-means",
        (
            CL,
            "dxh = dy * gamma\n    dx = inv_std * (dxh - dxh.mean(axis=0, keepdims=True) - x_hat * (dxh * x_hat).mean(axis=0, keepdims=True))\n    return dx, dgamma, dbeta",
        ),
    ),
    # -- ex06 ------------------------------------------------------------------------------------
    v(
        EX6,
        "forward-gamma-three-dims",
        (
            S6F,
            "x_hat = (x - mu) / np.sqrt(var + eps)\n    return gamma.reshape(-1, 1, 1) * x_hat + beta.reshape(-1, 1, 1)",
        ),
    ),
    v(
        EX6,
        "forward-reuse-2d-helper",
        (
            S6F,
            "def batch_norm_forward(rows, g, b, e):\n        m = rows.mean(axis=0)\n        s = ((rows - m) ** 2).mean(axis=0)\n        return g * (rows - m) / np.sqrt(s + e) + b\n\n    n, c, h, w = x.shape\n    rows = x.transpose(0, 2, 3, 1).reshape(-1, c)\n    return batch_norm_forward(rows, gamma, beta, eps).reshape(n, h, w, c).transpose(0, 3, 1, 2)",
        ),
    ),
    v(
        EX6,
        "forward-channel-loop",
        (
            S6F,
            "out = np.empty_like(x)\n    for k in range(x.shape[1]):\n        xk = x[:, k]\n        mk = xk.mean()\n        vk = ((xk - mk) ** 2).mean()\n        out[:, k] = gamma[k] * (xk - mk) / np.sqrt(vk + eps) + beta[k]\n    return out",
        ),
    ),
    v(
        EX6,
        "backward-float64-cast-back",
        (S6R, "return dx.astype(np.float64).astype(x.dtype), dgamma, dbeta\n"),
    ),
    v(EX6, "backward-m-from-size", (S6M, "m = x.size // x.shape[1]")),
    # -- ex07 ------------------------------------------------------------------------------------
    v(EX7, "linear-diag-matmul", (LIN, "return np.diag(a) @ W, a * bias + b")),
    v(EX7, "linear-transposes", (LIN, "return (W.T * a).T, a * bias + b")),
    v(EX7, "conv-transposes", (CONV, "return (weight.T * a).T, a * bias + b")),
    v(EX7, "conv-einsum", (CONV, "return np.einsum('o,oihw->oihw', a, weight), a * bias + b")),
    v(
        EX7,
        "affine-rsqrt-float64-cast",
        (
            AFF,
            "a = (gamma.astype(np.float64) * (running_var.astype(np.float64) + eps) ** -0.5).astype(gamma.dtype)\n    return a, beta - a * running_mean",
        ),
    ),
]

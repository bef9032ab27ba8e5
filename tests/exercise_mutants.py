"""A catalogue of wrong answers to the exercises, used by ``tests/test_exercises.py``.

Each mutant edits the solution code of one exercise notebook (only inside the
``### BEGIN SOLUTION`` / ``### END SOLUTION`` blocks of its answer cells) to make one mistake that
learners really make (the list in the course plan), then the notebook is executed. The test
asserts that at least one grading cell fails and that a failure message contains every string
in ``expect``: the name of the wrong quantity and, where the grader can diagnose it, the cause.

To add a mutant: copy an entry, make ``old`` an exact snippet of the solution (it must occur
once), and run ``pytest tests/test_exercises.py -k mutant``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    """One wrong answer: ``edits`` are (old, new) replacements in the solution code."""

    exercise: str
    name: str
    edits: tuple[tuple[str, str], ...]
    expect: tuple[str, ...]
    mistake: str  # the course plan's mistake it stands for (for the report)

    @property
    def id(self) -> str:
        return f"{self.exercise[:4]}-{self.name}"


def m(exercise, name, edits, expect, mistake=""):
    if isinstance(edits[0], str):
        edits = (edits,)
    return Mutant(exercise, name, tuple(edits), tuple(expect), mistake)


EX1, EX2, EX3 = "ex01_batch_statistics", "ex02_scale_shift_identity", "ex03_running_stats_inference"
EX4, EX5, EX6 = "ex04_backward_graph", "ex05_backward_closed_form", "ex06_spatial_batchnorm"
EX7, EX8, EX9 = "ex07_folding", "ex08_sync_batchnorm", "ex09_freeze_batchnorm"
EX10, EX11 = "ex10_layer_group_norm", "ex11_residual_block"

MUTANTS: list[Mutant] = [
    # -- ex01: batch statistics and the training forward pass ---------------------------------
    m(
        EX1,
        "mean-over-features",
        ("x.mean(axis=0)", "x.mean(axis=1)"),
        ["batch_mean(x)", "has shape"],
        "wrong reduction axis",
    ),
    m(
        EX1,
        "mean-keepdims",
        ("x.mean(axis=0)", "x.mean(axis=0, keepdims=True)"),
        ["batch_mean(x)", "keepdims=True"],
        "keepdims kept",
    ),
    m(
        EX1,
        "mean-float64",
        ("x.mean(axis=0)", "x.mean(axis=0, dtype=np.float64)"),
        ["batch_mean(x) [float32", "dtype float64, expected float32"],
        "float32 in, float64 out",
    ),
    m(
        EX1,
        "mean-sum",
        ("x.mean(axis=0)", "x.sum(axis=0)"),
        ["batch_mean(x)", "you sum instead of averaging"],
        "sum instead of mean",
    ),
    m(
        EX1,
        "mean-hardcoded-width",
        (
            "return x.mean(axis=0)",
            "return np.array([x[:, j].mean() for j in range(3)], dtype=x.dtype)",
        ),
        ["batch_mean(x) [float32 (7, 4)]", "has shape (3,), expected (4,)"],
        "answer right for one shape only",
    ),
    m(
        EX1,
        "mean-tuple",
        ("return x.mean(axis=0)", "return x.mean(axis=0),"),
        ["batch_mean(x)", "is a tuple of 1 value"],
        "tuple instead of array",
    ),
    m(
        EX1,
        "mean-never-returns",
        (
            "return x.mean(axis=0)",
            "while True:\n        try:\n            pass\n        except Exception:\n            pass",
        ),
        ["batch_mean(x)", "did not return within"],
        "an answer that runs forever, swallowing Exception",
    ),
    m(
        EX1,
        "var-unbiased",
        (
            "return ((x - batch_mean(x)) ** 2).mean(axis=0)",
            "return ((x - batch_mean(x)) ** 2).sum(axis=0) / (x.shape[0] - 1)",
        ),
        ["batch_var(x)", "divide by N - 1"],
        "unbiased variance to normalize",
    ),
    m(
        EX1,
        "var-one-pass",
        (
            "return ((x - batch_mean(x)) ** 2).mean(axis=0)",
            "return (x**2).mean(axis=0) - batch_mean(x) ** 2",
        ),
        ["batch_var(x) [float32 (16, 3)]", "catastrophic cancellation"],
        "one-pass variance in float32",
    ),
    m(
        EX1,
        "var-std",
        (
            "return ((x - batch_mean(x)) ** 2).mean(axis=0)",
            "return np.sqrt(((x - batch_mean(x)) ** 2).mean(axis=0))",
        ),
        ["batch_var(x)", "standard deviation instead of the variance"],
        "std instead of var",
    ),
    m(
        EX1,
        "var-float64",
        (
            "return ((x - batch_mean(x)) ** 2).mean(axis=0)",
            "return np.var(x.astype(np.float64), axis=0)",
        ),
        ["batch_var(x) [float32", "dtype float64, expected float32"],
        "float32 in, float64 out",
    ),
    m(
        EX1,
        "eps-outside-sqrt",
        ("x_hat = (x - mu) / np.sqrt(var + eps)", "x_hat = (x - mu) / (np.sqrt(var) + eps)"),
        ["y = batchnorm_forward_train", "eps is added outside the square root"],
        "eps outside sqrt",
    ),
    m(
        EX1,
        "eps-missing",
        ("x_hat = (x - mu) / np.sqrt(var + eps)", "x_hat = (x - mu) / np.sqrt(var)"),
        ["y = batchnorm_forward_train", "NaN"],
        "eps missing",
    ),
    m(
        EX1,
        "eps-hardcoded",
        ("x_hat = (x - mu) / np.sqrt(var + eps)", "x_hat = (x - mu) / np.sqrt(var + 1e-5)"),
        ["y = batchnorm_forward_train(x, gamma, beta, eps)", "ignore the eps argument"],
        "argument ignored",
    ),
    m(
        EX1,
        "forward-unbiased",
        ("var = batch_var(x)", "var = x.var(axis=0, ddof=1)"),
        ["y = batchnorm_forward_train", "unbiased variance"],
        "unbiased variance to normalize",
    ),
    m(
        EX1,
        "forward-stats-over-features",
        (
            ("mu = batch_mean(x)", "mu = x.mean(axis=1, keepdims=True)"),
            ("var = batch_var(x)", "var = x.var(axis=1, keepdims=True)"),
        ),
        ["y = batchnorm_forward_train"],
        "wrong reduction axis",
    ),
    m(
        EX1,
        "forward-swapped",
        ("return gamma * x_hat + beta", "return beta * x_hat + gamma"),
        ["y = batchnorm_forward_train", "gamma and beta are swapped"],
        "gamma and beta swapped",
    ),
    m(
        EX1,
        "forward-float64",
        ("return gamma * x_hat + beta", "return gamma * x_hat + beta + np.zeros(x.shape)"),
        ["y = batchnorm_forward_train", "dtype float64, expected float32"],
        "float32 in, float64 out",
    ),
    m(
        EX1,
        "forward-mutates-x",
        ("x_hat = (x - mu) / np.sqrt(var + eps)", "x -= mu\n    x_hat = x / np.sqrt(var + eps)"),
        ["batchnorm_forward_train leaves its inputs unchanged", "in place"],
        "input mutated",
    ),
    m(
        EX1,
        "forward-mutates-and-returns",
        (
            "x_hat = (x - mu) / np.sqrt(var + eps)\n    return gamma * x_hat + beta",
            "x -= mu\n    x /= np.sqrt(var + eps)\n    x *= gamma\n    x += beta\n    return x",
        ),
        ["batchnorm_forward_train leaves its inputs unchanged", "and returned that same array"],
        "in place then return",
    ),
    m(
        EX1,
        "forward-calls-torch",
        (
            "return gamma * x_hat + beta",
            "import torch\n    return torch.nn.functional.batch_norm(torch.from_numpy(x), None, None, "
            "torch.from_numpy(gamma), torch.from_numpy(beta), training=True, eps=eps).numpy()",
        ),
        ["rules", "torch"],
        "calls torch's BN (rules)",
    ),
    m(
        EX1,
        "forward-calls-bn-core-getattr",
        (
            "return gamma * x_hat + beta",
            "lib = __import__('bn_' + 'core')\n    return getattr(lib, 'batch_norm_' + 'forward')(x, gamma, beta, eps=eps)[0]",
        ),
        ["rules", "bn_core"],
        "reaches bn_core through __import__ and getattr (rules)",
    ),
    m(
        EX1,
        "forward-native-batch-norm",
        (
            "return gamma * x_hat + beta",
            "import importlib\n    t = importlib.import_module('torch')\n    return t.native_batch_norm(t.from_numpy(x), "
            "t.from_numpy(gamma), t.from_numpy(beta), None, None, True, 0.1, eps)[0].numpy()",
        ),
        ["rules", "torch"],
        "calls torch.native_batch_norm (rules)",
    ),
    # -- ex02: scale, shift, identity ------------------------------------------------------------
    m(
        EX2,
        "scale-shift-swapped",
        ("return gamma * x_hat + beta", "return beta * x_hat + gamma"),
        ["y = scale_shift", "gamma and beta are swapped"],
        "gamma and beta swapped",
    ),
    m(
        EX2,
        "scale-shift-order",
        ("return gamma * x_hat + beta", "return gamma * (x_hat + beta)"),
        ["y = scale_shift", "shift before scaling"],
        "shift before scale",
    ),
    m(
        EX2,
        "scale-shift-literal",
        ("return gamma * x_hat + beta", "return np.array([[12.0, 20.0, 26.0], [8.0, 26.0, 32.0]])"),
        ["y = scale_shift", "has shape (2, 3)"],
        "returns a literal answer",
    ),
    m(
        EX2,
        "scale-shift-float64",
        ("return gamma * x_hat + beta", "return (gamma * x_hat + beta).astype(float)"),
        ["y = scale_shift", "dtype float64, expected float32"],
        "float32 in, float64 out",
    ),
    m(
        EX2,
        "scale-shift-mutates",
        ("return gamma * x_hat + beta", "x_hat *= gamma\n    x_hat += beta\n    return x_hat"),
        ["scale_shift leaves its inputs unchanged", "and returned that same array"],
        "in place then return",
    ),
    m(
        EX2,
        "identity-no-eps",
        ("return np.sqrt(var + eps), mu", "return np.sqrt(var), mu"),
        ["gamma", "without eps"],
        "eps missing",
    ),
    m(
        EX2,
        "identity-eps-hardcoded",
        ("return np.sqrt(var + eps), mu", "return np.sqrt(var + 1e-5), mu"),
        ["gamma [", "eps=0.05", "ignore the eps argument"],
        "argument ignored",
    ),
    m(
        EX2,
        "identity-swapped",
        ("return np.sqrt(var + eps), mu", "return mu, np.sqrt(var + eps)"),
        ["gamma", "(beta, gamma) instead of (gamma, beta)"],
        "outputs swapped",
    ),
    m(
        EX2,
        "identity-unbiased",
        ("var = ((x - mu) ** 2).mean(axis=0)", "var = x.var(axis=0, ddof=1)"),
        ["gamma", "unbiased variance"],
        "unbiased variance to normalize",
    ),
    m(
        EX2,
        "identity-one-pass",
        ("var = ((x - mu) ** 2).mean(axis=0)", "var = (x * x).mean(axis=0) - mu * mu"),
        ["gamma [float32 (16, 3)]", "catastrophic cancellation"],
        "one-pass variance in float32",
    ),
    m(
        EX2,
        "identity-no-sqrt",
        ("return np.sqrt(var + eps), mu", "return var + eps, mu"),
        ["gamma", "without the square root"],
        "variance for standard deviation",
    ),
    m(
        EX2,
        "identity-single-output",
        ("return np.sqrt(var + eps), mu", "return np.sqrt(var + eps)"),
        ["gamma", "should return 2 values"],
        "wrong number of outputs",
    ),
    m(
        EX2,
        "undo-no-eps",
        ("return x_hat * np.sqrt(var + eps) + mu", "return x_hat * np.sqrt(var) + mu"),
        ["x = undo_batchnorm", "eps is left out"],
        "eps missing",
    ),
    m(
        EX2,
        "undo-eps-hardcoded",
        ("return x_hat * np.sqrt(var + eps) + mu", "return x_hat * np.sqrt(var + 1e-5) + mu"),
        ["x = undo_batchnorm(y, gamma, beta, mu, var, eps)", "ignore the eps argument"],
        "argument ignored",
    ),
    m(
        EX2,
        "undo-no-gamma",
        ("x_hat = (y - beta) / gamma", "x_hat = y - beta"),
        ["x = undo_batchnorm", "do not divide by gamma"],
        "step not inverted",
    ),
    m(
        EX2,
        "undo-wrong-order",
        ("return x_hat * np.sqrt(var + eps) + mu", "return (x_hat + mu) * np.sqrt(var + eps)"),
        ["x = undo_batchnorm", "add mu before multiplying"],
        "wrong order of inverse steps",
    ),
    m(
        EX2,
        "undo-torch",
        (
            "x_hat = (y - beta) / gamma",
            "import torch\n    x_hat = ((torch.from_numpy(y) - torch.from_numpy(beta)) / torch.from_numpy(gamma)).numpy()",
        ),
        ["rules", "torch"],
        "uses torch (rules)",
    ),
    # -- ex03: running statistics and inference --------------------------------------------------
    m(
        EX3,
        "momentum-reversed",
        (
            (
                "new_mean = (1 - momentum) * running_mean + momentum * mu",
                "new_mean = momentum * running_mean + (1 - momentum) * mu",
            ),
            (
                "new_var = (1 - momentum) * running_var + momentum * var_unbiased",
                "new_var = momentum * running_var + (1 - momentum) * var_unbiased",
            ),
        ),
        ["new_running_mean", "momentum is reversed"],
        "momentum reversed",
    ),
    m(
        EX3,
        "momentum-hardcoded",
        (
            (
                "new_mean = (1 - momentum) * running_mean + momentum * mu",
                "new_mean = 0.9 * running_mean + 0.1 * mu",
            ),
            (
                "new_var = (1 - momentum) * running_var + momentum * var_unbiased",
                "new_var = 0.9 * running_var + 0.1 * var_unbiased",
            ),
        ),
        ["new_running_mean [float32 (7, 4), momentum=0.3]", "ignore the momentum argument"],
        "argument ignored",
    ),
    m(
        EX3,
        "running-var-biased",
        (
            "var_unbiased = ((x - mu) ** 2).sum(axis=0) / (n - 1)",
            "var_unbiased = ((x - mu) ** 2).mean(axis=0)",
        ),
        ["new_running_var", "biased variance"],
        "biased variance in running_var",
    ),
    m(
        EX3,
        "running-var-one-pass",
        (
            "var_unbiased = ((x - mu) ** 2).sum(axis=0) / (n - 1)",
            "var_unbiased = ((x**2).mean(axis=0) - mu**2) * n / (n - 1)",
        ),
        ["new_running_var [float32 (16, 3)", "catastrophic cancellation"],
        "one-pass variance in float32",
    ),
    m(
        EX3,
        "running-not-updated",
        ("return new_mean, new_var", "return running_mean, running_var"),
        ["new_running_mean", "not updated"],
        "running statistics not updated",
    ),
    m(
        EX3,
        "running-in-place",
        (
            (
                "new_mean = (1 - momentum) * running_mean + momentum * mu",
                "running_mean *= 1 - momentum\n    running_mean += momentum * mu\n    new_mean = running_mean",
            ),
        ),
        ["update_running_stats leaves its inputs unchanged", "and returned that same array"],
        "in place then return",
    ),
    m(
        EX3,
        "running-float64",
        ("return new_mean, new_var", "return new_mean.astype(np.float64), new_var"),
        ["new_running_mean [float32", "dtype float64, expected float32"],
        "float32 in, float64 out",
    ),
    m(
        EX3,
        "eval-uses-batch-stats",
        ("mu, var = running_mean, running_var", "mu, var = x.mean(axis=0), x.var(axis=0)"),
        ["y (eval mode)", "batch statistics in eval mode"],
        "batch statistics in eval mode",
    ),
    m(
        EX3,
        "training-uses-running",
        (
            (
                "mu = x.mean(axis=0)\n        var = ((x - mu) ** 2).mean(axis=0)",
                "mu, var = running_mean, running_var",
            ),
        ),
        ["y (training mode)", "running statistics"],
        "running statistics in training mode",
    ),
    m(
        EX3,
        "training-no-update",
        (
            "new_mean, new_var = update_running_stats(running_mean, running_var, x, momentum)",
            "new_mean, new_var = running_mean, running_var",
        ),
        ["running_mean (training mode)", "not updated in training mode"],
        "running statistics not updated in training",
    ),
    m(
        EX3,
        "training-momentum-not-passed",
        (
            "new_mean, new_var = update_running_stats(running_mean, running_var, x, momentum)",
            "new_mean, new_var = update_running_stats(running_mean, running_var, x)",
        ),
        [
            "running_mean (training mode) [float32 (6, 4), momentum=0.3",
            "ignore the momentum argument",
        ],
        "argument ignored",
    ),
    m(
        EX3,
        "forward-eps-hardcoded",
        (
            "y = gamma * (x - mu) / np.sqrt(var + eps) + beta",
            "y = gamma * (x - mu) / np.sqrt(var + 1e-5) + beta",
        ),
        ["y (training mode) [float32 (6, 4), momentum=0.3, eps=0.05]", "ignore the eps argument"],
        "argument ignored",
    ),
    m(
        EX3,
        "training-unbiased",
        ("var = ((x - mu) ** 2).mean(axis=0)", "var = x.var(axis=0, ddof=1)"),
        ["y (training mode)", "unbiased batch variance"],
        "unbiased variance to normalize",
    ),
    m(
        EX3,
        "no-single-example-check",
        (
            'if x.shape[0] < 2:\n            raise ValueError("Expected more than 1 value per channel when training")',
            "pass",
        ),
        ["training with one example raises ValueError", "returned normally"],
        "no error for N = 1",
    ),
    m(
        EX3,
        "keras-unchanged",
        ("return 1.0 - keras_momentum", "return keras_momentum"),
        ["torch_momentum_from_keras", "Keras momentum unchanged"],
        "momentum conventions confused",
    ),
    m(
        EX3,
        "keras-float",
        ("return 1.0 - keras_momentum", "return float(1.0 - keras_momentum)"),
        ["torch_momentum_from_keras", "expected"],
        "float32 in, float64 out",
    ),
    m(
        EX3,
        "eval-calls-torch",
        (
            "mu, var = running_mean, running_var",
            "import torch\n        mu, var = torch.from_numpy(running_mean).numpy(), running_var",
        ),
        ["rules", "torch"],
        "uses torch (rules)",
    ),
    # -- ex04: backward through the graph --------------------------------------------------------
    m(
        EX4,
        "forward-unbiased",
        ("var = (xc**2).mean(axis=0)", "var = (xc**2).sum(axis=0) / (x.shape[0] - 1)"),
        ["y [", "unbiased variance"],
        "unbiased variance to normalize",
    ),
    m(
        EX4,
        "forward-eps-hardcoded",
        ("std = np.sqrt(var + eps)", "std = np.sqrt(var + 1e-5)"),
        ["y [float32 (5, 3), eps=0.05]", "ignore the eps argument"],
        "argument ignored",
    ),
    m(
        EX4,
        "forward-one-pass",
        ("var = (xc**2).mean(axis=0)", "var = (x**2).mean(axis=0) - mu**2"),
        ["y [float32 (16, 3)]", "catastrophic cancellation"],
        "one-pass variance in float32",
    ),
    m(
        EX4,
        "numgrad-one-sided",
        (
            ("minus = np.sum(f(xp) * df)", "minus = np.sum(f(x.astype(np.float64)) * df)"),
            ("grad[idx] = (plus - minus) / (2 * h)", "grad[idx] = (plus - minus) / h"),
            ("xp[idx] = old - h", "xp[idx] = old"),
        ),
        ["numerical_gradient", "one-sided difference"],
        "one-sided difference",
    ),
    m(
        EX4,
        "numgrad-ignores-df",
        (
            ("plus = np.sum(f(xp) * df)", "plus = np.sum(f(xp))"),
            ("minus = np.sum(f(xp) * df)", "minus = np.sum(f(xp))"),
        ),
        ["numerical_gradient", "df is ignored"],
        "upstream gradient ignored",
    ),
    m(
        EX4,
        "numgrad-h-hardcoded",
        ("grad[idx] = (plus - minus) / (2 * h)", "grad[idx] = (plus - minus) / (2 * 1e-5)"),
        ["numerical_gradient of sum(x ** 3 * df) [float64 (3, 2), h=0.01]"],
        "argument ignored",
    ),
    m(
        EX4,
        "numgrad-not-restored",
        (
            (
                "xp = x.astype(np.float64)  # a float64 copy: the caller's x is never touched",
                "xp = x",
            ),
            ("        xp[idx] = old\n", ""),
        ),
        ["numerical_gradient leaves its inputs unchanged"],
        "input mutated",
    ),
    m(
        EX4,
        "numgrad-float64-out",
        ("return grad.astype(x.dtype)", "return grad"),
        ["numerical_gradient of sum(x ** 2 * df) [float32", "dtype float64, expected float32"],
        "float32 in, float64 out",
    ),
    m(
        EX4,
        "numgrad-float32-inside",
        (
            "xp = x.astype(np.float64)  # a float64 copy: the caller's x is never touched",
            "xp = x.copy()",
        ),
        ["numerical_gradient of sum(x ** 2 * df) [float32", "lost to rounding"],
        "float32 perturbation",
    ),
    m(
        EX4,
        "backward-no-mu-branch",
        ("dx = dxc + dmu / n", "dx = dxc"),
        ["dx [", "branch through mu is missing"],
        "missing branch through mu",
    ),
    m(
        EX4,
        "backward-no-var-branch",
        ("dxc = dxc + 2.0 * xc * dvar / n", "dxc = dxc"),
        ["dx [", "branch through sigma2"],
        "missing branch through sigma2",
    ),
    m(
        EX4,
        "backward-dgamma-not-summed",
        ("dgamma = (dy * x_hat).sum(axis=0)", "dgamma = dy * x_hat"),
        ["dgamma [", "has shape"],
        "dgamma not summed",
    ),
    m(
        EX4,
        "backward-dgamma-uses-x",
        ("dgamma = (dy * x_hat).sum(axis=0)", "dgamma = (dy * x).sum(axis=0)"),
        ["dgamma [", "uses x instead of x_hat"],
        "dgamma uses x",
    ),
    m(
        EX4,
        "backward-dbeta-not-summed",
        ("dbeta = dy.sum(axis=0)", "dbeta = dy"),
        ["dbeta [", "has shape"],
        "dbeta not summed",
    ),
    m(
        EX4,
        "backward-dgamma-keepdims",
        ("dgamma = (dy * x_hat).sum(axis=0)", "dgamma = (dy * x_hat).sum(axis=0, keepdims=True)"),
        ["dgamma [", "keepdims=True"],
        "keepdims kept",
    ),
    m(
        EX4,
        "backward-mutates-dy",
        ("dx_hat = dy * gamma", "dy *= gamma\n    dx_hat = dy"),
        ["backward_graph leaves its inputs unchanged", "`dy`"],
        "input mutated",
    ),
    m(
        EX4,
        "backward-torch-autograd",
        (
            "return dx, dgamma, dbeta",
            "import torch\n    xt = torch.tensor(x, requires_grad=True)\n    yt = (xt - xt.mean(0)) / torch.sqrt(xt.var(0, unbiased=False) + eps)\n"
            "    (yt * torch.from_numpy(dy * gamma)).sum().backward()\n    return xt.grad.numpy(), dgamma, dbeta",
        ),
        ["rules", "torch"],
        "autograd (rules)",
    ),
    # -- ex05: the closed form ---------------------------------------------------------------------
    m(
        EX5,
        "closed-no-mu-branch",
        (
            "dx = (gamma * inv_std) * (dy - dbeta / n - x_hat * (dgamma / n))",
            "dx = (gamma * inv_std) * (dy - x_hat * (dgamma / n))",
        ),
        ["dx [", "branch through mu is missing"],
        "missing branch through mu",
    ),
    m(
        EX5,
        "closed-no-var-branch",
        (
            "dx = (gamma * inv_std) * (dy - dbeta / n - x_hat * (dgamma / n))",
            "dx = (gamma * inv_std) * (dy - dbeta / n)",
        ),
        ["dx [", "branch through sigma2 is missing"],
        "missing branch through sigma2",
    ),
    m(
        EX5,
        "closed-n-minus-1",
        ("n = dy.shape[0]", "n = dy.shape[0] - 1"),
        ["dx [", "N - 1"],
        "N - 1 for N",
    ),
    m(
        EX5,
        "closed-no-gamma",
        (
            "dx = (gamma * inv_std) * (dy - dbeta / n - x_hat * (dgamma / n))",
            "dx = inv_std * (dy - dbeta / n - x_hat * (dgamma / n))",
        ),
        ["dx [", "expected"],
        "gamma missing in dx",
    ),
    m(
        EX5,
        "closed-dgamma-not-summed",
        ("dgamma = (dy * x_hat).sum(axis=0)", "dgamma = dy * x_hat"),
        ["dgamma [", "has shape"],
        "dgamma not summed",
    ),
    m(
        EX5,
        "closed-dbeta-not-summed",
        (
            ("dbeta = dy.sum(axis=0)", "dbeta = dy"),
            (
                "dx = (gamma * inv_std) * (dy - dbeta / n",
                "dx = (gamma * inv_std) * (dy - dy.sum(axis=0) / n",
            ),
        ),
        ["dbeta [", "has shape"],
        "dbeta not summed",
    ),
    m(
        EX5,
        "closed-dgamma-times-gamma",
        ("dgamma = (dy * x_hat).sum(axis=0)", "dgamma = gamma * (dy * x_hat).sum(axis=0)"),
        ["dgamma [", "multiplied by gamma"],
        "dgamma scaled",
    ),
    m(
        EX5,
        "closed-std-for-inv-std",
        ("dx = (gamma * inv_std) * (dy", "dx = (gamma / inv_std) * (dy"),
        ["dx [", "instead of dividing"],
        "inverse confused",
    ),
    m(
        EX5,
        "closed-float64",
        ("return dx, dgamma, dbeta", "return dx.astype(np.float64), dgamma, dbeta"),
        ["dx [float32", "dtype float64, expected float32"],
        "float32 in, float64 out",
    ),
    m(
        EX5,
        "closed-mutates-dy",
        ("dbeta = dy.sum(axis=0)", "dbeta = dy.sum(axis=0)\n    dy *= 1.0\n    dy -= dbeta / n"),
        ["backward_closed leaves its inputs unchanged", "`dy`"],
        "input mutated",
    ),
    m(
        EX5,
        "closed-hardcoded-width",
        ("n = dy.shape[0]", "n = 2"),
        ["dx [", "expected"],
        "answer right for one shape only",
    ),
    m(
        EX5,
        "closed-bn-core",
        (
            "return dx, dgamma, dbeta",
            "from bn_core import functional as helpers\n    dx = helpers.batch_norm_backward_closed(dy, {'x_hat': x_hat, 'inv_std': inv_std, 'gamma': gamma}) if False else dx\n"
            "    import bn_core\n    bn_core.batch_norm_forward(x_hat, gamma, gamma)\n    return dx, dgamma, dbeta",
        ),
        ["rules", "bn_core"],
        "calls bn_core (rules)",
    ),
    # -- ex06: spatial batch norm ------------------------------------------------------------------
    m(
        EX6,
        "layer-norm-axes",
        (
            (
                "mu = x.mean(axis=(0, 2, 3), keepdims=True)",
                "mu = x.mean(axis=(1, 2, 3), keepdims=True)",
            ),
            (
                "var = ((x - mu) ** 2).mean(axis=(0, 2, 3), keepdims=True)",
                "var = ((x - mu) ** 2).mean(axis=(1, 2, 3), keepdims=True)",
            ),
        ),
        ["y [", "layer normalization"],
        "images: stats over (C, H, W)",
    ),
    m(
        EX6,
        "batch-axis-only",
        (
            ("mu = x.mean(axis=(0, 2, 3), keepdims=True)", "mu = x.mean(axis=0, keepdims=True)"),
            (
                "var = ((x - mu) ** 2).mean(axis=(0, 2, 3), keepdims=True)",
                "var = ((x - mu) ** 2).mean(axis=0, keepdims=True)",
            ),
        ),
        ["y [", "batch axis only"],
        "images: stats over N only",
    ),
    m(
        EX6,
        "reshape-no-transpose",
        (
            (
                "mu = x.mean(axis=(0, 2, 3), keepdims=True)\n    var = ((x - mu) ** 2).mean(axis=(0, 2, 3), keepdims=True)\n    x_hat = (x - mu) / np.sqrt(var + eps)\n    return gamma.reshape(1, -1, 1, 1) * x_hat + beta.reshape(1, -1, 1, 1)",
                "rows = x.reshape(-1, x.shape[1])\n    mu = rows.mean(axis=0)\n    var = rows.var(axis=0)\n    return (gamma * (rows - mu) / np.sqrt(var + eps) + beta).reshape(x.shape)",
            ),
        ),
        ["y [", "without moving the channel axis last first"],
        "images: reshape without transpose",
    ),
    m(
        EX6,
        "forward-not-moved-back",
        (
            (
                "mu = x.mean(axis=(0, 2, 3), keepdims=True)\n    var = ((x - mu) ** 2).mean(axis=(0, 2, 3), keepdims=True)\n    x_hat = (x - mu) / np.sqrt(var + eps)\n    return gamma.reshape(1, -1, 1, 1) * x_hat + beta.reshape(1, -1, 1, 1)",
                "n, c, h, w = x.shape\n    rows = x.transpose(0, 2, 3, 1).reshape(-1, c)\n    mu = rows.mean(axis=0)\n    var = rows.var(axis=0)\n    y = gamma * (rows - mu) / np.sqrt(var + eps) + beta\n    return y.reshape(n, c, h, w)",
            ),
        ),
        ["y [", "without moving it back"],
        "images: transpose not undone",
    ),
    m(
        EX6,
        "forward-nhwc-out",
        (
            (
                "mu = x.mean(axis=(0, 2, 3), keepdims=True)\n    var = ((x - mu) ** 2).mean(axis=(0, 2, 3), keepdims=True)\n    x_hat = (x - mu) / np.sqrt(var + eps)\n    return gamma.reshape(1, -1, 1, 1) * x_hat + beta.reshape(1, -1, 1, 1)",
                "n, c, h, w = x.shape\n    rows = x.transpose(0, 2, 3, 1).reshape(-1, c)\n    mu = rows.mean(axis=0)\n    var = rows.var(axis=0)\n    y = gamma * (rows - mu) / np.sqrt(var + eps) + beta\n    return y.reshape(n, h, w, c)",
            ),
        ),
        ["y [", "another order"],
        "images: transpose not undone",
    ),
    m(
        EX6,
        "gamma-not-reshaped",
        (
            "return gamma.reshape(1, -1, 1, 1) * x_hat + beta.reshape(1, -1, 1, 1)",
            "return gamma * x_hat + beta",
        ),
        ["y [", "Reshape them to (1, C, 1, 1)"],
        "images: gamma not reshaped",
    ),
    m(
        EX6,
        "forward-unbiased",
        (
            "var = ((x - mu) ** 2).mean(axis=(0, 2, 3), keepdims=True)",
            "var = x.var(axis=(0, 2, 3), keepdims=True, ddof=1)",
        ),
        ["y [", "unbiased variance"],
        "unbiased variance to normalize",
    ),
    m(
        EX6,
        "forward-eps-hardcoded",
        ("x_hat = (x - mu) / np.sqrt(var + eps)", "x_hat = (x - mu) / np.sqrt(var + 1e-5)"),
        ["y [float32 (3, 4, 5, 2), eps=0.05]", "ignore the eps argument"],
        "argument ignored",
    ),
    m(
        EX6,
        "forward-one-pass",
        (
            "var = ((x - mu) ** 2).mean(axis=(0, 2, 3), keepdims=True)",
            "var = (x**2).mean(axis=(0, 2, 3), keepdims=True) - mu**2",
        ),
        ["y [float32 (2, 3, 4, 5)]", "catastrophic cancellation"],
        "one-pass variance in float32",
    ),
    m(
        EX6,
        "backward-dgamma-batch-only",
        ("dgamma = (dy * x_hat).sum(axis=axes)", "dgamma = (dy * x_hat).sum(axis=0)"),
        ["dgamma [", "has shape"],
        "dgamma not summed over H, W",
    ),
    m(
        EX6,
        "backward-dbeta-batch-only",
        ("dbeta = dy.sum(axis=axes)", "dbeta = dy.sum(axis=0)"),
        ["dbeta [", "has shape"],
        "dbeta not summed over H, W",
    ),
    m(
        EX6,
        "backward-dgamma-keepdims",
        (
            "dgamma = (dy * x_hat).sum(axis=axes)",
            "dgamma = (dy * x_hat).sum(axis=axes, keepdims=True)",
        ),
        ["dgamma [", "keepdims=True"],
        "keepdims kept",
    ),
    m(
        EX6,
        "backward-m-is-n",
        ("m = x.shape[0] * x.shape[2] * x.shape[3]", "m = x.shape[0]"),
        ["dx [", "expected"],
        "m = N instead of N * H * W",
    ),
    m(
        EX6,
        "backward-dx-not-moved-back",
        ("    return dx, dgamma, dbeta\n", "    return dx.transpose(0, 2, 3, 1), dgamma, dbeta\n"),
        ["dx [", "another order"],
        "images: dx transpose not undone",
    ),
    m(
        EX6,
        "backward-rows-not-moved-back",
        (
            "    return dx, dgamma, dbeta\n",
            "    n, c, h, w = x.shape\n    return dx.transpose(0, 2, 3, 1).reshape(n, c, h, w), dgamma, dbeta\n",
        ),
        ["dx [", "without moving it back"],
        "images: dx transpose not undone",
    ),
    m(
        EX6,
        "backward-mutates-dy",
        (
            "dx_hat = dy * gamma.reshape(1, -1, 1, 1)",
            "dy *= gamma.reshape(1, -1, 1, 1)\n    dx_hat = dy",
        ),
        ["spatial_batchnorm_backward leaves its inputs unchanged", "`dy`"],
        "input mutated",
    ),
    m(
        EX6,
        "forward-torch",
        (
            "return gamma.reshape(1, -1, 1, 1) * x_hat + beta.reshape(1, -1, 1, 1)",
            "nn = __import__('torch').nn\n    return nn.functional.batch_norm(__import__('torch').from_numpy(x), None, None, training=True, eps=eps).numpy() * gamma.reshape(1, -1, 1, 1) + beta.reshape(1, -1, 1, 1)",
        ),
        ["rules", "torch"],
        "uses torch via __import__ (rules)",
    ),
    # -- ex07: folding -------------------------------------------------------------------------------
    m(
        EX7,
        "affine-no-eps",
        ("a = gamma / np.sqrt(running_var + eps)", "a = gamma / np.sqrt(running_var)"),
        ["a (the scale)", "expected"],
        "eps missing",
    ),
    m(
        EX7,
        "affine-eps-hardcoded",
        ("a = gamma / np.sqrt(running_var + eps)", "a = gamma / np.sqrt(running_var + 1e-5)"),
        ["a (the scale) [float32, C=5, eps=0.05]", "ignore the eps argument"],
        "argument ignored",
    ),
    m(
        EX7,
        "affine-variance",
        ("a = gamma / np.sqrt(running_var + eps)", "a = gamma / (running_var + eps)"),
        ["a (the scale)", "variance instead of the standard deviation"],
        "variance for standard deviation",
    ),
    m(
        EX7,
        "affine-sign",
        ("return a, beta - a * running_mean", "return a, beta + a * running_mean"),
        ["b (the shift)", "wrong sign"],
        "sign of the shift",
    ),
    m(
        EX7,
        "affine-no-beta",
        ("return a, beta - a * running_mean", "return a, -a * running_mean"),
        ["b (the shift)", "forgets beta"],
        "beta dropped",
    ),
    m(
        EX7,
        "affine-float64",
        (
            "a = gamma / np.sqrt(running_var + eps)",
            "a = (gamma / np.sqrt(running_var + eps)).astype(np.float64)",
        ),
        ["a (the scale) [float32", "dtype float64, expected float32"],
        "float32 in, float64 out",
    ),
    m(
        EX7,
        "linear-columns",
        ("return a[:, None] * W, a * bias + b", "return a[None, :] * W, a * bias + b"),
        ["W_folded", "scale the rows"],
        "linear: scale columns",
    ),
    m(
        EX7,
        "linear-bias-dropped",
        ("return a[:, None] * W, a * bias + b", "return a[:, None] * W, b"),
        ["bias_folded", "old bias is dropped"],
        "bias dropped",
    ),
    m(
        EX7,
        "linear-bias-unscaled",
        ("return a[:, None] * W, a * bias + b", "return a[:, None] * W, bias + b"),
        ["bias_folded", "not scaled by a"],
        "bias not scaled",
    ),
    m(
        EX7,
        "linear-in-place",
        ("return a[:, None] * W, a * bias + b", "W *= a[:, None]\n    return W, a * bias + b"),
        ["fold_linear leaves its inputs unchanged", "and returned that same array"],
        "in place then return",
    ),
    m(
        EX7,
        "linear-none-crash",
        (
            "    if bias is None:\n        bias = np.zeros_like(running_mean)\n    return a[:, None] * W",
            "    return a[:, None] * W",
        ),
        ["bias_folded", "bias=None"],
        "bias None not handled",
    ),
    m(
        EX7,
        "linear-transposed",
        ("return a[:, None] * W, a * bias + b", "return (a[:, None] * W).T, a * bias + b"),
        ["W_folded", "another order"],
        "linear: transposed weight",
    ),
    m(
        EX7,
        "conv-not-reshaped",
        ("return a.reshape(-1, 1, 1, 1) * weight, a * bias + b", "return a * weight, a * bias + b"),
        ["weight_folded", "reshape a to (C_out, 1, 1, 1)"],
        "conv: scale not reshaped",
    ),
    m(
        EX7,
        "conv-input-channels",
        (
            "return a.reshape(-1, 1, 1, 1) * weight, a * bias + b",
            "return a.reshape(1, -1, 1, 1) * weight, a * bias + b",
        ),
        ["weight_folded", "reshape a to (C_out, 1, 1, 1)"],
        "conv: scale along input channels",
    ),
    m(
        EX7,
        "conv-bias-wrong",
        (
            "return a.reshape(-1, 1, 1, 1) * weight, a * bias + b",
            "return a.reshape(-1, 1, 1, 1) * weight, bias + b",
        ),
        ["bias_folded [float64, weight (4, 2, 3, 5)]", "not scaled by a"],
        "conv: bias wrong, weight right",
    ),
    m(
        EX7,
        "conv-weight-wrong",
        (
            "return a.reshape(-1, 1, 1, 1) * weight, a * bias + b",
            "return weight / np.sqrt(running_var + eps).reshape(-1, 1, 1, 1), a * bias + b",
        ),
        ["weight_folded [", "expected"],
        "conv: weight wrong, bias right",
    ),
    m(
        EX7,
        "conv-torch",
        (
            "return a.reshape(-1, 1, 1, 1) * weight, a * bias + b",
            "import torch\n    return (torch.from_numpy(a).reshape(-1, 1, 1, 1) * torch.from_numpy(weight)).numpy(), a * bias + b",
        ),
        ["rules", "torch"],
        "uses torch (rules)",
    ),
    # -- ex08: synchronized batch normalization -------------------------------------------------
    m(
        EX8,
        "merge-no-between-term",
        (
            "m2 = m2 + m2_b + delta**2 * (n * n_b / total)",
            "m2 = m2 + m2_b",
        ),
        ["m2 [", "without the between-shard term"],
        "sync: variance without the between-shard term",
    ),
    m(
        EX8,
        "merge-unweighted-mean",
        (
            "return n, mean, m2",
            "return n, np.mean([s[1] for s in stats if s[0] > 0], axis=0).astype(mean.dtype), m2",
        ),
        ["mean [", "without weighting them by their counts"],
        "sync: unweighted mean of means",
    ),
    m(
        EX8,
        "merge-sum-of-squares",
        (
            "n, mean, m2 = stats[0]",
            "n = sum(c for c, _, _ in stats)\n"
            "    total = sum(c * mu for c, mu, _ in stats)\n"
            "    squares = sum(m + c * mu * mu for c, mu, m in stats)\n"
            "    mean = total / n\n"
            "    return n, mean, squares - n * mean * mean",
        ),
        ["m2 [float32", "catastrophic cancellation"],
        "sync: sum-of-squares merge",
    ),
    m(
        EX8,
        "shard-unbiased-variance",
        ("m2 = ((x - mean) ** 2).sum(axis=0)", "m2 = count * x.var(axis=0, ddof=1)"),
        ["m2 [", "unbiased variance"],
        "sync: unbiased per-shard variances",
    ),
    m(
        EX8,
        "shard-one-pass-variance",
        (
            "m2 = ((x - mean) ** 2).sum(axis=0)",
            "m2 = (x * x).sum(axis=0) - count * mean * mean",
        ),
        ["m2 [float32 (", "catastrophic cancellation"],
        "one-pass variance in float32",
    ),
    m(
        EX8,
        "merge-in-place",
        ("mean = mean + delta * (n_b / total)", "mean += delta * (n_b / total)"),
        ["merge_stats leaves the arrays in its list arguments unchanged", "in place"],
        "input mutated",
    ),
    m(
        EX8,
        "shard-empty-nan",
        ("if count == 0:", "if False:"),
        ["mean [float64 (0, 4)]", "NaN"],
        "sync: empty shard not handled",
    ),
    m(
        EX8,
        "forward-sync-in-eval",
        (
            "mean, var = running_mean, running_var",
            "n, mean, m2 = merge_stats([shard_stats(x) for x in shards])\n        var = m2 / n",
        ),
        ["outs (eval)", "you synchronize in eval mode"],
        "sync: synchronizing in eval",
    ),
    m(
        EX8,
        "forward-per-device",
        (
            "outs = [(x - mean) * scale + beta for x in shards]",
            "outs = [(x - x.mean(axis=0)) * (gamma / np.sqrt(x.var(axis=0) + eps)) + beta if training and len(x) else (x - mean) * scale + beta for x in shards]",
        ),
        ["outs (training)", "plain per-device BN"],
        "sync: per-device statistics",
    ),
    m(
        EX8,
        "forward-unbiased-normalize",
        ("var = m2 / n", "var = m2 / (n - 1)"),
        ["outs (training)", "global unbiased variance"],
        "unbiased variance to normalize",
    ),
    m(
        EX8,
        "forward-running-var-biased",
        ("momentum * m2 / (n - 1)", "momentum * m2 / n"),
        ["running_var (training)", "biased global variance"],
        "biased variance in running_var",
    ),
    m(
        EX8,
        "forward-running-rank0",
        (
            "new_mean = (1 - momentum) * running_mean + momentum * mean",
            "new_mean = (1 - momentum) * running_mean + momentum * shards[0].mean(axis=0)",
        ),
        ["running_mean (training)", "rank 0"],
        "sync: running statistics of one rank",
    ),
    m(
        EX8,
        "forward-float64",
        (
            "scale = gamma / np.sqrt(var + eps)",
            "scale = gamma.astype(np.float64) / np.sqrt(var + eps)",
        ),
        ["outs (training) [float32", "dtype float64, expected float32"],
        "float32 in, float64 out",
    ),
    m(
        EX8,
        "backward-local-n",
        (
            "k * (dy - dbeta / n - x_hat * (dgamma / n))",
            "k * (dy - dbeta / len(dy) - x_hat * (dgamma / len(dy)))",
        ),
        ["dxs [", "local N"],
        "sync: local N in the backward",
    ),
    m(
        EX8,
        "backward-sums-not-reduced",
        (
            "k * (dy - dbeta / n - x_hat * (dgamma / n))",
            "k * (dy - dy.sum(axis=0) / len(dy) - x_hat * ((dy * x_hat).sum(axis=0) / len(dy)))",
        ),
        ["dxs [", "not reduced across ranks"],
        "sync: backward sums not all-reduced",
    ),
    m(
        EX8,
        "backward-dgamma-one-shard",
        (
            "dgamma = sum((dy * x_hat).sum(axis=0) for dy, x_hat in zip(dys, x_hats, strict=True))",
            "dgamma = (dys[0] * x_hats[0]).sum(axis=0)",
        ),
        ["dgamma [", "one shard only"],
        "dgamma not summed",
    ),
    m(
        EX8,
        "backward-torch",
        (
            "inv_std = 1 / np.sqrt(m2 / n + eps)",
            "inv_std = (1 / __import__('torch').sqrt(__import__('torch').from_numpy(m2 / n + eps))).numpy()",
        ),
        ["rules", "torch"],
        "uses torch via __import__ (rules)",
    ),
    # -- ex10: LayerNorm and GroupNorm ---------------------------------------------------------
    m(
        EX10,
        "ln-batch-axis",
        (
            "axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))\n    mu = x.mean(axis=axes, keepdims=True)\n    var",
            "axes = (0,)\n    mu = x.mean(axis=axes, keepdims=True)\n    var",
        ),
        ["y [", "that is batch normalization"],
        "LN/GN: statistics over the batch axis",
    ),
    m(
        EX10,
        "ln-batch-axis-depends-on-batch",
        (
            "axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))\n    mu = x.mean(axis=axes, keepdims=True)\n    var",
            "axes = (0,)\n    mu = x.mean(axis=axes, keepdims=True)\n    var",
        ),
        ["layer_norm: example 2's output does not depend", "changed when the OTHER examples"],
        "LN/GN: statistics over the batch axis",
    ),
    m(
        EX10,
        "ln-batch-axis-single-example",
        (
            "axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))\n    mu = x.mean(axis=axes, keepdims=True)\n    var",
            "axes = (0,)\n    mu = x.mean(axis=axes, keepdims=True)\n    var",
        ),
        ["layer_norm(x[2:3]) (a batch of one example)", "y is just bias"],
        "LN/GN: statistics over the batch axis",
    ),
    m(
        EX10,
        "ln-all-axes",
        (
            "axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))\n    mu = x.mean(axis=axes, keepdims=True)\n    var",
            "axes = tuple(range(1, x.ndim))\n    mu = x.mean(axis=axes, keepdims=True)\n    var",
        ),
        ["y [float32 (3, 5, 4), normalized_shape=(4,)", "ignoring normalized_shape"],
        "LN: normalized_shape ignored",
    ),
    m(
        EX10,
        "ln-last-axis-only",
        (
            "axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))\n    mu = x.mean(axis=axes, keepdims=True)\n    var",
            "axes = (-1,)\n    mu = x.mean(axis=axes, keepdims=True)\n    var",
        ),
        ["y [float64 (2, 3, 4, 5), normalized_shape=(3, 4, 5)", "last axis only"],
        "LN: multi-dim normalized_shape treated as its last axis",
    ),
    m(
        EX10,
        "ln-hardcoded-axes",
        (
            "axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))\n    mu = x.mean(axis=axes, keepdims=True)\n    var",
            "axes = (1, 2, 3)\n    mu = x.mean(axis=axes, keepdims=True)\n    var",
        ),
        ["y [float32 (3, 5, 4)", "layer_norm raised"],
        "answer right for one shape only",
    ),
    m(
        EX10,
        "ln-unbiased",
        (
            "var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)",
            "var = x.var(axis=axes, keepdims=True, ddof=1)",
        ),
        ["y [", "unbiased variance"],
        "unbiased variance to normalize",
    ),
    m(
        EX10,
        "ln-eps-outside",
        ("out = (x - mu) / np.sqrt(var + eps)", "out = (x - mu) / (np.sqrt(var) + eps)"),
        ["y [", "outside the square root"],
        "eps outside sqrt",
    ),
    m(
        EX10,
        "ln-eps-hardcoded",
        ("out = (x - mu) / np.sqrt(var + eps)", "out = (x - mu) / np.sqrt(var + 1e-5)"),
        ["y [float32 (3, 5, 4), normalized_shape=(4,), eps=0.05]", "ignore the eps argument"],
        "argument ignored",
    ),
    m(
        EX10,
        "ln-one-pass",
        (
            "var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)",
            "var = (x**2).mean(axis=axes, keepdims=True) - mu**2",
        ),
        ["y [float32 (2, 7, 3)", "catastrophic cancellation"],
        "one-pass variance in float32",
    ),
    m(
        EX10,
        "ln-float64-out",
        (
            "out = (x - mu) / np.sqrt(var + eps)",
            "out = (x - mu) / np.sqrt(var.astype(np.float64) + eps)",
        ),
        ["y [float32", "dtype float64, expected float32"],
        "float32 in, float64 out",
    ),
    m(
        EX10,
        "ln-affine-ignored",
        (
            "if weight is not None:\n        out = out * weight\n    if bias is not None:\n        out = out + bias\n    return out",
            "return out",
        ),
        ["y [float64 (2, 3, 4, 5)", "you ignore weight and bias"],
        "LN/GN: affine step ignored",
    ),
    m(
        EX10,
        "ln-weight-none-crashes",
        ("if weight is not None:\n        out = out * weight\n", "out = out * weight\n"),
        ["weight=None]", "layer_norm raised TypeError"],
        "LN/GN: weight=None not supported",
    ),
    m(
        EX10,
        "ln-torch",
        (
            "out = (x - mu) / np.sqrt(var + eps)",
            "out = __import__('torch').nn.functional.layer_norm(__import__('torch').from_numpy(x), tuple(normalized_shape), eps=eps).numpy()",
        ),
        ["rules", "torch"],
        "uses torch via __import__ (rules)",
    ),
    m(
        EX10,
        "lnb-no-mean-terms",
        (
            "dx = inv_std * (\n        dx_hat\n        - dx_hat.mean(axis=axes, keepdims=True)\n        - x_hat * (dx_hat * x_hat).mean(axis=axes, keepdims=True)\n    )",
            "dx = inv_std * dx_hat",
        ),
        ["dx [", "terms through the mean and the variance are missing"],
        "backward: mean terms missing",
    ),
    m(
        EX10,
        "lnb-no-mu",
        ("        - dx_hat.mean(axis=axes, keepdims=True)\n", ""),
        ["dx [", "term through the mean is missing"],
        "missing branch through mu",
    ),
    m(
        EX10,
        "lnb-no-var",
        ("        - x_hat * (dx_hat * x_hat).mean(axis=axes, keepdims=True)\n", ""),
        ["dx [", "term through the variance is missing"],
        "missing branch through sigma2",
    ),
    m(
        EX10,
        "lnb-count-n",
        (
            (
                "- dx_hat.mean(axis=axes, keepdims=True)",
                "- dx_hat.sum(axis=axes, keepdims=True) / x.shape[0]",
            ),
            (
                "- x_hat * (dx_hat * x_hat).mean(axis=axes, keepdims=True)",
                "- x_hat * (dx_hat * x_hat).sum(axis=axes, keepdims=True) / x.shape[0]",
            ),
        ),
        ["dx [", "by the batch size N"],
        "backward: count of batch norm",
    ),
    m(
        EX10,
        "lnb-no-weight",
        ("dx_hat = dy * weight", "dx_hat = dy"),
        ["dx [", "weight is missing"],
        "backward: weight missing in dx",
    ),
    m(
        EX10,
        "lnb-eps-hardcoded",
        (
            "inv_std = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=axes, keepdims=True) + eps)",
            "inv_std = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=axes, keepdims=True) + 1e-5)",
        ),
        ["dx [float32 (3, 5, 4), normalized_shape=(4,), eps=0.05]", "ignore the eps argument"],
        "argument ignored",
    ),
    m(
        EX10,
        "lnb-dweight-normalized-axes",
        ("dweight = (dy * x_hat).sum(axis=lead)", "dweight = (dy * x_hat).sum(axis=axes)"),
        ["dweight [", "has shape"],
        "dweight summed over the wrong axes",
    ),
    m(
        EX10,
        "lnb-dweight-axis0",
        ("dweight = (dy * x_hat).sum(axis=lead)", "dweight = (dy * x_hat).sum(axis=0)"),
        ["dweight [float32 (3, 5, 4)", "has shape (5, 4), expected (4,)"],
        "dweight summed over the wrong axes",
    ),
    m(
        EX10,
        "lnb-dweight-x",
        ("dweight = (dy * x_hat).sum(axis=lead)", "dweight = (dy * x).sum(axis=lead)"),
        ["dweight [", "dweight uses x instead of x_hat"],
        "dgamma uses x",
    ),
    m(
        EX10,
        "lnb-dbias-axis0",
        ("dbias = dy.sum(axis=lead)", "dbias = dy.sum(axis=0)"),
        ["dbias [float32 (3, 5, 4)", "has shape (5, 4), expected (4,)"],
        "dbeta not summed",
    ),
    m(
        EX10,
        "gn-batch-norm",
        (
            "groups = x.reshape(n, num_groups, -1)  # contiguous blocks of C // num_groups channels\n    mu = groups.mean(axis=2, keepdims=True)\n    var = ((groups - mu) ** 2).mean(axis=2, keepdims=True)\n    y = ((groups - mu) / np.sqrt(var + eps)).reshape(x.shape)",
            "axes = (0, *range(2, x.ndim))\n    mu = x.mean(axis=axes, keepdims=True)\n    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)\n    y = (x - mu) / np.sqrt(var + eps)",
        ),
        ["y [", "per channel over (N, H, W) or (N, L): that is batch normalization"],
        "LN/GN: statistics over the batch axis",
    ),
    m(
        EX10,
        "gn-batch-norm-depends-on-batch",
        (
            "groups = x.reshape(n, num_groups, -1)  # contiguous blocks of C // num_groups channels\n    mu = groups.mean(axis=2, keepdims=True)\n    var = ((groups - mu) ** 2).mean(axis=2, keepdims=True)\n    y = ((groups - mu) / np.sqrt(var + eps)).reshape(x.shape)",
            "axes = (0, *range(2, x.ndim))\n    mu = x.mean(axis=axes, keepdims=True)\n    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)\n    y = (x - mu) / np.sqrt(var + eps)",
        ),
        ["group_norm: example 2's output does not depend", "changed when the OTHER examples"],
        "LN/GN: statistics over the batch axis",
    ),
    m(
        EX10,
        "gn-strided-groups",
        (
            "groups = x.reshape(n, num_groups, -1)  # contiguous blocks of C // num_groups channels\n    mu = groups.mean(axis=2, keepdims=True)\n    var = ((groups - mu) ** 2).mean(axis=2, keepdims=True)\n    y = ((groups - mu) / np.sqrt(var + eps)).reshape(x.shape)",
            "v = x.reshape(n, -1, num_groups, *x.shape[2:])\n    axes = (1, *range(3, v.ndim))\n    mu = v.mean(axis=axes, keepdims=True)\n    var = ((v - mu) ** 2).mean(axis=axes, keepdims=True)\n    y = ((v - mu) / np.sqrt(var + eps)).reshape(x.shape)",
        ),
        ["y [", "strided channels"],
        "GN: strided groups",
    ),
    m(
        EX10,
        "gn-reshape-mixes-n-and-c",
        (
            "groups = x.reshape(n, num_groups, -1)  # contiguous blocks of C // num_groups channels\n    mu = groups.mean(axis=2, keepdims=True)\n    var = ((groups - mu) ** 2).mean(axis=2, keepdims=True)\n    y = ((groups - mu) / np.sqrt(var + eps)).reshape(x.shape)",
            "groups = x.reshape(num_groups, -1)\n    mu = groups.mean(axis=1, keepdims=True)\n    var = ((groups - mu) ** 2).mean(axis=1, keepdims=True)\n    y = ((groups - mu) / np.sqrt(var + eps)).reshape(x.shape)",
        ),
        ["y [", "mixes examples and channels"],
        "GN: reshape mixes N and C",
    ),
    m(
        EX10,
        "gn-groups-ignored",
        (
            "groups = x.reshape(n, num_groups, -1)  # contiguous",
            "groups = x.reshape(n, 1, -1)  # contiguous",
        ),
        ["y [float64 (3, 6, 4, 5), num_groups=2]", "num_groups ignored, as with num_groups=1"],
        "argument ignored",
    ),
    m(
        EX10,
        "gn-instance-norm",
        (
            "groups = x.reshape(n, num_groups, -1)  # contiguous",
            "groups = x.reshape(n, x.shape[1], -1)  # contiguous",
        ),
        ["y [float64 (3, 6, 4, 5), num_groups=2]", "InstanceNorm"],
        "argument ignored",
    ),
    m(
        EX10,
        "gn-weight-per-group",
        (
            "y = ((groups - mu) / np.sqrt(var + eps)).reshape(x.shape)\n    channel = (1, -1) + (1,) * (x.ndim - 2)  # (1, C, 1, 1) or (1, C, 1)\n    if weight is not None:\n        y = y * weight.reshape(channel)\n    if bias is not None:\n        y = y + bias.reshape(channel)\n    return y",
            "y = (groups - mu) / np.sqrt(var + eps)\n    if weight is not None:\n        y = y * weight[:num_groups].reshape(1, -1, 1)\n    if bias is not None:\n        y = y + bias[:num_groups].reshape(1, -1, 1)\n    return y.reshape(x.shape)",
        ),
        ["y [", "one weight and one bias per group"],
        "GN: weight per group",
    ),
    m(
        EX10,
        "gn-weight-not-reshaped",
        ("y = y * weight.reshape(channel)", "y = y * weight"),
        ["y [", "Reshape them to (1, C, 1, 1) or (1, C, 1)"],
        "images: gamma not reshaped",
    ),
    m(
        EX10,
        "gn-unbiased",
        (
            "var = ((groups - mu) ** 2).mean(axis=2, keepdims=True)",
            "var = groups.var(axis=2, keepdims=True, ddof=1)",
        ),
        ["y [", "unbiased variance"],
        "unbiased variance to normalize",
    ),
    m(
        EX10,
        "gn-eps-outside",
        (
            "y = ((groups - mu) / np.sqrt(var + eps)).reshape(x.shape)",
            "y = ((groups - mu) / (np.sqrt(var) + eps)).reshape(x.shape)",
        ),
        ["y [", "outside the square root"],
        "eps outside sqrt",
    ),
    m(
        EX10,
        "gn-one-pass",
        (
            "var = ((groups - mu) ** 2).mean(axis=2, keepdims=True)",
            "var = (groups**2).mean(axis=2, keepdims=True) - mu**2",
        ),
        ["y [float32 (2, 6, 3, 5)", "catastrophic cancellation"],
        "one-pass variance in float32",
    ),
    m(
        EX10,
        "gn-in-place",
        (
            "var = ((groups - mu) ** 2).mean(axis=2, keepdims=True)\n    y = ((groups - mu) / np.sqrt(var + eps)).reshape(x.shape)",
            "groups -= mu\n    var = (groups**2).mean(axis=2, keepdims=True)\n    y = (groups / np.sqrt(var + eps)).reshape(x.shape)",
        ),
        ["group_norm leaves its inputs unchanged", "changed its input `x` in place"],
        "input mutated",
    ),
    m(
        EX10,
        "gnb-weight-after",
        (
            (
                "g_dx_hat = (dy * weight.reshape((1, -1) + (1,) * (x.ndim - 2))).reshape(n, num_groups, -1)",
                "g_dx_hat = dy.reshape(n, num_groups, -1)",
            ),
            (
                "return g_dx.reshape(x.shape), dweight, dbias",
                "return g_dx.reshape(x.shape) * weight.reshape((1, -1) + (1,) * (x.ndim - 2)), dweight, dbias",
            ),
        ),
        ["dx [", "AFTER the normalization's backward"],
        "GN backward: weight applied after the group sums",
    ),
    m(
        EX10,
        "gnb-no-mean-terms",
        (
            "g_dx = g_inv_std * (\n        g_dx_hat\n        - g_dx_hat.mean(axis=2, keepdims=True)\n        - g_x_hat * (g_dx_hat * g_x_hat).mean(axis=2, keepdims=True)\n    )",
            "g_dx = g_inv_std * g_dx_hat",
        ),
        ["dx [", "terms through the mean and the variance are missing"],
        "backward: mean terms missing",
    ),
    m(
        EX10,
        "gnb-no-var",
        ("        - g_x_hat * (g_dx_hat * g_x_hat).mean(axis=2, keepdims=True)\n", ""),
        ["dx [", "term through the variance is missing"],
        "missing branch through sigma2",
    ),
    m(
        EX10,
        "gnb-count-hw",
        (
            (
                "- g_dx_hat.mean(axis=2, keepdims=True)",
                "- g_dx_hat.sum(axis=2, keepdims=True) / np.prod(x.shape[2:])",
            ),
            (
                "- g_x_hat * (g_dx_hat * g_x_hat).mean(axis=2, keepdims=True)",
                "- g_x_hat * (g_dx_hat * g_x_hat).sum(axis=2, keepdims=True) / np.prod(x.shape[2:])",
            ),
        ),
        ["dx [", "count of one channel"],
        "GN backward: count of one channel",
    ),
    m(
        EX10,
        "gnb-dweight-per-group",
        (
            "dweight = (dy * g_x_hat.reshape(x.shape)).sum(axis=not_channels)",
            "dweight = (dy.reshape(n, num_groups, -1) * g_x_hat).sum(axis=(0, 2))",
        ),
        ["dweight [float64 (3, 6, 4, 5), num_groups=2]", "summed per group"],
        "dweight summed over the wrong axes",
    ),
    m(
        EX10,
        "gnb-dbias-batch-only",
        ("dbias = dy.sum(axis=not_channels)", "dbias = dy.sum(axis=0)"),
        ["dbias [", "has shape"],
        "dbeta not summed",
    ),
    m(
        EX10,
        "gnb-torch",
        (
            "g_inv_std = 1.0 / np.sqrt(((g_x - g_mu) ** 2).mean(axis=2, keepdims=True) + eps)",
            "g_inv_std = __import__('torch').rsqrt(__import__('torch').from_numpy(((g_x - g_mu) ** 2).mean(axis=2, keepdims=True) + eps)).numpy()",
        ),
        ["rules", "torch"],
        "uses torch via __import__ (rules)",
    ),
]

# -- ex09: freezing batch normalization (torch) ----------------------------------------------------
E9_RG = "module.requires_grad_(False)  # gamma, beta: no gradient, so no update at all"
E9_EV = "module.eval()  # normalize with the running statistics and keep them"
E9_TR = "module.train = types.MethodType(stay_in_eval, module)  # survive model.train()"
E9_IS = "isinstance(module, nn.modules.batchnorm._BatchNorm)"
E9_SWAP = """    class Frozen(nn.Module):
        # a hand-written frozen layer: gamma, beta and the statistics as buffers
        def __init__(self, bn):
            super().__init__()
            self.eps = bn.eps
            for name in ("weight", "bias", "running_mean", "running_var"):
                self.register_buffer(name, getattr(bn, name).detach().clone())

        def forward(self, x):
            shape = (1, -1) + (1,) * (x.dim() - 2)
            scale = self.weight / torch.sqrt(self.running_var + self.eps)
            shift = self.bias - self.running_mean * scale
            return x * scale.reshape(shape) + shift.reshape(shape)

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, name, Frozen(child))
    return model
    for module in model.modules():"""

MUTANTS += [
    m(
        EX9,
        "requires-grad-only",
        ((E9_EV, "pass"), (E9_TR, "pass")),
        ["running_mean and running_var", "requires_grad_(False) freezes gamma and beta, not"],
        "frozen: requires_grad=False alone",
    ),
    m(
        EX9,
        "eval-undone-by-train",
        (E9_TR, "pass"),
        ["running_mean and running_var", "undone by the next model.train()"],
        "frozen: eval() undone by model.train()",
    ),
    m(
        EX9,
        "requires-grad-kept",
        (E9_RG, "pass"),
        ["gamma (weight) and beta (bias)", "requires_grad is still True", "weight decay"],
        "frozen: gamma and beta still trained",
    ),
    m(
        EX9,
        "momentum-zero",
        ((E9_EV, "module.momentum = 0.0"), (E9_TR, "pass")),
        ["num_batches_tracked", "momentum=0"],
        "frozen: momentum=0 hack",
    ),
    m(
        EX9,
        "track-running-stats-off",
        ((E9_EV, "module.track_running_stats = False"), (E9_TR, "pass")),
        ["outputs of model(x) in training mode", "in training mode"],
        "frozen: track_running_stats switched off",
    ),
    m(
        EX9,
        "freeze-everything",
        ("    return model\n", "    model.requires_grad_(False)\n    return model\n"),
        ["the other layers' parameters are trained", "did not change"],
        "frozen: every parameter frozen",
    ),
    m(
        EX9,
        "only-batchnorm2d",
        (E9_IS, "isinstance(module, nn.BatchNorm2d)"),
        ["running_mean and running_var", "BatchNorm1d", "_BatchNorm"],
        "frozen: only BatchNorm2d",
    ),
    m(
        EX9,
        "misses-sync-and-3d",
        (E9_IS, "isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d))"),
        ["running_mean and running_var", "SyncBatchNorm", "_BatchNorm"],
        "frozen: BatchNorm3d and SyncBatchNorm missed",
    ),
    m(
        EX9,
        "no-return",
        ("    return model\n", "\n"),
        ["returns the model", "returned None"],
        "frozen: model not returned",
    ),
    m(
        EX9,
        "swap-drops-keys",
        ("    for module in model.modules():", E9_SWAP),
        ["state_dict keys", "num_batches_tracked"],
        "frozen: in-place swap breaks the state_dict keys",
    ),
    m(
        EX9,
        "whole-model-eval",
        (
            (E9_EV, "pass"),
            (E9_TR, "pass"),
            (
                "    return model\n",
                "    model.eval()\n    model.train = lambda mode=True: model\n    return model\n",
            ),
        ),
        ["outputs of model(x) in training mode", "Dropout"],
        "frozen: the whole model kept in eval mode",
    ),
    m(
        EX9,
        "gradient-stopped",
        (E9_RG, E9_RG + "\n            module.register_forward_hook(lambda m, i, o: o.detach())"),
        ["the other layers' parameters are trained", "no gradient reached them"],
        "frozen: gradient stopped at the frozen layer",
    ),
    m(
        EX9,
        "bn-core-freeze",
        (
            "    for module in model.modules():",
            "    model = __import__('bn_core.torch_bridge', fromlist=['x']).freeze_batchnorm(model)\n"
            "    for module in model.modules():",
        ),
        ["rules", "bn_core"],
        "uses bn_core's freeze_batchnorm (rules)",
    ),
]

# -- ex11: a residual block with BN, and the residual stream at initialization --------------------
E11_G2 = '"gamma2": zeros.copy() if zero_init_last_gamma else ones.copy(),'
E11_POST = 'h2, m2, v2 = bn(np.maximum(h1, 0) @ p["W2"], 2)\n        y = np.maximum(x + h2, 0)'
E11_PRE = 'y = x + np.maximum(h2, 0) @ p["W2"]'
E11_OUT = 'out = p[f"gamma{k}"] * (h - mu) / np.sqrt(var + eps) + p[f"beta{k}"]'
E11_MEAN = 'new_mean = (1 - momentum) * p[f"running_mean{k}"] + momentum * mu'
E11_MS0, E11_MS = "out = [np.mean(h**2)]", "out.append(np.mean(h**2))"

MUTANTS += [
    m(
        EX11,
        "zero-gamma1",
        (
            (
                '"gamma1": ones.copy(),',
                '"gamma1": zeros.copy() if zero_init_last_gamma else ones.copy(),',
            ),
            (E11_G2, '"gamma2": ones.copy(),'),
        ),
        ["gamma1 [", "FIRST BN"],
        "residual: zero-init gamma on the wrong BN",
    ),
    m(
        EX11,
        "zero-init-ignored",
        (E11_G2, '"gamma2": ones.copy(),'),
        ["gamma2 [", "ignore zero_init_last_gamma"],
        "residual: zero_init_last_gamma ignored",
    ),
    m(
        EX11,
        "running-var-zero",
        ('"running_var1": ones.copy(),', '"running_var1": zeros.copy(),'),
        ["running_var1 [", "starts at 1"],
        "residual: running_var initialized at 0",
    ),
    m(
        EX11,
        "init-float64",
        ("np.ones(d, dtype=W1.dtype), np.zeros(d, dtype=W1.dtype)", "np.ones(d), np.zeros(d)"),
        ["gamma1 [float32", "dtype float64, expected float32"],
        "float32 in, float64 out",
    ),
    m(
        EX11,
        "bn-after-addition",
        (
            E11_POST,
            'h2, m2, v2 = bn(x + np.maximum(h1, 0) @ p["W2"], 2)\n        y = np.maximum(h2, 0)',
        ),
        ["y [", "after the addition"],
        "residual: BN after the addition",
    ),
    m(
        EX11,
        "skip-forgotten",
        ("y = np.maximum(x + h2, 0)", "y = np.maximum(h2, 0)"),
        ["y [", "skip connection is missing"],
        "residual: skip connection forgotten",
    ),
    m(
        EX11,
        "relu-after-addition-pre",
        (E11_PRE, 'y = np.maximum(x + np.maximum(h2, 0) @ p["W2"], 0)'),
        ["y [", "ReLU follows the addition"],
        "residual: ReLU after the addition in a pre-activation block",
    ),
    m(
        EX11,
        "eval-statistics",
        (
            E11_OUT,
            'out = p[f"gamma{k}"] * (h - p[f"running_mean{k}"]) / np.sqrt(p[f"running_var{k}"] + eps) + p[f"beta{k}"]',
        ),
        ["y [", "eval-mode statistics"],
        "batch statistics in eval mode",
    ),
    m(
        EX11,
        "unbiased-normalize",
        ("var = ((h - mu) ** 2).mean(axis=0)", "var = ((h - mu) ** 2).sum(axis=0) / (n - 1)"),
        ["y [", "unbiased variance"],
        "unbiased variance to normalize",
    ),
    m(
        EX11,
        "momentum-reversed",
        (E11_MEAN, 'new_mean = momentum * p[f"running_mean{k}"] + (1 - momentum) * mu'),
        ["running['running_mean1']", "momentum is reversed"],
        "momentum reversed",
    ),
    m(
        EX11,
        "biased-running-var",
        ("momentum * var * (n / (n - 1))", "momentum * var"),
        ["running['running_var1']", "biased variance"],
        "biased variance in running_var",
    ),
    m(
        EX11,
        "eps-ignored",
        ("np.sqrt(var + eps)", "np.sqrt(var + 1e-5)"),
        ["y [", "eps argument"],
        "argument ignored",
    ),
    m(
        EX11,
        "running-in-place",
        (
            E11_MEAN,
            'new_mean = p[f"running_mean{k}"]\n        new_mean *= 1 - momentum\n        new_mean += momentum * mu',
        ),
        ["block_forward leaves its inputs unchanged", "in place"],
        "input mutated",
    ),
    m(
        EX11,
        "block-argument-ignored",
        (
            '    if block == "post":\n        h1, m1, v1 = bn(x @ p',
            "    if True:\n        h1, m1, v1 = bn(x @ p",
        ),
        ["y [", "other kind of block"],
        "residual: block kind ignored",
    ),
    m(
        EX11,
        "stream-variance",
        ((E11_MS0, "out = [np.var(h)]"), (E11_MS, "out.append(np.var(h))")),
        ["stream mean squares", "variance (the mean removed)"],
        "residual: variance instead of the mean square",
    ),
    m(
        EX11,
        "stream-variance-axis1",
        (
            (E11_MS0, "out = [np.var(h, axis=1).mean()]"),
            (E11_MS, "out.append(np.var(h, axis=1).mean())"),
        ),
        ["stream mean squares", "axis=1"],
        "residual: variance over the wrong axis",
    ),
    m(
        EX11,
        "stream-no-input-entry",
        (E11_MS0, "out = []"),
        ["stream mean squares", "has shape"],
        "residual: stream list without the input",
    ),
    m(
        EX11,
        "stream-norm-ignored",
        ("        if norm:\n", "        if True:\n"),
        ["stream mean squares", "norm argument"],
        "argument ignored",
    ),
    m(
        EX11,
        "stream-zero-init-ignored",
        ("init_block(W1, W2, zero_init_last_gamma)", "init_block(W1, W2)"),
        ["stream mean squares", "ignore zero_init_last_gamma"],
        "argument ignored",
    ),
    m(
        EX11,
        "stream-float64",
        ("np.array(out, dtype=x.dtype)", "np.array(out, dtype=float)"),
        ["stream mean squares", "dtype float64, expected float32"],
        "float32 in, float64 out",
    ),
    m(
        EX11,
        "torch-relu",
        (
            "y = np.maximum(x + h2, 0)",
            "y = __import__('torch').relu(__import__('torch').from_numpy(x + h2)).numpy()",
        ),
        ["rules", "torch"],
        "uses torch via __import__ (rules)",
    ),
]

# An independent review's wrong answers (issue 9), kept in their own file.
from exercise_review import REVIEW_MUTANTS  # noqa: E402

MUTANTS += [m(*entry) for entry in REVIEW_MUTANTS]

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
EX7 = "ex07_folding"

MUTANTS: list[Mutant] = [
    # -- ex01: batch statistics and the training forward pass ---------------------------------
    m(
        EX1,
        "mean-over-features",
        ("x.mean(axis=0)", "x.mean(axis=1)"),
        ["batch_mean(x)", "over features (axis=1)"],
        "wrong reduction axis",
    ),
    m(
        EX1,
        "mean-float64",
        ("x.mean(axis=0)", "x.mean(axis=0, dtype=np.float64)"),
        ["batch_mean(x) for a float32 x", "dtype float64, expected float32"],
        "wrong dtype",
    ),
    m(
        EX1,
        "mean-never-returns",
        ("return x.mean(axis=0)", "while True:\n        pass"),
        ["batch_mean(x)", "did not return within"],
        "an answer that runs forever",
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
        "eps-outside-sqrt",
        ("x_hat = (x - mu) / np.sqrt(var + eps)", "x_hat = (x - mu) / (np.sqrt(var) + eps)"),
        ["y = batchnorm_forward_train", "eps is added outside the square root"],
        "eps outside sqrt",
    ),
    m(
        EX1,
        "eps-missing",
        ("x_hat = (x - mu) / np.sqrt(var + eps)", "x_hat = (x - mu) / np.sqrt(var)"),
        ["y = batchnorm_forward_train", "NaN", "eps is missing"],
        "eps missing",
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
        "forward-mutates-x",
        ("x_hat = (x - mu) / np.sqrt(var + eps)", "x -= mu\n    x_hat = x / np.sqrt(var + eps)"),
        ["batchnorm_forward_train leaves its inputs unchanged", "in place"],
        "input mutated",
    ),
    m(
        EX1,
        "forward-calls-torch",
        (
            "return gamma * x_hat + beta",
            "return F.batch_norm(torch.from_numpy(x), None, None, torch.from_numpy(gamma), "
            "torch.from_numpy(beta), training=True).numpy()",
        ),
        ["rules", "batchnorm_forward_train uses", "torch"],
        "calls torch's BN (rules)",
    ),
    # -- ex02: scale, shift, identity ------------------------------------------------------------
    m(
        EX2,
        "scale-shift-swapped",
        ("return gamma * x_hat + beta", "return beta * x_hat + gamma"),
        ["y = scale_shift", "gamma and beta are swapped"],
        "gamma/beta swapped",
    ),
    m(
        EX2,
        "scale-shift-no-return",
        ("return gamma * x_hat + beta", "gamma * x_hat + beta"),
        ["y = scale_shift", "is None", "return"],
        "returns None",
    ),
    m(
        EX2,
        "identity-gamma-no-eps",
        ("return np.sqrt(var + eps), mu", "return np.sqrt(var), mu"),
        ["gamma", "without eps"],
        "eps missing",
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
        "identity-returns-swapped",
        ("return np.sqrt(var + eps), mu", "return mu, np.sqrt(var + eps)"),
        ["gamma", "(beta, gamma) instead of (gamma, beta)"],
        "outputs swapped",
    ),
    m(
        EX2,
        "identity-one-value",
        ("return np.sqrt(var + eps), mu", "return np.sqrt(var + eps)"),
        ["gamma", "should return 2 values"],
        "wrong number of outputs",
    ),
    m(
        EX2,
        "undo-eps-missing",
        ("return x_hat * np.sqrt(var + eps) + mu", "return x_hat * np.sqrt(var) + mu"),
        ["x = undo_batchnorm", "eps is left out"],
        "eps missing",
    ),
    m(
        EX2,
        "undo-no-gamma",
        ("x_hat = (y - beta) / gamma", "x_hat = y - beta"),
        ["x = undo_batchnorm", "do not divide by gamma"],
        "gamma not undone",
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
        ["running_mean", "momentum is reversed"],
        "momentum reversed",
    ),
    m(
        EX3,
        "running-var-biased",
        (
            "var_unbiased = ((x - mu) ** 2).sum(axis=0) / (n - 1)",
            "var_unbiased = ((x - mu) ** 2).sum(axis=0) / n",
        ),
        ["running_var", "biased variance"],
        "biased variance in running_var",
    ),
    m(
        EX3,
        "running-mean-replaced",
        ("new_mean = (1 - momentum) * running_mean + momentum * mu", "new_mean = mu"),
        ["running_mean", "replaced by the batch mean"],
        "running mean not averaged",
    ),
    m(
        EX3,
        "running-updated-in-place",
        (
            "new_mean = (1 - momentum) * running_mean + momentum * mu",
            "running_mean *= 1 - momentum\n    running_mean += momentum * mu\n"
            "    new_mean = running_mean",
        ),
        ["update_running_stats leaves its inputs unchanged"],
        "input mutated",
    ),
    m(
        EX3,
        "train-no-update",
        (
            "new_mean, new_var = update_running_stats(running_mean, running_var, x, momentum)",
            "new_mean, new_var = running_mean.copy(), running_var.copy()",
        ),
        ["running_mean (training mode)", "not updated in training mode"],
        "running statistics not updated in training",
    ),
    m(
        EX3,
        "train-normalizes-unbiased",
        ("var = ((x - mu) ** 2).mean(axis=0)", "var = x.var(axis=0, ddof=1)"),
        ["y (training mode)", "unbiased batch variance"],
        "unbiased variance to normalize",
    ),
    m(
        EX3,
        "train-uses-running",
        (
            (
                "mu = x.mean(axis=0)\n        var = ((x - mu) ** 2).mean(axis=0)",
                "mu, var = running_mean, running_var",
            )
        ),
        ["y (training mode)", "running statistics"],
        "running stats in training mode",
    ),
    m(
        EX3,
        "eval-uses-batch",
        ("mu, var = running_mean, running_var", "mu, var = x.mean(axis=0), x.var(axis=0)"),
        ["y (eval mode)", "batch statistics in eval mode"],
        "batch statistics in eval mode",
    ),
    m(
        EX3,
        "eval-updates-running",
        (
            "new_mean, new_var = running_mean.copy(), running_var.copy()",
            "new_mean, new_var = update_running_stats(running_mean, running_var, x, momentum)",
        ),
        ["running_mean (eval mode)", "must not change in eval mode"],
        "running stats change in eval",
    ),
    m(
        EX3,
        "no-error-for-one-example",
        ("if x.shape[0] < 2:", "if x.shape[0] < 1:"),
        ["training with one example raises ValueError", "returned normally"],
        "no error for N = 1 in training",
    ),
    m(
        EX3,
        "keras-momentum-unchanged",
        ("return 1.0 - keras_momentum", "return keras_momentum"),
        ["torch_momentum_from_keras(0.99)", "Keras momentum unchanged"],
        "momentum convention",
    ),
    # -- ex04: backward through the graph --------------------------------------------------------
    m(
        EX4,
        "forward-unbiased",
        ("var = (xc**2).mean(axis=0)", "var = (xc**2).sum(axis=0) / (x.shape[0] - 1)"),
        ["✗ y:", "unbiased variance"],
        "unbiased variance to normalize",
    ),
    m(
        EX4,
        "no-mu-branch",
        ("dx = dxc + dmu / n", "dx = dxc"),
        ["dx for x of shape", "branch through mu is missing"],
        "missing branch through mu",
    ),
    m(
        EX4,
        "no-sigma2-branch",
        ("dxc = dxc + 2.0 * xc * dvar / n", "dxc = dxc"),
        ["dx for x of shape", "branch through sigma2 (var) is missing"],
        "missing branch through sigma2",
    ),
    m(
        EX4,
        "dgamma-not-summed",
        ("dgamma = (dy * x_hat).sum(axis=0)", "dgamma = dy * x_hat"),
        ["dgamma for x of shape", "dgamma is not summed over the batch"],
        "dgamma not summed",
    ),
    m(
        EX4,
        "dgamma-uses-x",
        ("dgamma = (dy * x_hat).sum(axis=0)", "dgamma = (dy * x).sum(axis=0)"),
        ["dgamma for x of shape", "dgamma uses x instead of x_hat"],
        "dgamma uses x",
    ),
    m(
        EX4,
        "dbeta-not-summed",
        ("dbeta = dy.sum(axis=0)", "dbeta = dy"),
        ["dbeta for x of shape", "dbeta is not summed over the batch"],
        "dbeta not summed",
    ),
    m(
        EX4,
        "numgrad-one-sided",
        (("x[idx] = old - h", "x[idx] = old"), ("(plus - minus) / (2 * h)", "(plus - minus) / h")),
        ["numerical_gradient(x ** 2)", "one-sided difference"],
        "gradient check: one-sided",
    ),
    m(
        EX4,
        "numgrad-mutates-x",
        (
            ("x = x.astype(np.float64)  # a copy: the caller's x is never touched", "pass"),
            ("x[idx] = old\n", "\n"),
        ),
        ["numerical_gradient leaves its inputs unchanged", "in place"],
        "input mutated",
    ),
    m(
        EX4,
        "numgrad-ignores-df",
        (
            ("plus = np.sum(f(x) * df)", "plus = np.sum(f(x))"),
            ("minus = np.sum(f(x) * df)", "minus = np.sum(f(x))"),
        ),
        ["numerical_gradient(x ** 2)", "df is ignored"],
        "gradient check: upstream ignored",
    ),
    # -- ex05: closed-form backward --------------------------------------------------------------
    m(
        EX5,
        "no-mu-branch",
        ("(dy - dbeta / n - x_hat", "(dy - x_hat"),
        ["dx (N=2, D=3)", "branch through mu is missing"],
        "missing branch through mu",
    ),
    m(
        EX5,
        "no-sigma2-branch",
        (" - x_hat * (dgamma / n)", ""),
        ["dx (N=2, D=3)", "branch through sigma2 is missing"],
        "missing branch through sigma2",
    ),
    m(
        EX5,
        "divides-by-n-minus-1",
        ("n = dy.shape[0]", "n = dy.shape[0] - 1"),
        ["dx (N=2, D=3)", "N - 1 instead of N"],
        "unbiased N - 1 in the backward",
    ),
    m(
        EX5,
        "gamma-missing",
        ("dx = (gamma * inv_std) *", "dx = inv_std *"),
        ["dx (N=2, D=3)", "gamma is missing"],
        "gamma missing from the chain rule",
    ),
    m(
        EX5,
        "dgamma-not-summed",
        ("dgamma = (dy * x_hat).sum(axis=0)", "dgamma = dy * x_hat"),
        ["dgamma (N=2, D=3)", "dgamma is not summed over the batch"],
        "dgamma not summed",
    ),
    m(
        EX5,
        "dbeta-not-summed",
        ("dbeta = dy.sum(axis=0)", "dbeta = dy"),
        ["dbeta (N=2, D=3)", "dbeta is not summed over the batch"],
        "dbeta not summed",
    ),
    m(
        EX5,
        "python-loop-never-ends",
        ("n = dy.shape[0]", "n = dy.shape[0]\n    i = 0\n    while i < n:\n        n = n + 0"),
        ["dx (N=2, D=3)", "did not return within"],
        "an answer that runs forever",
    ),
    # -- ex06: spatial batch norm ----------------------------------------------------------------
    m(
        EX6,
        "stats-over-chw",
        (
            (
                "mu = x.mean(axis=(0, 2, 3), keepdims=True)\n    var = ((x - mu) ** 2).mean(axis=(0, 2, 3)",
                "mu = x.mean(axis=(1, 2, 3), keepdims=True)\n    var = ((x - mu) ** 2).mean(axis=(1, 2, 3)",
            )
        ),
        ["y for x of shape (2, 3, 4, 5)", "layer normalization"],
        "images: stats over (C, H, W)",
    ),
    m(
        EX6,
        "stats-over-batch-only",
        (
            (
                "mu = x.mean(axis=(0, 2, 3), keepdims=True)\n    var = ((x - mu) ** 2).mean(axis=(0, 2, 3)",
                "mu = x.mean(axis=0, keepdims=True)\n    var = ((x - mu) ** 2).mean(axis=0",
            )
        ),
        ["y for x of shape (2, 3, 4, 5)", "batch axis only"],
        "images: stats over N only",
    ),
    m(
        EX6,
        "reshape-without-transpose",
        (
            (
                "mu = x.mean(axis=(0, 2, 3), keepdims=True)\n"
                "    var = ((x - mu) ** 2).mean(axis=(0, 2, 3), keepdims=True)\n"
                "    x_hat = (x - mu) / np.sqrt(var + eps)\n"
                "    return gamma.reshape(1, -1, 1, 1) * x_hat + beta.reshape(1, -1, 1, 1)",
                "rows = x.reshape(-1, x.shape[1])\n"
                "    x_hat = (rows - rows.mean(axis=0)) / np.sqrt(rows.var(axis=0) + eps)\n"
                "    return (gamma * x_hat + beta).reshape(x.shape)",
            )
        ),
        ["y for x of shape (2, 3, 4, 5)", "without moving the channel axis last"],
        "images: reshape without transpose",
    ),
    m(
        EX6,
        "gamma-not-reshaped",
        (
            "return gamma.reshape(1, -1, 1, 1) * x_hat + beta.reshape(1, -1, 1, 1)",
            "return gamma * x_hat + beta",
        ),
        ["y for x of shape (2, 3, 4, 5)", "could not be broadcast"],
        "images: gamma on the wrong axis",
    ),
    m(
        EX6,
        "dgamma-batch-only",
        ("dgamma = (dy * x_hat).sum(axis=axes)", "dgamma = (dy * x_hat).sum(axis=0)"),
        ["dgamma", "summed over the batch only, not over H and W"],
        "dgamma not summed (images)",
    ),
    m(
        EX6,
        "dgamma-uses-x",
        ("dgamma = (dy * x_hat).sum(axis=axes)", "dgamma = (dy * x).sum(axis=axes)"),
        ["dgamma", "dgamma uses x instead of x_hat"],
        "dgamma uses x",
    ),
    m(
        EX6,
        "backward-m-is-n",
        ("m = x.shape[0] * x.shape[2] * x.shape[3]", "m = x.shape[0]"),
        ["✗ dx:", "m = N * H * W"],
        "images: effective batch size wrong",
    ),
    # -- ex07: folding ---------------------------------------------------------------------------
    m(
        EX7,
        "affine-eps-missing",
        ("a = gamma / np.sqrt(running_var + eps)", "a = gamma / np.sqrt(running_var)"),
        ["a (the scale)", "eps is missing"],
        "eps missing",
    ),
    m(
        EX7,
        "affine-var-not-std",
        ("a = gamma / np.sqrt(running_var + eps)", "a = gamma / (running_var + eps)"),
        ["a (the scale)", "variance instead of the standard deviation"],
        "variance for std",
    ),
    m(
        EX7,
        "affine-shift-sign",
        ("return a, beta - a * running_mean", "return a, beta + a * running_mean"),
        ["b (the shift)", "wrong sign"],
        "shift sign",
    ),
    m(
        EX7,
        "linear-scales-inputs",
        ("return a[:, None] * W, a * bias + b", "return W * a, a * bias + b"),
        ["W_folded", "could not be broadcast"],
        "folding along the wrong axis",
    ),
    m(
        EX7,
        "linear-drops-bias",
        ("return a[:, None] * W, a * bias + b", "return a[:, None] * W, b"),
        ["bias_folded", "old bias is dropped"],
        "old bias dropped",
    ),
    m(
        EX7,
        "linear-mutates-W",
        ("return a[:, None] * W, a * bias + b", "W *= a[:, None]\n    return W, a * bias + b"),
        ["fold_linear leaves its inputs unchanged", "in place"],
        "input mutated",
    ),
    m(
        EX7,
        "linear-bias-none",
        (
            "if bias is None:\n        bias = np.zeros_like(running_mean)\n    return a[:, None] * W",
            "return a[:, None] * W",
        ),
        ["bias_folded when bias is None", "TypeError"],
        "bias=None not handled",
    ),
    m(
        EX7,
        "conv-scales-inputs",
        ("return a.reshape(-1, 1, 1, 1) * weight", "return a.reshape(1, -1, 1, 1) * weight"),
        ["weight_folded", "could not be broadcast"],
        "folding along the wrong axis",
    ),
]

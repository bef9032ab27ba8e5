"""Correct answers written in unusual ways, used by ``tests/test_exercises.py``: all must pass.

A grader that rejects honest code is as wrong as one that passes a mistake. Each variant edits
the solution code of one exercise (inside the ``### BEGIN SOLUTION`` / ``### END SOLUTION``
blocks, like the mutants in ``tests/exercise_mutants.py``) into another correct answer: helpers
named like the book's functions (``batch_norm``, ``batch_norm_forward``, ``functional`` ...),
Python loops, ``einsum``, float64 arithmetic cast back, transposes instead of ``moveaxis``, the
folded ``a * x + b`` form, a dict as cache. Every grading cell must pass.
"""

from __future__ import annotations

from exercise_mutants import (
    E9_IS,
    E9_RG,
    E9_TR,
    E11_MS,
    E11_MS0,
    EX1,
    EX2,
    EX3,
    EX4,
    EX5,
    EX6,
    EX7,
    EX8,
    EX9,
    EX10,
    EX11,
    Mutant,
)


def v(exercise, name, edits):
    if isinstance(edits[0], str):
        edits = (edits,)
    return Mutant(exercise, name, tuple(edits), (), "correct")


EX6_FORWARD = """mu = x.mean(axis=(0, 2, 3), keepdims=True)
    var = ((x - mu) ** 2).mean(axis=(0, 2, 3), keepdims=True)
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma.reshape(1, -1, 1, 1) * x_hat + beta.reshape(1, -1, 1, 1)"""

EX10_LN_FORWARD = """axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    out = (x - mu) / np.sqrt(var + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out"""

EX10_LN_BACKWARD = """axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    lead = tuple(range(x.ndim - len(normalized_shape)))
    mu = x.mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=axes, keepdims=True) + eps)
    x_hat = (x - mu) * inv_std
    dweight = (dy * x_hat).sum(axis=lead)
    dbias = dy.sum(axis=lead)
    dx_hat = dy * weight
    dx = inv_std * (
        dx_hat
        - dx_hat.mean(axis=axes, keepdims=True)
        - x_hat * (dx_hat * x_hat).mean(axis=axes, keepdims=True)
    )
    return dx, dweight, dbias"""

EX10_GN_FORWARD = """n = x.shape[0]
    groups = x.reshape(n, num_groups, -1)  # contiguous blocks of C // num_groups channels
    mu = groups.mean(axis=2, keepdims=True)
    var = ((groups - mu) ** 2).mean(axis=2, keepdims=True)
    y = ((groups - mu) / np.sqrt(var + eps)).reshape(x.shape)
    channel = (1, -1) + (1,) * (x.ndim - 2)  # (1, C, 1, 1) or (1, C, 1)
    if weight is not None:
        y = y * weight.reshape(channel)
    if bias is not None:
        y = y + bias.reshape(channel)
    return y"""

EX10_GN_BACKWARD = """n = x.shape[0]
    not_channels = (0, *range(2, x.ndim))
    g_x = x.reshape(n, num_groups, -1)
    g_mu = g_x.mean(axis=2, keepdims=True)
    g_inv_std = 1.0 / np.sqrt(((g_x - g_mu) ** 2).mean(axis=2, keepdims=True) + eps)
    g_x_hat = (g_x - g_mu) * g_inv_std  # (N, G, K)
    dweight = (dy * g_x_hat.reshape(x.shape)).sum(axis=not_channels)
    dbias = dy.sum(axis=not_channels)
    g_dx_hat = (dy * weight.reshape((1, -1) + (1,) * (x.ndim - 2))).reshape(n, num_groups, -1)
    g_dx = g_inv_std * (
        g_dx_hat
        - g_dx_hat.mean(axis=2, keepdims=True)
        - g_x_hat * (g_dx_hat * g_x_hat).mean(axis=2, keepdims=True)
    )
    return g_dx.reshape(x.shape), dweight, dbias"""

EX6_BACKWARD_TAIL = """    return dx, dgamma, dbeta
"""

VARIANTS: list[Mutant] = [
    # -- ex01 ---------------------------------------------------------------------------------------
    v(
        EX1,
        "helper-named-batch-norm",
        (
            "return x.mean(axis=0)",
            "def batch_norm(values):\n        return values.sum(axis=0) / values.shape[0]\n\n    return batch_norm(x)",
        ),
    ),
    v(
        EX1,
        "mean-loop",
        (
            "return x.mean(axis=0)",
            "out = np.zeros(x.shape[1], dtype=x.dtype)\n    for row in x:\n        out = out + row\n    return out / x.shape[0]",
        ),
    ),
    v(EX1, "mean-einsum", ("return x.mean(axis=0)", "return np.einsum('nd->d', x) / x.shape[0]")),
    v(
        EX1,
        "var-float64-cast-back",
        (
            "return ((x - batch_mean(x)) ** 2).mean(axis=0)",
            "x64 = x.astype(np.float64)\n    return x64.var(axis=0).astype(x.dtype)",
        ),
    ),
    v(
        EX1,
        "var-welford-loop",
        (
            "return ((x - batch_mean(x)) ** 2).mean(axis=0)",
            "mean = np.zeros(x.shape[1])\n    m2 = np.zeros(x.shape[1])\n"
            "    for k, row in enumerate(x.astype(np.float64), start=1):\n"
            "        delta = row - mean\n        mean = mean + delta / k\n        m2 = m2 + delta * (row - mean)\n"
            "    return (m2 / x.shape[0]).astype(x.dtype)",
        ),
    ),
    v(
        EX1,
        "forward-helpers-named-like-the-book",
        (
            "mu = batch_mean(x)\n    var = batch_var(x)\n    x_hat = (x - mu) / np.sqrt(var + eps)\n    return gamma * x_hat + beta",
            "def batch_norm_forward(v, g, b, e):\n        functional = (v - v.mean(axis=0)) / np.sqrt(v.var(axis=0) + e)\n"
            "        return g * functional + b\n\n    return batch_norm_forward(x, gamma, beta, eps)",
        ),
    ),
    v(
        EX1,
        "forward-affine-form",
        (
            "x_hat = (x - mu) / np.sqrt(var + eps)\n    return gamma * x_hat + beta",
            "a = gamma / np.sqrt(var + eps)\n    return a * x + (beta - a * mu)",
        ),
    ),
    # -- ex02 ---------------------------------------------------------------------------------------
    v(
        EX2,
        "scale-shift-einsum",
        ("return gamma * x_hat + beta", "return np.einsum('nd,d->nd', x_hat, gamma) + beta"),
    ),
    v(
        EX2,
        "scale-shift-ufuncs",
        (
            "return gamma * x_hat + beta",
            "return np.add(np.multiply(x_hat, gamma[np.newaxis, :]), beta[np.newaxis, :])",
        ),
    ),
    v(
        EX2,
        "identity-np-var-float64",
        (
            "var = ((x - mu) ** 2).mean(axis=0)\n    return np.sqrt(var + eps), mu",
            "var = np.var(x.astype(np.float64), axis=0)\n    return np.sqrt(var + eps).astype(x.dtype), mu",
        ),
    ),
    v(
        EX2,
        "undo-one-line",
        (
            "x_hat = (y - beta) / gamma\n    return x_hat * np.sqrt(var + eps) + mu",
            "return mu + np.sqrt(var + eps) / gamma * (y - beta)",
        ),
    ),
    # -- ex03 ---------------------------------------------------------------------------------------
    v(
        EX3,
        "update-np-var-ddof",
        (
            "var_unbiased = ((x - mu) ** 2).sum(axis=0) / (n - 1)",
            "var_unbiased = np.var(x, axis=0, ddof=1)",
        ),
    ),
    v(
        EX3,
        "update-lerp-form",
        (
            (
                "new_mean = (1 - momentum) * running_mean + momentum * mu",
                "new_mean = running_mean + momentum * (mu - running_mean)",
            ),
            (
                "new_var = (1 - momentum) * running_var + momentum * var_unbiased",
                "new_var = running_var + momentum * (var_unbiased - running_var)",
            ),
        ),
    ),
    v(
        EX3,
        "forward-helper-named-batch-norm",
        (
            "y = gamma * (x - mu) / np.sqrt(var + eps) + beta",
            "def batch_norm(v, m, s2):\n        return gamma * (v - m) / np.sqrt(s2 + eps) + beta\n\n    y = batch_norm(x, mu, var)",
        ),
    ),
    v(
        EX3,
        "eval-returns-same-arrays",
        (
            "new_mean, new_var = running_mean.copy(), running_var.copy()",
            "new_mean, new_var = running_mean, running_var",
        ),
    ),
    v(EX3, "keras-numpy", ("return 1.0 - keras_momentum", "return np.subtract(1, keras_momentum)")),
    # -- ex04 ---------------------------------------------------------------------------------------
    v(
        EX4,
        "cache-dict",
        (
            (
                "cache = (x, xc, var, std, inv_std, x_hat, gamma, eps)",
                "cache = {'xc': xc, 'std': std, 'inv_std': inv_std, 'x_hat': x_hat, 'gamma': gamma}",
            ),
            (
                "x, xc, var, std, inv_std, x_hat, gamma, eps = cache",
                "xc, std, inv_std, x_hat, gamma = (cache[k] for k in ('xc', 'std', 'inv_std', 'x_hat', 'gamma'))",
            ),
        ),
    ),
    v(
        EX4,
        "numgrad-copies",
        (
            """    xp = x.astype(np.float64)  # a float64 copy: the caller's x is never touched
    grad = np.zeros_like(xp)
    for idx in np.ndindex(xp.shape):
        old = xp[idx]
        xp[idx] = old + h
        plus = np.sum(f(xp) * df)
        xp[idx] = old - h
        minus = np.sum(f(xp) * df)
        xp[idx] = old
        grad[idx] = (plus - minus) / (2 * h)
    return grad.astype(x.dtype)""",
            """    grad = np.empty(x.shape)
    for idx in np.ndindex(*x.shape):
        step = np.zeros(x.shape)
        step[idx] = h
        base = x.astype(np.float64)
        grad[idx] = (np.sum(f(base + step) * df) - np.sum(f(base - step) * df)) / (2 * h)
    return grad.astype(x.dtype)""",
        ),
    ),
    v(
        EX4,
        "backward-helper-named-batch-norm-backward",
        (
            "    return dx, dgamma, dbeta\n",
            "    def batch_norm_backward(g):\n        return g\n\n    return batch_norm_backward(dx), dgamma, dbeta\n",
        ),
    ),
    # -- ex05 ---------------------------------------------------------------------------------------
    v(
        EX5,
        "closed-einsum",
        (
            ("dbeta = dy.sum(axis=0)", "dbeta = np.einsum('nd->d', dy)"),
            ("dgamma = (dy * x_hat).sum(axis=0)", "dgamma = np.einsum('nd,nd->d', dy, x_hat)"),
        ),
    ),
    v(
        EX5,
        "closed-textbook-form",
        (
            "dx = (gamma * inv_std) * (dy - dbeta / n - x_hat * (dgamma / n))",
            "dxh = dy * gamma\n    dx = inv_std / n * (n * dxh - dxh.sum(axis=0) - x_hat * (dxh * x_hat).sum(axis=0))",
        ),
    ),
    v(
        EX5,
        "closed-float64-cast-back",
        (
            "    return dx, dgamma, dbeta\n",
            "    functional = [a.astype(np.float64).astype(dy.dtype) for a in (dx, dgamma, dbeta)]\n    return tuple(functional)\n",
        ),
    ),
    # -- ex06 ---------------------------------------------------------------------------------------
    v(
        EX6,
        "forward-transpose-route",
        (
            EX6_FORWARD,
            "n, c, h, w = x.shape\n"
            "    def batch_norm_forward(rows):\n"
            "        return gamma * (rows - rows.mean(axis=0)) / np.sqrt(rows.var(axis=0) + eps) + beta\n\n"
            "    rows = x.transpose(0, 2, 3, 1).reshape(-1, c)\n"
            "    return batch_norm_forward(rows).reshape(n, h, w, c).transpose(0, 3, 1, 2)",
        ),
    ),
    v(
        EX6,
        "forward-einsum",
        (
            EX6_FORWARD,
            "m = x.shape[0] * x.shape[2] * x.shape[3]\n"
            "    mu = np.einsum('nchw->c', x) / m\n"
            "    xc = x - mu[None, :, None, None]\n"
            "    var = np.einsum('nchw,nchw->c', xc, xc) / m\n"
            "    return xc * (gamma / np.sqrt(var + eps))[None, :, None, None] + beta[None, :, None, None]",
        ),
    ),
    v(
        EX6,
        "backward-transpose-route",
        (
            """    axes = (0, 2, 3)
    m = x.shape[0] * x.shape[2] * x.shape[3]""",
            """    n, c, h, w = x.shape

    def batch_norm_backward(dy2, x2):
        k = x2.shape[0]
        inv = 1.0 / np.sqrt(x2.var(axis=0) + eps)
        xh = (x2 - x2.mean(axis=0)) * inv
        db, dg = dy2.sum(axis=0), (dy2 * xh).sum(axis=0)
        return gamma * inv * (dy2 - db / k - xh * dg / k), dg, db

    rows_dx, dg, db = batch_norm_backward(
        dy.transpose(0, 2, 3, 1).reshape(-1, c), x.transpose(0, 2, 3, 1).reshape(-1, c)
    )
    return rows_dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dg, db
    axes = (0, 2, 3)
    m = x.shape[0] * x.shape[2] * x.shape[3]""",
        ),
    ),
    # -- ex07 ---------------------------------------------------------------------------------------
    v(
        EX7,
        "affine-float64-cast",
        (
            "a = gamma / np.sqrt(running_var + eps)\n    return a, beta - a * running_mean",
            "a = gamma.astype(np.float64) / np.sqrt(running_var.astype(np.float64) + eps)\n"
            "    return a.astype(gamma.dtype), (beta - a * running_mean).astype(beta.dtype)",
        ),
    ),
    v(
        EX7,
        "linear-loop",
        (
            "return a[:, None] * W, a * bias + b",
            "W_folded = np.empty_like(W)\n    for j in range(W.shape[0]):\n        W_folded[j] = a[j] * W[j]\n"
            "    return W_folded, a * bias + b",
        ),
    ),
    v(
        EX7,
        "linear-einsum",
        (
            "return a[:, None] * W, a * bias + b",
            "return np.einsum('o,oi->oi', a, W), a * (bias - running_mean) + beta",
        ),
    ),
    v(
        EX7,
        "conv-newaxis",
        (
            "return a.reshape(-1, 1, 1, 1) * weight, a * bias + b",
            "return weight * a[:, np.newaxis, np.newaxis, np.newaxis], b + a * bias",
        ),
    ),
    # -- ex08 ---------------------------------------------------------------------------------------
    v(
        EX8,
        "shard-stats-einsum",
        (
            "m2 = ((x - mean) ** 2).sum(axis=0)",
            "xc = x - mean\n    m2 = np.einsum('nc,nc->c', xc, xc)",
        ),
    ),
    v(
        EX8,
        "merge-law-of-total-variance",
        (
            "n, mean, m2 = stats[0]",
            "n = sum(c for c, _, _ in stats)\n"
            "    mean = sum(c * mu for c, mu, _ in stats) / n\n"
            "    m2 = sum(m + c * (mu - mean) ** 2 for c, mu, m in stats)\n"
            "    return n, mean.astype(stats[0][1].dtype), m2.astype(stats[0][1].dtype)\n"
            "    n, mean, m2 = stats[0]",
        ),
    ),
    v(
        EX8,
        "forward-helper-named-batch-norm-float64-cast",
        (
            "outs = [(x - mean) * scale + beta for x in shards]",
            "def batch_norm(x):\n"
            "        x64 = x.astype(np.float64)\n"
            "        y = (x64 - mean) / np.sqrt(var.astype(np.float64) + eps) * gamma + beta\n"
            "        return y.astype(x.dtype)\n\n"
            "    outs = [batch_norm(x) for x in shards]",
        ),
    ),
    v(
        EX8,
        "backward-loop-all-reduce",
        (
            "dbeta = sum(dy.sum(axis=0) for dy in dys)",
            "dbeta = np.zeros_like(gamma)\n"
            "    for dy in dys:  # each rank's part, then the all-reduce\n"
            "        for row in dy:\n"
            "            dbeta = dbeta + row",
        ),
    ),
    v(
        EX8,
        "backward-transpose-dict",
        (
            "x_hats = [(x - mean) * inv_std for x in shards]",
            "cache = {r: ((x.T - mean[:, None]) * inv_std[:, None]).T for r, x in enumerate(shards)}\n"
            "    x_hats = [cache[r] for r in range(len(shards))]",
        ),
    ),
    # -- ex10 ---------------------------------------------------------------------------------------
    v(
        EX10,
        "ln-helper-named-layer-norm-rows",
        (
            EX10_LN_FORWARD,
            "def layer_norm_forward(rows):\n"
            "        mean = rows.mean(axis=1, keepdims=True)\n"
            "        return (rows - mean) / np.sqrt(rows.var(axis=1, keepdims=True) + eps)\n\n"
            "    k = int(np.prod(normalized_shape))\n"
            "    out = layer_norm_forward(x.reshape(-1, k)).reshape(x.shape)\n"
            "    if weight is not None:\n        out = out * weight\n"
            "    if bias is not None:\n        out = out + bias\n"
            "    return out",
        ),
    ),
    v(
        EX10,
        "ln-affine-form-in-place-safe",
        (
            EX10_LN_FORWARD,
            "axes = tuple(range(-len(normalized_shape), 0))\n"
            "    out = x.copy()\n"
            "    mean = out.mean(axis=axes, keepdims=True)\n"
            "    out -= mean\n"
            "    scale = 1 / np.sqrt((out * out).mean(axis=axes, keepdims=True) + eps)\n"
            "    a = scale if weight is None else scale * weight\n"
            "    b = np.zeros((), x.dtype) if bias is None else bias\n"
            "    return out * a + b",
        ),
    ),
    v(
        EX10,
        "lnb-einsum",
        (
            EX10_LN_BACKWARD,
            "k = int(np.prod(normalized_shape))\n"
            "    xr, dyr = x.reshape(-1, k), dy.reshape(-1, k)\n"
            "    mean = np.einsum('rk->r', xr)[:, None] / k\n"
            "    xc = xr - mean\n"
            "    inv = 1 / np.sqrt(np.einsum('rk,rk->r', xc, xc)[:, None] / k + eps)\n"
            "    xh = xc * inv\n"
            "    dweight = np.einsum('rk,rk->k', dyr, xh).reshape(normalized_shape)\n"
            "    dbias = np.einsum('rk->k', dyr).reshape(normalized_shape)\n"
            "    g = dyr * weight.reshape(1, k)\n"
            "    dx = inv / k * (k * g - g.sum(axis=1, keepdims=True) - xh * np.einsum('rk,rk->r', g, xh)[:, None])\n"
            "    return dx.reshape(x.shape), dweight, dbias",
        ),
    ),
    v(
        EX10,
        "gn-loop-over-examples-and-groups",
        (
            EX10_GN_FORWARD,
            "n, c = x.shape[:2]\n"
            "    size = c // num_groups\n"
            "    y = np.empty_like(x)\n"
            "    for i in range(n):\n"
            "        for g in range(num_groups):\n"
            "            block = x[i, g * size : (g + 1) * size]\n"
            "            mean = block.mean()\n"
            "            y[i, g * size : (g + 1) * size] = (block - mean) / np.sqrt(((block - mean) ** 2).mean() + eps)\n"
            "    for ch in range(c):\n"
            "        if weight is not None:\n"
            "            y[:, ch] = y[:, ch] * weight[ch]\n"
            "        if bias is not None:\n"
            "            y[:, ch] = y[:, ch] + bias[ch]\n"
            "    return y",
        ),
    ),
    v(
        EX10,
        "gn-float64-cast-back-transpose",
        (
            EX10_GN_FORWARD,
            "x64 = x.astype(np.float64)\n"
            "    n = x.shape[0]\n"
            "    t = np.moveaxis(x64.reshape(n, num_groups, -1), 2, 0)  # (K, N, G)\n"
            "    functional = (t - t.mean(axis=0)) / np.sqrt(t.var(axis=0) + eps)\n"
            "    y = np.moveaxis(functional, 0, 2).reshape(x.shape)\n"
            "    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)\n"
            "    if weight is not None:\n        y = y * weight.astype(np.float64).reshape(shape)\n"
            "    if bias is not None:\n        y = y + bias.astype(np.float64).reshape(shape)\n"
            "    return y.astype(x.dtype)",
        ),
    ),
    v(
        EX10,
        "gnb-helper-named-batch-norm-backward-sums",
        (
            EX10_GN_BACKWARD,
            "n, c = x.shape[:2]\n"
            "    w = weight.reshape((1, c) + (1,) * (x.ndim - 2))\n\n"
            "    def batch_norm_backward(rows, drows):\n"
            "        k = rows.shape[-1]\n"
            "        inv = 1.0 / np.sqrt(rows.var(axis=-1, keepdims=True) + eps)\n"
            "        xh = (rows - rows.mean(axis=-1, keepdims=True)) * inv\n"
            "        s1 = drows.sum(axis=-1, keepdims=True)\n"
            "        s2 = (drows * xh).sum(axis=-1, keepdims=True)\n"
            "        return inv / k * (k * drows - s1 - xh * s2), xh\n\n"
            "    dx, xh = batch_norm_backward(x.reshape(n, num_groups, -1), (dy * w).reshape(n, num_groups, -1))\n"
            "    xh = xh.reshape(x.shape)\n"
            "    others = tuple(a for a in range(x.ndim) if a != 1)\n"
            "    return dx.reshape(x.shape), (dy * xh).sum(axis=others), dy.sum(axis=others)",
        ),
    ),
]

# -- ex09: freezing batch normalization (torch) -------------------------------------------------------
E9_HANDWRITTEN = """    class FrozenBN(nn.Module):
        # a hand-written replacement with exactly BN's parameters and buffers (as buffers)
        def __init__(self, bn):
            super().__init__()
            self.bn_eps, self.track = bn.eps, bn.running_mean is not None
            for name, value in list(bn.named_parameters()) + list(bn.named_buffers()):
                self.register_buffer(name, value.detach().clone())

        def forward(self, x):
            if not self.track:  # no statistics: batch statistics, as in eval mode
                return nn.functional.batch_norm(
                    x, None, None, getattr(self, "weight", None), getattr(self, "bias", None),
                    True, 0.0, self.bn_eps,
                )
            return nn.functional.batch_norm(
                x, self.running_mean, self.running_var, getattr(self, "weight", None),
                getattr(self, "bias", None), False, 0.0, self.bn_eps,
            )

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, name, FrozenBN(child))
    return model
    for module in model.modules():"""

VARIANTS += [
    v(
        EX9,
        "pre-hook-eval",
        (
            E9_TR,
            "module.register_forward_pre_hook(lambda layer, inputs: setattr(layer, 'training', False))",
        ),
    ),
    v(
        EX9,
        "class-swap",
        (
            E9_TR,
            "module.__class__ = type('Frozen' + type(module).__name__, (type(module),), "
            "{'train': stay_in_eval})",
        ),
    ),
    v(
        EX9,
        "helper-named-freeze-batchnorm-tuple-loop",
        (
            (
                E9_IS,
                "isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, "
                "nn.SyncBatchNorm))",
            ),
            (
                E9_RG,
                "for p in module.parameters():\n                p.requires_grad = False",
            ),
            ("    return model\n", "    return freeze_batchnorm(model)\n"),
            (
                "    def stay_in_eval(",
                "    def freeze_batchnorm(m):  # a helper of one's own, a book name\n"
                "        return m\n\n    def stay_in_eval(",
            ),
        ),
    ),
    v(
        EX9,
        "model-level-train-override",
        (
            (E9_TR, "pass"),
            (
                "    return model\n",
                "    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]\n"
                "    plain_train = model.train\n\n"
                "    def train(mode=True):\n"
                "        plain_train(mode)\n"
                "        for bn in bns:\n"
                "            bn.eval()\n"
                "        return model\n\n"
                "    model.train = train\n"
                "    return model\n",
            ),
        ),
    ),
    v(
        EX9,
        "handwritten-replacement-same-keys",
        ("    for module in model.modules():", E9_HANDWRITTEN),
    ),
]

# -- ex11: residual block ---------------------------------------------------------------------------
VARIANTS += [
    v(
        EX11,
        "helper-named-batch-norm-einsum",
        (
            (
                'h1, m1, v1 = bn(x @ p["W1"], 1)',
                "h1, m1, v1 = batch_norm(np.einsum('nd,de->ne', x, p[\"W1\"]), 1)",
            ),
            (
                "    def bn(h, k):",
                "    def batch_norm(h, k):  # the book's name, numpy inside\n        return bn(h, k)\n\n    def bn(h, k):",
            ),
        ),
    ),
    v(
        EX11,
        "stream-loop-mean-square",
        (
            (E11_MS0, "out = [sum(float(v) ** 2 for v in h.ravel()) / h.size]"),
            (E11_MS, "out.append(sum(float(v) ** 2 for v in h.ravel()) / h.size)"),
        ),
    ),
    v(
        EX11,
        "float64-then-cast-back",
        (
            (
                "    n = x.shape[0]\n",
                "    dtype = x.dtype\n    x = x.astype(np.float64)\n    p = {k: v.astype(np.float64) for k, v in p.items()}\n    n = x.shape[0]\n",
            ),
            (
                "    return y, running\n",
                "    return y.astype(dtype), {k: v.astype(dtype) for k, v in running.items()}\n",
            ),
        ),
    ),
    v(
        EX11,
        "init-dict-comprehension",
        (
            "ones, zeros = np.ones(d, dtype=W1.dtype), np.zeros(d, dtype=W1.dtype)",
            "ones, zeros = np.ones(d, dtype=W1.dtype), np.zeros(d, dtype=W1.dtype)\n"
            "    p = {f\"{name}{k}\": (zeros if name in ('beta', 'running_mean') else ones).copy()\n"
            "         for name in ('gamma', 'beta', 'running_mean', 'running_var') for k in (1, 2)}\n"
            "    if zero_init_last_gamma:\n"
            "        p['gamma2'] = np.zeros_like(p['gamma2'])\n"
            "    return {'W1': W1, 'W2': W2, **p}",
        ),
    ),
    v(
        EX11,
        "stream-transpose-written-out",
        (
            "h, _ = block_forward(h, init_block(W1, W2, zero_init_last_gamma), block, eps=eps)",
            "y, _unused = block_forward(h.T.copy().T, init_block(W1, W2, zero_init_last_gamma), block=block, momentum=0.5, eps=eps)\n"
            "            h = y",
        ),
    ),
]

# An independent review's correct answers (issue 9), kept in their own file.
from exercise_review import REVIEW_VARIANTS  # noqa: E402

VARIANTS += [v(*entry) for entry in REVIEW_VARIANTS]

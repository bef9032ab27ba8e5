"""Fold an evaluation-mode batch-norm layer into the layer before it.

In evaluation mode batch normalization is one fixed affine map per channel,
``y = s * z + (beta - s * running_mean)`` with ``s = gamma / sqrt(running_var + eps)``
(the paper's Algorithm 2). If ``z = W x + b`` comes from a linear layer or a convolution,
the two maps compose into a single layer with weight ``s * W`` (scaling output channel
``o`` by ``s[o]``: axis 0 of a linear or convolution weight, axis 1 of a transposed
convolution's) and bias ``s * (b - running_mean) + beta``: the BN layer then costs
nothing at inference time.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["fold_batch_norm"]


def _as_numpy(a):
    if a is None:
        return None
    if hasattr(a, "detach"):  # a torch tensor or Parameter
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def fold_batch_norm(weight, bias, bn, *, transposed=False, groups=1):
    """Fold ``bn`` (in evaluation mode) into the preceding layer's weight and bias.

    Parameters
    ----------
    weight : ndarray
        Weight of the layer before ``bn``. Output channels on axis 0 for a linear layer
        ``(out, in)`` (``z = x @ weight.T + bias``) and a convolution ``(out, in/groups, *k)``
        with 1, 2 or 3 kernel axes (Conv1d/2d/3d; any kernel size works, since BN acts per
        output channel after the convolution). A transposed convolution (ConvTranspose1d/2d/3d)
        stores ``(in, out/groups, *k)`` instead: pass ``transposed=True`` (and its ``groups``).
    bias : ndarray of shape (out,) or None
        The preceding layer's bias (None means zero; a bias before BN is redundant in
        training, but folding needs somewhere to put BN's shift).
    bn : BatchNorm1d, BatchNorm2d or BatchNorm3d
        A ``bn_core`` layer (a torch ``nn.BatchNorm*d`` works too) in evaluation mode,
        with running statistics and ``num_features == out``.
    transposed : bool, default False, keyword-only
        ``weight`` is a transposed convolution's, ``(in, out/groups, *k)``: the output
        channels are on axis 1 (within each group), not axis 0. The shapes cannot tell the
        two layouts apart when ``in == out``, so this is never guessed.
    groups : int, default 1, keyword-only
        The transposed convolution's ``groups`` (output channel ``g * out/groups + j`` is
        ``weight[g * in/groups : (g + 1) * in/groups, j]``). Ignored unless ``transposed``:
        a grouped ordinary convolution keeps its output channels on axis 0.

    Returns
    -------
    weight, bias : ndarray
        New arrays (the inputs are not modified), in ``weight``'s dtype; ``bias`` has
        shape (out,).

    Raises
    ------
    ValueError
        If ``bn`` is in training mode or keeps no running statistics (its output then
        depends on the batch and cannot be folded), or the shapes do not match (with a
        hint when the weight looks like a transposed convolution's).
    TypeError
        If ``weight`` is not a float array.

    Examples
    --------
    >>> import numpy as np
    >>> from bn_core import BatchNorm1d
    >>> rng = np.random.default_rng(0)
    >>> W, b, x = rng.normal(size=(3, 4)), rng.normal(size=3), rng.normal(size=(5, 4))
    >>> bn = BatchNorm1d(3)
    >>> _ = bn(rng.normal(2.0, 3.0, size=(16, 3)))  # one training step moves the buffers
    >>> W2, b2 = fold_batch_norm(W, b, bn.eval())
    >>> bool(np.allclose(x @ W2.T + b2, bn(x @ W.T + b)))
    True
    """
    if getattr(bn, "training", True):
        raise ValueError(
            "bn is in training mode, where its output depends on the batch; fold only an "
            "evaluation-mode layer: call bn.eval() first"
        )
    running_mean = _as_numpy(getattr(bn, "running_mean", None))
    running_var = _as_numpy(getattr(bn, "running_var", None))
    if running_mean is None or running_var is None:
        raise ValueError(
            "bn has no running statistics (track_running_stats=False), so even in evaluation "
            "mode it normalizes with batch statistics and cannot be folded"
        )
    w = _as_numpy(weight)
    if w.dtype not in (np.float32, np.float64):
        raise TypeError(f"weight must be a float32 or float64 array, got dtype {w.dtype}")
    C = running_mean.shape[0]
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    if transposed:
        if w.ndim not in (3, 4, 5) or w.shape[0] % groups or w.shape[1] * groups != C:
            raise ValueError(
                f"a transposed convolution's weight must have shape (in, out/groups, *k) with "
                f"1-3 kernel axes, in divisible by groups and out = bn.num_features = {C}; "
                f"got {w.shape} with groups={groups}"
                + (
                    f"; pass groups={C // w.shape[1]}"
                    if w.ndim >= 3 and w.shape[1] and C % w.shape[1] == 0 and groups == 1
                    else ""
                )
            )
    elif w.ndim not in (2, 3, 4, 5) or w.shape[0] != C:
        hint = "BN must follow the layer whose output channels it normalizes"
        if w.ndim in (3, 4, 5) and w.shape[0] != C and C % max(w.shape[1], 1) == 0:
            hint = (
                "if this is a transposed convolution's weight (in, out/groups, *k), pass "
                "transposed=True"
            )
        raise ValueError(
            f"weight must have shape (out, in) or (out, in/groups, *k) (Conv1d/2d/3d) with "
            f"out = bn.num_features = {C}, got {w.shape}; {hint}"
        )
    b = _as_numpy(bias)
    if b is not None and b.shape != (C,):
        raise ValueError(f"bias must have shape ({C},) or be None, got {b.shape}")
    gamma = _as_numpy(getattr(bn, "weight", None))
    beta = _as_numpy(getattr(bn, "bias", None))
    # per-channel affine map of evaluation mode, in float64
    scale = 1.0 / np.sqrt(running_var.astype(np.float64) + float(bn.eps))
    if gamma is not None:
        scale = scale * gamma
    shift = -running_mean.astype(np.float64) * scale
    if b is not None:
        shift = shift + b.astype(np.float64) * scale
    if beta is not None:
        shift = shift + beta
    if transposed:
        # (in, out/groups, *k) seen as (groups, in/groups, out/groups, *k): output channel
        # g * out/groups + j is slice [g, :, j]
        k = w.shape[2:]
        wg = w.reshape(groups, w.shape[0] // groups, w.shape[1], *k)
        s = scale.reshape(groups, 1, w.shape[1], *((1,) * len(k)))
        new_w = (wg * s).reshape(w.shape).astype(w.dtype)
    else:
        new_w = (w * scale.reshape((C,) + (1,) * (w.ndim - 1))).astype(w.dtype)
    return new_w, shift.astype(w.dtype)

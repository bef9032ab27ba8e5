"""Fold an evaluation-mode batch-norm layer into the layer before it.

In evaluation mode batch normalization is one fixed affine map per channel,
``y = s * z + (beta - s * running_mean)`` with ``s = gamma / sqrt(running_var + eps)``
(the paper's Algorithm 2). If ``z = W x + b`` comes from a linear layer or a convolution,
the two maps compose into a single layer with weight ``s * W`` (scaling output channel
``o`` by ``s[o]``) and bias ``s * (b - running_mean) + beta``: the BN layer then costs
nothing at inference time.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fold_batch_norm"]


def _as_numpy(a):
    if a is None:
        return None
    if hasattr(a, "detach"):  # a torch tensor or Parameter
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def fold_batch_norm(weight, bias, bn):
    """Fold ``bn`` (in evaluation mode) into the preceding layer's weight and bias.

    Parameters
    ----------
    weight : ndarray, shape (out, in) or (out, in, kh, kw)
        Weight of the linear layer (``z = x @ weight.T + bias``) or of the convolution
        (``(out, in, 1, 1)`` for a 1x1 convolution; any kernel size works, since BN acts
        per output channel after the convolution).
    bias : ndarray of shape (out,) or None
        The preceding layer's bias (None means zero; a bias before BN is redundant in
        training, but folding needs somewhere to put BN's shift).
    bn : BatchNorm1d or BatchNorm2d
        A ``bn_core`` layer (a torch ``nn.BatchNorm*d`` works too) in evaluation mode,
        with running statistics and ``num_features == out``.

    Returns
    -------
    weight, bias : ndarray
        New arrays (the inputs are not modified), in ``weight``'s dtype; ``bias`` has
        shape (out,).

    Raises
    ------
    ValueError
        If ``bn`` is in training mode or keeps no running statistics (its output then
        depends on the batch and cannot be folded), or the shapes do not match.
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
    if w.ndim not in (2, 4) or w.shape[0] != C:
        raise ValueError(
            f"weight must have shape (out, in) or (out, in, kh, kw) with out = "
            f"bn.num_features = {C}, got {w.shape}; BN must follow the layer whose output "
            f"channels it normalizes"
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
    new_w = (w * scale.reshape((C,) + (1,) * (w.ndim - 1))).astype(w.dtype)
    return new_w, shift.astype(w.dtype)

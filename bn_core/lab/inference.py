"""Batch normalization at inference time: recalibrating running statistics and folding.

- :func:`recalibrate_bn` recomputes the running mean and variance of every batch-norm layer
  of a model from data (the fix for stale running statistics).
- :func:`member_as_mlp` copies one member of a trained
  :class:`~bn_core.lab.ensemble.EnsembleMLP` into an ordinary
  :class:`~bn_core.lab.models.MLP` (train many seeds at once, then study each with torch's own
  layers).
- :func:`fold_mlp` returns a copy of a :class:`~bn_core.lab.models.MLP` in which every
  evaluation-mode batch-norm layer has been folded into the Linear layer before it (the
  paper's Algorithm 2 affine map, computed by :func:`bn_core.fold_batch_norm`).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from bn_core import fold_batch_norm

__all__ = ["batch_norm_layers", "fold_mlp", "member_as_mlp", "recalibrate_bn"]


def batch_norm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch-norm layers of ``model`` (torch's and ``bn_core.torch_bridge``'s), in order."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module, x: np.ndarray | torch.Tensor, *, batch_size: int = 60, seed: int = 0
) -> nn.Module:
    """Recompute every batch-norm layer's running statistics from the inputs ``x``.

    Each layer's running statistics are reset, its momentum is set to ``None`` (a cumulative
    average, so every batch counts equally), and ``x`` is passed through the model once, in
    shuffled mini-batches, in training mode and without gradients. Parameters (weights,
    gamma, beta) do not change; only the buffers do. The momenta and the model's mode are
    restored afterwards.

    Parameters
    ----------
    model : torch.nn.Module
        Modified in place.
    x : array_like, shape (N, in_features)
        Inputs only: no labels are needed.
    batch_size : int, default 60
        Mini-batch size for the passes (use the training batch size, so that the stored
        variance is the average of the same kind of batch variances as during training).
    seed : int, default 0
        Seed of the shuffling.

    Returns
    -------
    torch.nn.Module
        ``model`` itself.

    Raises
    ------
    ValueError
        If the model has no batch-norm layer or ``batch_size`` is not in ``2..N``.

    Examples
    --------
    >>> import torch
    >>> from bn_core.lab.models import MLP
    >>> net = MLP(4, hidden=(8,), out_features=2, norm="batch").eval()
    >>> x = torch.randn(120, 4) * 3 + 1
    >>> _ = recalibrate_bn(net, x, batch_size=30)
    >>> bn = net.norms[0]
    >>> bool(torch.allclose(bn.running_mean, (x @ net.linears[0].weight.T).mean(0), atol=1e-5))
    True
    >>> net.training, bn.momentum
    (False, 0.1)
    """
    layers = batch_norm_layers(model)
    if not layers:
        raise ValueError("the model has no batch-norm layer to recalibrate")
    x = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    if not 2 <= batch_size <= len(x):
        raise ValueError(f"batch_size must be in 2..{len(x)}, got {batch_size}")
    was_training = model.training
    momenta = [bn.momentum for bn in layers]
    for bn in layers:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(x)))
    # drop a last batch smaller than batch_size: its variance would be noisier (or of one value)
    for start in range(0, len(x) - batch_size + 1, batch_size):
        model(x[order[start : start + batch_size]])
    for bn, momentum in zip(layers, momenta, strict=True):
        bn.momentum = momentum
    model.train(was_training)
    return model


def fold_mlp(model: nn.Module) -> nn.Module:
    """A copy of an MLP with each batch-norm layer folded into the Linear layer before it.

    Parameters
    ----------
    model : bn_core.lab.models.MLP
        Must have ``linears`` and ``norms`` (one norm per hidden Linear), every norm a
        batch-norm layer with running statistics. It is not modified.

    Returns
    -------
    bn_core.lab.models.MLP
        A copy in evaluation mode whose hidden Linear layers carry a bias and whose norms are
        ``nn.Identity``: it computes the evaluation-mode function of ``model`` with fewer
        operations.

    Raises
    ------
    ValueError
        If a norm is not a batch-norm layer (LayerNorm and GroupNorm normalize with the
        statistics of each example, which are not constants and cannot be folded).

    Examples
    --------
    >>> import torch
    >>> from bn_core.lab.models import MLP
    >>> net = MLP(4, hidden=(8, 8), out_features=3, norm="batch")
    >>> _ = net(torch.randn(32, 4))  # one training-mode pass moves the running statistics
    >>> _ = net.eval()
    >>> folded = fold_mlp(net)
    >>> x = torch.randn(5, 4)
    >>> bool(torch.allclose(folded(x), net(x), atol=1e-5))
    True
    """
    for norm in model.norms:
        if not isinstance(norm, nn.modules.batchnorm._BatchNorm):
            raise ValueError(
                f"can only fold batch-norm layers, got {type(norm).__name__}: its statistics "
                f"are computed per example, not stored"
            )
    folded = copy.deepcopy(model).eval()
    new_linears = []
    for linear, norm in zip(model.linears, model.norms, strict=True):
        weight, bias = fold_batch_norm(linear.weight, linear.bias, copy.deepcopy(norm).eval())
        layer = nn.Linear(linear.in_features, linear.out_features, bias=True)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(weight))
            layer.bias.copy_(torch.from_numpy(bias))
        new_linears.append(layer)
    folded.linears = nn.ModuleList(new_linears)
    folded.norms = nn.ModuleList(nn.Identity() for _ in new_linears)
    return folded.eval()


@torch.no_grad()
def member_as_mlp(ensemble: nn.Module, k: int) -> nn.Module:
    """Member ``k`` of an :class:`~bn_core.lab.ensemble.EnsembleMLP` as a stand-alone MLP.

    Weights, biases, and for batch norm ``gamma``, ``beta``, running statistics, ``eps`` and
    ``momentum`` are copied, so the MLP computes what the member computes, in both modes.

    Parameters
    ----------
    ensemble : bn_core.lab.ensemble.EnsembleMLP
        With ``norm=None`` or ``norm="batch"`` and no dropout. It is not modified.
    k : int
        Member index, ``0 <= k < ensemble.n_models``.

    Returns
    -------
    bn_core.lab.models.MLP
        In evaluation mode, float32.

    Raises
    ------
    ValueError
        If ``k`` is out of range, or the ensemble uses LayerNorm, GroupNorm or dropout.

    Examples
    --------
    >>> import torch
    >>> from bn_core.lab.ensemble import EnsembleMLP
    >>> ens = EnsembleMLP(3, 4, (8, 8), 2, norm="batch")
    >>> _ = ens(torch.randn(16, 4))  # training mode: moves the running statistics
    >>> _ = ens.eval()
    >>> net = member_as_mlp(ens, 1)
    >>> x = torch.randn(5, 4)
    >>> bool(torch.allclose(net(x), ens(x)[1], atol=1e-6))
    True
    """
    from .models import MLP

    if not 0 <= k < ensemble.n_models:
        raise ValueError(f"k must be in 0..{ensemble.n_models - 1}, got {k}")
    if ensemble.norm not in (None, "batch") or ensemble.dropout > 0:
        raise ValueError(
            f"only members without dropout and with norm None or 'batch' can be copied, got "
            f"norm={ensemble.norm!r}, dropout={ensemble.dropout}"
        )
    widths = [w.shape[1] for w in ensemble.weights] + [ensemble.weights[-1].shape[2]]
    net = MLP(
        widths[0],
        hidden=tuple(widths[1:-1]),
        out_features=widths[-1],
        activation=ensemble.activation,
        norm=ensemble.norm,
        linear_bias=ensemble.linear_bias,
    )
    for i, linear in enumerate(net.linears):
        linear.weight.copy_(ensemble.weights[i][k].T)
        if linear.bias is not None:
            linear.bias.copy_(ensemble.biases[i][k, 0])
    net.head.weight.copy_(ensemble.weights[-1][k].T)
    net.head.bias.copy_(ensemble.biases[-1][k, 0])
    if ensemble.norm == "batch":
        for i, bn in enumerate(net.norms):
            bn.weight.copy_(ensemble.gammas[i][k, 0])
            bn.bias.copy_(ensemble.betas[i][k, 0])
            bn.running_mean.copy_(getattr(ensemble, f"running_mean{i}")[k, 0])
            bn.running_var.copy_(getattr(ensemble, f"running_var{i}")[k, 0])
            bn.eps, bn.momentum = ensemble.eps, ensemble.momentum
    return net.eval()

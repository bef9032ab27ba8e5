"""Probes for "why does BN work?": layer-input drift and the local shape of the loss.

- :func:`layer_input_moments`: per-unit mean and standard deviation of every hidden layer's
  output (the next layer's input) on a fixed probe batch, as the network sees it in training.
  Their change between training steps is a direct measure of internal covariate shift.
- :func:`gradient_landscape`: the measurements of Santurkar et al. (2018, Figure 4): step
  along the gradient with several step sizes and record the loss there and how much the
  gradient changed ("gradient predictiveness", "effective beta-smoothness").

Both work on a plain :class:`~bn_core.lab.models.MLP` and on an
:class:`~bn_core.lab.ensemble.EnsembleMLP` (then every number is per member), and leave the
model exactly as they found it (parameters, gradients, running statistics).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from .noise import frozen_state

__all__ = ["gradient_landscape", "layer_input_moments", "member_losses"]

_ACT = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}


def _n_members(model: torch.nn.Module) -> int:
    return int(getattr(model, "n_models", 1))


def member_losses(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy on ``(x, y)`` per ensemble member: shape (S,), or (1,) for one model.

    Examples
    --------
    >>> from bn_core.lab.models import MLP
    >>> _ = torch.manual_seed(0)
    >>> member_losses(MLP(4, (8,), 3), torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])).shape
    torch.Size([1])
    """
    logits = model(x)
    if logits.dim() == 2:
        return F.cross_entropy(logits, y).reshape(1)
    s, b, c = logits.shape
    losses = F.cross_entropy(logits.reshape(s * b, c), y.expand(s, b).reshape(-1), reduction="none")
    return losses.reshape(s, b).mean(1)


@torch.no_grad()
def layer_input_moments(model: torch.nn.Module, x: np.ndarray) -> dict[str, np.ndarray]:
    """Per-unit mean and std of each hidden layer's activations on ``x``, in training mode.

    Training mode is what the next layer sees while it learns (batch statistics, and noise
    such as :class:`~bn_core.lab.noise.NoisyBN` if the model has it). Running statistics are
    not touched.

    Parameters
    ----------
    model : MLP or EnsembleMLP
        Must support ``record`` (both do).
    x : ndarray, shape (B, in_features)
        A fixed probe batch.

    Returns
    -------
    dict
        ``"mean"`` and ``"std"``: shape (S, L, width) for an ensemble, (1, L, width) for an MLP
        (all hidden layers must have the same width), computed after the activation function.

    Examples
    --------
    >>> from bn_core.lab.ensemble import EnsembleMLP
    >>> net = EnsembleMLP(2, 4, (8, 8), 3, norm="batch")
    >>> m = layer_input_moments(net, np.ones((5, 4), dtype="float32"))
    >>> m["mean"].shape, float(net.running_mean0.abs().max())  # running stats untouched
    ((2, 2, 8), 0.0)
    """
    was_training, was_recording = model.training, model.record
    with frozen_state(model):
        model.train()
        model.record = True
        model(torch.from_numpy(x))
        pre = list(model.preactivations)
    model.train(was_training)
    model.record = was_recording
    act = model.activation
    fn = _ACT[act] if isinstance(act, str) else act
    outs = [fn(u) for u in pre]
    if outs[0].dim() == 2:
        outs = [o.unsqueeze(0) for o in outs]
    h = torch.stack(outs, dim=1)  # (S, L, B, width)
    return {"mean": h.mean(2).numpy(), "std": h.std(2).numpy()}


def gradient_landscape(
    model: torch.nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    step_sizes: Sequence[float],
    *,
    relative: bool = False,
) -> dict[str, np.ndarray]:
    """Loss and gradient change along the gradient direction, per member (Santurkar et al. 2018).

    With ``g`` the gradient of the loss ``L`` on the batch ``(x, y)`` at the current parameters
    ``theta``, for each step size ``eta`` this evaluates ``L(theta - eta g)`` and
    ``||grad L(theta) - grad L(theta - eta g)||`` on the same batch, in training mode.

    Raw distances depend on the scale of the weights. Weights followed by BN are scale-invariant
    (multiplying them by ``c`` leaves the loss alone and divides their gradient by ``c``), and
    their norm grows during training, so a raw "smoother" can mean "larger weights". With
    ``relative=True`` the steps are measured relative to the weights: ``step_sizes`` are
    *relative* step lengths ``r``, and each member's ``eta`` is chosen so that its weight
    matrices move by ``r`` times their norm, ``||eta g_W|| = r ||W||`` (``W``: all Linear
    weight matrices, concatenated). Whatever the mode, ``"beta_rel"`` reports the smoothness in
    these units, which do not change when BN-followed weights are rescaled.

    Parameters
    ----------
    model : MLP or EnsembleMLP
    x, y : ndarray
        The batch.
    step_sizes : sequence of float
        The ``eta`` values, or the relative step lengths ``r`` if ``relative``.
    relative : bool, default False

    Returns
    -------
    dict
        ``"loss0"`` (S,), ``"grad_norm"`` (S,), ``"loss"`` (S, K) and ``"grad_change"`` (S, K)
        for the K step sizes; ``"eta"`` (S, K), the step sizes used; ``"weight_norm"`` (S,),
        the norm of all weight matrices; ``"beta"`` (S,): the effective beta-smoothness
        ``max_eta ||grad L(theta) - grad L(theta - eta g)|| / ||eta g||``; and ``"beta_rel"``
        (S,): the same per unit of *relative* change, ``max_eta (||Delta g_W|| / ||g_W||) /
        (||eta g_W|| / ||W||)`` on the weight matrices. Parameters, gradients and buffers of
        ``model`` are restored afterwards.

    Examples
    --------
    >>> from bn_core.lab.models import MLP
    >>> _ = torch.manual_seed(0)
    >>> net = MLP(4, (8,), 3)
    >>> x, y = np.random.default_rng(0).normal(size=(6, 4)).astype("float32"), np.arange(6) % 3
    >>> out = gradient_landscape(net, x, y, [0.01, 0.1])
    >>> bool(out["loss"][0, 0] < out["loss0"][0])  # a small step downhill lowers the loss
    True
    >>> rel = gradient_landscape(net, x, y, [0.01], relative=True)  # move W by 1% of its norm
    >>> round(float(rel["eta"][0, 0] * rel["grad_norm_w"][0] / rel["weight_norm"][0]), 4)
    0.01
    """
    from .ics import _weight_matrices

    n = _n_members(model)
    stacked = hasattr(model, "n_models")  # EnsembleMLP: every parameter has a member axis
    params = [p for p in model.parameters() if p.requires_grad]
    weight_ids = {id(w) for w in _weight_matrices(model)}
    is_weight = [id(p) in weight_ids for p in params]
    saved_grads = [None if p.grad is None else p.grad.clone() for p in params]
    xt, yt = torch.from_numpy(x), torch.from_numpy(np.asarray(y, dtype=np.int64))

    def loss_and_grads() -> tuple[torch.Tensor, list[torch.Tensor]]:
        for p in params:
            p.grad = None
        losses = member_losses(model, xt, yt)
        losses.sum().backward()  # members are independent: each gets its own gradient
        grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]
        return losses.detach(), grads

    def per_member_norm(tensors: list[torch.Tensor], only_weights: bool = False) -> torch.Tensor:
        keep = [t for t, w in zip(tensors, is_weight, strict=True) if w or not only_weights]
        return torch.sqrt(sum(t.reshape(n, -1).pow(2).sum(1) for t in keep))

    def per_member(values: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        # (S,) -> broadcastable against p: (S, ...) for an ensemble, a scalar for one model
        return values.view(-1, *[1] * (p.dim() - 1)) if stacked else values[0]

    was_training = model.training
    losses, grad_change, grad_change_w, etas = [], [], [], []
    with frozen_state(model):
        model.train()
        loss0, g0 = loss_and_grads()
        start = [p.detach().clone() for p in params]
        weight_norm = per_member_norm(start, only_weights=True)
        grad_norm_w = per_member_norm(g0, only_weights=True)
        for r in step_sizes:
            eta = (
                r * weight_norm / grad_norm_w.clamp_min(1e-30)
                if relative
                else torch.full((n,), float(r))
            )
            etas.append(eta)
            with torch.no_grad():
                for p, p0, g in zip(params, start, g0, strict=True):
                    p.copy_(p0 - per_member(eta, p) * g)
            loss, g = loss_and_grads()
            losses.append(loss)
            diff = [a - b for a, b in zip(g, g0, strict=True)]
            grad_change.append(per_member_norm(diff))
            grad_change_w.append(per_member_norm(diff, only_weights=True))
    model.train(was_training)
    for p, g in zip(params, saved_grads, strict=True):
        p.grad = g
    grad_norm = per_member_norm(g0)
    change, change_w = torch.stack(grad_change, 1), torch.stack(grad_change_w, 1)
    eta = torch.stack(etas, 1)
    beta = (change / (eta * grad_norm[:, None])).max(1).values
    rel_step = eta * grad_norm_w[:, None] / weight_norm[:, None]
    beta_rel = (change_w / grad_norm_w[:, None] / rel_step).max(1).values
    return {
        "loss0": loss0.numpy(),
        "grad_norm": grad_norm.numpy(),
        "grad_norm_w": grad_norm_w.numpy(),
        "weight_norm": weight_norm.numpy(),
        "eta": eta.numpy(),
        "loss": torch.stack(losses, 1).numpy(),
        "grad_change": change.numpy(),
        "beta": beta.numpy(),
        "beta_rel": beta_rel.numpy(),
    }

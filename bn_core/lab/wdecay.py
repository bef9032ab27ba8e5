"""Weight decay, the effective learning rate and dropout before BN (chapter 13).

Everything here works on :class:`bn_core.lab.ensemble.EnsembleMLP`, so one run trains every
(seed, learning rate, weight decay, dropout rate) combination at once:

- :class:`WeightDecay` is an ``on_step`` hook for :func:`bn_core.lab.ensemble.train_ensemble`
  that adds ``weight_decay * p`` to the gradient of the chosen parameters (torch SGD's
  ``weight_decay``, per member) and records each layer's weight norm and loss-gradient norm, from
  which :func:`update_ratio` gives Karpathy's update-to-data ratio and the effective learning rate.
- :func:`equilibrium_ratio` is the update-to-data ratio at which weight decay and the gradient
  balance for a scale-invariant weight (a weight feeding BN) under plain SGD.
- :class:`DropoutHook` puts dropout, with a rate per member, after chosen hidden layers;
  :func:`variance_shift` compares the variance BN recorded in training with the one it receives at
  inference, and :func:`recalibrate` re-estimates the statistics with dropout off.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from .ensemble import EnsembleMLP

__all__ = [
    "GROUPS",
    "DropoutHook",
    "WeightDecay",
    "decay_groups",
    "equilibrium_ratio",
    "predicted_variance_shift",
    "recalibrate",
    "update_ratio",
    "variance_shift",
]

#: Parameter groups of an EnsembleMLP, as :func:`decay_groups` names them.
GROUPS = ("weights", "head", "norm", "bias")


def decay_groups(model: EnsembleMLP) -> dict[str, list[torch.nn.Parameter]]:
    """The parameters of ``model`` by the role that decides whether to decay them.

    Returns
    -------
    dict
        ``"weights"``: the hidden Linear weights (scale-invariant when BN follows them);
        ``"head"``: the output layer's weight; ``"norm"``: every gamma and beta (empty without a
        normalization); ``"bias"``: the Linear biases (the head's, and the hidden ones if any).
    """
    norm = [*model.gammas, *model.betas] if model.norm is not None else []
    return {
        "weights": list(model.weights[:-1]),
        "head": [model.weights[-1]],
        "norm": norm,
        "bias": list(model.biases),
    }


def _per_member(value, n: int, name: str) -> torch.Tensor:
    arr = np.asarray(value, dtype=np.float32)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != n):
        raise ValueError(f"{name} must be a number or an array of {n} values (one per member)")
    if (arr < 0).any():
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return torch.as_tensor(np.broadcast_to(arr, n).copy())


class WeightDecay:
    """``on_step`` hook: L2 weight decay per member, and the norms the chapter plots.

    Called after the backward pass and before the SGD update, it first records, for every
    Linear layer (hidden layers, then the head) and member, the weight's Frobenius norm and the
    norm of the *loss* gradient; then it adds ``weight_decay[s] * p`` to the gradient of each
    parameter in ``groups``. With :func:`~bn_core.lab.ensemble.train_ensemble`'s update
    ``p -= lr * grad`` this is ``torch.optim.SGD(weight_decay=...)`` without momentum.

    Parameters
    ----------
    n_models : int
        Number of members of the ensemble it will be used with.
    weight_decay : float, array of shape (S,), or dict
        Decay coefficient, per member if an array, applied to every group in ``groups``; 0
        records without decaying. A dict maps group names of :func:`decay_groups` to their own
        coefficient (a number or an array of shape (S,)), and ``groups`` is then ignored: so
        one ensemble can hold members that decay gamma and beta and members that do not.
    groups : sequence of str, default ("weights", "head")
        Which groups of :func:`decay_groups` are decayed. The common practice is to leave out
        ``"norm"`` (gamma, beta) and ``"bias"``; add them to decay everything.

    Examples
    --------
    >>> from bn_core.lab import ensemble, data
    >>> model = ensemble.EnsembleMLP(2, 64, (16,), activation="relu", norm="batch")
    >>> hook = WeightDecay(2, [0.0, 0.01])
    >>> h = ensemble.train_ensemble(model, data.digits(), steps=3, lr=0.1, on_step=hook,
    ...                             eval_every=3, eval_train=False)
    >>> h.step_records["w_norm"].shape  # (members, steps, layers)
    (2, 3, 2)
    """

    def __init__(
        self,
        n_models: int,
        weight_decay: float | Sequence[float] | np.ndarray,
        *,
        groups: Sequence[str] = ("weights", "head"),
    ):
        if not isinstance(weight_decay, dict):
            weight_decay = dict.fromkeys(groups, weight_decay)
        unknown = set(weight_decay) - set(GROUPS)
        if unknown:
            raise ValueError(f"unknown parameter groups {sorted(unknown)}; choose from {GROUPS}")
        self.n_models = n_models
        self.weight_decay = {
            g: _per_member(v, n_models, f"weight_decay[{g!r}]") for g, v in weight_decay.items()
        }

    @torch.no_grad()
    def __call__(self, model: EnsembleMLP, step: int) -> dict[str, np.ndarray]:
        if model.n_models != self.n_models:
            raise ValueError(
                f"the hook was built for {self.n_models} members, the model has {model.n_models}"
            )
        w_norm = torch.stack([w.flatten(1).norm(dim=1) for w in model.weights], dim=1)
        g_norm = torch.stack([w.grad.flatten(1).norm(dim=1) for w in model.weights], dim=1)
        groups = decay_groups(model)
        for name, coef in self.weight_decay.items():
            for p in groups[name]:
                if p.grad is not None:
                    p.grad.add_(coef.to(p.dtype).view(-1, *[1] * (p.dim() - 1)) * p)
        return {"w_norm": w_norm.numpy(), "grad_norm": g_norm.numpy()}


def update_ratio(w_norm: np.ndarray, grad_norm: np.ndarray, lr) -> np.ndarray:
    """Karpathy's update-to-data ratio of the gradient step, ``lr * |grad| / |W|``.

    Parameters
    ----------
    w_norm, grad_norm : ndarray of shape (S, T, L)
        As recorded by :class:`WeightDecay` (members, steps, layers).
    lr : float or array of shape (S,)
        The members' learning rates.

    Returns
    -------
    ndarray of shape (S, T, L)
        The ratio (not its logarithm). For a weight feeding BN it is also the angle (in radians,
        for small steps) by which the gradient step turns the weight's direction.
    """
    lr = np.asarray(lr, dtype=float).reshape(-1, *[1] * (np.ndim(w_norm) - 1))
    return lr * np.asarray(grad_norm) / np.asarray(w_norm)


def equilibrium_ratio(lr, weight_decay):
    """Update-to-data ratio at which weight decay and the gradient balance, for a BN-fed weight.

    With BN after it, a weight ``W`` is scale-invariant, so its loss gradient ``g`` is orthogonal
    to it. One SGD step with coupled weight decay, ``W' = (1 - lr * wd) W - lr g``, then gives
    ``|W'|^2 = (1 - lr wd)^2 |W|^2 + lr^2 |g|^2``: decay shrinks the norm, the gradient grows it.
    The norm is steady when ``(lr |g| / |W|)^2 = lr wd (2 - lr wd)``, whatever the gradient's
    size: the returned ratio ``sqrt(lr wd (2 - lr wd))``, about ``sqrt(2 lr wd)``.

    Examples
    --------
    >>> round(float(equilibrium_ratio(0.1, 5e-4)), 5)
    0.01
    """
    lam = np.asarray(lr, dtype=float) * np.asarray(weight_decay, dtype=float)
    return np.sqrt(lam * (2 - lam))


class DropoutHook:
    """Inverted dropout after chosen hidden layers, with a rate per member.

    Set as ``model.post_norm`` of an :class:`~bn_core.lab.ensemble.EnsembleMLP` built with
    ``dropout=0``; it acts in training mode only, like ``nn.Dropout``. ``post_norm`` is applied
    before the activation, but for ReLU that is the same as dropout after it: a mask of zeros
    and ``1 / (1 - p)`` commutes with ReLU (``relu(m u) = m relu(u)`` for ``m >= 0``). Dropout
    after hidden layer ``i`` feeds the BN of layer ``i + 1`` ("dropout before BN"), except after
    the last hidden layer, which feeds the classifier.

    Parameters
    ----------
    p : float or array of shape (S,)
        Drop probability per member, in [0, 1).
    layers : iterable of int
        Indices of the hidden layers whose output is dropped.
    seed : int, default 0
        Seed of the masks (a generator of its own, so the global torch seed is not touched).
    """

    def __init__(self, p, layers: Iterable[int], *, seed: int = 0):
        self.p = torch.as_tensor(np.atleast_1d(np.asarray(p, dtype=np.float32)))
        if ((self.p < 0) | (self.p >= 1)).any():
            raise ValueError(f"dropout probabilities must be in [0, 1), got {p!r}")
        self.layers = frozenset(int(i) for i in layers)
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, i: int, u: torch.Tensor) -> torch.Tensor:
        if i not in self.layers:
            return u
        p = self.p.to(u.dtype).view(-1, *[1] * (u.dim() - 1))
        keep = torch.rand(u.shape, generator=self.gen, dtype=u.dtype) >= p
        return u * keep / (1 - p)


@torch.no_grad()
def bn_input_variance(model: EnsembleMLP, x: np.ndarray) -> list[torch.Tensor]:
    """Per-unit variance (unbiased) of each BN layer's input over ``x`` in eval mode.

    In eval mode dropout is off, so this is the variance the layers receive at inference.
    Returns one ``(S, width)`` tensor per hidden layer.
    """
    was_training, was_record = model.training, model.record
    model.eval()
    model.record = True
    model(torch.from_numpy(x))
    out = [z.var(dim=1) for z in model.linear_outputs]
    model.train(was_training)
    model.record = was_record
    return out


def variance_shift(model: EnsembleMLP, x: np.ndarray) -> np.ndarray:
    """How far each BN layer's running variance is from the variance it receives at inference.

    Returns
    -------
    ndarray of shape (S, n_hidden)
        For each member and BN layer, the mean over units of ``running_var / inference_var``,
        the inference variance measured on ``x`` in eval mode (dropout off, running statistics).
        1 means no shift; above 1 the layer divides by too large a standard deviation at
        inference and shrinks its output. (The inverse, inference over training, is also used.)
    """
    if model.norm != "batch":
        raise ValueError(f"variance_shift needs a model with norm='batch', got {model.norm!r}")
    eval_var = bn_input_variance(model, x)
    ratios = [
        (getattr(model, f"running_var{i}").squeeze(1) / v).mean(1) for i, v in enumerate(eval_var)
    ]
    return torch.stack(ratios, dim=1).numpy()


@torch.no_grad()
def predicted_variance_shift(model: EnsembleMLP, x: np.ndarray, p, layer: int) -> np.ndarray:
    """The variance shift that inverted dropout on its input should cause in BN layer ``layer``.

    Dropout keeps each input ``h_k`` with probability ``1 - p`` and scales it by ``1 / (1 - p)``:
    its mean is kept, its second moment grows to ``E[h_k^2] / (1 - p)``. For the BN input
    ``z_j = sum_k W_kj h_k`` (independent masks) the variance in training is then the inference
    variance plus ``p / (1 - p) * sum_k W_kj^2 E[h_k^2]``. Evaluated with the inference-mode
    activations over ``x``: the argument of Li et al. (2019), per unit, with the network's own
    weights and activations.

    Parameters
    ----------
    model : EnsembleMLP
    x : ndarray of shape (n, in)
    p : float or array of shape (S,)
        Drop rate on the output of hidden layer ``layer - 1``, per member.
    layer : int
        Index (>= 1) of the hidden layer whose BN receives the dropped activations.

    Returns
    -------
    ndarray of shape (S,)
        Predicted ``running_var / inference_var``, averaged over the layer's units, comparable
        with column ``layer`` of :func:`variance_shift`.
    """
    if not 1 <= layer < model.n_hidden:
        raise ValueError(f"layer must be between 1 and {model.n_hidden - 1}, got {layer}")
    was_training, was_record = model.training, model.record
    model.eval()
    model.record = True
    model(torch.from_numpy(x))
    h, z = model.activations[layer - 1], model.linear_outputs[layer]
    model.train(was_training)
    model.record = was_record
    p = torch.as_tensor(np.broadcast_to(np.asarray(p, np.float32), model.n_models).copy())
    second = h.square().mean(dim=1)  # (S, in): E[h_k^2]
    extra = torch.einsum("sk,skj->sj", second, model.weights[layer].square())
    ratio = 1 + (p / (1 - p)).view(-1, 1) * extra / z.var(dim=1)
    return ratio.mean(1).numpy()


@torch.no_grad()
def recalibrate(model: EnsembleMLP, x: np.ndarray, batch_size: int) -> EnsembleMLP:
    """Re-estimate the BN statistics over ``x`` with dropout off (precise statistics).

    The running estimates are replaced by the average, over consecutive batches of
    ``batch_size``, of each batch's mean and unbiased variance, computed in a training-mode pass
    without gradients and with ``post_norm`` (a :class:`DropoutHook`) and ``dropout`` switched
    off: the statistics the layers will see at inference. Weights do not change. The model's
    momentum, hook and mode are restored.
    """
    if model.norm != "batch":
        raise ValueError(f"recalibrate needs a model with norm='batch', got {model.norm!r}")
    batches = [x[i : i + batch_size] for i in range(0, len(x) - batch_size + 1, batch_size)]
    if not batches:
        raise ValueError(f"x has {len(x)} rows, fewer than one batch of {batch_size}")
    saved = model.momentum, model.post_norm, model.dropout, model.training
    model.post_norm, model.dropout = None, 0.0
    model.train()
    for k, xb in enumerate(batches, start=1):
        model.momentum = 1.0 / k  # cumulative average: every batch counts equally
        model(torch.from_numpy(np.ascontiguousarray(xb)))
    model.momentum, model.post_norm, model.dropout = saved[:3]
    model.train(saved[3])
    return model

"""Probes that look inside a network while it trains (chapter 1, internal covariate shift).

Three things are recorded, for :class:`~bn_core.lab.models.MLP` and for
:class:`~bn_core.lab.ensemble.EnsembleMLP` alike (an ensemble gets a leading member axis):

- the distribution of each hidden layer's pre-activation (the input of its activation function)
  on a fixed probe set: per-unit mean and standard deviation, percentiles of one unit, and the
  fraction of saturated sigmoid inputs (:func:`activation_probe`, an ``on_eval`` callback);
- the norm of the loss gradient with respect to each weight matrix (:func:`grad_norm_probe`, an
  ``on_step`` callback);
- how far a layer's pre-activation distribution moves during training (:func:`drift`).

Typical use::

    probe = ics.activation_probe(data.x_test)
    hist = ensemble.train_ensemble(model, data, steps=1500, on_eval=probe,
                                   on_step=ics.grad_norm_probe())
    hist.records["std"]          # (S, T, layers, units)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from .train import History

#: The largest slope of the logistic sigmoid, reached at 0: sigmoid'(0) = 1/4.
SIGMOID_PEAK_SLOPE = 0.25


def saturation_threshold(fraction: float = 0.1) -> float:
    """The ``|z|`` beyond which the sigmoid's slope is below ``fraction`` of its peak 1/4.

    The slope is ``s(z) (1 - s(z))``; setting it to ``fraction / 4`` and solving for the sigmoid
    value gives ``s = (1 + sqrt(1 - fraction)) / 2``, hence ``z = log(s / (1 - s))``.

    Parameters
    ----------
    fraction : float, default 0.1
        Fraction of the peak slope, in (0, 1).

    Returns
    -------
    float
        The threshold on ``|z|``.

    Raises
    ------
    ValueError
        If ``fraction`` is not in (0, 1).

    Examples
    --------
    >>> round(saturation_threshold(0.1), 3)
    3.637
    >>> z = saturation_threshold(0.5)
    >>> s = 1 / (1 + np.exp(-z))
    >>> round(float(s * (1 - s) / SIGMOID_PEAK_SLOPE), 6)
    0.5
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    s = (1.0 + np.sqrt(1.0 - fraction)) / 2.0
    return float(np.log(s / (1.0 - s)))


def _members_first(t: torch.Tensor) -> torch.Tensor:
    # MLP records (B, W); EnsembleMLP records (S, B, W). Work on (S, B, W) throughout.
    return t.unsqueeze(0) if t.dim() == 2 else t


def activation_probe(
    x: np.ndarray,
    *,
    unit: int = 0,
    layer: int = -1,
    percentiles: Sequence[float] = (15, 50, 85),
    threshold: float | None = None,
    moments: bool = True,
) -> Callable[[nn.Module, int], dict[str, np.ndarray]]:
    """An ``on_eval`` callback recording the hidden pre-activations on the probe inputs ``x``.

    The model is run in eval mode (running statistics for batch normalization, no dropout) on
    all of ``x``, with ``model.record`` switched on, and its training mode is restored after.

    Parameters
    ----------
    x : ndarray, shape (B, in_features)
        Fixed probe inputs, e.g. the test set (as in the paper's Figure 1).
    unit, layer : int, default 0 and -1
        The unit (and hidden layer) whose percentiles are recorded; the paper tracks one sigmoid
        input of the last hidden layer.
    percentiles : sequence of float, default (15, 50, 85)
        The percentiles of the paper's Figure 1 (b, c).
    threshold : float, optional
        A pre-activation counts as saturated when ``|z| > threshold``. Defaults to
        ``saturation_threshold(0.1)``: the sigmoid's slope is below a tenth of its peak.
    moments : bool, default True
        Record the per-unit ``"mean"`` and ``"std"``. They cost more than the rest of the probe
        (a pass over every layer, unit and example); pass False when only the percentiles or
        the saturation are read.

    Returns
    -------
    callable
        ``probe(model, step) -> dict`` with ``"percentiles"`` (S, P), ``"saturated"`` (S, L)
        (fraction over units and examples) and, when ``moments`` is True and all hidden layers
        have the same width W, ``"mean"`` and ``"std"`` of shape (S, L, W) (per unit, over the probe set). For a single
        :class:`~bn_core.lab.models.MLP` the member axis S is dropped.

    Examples
    --------
    >>> from bn_core.lab.models import MLP
    >>> _ = torch.manual_seed(0)
    >>> probe = activation_probe(np.ones((8, 4), np.float32), threshold=0.0)
    >>> out = probe(MLP(4, hidden=(5, 5), init_std=1.0), 0)
    >>> out["mean"].shape, out["percentiles"].shape, out["saturated"].tolist()
    ((2, 5), (3,), [1.0, 1.0])
    """
    x_t = torch.from_numpy(np.asarray(x, dtype=np.float32))
    q = torch.tensor([p / 100.0 for p in percentiles], dtype=torch.float32)
    limit = saturation_threshold(0.1) if threshold is None else float(threshold)
    if unit < 0:
        raise ValueError(f"unit must be a non-negative index, got {unit}")

    @torch.no_grad()
    def probe(model: nn.Module, step: int) -> dict[str, np.ndarray]:
        was_training, was_recording = model.training, getattr(model, "record", False)
        model.eval()
        model.record = True
        try:
            model(x_t)
            pre = [_members_first(p).float() for p in model.preactivations]
        finally:
            model.record = was_recording
            model.train(was_training)
        out = {
            "percentiles": torch.quantile(pre[layer][:, :, unit], q, dim=1).T,
            "saturated": torch.stack([(p.abs() > limit).float().mean((1, 2)) for p in pre], 1),
        }
        if (
            moments and len({p.shape[-1] for p in pre}) == 1
        ):  # stacking per-unit statistics needs equal widths
            stacked = torch.stack(pre, 1)  # (S, L, B, W)
            out["mean"] = stacked.mean(2)
            out["std"] = stacked.std(2, unbiased=False)
        result = {k: v.numpy() for k, v in out.items()}
        if not hasattr(model, "n_models"):
            result = {k: v[0] for k, v in result.items()}
        return result

    return probe


def _weight_matrices(model: nn.Module) -> list[torch.Tensor]:
    if hasattr(model, "linear_weights"):  # EnsembleMLP: (S, in, out)
        return list(model.linear_weights())
    return [layer.weight for layer in model.layers]  # MLP: (out, in)


def grad_norm_probe(every: int = 1) -> Callable[[nn.Module, int], dict[str, np.ndarray] | None]:
    """An ``on_step`` callback recording the Frobenius norm of each weight matrix's gradient.

    Parameters
    ----------
    every : int, default 1
        Record at steps 1, 1 + every, 1 + 2 every, ... (the steps are ``History``-independent,
        so keep ``every`` to recover them: ``np.arange(1, steps + 1, every)``).

    Returns
    -------
    callable
        ``probe(model, step) -> {"grad_norm": array}`` of shape (S, L + 1) for an ensemble (one
        column per Linear layer, input to output, the head last) or (L + 1,) for an MLP.

    Examples
    --------
    >>> from bn_core.lab.models import MLP
    >>> _ = torch.manual_seed(0)
    >>> model = MLP(4, hidden=(5,), out_features=3)
    >>> model(torch.ones(2, 4)).sum().backward()
    >>> grad_norm_probe()(model, 1)["grad_norm"].shape
    (2,)
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")

    @torch.no_grad()
    def probe(model: nn.Module, step: int) -> dict[str, np.ndarray] | None:
        if (step - 1) % every:
            return None
        weights = _weight_matrices(model)
        if weights[0].dim() == 3:
            norms = torch.stack([w.grad.norm(dim=(1, 2)) for w in weights], 1)
        else:
            norms = torch.stack([w.grad.norm() for w in weights])
        return {"grad_norm": norms.numpy()}

    return probe


def drift(
    mean: np.ndarray, std: np.ndarray, *, min_std: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """How much each unit's pre-activation distribution moves between consecutive evaluations.

    From the per-unit mean ``m_t`` and standard deviation ``s_t`` over a fixed probe set, two
    numbers per unit and pair of consecutive evaluations, averaged over the units:

    - the *mean shift* ``|m_t - m_{t-1}| / s_{t-1}``: how far the centre moved, in standard
      deviations of the distribution the next layer had been seeing;
    - the *scale change* ``|log(s_t / s_{t-1})|``: by how many e-folds the spread grew or shrank.

    Parameters
    ----------
    mean, std : ndarray, shape (..., T, W)
        Per-unit statistics at ``T`` evaluations, for ``W`` units.
    min_std : float, default 0.0
        Pairs in which a unit's spread is below ``min_std`` at either evaluation are left out
        of the average (e.g. a ReLU unit that is dead on the whole probe set: its relative
        changes are 0 / 0). NaN where every unit is left out.

    Returns
    -------
    shift, scale : ndarray, shape (..., T - 1)
        Averaged over the units; entry ``t`` compares evaluation ``t + 1`` with evaluation ``t``.

    Raises
    ------
    ValueError
        If the shapes differ or there are fewer than two evaluations.

    Examples
    --------
    >>> mean = np.array([[0.0, 0.0], [1.0, -3.0]])      # two evaluations, two units
    >>> std = np.array([[1.0, 2.0], [2.0, 2.0]])
    >>> shift, scale = drift(mean, std)
    >>> shift.tolist(), np.round(scale, 3).tolist()
    ([1.25], [0.347])
    >>> drift(mean, np.array([[1.0, 0.0], [2.0, 0.0]]), min_std=1e-6)[0].tolist()  # unit 2 dead
    [1.0]
    """
    mean, std = np.asarray(mean, float), np.asarray(std, float)
    if mean.shape != std.shape:
        raise ValueError(f"mean and std must have the same shape, got {mean.shape}, {std.shape}")
    if mean.ndim < 2 or mean.shape[-2] < 2:
        raise ValueError(f"need at least two evaluations on axis -2, got shape {mean.shape}")
    alive = np.minimum(std[..., :-1, :], std[..., 1:, :]) >= min_std
    std = np.maximum(std, np.finfo(float).tiny)  # a dead unit has zero spread
    shift = np.abs(np.diff(mean, axis=-2)) / std[..., :-1, :]
    scale = np.abs(np.diff(np.log(std), axis=-2))
    if min_std <= 0:
        return shift.mean(-1), scale.mean(-1)
    count = alive.sum(-1)
    with np.errstate(invalid="ignore"):
        return (
            np.where(alive, shift, 0.0).sum(-1) / np.where(count > 0, count, np.nan),
            np.where(alive, scale, 0.0).sum(-1) / np.where(count > 0, count, np.nan),
        )


def window_average(values: np.ndarray, window: int, *, axis: int = -2) -> np.ndarray:
    """Average ``values`` over consecutive blocks of ``window`` evaluations along ``axis``.

    Step-to-step jitter (noise that is fresh at every step) averages out over a window; a
    persistent drift does not. :func:`drift` of window-averaged moments therefore measures how
    far the distribution *moves*, not how much it *shakes*. A last, incomplete block is dropped.

    Parameters
    ----------
    values : ndarray
    window : int
        Number of consecutive evaluations per block (at least 1).
    axis : int, default -2
        The evaluation axis (``-2`` for the ``(..., T, W)`` moments :func:`drift` takes).

    Returns
    -------
    ndarray
        Same shape except ``T // window`` along ``axis``.

    Examples
    --------
    >>> window_average(np.arange(7.0)[:, None], 3).ravel().tolist()
    [1.0, 4.0]
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    values = np.moveaxis(np.asarray(values, float), axis, 0)
    blocks = len(values) // window
    if blocks < 1:
        raise ValueError(f"window {window} is longer than the {len(values)} evaluations")
    out = values[: blocks * window].reshape(blocks, window, *values.shape[1:]).mean(1)
    return np.moveaxis(out, 0, axis)


def spread_growth(std: np.ndarray) -> np.ndarray:
    """The factor by which the units' spread has grown since the first evaluation.

    Parameters
    ----------
    std : ndarray, shape (..., T, W)
        Per-unit standard deviations at ``T`` evaluations.

    Returns
    -------
    ndarray, shape (..., T)
        The geometric mean over units of ``s_t / s_0`` (a geometric mean, so that a unit whose
        spread doubles and one whose spread halves cancel out).

    Examples
    --------
    >>> spread_growth(np.array([[1.0, 1.0], [2.0, 8.0]])).tolist()
    [1.0, 4.0]
    """
    log_std = np.log(np.maximum(np.asarray(std, float), np.finfo(float).tiny))
    return np.exp((log_std - log_std[..., :1, :]).mean(-1))


def first_step_reaching(steps: np.ndarray, values: np.ndarray, target: float) -> np.ndarray:
    """The first evaluated step at which ``values`` reaches ``target``, per run; NaN if never.

    The vectorized form of :func:`bn_core.lab.train.steps_to_reach` for the ``(S, T)`` arrays
    an ensemble's ``History`` holds.

    Parameters
    ----------
    steps : ndarray, shape (T,)
        The evaluated steps.
    values : ndarray, shape (..., T)
        E.g. ``history.test_acc``; NaN (a diverged run) never counts as reaching the target.
    target : float

    Returns
    -------
    ndarray, shape (...)
        Float steps, NaN where the target is never reached.

    Examples
    --------
    >>> first_step_reaching(np.array([0, 10, 20]), np.array([[0.1, 0.5, 0.9], [0.1, 0.2, 0.3]]), 0.5)
    array([10., nan])
    """
    steps = np.asarray(steps, float)
    values = np.asarray(values, float)
    if values.shape[-1] != steps.shape[0]:
        raise ValueError(f"values have {values.shape[-1]} evaluations but steps has {len(steps)}")
    hit = np.nan_to_num(values, nan=-np.inf) >= target
    first = np.argmax(hit, axis=-1)
    return np.where(hit.any(axis=-1), steps[first], np.nan)


def select_members(history: History, members: Sequence[int] | np.ndarray) -> History:
    """The part of an ensemble's ``History`` that belongs to some members.

    Lets a chapter train every configuration of its experiments in one
    :class:`~bn_core.lab.ensemble.EnsembleMLP` and then look at them group by group.

    Parameters
    ----------
    history : History
        Returned by :func:`bn_core.lab.ensemble.train_ensemble` (arrays with a leading member
        axis).
    members : sequence of int or boolean mask
        Which members to keep, in this order.

    Returns
    -------
    History
        Same steps; every per-member array indexed by ``members`` (a field that is None, such
        as ``train_acc`` of a run with ``eval_train=False``, stays None).

    Examples
    --------
    >>> h = History(steps=np.arange(2), train_loss=np.zeros((3, 2)), test_loss=np.zeros((3, 2)),
    ...             test_acc=np.array([[0, 1], [2, 3], [4, 5]]), train_acc=np.zeros((3, 2)),
    ...             diverged=np.array([False, True, False]))
    >>> sub = select_members(h, [2, 0])
    >>> sub.test_acc.tolist(), sub.diverged.tolist()
    ([[4, 5], [0, 1]], [False, False])
    """
    idx = np.asarray(members)

    def pick(values):  # None when the run did not record it (eval_train=False)
        return None if values is None else values[idx]

    return replace(
        history,
        train_loss=pick(history.train_loss),
        test_loss=pick(history.test_loss),
        test_acc=pick(history.test_acc),
        train_acc=pick(history.train_acc),
        records={key: value[idx] for key, value in history.records.items()},
        step_records={key: value[idx] for key, value in history.step_records.items()},
        diverged=np.asarray(history.diverged)[idx],
    )

"""Fair comparisons: learning-rate sweeps over seeds, best-lr selection and paired differences.

"Faster with BN" means little against a badly set-up network without BN. The fair baseline is
a no-BN network with a fan-in initialization (``init_std="he"`` for ReLU, ``"lecun"`` for
sigmoid and tanh) at its best learning rate from a small sweep, and BN gets the same sweep.
:func:`lr_sweep` trains every (learning rate, seed) pair as one :class:`EnsembleMLP` (members
ordered learning-rate major), :meth:`Sweep.best` picks a learning rate by a score averaged over
seeds, and :func:`paired` summarizes same-seed differences between two arms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .data import Dataset
from .ensemble import EnsembleMLP, evaluate, train_ensemble
from .train import History


@dataclass(frozen=True)
class Sweep:
    """The result of :func:`lr_sweep`: ``history`` has ``len(lrs) * len(seeds)`` members.

    Member ``l * len(seeds) + n`` was trained at ``lrs[l]`` from seed ``seeds[n]``.
    """

    lrs: np.ndarray
    seeds: np.ndarray
    history: History
    model: EnsembleMLP

    def grid(self, key: str) -> np.ndarray:
        """``key`` (a History field such as ``"test_acc"`` or a record name) as (lrs, seeds, ...)."""
        if key in self.history.records:
            values = self.history.records[key]
        else:
            values = getattr(self.history, key)
        if values is None:
            raise ValueError(
                f"this sweep did not record {key!r}: run lr_sweep with eval_train=True"
            )
        return values.reshape(len(self.lrs), len(self.seeds), *values.shape[1:])

    def final(self, key: str = "test_acc") -> np.ndarray:
        """The last evaluation of ``key``, shape (lrs, seeds); NaN for diverged runs."""
        return self.grid(key)[:, :, -1]

    def best_value(self, key: str = "test_acc") -> np.ndarray:
        """The best evaluation of ``key`` over training (max), shape (lrs, seeds)."""
        values = self.grid(key)
        with np.errstate(invalid="ignore"):
            return np.where(np.isnan(values).all(-1), np.nan, np.nanmax(values, -1))

    def at_best(self, select: str = "val_acc", report: str = "test_acc") -> np.ndarray:
        """``report`` at the evaluation where ``select`` peaked, per run: shape (lrs, seeds).

        Early stopping on a validation set: the test accuracy of the checkpoint one would
        keep, without looking at the test set to choose it. NaN for runs that diverged
        before any evaluation.
        """
        sel, rep = self.grid(select), self.grid(report)
        best = np.argmax(np.nan_to_num(sel, nan=-np.inf), -1)
        out = np.take_along_axis(rep, best[..., None], -1)[..., 0]
        return np.where(np.isnan(sel).all(-1), np.nan, out)

    def steps_to(self, target: float, key: str = "test_acc") -> np.ndarray:
        """First evaluated step at which ``key`` >= ``target``, shape (lrs, seeds); NaN if never."""
        values = np.nan_to_num(self.grid(key), nan=-np.inf) >= target
        first = np.argmax(values, -1)
        return np.where(values.any(-1), self.history.steps[first], np.nan).astype(float)

    def best(self, score: np.ndarray, *, higher_is_better: bool = True) -> int:
        """Index of the learning rate whose seed-mean ``score`` (lrs, seeds) is best.

        A NaN (a diverged run, or a target never reached) counts as the worst possible score,
        so a learning rate wins only if every seed got there.
        """
        score = np.asarray(score, float)
        if score.shape != (len(self.lrs), len(self.seeds)):
            raise ValueError(
                f"score must have shape (lrs, seeds) = {(len(self.lrs), len(self.seeds))}, "
                f"got {score.shape}"
            )
        worst = -np.inf if higher_is_better else np.inf
        mean = np.nan_to_num(score, nan=worst).mean(1)
        return int(np.argmax(mean) if higher_is_better else np.argmin(mean))


def lr_sweep(
    data: Dataset,
    lrs: Sequence[float],
    seeds: Sequence[int],
    *,
    steps: int,
    batch_size: int = 60,
    eval_every: int = 50,
    hidden: Sequence[int] = (100, 100, 100),
    on_eval: Callable | None = None,
    on_step: Callable | None = None,
    eval_train: bool = True,
    eval_target: float | None = None,
    **model_kwargs,
) -> Sweep:
    """Train one network per (learning rate, seed) pair, all in one :class:`EnsembleMLP`.

    Parameters
    ----------
    data : Dataset
    lrs : sequence of float
        The learning rates of the sweep.
    seeds : sequence of int
        Seeds of the initialization and of the mini-batch order; the same seeds at every
        learning rate, so that two sweeps with the same seeds can be compared seed by seed.
    steps, batch_size, eval_every, on_eval, on_step, eval_train, eval_target
        As in :func:`bn_core.lab.ensemble.train_ensemble` (with ``eval_train=False`` the
        sweep has no ``train_acc`` or ``train_loss`` to select by; with ``eval_target`` only
        :meth:`Sweep.steps_to` that target and :meth:`Sweep.final` are meaningful).
    hidden : sequence of int, default (100, 100, 100)
    **model_kwargs
        Passed to :class:`EnsembleMLP` (``activation``, ``norm``, ``init_std``, ``dropout``,
        ``ghost_batch_size``, ...).

    Returns
    -------
    Sweep
    """
    lrs, seeds = np.asarray(lrs, float), np.asarray(seeds, int)
    if lrs.ndim != 1 or seeds.ndim != 1 or not lrs.size or not seeds.size:
        raise ValueError("lrs and seeds must be non-empty 1-d sequences")
    member_lr = np.repeat(lrs, len(seeds))
    member_seed = np.tile(seeds, len(lrs))
    model = EnsembleMLP(
        len(member_lr),
        data.n_features,
        hidden,
        data.n_classes,
        seeds=member_seed.tolist(),
        **model_kwargs,
    )
    history = train_ensemble(
        model,
        data,
        steps=steps,
        batch_size=batch_size,
        lr=member_lr,
        seeds=member_seed.tolist(),
        eval_every=eval_every,
        on_eval=on_eval,
        on_step=on_step,
        eval_train=eval_train,
        eval_target=eval_target,
    )
    return Sweep(lrs=lrs, seeds=seeds, history=history, model=model)


def accuracy_probe(x: np.ndarray, y: np.ndarray, name: str = "val_acc") -> Callable:
    """An ``on_eval`` hook recording every member's eval-mode accuracy on ``(x, y)`` as ``name``.

    Use it with a validation set, to choose a learning rate without looking at the test set.
    """

    def probe(model: EnsembleMLP, step: int) -> dict:
        return {name: evaluate(model, x, y)[1]}

    return probe


def holdout(data: Dataset, n_val: int, seed: int = 0) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """Split ``n_val`` training examples off as a validation set.

    Returns
    -------
    train : Dataset
        ``data`` with the remaining training examples (the test set unchanged).
    x_val, y_val : ndarray
    """
    n = len(data.x_train)
    if not 0 < n_val < n:
        raise ValueError(f"n_val must be in 1..{n - 1}, got {n_val}")
    order = np.random.default_rng(seed).permutation(n)
    val, train = order[:n_val], order[n_val:]
    rest = Dataset(data.name, data.x_train[train], data.y_train[train], data.x_test, data.y_test)
    return rest, data.x_train[val], data.y_train[val]


@dataclass(frozen=True)
class Paired:
    """Same-seed differences ``a - b`` between two arms: their mean, sd, min, max and count."""

    diff: np.ndarray
    mean: float
    sd: float
    min: float
    max: float
    n: int
    n_positive: int

    def __str__(self) -> str:
        return (
            f"{self.mean:+.2f} +- {self.sd:.2f} (sd; min {self.min:+.2f}, max {self.max:+.2f}, "
            f"{self.n_positive}/{self.n} seeds > 0)"
        )


def paired(a: np.ndarray, b: np.ndarray) -> Paired:
    """Summarize the same-seed differences ``a - b`` (1-d arrays over the same seeds).

    Seeds where either value is NaN are left out (``n`` counts the others).
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be 1-d arrays of the same length, got {a.shape}, {b.shape}")
    d = (a - b)[np.isfinite(a) & np.isfinite(b)]
    if d.size == 0:
        raise ValueError("no seed has a finite value in both arms")
    return Paired(
        diff=d,
        mean=float(d.mean()),
        sd=float(d.std(ddof=1)) if d.size > 1 else 0.0,
        min=float(d.min()),
        max=float(d.max()),
        n=int(d.size),
        n_positive=int((d > 0).sum()),
    )

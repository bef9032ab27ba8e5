"""A small, deterministic training loop that records what the chapters plot."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .data import Dataset


@dataclass
class History:
    """What one training run recorded.

    ``steps`` are the steps at which the model was evaluated (0 is before training);
    ``train_loss``, ``test_loss``, ``test_acc`` are aligned with it. ``records[key]`` holds what
    the ``on_eval`` callback returned at those steps, and ``step_records[key]`` what ``on_step``
    returned at every training step. ``diverged`` is True when the loss became non-finite; the
    remaining evaluations are then NaN. ``train_loss`` and ``train_acc`` are None for runs
    that did not evaluate the training set (``eval_train=False`` in
    :func:`bn_core.lab.ensemble.train_ensemble`).
    """

    steps: np.ndarray
    train_loss: np.ndarray | None
    test_loss: np.ndarray
    test_acc: np.ndarray
    train_acc: np.ndarray | None
    records: dict[str, np.ndarray] = field(default_factory=dict)
    step_records: dict[str, np.ndarray] = field(default_factory=dict)
    diverged: bool = False


@torch.no_grad()
def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Loss and accuracy of ``model`` in eval mode on the whole of ``(x, y)``."""
    was_training = model.training
    model.eval()
    logits = model(torch.from_numpy(x))
    target = torch.from_numpy(y)
    loss = nn.functional.cross_entropy(logits, target).item()
    acc = (logits.argmax(1) == target).float().mean().item()
    model.train(was_training)
    return loss, acc


def train(
    model: nn.Module,
    data: Dataset,
    *,
    steps: int,
    batch_size: int = 60,
    lr: float = 0.1,
    seed: int = 0,
    eval_every: int = 100,
    optimizer: str = "sgd",
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    on_step: Callable[[nn.Module, int], dict | None] | None = None,
    on_eval: Callable[[nn.Module, int], dict | None] | None = None,
) -> History:
    """Train ``model`` with mini-batch SGD (or Adam) and cross-entropy.

    Mini-batches are drawn without replacement within an epoch, in an order fixed by
    ``seed``; together with a seeded initialization this makes a run repeatable.

    Parameters
    ----------
    model : torch.nn.Module
    data : Dataset
    steps : int
        Number of parameter updates.
    batch_size : int, default 60
        The paper's Figure 1 uses 60.
    lr : float, default 0.1
    seed : int, default 0
        Seed of the mini-batch order.
    eval_every : int, default 100
        Evaluate (train loss, test loss and accuracy, ``on_eval``) every this many steps,
        and at steps 0 and ``steps``.
    optimizer : {"sgd", "adam"}, default "sgd"
    momentum, weight_decay : float
        Passed to the optimizer (momentum for SGD only).
    on_step : callable, optional
        ``on_step(model, step)`` after the backward pass, before the update (gradients are
        available); a returned dict of numbers or arrays is recorded in ``step_records``.
    on_eval : callable, optional
        ``on_eval(model, step)`` at each evaluation; a returned dict is recorded in ``records``.

    Returns
    -------
    History
    """
    if optimizer == "sgd":
        opt = torch.optim.SGD(
            model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
        )
    elif optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    if batch_size > len(data.x_train):
        raise ValueError(
            f"batch_size {batch_size} exceeds the {len(data.x_train)} training examples"
        )

    rng = np.random.default_rng(seed)
    x_train = torch.from_numpy(data.x_train)
    y_train = torch.from_numpy(data.y_train)
    evals: dict[str, list] = defaultdict(list)
    per_step: dict[str, list] = defaultdict(list)
    diverged = False

    def do_eval(step: int) -> None:
        evals["steps"].append(step)
        if diverged:
            for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
                evals[key].append(np.nan)
            return
        tr_loss, tr_acc = evaluate(model, data.x_train, data.y_train)
        te_loss, te_acc = evaluate(model, data.x_test, data.y_test)
        evals["train_loss"].append(tr_loss)
        evals["train_acc"].append(tr_acc)
        evals["test_loss"].append(te_loss)
        evals["test_acc"].append(te_acc)
        if on_eval is not None:
            for key, value in (on_eval(model, step) or {}).items():
                evals["rec:" + key].append(np.asarray(value))

    model.train()
    order = rng.permutation(len(x_train))
    pos = 0
    do_eval(0)
    for step in range(1, steps + 1):
        if pos + batch_size > len(order):
            order, pos = rng.permutation(len(x_train)), 0
        idx = torch.from_numpy(order[pos : pos + batch_size])
        pos += batch_size
        if not diverged:
            loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            if not torch.isfinite(loss):
                diverged = True
            else:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if on_step is not None:
                    for key, value in (on_step(model, step) or {}).items():
                        per_step[key].append(np.asarray(value))
                opt.step()
        if step % eval_every == 0 or step == steps:
            do_eval(step)

    return History(
        steps=np.asarray(evals["steps"]),
        train_loss=np.asarray(evals["train_loss"]),
        test_loss=np.asarray(evals["test_loss"]),
        test_acc=np.asarray(evals["test_acc"]),
        train_acc=np.asarray(evals["train_acc"]),
        records={k[4:]: np.stack(v) for k, v in evals.items() if k.startswith("rec:")},
        step_records={k: np.stack(v) for k, v in per_step.items()},
        diverged=diverged,
    )


def run_seeds(
    build: Callable[[], nn.Module], data: Dataset, seeds: Iterable[int], **train_kwargs
) -> list[History]:
    """Train a fresh model per seed: ``torch.manual_seed(seed)``, ``build()``, :func:`train`.

    The seed fixes both the initialization and the mini-batch order.
    """
    histories = []
    for seed in seeds:
        torch.manual_seed(seed)
        histories.append(train(build(), data, seed=seed, **train_kwargs))
    return histories


def stack(histories: Iterable[History], key: str) -> np.ndarray:
    """Stack one recorded quantity over runs: shape (runs, evaluations, ...).

    ``key`` is a History field (``"test_acc"``, ...) or a key of ``records``.
    """
    rows = [h.records[key] if key in h.records else getattr(h, key) for h in histories]
    return np.stack(rows)


def steps_to_reach(history: History, target: float, key: str = "test_acc") -> float:
    """First evaluated step at which ``key`` reaches ``target``; NaN if it never does."""
    values = getattr(history, key)
    hit = np.flatnonzero(values >= target)
    return float(history.steps[hit[0]]) if hit.size else float("nan")

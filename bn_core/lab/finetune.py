"""Fine-tuning helpers: what a step does to BN's state, re-estimating statistics, NaN checks.

Used by the fine-tuning chapter. Everything works on any torch model with ``BatchNorm1d/2d``
layers (found with :func:`bn_core.lab.convnets.bn_layers`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from .convnets import bn_layers
from .data import Dataset


def shifted(data: Dataset, *, contrast: float = 0.5, brightness: float = 0.4) -> Dataset:
    """A new "domain": every pixel ``x`` becomes ``contrast * x + brightness``.

    A faded, grey-background version of the same digits, labels unchanged (a stand-in for a
    new camera or scanner).
    """
    return Dataset(
        f"{data.name} (x{contrast} + {brightness})",
        (contrast * data.x_train + brightness).astype(np.float32),
        data.y_train,
        (contrast * data.x_test + brightness).astype(np.float32),
        data.y_test,
    )


def bn_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every BN layer's gamma, beta, running mean and running variance.

    Keys are ``"gamma"``, ``"beta"``, ``"running_mean"``, ``"running_var"``, each the
    concatenation over layers (so one number summarizes a change of the whole network).
    """
    layers = bn_layers(model)
    out = {}
    for key, attr in [
        ("gamma", "weight"),
        ("beta", "bias"),
        ("running_mean", "running_mean"),
        ("running_var", "running_var"),
    ]:
        parts = [getattr(m, attr) for m in layers if getattr(m, attr, None) is not None]
        out[key] = torch.cat([p.detach().flatten() for p in parts]).clone()
    return out


def bn_change(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> dict[str, float]:
    """Largest absolute change of each entry of :func:`bn_state` (NaN-aware: NaN -> inf)."""
    out = {}
    for key in before:
        diff = (after[key] - before[key]).abs()
        out[key] = float("inf") if not torch.isfinite(diff).all() else float(diff.max())
    return out


def fine_tune_steps(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
    bn_mode: str = "train",
    bn_requires_grad: bool = True,
    sorted_by_label: bool = False,
) -> nn.Module:
    """Run ``steps`` SGD steps on ``(x, y)`` with BN in a chosen mode; returns ``model``.

    Parameters
    ----------
    bn_mode : {"train", "eval"}
        Mode of the BN layers during the steps. The rest of the model is in training mode; the
        BN layers are put in eval mode *after* ``model.train()``, the order that works.
    bn_requires_grad : bool
        ``requires_grad`` of every BN layer's gamma and beta.
    sorted_by_label : bool, default False
        Walk through the examples sorted by label, in consecutive batches (an unshuffled data
        loader over a sorted dataset: each batch holds one or two classes), instead of drawing
        each batch at random.
    """
    if bn_mode not in ("train", "eval"):
        raise ValueError(f"bn_mode must be 'train' or 'eval', got {bn_mode!r}")
    for m in bn_layers(model):
        m.requires_grad_(bn_requires_grad)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr)
    rng = np.random.default_rng(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    if bn_mode == "eval":
        for m in bn_layers(model):
            m.eval()
    order = np.argsort(y, kind="stable")
    for step in range(steps):
        if sorted_by_label:
            idx = torch.from_numpy(
                np.take(order, np.arange(batch_size) + step * batch_size, mode="wrap")
            )
        else:
            idx = torch.from_numpy(rng.choice(len(x), batch_size, replace=False))
        loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model


@torch.no_grad()
def recalibrate(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """Re-estimate every BN layer's running statistics from ``batches`` (AdaBN, precise BN).

    The statistics are reset and rebuilt as the cumulative average over the batches
    (``momentum=None``) in a training-mode pass without gradients; the weights do not change.
    The model is left in eval mode with each layer's momentum restored.
    """
    layers = bn_layers(model)
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: every batch counts equally
    model.train()
    n = 0
    for xb in batches:
        model(xb)
        n += 1
    if n == 0:
        raise ValueError("recalibrate needs at least one batch")
    for m, mom in zip(layers, momenta, strict=True):
        m.momentum = mom
    return model.eval()


def batches_of(x: np.ndarray, batch_size: int) -> list[torch.Tensor]:
    """``x`` cut into consecutive batches (the last one dropped if it is smaller than 2)."""
    t = torch.from_numpy(x)
    out = [t[i : i + batch_size] for i in range(0, len(t), batch_size)]
    return [b for b in out if len(b) > 1]


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, *, batch_size: int | None = None):
    """Eval-mode accuracy; with ``batch_size`` the inputs go through in batches of that size.

    The batch size matters only for layers that use batch statistics at inference
    (``track_running_stats=False``). The mode of ``model`` is restored afterwards.
    """
    was = model.training
    model.eval()
    xt = torch.from_numpy(x)
    size = len(x) if batch_size is None else batch_size
    preds = torch.cat([model(xt[i : i + size]).argmax(1) for i in range(0, len(x), size)])
    model.train(was)
    return float((preds.numpy() == y).mean())


def nonfinite_bn_buffers(model: nn.Module) -> list[str]:
    """Names of BN buffers that hold a NaN or an infinity (the check to run after training)."""
    return [
        name
        for name, buf in model.named_buffers()
        if buf.is_floating_point() and not torch.isfinite(buf).all()
    ]


def guard_batchnorm(model: nn.Module) -> list:
    """Make every BN layer refuse a non-finite input in training mode, before it is averaged in.

    Returns the hook handles (call ``.remove()`` on each to undo). The check costs one
    reduction per layer and batch.
    """

    def check(module, inputs):
        if module.training and not torch.isfinite(inputs[0]).all():
            raise FloatingPointError(
                f"non-finite input to {type(module).__name__}({module.num_features}) in training "
                "mode: it would enter the running statistics and stay there; skip this batch"
            )

    return [m.register_forward_pre_hook(check) for m in bn_layers(model)]


def clone(model: nn.Module) -> nn.Module:
    """A deep copy (weights, buffers and modes), so one checkpoint can be tried many ways."""
    return copy.deepcopy(model)

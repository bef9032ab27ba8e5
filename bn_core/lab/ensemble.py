"""Train many small networks at once: one per seed, learning rate or initial scale.

A chapter's claim needs several seeds and often a sweep, and a 100-unit MLP is far too small to
keep a CPU busy: the time goes to per-operation overhead. :class:`EnsembleMLP` stacks ``S``
independent networks into batched matrix multiplications (weights of shape ``(S, in, out)``), so
one step trains all of them for little more than the cost of one. The members share nothing:
each has its own initialization, mini-batch order, normalization statistics and learning rate,
and the result for member ``s`` is the same as training it alone (tested in ``tests/test_lab.py``).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .data import Dataset
from .models import FAN_IN_GAINS
from .train import History

_ACTIVATIONS = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}


class EnsembleMLP(nn.Module):
    """``S`` independent MLPs ``[Linear -> norm -> activation] x L -> Linear`` run as one.

    Parameters
    ----------
    n_models : int
        Number of members ``S``.
    in_features, out_features : int
    hidden : sequence of int, default (100, 100, 100)
    activation : {"sigmoid", "relu", "tanh"}, default "sigmoid"
    norm : {None, "batch", "layer", "group"}, default None
        Batch normalization uses each member's own mini-batch statistics in training (biased
        variance) and its running estimates in eval mode (unbiased variance stored, PyTorch's
        ``momentum`` convention), exactly like ``nn.BatchNorm1d``.
    init_std : float, array of shape (S,), "he" or "lecun", optional
        Weights drawn from N(0, init_std^2) with zero biases; per member if an array.
        ``"he"`` and ``"lecun"`` are fan-in initializations: N(0, 2 / fan_in) (He et al.
        2015, for ReLU) and N(0, 1 / fan_in) (LeCun, for sigmoid and tanh), zero biases: the
        BN-free way to keep activations at a steady scale, and the fair baseline for "with vs
        without BN". Otherwise torch's default ``nn.Linear`` initialization.
    dropout : float, default 0.0
        Dropout probability after each hidden activation.
    seeds : sequence of int, optional
        Seed of each member's initialization; defaults to ``range(S)``.
    linear_bias : bool, optional
        Bias in hidden Linear layers; defaults to ``norm is None`` (a bias before BN is redundant).
    num_groups : int, default 4
    eps : float, default 1e-5
    momentum : float, default 0.1
        Weight of the new batch in the running estimates.
    ghost_batch_size : int, optional
        Ghost batch normalization (Hoffer et al. 2017): in training, batch normalization splits
        each mini-batch into consecutive chunks of this many examples and normalizes each chunk
        with its own statistics. The gradient step still uses the whole mini-batch; only the
        normalization noise grows (a smaller ghost batch gives noisier statistics), which makes
        it the control that changes BN's noise and nothing else. The running estimates are
        updated once per mini-batch with the average of the chunks' means and of their unbiased
        variances. Requires ``norm="batch"``; the mini-batch size must be a multiple of it.
        ``None`` (default) normalizes over the whole mini-batch.
    fused_bn : bool, default False
        In training, compute batch normalization (statistics, running estimates, gamma and
        beta) with torch's fused ``batch_norm`` kernel, one channel per (member, unit): same
        definition, about 3-4 times faster per BN layer on a CPU, equal to the default path up
        to float rounding (about 1e-6). Only used with ``norm="batch"`` and without
        ``ghost_batch_size``. Off by default so that existing results stay bit-for-bit.

    Attributes
    ----------
    record : bool
        When True, forward stores ``preactivations`` (inputs of the activations, after norm),
        ``linear_outputs`` (BN's inputs) and ``activations`` (outputs of the hidden layers, after
        dropout: what the next Linear layer sees), each a list of ``(S, B, width)`` tensors.
    post_norm : callable, optional
        ``post_norm(layer_index, u)`` is applied to the normalized pre-activation in training
        mode (a hook for experiments such as noisy BN).
    """

    def __init__(
        self,
        n_models: int,
        in_features: int,
        hidden: Sequence[int] = (100, 100, 100),
        out_features: int = 10,
        *,
        activation: str = "sigmoid",
        norm: str | None = None,
        init_std: float | str | Sequence[float] | np.ndarray | None = None,
        dropout: float = 0.0,
        seeds: Sequence[int] | None = None,
        linear_bias: bool | None = None,
        num_groups: int = 4,
        eps: float = 1e-5,
        momentum: float = 0.1,
        ghost_batch_size: int | None = None,
        fused_bn: bool = False,
    ):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
            )
        if norm not in (None, "batch", "layer", "group"):
            raise ValueError(f"norm must be None, 'batch', 'layer' or 'group', got {norm!r}")
        if norm == "group" and any(w % num_groups for w in hidden):
            raise ValueError(f"num_groups={num_groups} must divide every hidden width {hidden}")
        if ghost_batch_size is not None:
            if norm != "batch":
                raise ValueError(f"ghost_batch_size needs norm='batch', got norm={norm!r}")
            if int(ghost_batch_size) != ghost_batch_size or ghost_batch_size < 2:
                raise ValueError(
                    f"ghost_batch_size must be an integer >= 2 (one value per channel cannot be "
                    f"normalized), got {ghost_batch_size!r}"
                )
        seeds = list(range(n_models)) if seeds is None else list(seeds)
        if len(seeds) != n_models:
            raise ValueError(f"got {len(seeds)} seeds for n_models={n_models}")
        fan_in_gain = FAN_IN_GAINS.get(init_std) if isinstance(init_std, str) else None
        if isinstance(init_std, str) and fan_in_gain is None:
            raise ValueError(f"init_std must be a number, 'he' or 'lecun', got {init_std!r}")
        stds = (
            None
            if init_std is None or fan_in_gain is not None
            else np.broadcast_to(np.asarray(init_std, float), n_models)
        )
        self.n_models, self.norm, self.num_groups = n_models, norm, num_groups
        self.eps, self.momentum, self.dropout = eps, momentum, dropout
        self.ghost_batch_size = None if ghost_batch_size is None else int(ghost_batch_size)
        self.activation = activation
        self.fused_bn = bool(fused_bn)
        self.linear_bias = norm is None if linear_bias is None else linear_bias
        self.record, self.post_norm = False, None
        self.preactivations: list[torch.Tensor] = []
        self.linear_outputs: list[torch.Tensor] = []
        self.activations: list[torch.Tensor] = []

        widths = [in_features, *hidden, out_features]
        weights = [
            torch.empty(n_models, a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)
        ]
        biases = [torch.zeros(n_models, 1, b) for b in widths[1:]]
        for s, seed in enumerate(seeds):
            gen = torch.Generator().manual_seed(int(seed))
            for w, b in zip(weights, biases, strict=True):
                fan_in = w.shape[1]
                if fan_in_gain is not None:
                    w[s].normal_(0.0, (fan_in_gain / fan_in) ** 0.5, generator=gen)
                elif stds is None:  # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
                    bound = 1.0 / fan_in**0.5
                    w[s].uniform_(-bound, bound, generator=gen)
                    b[s].uniform_(-bound, bound, generator=gen)
                else:
                    w[s].normal_(0.0, float(stds[s]), generator=gen)
        n_hidden = len(hidden)
        self.weights = nn.ParameterList(nn.Parameter(w) for w in weights)
        self.biases = nn.ParameterList(
            nn.Parameter(b) for i, b in enumerate(biases) if i == n_hidden or self.linear_bias
        )
        if norm is not None:
            self.gammas = nn.ParameterList(nn.Parameter(torch.ones(n_models, 1, w)) for w in hidden)
            self.betas = nn.ParameterList(nn.Parameter(torch.zeros(n_models, 1, w)) for w in hidden)
        if norm == "batch":
            for i, w in enumerate(hidden):
                self.register_buffer(f"running_mean{i}", torch.zeros(n_models, 1, w))
                self.register_buffer(f"running_var{i}", torch.ones(n_models, 1, w))

    @property
    def n_hidden(self) -> int:
        return len(self.weights) - 1

    def _bias(self, i: int) -> torch.Tensor | None:
        if i == self.n_hidden:
            return self.biases[-1]
        return self.biases[i] if self.linear_bias else None

    def _normalize(self, i: int, z: torch.Tensor) -> torch.Tensor:
        if self.norm == "batch":
            rm, rv = getattr(self, f"running_mean{i}"), getattr(self, f"running_var{i}")
            if self.training and self.ghost_batch_size is not None:
                return self._ghost_normalize(i, z, rm, rv)
            if self.training:
                m = z.shape[1]
                if m < 2:
                    raise ValueError("Expected more than 1 value per channel when training")
                if self.fused_bn:
                    return self._fused_normalize(i, z, rm, rv)
                mean = z.mean(1, keepdim=True)
                # (z - mean)^2 averaged: much faster on CPU than Tensor.var over a middle axis
                var = (z - mean).square().mean(1, keepdim=True)
                with torch.no_grad():
                    rm.mul_(1 - self.momentum).add_(self.momentum * mean)
                    rv.mul_(1 - self.momentum).add_(self.momentum * var * m / (m - 1))
            else:
                mean, var = rm, rv
            zhat = (z - mean) / torch.sqrt(var + self.eps)
        elif self.norm == "layer":
            mean = z.mean(-1, keepdim=True)
            var = z.var(-1, unbiased=False, keepdim=True)
            zhat = (z - mean) / torch.sqrt(var + self.eps)
        else:  # group
            s, b, w = z.shape
            g = z.reshape(s, b, self.num_groups, w // self.num_groups)
            mean = g.mean(-1, keepdim=True)
            var = g.var(-1, unbiased=False, keepdim=True)
            zhat = ((g - mean) / torch.sqrt(var + self.eps)).reshape(s, b, w)
        return self.gammas[i] * zhat + self.betas[i]

    def _fused_normalize(
        self, i: int, z: torch.Tensor, rm: torch.Tensor, rv: torch.Tensor
    ) -> torch.Tensor:
        # (S, B, W) -> (B, S * W): each (member, unit) is one channel of torch's batch_norm,
        # whose running-estimate update (unbiased variance, momentum) is PyTorch's convention
        s, b, w = z.shape
        out = F.batch_norm(
            z.transpose(0, 1).reshape(b, s * w),
            rm.view(-1),
            rv.view(-1),
            self.gammas[i].reshape(-1),
            self.betas[i].reshape(-1),
            training=True,
            momentum=self.momentum,
            eps=self.eps,
        )
        return out.reshape(b, s, w).transpose(0, 1)

    def _ghost_normalize(
        self, i: int, z: torch.Tensor, rm: torch.Tensor, rv: torch.Tensor
    ) -> torch.Tensor:
        s, b, w = z.shape
        g = self.ghost_batch_size
        if b % g:
            raise ValueError(
                f"the mini-batch of {b} examples cannot be split into ghost batches of {g}: "
                f"choose a batch size that is a multiple of ghost_batch_size"
            )
        chunks = z.reshape(s, b // g, g, w)  # consecutive examples form a ghost batch
        mean = chunks.mean(2, keepdim=True)
        var = (chunks - mean).square().mean(2, keepdim=True)
        with torch.no_grad():
            rm.mul_(1 - self.momentum).add_(self.momentum * mean.mean(1))
            rv.mul_(1 - self.momentum).add_(self.momentum * var.mean(1) * g / (g - 1))
        zhat = ((chunks - mean) / torch.sqrt(var + self.eps)).reshape(s, b, w)
        return self.gammas[i] * zhat + self.betas[i]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every member, shape ``(S, B, out)``; ``x`` is ``(B, in)`` or ``(S, B, in)``."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n_models, -1, -1)
        if self.record:
            self.preactivations, self.linear_outputs, self.activations = [], [], []
        act = _ACTIVATIONS[self.activation]
        for i in range(self.n_hidden):
            z = torch.bmm(x, self.weights[i])
            bias = self._bias(i)
            if bias is not None:
                z = z + bias
            u = z if self.norm is None else self._normalize(i, z)
            if self.post_norm is not None and self.training:
                u = self.post_norm(i, u)
            if self.record:
                self.linear_outputs.append(z.detach())
                self.preactivations.append(u.detach())
            x = act(u)
            if self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)
            if self.record:
                self.activations.append(x.detach())
        return torch.baddbmm(self.biases[-1], x, self.weights[-1])

    def linear_weights(self) -> list[torch.Tensor]:
        """The Linear weights, input to output, each ``(S, in, out)``."""
        return list(self.weights)


def _per_member_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    s, b, c = logits.shape
    losses = F.cross_entropy(logits.reshape(s * b, c), y.reshape(s * b), reduction="none")
    return losses.reshape(s, b).mean(1)


@torch.no_grad()
def evaluate(model: EnsembleMLP, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-member loss and accuracy in eval mode on all of ``(x, y)``: two arrays of shape (S,)."""
    was_training = model.training
    model.eval()
    logits = model(torch.from_numpy(x))
    target = torch.from_numpy(y).expand(model.n_models, -1)
    loss = _per_member_loss(logits, target).numpy()
    acc = (logits.argmax(-1) == target).float().mean(1).numpy()
    model.train(was_training)
    return loss, acc


@torch.no_grad()
def training_noise(
    model: EnsembleMLP,
    x: np.ndarray,
    *,
    batch_size: int,
    draws: int = 20,
    seed: int = 0,
) -> np.ndarray:
    """How much the training-mode noise moves each hidden layer's output, in like units.

    Every example of ``x`` is passed ``draws`` times in training mode, each time in a new
    random mini-batch of ``batch_size`` (BN's noise: other batch-mates; dropout's noise: new
    masks). For each member and hidden layer, the noise power (the variance of a unit's
    output across draws, averaged over examples and units) is divided by the signal power
    (the variance across examples of the unit's mean output, averaged over units). The
    square root is the noise's standard deviation as a fraction of the spread the layer's
    output has across examples: a unit shared by batch noise and dropout noise.

    Parameters
    ----------
    model : EnsembleMLP
        Left unchanged (a copy is run, so running statistics are not touched).
    x : ndarray of shape (n, in)
        ``n`` must be a multiple of ``batch_size``.
    batch_size : int
        The training mini-batch size (a ghost-batch model keeps its smaller ghost batches).
    draws : int, default 20
    seed : int, default 0
        Seeds the batch composition and the dropout masks.

    Returns
    -------
    ndarray of shape (S, n_hidden)
        Relative noise (noise sd / signal sd) of each member's hidden layers.
    """
    if len(x) % batch_size:
        raise ValueError(f"len(x) = {len(x)} must be a multiple of batch_size = {batch_size}")
    if draws < 2:
        raise ValueError(f"draws must be at least 2 to measure a spread, got {draws}")
    net = copy.deepcopy(model)
    net.train()
    net.record = True
    if net.norm == "batch" and net.ghost_batch_size is None:
        net.ghost_batch_size = batch_size  # one pass over x = len(x) / batch_size mini-batches
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)  # dropout masks
    xt = torch.from_numpy(np.ascontiguousarray(x))
    outs: list[list[torch.Tensor]] = [[] for _ in range(net.n_hidden)]
    for _ in range(draws):
        order = torch.from_numpy(rng.permutation(len(x)))
        net(xt[order])
        inverse = torch.argsort(order)
        for i, h in enumerate(net.activations):
            outs[i].append(h[:, inverse])  # back to the order of x: (S, n, width)
    ratios = []
    for layer in outs:
        h = torch.stack(layer).double()  # (draws, S, n, width)
        noise = h.var(0).mean((1, 2))
        signal = h.mean(0).var(1).mean(1)
        ratios.append(torch.sqrt(noise / signal))
    return torch.stack(ratios, 1).numpy()


def train_ensemble(
    model: EnsembleMLP,
    data: Dataset,
    *,
    steps: int,
    batch_size: int = 60,
    lr: float | Sequence[float] | np.ndarray = 0.1,
    seeds: Sequence[int] | None = None,
    eval_every: int = 100,
    on_step: Callable[[EnsembleMLP, int], dict | None] | None = None,
    on_eval: Callable[[EnsembleMLP, int], dict | None] | None = None,
    eval_train: bool = True,
    eval_target: float | None = None,
) -> History:
    """Train every member of ``model`` with plain mini-batch SGD and cross-entropy.

    Parameters
    ----------
    model : EnsembleMLP
    data : Dataset
    steps : int
    batch_size : int, default 60
    lr : float or array of shape (S,), default 0.1
        Learning rate, per member if an array (a learning-rate sweep in one run).
    seeds : sequence of int, optional
        Seed of each member's mini-batch order; defaults to ``range(S)``.
    eval_every : int, default 100
        Evaluate every this many steps, and at steps 0 and ``steps``.
    on_step, on_eval : callable, optional
        As in :func:`bn_core.lab.train.train`; returned values must have a leading member axis.
    eval_train : bool, default True
        Also evaluate on the whole training set at every evaluation. Evaluating the training
        set costs more than the test set (it is larger); pass False for runs that only use
        test accuracy. ``train_loss`` and ``train_acc`` are then None.
    eval_target : float, optional
        For runs that only read the steps to reach a test accuracy and the final values: once
        every member's test accuracy has reached ``eval_target`` (or the member diverged), the
        evaluations (and ``on_eval`` calls) before the last step are skipped, since they can no
        longer change a first step reaching the target. ``History.steps`` lists the steps that
        were evaluated. None (default) evaluates every ``eval_every`` steps.

    Returns
    -------
    History
        ``train_loss``, ``test_loss``, ``test_acc``, ``train_acc`` of shape (S, T) (the first
        two None if ``eval_train`` is False); records of shape (S, T, ...); ``diverged`` a
        boolean array (S,). A member whose loss becomes non-finite stops updating and reports
        NaN from then on.
    """
    n = model.n_models
    seeds = list(range(n)) if seeds is None else list(seeds)
    if len(seeds) != n:
        raise ValueError(f"got {len(seeds)} seeds for {n} members")
    if batch_size > len(data.x_train):
        raise ValueError(
            f"batch_size {batch_size} exceeds the {len(data.x_train)} training examples"
        )
    lr_t = torch.as_tensor(np.broadcast_to(np.asarray(lr, np.float32), n).copy())
    rngs = [np.random.default_rng(seed) for seed in seeds]
    x_train, y_train = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    params = [p for p in model.parameters() if p.requires_grad]
    alive = torch.ones(n, dtype=torch.bool)
    evals: dict[str, list] = defaultdict(list)
    per_step: dict[str, list] = defaultdict(list)
    reached = np.zeros(n, dtype=bool)  # test accuracy has reached eval_target

    def do_eval(step: int) -> None:
        dead = (~alive).numpy()
        results = {}
        if eval_train:
            results["train_loss"], results["train_acc"] = evaluate(
                model, data.x_train, data.y_train
            )
        results["test_loss"], results["test_acc"] = evaluate(model, data.x_test, data.y_test)
        for key, value in results.items():
            evals[key].append(np.where(dead, np.nan, value))
        if eval_target is not None:
            reached[:] |= dead | (results["test_acc"] >= eval_target)
        evals["steps"].append(step)
        if on_eval is not None:
            for key, value in (on_eval(model, step) or {}).items():
                evals["rec:" + key].append(np.asarray(value))

    def new_orders() -> np.ndarray:
        return np.stack([rng.permutation(len(x_train)) for rng in rngs])

    model.train()
    orders, pos = new_orders(), 0
    do_eval(0)
    for step in range(1, steps + 1):
        if pos + batch_size > orders.shape[1]:
            orders, pos = new_orders(), 0
        idx = torch.from_numpy(orders[:, pos : pos + batch_size])
        pos += batch_size
        losses = _per_member_loss(model(x_train[idx]), y_train[idx])
        alive &= torch.isfinite(losses).detach()
        all_alive = bool(alive.all())
        if all_alive or alive.any():
            for p in params:
                p.grad = None
            # the same sum when every member is alive, without the boolean-index copy
            (losses if all_alive else losses[alive]).sum().backward()
            if on_step is not None:
                for key, value in (on_step(model, step) or {}).items():
                    per_step[key].append(np.asarray(value))
            with torch.no_grad():
                scale = (lr_t * alive).to(params[0].dtype)
                for p in params:
                    if p.grad is not None:
                        # in place: the gradient is not used after the step
                        grad = p.grad.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
                        p.sub_(scale.view(-1, *[1] * (p.dim() - 1)) * grad)
        if step == steps or (step % eval_every == 0 and not reached.all()):
            do_eval(step)

    def members_first(rows: list) -> np.ndarray | None:
        return np.moveaxis(np.stack(rows), 0, 1) if rows else None

    return History(
        steps=np.asarray(evals["steps"]),
        train_loss=members_first(evals.get("train_loss", [])),
        test_loss=members_first(evals["test_loss"]),
        test_acc=members_first(evals["test_acc"]),
        train_acc=members_first(evals.get("train_acc", [])),
        records={k[4:]: members_first(v) for k, v in evals.items() if k.startswith("rec:")},
        step_records={k: members_first(v) for k, v in per_step.items()},
        diverged=(~alive).numpy(),
    )

"""Residual MLPs for chapter 11: many independent members trained as one.

A residual network carries a *stream* ``x_{l+1} = x_l + f_l(x_l)``; what batch normalization does
to it at initialization (De & Smith 2020) is measured with :func:`stream_moments`, and deep
variants are trained with :func:`bn_core.lab.ensemble.train_ensemble`, which takes any module
with an ``n_models`` attribute whose parameters all have a leading member axis.

:class:`EnsembleResMLP` stacks ``S`` independent networks into batched matrix multiplications,
as :class:`bn_core.lab.ensemble.EnsembleMLP` does for plain MLPs: each member has its own
initialization, batch statistics and learning rate.

Blocks (``W`` a ``width x width`` Linear layer, ``BN`` batch normalization over the batch):

- ``block="pre"`` (He et al. 2016, "identity mappings"): ``x + W2 relu(BN2(W1 relu(BN1(x))))``;
  the stream is never normalized or rectified, and a final ``relu(BN(x_L))`` feeds the head.
- ``block="post"`` (He et al. 2015, the original ResNet):
  ``relu(x + BN2(W2 relu(BN1(W1 x))))``, after a ``relu(BN(W0 input))`` stem.

Without normalization the BN layers are left out and every Linear layer has a zero-initialized
bias.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .models import FAN_IN_GAINS

__all__ = ["EnsembleResMLP", "stream_moments"]


class EnsembleResMLP(nn.Module):
    """``S`` independent residual MLPs ``stem -> depth blocks -> head``, run as one.

    Parameters
    ----------
    n_models : int
        Number of members ``S``.
    in_features : int
    width : int, default 32
        Width of the residual stream and of every block.
    depth : int, default 8
        Number of residual blocks (each has two Linear layers).
    out_features : int, default 10
    norm : {None, "batch"}, default None
        Batch normalization inside the blocks (and in the stem or before the head, see the module
        docstring), with each member's own batch statistics in training (biased variance) and
        running estimates in eval mode, PyTorch's ``momentum`` convention.
    block : {"pre", "post"}, default "pre"
        Pre-activation (He et al. 2016) or post-activation (He et al. 2015) blocks.
    zero_init_gamma : bool, default False
        Initialize the scale of the *last* BN of every block to 0 (Goyal et al. 2017), so that
        each block starts as ``relu(x)``. Needs ``norm="batch"`` and ``block="post"``: in a
        pre-activation block the last BN feeds a ReLU, whose derivative at 0 is 0, so a zero
        scale would never receive a gradient.
    skipinit : bool, default False
        Multiply every branch by a learnable scalar initialized at 0 (SkipInit, De & Smith
        2020): each block starts as the identity.
    init : {"he", "lecun"}, default "he"
        Fan-in initialization ``N(0, gain / fan_in)`` of every Linear layer, zero biases.
    seeds : sequence of int, optional
        Seed of each member's initialization; defaults to ``range(S)``.
    eps : float, default 1e-5
    momentum : float, default 0.1

    Attributes
    ----------
    probe : list or None
        When a list, forward appends ``(x_l, f_l)`` for every block: the stream entering the
        block and the branch's contribution (after SkipInit's scalar), each ``(S, B, width)``,
        detached.
    """

    def __init__(
        self,
        n_models: int,
        in_features: int,
        width: int = 32,
        depth: int = 8,
        out_features: int = 10,
        *,
        norm: str | None = None,
        block: str = "pre",
        zero_init_gamma: bool = False,
        skipinit: bool = False,
        init: str = "he",
        seeds: Sequence[int] | None = None,
        eps: float = 1e-5,
        momentum: float = 0.1,
    ):
        super().__init__()
        if norm not in (None, "batch"):
            raise ValueError(f"norm must be None or 'batch', got {norm!r}")
        if block not in ("pre", "post"):
            raise ValueError(f"block must be 'pre' or 'post', got {block!r}")
        if init not in FAN_IN_GAINS:
            raise ValueError(f"init must be one of {sorted(FAN_IN_GAINS)}, got {init!r}")
        if int(depth) != depth or depth < 1:
            raise ValueError(f"depth must be a positive integer, got {depth!r}")
        if zero_init_gamma and norm != "batch":
            raise ValueError("zero_init_gamma needs norm='batch' (it sets a BN layer's scale)")
        if zero_init_gamma and block != "post":
            raise ValueError(
                "zero_init_gamma needs block='post': in a pre-activation block the last BN feeds "
                "a ReLU, whose gradient at 0 is 0, so a zero scale would never move"
            )
        seeds = list(range(n_models)) if seeds is None else list(seeds)
        if len(seeds) != n_models:
            raise ValueError(f"got {len(seeds)} seeds for n_models={n_models}")
        self.n_models, self.width, self.depth = n_models, width, int(depth)
        self.norm, self.block, self.skipinit = norm, block, skipinit
        self.eps, self.momentum = eps, momentum
        self.probe: list | None = None
        gain = FAN_IN_GAINS[init]

        # Linear layers, input to output: stem, (w1, w2) per block, head
        shapes = [(in_features, width)]
        shapes += [(width, width)] * (2 * self.depth)
        shapes.append((width, out_features))
        weights = [torch.empty(n_models, a, b) for a, b in shapes]
        for s, seed in enumerate(seeds):
            gen = torch.Generator().manual_seed(int(seed))
            for w in weights:
                w[s].normal_(0.0, (gain / w.shape[1]) ** 0.5, generator=gen)
        self.weights = nn.ParameterList(nn.Parameter(w) for w in weights)
        # a bias before BN is cancelled by its mean subtraction; the head always has one
        n_biased = len(shapes) if norm is None else 1
        self.biases = nn.ParameterList(
            nn.Parameter(torch.zeros(n_models, 1, b)) for _, b in shapes[-n_biased:]
        )
        if skipinit:
            self.alphas = nn.ParameterList(
                nn.Parameter(torch.zeros(n_models, 1, 1)) for _ in range(self.depth)
            )
        if norm == "batch":
            # BN layers: 2 per block, plus the stem's (post) or the one before the head (pre)
            n_bn = 2 * self.depth + 1
            self.gammas = nn.ParameterList(
                nn.Parameter(torch.ones(n_models, 1, width)) for _ in range(n_bn)
            )
            self.betas = nn.ParameterList(
                nn.Parameter(torch.zeros(n_models, 1, width)) for _ in range(n_bn)
            )
            if zero_init_gamma:
                with torch.no_grad():
                    for i in range(self.depth):
                        self.gammas[self._bn_index(i, 2)].zero_()
            for i in range(n_bn):
                self.register_buffer(f"running_mean{i}", torch.zeros(n_models * width))
                self.register_buffer(f"running_var{i}", torch.ones(n_models * width))

    def _bn_index(self, block: int, which: int) -> int:
        """Index of BN ``which`` (1 or 2) of block ``block``; index 0 is the stem's/final one."""
        return 1 + 2 * block + (which - 1)

    def _bn(self, i: int, z: torch.Tensor) -> torch.Tensor:
        if self.norm is None:
            return z
        # (S, B, W) -> (B, S * W): each (member, unit) is one channel of torch's batch_norm
        s, b, w = z.shape
        out = F.batch_norm(
            z.transpose(0, 1).reshape(b, s * w),
            getattr(self, f"running_mean{i}"),
            getattr(self, f"running_var{i}"),
            self.gammas[i].reshape(-1),
            self.betas[i].reshape(-1),
            training=self.training,
            momentum=self.momentum,
            eps=self.eps,
        )
        return out.reshape(b, s, w).transpose(0, 1)

    def _linear(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """Linear layer ``k`` (0: stem, 1..2*depth: blocks, last: head)."""
        n_biased = len(self.biases)
        j = k - (len(self.weights) - n_biased)
        if j >= 0:
            return torch.baddbmm(self.biases[j], x, self.weights[k])
        return torch.bmm(x, self.weights[k])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every member, shape ``(S, B, out)``; ``x`` is ``(B, in)`` or ``(S, B, in)``."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n_models, -1, -1)
        h = self._linear(0, x)
        if self.block == "post":
            h = torch.relu(self._bn(0, h))
        for i in range(self.depth):
            k1, k2 = 1 + 2 * i, 2 + 2 * i
            b1, b2 = self._bn_index(i, 1), self._bn_index(i, 2)
            if self.block == "pre":
                u = self._linear(k1, torch.relu(self._bn(b1, h)))
                f = self._linear(k2, torch.relu(self._bn(b2, u)))
            else:
                u = torch.relu(self._bn(b1, self._linear(k1, h)))
                f = self._bn(b2, self._linear(k2, u))
            if self.skipinit:
                f = self.alphas[i] * f
            if self.probe is not None:
                self.probe.append((h.detach(), f.detach()))
            h = h + f if self.block == "pre" else torch.relu(h + f)
        if self.block == "pre":
            h = torch.relu(self._bn(0, h))
        return self._linear(len(self.weights) - 1, h)


@torch.no_grad()
def stream_moments(
    model: EnsembleResMLP, x: np.ndarray | torch.Tensor, *, train_mode: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Mean square of the residual stream and of each branch, per member and block.

    The mean square ``E[x^2]`` (over examples and units) is the quantity a fan-in
    initialization preserves and the one De & Smith (2020) track; for a stream that is centred
    over the batch it is the variance.

    Parameters
    ----------
    model : EnsembleResMLP
        Run on ``x`` once; its running statistics are restored afterwards.
    x : array of shape (B, in)
    train_mode : bool, default True
        Normalize with the batch's statistics (as at initialization, when the running
        estimates are still 0 and 1) or with the running estimates.

    Returns
    -------
    stream : ndarray of shape (S, depth + 1)
        ``E[x_l^2]`` entering block ``l`` (``l = 0`` is the stem's output), and after the last.
    branch : ndarray of shape (S, depth)
        ``E[f_l(x_l)^2]``, the contribution of block ``l`` (after SkipInit's scalar).
    """
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    was_training = model.training
    model.train(train_mode)
    model.probe = []
    try:
        model(x)
        probe = model.probe
    finally:
        model.probe = None
        model.train(was_training)
        for k, v in model.named_buffers():
            v.copy_(buffers[k])
    stream = [h.square().mean((1, 2)) for h, _ in probe]
    branch = [f.square().mean((1, 2)) for _, f in probe]
    h_last, f_last = probe[-1]
    out = h_last + f_last if model.block == "pre" else torch.relu(h_last + f_last)
    stream.append(out.square().mean((1, 2)))
    return torch.stack(stream, 1).numpy(), torch.stack(branch, 1).numpy()

"""Synchronized batch normalization over shards (data-parallel ranks), in numpy.

Under data parallelism each of ``R`` ranks holds a shard of the global batch. Plain batch
normalization normalizes each shard with its own statistics; *synchronized* batch
normalization normalizes every shard with the statistics of the whole (concatenated) batch,
and its backward pass is the backward of one batch normalization over that whole batch.
Only per-channel numbers cross rank boundaries:

* forward: each rank's ``(count, mean, M2)`` (``M2`` the sum of squared deviations from the
  shard's own mean), merged with Chan, Golub & LeVeque's parallel formula. Never
  ``E[x^2] - E[x]^2`` (see :func:`merge_stats_sum_of_squares` for what goes wrong);
* backward: the two sums of the closed-form backward (:func:`bn_core.batch_norm_backward`),
  ``sum(dy)`` and ``sum(dy * x_hat)``, summed over ranks, then divided by the *global* count.

Two ways to run it in one process:

* pass the list of shards to :func:`sync_batch_norm_forward` /
  :func:`sync_batch_norm_backward` (every rank at once), or
* write the code of one rank with :func:`sync_batch_norm_forward_rank` /
  :func:`sync_batch_norm_backward_rank`, which talk to the other ranks through a small
  communicator (``all_gather`` and ``all_reduce``), and run it on simulated ranks with
  :func:`run_ranks` (threads and a barrier). ``bn_core.torch_sync`` does the same over
  ``torch.distributed``.

The conventions are torch's (``torch.nn.SyncBatchNorm``): shards may differ in size and may
be empty; the running buffers get the global mean and the global *unbiased* variance; the
gradients of gamma and beta returned per rank are the rank's own (under DDP, its gradient
all-reduce combines them).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

from bn_core._validation import (
    check_eps,
    check_input,
    check_momentum,
    check_per_channel,
)

__all__ = [
    "Communicator",
    "ShardStats",
    "SyncBatchNormCache",
    "merge_stats",
    "merge_stats_sum_of_squares",
    "run_ranks",
    "shard_stats",
    "sync_batch_norm_backward",
    "sync_batch_norm_backward_rank",
    "sync_batch_norm_forward",
    "sync_batch_norm_forward_rank",
]


class ShardStats(NamedTuple):
    """Per-channel statistics of one shard (or of several, merged).

    Attributes
    ----------
    count : int
        Number of values per channel (``N * L`` or ``N * H * W``); 0 for an empty shard.
    mean : ndarray, shape (C,)
        Per-channel mean (zeros for an empty shard).
    m2 : ndarray, shape (C,)
        Per-channel sum of squared deviations from ``mean``; the biased variance is
        ``m2 / count`` and the unbiased one ``m2 / (count - 1)``.
    """

    count: int
    mean: np.ndarray
    m2: np.ndarray

    @property
    def var(self) -> np.ndarray:
        """Biased variance ``m2 / count`` (what batch normalization divides by)."""
        if self.count == 0:
            raise ValueError("the variance of an empty shard is undefined (count == 0)")
        return self.m2 / self.m2.dtype.type(self.count)


# --------------------------------------------------------------------------------------
# Per-shard statistics and their merge
# --------------------------------------------------------------------------------------


def _flat(x: np.ndarray) -> np.ndarray:
    """(N, C, ...) -> (C, M) with M = N * prod(spatial): one row of values per channel."""
    C = x.shape[1]
    return np.moveaxis(x, 1, 0).reshape(C, -1)


def _check_shard(x, name: str) -> np.ndarray:
    x = check_input(x, name)
    return x


def shard_stats(x) -> ShardStats:
    """Count, mean and sum of squared deviations of one shard, per channel.

    Two passes (mean, then squared deviations from it), in the shard's dtype: the numbers a
    rank would send to the others.

    Parameters
    ----------
    x : ndarray, shape (N, C) or (N, C, *spatial)
        float32 or float64; ``N`` may be 0 (an empty shard).

    Returns
    -------
    ShardStats
        ``(count, mean, m2)``; for an empty shard ``(0, zeros, zeros)``.

    Examples
    --------
    >>> import numpy as np
    >>> shard_stats(np.array([[1.0], [2.0], [6.0]]))
    ShardStats(count=3, mean=array([3.]), m2=array([14.]))
    """
    x = _check_shard(x, "x")
    C = x.shape[1]
    count = x.size // C if C else 0
    if count == 0:
        z = np.zeros(C, dtype=x.dtype)
        return ShardStats(0, z, z.copy())
    v = _flat(x)
    mean = v.mean(axis=1)
    d = v - mean[:, None]
    # the mean of d is the rounding error of the first mean; subtracting it (Chan, Golub &
    # LeVeque's corrected two-pass) keeps float32 shards with a large offset accurate
    delta = d.mean(axis=1)
    m2 = np.einsum("cm,cm->c", d, d) - count * delta * delta
    np.maximum(m2, 0, out=m2)
    return ShardStats(count, mean + delta, m2)


def _check_stats(stats) -> list[ShardStats]:
    stats = list(stats)
    if not stats:
        raise ValueError("merge_stats needs at least one ShardStats, got an empty sequence")
    for i, s in enumerate(stats):
        if not isinstance(s, tuple) or len(s) != 3:
            raise TypeError(
                f"stats[{i}] must be a ShardStats (count, mean, m2), e.g. from shard_stats(x), "
                f"got {type(s).__name__}"
            )
        if int(s[0]) < 0:
            raise ValueError(f"stats[{i}].count must be >= 0, got {s[0]!r}")
    shapes = {np.shape(s[1]) for s in stats} | {np.shape(s[2]) for s in stats}
    if len(shapes) != 1:
        raise ValueError(
            f"every shard must have the same number of channels, got mean/m2 shapes "
            f"{sorted(shapes)}; shards split the batch axis (0), never the channel axis"
        )
    return [ShardStats(int(s[0]), np.asarray(s[1]), np.asarray(s[2])) for s in stats]


def merge_stats(stats) -> ShardStats:
    """Merge per-shard ``(count, mean, m2)`` into those of the concatenated batch (Chan).

    For two parts A and B with ``n = n_A + n_B`` and ``delta = mean_B - mean_A``::

        mean = mean_A + delta * n_B / n
        m2   = m2_A + m2_B + delta**2 * n_A * n_B / n

    applied from left to right. The last term is the *between-shard* part of the spread:
    averaging the shards' variances drops it, averaging their means without the counts
    weights a small shard like a large one. Empty shards (count 0) are skipped.

    Parameters
    ----------
    stats : sequence of ShardStats
        One per shard, e.g. ``[shard_stats(x) for x in shards]``.

    Returns
    -------
    ShardStats
        Statistics of the whole batch (count 0 if every shard is empty).

    Raises
    ------
    TypeError, ValueError
        An element that is not a ``(count, mean, m2)`` triple, a negative count, or shards
        with different numbers of channels.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.array([[1.0], [2.0]]), np.array([[6.0]])
    >>> merge_stats([shard_stats(a), shard_stats(b)])
    ShardStats(count=3, mean=array([3.]), m2=array([14.]))
    """
    stats = _check_stats(stats)
    n, mean, m2 = stats[0]
    mean, m2 = mean.copy(), m2.copy()
    for nb, mean_b, m2_b in stats[1:]:
        if nb == 0:
            continue
        if n == 0:
            n, mean, m2 = nb, mean_b.copy(), m2_b.copy()
            continue
        total = n + nb
        delta = mean_b - mean
        mean = mean + delta * (nb / total)
        m2 = m2 + m2_b + delta * delta * (n * nb / total)
        n = total
    return ShardStats(n, mean, m2)


def merge_stats_sum_of_squares(shards):
    """The tempting merge, for comparison only: all-reduce ``[count, sum, sum of squares]``.

    ``mean = S / N`` and ``var = SS / N - mean**2`` is exact in exact arithmetic, but in
    floating point the subtraction cancels catastrophically when ``|mean| >> std``: in
    float32, data with std 1 at an offset of 1e4 has ``SS / N`` near 1e8, whose rounding
    step alone is 8. Use :func:`merge_stats` instead.

    Parameters
    ----------
    shards : sequence of ndarray
        Shards of shape (N_r, C, ...), computed in their own dtype.

    Returns
    -------
    count : int
    mean, var : ndarray, shape (C,)
        Mean and biased variance, in the shards' dtype.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0], [2.0], [6.0]])
    >>> merge_stats_sum_of_squares([x[:2], x[2:]])
    (3, array([3.]), array([4.66666667]))
    """
    shards = _check_shards(shards)
    dt = shards[0].dtype
    C = shards[0].shape[1]
    n = 0
    s = np.zeros(C, dtype=dt)
    ss = np.zeros(C, dtype=dt)
    for x in shards:
        v = _flat(x)
        n += v.shape[1]
        s += v.sum(axis=1)
        ss += (v * v).sum(axis=1)
    if n == 0:
        raise ValueError("every shard is empty: there is nothing to normalize")
    mean = s / dt.type(n)
    return n, mean, ss / dt.type(n) - mean * mean


# --------------------------------------------------------------------------------------
# Forward and backward over a list of shards
# --------------------------------------------------------------------------------------


@dataclass
class SyncBatchNormCache:
    """What one rank keeps from the synchronized forward for its backward.

    Attributes
    ----------
    x_hat : ndarray
        This rank's normalized shard (same shape as the shard; may be empty).
    inv_std : ndarray, shape (C,)
        ``1 / sqrt(var + eps)`` with the *global* biased variance.
    gamma : ndarray of shape (C,) or None
        The scale (``None`` means 1).
    count : int
        Values per channel in the *global* batch: the backward divides by it.
    stats : ShardStats
        The merged (global) statistics.
    """

    x_hat: np.ndarray
    inv_std: np.ndarray
    gamma: np.ndarray | None
    count: int
    stats: ShardStats


def _check_shards(shards) -> list[np.ndarray]:
    if isinstance(shards, np.ndarray):
        raise TypeError(
            "shards must be a list of arrays, one per rank, got a single ndarray; split it "
            "first, e.g. np.split(x, [3, 7]) or np.array_split(x, world_size)"
        )
    shards = [_check_shard(x, f"shards[{i}]") for i, x in enumerate(shards)]
    if not shards:
        raise ValueError("shards is empty: pass one array per rank (an empty rank is shape (0, C))")
    tail, dt = shards[0].shape[1:], shards[0].dtype
    for i, x in enumerate(shards):
        if x.shape[1:] != tail:
            raise ValueError(
                f"shards[{i}] has shape {tuple(x.shape)} but shards[0] has {tuple(shards[0].shape)}: "
                f"shards may differ only along the batch axis 0"
            )
        if x.dtype != dt:
            raise TypeError(
                f"shards[{i}] is {x.dtype} but shards[0] is {dt}: every rank must use one dtype"
            )
    return shards


def _col(v: np.ndarray, ndim: int) -> np.ndarray:
    return v.reshape((-1,) + (1,) * (ndim - 2))


def _normalize(x, stats: ShardStats, gamma, beta, eps, running_mean, running_var, momentum):
    """One rank's forward given the merged statistics; updates the buffers in place."""
    dt = x.dtype
    if stats.count <= 1:
        raise ValueError(
            f"Expected more than 1 value per channel when training, got {stats.count} in the "
            f"whole (global) batch: every rank together must hold at least 2 values per channel"
        )
    mean = stats.mean.astype(dt)
    var = (stats.m2 / stats.count).astype(dt)
    inv_std = (1.0 / np.sqrt(var + dt.type(eps))).astype(dt)
    x_hat = (x - _col(mean, x.ndim)) * _col(inv_std, x.ndim)
    out = x_hat if gamma is None else x_hat * _col(gamma, x.ndim)
    if beta is not None:
        out = out + _col(beta, x.ndim)
    if running_mean is not None:
        running_mean *= 1.0 - momentum
        running_mean += momentum * stats.mean.astype(running_mean.dtype)
    if running_var is not None:
        unbiased = stats.m2.astype(np.float64) / (stats.count - 1)
        running_var *= 1.0 - momentum
        running_var += (momentum * unbiased).astype(running_var.dtype)
    cache = SyncBatchNormCache(x_hat, inv_std, gamma, stats.count, stats)
    return out.astype(dt, copy=False), cache


def _check_params(C, shape, dtype, gamma, beta, eps, running_mean, running_var, momentum):
    gamma = check_per_channel(gamma, "gamma", C, shape)
    beta = check_per_channel(beta, "beta", C, shape)
    gamma = None if gamma is None else gamma.astype(dtype, copy=False)
    beta = None if beta is None else beta.astype(dtype, copy=False)
    eps = check_eps(eps)
    for name, buf in (("running_mean", running_mean), ("running_var", running_var)):
        if buf is not None:
            if not isinstance(buf, np.ndarray):
                raise TypeError(
                    f"{name} must be a numpy array (it is updated in place), got "
                    f"{type(buf).__name__}"
                )
            check_per_channel(buf, name, C, shape)
    if running_mean is not None or running_var is not None:
        momentum = check_momentum(momentum)
    return gamma, beta, eps, momentum


def sync_batch_norm_forward(
    shards,
    gamma=None,
    beta=None,
    eps=1e-5,
    *,
    running_mean=None,
    running_var=None,
    momentum=0.1,
):
    """Synchronized training-mode forward over every shard at once.

    Each shard is normalized with the mean and biased variance of the concatenated batch,
    obtained by merging the shards' ``(count, mean, m2)`` with :func:`merge_stats`. The
    outputs equal ``batch_norm_forward(np.concatenate(shards), gamma, beta, eps)`` split
    back into shards (to rounding error).

    Parameters
    ----------
    shards : list of ndarray
        One array per rank, shapes ``(N_r, C, *spatial)`` that differ only in ``N_r``
        (``N_r = 0`` is allowed); one float dtype.
    gamma, beta : ndarray of shape (C,), optional
        Scale and shift (``None`` means 1 and 0).
    eps : float > 0, default 1e-5
    running_mean, running_var : ndarray of shape (C,), optional
        Updated in place, once, with the global mean and the global *unbiased* variance
        (what every rank of ``torch.nn.SyncBatchNorm`` stores).
    momentum : float in [0, 1], default 0.1

    Returns
    -------
    outs : list of ndarray
        One output per shard, same shapes.
    caches : list of SyncBatchNormCache
        One per shard, for :func:`sync_batch_norm_backward`.

    Raises
    ------
    TypeError, ValueError
        Not a list of float arrays, shards that differ beyond axis 0 or in dtype, fewer than
        2 values per channel in the whole batch, bad gamma/beta/eps/momentum.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0], [2.0], [6.0]])
    >>> outs, caches = sync_batch_norm_forward([x[:1], x[1:]])
    >>> np.concatenate(outs).ravel().round(4), caches[0].count
    (array([-0.9258, -0.4629,  1.3887]), 3)
    """
    shards = _check_shards(shards)
    x0 = shards[0]
    gamma, beta, eps, momentum = _check_params(
        x0.shape[1], x0.shape, x0.dtype, gamma, beta, eps, running_mean, running_var, momentum
    )
    stats = merge_stats([shard_stats(x) for x in shards])
    outs, caches = [], []
    for i, x in enumerate(shards):
        update = i == 0  # the buffers are shared here: update them once
        out, cache = _normalize(
            x,
            stats,
            gamma,
            beta,
            eps,
            running_mean if update else None,
            running_var if update else None,
            momentum,
        )
        outs.append(out)
        caches.append(cache)
    return outs, caches


def _local_sums(dy: np.ndarray, cache: SyncBatchNormCache):
    if not isinstance(cache, SyncBatchNormCache):
        raise TypeError(
            f"cache must be a SyncBatchNormCache from the synchronized forward, got "
            f"{type(cache).__name__}"
        )
    dy = check_input(dy, "grad_out")
    if dy.shape != cache.x_hat.shape:
        raise ValueError(
            f"grad_out must have the shape of this rank's output {tuple(cache.x_hat.shape)}, "
            f"got {tuple(dy.shape)}; pass each rank's gradient with that rank's cache"
        )
    dy = dy.astype(cache.x_hat.dtype, copy=False)
    C = dy.shape[1]
    if dy.size == 0:
        z = np.zeros(C, dtype=dy.dtype)
        return dy, z, z.copy()
    sum_dy = _flat(dy).sum(axis=1)
    sum_dy_xhat = np.einsum("cm,cm->c", _flat(dy), _flat(cache.x_hat))
    return dy, sum_dy, sum_dy_xhat


def _input_grad(dy, cache: SyncBatchNormCache, sum_dy, sum_dy_xhat):
    nd = dy.ndim
    n = dy.dtype.type(cache.count)
    k = cache.inv_std if cache.gamma is None else cache.gamma * cache.inv_std
    return _col(k, nd) * (dy - _col(sum_dy / n, nd) - cache.x_hat * _col(sum_dy_xhat / n, nd))


def sync_batch_norm_backward(grads, caches):
    """Synchronized backward over every shard at once (the closed form with global sums).

    With ``k = gamma / sqrt(var + eps)``, ``N`` the global count and the sums taken over
    *every* shard::

        dx_r = k * (dy_r - sum(dy) / N - x_hat_r * sum(dy * x_hat) / N)

    the backward of one batch normalization over the concatenated batch, split by shard.

    Parameters
    ----------
    grads : list of ndarray
        Gradient of the loss with respect to each shard's output.
    caches : list of SyncBatchNormCache
        From :func:`sync_batch_norm_forward`, same order.

    Returns
    -------
    dxs : list of ndarray
        Gradient with respect to each shard.
    dgamma, dbeta : ndarray, shape (C,)
        Gradients of gamma and beta summed over the shards (what one batch normalization
        over the whole batch would give for the summed loss).

    Raises
    ------
    TypeError, ValueError
        Lists of different lengths, a cache of the wrong type, a gradient whose shape
        differs from its shard's output.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0], [2.0], [6.0]])
    >>> outs, caches = sync_batch_norm_forward([x[:1], x[1:]])
    >>> dxs, dg, db = sync_batch_norm_backward([np.ones((1, 1)), np.ones((2, 1))], caches)
    >>> np.concatenate(dxs).ravel().round(12) + 0.0  # a constant gradient cancels
    array([0., 0., 0.])
    """
    grads, caches = list(grads), list(caches)
    if len(grads) != len(caches):
        raise ValueError(
            f"got {len(grads)} gradients for {len(caches)} caches: pass one gradient per shard"
        )
    parts = [_local_sums(dy, c) for dy, c in zip(grads, caches, strict=True)]
    sum_dy = np.sum([p[1] for p in parts], axis=0)
    sum_dy_xhat = np.sum([p[2] for p in parts], axis=0)
    dxs = [_input_grad(p[0], c, sum_dy, sum_dy_xhat) for p, c in zip(parts, caches, strict=True)]
    return dxs, sum_dy_xhat, sum_dy


# --------------------------------------------------------------------------------------
# One rank's code, through a communicator
# --------------------------------------------------------------------------------------


class Communicator(Protocol):
    """What a rank needs from its process group (torch.distributed offers the same).

    ``all_gather(a)`` returns the list of every rank's ``a`` (rank order, same on every
    rank); ``all_reduce(a)`` returns the elementwise sum over ranks. Both are collective:
    every rank must call them, in the same order.
    """

    rank: int
    world_size: int

    def all_gather(self, a: np.ndarray) -> list[np.ndarray]: ...

    def all_reduce(self, a: np.ndarray) -> np.ndarray: ...


def sync_batch_norm_forward_rank(
    x,
    gamma,
    beta,
    comm: Communicator,
    eps=1e-5,
    *,
    running_mean=None,
    running_var=None,
    momentum=0.1,
):
    """One rank's synchronized forward: all-gather ``(count, mean, m2)``, merge, normalize.

    One collective per layer (an all-gather of ``2C + 1`` numbers per rank; counts may
    differ, so they travel with the statistics).

    Parameters
    ----------
    x : ndarray, shape (N_r, C, *spatial)
        This rank's shard (``N_r`` may be 0).
    gamma, beta : ndarray of shape (C,) or None
    comm : Communicator
        E.g. the one :func:`run_ranks` passes to each simulated rank.
    eps : float > 0, default 1e-5
    running_mean, running_var : ndarray of shape (C,), optional
        This rank's buffers, updated in place with the global statistics.
    momentum : float in [0, 1], default 0.1

    Returns
    -------
    out : ndarray
    cache : SyncBatchNormCache

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0], [2.0], [6.0]])
    >>> def rank_fn(comm, shard):
    ...     return sync_batch_norm_forward_rank(shard, None, None, comm)[0]
    >>> np.concatenate(run_ranks(rank_fn, [x[:1], x[1:]])).ravel().round(4)
    array([-0.9258, -0.4629,  1.3887])
    """
    x = _check_shard(x, "x")
    gamma, beta, eps, momentum = _check_params(
        x.shape[1], x.shape, x.dtype, gamma, beta, eps, running_mean, running_var, momentum
    )
    s = shard_stats(x)
    # what the rank computed, in its own precision (counts are exact in float32 below 2**24)
    packed = np.concatenate([[float(s.count)], s.mean, s.m2]).astype(x.dtype)
    C = x.shape[1]
    gathered = comm.all_gather(packed)
    stats = merge_stats(
        [ShardStats(int(round(float(g[0]))), g[1 : 1 + C], g[1 + C :]) for g in gathered]
    )
    return _normalize(x, stats, gamma, beta, eps, running_mean, running_var, momentum)


def sync_batch_norm_backward_rank(grad_out, cache, comm: Communicator):
    """One rank's synchronized backward: all-reduce the two sums, then the closed form.

    One collective per layer (an all-reduce of ``2C`` numbers).

    Parameters
    ----------
    grad_out : ndarray
        Gradient with respect to this rank's output.
    cache : SyncBatchNormCache
        This rank's cache from :func:`sync_batch_norm_forward_rank`.
    comm : Communicator

    Returns
    -------
    dx : ndarray
        Gradient with respect to this rank's shard.
    dgamma, dbeta : ndarray, shape (C,)
        This rank's *own* contributions (not all-reduced: under data parallelism the
        gradient all-reduce of the parameters combines them, as with torch's SyncBatchNorm).

    Examples
    --------
    >>> import numpy as np
    >>> x, dy = np.array([[1.0], [2.0], [6.0]]), np.array([[1.0], [0.0], [0.0]])
    >>> def rank_fn(comm, shard, g):
    ...     out, cache = sync_batch_norm_forward_rank(shard, None, None, comm)
    ...     return sync_batch_norm_backward_rank(g, cache, comm)[0]
    >>> np.concatenate(run_ranks(rank_fn, [x[:1], x[1:]], [dy[:1], dy[1:]])).ravel().round(4)
    array([ 0.1763, -0.2204,  0.0441])
    """
    dy, sum_dy, sum_dy_xhat = _local_sums(grad_out, cache)
    C = sum_dy.shape[0]
    total = comm.all_reduce(np.concatenate([sum_dy, sum_dy_xhat]))
    dx = _input_grad(dy, cache, total[:C], total[C:])
    return dx, sum_dy_xhat, sum_dy


class _ThreadComm:
    """A rank's view of a group of threads: collectives through shared slots and a barrier."""

    def __init__(self, rank, world_size, slots, barrier):
        self.rank = rank
        self.world_size = world_size
        self._slots = slots
        self._barrier = barrier

    def all_gather(self, a):
        self._slots[self.rank] = np.array(a, copy=True)
        self._barrier.wait()  # every rank has written
        out = [np.array(s, copy=True) for s in self._slots]
        self._barrier.wait()  # every rank has read: the slots may be reused
        return out

    def all_reduce(self, a):
        parts = self.all_gather(a)
        total = parts[0].copy()
        for p in parts[1:]:  # rank order: the same bits on every rank
            total += p
        return total


def run_ranks(fn, *per_rank_args, timeout=60.0):
    """Run ``fn(comm, *args_r)`` for every rank ``r`` in its own thread, with a communicator.

    A one-process stand-in for a process group, to write and test the code of one rank.

    Parameters
    ----------
    fn : callable
        ``fn(comm, *args)``; ``comm`` has ``rank``, ``world_size``, ``all_gather`` and
        ``all_reduce`` (see :class:`Communicator`).
    *per_rank_args : sequences
        Each a sequence with one entry per rank; their common length is the world size.
    timeout : float, default 60
        Seconds a rank waits at a collective before the run is abandoned (e.g. when one rank
        skips a collective the others make).

    Returns
    -------
    list
        ``fn``'s return values, in rank order.

    Raises
    ------
    Exception
        The first exception raised by a rank (the others are released from the barrier).

    Examples
    --------
    >>> import numpy as np
    >>> run_ranks(lambda comm, a: comm.all_reduce(np.array([a])), [1.0, 2.0, 3.0])
    [array([6.]), array([6.]), array([6.])]
    """
    if not per_rank_args:
        raise ValueError("run_ranks needs at least one sequence of per-rank arguments")
    lengths = {len(a) for a in per_rank_args}
    if len(lengths) != 1:
        raise ValueError(f"per-rank argument lists differ in length: {sorted(lengths)}")
    world = lengths.pop()
    if world < 1:
        raise ValueError("run_ranks needs at least one rank")
    barrier = threading.Barrier(world, timeout=timeout)
    slots = [None] * world
    results = [None] * world
    errors: list[BaseException | None] = [None] * world

    def target(r):
        comm = _ThreadComm(r, world, slots, barrier)
        try:
            results[r] = fn(comm, *(a[r] for a in per_rank_args))
        except BaseException as e:  # noqa: BLE001 -- re-raised below, in the caller
            errors[r] = e
            barrier.abort()

    threads = [threading.Thread(target=target, args=(r,), daemon=True) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    real = [e for e in errors if e is not None and not isinstance(e, threading.BrokenBarrierError)]
    if real:
        raise real[0]
    if any(e is not None for e in errors):
        raise RuntimeError(
            "a rank waited at a collective that another rank never reached (timeout or a "
            "skipped collective): every rank must make the same collective calls in order"
        )
    return results

"""The noise that mini-batch statistics put into batch normalization, measured and predicted.

Used by the chapters on regularization (an example's normalized value changes with the batch
it lands in), batch size (how well a batch estimates the mean and variance, and what a network
trained on small batches sees at inference) and "why does BN work?" (noisy BN, after
Santurkar et al. 2018: noise whose mean and variance change at every step, injected after BN).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch

__all__ = [
    "NoisyBN",
    "accuracy_with_batch_stats",
    "batch_stat_errors",
    "frozen_state",
    "normalized_in_batches",
    "normalized_sd_theory",
]


@contextmanager
def frozen_state(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Restore every parameter and buffer (e.g. BN running statistics) of ``model`` on exit.

    Lets a probe run forward passes in training mode without leaving a trace.

    Examples
    --------
    >>> bn = torch.nn.BatchNorm1d(3)
    >>> with frozen_state(bn):
    ...     _ = bn(torch.randn(8, 3) + 5)
    >>> bn.running_mean
    tensor([0., 0., 0.])
    """
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    try:
        yield model
    finally:
        model.load_state_dict(saved)


def normalized_in_batches(
    x: np.ndarray,
    index: int,
    batch_size: int,
    n_batches: int,
    *,
    seed: int = 0,
    eps: float = 1e-5,
) -> np.ndarray:
    """Normalized value of one example when it lands in ``n_batches`` random mini-batches.

    Each batch holds example ``index`` and ``batch_size - 1`` other rows of ``x`` drawn
    without replacement; the example is normalized with that batch's mean and biased variance,
    exactly as batch normalization does in training mode.

    Parameters
    ----------
    x : ndarray, shape (N, D)
        The population (for example a layer's pre-activations on the whole training set).
    index : int
        Row of the example to follow.
    batch_size : int
        Mini-batch size ``m`` (at least 2).
    n_batches : int
        Number of random batches.
    seed : int, default 0
    eps : float, default 1e-5

    Returns
    -------
    ndarray, shape (n_batches, D)
        The example's normalized value ``x_hat`` in each batch, per feature.

    Raises
    ------
    ValueError
        If ``batch_size`` is below 2 or above ``N``.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(500, 3))
    >>> v = normalized_in_batches(x, 0, batch_size=2, n_batches=100, eps=0.0)
    >>> np.unique(np.abs(v).round(6))  # m = 2: always exactly +1 or -1
    array([1.])
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if not 2 <= batch_size <= n:
        raise ValueError(f"batch_size must be in 2..{n}, got {batch_size}")
    rng = np.random.default_rng(seed)
    others = np.delete(np.arange(n), index)
    # argsort of uniform keys = one random permutation per batch, without a Python loop
    pick = np.argsort(rng.random((n_batches, n - 1)), axis=1)[:, : batch_size - 1]
    batch = np.concatenate([x[[index]][None].repeat(n_batches, 0), x[others[pick]]], axis=1)
    mean = batch.mean(axis=1)
    var = batch.var(axis=1)  # biased, as in the paper's Algorithm 1
    return (x[index] - mean) / np.sqrt(var + eps)


def normalized_sd_theory(
    z: float | np.ndarray, batch_size: int | np.ndarray, *, skew: float = 0.0, kurtosis: float = 3.0
) -> np.ndarray:
    """Large-batch prediction of the spread of an example's normalized value across batches.

    With ``x_hat = (x - mu_B) / sigma_B`` and the delta method,
    ``Var[x_hat] ~ (1 + z * skew + z**2 * (kurtosis - 1) / 4) / m`` where ``z`` is the example's
    value standardized with the population statistics. For a Gaussian feature (skew 0, kurtosis
    3) this is ``(1 + z**2 / 2) / m``: the noise shrinks like ``1 / sqrt(m)``.

    Parameters
    ----------
    z : float or ndarray
        Standardized value of the example.
    batch_size : int or ndarray
        Mini-batch size ``m``.
    skew, kurtosis : float
        Skewness and (non-excess) kurtosis of the feature over the population.

    Returns
    -------
    ndarray
        Predicted standard deviation of ``x_hat`` across batches.

    Examples
    --------
    >>> float(normalized_sd_theory(0.0, 100))
    0.1
    """
    z, m = np.asarray(z, float), np.asarray(batch_size, float)
    return np.sqrt((1.0 + z * skew + z**2 * (kurtosis - 1.0) / 4.0) / m)


def batch_stat_errors(
    x: np.ndarray, batch_sizes: Sequence[int], *, n_batches: int = 500, seed: int = 0
) -> dict[str, np.ndarray]:
    """How far mini-batch means and variances land from the population's, per batch size.

    Parameters
    ----------
    x : ndarray, shape (N, D)
        Population of ``D`` features (e.g. a layer's pre-activations on the training set).
    batch_sizes : sequence of int
    n_batches : int, default 500
        Random batches (drawn without replacement within a batch) per size.
    seed : int, default 0

    Returns
    -------
    dict
        ``"mean_err"``: root-mean-square of ``(mu_B - mu) / sigma`` and ``"var_err"``: of
        ``(sigma2_B - sigma2) / sigma2`` (biased batch variance, as BN uses), each shape
        ``(len(batch_sizes), D)``; ``"batch_sizes"``.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(20000, 2))
    >>> errs = batch_stat_errors(x, [16, 64], n_batches=2000)
    >>> (errs["mean_err"] * np.sqrt([[16], [64]])).round(1)  # close to 1 / sqrt(m)
    array([[1., 1.],
           [1., 1.]])
    """
    x = np.asarray(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    mu, var = x.mean(0), x.var(0)
    mean_err, var_err = [], []
    for m in batch_sizes:
        idx = np.stack([rng.choice(len(x), size=m, replace=False) for _ in range(n_batches)])
        batch = x[idx]
        mean_err.append(np.sqrt((((batch.mean(1) - mu) ** 2) / var).mean(0)))
        var_err.append(np.sqrt((((batch.var(1) - var) / var) ** 2).mean(0)))
    return {
        "batch_sizes": np.asarray(batch_sizes),
        "mean_err": np.asarray(mean_err),
        "var_err": np.asarray(var_err),
    }


@torch.no_grad()
def accuracy_with_batch_stats(
    model: torch.nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int, *, seed: int = 0
) -> np.ndarray:
    """Accuracy when BN normalizes with the statistics of each test mini-batch (training mode).

    The data are shuffled and cut into batches of ``batch_size`` (the remainder is dropped);
    running statistics and every other buffer are left exactly as they were.

    Parameters
    ----------
    model : torch.nn.Module
        An :class:`~bn_core.lab.ensemble.EnsembleMLP` (returns one accuracy per member) or any
        classifier returning ``(B, classes)`` logits.
    x, y : ndarray
    batch_size : int
    seed : int, default 0
        Seed of the shuffle.

    Returns
    -------
    ndarray, shape (S,)
        Accuracy per member (shape (1,) for a plain model).
    """
    order = np.random.default_rng(seed).permutation(len(x))
    n_full = len(x) // batch_size * batch_size
    correct, was_training = 0.0, model.training
    with frozen_state(model):
        model.train()
        for start in range(0, n_full, batch_size):
            idx = order[start : start + batch_size]
            logits = model(torch.from_numpy(x[idx]))
            target = torch.from_numpy(y[idx])
            correct = correct + (logits.argmax(-1) == target).double().sum(-1)
    model.train(was_training)
    return np.atleast_1d((correct / n_full).numpy())


class NoisyBN:
    """Noise with a changing mean and variance, injected after each BN layer ("noisy BN").

    After Santurkar et al. (2018): to make the distribution of each layer's input *move*
    during training even though BN is there, every unit's normalized pre-activation ``u`` is
    replaced by ``u * s + b``. At every training step and for every unit ``j`` the noise
    distribution is drawn afresh: a mean shift ``c_j ~ U(-mean_range, mean_range)`` and a scale
    ``a_j ~ U(1, scale_max)``; then every example gets its own noise,
    ``s_ij = a_j (1 + jitter * xi_ij)`` and ``b_ij = c_j + jitter * zeta_ij`` with standard
    Gaussian ``xi``, ``zeta`` drawn at every call. The hook acts in training mode only
    (inference is clean BN).

    Use it as ``model.post_norm`` of an :class:`~bn_core.lab.ensemble.EnsembleMLP` and call
    :meth:`resample` once per training step (e.g. from ``on_step``).

    Parameters
    ----------
    mean_range : float, default 1.0
    scale_max : float, default 2.0
    jitter : float, default 0.1
        Per-example relative spread of the noise around the step's mean and scale.
    seed : int, default 0

    Examples
    --------
    >>> noisy = NoisyBN(mean_range=0.5, scale_max=3.0, seed=0)
    >>> u = torch.zeros(2, 4, 5)  # (members, batch, units)
    >>> out = noisy(0, u)
    >>> bool((out.abs() <= 0.5 + 5 * 0.1).all())  # zero input: only the shift remains
    True
    >>> shift = noisy.params[0][0]
    >>> _ = noisy(0, u); torch.equal(noisy.params[0][0], shift)  # same step: same distribution
    True
    >>> noisy.resample(); _ = noisy(0, u); torch.equal(noisy.params[0][0], shift)
    False
    """

    def __init__(
        self, mean_range: float = 1.0, scale_max: float = 2.0, jitter: float = 0.1, seed: int = 0
    ):
        if scale_max < 1:
            raise ValueError(f"scale_max must be at least 1, got {scale_max}")
        self.mean_range, self.scale_max, self.jitter = mean_range, scale_max, jitter
        self.generator = torch.Generator().manual_seed(seed)
        #: ``params[layer] = (shift, scale)`` of the current step, each ``(..., 1, units)``.
        self.params: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def resample(self) -> None:
        """Draw new noise distributions at the next forward pass (call once per step)."""
        self.params.clear()

    def __call__(self, layer: int, u: torch.Tensor) -> torch.Tensor:
        g = self.generator
        if layer not in self.params:
            unit_shape = (*u.shape[:-2], 1, u.shape[-1])
            shift = (2 * torch.rand(unit_shape, generator=g) - 1) * self.mean_range
            scale = 1 + torch.rand(unit_shape, generator=g) * (self.scale_max - 1)
            self.params[layer] = (shift, scale)
        shift, scale = self.params[layer]
        s = scale * (1 + self.jitter * torch.randn(u.shape, generator=g))
        b = shift + self.jitter * torch.randn(u.shape, generator=g)
        return u * s + b

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
    "noise_through_next_bn",
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


@torch.no_grad()
def noise_through_next_bn(
    model: torch.nn.Module, x: np.ndarray, *, eps: float = 1e-5
) -> dict[str, np.ndarray]:
    """How much of the noise injected by a ``post_norm`` hook survives the next BN layer.

    The batch ``x`` goes through ``model`` in training mode twice, with its ``post_norm`` hook
    (e.g. :class:`NoisyBN`, at its current step's distribution) and without. For every hidden
    layer after the first, the noise injected upstream reaches the layer's linear output ``z``
    (BN's input) as a perturbation ``dz``; BN standardizes ``z`` over the batch, which removes
    whatever part of ``dz`` is a per-unit shift or rescaling. Two numbers per layer, averaged
    over units:

    - ``"before"``: the root-mean-square of ``dz`` in units of the clean ``z``'s standard
      deviation (how much the noise moves BN's input);
    - ``"after"``: the root-mean-square change of the standardized value
      ``x_hat = (z - mean_B) / sqrt(var_B + eps)`` (what is left after BN's normalization);

    and ``"kept"`` = after / before. Parameters and buffers are left untouched.

    Parameters
    ----------
    model : EnsembleMLP
        With ``norm="batch"`` and a ``post_norm`` hook.
    x : ndarray, shape (B, in_features)
    eps : float, default 1e-5

    Returns
    -------
    dict
        ``"before"``, ``"after"``, ``"kept"``: shape (S, L - 1), for hidden layers 2..L.

    Examples
    --------
    >>> from bn_core.lab.ensemble import EnsembleMLP
    >>> net = EnsembleMLP(1, 4, (8, 8), 3, norm="batch", activation="relu")
    >>> net.post_norm = lambda i, u: 2 * u  # a per-unit rescaling passes ReLU; BN undoes it
    >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    >>> out = noise_through_next_bn(net, x)
    >>> bool(out["before"][0, 0] > 0.5), bool(out["after"][0, 0] < 1e-3)
    (True, True)
    """
    hook, was_training, was_recording = model.post_norm, model.training, model.record
    if hook is None:
        raise ValueError("model.post_norm is None: set the noise hook (e.g. a NoisyBN) first")
    xt = torch.from_numpy(np.asarray(x, dtype=np.float32))
    runs = []
    with frozen_state(model):
        model.train()
        model.record = True
        try:
            for h in (hook, None):
                model.post_norm = h
                model(xt)
                runs.append(list(model.linear_outputs))
        finally:
            model.post_norm, model.record = hook, was_recording
            model.train(was_training)

    def standardize(z: torch.Tensor) -> torch.Tensor:
        mean = z.mean(-2, keepdim=True)
        return (z - mean) / torch.sqrt((z - mean).square().mean(-2, keepdim=True) + eps)

    before, after = [], []
    for z_noisy, z_clean in zip(runs[0][1:], runs[1][1:], strict=True):
        sd = z_clean.std(-2, unbiased=False).clamp_min(1e-12)
        rms = (z_noisy - z_clean).square().mean(-2).sqrt()
        before.append((rms / sd).mean(-1))
        after.append(
            (standardize(z_noisy) - standardize(z_clean)).square().mean(-2).sqrt().mean(-1)
        )
    b, a = torch.stack(before, -1).numpy(), torch.stack(after, -1).numpy()
    return {"before": b, "after": a, "kept": a / b}


class NoisyBN:
    """Noise with a changing mean and variance, injected after each BN layer ("noisy BN").

    After Santurkar et al. (2018): to make the distribution of each layer's input *move*
    during training even though BN is there, every unit's pre-activation ``u`` (BN's output, the
    input of the activation function) is replaced by ``u * s + b``. For every unit ``j`` the
    noise distribution has a mean shift ``c_j`` and a scale ``a_j`` made of two parts:

    - a fresh draw at every training step (i.i.d. over steps, step-to-step *jitter*):
      ``U(-mean_range, mean_range)`` added to the shift, ``U(1, scale_max)`` multiplying the
      scale;
    - a slow random walk (persistent *drift*): at every :meth:`resample` the walk's shift moves
      by ``N(0, walk_shift^2)`` and its log-scale by ``N(0, walk_log_scale^2)``, so after ``t``
      steps it has wandered about ``walk_shift * sqrt(t)`` away. Both default to 0 (no walk).

    Then every example gets its own noise, ``s_ij = a_j (1 + jitter * xi_ij)`` and
    ``b_ij = c_j + jitter * zeta_ij`` with standard Gaussian ``xi``, ``zeta`` drawn at every
    call. The hook acts in training mode only (inference is clean BN).

    Use it as ``model.post_norm`` of an :class:`~bn_core.lab.ensemble.EnsembleMLP` and call
    :meth:`resample` once per training step (e.g. from ``on_step``).

    Parameters
    ----------
    mean_range : float, default 1.0
        Half-width of the per-step uniform shift; 0 switches the per-step shift off.
    scale_max : float, default 2.0
        Upper end of the per-step uniform scale; 1 switches the per-step scale off.
    jitter : float, default 0.1
        Per-example relative spread of the noise around the step's mean and scale.
    seed : int, default 0
    walk_shift, walk_log_scale : float, default 0.0
        Per-step standard deviations of the random walk of the shift and of the log-scale.

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

    A pure random walk (no per-step redraw) moves a little at each step and far over many:

    >>> walk = NoisyBN(mean_range=0.0, scale_max=1.0, jitter=0.0, walk_shift=0.01, seed=0)
    >>> _ = walk(0, u); start = walk.params[0][0].clone()
    >>> for _ in range(400):
    ...     walk.resample(); _ = walk(0, u)
    >>> step = walk.params[0][0]; walk.resample(); _ = walk(0, u)
    >>> float((walk.params[0][0] - step).abs().max()) < 0.05 < float((step - start).abs().max())
    True
    """

    def __init__(
        self,
        mean_range: float = 1.0,
        scale_max: float = 2.0,
        jitter: float = 0.1,
        seed: int = 0,
        *,
        walk_shift: float = 0.0,
        walk_log_scale: float = 0.0,
    ):
        if scale_max < 1:
            raise ValueError(f"scale_max must be at least 1, got {scale_max}")
        if mean_range < 0 or jitter < 0 or walk_shift < 0 or walk_log_scale < 0:
            raise ValueError(
                "mean_range, jitter, walk_shift and walk_log_scale must be >= 0, got "
                f"{mean_range}, {jitter}, {walk_shift}, {walk_log_scale}"
            )
        self.mean_range, self.scale_max, self.jitter = mean_range, scale_max, jitter
        self.walk_shift, self.walk_log_scale = walk_shift, walk_log_scale
        self.generator = torch.Generator().manual_seed(seed)
        #: ``params[layer] = (shift, scale)`` of the current step, each ``(..., 1, units)``.
        self.params: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        #: ``walk[layer] = (shift, log_scale)``: the random walk's current position.
        self.walk: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._walks = walk_shift > 0 or walk_log_scale > 0

    def resample(self) -> None:
        """Move to the next step: new per-step draws (and one step of the walk) at the next call."""
        self.params.clear()
        g = self.generator
        for layer, (shift, log_scale) in self.walk.items():
            self.walk[layer] = (
                shift + self.walk_shift * torch.randn(shift.shape, generator=g),
                log_scale + self.walk_log_scale * torch.randn(log_scale.shape, generator=g),
            )

    def __call__(self, layer: int, u: torch.Tensor) -> torch.Tensor:
        g = self.generator
        if layer not in self.params:
            unit_shape = (*u.shape[:-2], 1, u.shape[-1])
            shift = (2 * torch.rand(unit_shape, generator=g) - 1) * self.mean_range
            scale = 1 + torch.rand(unit_shape, generator=g) * (self.scale_max - 1)
            if self._walks:
                if layer not in self.walk:  # the walk starts at shift 0, scale 1
                    self.walk[layer] = (torch.zeros(unit_shape), torch.zeros(unit_shape))
                walk_shift, walk_log_scale = self.walk[layer]
                shift = shift + walk_shift
                scale = scale * torch.exp(walk_log_scale)
            self.params[layer] = (shift, scale)
        shift, scale = self.params[layer]
        s = scale * (1 + self.jitter * torch.randn(u.shape, generator=g))
        b = shift + self.jitter * torch.randn(u.shape, generator=g)
        return u * s + b

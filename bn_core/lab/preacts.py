"""Real linear outputs to look at: digit images through a freshly initialized linear layer.

These are the values batch normalization receives (BN's input). The book calls them *linear
outputs*; *pre-activation* always means the input of the activation function (after BN).
``random_layer_preactivations`` is the old name of :func:`random_layer_outputs`, kept so that
existing notebooks keep working.
"""

from __future__ import annotations

import numpy as np

from .data import Dataset

__all__ = [
    "conv_digit_maps",
    "mean_effective_sample_size",
    "random_layer_outputs",
    "random_layer_preactivations",
]


def random_layer_outputs(
    data: Dataset, *, n: int = 500, width: int = 100, seed: int = 0, start: int = 0
) -> np.ndarray:
    """Outputs of a torch-initialized ``Linear(n_features, width)`` on ``n`` training inputs.

    This is what the first hidden layer of the book's MLP feeds to batch normalization at
    initialization, for a batch of real images.

    Parameters
    ----------
    data : Dataset
        Usually ``lab.data.digits()``.
    n : int, default 500
        Number of training examples (rows ``start`` to ``start + n``).
    width : int, default 100
        Number of units.
    seed : int, default 0
        ``torch.manual_seed`` for the layer's initialization.
    start : int, default 0
        First training example used (take another batch with the same layer by changing it).

    Returns
    -------
    ndarray, shape (n, width), float64

    Raises
    ------
    ValueError
        If the requested rows run past the training set.

    Examples
    --------
    >>> from bn_core.lab.data import digits
    >>> random_layer_outputs(digits(), n=60).shape
    (60, 100)
    """
    import torch

    if start < 0 or n < 1 or start + n > len(data.x_train):
        raise ValueError(
            f"rows {start}..{start + n} are outside the {len(data.x_train)} training examples"
        )
    torch.manual_seed(seed)
    linear = torch.nn.Linear(data.n_features, width)
    with torch.no_grad():
        z = linear(torch.from_numpy(data.x_train[start : start + n]))
    return z.double().numpy()


#: Old name of :func:`random_layer_outputs` (these are BN's inputs, not pre-activations).
random_layer_preactivations = random_layer_outputs


def conv_digit_maps(data: Dataset, *, channels: int = 8, seed: int = 0) -> tuple:
    """Digits as 8 x 8 images through a fixed random 3 x 3 convolution: BN2d's inputs.

    Parameters
    ----------
    data : Dataset
        ``lab.data.digits()`` (64 features, read as 8 x 8 images).
    channels : int, default 8
        Output channels of the ``Conv2d(1, channels, 3, padding=1, bias=False)``.
    seed : int, default 0
        ``torch.manual_seed`` for the convolution's initialization.

    Returns
    -------
    train, test : ndarray, shape (N, channels, 8, 8), float64
        The feature maps of the training and of the test images.

    Raises
    ------
    ValueError
        If the images do not have 64 pixels.

    Examples
    --------
    >>> from bn_core.lab.data import digits
    >>> train, test = conv_digit_maps(digits(), channels=4)
    >>> train.shape[1:], test.shape[1:]
    ((4, 8, 8), (4, 8, 8))
    """
    import torch

    if data.n_features != 64:
        raise ValueError(f"expected 8 x 8 = 64 pixels per image, got {data.n_features}")
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(1, channels, 3, padding=1, bias=False)
    with torch.no_grad():
        return tuple(
            conv(torch.from_numpy(x).reshape(-1, 1, 8, 8)).double().numpy()
            for x in (data.x_train, data.x_test)
        )


def mean_effective_sample_size(
    maps: np.ndarray, n_images, *, n_batches: int = 500, seed: int = 0
) -> np.ndarray:
    """How many independent values the per-channel batch mean of ``n`` images is worth.

    For batches of ``n`` images drawn without replacement, the effective sample size of channel
    ``c`` is ``Var(values of c) / Var(batch mean of c)``: the number of independent draws
    whose mean would be as precise. With ``H x W`` positions per image it would be
    ``n * H * W`` if the positions were independent; correlated positions make it smaller.

    Parameters
    ----------
    maps : ndarray, shape (N, C, H, W)
    n_images : sequence of int
        Batch sizes (images per batch), each in ``1..N``.
    n_batches : int, default 500
        Random batches per size.
    seed : int, default 0

    Returns
    -------
    ndarray, shape (len(n_images), C)

    Raises
    ------
    ValueError
        If ``maps`` is not 4D or a batch size is outside ``1..N``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> iid = rng.normal(size=(400, 2, 4, 4))  # independent positions: ESS = n * 16
    >>> ess = mean_effective_sample_size(iid, [1, 4], n_batches=2000)
    >>> bool(np.all(np.abs(ess / np.array([[16], [64]]) - 1) < 0.15))
    True
    """
    maps = np.asarray(maps, dtype=float)
    if maps.ndim != 4:
        raise ValueError(f"maps must be (N, C, H, W), got shape {maps.shape}")
    n_total = len(maps)
    if any(not 1 <= int(n) <= n_total for n in n_images):
        raise ValueError(f"every batch size must be in 1..{n_total}, got {list(n_images)}")
    rng = np.random.default_rng(seed)
    image_means = maps.mean(axis=(2, 3))  # (N, C): the mean of a batch is the mean of these
    value_var = maps.var(axis=(0, 2, 3))
    out = []
    for n in n_images:
        idx = np.array([rng.choice(n_total, int(n), replace=False) for _ in range(n_batches)])
        out.append(value_var / image_means[idx].mean(axis=1).var(axis=0))
    return np.array(out)

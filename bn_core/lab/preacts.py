"""Real linear outputs to look at: digit images through a freshly initialized linear layer.

These are the values batch normalization receives (BN's input). The book calls them *linear
outputs*; *pre-activation* always means the input of the activation function (after BN).
``random_layer_preactivations`` is the old name of :func:`random_layer_outputs`, kept so that
existing notebooks keep working.
"""

from __future__ import annotations

import numpy as np

from .data import Dataset

__all__ = ["random_layer_outputs", "random_layer_preactivations"]


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

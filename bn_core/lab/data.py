"""Real datasets that ship with a package: nothing is downloaded.

- :func:`digits`: scikit-learn's 1,797 handwritten digits, 8x8 pixels (64 features).
- :func:`mnist1d`: the MNIST-1D benchmark (Greydanus 2020), generated offline by the
  ``mnist1d`` package: 4,000 training and 1,000 test sequences of length 40.

MNIST itself cannot be fetched on the machines this course is built on.
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """A train/test split as float32 features and int64 labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}: {len(self.x_train)} train, {len(self.x_test)} test, "
            f"{self.n_features} features, {self.n_classes} classes)"
        )


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """``sklearn.datasets.load_digits(return_X_y=True)``, without importing scikit-learn.

    Importing ``sklearn.datasets`` (and with it SciPy) costs about 2 s of CPU, far more than
    reading the 1,797 digits; the file that ships with scikit-learn is read here the same way
    ``load_digits`` reads it (same values). Falls back to ``load_digits`` if the file is not
    where scikit-learn keeps it.
    """
    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, mode="rt", encoding="utf-8") as f:
                data = np.loadtxt(f, delimiter=",")
            return data[:, :-1], data[:, -1].astype(int, copy=False)
    from sklearn.datasets import load_digits

    return load_digits(return_X_y=True)


def digits(seed: int = 0, n_test: int = 497) -> Dataset:
    """scikit-learn's handwritten digits, pixels scaled to [0, 1], split at random.

    Parameters
    ----------
    seed : int, default 0
        Seed of the random split.
    n_test : int, default 497
        Number of test examples (the other 1,300 are for training).

    Returns
    -------
    Dataset

    Examples
    --------
    >>> d = digits()
    >>> d.x_train.shape, d.x_test.shape
    ((1300, 64), (497, 64))
    >>> float(d.x_train.min()), float(d.x_train.max())
    (0.0, 1.0)
    """
    x, y = _load_digits()
    x = (x / 16.0).astype(np.float32)  # pixel intensities are 0..16
    order = np.random.default_rng(seed).permutation(len(x))
    test, train = order[:n_test], order[n_test:]
    return Dataset("digits", x[train], y[train].astype(np.int64), x[test], y[test].astype(np.int64))


def mnist1d(seed: int = 0, n_train: int | None = None) -> Dataset:
    """The MNIST-1D dataset, generated offline with the package's default arguments.

    Parameters
    ----------
    seed : int, default 0
        Seed for choosing a training subset when ``n_train`` is given (the dataset itself is
        always generated with the package's own fixed seed, so it is the standard benchmark).
    n_train : int, optional
        Keep only this many training examples (a small training set overfits, which is what
        the regularization chapter needs).

    Returns
    -------
    Dataset
        4,000 (or ``n_train``) training and 1,000 test sequences of length 40, float32.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    raw = make_dataset(get_dataset_args())
    x, y = raw["x"].astype(np.float32), raw["y"].astype(np.int64)
    if n_train is not None:
        if not 0 < n_train <= len(x):
            raise ValueError(f"n_train must be in 1..{len(x)}, got {n_train}")
        keep = np.random.default_rng(seed).permutation(len(x))[:n_train]
        x, y = x[keep], y[keep]
    return Dataset(
        "mnist1d", x, y, raw["x_test"].astype(np.float32), raw["y_test"].astype(np.int64)
    )

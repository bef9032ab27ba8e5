"""One call that makes a notebook deterministic and consistent with the rest of the book."""

from __future__ import annotations

import numpy as np

#: The seeds every multi-seed experiment in the book uses unless it says otherwise.
SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)


def setup(*, threads: int = 1) -> None:
    """Apply the book's plot style and make torch runs repeatable.

    Parameters
    ----------
    threads : int, default 1
        Number of torch intra-op threads. One thread gives bit-identical results from run to
        run and avoids oversubscribing a 2-core machine when tests run notebooks in parallel.
    """
    from . import style

    style.use()
    np.set_printoptions(precision=4, suppress=True)
    try:
        import torch
    except ImportError:  # the numpy-only chapters do not need it
        return
    # With a fixed thread count, torch's CPU kernels used here give the same bits every run.
    torch.set_num_threads(threads)

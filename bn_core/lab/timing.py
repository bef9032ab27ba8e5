"""Wall-clock timing for the speed comparisons in the book: median of repeats.

Timings depend on the machine and on whatever else runs on it, so the chapters print them as
"measured on the machine that built this page" and never compare them in tests.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

import numpy as np

__all__ = ["median_time"]


def median_time(
    fn: Callable[[], object], *, repeat: int = 7, number: int | None = None, budget: float = 0.02
) -> float:
    """Median time of one call to ``fn`` in seconds, over ``repeat`` timed batches.

    Parameters
    ----------
    fn : callable
        Called with no arguments.
    repeat : int, default 7
        Number of timed batches; the median is robust to a batch slowed down by another
        process.
    number : int, optional
        Calls per batch. By default chosen so one batch takes about ``budget`` seconds.
    budget : float, default 0.02
        Target duration of one batch when ``number`` is None.

    Returns
    -------
    float
        Median seconds per call.

    Raises
    ------
    ValueError
        If ``repeat`` or ``number`` is not positive.

    Examples
    --------
    >>> t = median_time(lambda: sum(range(100)), repeat=3)
    >>> 0 < t < 0.01
    True
    """
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    timer = timeit.Timer(fn)
    if number is None:
        fn()  # warm-up: first-call costs (allocation, caches) are not what we compare
        once = timer.timeit(1)
        number = max(1, int(budget / max(once, 1e-9)))
    elif number < 1:
        raise ValueError(f"number must be >= 1, got {number}")
    times = np.asarray(timer.repeat(repeat=repeat, number=number)) / number
    return float(np.median(times))

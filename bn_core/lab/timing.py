"""Wall-clock timing for the speed comparisons in the book: median of repeats.

Timings depend on the machine and on whatever else runs on it, so the chapters print them as
"measured on the machine that built this page" and never compare them in tests. To compare two
implementations, use :func:`median_ratio`: it times them in alternation, so that a burst of load
from another process slows both, and reports the median of the per-round ratios, which is far
more stable than the ratio of two separately measured medians.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

import numpy as np

__all__ = ["median_ratio", "median_time"]


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


def median_ratio(
    slow: Callable[[], object],
    fast: Callable[[], object],
    *,
    repeat: int = 9,
    budget: float = 0.02,
) -> tuple[float, float, float]:
    """How many times longer ``slow`` takes than ``fast``, timed in alternating rounds.

    Each round times a batch of calls to ``slow`` and then a batch of calls to ``fast`` (each
    batch about ``budget`` seconds), so both see the same machine load; the ratio is taken per
    round and the median over rounds is returned.

    Parameters
    ----------
    slow, fast : callable
        Called with no arguments.
    repeat : int, default 9
        Number of rounds.
    budget : float, default 0.02
        Target duration of one batch of calls.

    Returns
    -------
    ratio : float
        Median over rounds of (time per call of ``slow``) / (time per call of ``fast``).
    t_slow, t_fast : float
        Median seconds per call of each.

    Raises
    ------
    ValueError
        If ``repeat`` is not positive.

    Examples
    --------
    >>> ratio, t_slow, t_fast = median_ratio(lambda: sum(range(2000)), lambda: None, repeat=3)
    >>> ratio > 1 and t_slow > t_fast > 0
    True
    """
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    timers, numbers = [], []
    for fn in (slow, fast):
        fn()  # warm-up
        timer = timeit.Timer(fn)
        numbers.append(max(1, int(budget / max(timer.timeit(1), 1e-9))))
        timers.append(timer)
    times = np.array(
        [[t.timeit(n) / n for t, n in zip(timers, numbers, strict=True)] for _ in range(repeat)]
    )
    ratio = float(np.median(times[:, 0] / times[:, 1]))
    return ratio, float(np.median(times[:, 0])), float(np.median(times[:, 1]))

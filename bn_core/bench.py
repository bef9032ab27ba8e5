"""Benchmark: ``python -m bn_core.bench``.

Times, on float32 inputs of shape (256, 4096) and (64, 64, 32, 32), in training mode:
our forward pass, our two backward passes (closed form and graph), our forward+backward,
and torch's CPU forward+backward (``torch.nn.functional.batch_norm`` + autograd, pinned to
one thread with ``torch.set_num_threads(1)``). Each entry is the median over repeated runs
after a warm-up; the table ends with the ratios graph/closed and ours/torch.

This is a report, not a test: timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from bn_core.functional import batch_norm_backward, batch_norm_backward_graph, batch_norm_forward

SHAPES = [(256, 4096), (64, 64, 32, 32)]


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _times(
    fns: dict, repeat: int, warmup: int = 2, clock=time.perf_counter
) -> dict[str, list[float]]:
    """Seconds per call of each function, ``repeat`` times, timed in interleaved rounds.

    Interleaving (one call of each function per round) spreads the load of a shared
    machine evenly over the entries, so their ratios stay meaningful. ``clock`` may be
    ``time.process_time`` (CPU time of this process: the time other processes take the
    core away is not counted; everything here runs on one thread, torch included).
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = clock()
            fn()
            times[name].append(clock() - t0)
    return times


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def bench_shape(
    shape, repeat: int, seed: int = 0, stat=statistics.median, clock=time.perf_counter
) -> dict[str, float]:
    """Seconds per call of each operation on one float32 shape (``stat`` of the runs).

    ``stat`` may be a function of the list of times (default: the median), or None to get
    the list itself.
    """
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    C = shape[1]
    x = rng.normal(1.0, 2.0, size=shape).astype(np.float32)
    dy = rng.normal(size=shape).astype(np.float32)
    gamma = rng.normal(size=C).astype(np.float32)
    beta = rng.normal(size=C).astype(np.float32)

    _, cache = batch_norm_forward(x, gamma, beta)

    def ours_fwd_bwd():
        _, c = batch_norm_forward(x, gamma, beta)
        batch_norm_backward(dy, c)

    xt = torch.from_numpy(x).requires_grad_(True)
    gt = torch.from_numpy(gamma).requires_grad_(True)
    bt = torch.from_numpy(beta).requires_grad_(True)
    dyt = torch.from_numpy(dy)

    def torch_fwd_bwd():
        out = F.batch_norm(xt, None, None, gt, bt, training=True)
        torch.autograd.grad(out, (xt, gt, bt), dyt)

    times = _times(
        {
            "forward": lambda: batch_norm_forward(x, gamma, beta),
            "backward (closed)": lambda: batch_norm_backward(dy, cache),
            "backward (graph)": lambda: batch_norm_backward_graph(dy, cache),
            "ours fwd+bwd": ours_fwd_bwd,
            "torch fwd+bwd": torch_fwd_bwd,
        },
        repeat,
        clock=clock,
    )
    return times if stat is None else {k: stat(v) for k, v in times.items()}


def main(argv=None) -> None:
    """Run the benchmark and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per entry")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall time (default) or this process's CPU time (steadier on a shared machine)",
    )
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores; python {platform.python_version()}, "
        f"numpy {np.__version__}, torch {torch.__version__} "
        f"(torch threads: {torch.get_num_threads()}); {args.clock} clock, median of "
        f"{args.repeat} runs, ms"
    )
    print()
    cols = ["forward", "backward (closed)", "backward (graph)", "ours fwd+bwd", "torch fwd+bwd"]
    print("| shape (float32) | " + " | ".join(cols) + " | graph/closed | ours/torch |")
    print("|---" * (len(cols) + 3) + "|")
    best = {}
    for shape in SHAPES:
        runs = bench_shape(shape, args.repeat, stat=None, clock=CLOCKS[args.clock])
        r = {k: statistics.median(v) for k, v in runs.items()}
        best[shape] = {k: min(v) for k, v in runs.items()}
        cells = " | ".join(f"{r[c] * 1e3:.2f}" for c in cols)
        print(f"| {shape} | {cells} | {_ratios(r)} |")
    print()
    print("Fastest run of each entry (less sensitive to other load on the machine):")
    for shape, b in best.items():
        cells = ", ".join(f"{c} {b[c] * 1e3:.2f}" for c in cols)
        graph, ours = _ratios(b).split(" | ")
        print(f"- {shape}: {cells} ms; graph/closed {graph}, ours/torch {ours}")


def _ratios(r) -> str:
    return (
        f"{r['backward (graph)'] / r['backward (closed)']:.2f} | "
        f"{r['ours fwd+bwd'] / r['torch fwd+bwd']:.2f}"
    )


if __name__ == "__main__":
    main()

"""Real multi-process runs on one machine: ``torch.distributed`` with gloo over 127.0.0.1.

``torch.multiprocessing`` starts each rank in a fresh interpreter and sends it the function
to run by reference (module and name), so a function defined in a notebook cannot be a
worker: the workers live here. :func:`launch` starts ``world_size`` processes, each joins a
gloo process group on ``127.0.0.1`` (never another address) at a free port, runs one of the
workers below and returns a picklable result; the parent collects them in rank order and
kills the processes if they have not finished within ``timeout`` seconds.

Workers:

* :func:`check_sync_worker`: :class:`bn_core.torch_sync.SyncBatchNorm` against one
  ``F.batch_norm`` over the concatenated batch (forward, input gradient, running statistics,
  float64), then a few steps of ``DistributedDataParallel`` training on CPU.
* :func:`ddp_buffers_worker`: plain BN under DDP, the running statistics each rank holds
  before and after the ``broadcast_buffers`` copy.
* :func:`collective_cost_worker`: time the two collectives of one synchronized layer.
* :func:`chapter_worker`: the three above in one launch (what the chapter runs).
"""

from __future__ import annotations

import faulthandler
import os
import socket
import tempfile
import time
from datetime import timedelta
from pathlib import Path

__all__ = [
    "chapter_worker",
    "check_sync_worker",
    "collective_cost_worker",
    "ddp_buffers_worker",
    "gpu_compare_worker",
    "free_port",
    "launch",
]

ADDRESS = "127.0.0.1"


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ADDRESS, 0))
        return s.getsockname()[1]


def _entry(rank, world_size, port, out_dir, target, kwargs, timeout, backend):
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    # if a rank hangs, print where (to stderr) shortly before the parent kills it
    faulthandler.dump_traceback_later(max(1.0, timeout - 3.0), exit=False)
    os.environ["MASTER_ADDR"] = ADDRESS
    os.environ["MASTER_PORT"] = str(port)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback only
    dist.init_process_group(
        backend,
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=timeout),
    )
    try:
        result = globals()[target](rank, world_size, **kwargs)
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def launch(
    target: str, world_size: int, *, timeout: float = 120.0, backend: str = "gloo", **kwargs
) -> list:
    """Run the worker named ``target`` on ``world_size`` local processes; return their results.

    Parameters
    ----------
    target : str
        Name of a worker function of this module, e.g. ``"check_sync_worker"``.
    world_size : int
        Number of processes (ranks).
    timeout : float, default 120
        Seconds after which the run is stopped (processes killed) and an error raised.
    backend : str, default "gloo"
        The ``torch.distributed`` backend (gloo runs on CPU; "nccl" needs one GPU per rank).
    **kwargs
        Passed to the worker (picklable values).

    Returns
    -------
    list
        The workers' return values, in rank order.
    """
    import torch.multiprocessing as mp

    if target not in __all__ or not target.endswith("_worker"):
        raise ValueError(f"unknown worker {target!r}; pick one of {__all__}")
    with tempfile.TemporaryDirectory() as out_dir:
        ctx = mp.start_processes(
            _entry,
            args=(world_size, free_port(), out_dir, target, kwargs, timeout, backend),
            nprocs=world_size,
            join=False,
            start_method="spawn",
        )
        deadline = time.monotonic() + timeout
        while not ctx.join(timeout=max(0.1, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                for p in ctx.processes:
                    if p.is_alive():
                        p.kill()
                raise TimeoutError(
                    f"{target} on {world_size} ranks did not finish within {timeout} s "
                    f"(a rank may be waiting at a collective the others skipped)"
                )
        import torch

        return [
            torch.load(Path(out_dir) / f"rank{r}.pt", weights_only=False) for r in range(world_size)
        ]


# --------------------------------------------------------------------------------------
# Workers: fn(rank, world_size, **kwargs) -> picklable result
# --------------------------------------------------------------------------------------


def _shards(sizes, seed, shape_tail, loc=5.0, scale=3.0):
    """The global batch (same on every rank, from the seed) and this run's split."""
    import torch

    g = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    x = torch.randn((n, *shape_tail), generator=g, dtype=torch.float64) * scale + loc
    dy = torch.randn((n, *shape_tail), generator=g, dtype=torch.float64)
    return x, dy


def check_sync_worker(rank, world_size, *, cases, ddp_steps=5, seed=0):
    """Compare SyncBatchNorm on this rank's shard with one BN over the whole batch.

    Parameters
    ----------
    rank, world_size : int
    cases : list of (sizes, shape_tail)
        ``sizes`` has one shard size per rank (0 allowed); ``shape_tail`` is (C, ...).
    ddp_steps : int, default 5
        Steps of DDP training of a small convolutional model with SyncBatchNorm.
    seed : int, default 0

    Returns
    -------
    dict
        Maximum absolute errors per case (``out``, ``grad``, ``running_mean``,
        ``running_var``, ``weight_grad`` summed over ranks is checked by the caller through
        the per-rank values ``dgamma``), and the DDP losses and parameter checksums.
    """
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    from bn_core.torch_sync import SyncBatchNorm, convert_sync_batchnorm

    res = {"cases": []}
    for sizes, tail in cases:
        x, dy = _shards(sizes, seed, tail)
        C = tail[0]
        g = torch.Generator().manual_seed(seed + 1)
        w0 = torch.rand(C, generator=g, dtype=torch.float64) + 0.5
        b0 = torch.randn(C, generator=g, dtype=torch.float64)
        # reference: one BN over the concatenated batch, in this process
        xr = x.clone().requires_grad_(True)
        rm, rv = torch.zeros(C, dtype=torch.float64), torch.ones(C, dtype=torch.float64)
        yr = F.batch_norm(xr, rm, rv, w0, b0, training=True, momentum=0.1, eps=1e-5)
        (yr * dy).sum().backward()
        # ours on this rank's shard
        lo = sum(sizes[:rank])
        hi = lo + sizes[rank]
        bn = SyncBatchNorm(C).double()
        with torch.no_grad():
            bn.weight.copy_(w0)
            bn.bias.copy_(b0)
        xs = x[lo:hi].clone().requires_grad_(True)
        ys = bn(xs)
        (ys * dy[lo:hi]).sum().backward()
        # the gamma/beta gradients are per rank: sum them over ranks here to compare
        gw = bn.weight.grad.clone()
        gb = bn.bias.grad.clone()
        dist.all_reduce(gw)
        dist.all_reduce(gb)
        wr = F.batch_norm(x, None, None, training=True)  # x_hat for the weight gradient
        want_gw = (dy * wr).sum(dim=[d for d in range(x.ndim) if d != 1])
        want_gb = dy.sum(dim=[d for d in range(x.ndim) if d != 1])

        def err(a, b):
            return float((a - b).detach().abs().max()) if a.numel() else 0.0

        res["cases"].append(
            {
                "sizes": list(sizes),
                "tail": list(tail),
                "out": err(ys.detach(), yr.detach()[lo:hi]),
                "grad": err(xs.grad, xr.grad[lo:hi]),
                "running_mean": err(bn.running_mean, rm),
                "running_var": err(bn.running_var, rv),
                "weight_grad": err(gw, want_gw),
                "bias_grad": err(gb, want_gb),
                # eval mode: no collective, running statistics (a rank may skip this)
                "eval_no_sync": err(
                    bn.eval()(x[:3]),
                    F.batch_norm(x[:3], rm, rv, w0, b0, training=False),
                ),
            }
        )
    # train under DistributedDataParallel on CPU, different data per rank
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 5 * 5, 3),
    )
    net = convert_sync_batchnorm(net)
    ddp = torch.nn.parallel.DistributedDataParallel(net)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(100 + rank)
    xb = torch.randn(4 + rank, 2, 5, 5, generator=gen)
    yb = torch.randint(0, 3, (4 + rank,), generator=gen)
    losses = []
    for _ in range(ddp_steps):
        opt.zero_grad()
        loss = F.cross_entropy(ddp(xb), yb)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    bn_layer = net[1]
    res["ddp"] = {
        "losses": losses,
        "is_ours": type(bn_layer).__module__ == "bn_core.torch_sync",
        "params": torch.cat([p.detach().flatten() for p in net.parameters()]),
        "running_mean": bn_layer.running_mean.clone(),
    }
    return res


def ddp_buffers_worker(rank, world_size, *, steps=3, shift=5.0, seed=0):
    """Plain BN under DDP with different data per rank: what each rank's buffers hold.

    Returns
    -------
    dict
        ``after_step``: this rank's running mean after ``steps`` training steps (each rank
        updated its own copy from its own batch after the broadcast); ``after_forward``: after
        one more forward, which first copies rank 0's buffers to every rank.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    ddp = nn.parallel.DistributedDataParallel(net)  # broadcast_buffers: on by default
    gen = torch.Generator().manual_seed(seed + 100 + rank)
    for _ in range(steps):
        x = torch.randn(8, 4, generator=gen) + rank * shift
        ddp(x).sum().backward()
    after_step = net[1].running_mean.clone()
    net.eval()  # eval: no update, but DDP still broadcasts rank 0's buffers first
    with torch.no_grad():
        ddp(torch.randn(8, 4, generator=gen))
    return {"after_step": after_step, "after_forward": net[1].running_mean.clone()}


def collective_cost_worker(rank, world_size, *, channels=(64, 256, 1024), repeats=50):
    """Time the forward all-gather and the backward all-reduce of one synchronized layer.

    Returns
    -------
    list of dict
        Per channel count C: bytes each rank sends (float32), median seconds per collective.
    """
    import statistics

    import torch
    import torch.distributed as dist

    out = []
    for C in channels:
        packed = torch.zeros(2 * C + 1)
        bucket = [torch.empty_like(packed) for _ in range(world_size)]
        sums = torch.zeros(2 * C)
        t_gather, t_reduce = [], []
        for i in range(repeats + 5):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_gather(bucket, packed)
            t1 = time.perf_counter()
            dist.all_reduce(sums)
            t2 = time.perf_counter()
            if i >= 5:  # warm-up
                t_gather.append(t1 - t0)
                t_reduce.append(t2 - t1)
        out.append(
            {
                "C": C,
                "gather_bytes": packed.numel() * 4,
                "reduce_bytes": sums.numel() * 4,
                "gather_s": statistics.median(t_gather),
                "reduce_s": statistics.median(t_reduce),
            }
        )
    return out


def gpu_compare_worker(rank, world_size, *, sizes=(3, 5), seed=0):
    """On GPUs: our SyncBatchNorm against ``torch.nn.SyncBatchNorm`` on the same shards.

    Returns
    -------
    dict
        Maximum absolute differences of the outputs, input gradients and running variances.
    """
    import torch

    from bn_core.torch_sync import SyncBatchNorm

    dev = torch.device("cuda", rank % torch.cuda.device_count())
    x, dy = _shards(list(sizes), seed, (3, 4))
    lo = sum(sizes[:rank])
    hi = lo + sizes[rank]
    outs = {}
    for name, cls in (("ours", SyncBatchNorm), ("torch", torch.nn.SyncBatchNorm)):
        bn = cls(3).double().to(dev)
        xs = x[lo:hi].to(dev).requires_grad_(True)
        y = bn(xs)
        (y * dy[lo:hi].to(dev)).sum().backward()
        outs[name] = (y.detach().cpu(), xs.grad.cpu(), bn.running_var.cpu())
    a, b = outs["ours"], outs["torch"]
    return {
        "out": float((a[0] - b[0]).abs().max()),
        "grad": float((a[1] - b[1]).abs().max()),
        "running_var": float((a[2] - b[2]).abs().max()),
    }


def chapter_worker(rank, world_size, *, cases, ddp_steps=3, channels=(64, 256, 1024), repeats=30):
    """The chapter's run: :func:`check_sync_worker`, :func:`ddp_buffers_worker` and
    :func:`collective_cost_worker`, one after the other in one process group (one launch).

    Returns
    -------
    dict
        ``{"check": ..., "buffers": ..., "cost": ...}``, the three workers' results.
    """
    import time as _time

    t0 = _time.perf_counter()
    check = check_sync_worker(rank, world_size, cases=cases, ddp_steps=ddp_steps)
    buffers = ddp_buffers_worker(rank, world_size)
    cost = collective_cost_worker(rank, world_size, channels=channels, repeats=repeats)
    return {
        "check": check,
        "buffers": buffers,
        "cost": cost,
        "work_s": _time.perf_counter() - t0,
    }

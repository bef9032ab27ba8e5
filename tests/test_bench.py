"""Smoke test of the benchmark script (tiny shapes; no timing is asserted)."""

import pytest

from bn_core import bench


def test_bench_runs_on_a_tiny_shape():
    pytest.importorskip("torch")
    r = bench.bench_shape((8, 4), repeat=2)
    assert set(r) == {
        "forward",
        "backward (closed)",
        "backward (graph)",
        "ours fwd+bwd",
        "torch fwd+bwd",
    }
    assert all(t > 0 for t in r.values())
    assert isinstance(bench.cpu_model(), str)
    r = bench.bench_shape((8, 4), repeat=2, clock=bench.CLOCKS["cpu"])
    assert all(t >= 0 for t in r.values())

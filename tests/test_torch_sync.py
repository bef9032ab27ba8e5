"""bn_core.torch_sync.SyncBatchNorm with real processes (gloo on 127.0.0.1).

One launch per world size runs every check (spawning ranks and initializing gloo costs
seconds); ``launch`` kills the ranks after its timeout so a hang cannot block the suite.
"""

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

from bn_core.distributed_workers import launch  # noqa: E402
from bn_core.torch_sync import SyncBatchNorm, convert_sync_batchnorm  # noqa: E402

if not dist.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available in this torch build", allow_module_level=True)

TOL = 1e-12

# (shard sizes per rank, (C, *spatial)): unequal shards, an empty one, a shard of one
CASES = {
    2: [([3, 7], (3,)), ([1, 6], (2, 3, 2)), ([0, 5], (4, 3))],
    3: [([2, 5, 3], (3,)), ([4, 0, 1], (2, 2, 3)), ([1, 1, 1], (3, 2))],
}


@pytest.fixture(scope="module", params=[2, 3], ids=lambda w: f"{w}ranks")
def run(request):
    world = request.param
    # one launch per world size: the synchronized-BN checks, DDP training, plain BN's buffers
    res = launch("chapter_worker", world, timeout=300, cases=CASES[world], ddp_steps=5, repeats=2)
    return world, [r["check"] for r in res], [r["buffers"] for r in res]


def test_forward_grad_and_running_stats_equal_one_bn_on_the_whole_batch(run):
    world, res, _ = run
    for rank, r in enumerate(res):
        for case in r["cases"]:
            for key in ("out", "grad", "running_mean", "running_var", "weight_grad", "bias_grad"):
                assert case[key] < TOL, f"rank {rank}/{world}, {case['sizes']}: {key} {case[key]}"
            assert case["eval_no_sync"] < TOL


def test_trains_under_ddp_on_cpu(run):
    world, res, _ = run
    ddp = [r["ddp"] for r in res]
    assert all(d["is_ours"] for d in ddp)
    for d in ddp:  # each rank's loss on its own data falls
        assert d["losses"][-1] < d["losses"][0]
    for d in ddp[1:]:  # DDP kept the parameters identical, SyncBN the running statistics
        assert torch.equal(d["params"], ddp[0]["params"])
        assert torch.allclose(d["running_mean"], ddp[0]["running_mean"], atol=1e-6, rtol=0)


def test_plain_bn_under_ddp_ranks_disagree_until_the_broadcast(run):
    _, _, res = run
    a0 = res[0]["after_step"]
    for r in res[1:]:
        assert (a0 - r["after_step"]).abs().max() > 0.1  # each rank updated from its own data
        assert torch.equal(r["after_forward"], a0)  # rank 0's copy, everywhere


def test_without_a_process_group_it_is_plain_batch_norm():
    assert not dist.is_initialized()
    x = torch.randn(6, 3, 4, dtype=torch.float64)
    ours, ref = SyncBatchNorm(3).double(), torch.nn.BatchNorm1d(3).double()
    torch.testing.assert_close(ours(x), ref(x))
    torch.testing.assert_close(ours.running_var, ref.running_var)
    ours.eval()
    ref.eval()
    torch.testing.assert_close(ours(x), ref(x))


def test_state_dict_is_torchs_and_convert_keeps_parameters():
    ref = torch.nn.SyncBatchNorm(4)
    ours = SyncBatchNorm(4)
    assert sorted(ours.state_dict()) == sorted(ref.state_dict())
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    with torch.no_grad():
        net[1].weight.fill_(2.0)
        net[1].running_mean.fill_(0.5)
    net[1].eval()
    w = net[1].weight
    convert_sync_batchnorm(net)
    assert isinstance(net[1], SyncBatchNorm) and net[1].weight is w
    assert float(net[1].running_mean[0]) == 0.5 and not net[1].training
    assert isinstance(SyncBatchNorm.convert_sync_batchnorm(torch.nn.BatchNorm2d(2)), SyncBatchNorm)


def test_clear_errors():
    with pytest.raises(ValueError, match="at least 2D"):
        SyncBatchNorm(3)(torch.randn(3))
    with pytest.raises(ValueError, match="channels on axis 1"):
        SyncBatchNorm(3)(torch.randn(4, 2))
    with pytest.raises(ValueError, match="unknown worker"):
        launch("os", 2)


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="no GPU: the comparison with torch.nn.SyncBatchNorm (GPU-only kernels) needs one",
)
def test_matches_torch_syncbatchnorm_on_gpu():  # pragma: no cover - needs a GPU
    # nccl needs one GPU per rank; with a single GPU both ranks share it through gloo
    backend = "nccl" if torch.cuda.device_count() >= 2 else "gloo"
    res = launch("gpu_compare_worker", 2, timeout=300, backend=backend)
    for r in res:
        assert r["out"] < 1e-10 and r["grad"] < 1e-10 and r["running_var"] < 1e-10, r


def test_docstring_examples():
    import doctest

    import bn_core.torch_sync as torch_sync

    result = doctest.testmod(torch_sync, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0

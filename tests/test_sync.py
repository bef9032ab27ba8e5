"""bn_core.sync: synchronized batch normalization over shards equals one BN over the batch."""

import doctest

import numpy as np
import pytest

import bn_core.sync as sync
from bn_core import batch_norm, batch_norm_backward, batch_norm_forward
from bn_core.sync import (
    ShardStats,
    merge_stats,
    merge_stats_sum_of_squares,
    run_ranks,
    shard_stats,
    sync_batch_norm_backward,
    sync_batch_norm_backward_rank,
    sync_batch_norm_forward,
    sync_batch_norm_forward_rank,
)

# unequal shard sizes, with an empty shard and a shard of one
SPLITS = [[3, 7], [1, 0, 5, 4], [2, 2, 2, 2, 2], [0, 10], [9, 1]]
SHAPES = [(10, 3), (10, 2, 5), (10, 3, 2, 3)]


def _split(a, sizes):
    return np.split(a, np.cumsum(sizes)[:-1])


def _data(shape, seed=0, loc=5.0, scale=3.0):
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = rng.normal(loc, scale, size=shape)
    dy = rng.normal(size=shape) + np.linspace(-1, 1, int(np.prod(shape))).reshape(shape)
    return x, dy, rng.normal(1, 0.3, size=C), rng.normal(size=C)


def _err(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)), initial=0.0))


@pytest.mark.parametrize("sizes", SPLITS, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_backward_equal_one_bn_on_the_concatenated_batch(shape, sizes):
    x, dy, g, b = _data(shape)
    want, cache = batch_norm_forward(x, g, b)
    want_dx, want_dg, want_db = batch_norm_backward(dy, cache)
    outs, caches = sync_batch_norm_forward(_split(x, sizes), g, b)
    dxs, dg, db = sync_batch_norm_backward(_split(dy, sizes), caches)
    assert [o.shape[0] for o in outs] == sizes
    assert _err(np.concatenate(outs), want) < 1e-12
    assert _err(np.concatenate(dxs), want_dx) < 1e-12
    assert _err(dg, want_dg) < 1e-12 and _err(db, want_db) < 1e-12
    assert caches[0].count == x.size // x.shape[1]


@pytest.mark.parametrize("sizes", SPLITS, ids=str)
def test_running_statistics_use_the_global_unbiased_variance(sizes):
    x, _, g, b = _data((10, 3, 4), seed=1)
    rm, rv = np.full(3, 0.5), np.full(3, 2.0)
    batch_norm(x, rm, rv, g, b, training=True, momentum=0.3)
    rm2, rv2 = np.full(3, 0.5), np.full(3, 2.0)
    sync_batch_norm_forward(_split(x, sizes), g, b, running_mean=rm2, running_var=rv2, momentum=0.3)
    assert _err(rm2, rm) < 1e-12 and _err(rv2, rv) < 1e-12


@pytest.mark.parametrize("sizes", [[3, 7], [1, 0, 5, 4], [4, 3, 3]], ids=str)
def test_rank_code_through_a_communicator_equals_one_bn(sizes):
    x, dy, g, b = _data((10, 3, 2), seed=2)
    want, cache = batch_norm_forward(x, g, b)
    want_dx, want_dg, want_db = batch_norm_backward(dy, cache)
    rm_want, rv_want = np.zeros(3), np.ones(3)
    batch_norm(x, rm_want, rv_want, g, b, training=True)

    def rank_fn(comm, xs, dys):
        rm, rv = np.zeros(3), np.ones(3)
        out, c = sync_batch_norm_forward_rank(xs, g, b, comm, running_mean=rm, running_var=rv)
        dx, dg, db = sync_batch_norm_backward_rank(dys, c, comm)
        return out, dx, dg, db, rm, rv

    res = run_ranks(rank_fn, _split(x, sizes), _split(dy, sizes))
    assert _err(np.concatenate([r[0] for r in res]), want) < 1e-12
    assert _err(np.concatenate([r[1] for r in res]), want_dx) < 1e-12
    # gamma/beta gradients stay per rank (DDP combines them); their sum is the full one
    assert _err(sum(r[2] for r in res), want_dg) < 1e-12
    assert _err(sum(r[3] for r in res), want_db) < 1e-12
    for r in res:  # every rank holds the same, global, running statistics
        assert _err(r[4], rm_want) < 1e-12 and _err(r[5], rv_want) < 1e-12


def test_per_device_bn_differs_from_synchronized_bn():
    """The control: without the merge each shard is normalized by itself."""
    x, _, g, b = _data((10, 3), seed=3)
    want, _ = batch_norm_forward(x, g, b)
    local = np.concatenate([batch_norm_forward(s, g, b)[0] for s in _split(x, [5, 5])])
    assert _err(local, want) > 1e-2


def test_merge_stats_matches_numpy_and_is_order_free():
    rng = np.random.default_rng(4)
    parts = [rng.normal(m, s, size=(n, 2)) for m, s, n in [(0, 1, 3), (10, 2, 8), (-4, 0.5, 1)]]
    whole = np.concatenate(parts)
    for order in ([0, 1, 2], [2, 0, 1]):
        st = merge_stats([shard_stats(parts[i]) for i in order])
        assert st.count == 12
        assert _err(st.mean, whole.mean(0)) < 1e-12
        assert _err(st.var, whole.var(0)) < 1e-12
        assert _err(st.m2 / (st.count - 1), whole.var(0, ddof=1)) < 1e-12


def test_merge_needs_counts_and_the_between_shard_term():
    """The two real mistakes differ from the truth on shards with different means/sizes."""
    rng = np.random.default_rng(5)
    a, b = rng.normal(0, 1, size=(2, 1)), rng.normal(3, 1, size=(8, 1))
    whole = np.concatenate([a, b])
    sa, sb = shard_stats(a), shard_stats(b)
    assert abs(((sa.mean + sb.mean) / 2)[0] - whole.mean()) > 0.5  # unweighted mean of means
    assert abs(((sa.var + sb.var) / 2)[0] - whole.var()) > 0.5  # no between-shard term
    assert _err(merge_stats([sa, sb]).var, whole.var(0)) < 1e-12


def test_empty_shards_are_skipped_and_all_empty_is_count_zero():
    e = shard_stats(np.zeros((0, 2)))
    assert e.count == 0 and e.mean.shape == (2,)
    x = np.array([[1.0, 2.0], [3.0, 5.0]])
    st = merge_stats([e, shard_stats(x), e])
    assert st.count == 2 and _err(st.mean, [2.0, 3.5]) == 0
    assert merge_stats([e, e]).count == 0
    with pytest.raises(ValueError, match="empty shard"):
        _ = e.var


def test_float32_large_offset_sum_of_squares_fails_and_chan_does_not():
    """The issue's measurement: offset 1e4, std 1, 4 ranks x 4096, float32."""
    rng = np.random.default_rng(0)
    shards = [(rng.standard_normal((4096, 1)) + 1e4).astype(np.float32) for _ in range(4)]
    true = np.concatenate(shards).astype(np.float64).var()
    _, _, naive = merge_stats_sum_of_squares(shards)
    chan = merge_stats([shard_stats(s) for s in shards]).var
    assert chan.dtype == np.float32 and naive.dtype == np.float32
    assert abs(float(chan[0]) - true) / true < 1e-3
    assert abs(float(naive[0]) - true) / true > 1.0  # off by a multiple, not a rounding error
    # the synchronized forward in float32 uses Chan's merge: output variance ~ 1
    outs, _ = sync_batch_norm_forward(shards)
    assert abs(float(np.concatenate(outs).astype(np.float64).var()) - 1) < 1e-2


def test_float32_sync_matches_float32_single_bn():
    x, dy, g, b = (a.astype(np.float32) for a in _data((10, 3, 4), seed=6))
    want, cache = batch_norm_forward(x, g, b)
    want_dx = batch_norm_backward(dy, cache)[0]
    outs, caches = sync_batch_norm_forward(_split(x, [4, 0, 6]), g, b)
    dxs = sync_batch_norm_backward(_split(dy, [4, 0, 6]), caches)[0]
    assert outs[0].dtype == np.float32 and dxs[0].dtype == np.float32
    assert _err(np.concatenate(outs), want) < 1e-5
    assert _err(np.concatenate(dxs), want_dx) < 1e-5


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: sync_batch_norm_forward(np.zeros((4, 2))), TypeError, "list of arrays"),
        (lambda: sync_batch_norm_forward([]), ValueError, "one array per rank"),
        (
            lambda: sync_batch_norm_forward([np.zeros((2, 2)), np.zeros((2, 3))]),
            ValueError,
            "only along the batch axis",
        ),
        (
            lambda: sync_batch_norm_forward([np.zeros((2, 2)), np.zeros((2, 2), np.float32)]),
            TypeError,
            "one dtype",
        ),
        (
            lambda: sync_batch_norm_forward([np.ones((1, 2)), np.zeros((0, 2))]),
            ValueError,
            "more than 1 value per channel",
        ),
        (
            lambda: sync_batch_norm_forward([np.ones((3, 2))], gamma=np.ones(3)),
            ValueError,
            "gamma should contain 2",
        ),
        (
            lambda: sync_batch_norm_forward([np.ones((3, 2))], running_mean=[0.0, 0.0]),
            TypeError,
            "updated in place",
        ),
        (lambda: merge_stats([]), ValueError, "at least one"),
        (lambda: merge_stats([(1, np.zeros(2), np.zeros(3))]), ValueError, "channels"),
        (lambda: merge_stats([np.zeros(3)]), TypeError, "ShardStats"),
        (lambda: run_ranks(lambda c, a: a, [1], [1, 2]), ValueError, "differ in length"),
    ],
)
def test_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_backward_errors():
    x = np.random.default_rng(0).normal(size=(5, 2))
    _, caches = sync_batch_norm_forward([x[:2], x[2:]])
    with pytest.raises(ValueError, match="one gradient per shard"):
        sync_batch_norm_backward([np.ones((2, 2))], caches)
    with pytest.raises(ValueError, match="shape of this rank's output"):
        sync_batch_norm_backward([np.ones((3, 2)), np.ones((2, 2))], caches)
    with pytest.raises(TypeError, match="SyncBatchNormCache"):
        sync_batch_norm_backward([np.ones((2, 2))], [object()])


def test_a_rank_that_skips_a_collective_does_not_hang():
    def rank_fn(comm, x):
        if comm.rank == 1:
            return None  # never joins the all_gather
        return sync_batch_norm_forward_rank(x, None, None, comm)

    x = np.ones((4, 2))
    with pytest.raises(RuntimeError, match="never reached"):
        run_ranks(rank_fn, [x, x], timeout=1.0)


def test_an_error_in_one_rank_is_raised_in_the_caller():
    def rank_fn(comm, x):
        return sync_batch_norm_forward_rank(x, None, None, comm)

    with pytest.raises(ValueError, match="same number of channels"):
        run_ranks(rank_fn, [np.ones((4, 2)), np.ones((4, 3))], timeout=5.0)


def test_shard_stats_is_a_named_tuple():
    st = shard_stats(np.array([[1.0], [3.0]]))
    assert isinstance(st, ShardStats) and st.count == 2 and st.var[0] == 1.0


def test_docstring_examples():
    result = doctest.testmod(sync, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0

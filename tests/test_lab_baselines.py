"""Ghost batch normalization in EnsembleMLP, and the lr-sweep / paired-difference helpers."""

import copy

import numpy as np
import pytest
import torch

from bn_core import lab
from bn_core.lab import baselines, ensemble


@pytest.fixture(scope="module")
def small():
    d = lab.data.digits(seed=0)
    return lab.data.Dataset("digits-small", d.x_train[:240], d.y_train[:240], d.x_test, d.y_test)


def test_ghost_batches_normalize_each_chunk_with_its_own_statistics(small):
    """Ghost BN on a batch of 40 in chunks of 10 = plain BN applied to each chunk separately."""
    ghost = ensemble.EnsembleMLP(2, 64, hidden=(16, 8), norm="batch", seeds=[3, 4])
    plain = copy.deepcopy(ghost)
    ghost.ghost_batch_size = 10
    ghost.record = plain.record = True
    x = torch.from_numpy(small.x_train[:40])
    out = ghost(x)
    chunks = [plain(x[k : k + 10]) for k in range(0, 40, 10)]
    torch.testing.assert_close(out, torch.cat(chunks, 1), atol=1e-5, rtol=1e-5)
    # each chunk's normalized pre-activations have mean 0 within the chunk, not only overall
    u = ghost.preactivations[0].reshape(2, 4, 10, 16)
    torch.testing.assert_close(u.mean(2), torch.zeros(2, 4, 16), atol=1e-5, rtol=0)
    # running statistics: the average of the chunks' means and unbiased variances
    z = ghost.linear_outputs[0].reshape(2, 4, 10, 16)
    torch.testing.assert_close(ghost.running_mean0[:, 0], 0.1 * z.mean(2).mean(1))
    expected_var = 0.9 + 0.1 * z.var(2, unbiased=True).mean(1)
    torch.testing.assert_close(ghost.running_var0[:, 0], expected_var)
    # activations after the hidden layer are recorded too (what the next Linear sees)
    assert ghost.activations[0].shape == (2, 40, 16) and (ghost.activations[0] >= 0).all()


def test_ghost_batch_of_the_whole_batch_is_plain_bn(small):
    a = ensemble.EnsembleMLP(2, 64, hidden=(16,), norm="batch", ghost_batch_size=30)
    b = ensemble.EnsembleMLP(2, 64, hidden=(16,), norm="batch")
    x = torch.from_numpy(small.x_train[:30])
    torch.testing.assert_close(a(x), b(x))
    a.eval()
    b.eval()
    torch.testing.assert_close(a(x), b(x))  # eval mode: running statistics, no ghosts


def test_ghost_batch_errors(small):
    with pytest.raises(ValueError, match="norm='batch'"):
        ensemble.EnsembleMLP(2, 64, hidden=(16,), ghost_batch_size=10)
    with pytest.raises(ValueError, match="integer >= 2"):
        ensemble.EnsembleMLP(2, 64, hidden=(16,), norm="batch", ghost_batch_size=1)
    model = ensemble.EnsembleMLP(2, 64, hidden=(16,), norm="batch", ghost_batch_size=7)
    with pytest.raises(ValueError, match="multiple of ghost_batch_size"):
        model(torch.from_numpy(small.x_train[:30]))


def test_lr_sweep_members_are_lr_major_and_equal_single_runs(small):
    sweep = baselines.lr_sweep(
        small, [0.05, 0.5], [7, 8], steps=20, eval_every=10, hidden=(16,), init_std="lecun"
    )
    assert sweep.grid("test_acc").shape == (2, 2, 3)
    assert sweep.final().shape == (2, 2)
    # member (lr 0.5, seed 8) is the same network as training it alone
    alone = baselines.lr_sweep(
        small, [0.5], [8], steps=20, eval_every=10, hidden=(16,), init_std="lecun"
    )
    np.testing.assert_allclose(sweep.grid("test_loss")[1, 1], alone.grid("test_loss")[0, 0], 1e-4)
    # and differs from the other learning rate
    assert not np.allclose(sweep.grid("test_loss")[0, 1], alone.grid("test_loss")[0, 0])


def test_lr_sweep_without_train_eval_refuses_train_metrics(small):
    sweep = baselines.lr_sweep(
        small, [0.5], [7, 8], steps=20, eval_every=10, hidden=(16,), eval_train=False
    )
    assert sweep.final().shape == (1, 2)
    with pytest.raises(ValueError, match="eval_train=True"):
        sweep.grid("train_acc")


def test_sweep_scores_steps_and_best():
    history = lab.train.History(
        steps=np.array([0, 10, 20]),
        train_loss=np.zeros((4, 3)),
        test_loss=np.zeros((4, 3)),
        test_acc=np.array([[0.1, 0.5, 0.9], [0.1, 0.2, 0.3], [0.1, 0.95, np.nan], [0.1, 0.9, 0.9]]),
        train_acc=np.zeros((4, 3)),
        records={"val_acc": np.ones((4, 3))},
        step_records={},
        diverged=np.array([False, False, True, False]),
    )
    sweep = baselines.Sweep(np.array([0.1, 1.0]), np.array([0, 1]), history, model=None)
    steps = sweep.steps_to(0.9)
    np.testing.assert_array_equal(steps, [[20, np.nan], [10, 10]])
    assert sweep.best(steps, higher_is_better=False) == 1  # lr 0.1 has a NaN: worst
    final = sweep.final()
    assert np.isnan(final[1, 0]) and final[0, 0] == 0.9
    assert sweep.best(final) == 0  # a diverged run counts as worst
    np.testing.assert_allclose(sweep.best_value(), [[0.9, 0.3], [0.95, 0.9]])
    assert sweep.grid("val_acc").shape == (2, 2, 3)
    # early stopping: the test accuracy where the selection metric peaked (the first maximum)
    np.testing.assert_allclose(sweep.at_best("test_acc"), [[0.9, 0.3], [0.95, 0.9]])
    np.testing.assert_allclose(sweep.at_best("val_acc"), [[0.1, 0.1], [0.1, 0.1]])  # first max
    with pytest.raises(ValueError, match="shape"):
        sweep.best(np.zeros(2))


def test_paired_differences():
    p = baselines.paired(np.array([3.0, 5.0, np.nan, 1.0]), np.array([1.0, 1.0, 2.0, 2.0]))
    np.testing.assert_allclose(p.diff, [2.0, 4.0, -1.0])
    assert p.n == 3 and p.n_positive == 2 and p.min == -1.0 and p.max == 4.0
    assert p.mean == pytest.approx(5 / 3) and p.sd == pytest.approx(np.std([2, 4, -1], ddof=1))
    assert "2/3 seeds > 0" in str(p)
    with pytest.raises(ValueError, match="same length"):
        baselines.paired(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="no seed"):
        baselines.paired(np.array([np.nan]), np.array([1.0]))


def test_holdout_is_disjoint_and_keeps_the_test_set(small):
    train, x_val, y_val = baselines.holdout(small, 40, seed=1)
    assert len(train.x_train) == 200 and x_val.shape == (40, 64) and y_val.shape == (40,)

    # the two parts are a partition of the training set: together, every example exactly once
    def rows(x, y):
        return sorted(r.tobytes() + bytes([int(c)]) for r, c in zip(x, y, strict=True))

    joined = rows(np.concatenate([train.x_train, x_val]), np.concatenate([train.y_train, y_val]))
    assert joined == rows(small.x_train, small.y_train)
    np.testing.assert_array_equal(train.x_test, small.x_test)
    probe = baselines.accuracy_probe(x_val, y_val)
    model = ensemble.EnsembleMLP(2, 64, hidden=(8,))
    acc = probe(model, 0)["val_acc"]
    assert acc.shape == (2,) and ((0 <= acc) & (acc <= 1)).all()
    with pytest.raises(ValueError, match="n_val"):
        baselines.holdout(small, 240)


def test_training_noise_is_zero_without_noise_and_grows_with_it(small):
    x = small.x_train[:200]
    plain = ensemble.EnsembleMLP(2, 64, hidden=(32, 16), activation="relu", init_std="he")
    np.testing.assert_allclose(ensemble.training_noise(plain, x, batch_size=50), 0.0, atol=1e-6)
    drop = ensemble.EnsembleMLP(
        2, 64, hidden=(32, 16), activation="relu", init_std="he", dropout=0.3
    )
    bn = ensemble.EnsembleMLP(2, 64, hidden=(32, 16), activation="relu", norm="batch")
    before = bn.running_mean0.clone()
    r_drop = ensemble.training_noise(drop, x, batch_size=50)
    r50 = ensemble.training_noise(bn, x, batch_size=50)
    r10 = ensemble.training_noise(bn, x, batch_size=10)
    assert r_drop.shape == (2, 2) and (r_drop > 0.2).all()  # sqrt(p / (1 - p)) = 0.65 per unit
    assert (r50 > 0).all() and (r10 > 1.5 * r50).all()  # smaller batches: noisier statistics
    torch.testing.assert_close(bn.running_mean0, before)  # the model itself is untouched
    with pytest.raises(ValueError, match="multiple of batch_size"):
        ensemble.training_noise(bn, x[:199], batch_size=50)

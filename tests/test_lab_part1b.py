"""Tests of the lab helpers behind chapters 2-4: tables, diagrams, timing."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from bn_core.lab import diagrams, tables, timing


def test_markdown_table_layout_and_footer():
    text = tables.markdown_table(
        [[1.0, 2.5], [3.0, -4.0]],
        row_labels=["a", "b"],
        col_labels=["f1", "f2"],
        corner="ex",
        fmt="{:.2f}",
        footer={"mean": [2.0, -0.75]},
    )
    lines = text.splitlines()
    assert lines[0] == "| ex | f1 | f2 |"
    assert lines[1] == "|---|---:|---:|"
    assert lines[3] == "| **b** | 3.00 | -4.00 |"
    assert lines[4] == "| **mean** | 2.00 | -0.75 |"
    assert len(lines) == 5


def test_markdown_table_drops_the_sign_of_a_rounded_zero():
    text = tables.markdown_table([[-1e-17, -0.5, -0.0004]], fmt="{:.3f}")
    assert text.splitlines()[-1] == "| 0.000 | -0.500 | 0.000 |"


def test_markdown_table_without_labels_and_1d():
    text = tables.markdown_table(np.array([1, 2, 3]), fmt="{:.0f}")
    assert text.splitlines() == ["| 0 | 1 | 2 |", "|---:|---:|---:|", "| 1 | 2 | 3 |"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"col_labels": ["only one"]},
        {"row_labels": ["a"]},
        {"footer": {"mean": [0.0, 0.0]}},
        {"row_labels": ["a", "b"], "footer": {"mean": [0.0]}},
    ],
)
def test_markdown_table_rejects_mismatched_labels(kwargs):
    with pytest.raises(ValueError):
        tables.markdown_table(np.zeros((2, 2)), **kwargs)


@pytest.mark.parametrize(
    ("kind", "expected"), [("batch", 3 * 5), ("layer", 4 * 5), ("group", 2 * 5), ("instance", 5)]
)
def test_norm_mask_counts_and_membership(kind, expected):
    # n=3 examples, c=4 channels in 2 groups, hw=5 positions
    mask = diagrams.norm_mask(kind, n=3, c=4, hw=5, groups=2)
    assert mask.shape == (3, 4, 5)
    assert mask.sum() == expected
    assert mask[0, 0, 0]


def test_norm_mask_matches_the_reduction_axes():
    # BN shares a mean across examples within one channel; LN across channels within one example
    bn, ln = diagrams.norm_mask("batch"), diagrams.norm_mask("layer")
    assert bn[:, 0, :].all() and not bn[:, 1:, :].any()
    assert ln[0].all() and not ln[1:].any()


def test_norm_mask_rejects_bad_arguments():
    with pytest.raises(ValueError):
        diagrams.norm_mask("weight")
    with pytest.raises(ValueError):
        diagrams.norm_mask("group", c=6, groups=4)


def test_diagrams_draw():
    fig = diagrams.draw_norm_cubes(("batch", "instance"), n=2, c=2, hw=2, groups=1)
    assert len(fig.axes) == 2
    plt.close(fig)
    ax = diagrams.draw_bn_graph()
    assert len(ax.texts) >= len(diagrams.GRAPH_NODES)
    plt.close(ax.figure)


def test_median_time_counts_calls_and_validates():
    calls = []
    t = timing.median_time(lambda: calls.append(1), repeat=3, number=4)
    assert len(calls) == 12
    assert t >= 0
    with pytest.raises(ValueError):
        timing.median_time(lambda: None, repeat=0)
    with pytest.raises(ValueError):
        timing.median_time(lambda: None, number=0)


def test_random_layer_preactivations_is_repeatable_and_checks_rows():
    from bn_core.lab import data, preacts

    d = data.digits()
    a = preacts.random_layer_preactivations(d, n=20, width=7, seed=3)
    b = preacts.random_layer_preactivations(d, n=20, width=7, seed=3)
    c = preacts.random_layer_preactivations(d, n=20, width=7, seed=4)
    assert a.shape == (20, 7) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # same layer, next batch: rows 10..29 overlap rows 10..19 of the first call
    shifted = preacts.random_layer_preactivations(d, n=20, width=7, seed=3, start=10)
    np.testing.assert_allclose(shifted[:10], a[10:], rtol=1e-6)
    with pytest.raises(ValueError):
        preacts.random_layer_preactivations(d, n=10, start=len(d.x_train) - 5)


def test_html_table_escapes_marks_the_footer_and_shows_nan_as_a_dash():
    text = tables.html_table(
        [[1.0, np.nan]], row_labels=["<x>"], col_labels=["a", "b"], footer={"mean": [1.0, 2.0]}
    )
    assert "&lt;x&gt;" in text and "<x>" not in text
    assert text.count("<tr") == 3  # header, one row, one footer row
    assert "border-top" in text.splitlines()[4]  # the footer row is set off
    assert ">–<" in text
    with pytest.raises(ValueError):
        tables.html_table(np.zeros((2, 2)), col_labels=["a"])

"""Proof that the exercises and their graders are right.

- The learner notebooks are exactly what ``tools/exercises.py generate`` makes from the solutions.
- Every solution notebook passes every check (in-process here; `make test` also runs each one
  under nbval); every learner notebook (the stubs) fails every grading cell, under nbval too.
  How long grading takes is measured, not tested: ``python tools/exercises.py time``.
- A catalogue of wrong answers (``tests/exercise_mutants.py``) is injected into the solutions:
  each must fail a grading cell with a message naming the wrong quantity.
- The grading helpers (``bn_core.grading``) turn bad answers into failed checks, never crashes.

Tests are grouped in classes so that ``pytest -n 2 --dist loadscope`` spreads them over workers.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch  # noqa: F401 - imported before the in-process runner forks, as a kernel would have it

from bn_core.grading import CallFailed, Grader, GradingFailure, describe, time_limit

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


tools = _load("exercises_tool", ROOT / "tools" / "exercises.py")
catalogue = _load("exercise_mutants", Path(__file__).with_name("exercise_mutants.py"))
variants = _load("exercise_variants", Path(__file__).with_name("exercise_variants.py"))

SOLUTIONS = tools.solution_paths()
NAMES = [p.stem for p in SOLUTIONS]
REQUIRED = [
    "ex01_batch_statistics",
    "ex02_scale_shift_identity",
    "ex03_running_stats_inference",
    "ex04_backward_graph",
    "ex05_backward_closed_form",
    "ex06_spatial_batchnorm",
    "ex07_folding",
    "ex08_sync_batchnorm",
    "ex09_freeze_batchnorm",
    "ex10_layer_group_norm",
    "ex11_residual_block",
]


def solution_nb(name: str) -> dict:
    return tools.load(tools.SOLUTIONS / f"{name}.ipynb")


def learner_nb(name: str) -> dict:
    return tools.load(tools.EXERCISES / f"{name}.ipynb")


def tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def graded_cells(nb: dict) -> list[int]:
    return [i for i, c in enumerate(nb["cells"]) if "grade" in tags(c)]


# -- nbval, as a learner runs it (`make grade`); first, so -n 2 starts them on two workers ---------------------------------------------------
def run_nbval(paths: list[Path], tmp_path: Path) -> dict[str, list[tuple[int, bool, float]]]:
    """Run nbval in a subprocess; return {notebook: [(cell index, passed, seconds), ...]}."""
    report = tmp_path / "report.xml"
    cmd = [
        sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
        "--nbval-cell-timeout=60", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
        "-q", "-o", "addopts=",
        f"--junitxml={report}", *map(str, paths),
    ]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    results: dict[str, list[tuple[int, bool, float]]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        # classname is e.g. "exercises.solutions.ex01_batch_statistics.ipynb"
        nb = re.sub(r"\.ipynb$", "", case.get("classname", "")).split(".")[-1]
        match = re.search(r"Cell (\d+)", case.get("name", ""))
        failed = case.find("failure") is not None or case.find("error") is not None
        results.setdefault(nb, []).append(
            (int(match.group(1)), not failed, float(case.get("time", 0)))
        )
    return results


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


class TestNbvalLearners:
    def test_every_grading_cell_fails_and_nothing_else(self, tmp_path):
        results = run_nbval([tools.EXERCISES / f"{n}.ipynb" for n in NAMES], tmp_path)
        assert len(results) == len(NAMES), results.keys()
        for name in NAMES:
            cells = code_cells(learner_nb(name))
            items = {i: ok for i, ok, _ in results[next(k for k in results if name in k)]}
            assert len(items) == len(cells)
            for i, cell in enumerate(cells):
                if "grade" in tags(cell):
                    assert not items[i], f"{name}: grading cell {i} passes under nbval on the stub"
                else:
                    assert items[i], f"{name}: cell {i} (not a grading cell) fails on the stub"


# -- the learner notebooks are generated, and carry what a learner needs --------------------------
class TestGeneratedNotebooks:
    def test_the_eight_exercises_exist(self):
        assert set(REQUIRED) <= set(NAMES), f"missing: {set(REQUIRED) - set(NAMES)}"

    def test_learner_notebooks_are_up_to_date(self):
        problems = tools.stale()
        assert not problems, (
            "learner notebooks differ from what `python tools/exercises.py generate` writes "
            f"(run `make students`): {problems}"
        )

    @pytest.mark.parametrize("name", NAMES)
    def test_learner_notebook_has_stubs_and_no_solution(self, name):
        sol, learner = solution_nb(name), learner_nb(name)
        n_blocks = sum(tools.source(c).count(tools.BEGIN) for c in sol["cells"])
        text = "".join(tools.source(c) for c in learner["cells"])
        code = "".join(tools.source(c) for c in learner["cells"] if c["cell_type"] == "code")
        assert n_blocks >= 1
        assert tools.BEGIN not in text and tools.END not in text
        assert code.count("raise NotImplementedError()") == n_blocks
        for cell in learner["cells"]:
            assert "solution-only" not in tags(cell)
            assert not cell.get("outputs"), "generated notebooks carry no outputs"
            assert cell.get("execution_count") is None

    @pytest.mark.parametrize("name", NAMES)
    def test_structure(self, name):
        nb = solution_nb(name)
        cells = nb["cells"]
        md = "\n".join(tools.source(c) for c in cells if c["cell_type"] == "markdown")
        assert "../../chapters/" in md, "each exercise links the chapter that teaches it"
        assert ":::{dropdown} Hint" in md, "each exercise offers collapsed hints"
        # Layered hints: the idea, then the formula, then the code, each in its own dropdown
        # (book) and its own collapsed markdown cell (notebook).
        layers = [
            (i, c["metadata"]["hint-layer"])
            for i, c in enumerate(cells)
            if c["cell_type"] == "markdown" and c.get("metadata", {}).get("hint-layer")
        ]
        assert layers and len(layers) % 3 == 0
        for k in range(0, len(layers), 3):
            (i1, l1), (i2, l2), (i3, l3) = layers[k : k + 3]
            assert (l1, l2, l3) == (1, 2, 3) and i2 == i1 + 1 and i3 == i2 + 1
        for i, _ in layers:
            text = tools.source(cells[i])
            assert text.startswith(":::{dropdown} Hint") and text.count(":::") == 2
            assert cells[i]["metadata"]["jupyter"]["source_hidden"] is True
            assert "### BEGIN" not in text
        assert "Rules" in md and "no torch" in md
        assert graded_cells(nb), "no cell tagged `grade`"
        for i in graded_cells(nb):
            assert tools.source(cells[i]).startswith("# GRADING CELL: do not edit")
            assert "assert " not in tools.source(cells[i]), "no bare asserts in grading cells"
            # The expected values are computed in bn_core.grading.tasks, not in the open.
            assert "tasks.ex" in tools.source(cells[i])
            assert not re.search(r"\bnp\.|\btorch\.|import torch", tools.source(cells[i]))
        for cell in cells:
            if tools.BEGIN in tools.source(cell):
                assert "answer" in tags(cell), "solution blocks belong in cells tagged `answer`"
        assert tools.source(cells[-1]).strip() == "grader.summary()", "last cell: the score"
        n_cells = re.search(r"n_cells=(\d+)", "".join(tools.source(c) for c in cells))
        assert n_cells and int(n_cells.group(1)) == len(graded_cells(nb))

    @pytest.mark.parametrize("name", NAMES)
    def test_links_resolve_in_both_versions(self, name):
        for folder, nb in [
            (tools.SOLUTIONS, solution_nb(name)),
            (tools.EXERCISES, learner_nb(name)),
        ]:
            for cell in nb["cells"]:
                if cell["cell_type"] != "markdown":
                    continue
                for target in tools.LINK.findall(tools.source(cell)):
                    path = (folder / target.partition("#")[0]).resolve()
                    assert path.exists(), f"{folder.name}/{name}: broken link {target}"
        learner_text = "".join(tools.source(c) for c in learner_nb(name)["cells"])
        assert f"](solutions/{name}.ipynb)" in learner_text, "the exercise links its solution"
        solution_text = "".join(tools.source(c) for c in solution_nb(name)["cells"])
        assert f"](../{name}.ipynb)" in solution_text, "the solution links its exercise"

    def test_generator_rejects_unbalanced_markers(self):
        with pytest.raises(ValueError, match="without"):
            tools.stub_code("def f():\n    ### BEGIN SOLUTION\n    return 1\n")
        with pytest.raises(ValueError, match="without"):
            tools.stub_code("def f():\n    ### END SOLUTION\n")

    def test_generator_copies_a_leading_plain_cell_unchanged(self):
        nb = solution_nb(NAMES[0])
        install = {
            "cell_type": "code",
            "execution_count": 3,
            "id": "install",
            "metadata": {"tags": ["remove-input"], "collapsed": True},
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "ok"}],
            "source": ["# Install the course if it is missing\n", "%pip install -q bn_core"],
        }
        nb["cells"].insert(0, install)
        learner = tools.generate_notebook(nb, NAMES[0])
        first = learner["cells"][0]
        assert first["source"] == install["source"] and first["metadata"] == install["metadata"]
        assert first["id"] == "install" and first["outputs"] == []

    def test_generator_keeps_indentation(self):
        src = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"
        assert tools.stub_code(src) == (
            "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
        )

    def test_book_executes_solutions_but_not_learner_notebooks(self):
        import fnmatch

        config = (ROOT / "_config.yml").read_text(encoding="utf-8")
        patterns = re.search(r"exclude_patterns:\s*\[([^\]]*)\]", config.split("execute:")[1])
        pats = [p.strip().strip("\"'") for p in patterns.group(1).split(",")]
        for name in NAMES:
            assert any(fnmatch.fnmatch(f"exercises/{name}.ipynb", p) for p in pats)
            assert not any(fnmatch.fnmatch(f"exercises/solutions/{name}.ipynb", p) for p in pats)


# -- in-process runs: the solutions pass, the stubs fail every grading cell ------------------------
class TestSolutionsAndStubs:
    @pytest.mark.parametrize("name", NAMES)
    def test_solution_passes_every_check(self, name):
        res = tools.run_in_process(solution_nb(name))
        assert not [c.error for c in res.cells if c.error], res.cells
        summary = res.cells[-1].stdout
        passed, total = map(int, re.search(r"(\d+)/(\d+) checks passed", summary).groups())
        assert passed == total > 0, summary

    @pytest.mark.parametrize("name", NAMES)
    def test_stub_fails_every_grading_cell_on_its_own(self, name):
        nb = tools.generate_notebook(solution_nb(name), name)
        res = tools.run_in_process(nb)
        graded = res.graded
        assert len(graded) == len(graded_cells(nb))
        for cell in graded:
            assert cell.error, f"grading cell {cell.index} passes on the stub"
            assert cell.error.startswith("GradingFailure"), cell.error
            assert "NotImplementedError" in cell.error
        others = [c.error for c in res.cells if c.error and "grade" not in c.tags]
        assert not others, f"non-grading cells crash on the stub: {others}"
        summary = res.cells[-1].stdout
        passed, total = map(int, re.search(r"(\d+)/(\d+) checks passed", summary).groups())
        assert total > 0 and passed == 0, summary
        assert f"in 0/{len(graded)} grading cells" in summary, summary


# -- the catalogue of wrong answers ---------------------------------------------------------------
def apply_mutant(nb: dict, mutant) -> dict:
    nb = json.loads(json.dumps(nb))
    answers = [c for c in nb["cells"] if "answer" in tags(c)]
    for old, new in mutant.edits:
        blocks = []
        for cell in answers:
            src = tools.source(cell)
            for block in re.findall(
                re.escape(tools.BEGIN) + r"(.*?)" + re.escape(tools.END), src, re.S
            ):
                blocks.append((cell, block))
        hits = [(cell, block) for cell, block in blocks if old in block]
        count = sum(block.count(old) for _, block in hits)
        assert count == 1, f"{mutant.id}: {old!r} found {count} times in the solution blocks"
        cell, block = hits[0]
        cell["source"] = tools.source(cell).replace(block, block.replace(old, new))
    return nb


def check_mutant(mutant, monkeypatch):
    # Short limits (a mutant may never return); a fixed seed, so a failure can be reproduced.
    monkeypatch.setenv("BN_GRADING_TIMEOUT", "0.5")
    monkeypatch.setenv("BN_GRADING_CELL_TIMEOUT", "20")
    monkeypatch.setenv("BN_GRADING_SEED", str(MUTANT_SEED))
    nb = apply_mutant(solution_nb(mutant.exercise), mutant)
    res = tools.run_in_process(nb, cell_timeout=40)
    failures = res.failures
    assert failures, f"{mutant.id}: no grading cell failed; the graders miss this mistake"
    for failure in failures:
        assert failure.startswith("GradingFailure"), f"grader crashed: {failure}"
    matching = [f for f in failures if all(e in f for e in mutant.expect)]
    assert matching, (
        f"{mutant.id}: no failure message contains {mutant.expect}. Messages:\n"
        + "\n".join(failures)
    )


MUTANT_SEED = 20261129
FIRST = [m for m in catalogue.MUTANTS if m.exercise < "ex04"]
SECOND = [m for m in catalogue.MUTANTS if m.exercise >= "ex04"]


# The wrong answers divide by zero on purpose; numpy's warnings about it are expected.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
class TestMutantsPart1:
    @pytest.mark.parametrize("mutant", FIRST, ids=[m.id for m in FIRST])
    def test_mutant_is_caught(self, mutant, monkeypatch):
        check_mutant(mutant, monkeypatch)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
class TestMutantsPart2:
    @pytest.mark.parametrize("mutant", SECOND, ids=[m.id for m in SECOND])
    def test_mutant_is_caught(self, mutant, monkeypatch):
        check_mutant(mutant, monkeypatch)


def check_variant(variant, monkeypatch):
    monkeypatch.setenv("BN_GRADING_TIMEOUT", "5")
    monkeypatch.setenv("BN_GRADING_SEED", str(MUTANT_SEED))
    nb = apply_mutant(solution_nb(variant.exercise), variant)
    res = tools.run_in_process(nb, cell_timeout=60)
    errors = [c.error for c in res.cells if c.error]
    assert not errors, f"{variant.id}: a correct answer is rejected:\n" + "\n".join(errors)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
class TestVariants:
    @pytest.mark.parametrize("variant", variants.VARIANTS, ids=[v.id for v in variants.VARIANTS])
    def test_correct_answer_passes(self, variant, monkeypatch):
        check_variant(variant, monkeypatch)


class TestCatalogue:
    def test_at_least_ten_mutants_per_exercise_and_a_hundred_in_all(self):
        for name in REQUIRED:
            assert sum(m.exercise == name for m in catalogue.MUTANTS) >= 10, name
        assert len(catalogue.MUTANTS) >= 100
        assert len({m.id for m in catalogue.MUTANTS}) == len(catalogue.MUTANTS), "ids must differ"

    def test_every_mutant_names_the_quantity(self):
        for mutant in catalogue.MUTANTS:
            assert mutant.expect and mutant.expect[0].strip(), mutant.id

    def test_variants_cover_the_unusual_styles(self):
        names = " ".join(v.name for v in variants.VARIANTS)
        for style in ["helper-named", "loop", "einsum", "float64", "transpose", "affine", "dict"]:
            assert style in names, style
        for name in REQUIRED:
            assert any(v.exercise == name for v in variants.VARIANTS), name

    def test_covers_the_course_plans_mistakes(self):
        mistakes = {m.mistake for m in catalogue.MUTANTS}
        for required in [
            "momentum reversed",
            "unbiased variance to normalize",
            "biased variance in running_var",
            "eps outside sqrt",
            "eps missing",
            "wrong reduction axis",
            "images: stats over (C, H, W)",
            "images: reshape without transpose",
            "batch statistics in eval mode",
            "running statistics not updated in training",
            "missing branch through mu",
            "missing branch through sigma2",
            "dgamma not summed",
            "dbeta not summed",
            "dgamma uses x",
            "input mutated",
            "in place then return",
            "keepdims kept",
            "tuple instead of array",
            "argument ignored",
            "float32 in, float64 out",
            "one-pass variance in float32",
            "answer right for one shape only",
            "returns a literal answer",
            "images: transpose not undone",
            "images: dx transpose not undone",
            "conv: scale not reshaped",
            "conv: bias wrong, weight right",
            "conv: weight wrong, bias right",
            "an answer that runs forever, swallowing Exception",
            "sync: variance without the between-shard term",
            "sync: unweighted mean of means",
            "sync: unbiased per-shard variances",
            "sync: local N in the backward",
            "sync: synchronizing in eval",
            "sync: sum-of-squares merge",
            "frozen: requires_grad=False alone",
            "frozen: eval() undone by model.train()",
            "frozen: momentum=0 hack",
            "frozen: every parameter frozen",
            "frozen: only BatchNorm2d",
            "frozen: BatchNorm3d and SyncBatchNorm missed",
            "frozen: model not returned",
            "frozen: in-place swap breaks the state_dict keys",
            "residual: BN after the addition",
            "residual: zero-init gamma on the wrong BN",
            "residual: skip connection forgotten",
            "residual: ReLU after the addition in a pre-activation block",
            "residual: variance over the wrong axis",
        ]:
            assert required in mistakes, required


# -- the grading helpers --------------------------------------------------------------------------
class TestGradingHelpers:
    def make(self):
        g = Grader("demo", n_cells=2, timeout=0.5)
        return g

    def failing_message(self, g, body) -> str:
        with pytest.raises(GradingFailure) as info:
            with g.cell("cell"):
                body()
        return str(info.value)

    def test_pass_prints_and_counts(self, capsys):
        g = self.make()
        with g.cell("ok"):
            got = g.call(np.sqrt, np.array([4.0, 9.0]))
            g.check_close("sqrt", got, [2.0, 3.0])
        g.summary()
        out = capsys.readouterr().out
        assert "✓ ok: all 2 checks passed" in out
        assert "demo: 2/2 checks passed in 1/2 grading cells." in out
        assert "1 grading cell(s) not run yet" in out
        assert g.passed("ok") and not g.passed("other")

    def test_wrong_value_names_quantity_and_diagnoses(self):
        g = self.make()
        msg = self.failing_message(
            g,
            lambda: g.check_close(
                "running_var", np.array([1.1, 2.0]), np.array([1.3, 2.5]),
                mistakes={"you store the biased variance": np.array([1.1, 2.0])},
                hint="store the unbiased one", inputs={"x": np.array([1.0, 2.0])},
            ),
        )  # fmt: skip
        assert "running_var is wrong" in msg and "(expected 2.5, got 2)" in msg
        assert "matches what you get when you store the biased variance" in msg
        # A named cause replaces the generic hint; the input is always shown.
        assert "Hint:" not in msg and "Input: x = [1.00000 2.00000]" in msg
        msg = self.failing_message(
            g, lambda: g.check_close("running_var", np.array([9.0, 9.0]), np.array([1.3, 2.5]),
                                     hint="store the unbiased one")
        )  # fmt: skip
        assert "Hint: store the unbiased one" in msg

    @pytest.mark.parametrize(
        ("got", "expected_text"),
        [
            (None, "is None: did you forget a `return`"),
            (np.zeros(3), "has shape (3,), expected (2,)"),
            (np.array([np.nan, 1.0]), "NaN"),
            (np.array([1, 2]), "integer dtype"),
            ("text", "not an array of numbers"),
            ([[1.0], [2.0, 3.0]], "is a list of 2 value(s)"),
            (CallFailed("f raised KeyError: 'a'"), "not checked, because f raised KeyError"),
        ],
    )
    def test_bad_values_fail_cleanly(self, got, expected_text):
        g = self.make()
        msg = self.failing_message(g, lambda: g.check_close("q", got, np.array([1.0, 2.0])))
        assert expected_text in msg

    def test_torch_tensor_is_refused(self):
        g = self.make()
        msg = self.failing_message(g, lambda: g.check_close("q", torch.ones(2), np.ones(2)))
        assert "torch.Tensor" in msg

    def test_dtype_is_checked_when_asked(self):
        g = self.make()
        msg = self.failing_message(
            g, lambda: g.check_close("q", np.ones(2), np.ones(2, np.float32), dtype=np.float32)
        )
        assert "dtype float64, expected float32" in msg

    def test_exception_timeout_and_not_implemented(self):
        g = self.make()

        def boom(x):
            return {}["missing"]

        def forever_swallowing(x):
            # The per-call limit derives from BaseException: `except Exception` cannot stop it.
            while True:
                try:
                    sum(range(1000))
                except Exception:
                    pass

        def todo(x):
            raise NotImplementedError()

        for fn, text in [
            (boom, "boom raised KeyError"),
            (forever_swallowing, "did not return within 0.5 s"),
            (todo, "write your code where it says"),
        ]:
            msg = self.failing_message(
                g, lambda fn=fn: g.check_close("q", g.call(fn, np.ones(2)), np.ones(2))
            )
            assert text in msg

    def test_timeout_restores_an_outer_timer(self):
        import signal

        if not hasattr(signal, "setitimer"):
            pytest.skip("no setitimer")

        def outer(*args):
            pass

        old = signal.signal(signal.SIGALRM, outer)
        try:
            signal.setitimer(signal.ITIMER_REAL, 1000.0)
            with time_limit(100.0):
                pass
            remaining = signal.getitimer(signal.ITIMER_REAL)[0]
            # Re-armed with what was left of it (no sleeping, so no dependence on wall time).
            assert 0 < remaining <= 1000.0, "outer timer lost"
            assert signal.getsignal(signal.SIGALRM) is outer, "outer handler not restored"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)

    def test_mutated_input_is_caught_and_restored(self):
        g = self.make()
        x = np.arange(3.0)

        def sneaky(a):
            a -= a.mean()
            return a

        with pytest.raises(GradingFailure) as info:
            with g.cell("cell"):
                got = g.call(sneaky, x)
                g.check_close("sneaky(x)", got, np.arange(3.0) - 1.0)
        msg = str(info.value)
        assert "sneaky changed its input `a` in place and returned that same array" in msg
        # The value check judges what sneaky computed (right), not the restored input.
        assert "sneaky(x)" not in msg
        np.testing.assert_array_equal(x, np.arange(3.0))

    def test_wrong_number_of_outputs(self):
        g = self.make()
        msg = self.failing_message(
            g,
            lambda: g.check_close("b", g.call(lambda: 1.0, outputs=("a", "b"))[1], np.ones(1)),
        )
        assert "should return 2 values (a, b) as a tuple, but returned a single float" in msg

    def test_failed_call_propagates_to_later_calls(self):
        g = self.make()
        first = g.call(lambda: 1 / 0, check_inputs=False)
        with pytest.raises(GradingFailure):
            with g.cell("c"):
                second = g.call(np.sqrt, first, check_inputs=False)
                g.check_close("s", second, 1.0)
        assert isinstance(second, CallFailed) and "ZeroDivisionError" in second.reason

    def test_rules_judge_behaviour_not_names(self):
        g = self.make()

        def uses_torch(x):
            t = __import__("torch")
            return getattr(t, "native_batch_norm")(  # noqa: B009 - the route under test
                t.from_numpy(x), None, None, None, None, True, 0.1, 1e-5
            )[0].numpy()

        def batch_norm(x):  # a book name, honest numpy inside
            return (x - x.mean(axis=0)) / x.std(axis=0)

        def body():
            g.call(batch_norm, np.random.default_rng(0).normal(size=(4, 3)))
            g.call(uses_torch, np.random.default_rng(0).normal(size=(4, 3)))
            g.check_rules()

        msg = self.failing_message(g, body)
        assert "rules" in msg and "torch" in msg and "uses_torch" in msg
        assert "called from batch_norm" not in msg
        with g.cell("rules ok"):
            g.call(batch_norm, np.ones((2, 3)) + np.arange(2.0)[:, None])
            g.check_rules()

    def test_check_true_and_raises(self):
        g = self.make()
        msg = self.failing_message(
            g, lambda: g.check_true("p", lambda: 1 / 0, "bad", needs=[np.ones(1)])
        )
        assert "could not be decided (ZeroDivisionError" in msg
        msg = self.failing_message(g, lambda: g.check_true("p", True, "x", needs=[None]))
        assert "a value it needs is None" in msg
        msg = self.failing_message(
            g, lambda: g.check_raises("r", lambda: None, exception=ValueError)
        )
        assert "returned normally" in msg
        with g.cell("raises ok"):
            g.check_raises("r", lambda: int("x"), exception=ValueError, match="invalid")

    def test_a_crash_inside_the_grading_cell_is_a_failed_check(self):
        g = self.make()
        msg = self.failing_message(g, lambda: [][1])
        assert "the grading cell stopped with IndexError" in msg

    def test_describe(self):
        assert describe(np.arange(20.0)).startswith("array of shape (20,)")
        assert describe(None) == "None"

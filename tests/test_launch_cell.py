"""tools/launch_cell.py: the first cell that installs bn_core where a notebook opens without it."""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import launch_cell  # noqa: E402

CONFIG = """\
title: t
repository:
  url: https://github.com/someone/bn-course-fork
  path_to_book: ""
  branch: week-3
"""
URL, BRANCH = "https://github.com/someone/bn-course-fork", "week-3"


def _write_config(tmp_path, text=CONFIG):
    (tmp_path / "_config.yml").write_text(text, encoding="utf-8")
    return tmp_path / "_config.yml"


def test_command_is_built_from_the_config(tmp_path):
    url, branch = launch_cell.read_repository(_write_config(tmp_path))
    assert (url, branch) == (URL, BRANCH)
    assert launch_cell.requirement(url, branch) == (
        "bn_core[lab] @ git+https://github.com/someone/bn-course-fork@week-3"
    )
    src = launch_cell.cell_source(url, branch)
    assert 'source = "git+https://github.com/someone/bn-course-fork@week-3"' in src
    compile(src, "<launch cell>", "exec")  # plain Python: no IPython syntax needed
    # what the cell hands to %pip (run below with a fake get_ipython)
    assert launch_cell.pip_command(url, branch) == (
        "install -q 'bn_core[lab] @ git+https://github.com/someone/bn-course-fork@week-3'"
    )


def test_the_requirement_is_valid_pep_508():
    from packaging.requirements import Requirement

    req = Requirement(launch_cell.requirement(URL, BRANCH))
    assert req.name == "bn_core" and req.extras == {"lab"}
    assert req.url == f"git+{URL}@{BRANCH}"
    # the package and the extra exist in this repository's pyproject.toml
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'name = "bn_core"' in pyproject and "\nlab = [" in pyproject


def test_the_repository_config_gives_a_command():
    url, branch = launch_cell.read_repository(ROOT / "_config.yml")
    assert url.startswith("https://") and branch


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("title: t\n", "repository.url"),
        ("repository:\n  url: git@github.com:a/b.git\n", "https URL"),
        ("repository:\n  url: https://github.com/a/b\n  branch: 'a b'\n", "not a branch"),
    ],
)
def test_bad_config_is_refused(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        launch_cell.read_repository(_write_config(tmp_path, text))


# The cell runs in a fresh interpreter whose `get_ipython()` is a fake that records the line
# magics it is asked to run instead of running pip.
RUNNER = textwrap.dedent(
    """
    import json, sys
    calls = []
    class FakeIPython:
        def run_line_magic(self, name, line):
            calls.append([name, line])
    import builtins
    builtins.get_ipython = lambda: FakeIPython()
    if sys.argv[1] == "missing":
        sys.modules["bn_core"] = None  # `import bn_core` now raises ImportError
    exec(compile(sys.stdin.read(), "<launch cell>", "exec"), {"__name__": "__main__"})
    print(json.dumps(calls))
    """
)


def _run_cell(src, mode):
    out = subprocess.run(
        [sys.executable, "-c", RUNNER, mode],
        input=src,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cell_does_nothing_where_bn_core_is_installed():
    src = launch_cell.cell_source(URL, BRANCH)
    assert _run_cell(src, "installed") == []


def test_cell_installs_where_bn_core_is_missing():
    # the control: the same harness records the install when bn_core cannot be imported
    src = launch_cell.cell_source(URL, BRANCH)
    assert _run_cell(src, "missing") == [["pip", f"install -q 'bn_core[lab] @ git+{URL}@{BRANCH}'"]]


def test_cell_code_under_ipython_is_the_pip_magic():
    # what IPython makes of `%pip install ...` is the call the cell writes out
    from IPython.core.inputtransformer2 import TransformerManager

    magic = f"%pip {launch_cell.pip_command(URL, BRANCH)}\n"
    assert TransformerManager().transform_cell(magic).strip() == (
        f"get_ipython().run_line_magic('pip', {launch_cell.pip_command(URL, BRANCH)!r})"
    )


def _copy_book(tmp_path):
    """A temporary book: this repository's config and a few of its notebooks."""
    book = tmp_path / "book"
    (book / "chapters").mkdir(parents=True)
    (book / "exercises" / "solutions").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", book / "_config.yml")
    for rel in (
        "chapters/02_four_steps.ipynb",
        "exercises/ex01_batch_statistics.ipynb",
        "exercises/solutions/ex01_batch_statistics.ipynb",
    ):
        # as they were before the tool ran: without the launch cell
        nb = json.loads((ROOT / rel).read_text(encoding="utf-8"))
        nb["cells"] = [
            c for c in nb["cells"] if "launch-install" not in c.get("metadata", {}).get("tags", [])
        ]
        (book / rel).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", "utf-8")
    return book


def _nb(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_insert_is_idempotent_and_check_passes_after(tmp_path):
    book = _copy_book(tmp_path)
    paths = launch_cell.notebook_paths(book)
    assert len(paths) == 3
    originals = {p: _nb(p) for p in paths}
    assert launch_cell.main(["--check", "--root", str(book)]) == 1  # not there yet
    assert launch_cell.main(["--root", str(book)]) == 0
    texts = {p: p.read_text(encoding="utf-8") for p in paths}
    assert launch_cell.main(["--check", "--root", str(book)]) == 0
    assert launch_cell.main(["--root", str(book)]) == 0  # second run: nothing changes
    assert {p: p.read_text(encoding="utf-8") for p in paths} == texts
    url, branch = launch_cell.read_repository(book / "_config.yml")
    for p in paths:
        nb, old = _nb(p), originals[p]
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert "".join(code[0]["source"]) == launch_cell.cell_source(url, branch)
        assert code[0]["metadata"]["tags"] == ["remove-cell", "launch-install"]
        # every other cell is untouched and in its place; the new cell comes right before
        # the first code cell (Markdown above it stays above it)
        first = next(i for i, c in enumerate(old["cells"]) if c["cell_type"] == "code")
        assert nb["cells"][:first] + nb["cells"][first + 1 :] == old["cells"]
        assert nb["cells"][first] is not None and launch_cell.problem(nb, url, branch) is None
        ids = [c.get("id") for c in nb["cells"]]
        assert len(ids) == len(set(ids))


def test_check_finds_stale_missing_and_misplaced_cells(tmp_path, capsys):
    book = _copy_book(tmp_path)
    launch_cell.main(["--root", str(book)])
    chapter = book / "chapters" / "02_four_steps.ipynb"
    # the repository moved: every cell is stale until the tool runs again
    cfg = (book / "_config.yml").read_text(encoding="utf-8")
    (book / "_config.yml").write_text(cfg.replace("branch: main", "branch: v2"), encoding="utf-8")
    assert launch_cell.main(["--check", "--root", str(book)]) == 1
    assert "stale launch cell" in capsys.readouterr().err
    launch_cell.main(["--root", str(book)])
    assert '@v2"' in "".join(
        next(c for c in _nb(chapter)["cells"] if c["cell_type"] == "code")["source"]
    )
    assert launch_cell.main(["--check", "--root", str(book)]) == 0
    # a code cell moved above it
    nb = _nb(chapter)
    i = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
    nb["cells"][i], nb["cells"][i + 1] = nb["cells"][i + 1], nb["cells"][i]
    chapter.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert launch_cell.main(["--check", "--root", str(book)]) == 1
    assert "not the first code cell" in capsys.readouterr().err
    # removed
    nb["cells"] = [c for c in nb["cells"] if "launch-install" not in c["metadata"].get("tags", [])]
    chapter.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert launch_cell.main(["--check", "--root", str(book)]) == 1
    assert "no launch cell" in capsys.readouterr().err
    launch_cell.main(["--root", str(book)])
    assert launch_cell.main(["--check", "--root", str(book)]) == 0


def test_learner_notebooks_regenerate_with_the_same_cell(tmp_path):
    # the solution is the learner notebook's source (tools/exercises.py): generating the
    # learner notebook from an updated solution gives the updated learner notebook
    import exercises as ex_tools

    book = _copy_book(tmp_path)
    launch_cell.main(["--root", str(book)])
    solution = book / "exercises" / "solutions" / "ex01_batch_statistics.ipynb"
    learner = book / "exercises" / "ex01_batch_statistics.ipynb"
    generated = ex_tools.dumps(ex_tools.generate_notebook(_nb(solution), solution.name))
    assert generated == learner.read_text(encoding="utf-8")


def test_cells_run_in_process_like_the_exercise_tools(tmp_path):
    # tools/exercises.run_in_process compiles cells as plain Python: the launch cell must pass
    import exercises as ex_tools

    book = _copy_book(tmp_path)
    launch_cell.main(["--root", str(book)])
    nb = _nb(book / "exercises" / "solutions" / "ex01_batch_statistics.ipynb")
    nb["cells"] = [c for c in nb["cells"] if c["cell_type"] == "code"][:1]
    res = ex_tools.run_in_process(nb)
    assert [c.error for c in res.cells] == [None]


def test_the_cell_passes_the_repository_lint(tmp_path):
    # make lint runs ruff over every notebook: the inserted cell must already be formatted
    book = _copy_book(tmp_path)
    launch_cell.main(["--root", str(book)])
    shutil.copy(ROOT / "pyproject.toml", book / "pyproject.toml")
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.exists():
        pytest.skip("ruff is not installed next to this python")
    for args in (["check"], ["format", "--check"]):
        out = subprocess.run([str(ruff), *args, "."], cwd=book, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr


def test_every_notebook_of_the_repository_has_its_current_launch_cell():
    """Colab and other launchers: every chapter, exercise and solution installs the course.

    Fails when a notebook lacks the cell or carries a stale one (e.g. after the repository URL
    or branch in _config.yml changed): run `python tools/launch_cell.py` to update them all.
    """
    assert launch_cell.main(["--check"]) == 0

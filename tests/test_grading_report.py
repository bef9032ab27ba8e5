"""bn_core.grading.report and tools/grade.py: the score a learner and an instructor read."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from bn_core.grading import Grader, GradingFailure, report

ROOT = Path(__file__).resolve().parent.parent


def _grade_tool():
    sys.path.insert(0, str(ROOT / "tools"))
    spec = importlib.util.spec_from_file_location("grade_tool", ROOT / "tools" / "grade.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["grade_tool"] = module
    spec.loader.exec_module(module)
    return module


def graded(tmp_path=None) -> Grader:
    g = Grader("demo", n_cells=3, seed=1)
    with g.cell("ok"):
        g.check_close("a", g.call(np.sqrt, np.array([4.0])), [2.0])
    with pytest.raises(GradingFailure):
        with g.cell("bad"):
            g.check_close("b", np.array([1.0]), [2.0])
    return g


def test_summary_counts_checks_and_cells():
    text = report.summary_text(graded())
    assert text.splitlines()[0] == "demo: 2/3 checks passed in 1/3 grading cells."
    assert "✗ bad: 1 failed (b)" in text and "1 grading cell(s) not run yet" in text


def test_save_writes_every_check_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("BN_GRADING_REPORT_DIR", str(tmp_path))
    graded()
    data = json.loads((tmp_path / "demo.json").read_text())
    assert data["checks_passed"] == 2 and data["checks_total"] == 3 and data["seed"] == 1
    assert [c["title"] for c in data["cells"]] == ["ok", "bad"]
    assert data["cells"][1]["checks"][0]["message"].startswith("b is wrong")


def test_save_does_nothing_by_default(monkeypatch):
    monkeypatch.delenv("BN_GRADING_REPORT_DIR", raising=False)
    assert report.save(graded()) is None


def test_report_of_a_failed_grading_cell_shows_the_message_alone(capsys):
    tool = _grade_tool()
    nb = {
        "cells": [
            {"cell_type": "code", "metadata": {}, "source": 'grader = Grader("demo", n_cells=2)'},
            {"cell_type": "code", "metadata": {"tags": ["grade"]},
             "source": '# GRADING CELL: do not edit\nwith grader.cell("ok"):\n    pass'},
            {"cell_type": "code", "metadata": {"tags": ["grade"]},
             "source": '# GRADING CELL: do not edit\nwith grader.cell("bad"):\n    pass'},
        ]
    }  # fmt: skip
    record = report.as_dict(graded())
    result = tool.grade_notebook(
        nb, "demo", {"demo": {0: None, 1: None, 2: "long nbval text\nGradingFailure: x"}},
        {"demo": record},
    )  # fmt: skip
    assert (result["checks_passed"], result["checks_total"]) == (2, 3)
    assert (result["cells_passed"], result["cells_total"]) == (1, 2)
    tool.print_report([result])
    out = capsys.readouterr().out
    assert "demo: 2/3 checks passed, 1/2 grading cells passed" in out
    assert "        b is wrong" in out and "long nbval text" not in out
    tool.print_report([result], verbose=True)
    assert "long nbval text" in capsys.readouterr().out


def test_submission_answers_move_into_a_pristine_copy_and_tampering_is_flagged():
    tool = _grade_tool()
    pristine = {
        "cells": [
            {"cell_type": "code", "metadata": {"tags": ["answer"]},
             "source": "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"},
            {"cell_type": "code", "metadata": {"tags": ["grade"]},
             "source": "# GRADING CELL: do not edit\ncheck(f)\n"},
        ]
    }  # fmt: skip
    submission = {
        "cells": [
            {"cell_type": "code", "metadata": {},
             "source": "np.mean = lambda *a, **k: 0\ndef f(x):\n    return x\n"},
            {"cell_type": "code", "metadata": {"tags": ["grade"]}, "source": "pass\n"},
        ]
    }  # fmt: skip
    nb, flags = tool.assemble_submission(submission, pristine)
    assert nb["cells"][0]["source"][1] == "def f(x):\n"
    assert nb["cells"][1]["source"] == pristine["cells"][1]["source"]
    assert any("patching numpy" in f for f in flags)
    assert any("grading cells were edited" in f for f in flags)


def test_grade_submission_end_to_end(tmp_path):
    """An instructor grades a copy of solution 7 whose grading cell was gutted: nbval runs the
    pristine grading cells, the report and the JSON count every check."""
    import subprocess

    nb = json.loads((ROOT / "exercises/solutions/ex07_folding.ipynb").read_text("utf-8"))
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if "grade" in cell.get("metadata", {}).get("tags", []) and "fold_conv" in text:
            cell["source"] = ["# GRADING CELL: do not edit\n", "print('done')\n"]
    submission = tmp_path / "ex07_bob.ipynb"
    submission.write_text(json.dumps(nb), "utf-8")
    out = tmp_path / "bob.json"
    done = subprocess.run(
        [sys.executable, "tools/grade.py", "--submission", str(submission), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(out.read_text("utf-8"))
    assert data["cells_passed"] == data["cells_total"] == 3
    assert data["checks_passed"] == data["checks_total"] > 20
    assert "grading cells were edited" in done.stdout
    assert (
        f"{data['checks_passed']}/{data['checks_total']} checks passed, 3/3 grading cells"
        in done.stdout
    )


@pytest.mark.parametrize(
    "patch",
    [
        "import numpy as N\nN.allclose = lambda *a, **k: True\n",
        "from numpy import testing as T\nT.assert_allclose = print\n",
        "vars(np)['allclose'] = lambda *a, **k: True\n",
    ],
    ids=["alias", "from-import", "vars"],
)
def test_submission_patching_numpy_under_another_name_is_flagged(patch):
    tool = _grade_tool()
    pristine = {
        "cells": [
            {"cell_type": "code", "metadata": {"tags": ["answer"]},
             "source": "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"},
        ]
    }  # fmt: skip
    honest = {
        "cells": [{"cell_type": "code", "metadata": {}, "source": "def f(x):\n    return x\n"}]
    }
    assert tool.assemble_submission(honest, pristine)[1] == []
    sub = {
        "cells": [
            {"cell_type": "code", "metadata": {}, "source": patch + "def f(x):\n    return x\n"}
        ]
    }
    flags = tool.assemble_submission(sub, pristine)[1]
    assert any("patching numpy" in f for f in flags), flags


def test_submission_keeps_the_learners_added_helper_cells_but_not_tampering_ones():
    tool = _grade_tool()
    stub = "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    pristine = {
        "cells": [
            {"cell_type": "code", "metadata": {}, "source": "import numpy as np\n"},
            {"cell_type": "code", "metadata": {"tags": ["answer"]}, "source": stub},
            {"cell_type": "code", "metadata": {"tags": ["grade"]}, "source": "check(f)\n"},
        ]
    }  # fmt: skip
    submission = {
        "cells": [
            {"cell_type": "code", "metadata": {}, "source": "import numpy as np\n"},
            {"cell_type": "code", "metadata": {}, "source": "def centre(x):\n    return x - x.mean(0)\n"},
            {"cell_type": "code", "metadata": {}, "source": "tasks.ex01.check = print\n"},
            {"cell_type": "code", "metadata": {}, "source": "def f(x):\n    return centre(x)\n"},
            {"cell_type": "code", "metadata": {"tags": ["grade"]}, "source": "check(f)\n"},
            {"cell_type": "code", "metadata": {}, "source": "print(f(np.ones((2, 3))))\n"},
        ]
    }  # fmt: skip
    nb, flags = tool.assemble_submission(submission, pristine)
    sources = ["".join(c["source"]) for c in nb["cells"]]
    assert sources[1].startswith("def centre") and sources[2].startswith("def f")
    assert sources[3].startswith("print(f(") and sources[4] == "check(f)\n"
    assert not any("tasks.ex01" in s for s in sources)
    assert any("a code cell the learner added" in f for f in flags), flags

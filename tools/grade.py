"""Grade exercise notebooks from a terminal: nbval runs them, this prints the score.

Usage::

    python tools/grade.py                 # every exercise in exercises/ (what `make grade` runs)
    python tools/grade.py ex03            # one exercise (`make grade EX=ex03`)
    python tools/grade.py ex03 --verbose  # also the failing cells' source and nbval's report
    python tools/grade.py --submission path/to/ex03.ipynb [--json out.json]
                                          # an instructor grading a learner's notebook

nbval stays the engine: the notebooks run under ``pytest --nbval-lax`` in a fresh kernel, as in
CI. The grader in each notebook writes every check it records to ``$BN_GRADING_REPORT_DIR``
(see ``bn_core/grading/report.py``); this script reads those records and nbval's JUnit XML
and prints, per exercise and for the course, checks passed / total and grading cells passed /
total, and each failure's grader message alone.

With ``--submission``, the learner's answer cells (the cells that define the exercise's
functions) are moved into a pristine copy of the exercise generated from its solution, so
edited or deleted grading cells do not count; answer cells that touch the grader, the grading
package, ``sys.modules``/``sys.setprofile`` or assign to numpy's functions are flagged.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import exercises as ex_tool  # noqa: E402
from bn_core.grading.core import SAME  # noqa: E402

SUSPICIOUS = [
    (re.compile(r"\bgrader\b"), "uses the grader object"),
    (re.compile(r"\btasks\b|\bGrader\b"), "uses the grading tasks or the Grader"),
    (
        re.compile(r"bn_core\.grading|from\s+bn_core\s+import\s+grading"),
        "imports the grading package",
    ),
    (re.compile(r"\b(np|numpy)(\.\w+)+\s*=(?!=)"), "assigns to a numpy function (patching numpy)"),
    (re.compile(r"setattr\(\s*(np|numpy)\b"), "patches numpy with setattr"),
    (
        re.compile(r"sys\.(modules|setprofile|settrace)|\bsetprofile\b"),
        "touches sys.modules or the profiler",
    ),
    (re.compile(r"\b__builtins__\b|\bimport\s+builtins\b"), "touches builtins"),
    (re.compile(r"\bsignal\.(signal|setitimer|alarm)"), "changes signal handling (the time limit)"),
]


def _code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def _run_nbval(paths: list[Path], workdir: Path) -> tuple[dict, dict]:
    """Run nbval on ``paths``; return ({notebook stem: {cell: failure text or None}}, records)."""
    report = workdir / "junit.xml"
    records_dir = workdir / "records"
    env = dict(os.environ, BN_GRADING_REPORT_DIR=str(records_dir))
    env.setdefault("BN_GRADING_CELL_TIMEOUT", "60")
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
           "--nbval-cell-timeout=75", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
           "-q", "-o", "addopts=", f"--junitxml={report}", *map(str, paths)]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    cells: dict[str, dict[int, str | None]] = {}
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            nb = re.sub(r"\.ipynb$", "", case.get("classname", "")).split(".")[-1]
            match = re.search(r"Cell (\d+)", case.get("name", ""))
            if not match:
                continue
            bad = case.find("failure")
            if bad is None:
                bad = case.find("error")
            text = None if bad is None else (bad.get("message", "") + "\n" + (bad.text or ""))
            if bad is None and case.find("skipped") is not None:
                text = "not run: the kernel stopped in an earlier cell"
            cells.setdefault(nb, {})[int(match.group(1))] = text
    records = {}
    for path in records_dir.glob("*.json") if records_dir.exists() else []:
        records[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    return cells, records


def _short_error(text: str) -> str:
    """The last exception line of an nbval failure report (without the cell's source)."""
    text = re.sub(r"\x1b\[[0-9;]*m|#x1B\[[0-9;]*m", "", text or "")
    timeout = re.search(r"Timeout of (\d+) seconds exceeded", text)
    if timeout or "GRADING STOPPED" in text:
        return (
            "the cell was stopped: it ran longer than the time limit. Does a loop of yours "
            "swallow the time limit with `except BaseException` or a bare `except:`? Catch only "
            "the exceptions you expect."
        )
    if text.startswith("not run:"):
        return text
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Failure|Interrupt|Exit)\b", ln):
            return ln
    return lines[-1] if lines else "failed"


def grade_notebook(nb: dict, stem: str, cells: dict, records: dict) -> dict:
    """One exercise's result as plain data (the JSON of the report)."""
    code = _code_cells(nb)
    grading = [i for i, c in enumerate(code) if "grade" in _tags(c)]
    outcomes = cells.get(stem, {})
    name = stem
    m = re.search(r'Grader\("([^"]+)"', "".join(ex_tool.source(c) for c in code))
    if m:
        name = m.group(1)
    record = records.get(name, {"cells": [], "checks_passed": 0, "checks_total": 0})
    by_title = {c["title"]: c for c in record["cells"]}
    result_cells = []
    for k, i in enumerate(grading):
        src = ex_tool.source(code[i])
        tm = re.search(r'grader\.cell\("([^"]+)"\)', src)
        title = tm.group(1) if tm else f"grading cell {k + 1}"
        rec = by_title.get(title)
        failure = outcomes.get(i, "not run")
        passed = failure is None and rec is not None and rec["passed"]
        if rec is not None:
            bad = [c for c in rec["checks"] if not c["passed"]]
            messages = [
                c["message"]
                if c["message"].startswith(c["name"])
                else f"{c['name']}: {c['message']}"
                for c in bad
                if c["message"] != SAME
            ]
            # The cause first: "not checked, because the call failed (the reason is in the
            # next check)" is only worth reading after that next check.
            after = "the reason is in the next check"
            messages = [t for t in messages if after not in t] + [
                t.replace(after, "the reason is above") for t in messages if after in t
            ]
            same = sum(c["message"] == SAME for c in bad)
            if same:
                messages.append(f"... and {same} more check(s) not checked for a reason above")
        elif failure is None:
            messages = ["no checks were recorded"]
        else:
            messages = [_short_error(failure) if failure != "not run" else "not run"]
        result_cells.append(
            {
                "title": title,
                "cell": i,
                "passed": passed,
                "checks_passed": sum(c["passed"] for c in rec["checks"]) if rec else 0,
                "checks_total": len(rec["checks"]) if rec else 0,
                "failures": messages if not passed else [],
                "nbval_report": failure if isinstance(failure, str) and not passed else "",
            }
        )
    other = [
        {"cell": i, "error": _short_error(outcomes[i]), "nbval_report": outcomes[i]}
        for i, c in enumerate(code)
        if "grade" not in _tags(c) and outcomes.get(i)
    ]
    return {
        "exercise": name,
        "checks_passed": sum(c["checks_passed"] for c in result_cells),
        "checks_total": sum(c["checks_total"] for c in result_cells),
        "cells_passed": sum(c["passed"] for c in result_cells),
        "cells_total": len(result_cells),
        "seed": record.get("seed"),
        "cells": result_cells,
        "other_failures": other,
    }


def print_report(results: list[dict], verbose: bool = False, out=sys.stdout) -> None:
    """The terminal report: per exercise, then the course total."""
    for r in results:
        mark = "✓" if r["cells_passed"] == r["cells_total"] and not r["other_failures"] else "✗"
        print(
            f"{mark} {r['exercise']}: {r['checks_passed']}/{r['checks_total']} checks passed, "
            f"{r['cells_passed']}/{r['cells_total']} grading cells passed",
            file=out,
        )
        for cell in r["cells"]:
            if cell["passed"]:
                continue
            print(f"    ✗ {cell['title']}", file=out)
            for message in cell["failures"]:
                print(f"        {message}", file=out)
            if verbose and cell["nbval_report"]:
                print(_indent(cell["nbval_report"], 10), file=out)
        for o in r["other_failures"]:
            print(f"    ✗ code cell {o['cell']} (not a grading cell): {o['error']}", file=out)
            if verbose:
                print(_indent(o["nbval_report"], 10), file=out)
        for flag in r.get("flags", []):
            print(f"    ! {flag}", file=out)
    if len(results) > 1:
        cp = sum(r["checks_passed"] for r in results)
        ct = sum(r["checks_total"] for r in results)
        gp = sum(r["cells_passed"] for r in results)
        gt = sum(r["cells_total"] for r in results)
        print(
            f"course: {cp}/{ct} checks passed, {gp}/{gt} grading cells passed "
            f"in {len(results)} exercises",
            file=out,
        )
    if not verbose and any(not c["passed"] for r in results for c in r["cells"]):
        print("(VERBOSE=1, or --verbose, also shows each failing cell's source and nbval's report)",
              file=out)  # fmt: skip


def _alias_patterns(text: str) -> list[tuple[re.Pattern, str]]:
    """SUSPICIOUS's numpy patterns for the other names numpy goes by in ``text``.

    ``import numpy as N; N.allclose = ...`` or ``from numpy import testing as t`` patch numpy as
    surely as ``np.allclose = ...``; ``vars(np)[...] =`` and ``np.__dict__`` too.
    """
    names = set(re.findall(r"\bimport\s+numpy(?:\.\w+)*\s+as\s+(\w+)", text))
    for imported in re.findall(r"\bfrom\s+numpy(?:\.\w+)*\s+import\s+([^\n]+)", text):
        for part in imported.strip("()\\ ").split(","):
            words = part.split()
            if words:
                names.add(words[-1])
    names |= {"np", "numpy"}
    alias = "|".join(sorted(map(re.escape, names)))
    return [
        (
            re.compile(rf"\b({alias})(\.\w+)+\s*=(?!=)|setattr\(\s*({alias})\b"),
            "assigns to a numpy function (patching numpy)",
        ),
        (
            re.compile(rf"\bvars\(\s*({alias})\s*\)|\b({alias})\.__dict__"),
            "changes numpy's namespace (patching numpy)",
        ),
    ]


def _indent(text: str, n: int) -> str:
    return "\n".join(" " * n + ln for ln in re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines())


def _defined(text: str) -> set[str]:
    return set(re.findall(r"^def\s+(\w+)\s*\(", text, re.M))


def _suspicious(text: str) -> list[str]:
    return [what for pattern, what in SUSPICIOUS + _alias_patterns(text) if pattern.search(text)]


def assemble_submission(submission: dict, pristine: dict) -> tuple[dict, list[str]]:
    """Move the submission's answer cells into ``pristine``; return it and the flags raised.

    Code cells the learner added (a helper function, an import) are kept too, before the answer
    cell they preceded, so that an answer using them still runs; an added cell that touches the
    grader or numpy is left out and flagged.
    """
    flags = []
    sub_code = _code_cells(submission)
    out = json.loads(json.dumps(pristine))
    chosen: dict[int, int] = {}  # index in out["cells"] -> index in sub_code
    for k, cell in enumerate(out["cells"]):
        if "answer" not in _tags(cell):
            continue
        wanted = _defined(ex_tool.source(cell))
        candidates = [
            j for j, c in enumerate(sub_code) if wanted and wanted <= _defined(ex_tool.source(c))
        ]
        if not candidates:
            flags.append(f"no answer found for {', '.join(sorted(wanted))}: graded as not written")
            continue
        chosen[k] = candidates[-1]
        text = ex_tool.source(sub_code[chosen[k]])
        for what in _suspicious(text):
            flags.append(
                f"the answer cell defining {', '.join(sorted(wanted))} {what}: check it by hand"
            )
        cell["source"] = ex_tool._lines(text)
    known = {ex_tool.source(c).strip() for c in _code_cells(pristine)}
    extras = []
    for j, c in enumerate(sub_code):
        text = ex_tool.source(c)
        if (
            j in chosen.values()
            or "grade" in _tags(c)
            or text.lstrip().startswith("# GRADING CELL")
            or not text.strip()
            or text.strip() in known
        ):
            continue
        problems = _suspicious(text)
        if problems:
            flags.append(f"a code cell the learner added {problems[0]}: left out, check it by hand")
            continue
        extras.append(j)
    cells, placed = [], set()
    last_answer = max(chosen, default=None)
    for k, cell in enumerate(out["cells"]):
        if k in chosen:  # the learner's cells that came before this answer, in their order
            before = [j for j in extras if j not in placed and j < chosen[k]]
            cells.extend(_added_cell(sub_code[j], j) for j in before)
            placed.update(before)
        cells.append(cell)
        if k == last_answer:
            cells.extend(_added_cell(sub_code[j], j) for j in extras if j not in placed)
            placed.update(extras)
    out["cells"] = cells
    pristine_grading = [ex_tool.source(c) for c in _code_cells(pristine) if "grade" in _tags(c)]
    sub_grading = [ex_tool.source(c) for c in sub_code if "grade" in _tags(c)]
    if sub_grading != pristine_grading:
        flags.append(
            "the submission's grading cells were edited, moved or deleted: the original ones "
            "were used"
        )
    return out, flags


def _added_cell(cell: dict, j: int) -> dict:
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": f"learner-added-{j}",
        "metadata": {"tags": ["learner-added"]},
        "outputs": [],
        "source": ex_tool._lines(ex_tool.source(cell)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exercise", nargs="?", default="", help="e.g. ex03 (default: all)")
    parser.add_argument("--verbose", action="store_true", help="show failing cells' source")
    parser.add_argument("--submission", type=Path, help="a learner's notebook to grade")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bn-grade-") as tmp:
        work = Path(tmp)
        flags: dict[str, list[str]] = {}
        if args.submission:
            submission = json.loads(args.submission.read_text(encoding="utf-8"))
            text = "".join(ex_tool.source(c) for c in submission["cells"])
            m = re.search(r'Grader\("(ex\d\d)', text) or re.search(
                r"(ex\d\d)", args.submission.name
            )
            matches = [p for p in ex_tool.solution_paths() if m and p.name.startswith(m.group(1))]
            if len(matches) != 1:
                print(f"cannot tell which exercise {args.submission} is (name it exNN_...)")
                return 2
            solution = matches[0]
            pristine = ex_tool.generate_notebook(ex_tool.load(solution), solution.name)
            nb, flags[solution.stem] = assemble_submission(submission, pristine)
            target = work / solution.name
            target.write_text(ex_tool.dumps(nb), encoding="utf-8")
            paths, notebooks = [target], {solution.stem: nb}
        else:
            paths = sorted(ex_tool.EXERCISES.glob(f"{args.exercise}*.ipynb"))
            paths = [p for p in paths if p.name.startswith("ex")]
            if not paths:
                print(f"no exercise notebook matches {args.exercise!r} in exercises/")
                return 2
            notebooks = {p.stem: ex_tool.load(p) for p in paths}
        cells, records = _run_nbval(paths, work)
        results = []
        for stem, nb in notebooks.items():
            r = grade_notebook(nb, stem, cells, records)
            r["flags"] = flags.get(stem, [])
            if args.submission:
                r["submission"] = str(args.submission)
            results.append(r)
    print_report(results, verbose=args.verbose)
    if args.json:
        data = results[0] if args.submission else {"exercises": results}
        args.json.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", "utf-8")
        print(f"JSON report written to {args.json}")
    complete = all(
        r["cells_passed"] == r["cells_total"] and not r["other_failures"] for r in results
    )
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())

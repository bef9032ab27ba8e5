"""Reporting: the score line a learner sees, and the record `make grade` reads.

When the environment variable ``BN_GRADING_REPORT_DIR`` is set (``tools/grade.py`` sets it
before running nbval), every grading cell that finishes rewrites
``$BN_GRADING_REPORT_DIR/<exercise>.json`` with all checks so far: nbval stays the engine, and
the terminal report counts checks, not pytest's cells.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["as_dict", "save", "summary_text"]


def as_dict(grader: Any) -> dict:
    """The grader's results as plain data (JSON-serializable)."""
    cells = []
    for title, checks in grader.cells.items():
        cells.append(
            {
                "title": title,
                "passed": bool(checks) and all(c.passed for c in checks),
                "checks": [
                    {"name": c.name, "passed": c.passed, "message": c.message} for c in checks
                ],
            }
        )
    return {
        "exercise": grader.exercise,
        "n_cells": grader.n_cells,
        "seed": grader.seed,
        "checks_passed": sum(c.passed for c in grader.checks),
        "checks_total": len(grader.checks),
        "cells": cells,
    }


def summary_text(grader: Any) -> str:
    """The score line and, below it, the grading cells that failed or were not run."""
    checks = grader.checks
    passed = sum(c.passed for c in checks)
    cells = grader.cells
    n_run = len(cells)
    n_ok = sum(bool(c) and all(x.passed for x in c) for c in cells.values())
    total = grader.n_cells or n_run
    lines = [
        f"{grader.exercise}: {passed}/{len(checks)} checks passed in {n_ok}/{total} grading cells."
    ]
    for title, cell_checks in cells.items():
        bad = [c for c in cell_checks if not c.passed]
        if bad:
            names = list(dict.fromkeys(c.name for c in bad))
            shown = ", ".join(names[:3]) + (
                f", and {len(names) - 3} more" if len(names) > 3 else ""
            )
            lines.append(f"  ✗ {title}: {len(bad)} failed ({shown})")
    if grader.n_cells and n_run < grader.n_cells:
        lines.append(f"  {grader.n_cells - n_run} grading cell(s) not run yet.")
    return "\n".join(lines)


def save(grader: Any) -> Path | None:
    """Write the grader's results where ``BN_GRADING_REPORT_DIR`` says (if it is set)."""
    folder = os.environ.get("BN_GRADING_REPORT_DIR")
    if not folder:
        return None
    path = Path(folder) / f"{grader.exercise}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(as_dict(grader), indent=1, ensure_ascii=False), "utf-8")
        tmp.replace(path)
    except OSError:
        return None
    return path

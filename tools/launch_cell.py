"""Give every notebook a first code cell that installs the course package where it is missing.

The Colab launch button opens a notebook on a machine that has never seen this course: there
``import bn_core`` fails and every later cell with it. (Binder installs ``requirements.txt``
itself.) So the first code cell of every chapter, exercise and solution notebook is::

    # Colab (or any Python without the course installed): install it once from the repository.
    try:
        import bn_core  # noqa: F401
    except ImportError:
        source = "git+URL@BRANCH"
        get_ipython().run_line_magic("pip", f"install -q 'bn_core[lab] @ {source}'")

with URL and BRANCH read from ``_config.yml`` (``repository.url``, ``repository.branch``: the
same repository and branch the launch buttons open). Where bn_core is importable (a local
``make lab``, Binder, the test suite) the cell does nothing. ``get_ipython().run_line_magic``
is what IPython turns ``%pip install ...`` into (pip installs into the kernel's own
environment); it is written out so that the cell is plain Python, which
``tools/exercises.py run_in_process`` and ruff can read.

The cell is tagged ``remove-cell``: the HTML page does not show it (a reader of the page runs
nothing, and the install line says nothing about batch normalization), while the notebook a
reader downloads or opens in Colab or Binder keeps it. It is found again by its tag
``launch-install``, so running the tool twice changes nothing.

Usage::

    python tools/launch_cell.py            # insert or update the cell in every notebook
    python tools/launch_cell.py --check    # exit 1 if a notebook's cell is missing or stale
    python tools/launch_cell.py FILE ...   # only these notebooks

Run ``python tools/exercises.py generate`` afterwards only if you edited the solutions alone:
the tool writes the learner notebooks too, with the same cell, so they stay in step.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TAG = "launch-install"
HIDE = "remove-cell"
CELL_ID = "launch-install"
PACKAGE = "bn_core"
EXTRAS = "lab"  # torch, matplotlib, scikit-learn, mnist1d: what the notebooks import
NOTEBOOK_GLOBS = ("chapters/*.ipynb", "exercises/*.ipynb", "exercises/solutions/*.ipynb")


def read_repository(config_path: Path) -> tuple[str, str]:
    """``(url, branch)`` from the ``repository:`` block of a Jupyter Book ``_config.yml``."""
    import yaml  # PyYAML comes with Jupyter Book

    config = yaml.safe_load(Path(config_path).read_text(encoding="utf-8")) or {}
    repo = config.get("repository") or {}
    url = str(repo.get("url") or "").strip()
    branch = str(repo.get("branch") or "main").strip()
    if not re.fullmatch(r"https://[^\s'\"@]+", url):
        raise ValueError(
            f"{config_path}: repository.url must be the https URL of the course's git "
            f"repository (e.g. https://github.com/OWNER/REPO), got {url!r}"
        )
    if not re.fullmatch(r"[\w./-]+", branch):
        raise ValueError(f"{config_path}: repository.branch {branch!r} is not a branch name")
    return url.rstrip("/"), branch


def requirement(url: str, branch: str) -> str:
    """The PEP 508 requirement pip installs: ``bn_core[lab] @ git+URL@BRANCH``."""
    return f"{PACKAGE}[{EXTRAS}] @ git+{url}@{branch}"


def pip_command(url: str, branch: str) -> str:
    """The arguments of the ``%pip`` line magic (quoted: the requirement has spaces)."""
    return f"install -q '{requirement(url, branch)}'"


def cell_source(url: str, branch: str) -> str:
    """The text of the launch cell."""
    # Written so that `ruff format` leaves it as it is (the repository's notebooks are linted).
    return (
        "# Colab (or any Python without the course installed): install it once from the "
        "repository.\n"
        "try:\n"
        f"    import {PACKAGE}  # noqa: F401\n"
        "except ImportError:\n"
        f'    source = "git+{url}@{branch}"\n'
        f'    get_ipython().run_line_magic("pip", f"install -q \'{PACKAGE}[{EXTRAS}] @ {{source}}\'")'
    )


def make_cell(url: str, branch: str) -> dict:
    """The launch cell as an nbformat 4 code cell."""
    lines = cell_source(url, branch).splitlines(keepends=True)
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {"tags": [HIDE, TAG]},
        "outputs": [],
        "source": lines,
    }


def _is_launch_cell(cell: dict) -> bool:
    return cell.get("cell_type") == "code" and TAG in cell.get("metadata", {}).get("tags", [])


def update_notebook(nb: dict, url: str, branch: str) -> bool:
    """Make the launch cell the first code cell of ``nb`` (in place); True if it changed.

    An existing launch cell (found by its tag) is replaced, wherever it is, and any second
    copy removed; the new cell goes just before the first other code cell, so Markdown cells
    above it (title, "this is the solution") stay where they are.
    """
    want = make_cell(url, branch)
    if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) >= (4, 5):
        want = {"id": CELL_ID, **want}  # nbformat 4.5 cells carry a unique id
    before = json.dumps(nb["cells"], sort_keys=True)
    cells = [c for c in nb["cells"] if not _is_launch_cell(c)]
    first_code = next((i for i, c in enumerate(cells) if c["cell_type"] == "code"), len(cells))
    cells.insert(first_code, want)
    nb["cells"] = cells
    return json.dumps(nb["cells"], sort_keys=True) != before


def problem(nb: dict, url: str, branch: str) -> str | None:
    """Why ``nb`` fails ``--check`` (None if its first code cell is the current launch cell)."""
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    launch = [c for c in code if _is_launch_cell(c)]
    if not launch:
        return "no launch cell"
    if len(launch) > 1:
        return f"{len(launch)} launch cells"
    if code[0] is not launch[0]:
        return "the launch cell is not the first code cell"
    want = make_cell(url, branch)
    cell = launch[0]
    if "".join(cell["source"]) != "".join(want["source"]):
        return "stale launch cell (repository or branch changed; re-run tools/launch_cell.py)"
    if HIDE not in cell["metadata"].get("tags", []):
        return f"the launch cell lost its {HIDE!r} tag"
    return None


def notebook_paths(root: Path = ROOT) -> list[Path]:
    """Every chapter, learner exercise and solution notebook under ``root``."""
    return sorted(p for pattern in NOTEBOOK_GLOBS for p in root.glob(pattern))


def _dumps(nb: dict) -> str:
    # the format the repository's notebooks are stored in (tools/exercises.py writes the same)
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook")
    parser.add_argument("--check", action="store_true", help="report, do not write; exit 1")
    parser.add_argument("--root", type=Path, default=ROOT, help="the book's folder")
    args = parser.parse_args(argv)
    url, branch = read_repository(args.root / "_config.yml")
    paths = args.notebooks or notebook_paths(args.root)
    if not paths:
        print(f"no notebooks found under {args.root}", file=sys.stderr)
        return 1
    bad = []
    for path in paths:
        nb = json.loads(path.read_text(encoding="utf-8"))
        if args.check:
            why = problem(nb, url, branch)
            if why:
                bad.append(f"{path}: {why}")
        elif update_notebook(nb, url, branch):
            path.write_text(_dumps(nb), encoding="utf-8")
            print(f"updated {path}")
    if bad:
        print("\n".join(bad), file=sys.stderr)
        print("fix: python tools/launch_cell.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

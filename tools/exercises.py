"""Generate the learner notebooks from the solution notebooks, and check them.

The solution notebooks in ``exercises/solutions/`` are the single source. Each learner
notebook ``exercises/<name>.ipynb`` is generated from ``exercises/solutions/<name>.ipynb``:

- in code cells, every block between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's
  markers) is replaced by ``# YOUR CODE HERE`` and ``raise NotImplementedError()``, at the
  indentation of the ``### BEGIN SOLUTION`` line;
- cells tagged ``solution-only`` are dropped (e.g. "this is the solution, try the exercise first");
- cells tagged ``learner-only`` are kept without their ``remove-cell`` tag (in the source they
  carry ``remove-cell`` so the book's solution page does not show them; e.g. the link to the
  solution);
- relative Markdown links (``[text](path)``) are written relative to the solution notebook and
  rebased to the learner notebook's folder, so they point to the same file in both versions;
- outputs and execution counts are removed.

Usage::

    python tools/exercises.py generate        # rewrite exercises/ex*.ipynb
    python tools/exercises.py check           # exit 1 if a learner notebook is stale or missing
    python tools/exercises.py run ex03        # execute a solution in-process, print its grades
    python tools/exercises.py time [ex03]     # time grading each solution (or one) under nbval
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import posixpath
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "exercises"
SOLUTIONS = EXERCISES / "solutions"

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
SOLUTION_ONLY = "solution-only"
LEARNER_ONLY = "learner-only"
LINK = re.compile(r"\]\((?!https?:|mailto:|#|/)([^)\s]+)\)")


def solution_paths() -> list[Path]:
    """The solution notebooks, sorted by name."""
    return sorted(SOLUTIONS.glob("ex*.ipynb"))


def learner_path(solution: Path) -> Path:
    """Where the learner notebook generated from ``solution`` lives."""
    return EXERCISES / solution.name


def load(path: Path) -> dict:
    """Read a notebook as a plain dict (nbformat 4, ``source`` as a list of lines)."""
    return json.loads(path.read_text(encoding="utf-8"))


def dumps(nb: dict) -> str:
    """Serialize like ``tools/strip_outputs.py`` (indent 1, UTF-8 kept, final newline)."""
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def source(cell: dict) -> str:
    """A cell's source as one string."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _lines(text: str) -> list[str]:
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def stub_code(text: str, where: str = "cell") -> str:
    """Replace each solution block of ``text`` by the learner's stub.

    Raises
    ------
    ValueError
        If the markers are unbalanced or nested.
    """
    out: list[str] = []
    inside = False
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"{where}: nested {BEGIN}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in STUB)
        elif stripped == END:
            if not inside:
                raise ValueError(f"{where}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: {BEGIN} without {END}")
    return "\n".join(out)


def rebase_links(text: str, src_dir: str, dst_dir: str) -> str:
    """Rewrite relative Markdown link targets written from ``src_dir`` to be read from ``dst_dir``.

    Examples
    --------
    >>> rebase_links("[c](../../chapters/a.ipynb)", "exercises/solutions", "exercises")
    '[c](../chapters/a.ipynb)'
    >>> rebase_links("[s](ex01.ipynb)", "exercises/solutions", "exercises")
    '[s](solutions/ex01.ipynb)'
    """

    def fix(match: re.Match) -> str:
        target = match.group(1)
        path, sep, anchor = target.partition("#")
        absolute = posixpath.normpath(posixpath.join(src_dir, path))
        return f"]({posixpath.relpath(absolute, dst_dir)}{sep}{anchor})"

    return LINK.sub(fix, text)


def generate_notebook(solution_nb: dict, name: str = "notebook") -> dict:
    """Return the learner notebook generated from ``solution_nb`` (which is not modified)."""
    nb = copy.deepcopy(solution_nb)
    src_dir = posixpath.relpath(SOLUTIONS.as_posix(), ROOT.as_posix())
    dst_dir = posixpath.relpath(EXERCISES.as_posix(), ROOT.as_posix())
    cells = []
    for i, cell in enumerate(nb["cells"]):
        tags = list(cell.get("metadata", {}).get("tags", []))
        if SOLUTION_ONLY in tags:
            continue
        if LEARNER_ONLY in tags:
            tags = [t for t in tags if t not in ("remove-cell", "remove_cell")]
            cell["metadata"]["tags"] = tags
        text = source(cell)
        if cell["cell_type"] == "code":
            if BEGIN in text or END in text:
                cell["source"] = _lines(stub_code(text, f"{name} cell {i}"))
            cell["outputs"] = []
            cell["execution_count"] = None
            if BEGIN not in text and not ({"grade", "answer"} & set(tags)):
                # e.g. a leading "install the course" cell: copied as it is.
                cells.append(cell)
                continue
        else:
            if BEGIN in text:
                raise ValueError(f"{name} cell {i}: solution markers belong in code cells")
            text = rebase_links(text, src_dir, dst_dir)
            # The solution's title says "Solution N"; the learner's says "Exercise N", so the
            # two read differently in the book's sidebar.
            text = re.sub(r"^# Solution (\d+)", r"# Exercise \1", text, count=1)
            cell["source"] = _lines(text)
        for key in ("execution", "collapsed", "scrolled"):
            cell.get("metadata", {}).pop(key, None)
        cells.append(cell)
    nb["cells"] = cells
    return nb


def expected_learner_text(solution: Path) -> str:
    """The exact text the learner notebook for ``solution`` must have."""
    return dumps(generate_notebook(load(solution), solution.name))


def generate() -> list[Path]:
    """Write every learner notebook; return the ones that changed."""
    changed = []
    for solution in solution_paths():
        target = learner_path(solution)
        text = expected_learner_text(solution)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            changed.append(target)
    return changed


def stale() -> list[str]:
    """Problems with the committed learner notebooks (empty when all are up to date)."""
    problems = []
    names = {p.name for p in solution_paths()}
    for solution in solution_paths():
        target = learner_path(solution)
        if not target.exists():
            problems.append(f"missing: {target.relative_to(ROOT)}")
        elif target.read_text(encoding="utf-8") != expected_learner_text(solution):
            problems.append(f"stale: {target.relative_to(ROOT)}")
    for target in sorted(EXERCISES.glob("ex*.ipynb")):
        if target.name not in names:
            problems.append(f"no solution notebook for {target.relative_to(ROOT)}")
    return problems


# -- executing a notebook in-process (fast; used by the tests' mutant catalogue) -----------------
@dataclass
class CellResult:
    """What one code cell did when run by :func:`run_in_process`."""

    index: int
    tags: list[str]
    error: str | None = None  # "ExceptionName: message", None if it ran cleanly
    stdout: str = ""


@dataclass
class RunResult:
    """All code cells of one in-process run, with helpers to read the graded ones."""

    cells: list[CellResult] = field(default_factory=list)

    @property
    def graded(self) -> list[CellResult]:
        return [c for c in self.cells if "grade" in c.tags]

    @property
    def failures(self) -> list[str]:
        """The error messages of the graded cells that failed."""
        return [c.error for c in self.graded if c.error]


def _run_cells(nb: dict, skip_tags: tuple[str, ...], cwd: Path | None, emit, started=None) -> None:
    """Execute the code cells of ``nb`` in a fresh namespace; ``emit`` each CellResult.

    ``started(i)``, if given, is called before cell ``i`` runs (the runner's limit starts then).
    """
    import contextlib
    import io

    import matplotlib

    matplotlib.use("Agg")
    namespace: dict = {"__name__": "__main__"}
    old_cwd = Path.cwd()
    os.chdir(cwd or SOLUTIONS)
    try:
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] != "code":
                continue
            tags = cell.get("metadata", {}).get("tags", [])
            if any(t in tags for t in skip_tags):
                continue
            if started is not None:
                started(i)
            out = io.StringIO()
            record = CellResult(i, list(tags))
            try:
                code = compile(source(cell), f"<cell {i}>", "exec")
                with contextlib.redirect_stdout(out):
                    exec(code, namespace)
            except Exception as exc:
                record.error = f"{type(exc).__name__}: {exc}"
            record.stdout = out.getvalue()
            emit(record)
    finally:
        os.chdir(old_cwd)


def run_in_process(
    nb: dict,
    skip_tags: tuple[str, ...] = ("benchmark",),
    cwd: Path | None = None,
    cell_timeout: float = 60.0,
) -> RunResult:
    """Execute the code cells of ``nb`` in a fresh namespace, in a forked copy of this process.

    Much faster than a kernel (torch is imported once, before the fork), and the cells really
    run. Cells may not use IPython syntax (magics); the exercise notebooks do not. Cells tagged
    with one of ``skip_tags`` (timings) are skipped. Every cell runs even if an earlier one
    failed, as under nbval.

    The runner has its own limit: a cell that runs longer than ``cell_timeout`` seconds (e.g. a
    learner's loop that swallows every exception, ``except BaseException``) ends the child
    process; that cell is reported as failed with ``CellTimeout`` and the rest as not run.
    Without ``os.fork`` (Windows) the cells run in this process, without that limit.
    """
    result = RunResult()
    if not hasattr(os, "fork"):  # pragma: no cover
        _run_cells(nb, skip_tags, cwd, result.cells.append)
        return result
    import pickle
    import select
    import signal
    import time

    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: run, send each cell's result, and leave without cleanup
        code = 0
        try:
            os.close(read_fd)
            writer = os.fdopen(write_fd, "wb")

            def send(message) -> None:
                data = pickle.dumps(message)
                writer.write(len(data).to_bytes(8, "big") + data)
                writer.flush()

            def emit(record: CellResult) -> None:
                send(record)

            try:
                _run_cells(nb, skip_tags, cwd, emit, started=lambda i: send(("start", i)))
            except BaseException as exc:  # noqa: BLE001 - reported, never raised in the child
                emit(CellResult(-1, ["runner"], f"RunnerError: {type(exc).__name__}: {exc}"))
            writer.close()
        except BaseException:  # noqa: BLE001 - the child must never return into pytest
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    code_cells = [
        (i, c.get("metadata", {}).get("tags", []))
        for i, c in enumerate(nb["cells"])
        if c["cell_type"] == "code"
        and not any(t in c.get("metadata", {}).get("tags", []) for t in skip_tags)
    ]
    buffer = b""
    # Until the first cell starts (imports, fork) a generous limit; then cell_timeout per cell,
    # counted from the moment the child says the cell started.
    deadline = time.monotonic() + max(cell_timeout, 120.0)
    try:
        while True:
            wait = deadline - time.monotonic()
            ready = select.select([read_fd], [], [], max(wait, 0))[0] if wait > 0 else []
            if not ready:
                os.kill(pid, signal.SIGKILL)
                done = {c.index for c in result.cells}
                pending = [(i, t) for i, t in code_cells if i not in done]
                if pending:
                    i, tags = pending[0]
                    result.cells.append(
                        CellResult(
                            i,
                            list(tags),
                            f"CellTimeout: the cell ran longer than {cell_timeout:g} s and was "
                            "stopped (does a loop swallow the time limit with `except "
                            "BaseException`?)",
                        )
                    )
                    for i, tags in pending[1:]:
                        result.cells.append(
                            CellResult(i, list(tags), "NotRun: an earlier cell hung")
                        )
                break
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                break
            buffer += chunk
            while len(buffer) >= 8 and len(buffer) >= 8 + int.from_bytes(buffer[:8], "big"):
                size = int.from_bytes(buffer[:8], "big")
                message = pickle.loads(buffer[8 : 8 + size])
                buffer = buffer[8 + size :]
                if isinstance(message, tuple):  # ("start", cell index)
                    deadline = time.monotonic() + cell_timeout
                else:
                    result.cells.append(message)
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)
    return result


def time_grading(target: float = 10.0, exercise: str | None = None) -> int:
    """Grade each solution (or only ``exercise``, e.g. "ex08") as `make grade` does, in a fresh
    process, and print the wall time.

    A measurement, not a test: the time depends on the machine and on what else it is doing.
    """
    import subprocess
    import time

    print(
        f"{'exercise':32} {'seconds':>8}   (target: under {target:.0f} s each, kernel start included)"
    )
    for path in [p for p in solution_paths() if p.name.startswith(exercise or "")]:
        cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-q",
               "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-o", "addopts=", str(path)]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        status = "" if done.returncode == 0 else "  (FAILED)"
        print(f"{path.stem:32} {seconds:8.1f}{status}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("generate", help="rewrite the learner notebooks from the solutions")
    sub.add_parser("check", help="exit 1 if a learner notebook differs from what generate writes")
    run = sub.add_parser("run", help="execute a notebook in-process and print its grading output")
    run.add_argument("exercise", help="e.g. ex03")
    run.add_argument("--learner", action="store_true", help="run the learner version")
    timing = sub.add_parser(
        "time", help="time `make grade` on each solution (target: under 10 s each)"
    )
    timing.add_argument("exercise", nargs="?", help="only this one, e.g. ex08")
    args = parser.parse_args(argv)
    if args.command == "time":
        return time_grading(exercise=args.exercise)
    if args.command == "generate":
        for path in generate():
            print(f"wrote {path.relative_to(ROOT)}")
        return 0
    if args.command == "check":
        problems = stale()
        for p in problems:
            print(p)
        if problems:
            print("Run `make students` (python tools/exercises.py generate) and commit the result.")
        return 1 if problems else 0
    (solution,) = [p for p in solution_paths() if p.name.startswith(args.exercise)]
    nb = load(solution)
    if args.learner:
        nb = generate_notebook(nb, solution.name)
    res = run_in_process(nb, skip_tags=())
    for cell in res.cells:
        sys.stdout.write(cell.stdout)
        if cell.error:
            print(f"[cell {cell.index} failed] {cell.error}")
    return 1 if res.failures else 0


if __name__ == "__main__":
    sys.exit(main())

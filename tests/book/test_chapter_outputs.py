"""The chapters' checked results, compared in the executed book.

``make test`` builds the book from scratch (``jupyter-book build --all``), which executes every
chapter top to bottom in a fresh kernel and fails on any error. This module then does what
``pytest --nbval-lax`` would do for the chapters -- compare the printed output of every cell
marked ``# NBVAL_CHECK_OUTPUT`` with the output stored in the repository -- on the executed
notebooks the build left in ``_build/jupyter_execute``, so that no chapter is executed twice.
(``pytest --nbval-lax --nbval-current-env chapters/NN_name.ipynb`` still checks one chapter on
its own.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXECUTED = ROOT / "_build" / "jupyter_execute"
MARK = "# NBVAL_CHECK_OUTPUT"
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))


def _text(outputs: list[dict]) -> list[str]:
    """The text nbval compares: streams and text/plain results, in order (images are not).

    Consecutive chunks of one stream are joined, as nbval does: how a kernel splits a cell's
    stdout into messages varies from run to run.
    """
    texts = []
    last_stream = None
    for out in outputs:
        if out.get("output_type") == "stream":
            text = "".join(out["text"]) if isinstance(out["text"], list) else out["text"]
            if last_stream == out["name"]:
                texts[-1] += text
            else:
                texts.append(f"{out['name']}: {text}")
            last_stream = out["name"]
            continue
        last_stream = None
        if out.get("output_type") in ("execute_result", "display_data"):
            plain = out.get("data", {}).get("text/plain")
            if plain is not None:
                texts.append("".join(plain))
        elif out.get("output_type") == "error":
            texts.append(f"error: {out.get('ename')}: {out.get('evalue')}")
    return texts


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def test_every_chapter_has_checked_cells():
    assert CHAPTERS, "no chapter notebooks found"
    for path in CHAPTERS:
        nb = json.loads(path.read_text(encoding="utf-8"))
        checked = [c for c in nb["cells"] if c["cell_type"] == "code" and MARK in _source(c)]
        assert checked, f"{path.name} has no '{MARK}' cell: mark 1-3 cells with key results"


def mismatches(stored: list[dict], executed: list[dict], name: str) -> tuple[int, list[str]]:
    """Compare the checked cells of a stored notebook with its executed copy.

    Returns the number of checked cells and a message for each one that is missing from the
    executed copy, has another source there (a stale build) or printed something else.
    """
    ran = {c.get("id"): c for c in executed}
    checked, problems = 0, []
    for cell in stored:
        if cell["cell_type"] != "code" or MARK not in _source(cell):
            continue
        checked += 1
        twin = ran.get(cell.get("id"))
        if twin is None or _source(twin) != _source(cell):
            problems.append(
                f"{name}: cell {cell.get('id')} differs from the executed book's copy; the "
                "build is stale (rebuild with --all)"
            )
        elif _text(twin.get("outputs", [])) != _text(cell.get("outputs", [])):
            problems.append(
                f"{name}, cell {cell.get('id')}: the executed output differs from the stored "
                f"one.\n--- stored ---\n{''.join(_text(cell.get('outputs', [])))}\n"
                f"--- executed ---\n{''.join(_text(twin.get('outputs', [])))}"
            )
    return checked, problems


def _cell(cid: str, source: str, text: str | None) -> dict:
    outputs = [] if text is None else [{"output_type": "stream", "name": "stdout", "text": text}]
    return {"cell_type": "code", "id": cid, "source": source, "outputs": outputs}


def test_stream_chunks_are_joined_as_nbval_does():
    one = [{"output_type": "stream", "name": "stdout", "text": "a\nb\n"}]
    two = [
        {"output_type": "stream", "name": "stdout", "text": "a\n"},
        {"output_type": "stream", "name": "stdout", "text": ["b\n"]},
    ]
    assert _text(one) == _text(two) == ["stdout: a\nb\n"]
    err = [two[0], {"output_type": "stream", "name": "stderr", "text": "w\n"}, two[1]]
    assert _text(err) == ["stdout: a\n", "stderr: w\n", "stdout: b\n"]


def test_mismatches_finds_changed_missing_and_stale_cells():
    stored = [_cell("a", MARK + "\nprint(1)", "1\n"), _cell("b", "print(2)", None)]
    assert mismatches(stored, [_cell("a", MARK + "\nprint(1)", "1\n")], "nb") == (1, [])
    for executed, words in [
        ([_cell("a", MARK + "\nprint(1)", "2\n")], "printed"),
        ([], "stale"),
        ([_cell("a", MARK + "\nprint(3)", "1\n")], "stale"),
    ]:
        checked, problems = mismatches(stored, executed, "nb")
        assert checked == 1 and len(problems) == 1, (executed, problems)
        assert ("differs from the stored" in problems[0]) == (words == "printed")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_checked_outputs_match_the_executed_book(path: Path):
    executed = EXECUTED / "chapters" / path.name
    if not executed.exists():
        pytest.fail(
            f"{executed.relative_to(ROOT)} is missing: build the book first "
            "(jupyter-book build . -W -n --keep-going --all, as `make test` does)"
        )
    stored = json.loads(path.read_text(encoding="utf-8"))["cells"]
    ran = json.loads(executed.read_text(encoding="utf-8"))["cells"]
    checked, problems = mismatches(stored, ran, path.name)
    assert checked > 0, f"{path.name} has no '{MARK}' cell"
    assert not problems, "\n\n".join(problems)

"""Repository conventions a maintainer relies on."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import strip_outputs  # noqa: E402


def tracked_notebooks() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every notebook
        return sorted(p for p in ROOT.rglob("*.ipynb") if ".venv" not in p.parts)
    return [ROOT / p for p in out]


@pytest.mark.parametrize("path", tracked_notebooks(), ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_is_stored_without_outputs(path):
    """Only cells marked NBVAL_CHECK_OUTPUT keep (text) outputs; strip with tools/strip_outputs.py."""
    text = path.read_text(encoding="utf-8")
    assert strip_outputs.dumps(strip_outputs.strip(json.loads(text))) == text, (
        f"{path.relative_to(ROOT)} carries outputs or run metadata: "
        f"run `python tools/strip_outputs.py {path.relative_to(ROOT)}`"
    )


def test_strip_outputs_keeps_only_marked_text_outputs():
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "source": ["x = 1\n", "x"],
                "execution_count": 3,
                "metadata": {"execution": {"t": 1}},
                "outputs": [{"output_type": "execute_result", "data": {"text/plain": "1"}}],
            },
            {
                "cell_type": "code",
                "source": ["# NBVAL_CHECK_OUTPUT\n", "print(2)"],
                "execution_count": 4,
                "metadata": {},
                "outputs": [
                    {"output_type": "stream", "name": "stdout", "text": "2\n"},
                    {"output_type": "display_data", "data": {"image/png": "..."}},
                ],
            },
        ]
    }
    out = strip_outputs.strip(nb)
    assert out["cells"][0]["outputs"] == [] and out["cells"][0]["execution_count"] is None
    assert out["cells"][0]["metadata"] == {}
    assert out["cells"][1]["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": "2\n"}
    ]

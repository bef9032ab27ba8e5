"""Strip outputs from notebooks, keeping the cells nbval is told to compare.

Notebooks are stored without outputs, except code cells whose source contains
``# NBVAL_CHECK_OUTPUT``: nbval compares their stored text output with a fresh run.

Usage::

    python tools/strip_outputs.py NOTEBOOK.ipynb [...]    # rewrite in place
    python tools/strip_outputs.py --check NOTEBOOK.ipynb   # exit 1 if any would change
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MARKER = "NBVAL_CHECK_OUTPUT"
# Metadata that changes on every run and carries no meaning for a reader.
VOLATILE_METADATA = ("execution", "collapsed", "scrolled")


def strip(nb: dict) -> dict:
    """Return ``nb`` with outputs removed from every code cell not marked for nbval.

    A marked cell keeps its text outputs and gets a stable execution count (its position among
    the code cells): nbval refuses a reference cell with outputs but no execution count, and a
    count from an actual run would change the file on every run.
    """
    n_code = 0
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
            continue
        n_code += 1
        source = "".join(cell.get("source", []))
        if MARKER in source:
            # Keep text only: images and memory addresses change from run to run.
            cell["outputs"] = [o for o in cell.get("outputs", []) if _is_text(o)]
            cell["execution_count"] = n_code
            for o in cell["outputs"]:
                if o.get("output_type") == "execute_result":
                    o["execution_count"] = n_code
        else:
            cell["outputs"] = []
            cell["execution_count"] = None
        for key in VOLATILE_METADATA:
            cell.get("metadata", {}).pop(key, None)
    return nb


def _is_text(output: dict) -> bool:
    if output.get("output_type") == "stream":
        return output.get("name") == "stdout"
    data = output.get("data", {})
    return output.get("output_type") == "execute_result" and set(data) == {"text/plain"}


def dumps(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="report, do not rewrite")
    args = parser.parse_args(argv)
    dirty = []
    for path in args.notebooks:
        text = path.read_text(encoding="utf-8")
        new = dumps(strip(json.loads(text)))
        if new != text:
            dirty.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    verb = "would strip" if args.check else "stripped"
    for path in dirty:
        print(f"{verb}: {path}")
    return 1 if (args.check and dirty) else 0


if __name__ == "__main__":
    sys.exit(main())

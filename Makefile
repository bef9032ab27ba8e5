# The course's commands. `make book` and `make test` are the two a newcomer needs;
# both create the environment (.venv) on first use.
.DEFAULT_GOAL := help
SHELL := bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Two workers for nbval; `make test JOBS=1` to run serially.
JOBS ?= 2

.PHONY: help env book book-clean test test-deps lint format grade grade-submission students bench lab clean

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; run e.g. make PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	@# jupyter-events pulls in rfc3987-syntax (jsonschema's optional IRI format check, which nothing
	@# here uses); importing it builds a grammar, ~2.5 s in every kernel and pytest run that loads
	@# nbformat. jsonschema works without it.
	$(BIN)/python -m pip uninstall -y -q rfc3987-syntax
	@touch $(STAMP)

env: $(STAMP)  ## create .venv with everything the course needs

book: $(STAMP)  ## build the HTML book (executes changed notebooks) and open it
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "The book is at file://$(CURDIR)/_build/html/index.html"
	@if [ -z "$$CI" ]; then \
	  if [ "$$(uname)" = Darwin ]; then open _build/html/index.html; \
	  elif [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ] && command -v xdg-open >/dev/null; then xdg-open _build/html/index.html >/dev/null 2>&1 & \
	  fi; fi

book-clean: $(STAMP)  ## rebuild every page from scratch (what CI does)
	$(BIN)/jupyter-book build . -W -n --keep-going --all

test: test-deps $(STAMP) lint  ## run every test: library, chapters, exercises and graders, book in a browser
	$(BIN)/python -m pytest -n $(JOBS) --dist loadscope tests exercises/solutions \
	  --nbval-lax --nbval-current-env -p no:cacheprovider --ignore=tests/browser --ignore=tests/book
	$(MAKE) --no-print-directory book-clean
	$(BIN)/python -m pytest tests/book tests/browser -p no:cacheprovider

# First of all, say which system packages the browser suite needs and install what is
# missing (Chromium, and the fonts of tests/browser/fontsets.py): nothing if all are there.
test-deps:  ## install the system packages the browser tests need (says what, first)
	bash tools/ensure_test_deps.sh

lint: $(STAMP)  ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

grade: $(STAMP)  ## grade your exercises: all, or one with EX=ex03 (VERBOSE=1 shows cell sources)
	$(BIN)/python tools/grade.py $(EX) $(if $(VERBOSE),--verbose)

grade-submission: $(STAMP)  ## grade a learner's notebook: FILE=path/to/ex03.ipynb [JSON=out.json]
	$(BIN)/python tools/grade.py --submission "$(FILE)" --json "$(or $(JSON),grade-$(basename $(notdir $(FILE))).json)"

students: $(STAMP)  ## regenerate the learner notebooks exercises/ex*.ipynb from exercises/solutions/
	$(BIN)/python tools/exercises.py generate

bench: $(STAMP)  ## time bn_core against torch and print the ratios
	$(BIN)/python -m bn_core.bench

lab: $(STAMP)  ## open the notebooks in Jupyter Lab
	$(BIN)/jupyter lab

clean:  ## remove the built book and caches (keeps .venv)
	rm -rf _build .pytest_cache .ruff_cache .hypothesis

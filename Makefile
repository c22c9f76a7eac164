# Beyond BERT — two set-up-and-go commands (see README.md):
#   make book   build the executed book into _build/html
#   make test   build the book strictly and run the whole test suite
# Each creates .venv from the pinned requirements.lock when it is missing or out of date.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_PROGRESS_BARS := 1
export TRANSFORMERS_VERBOSITY := error
export TOKENIZERS_PARALLELISM := false
export PYTHONHASHSEED := 0
export PATH := $(CURDIR)/$(BIN):$(PATH)

JB_STRICT := --all -W -n --keep-going
# The pages execute two at a time (scripts/execute_pages.py, one process per page, into Jupyter
# Book's execution cache), each on one thread; jupyter-book then reads them from the cache.
BOOK_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 BEYONDBERT_TORCH_THREADS=1
EXECUTE_PAGES := $(BOOK_ENV) $(BIN)/python scripts/execute_pages.py

.PHONY: book book-fast test publish hub-proxy lint exercises install-cells benchmark lessons setup system-deps clean

setup: $(STAMP)

$(STAMP): requirements.lock requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing the pinned course environment into $(VENV) (a few minutes the first time)..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock -r requirements-dev.txt 2>&1 | grep -v "is ignored: it is neither" || true
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 | grep -v "is ignored: it is neither" || true
	@$(BIN)/python -m pip check
	@touch $(STAMP)

## The Debian packages the tests need (Chromium for the browser test, bubblewrap for grading).
system-deps:
	@bash scripts/install-system-deps.sh

## The main job: the executed book under _build/html (clean build, every chapter executed,
## two pages at a time).
book: $(STAMP)
	rm -rf _build/.jupyter_cache _build/results _build/cache
	$(EXECUTE_PAGES)
	$(BOOK_ENV) $(BIN)/jupyter-book build . --all --keep-going

## Fast rebuild: reuses the execution cache, re-executes only notebooks that changed.
book-fast: $(STAMP)
	$(EXECUTE_PAGES)
	$(BOOK_ENV) $(BIN)/jupyter-book build .

## Everything CI checks: strict book build (a failing notebook fails), then the test suite
## (library, grading, browser) on 2 workers, and nbval on every solution notebook (one kernel per
## notebook, so not split over workers).
test: $(STAMP) system-deps hub-proxy axe lint
	rm -rf _build/.jupyter_cache _build/results _build/cache
	$(EXECUTE_PAGES)
	$(BOOK_ENV) $(BIN)/jupyter-book build . $(JB_STRICT)
	$(BIN)/python -m pytest -n 2 --dist loadgroup
	$(BIN)/python -m pytest --nbval --nbval-current-env solutions

## Publish the built book (make book first) to the gh-pages branch of origin with ghp-import
## (PUBLISH_REMOTE, PUBLISH_BRANCH override); GitHub Pages serves that branch.
publish:
	bash scripts/publish.sh

## JupyterHub's proxy for the hub tests: configurable-http-proxy, pinned by the committed npm lock.
HUB_PROXY := deploy/jupyterhub/node_modules/.bin/configurable-http-proxy
hub-proxy: $(HUB_PROXY)

$(HUB_PROXY): deploy/jupyterhub/package-lock.json
	npm ci --prefix deploy/jupyterhub --no-audit --no-fund --loglevel=error
	@touch $(HUB_PROXY)

## axe-core for the browser test's accessibility check, pinned by the committed npm lock.
AXE := tests/axe/node_modules/axe-core/axe.min.js
axe: $(AXE)

$(AXE): tests/axe/package-lock.json
	npm ci --prefix tests/axe --no-audit --no-fund --loglevel=error
	@touch $(AXE)

## The linter (pinned in requirements-dev.txt; rules in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .

## Write the launch install cell (repository from _config.yml) into every chapter and exercise.
install-cells: $(STAMP)
	$(BIN)/python -m beyondbert.launch
	$(BIN)/beyondbert generate

## Regenerate the student notebooks exercises/*.ipynb from solutions/ (nbgrader).
exercises: $(STAMP)
	$(BIN)/beyondbert generate

## Every page's lessons re-checked on seeds 1, 2 and 3 (not part of `make test`: about 3 book
## builds of time); prints the table and writes _build/lessons.md. PAGES=... limits the pages.
lessons: $(STAMP)
	$(BIN)/python scripts/lessons.py $(PAGES)

## Speed and accuracy figures (not pass/fail).
benchmark: $(STAMP)
	$(BIN)/python benchmarks/bert_vs_transformers.py
	$(BIN)/python benchmarks/grading_throughput.py
	$(BIN)/python benchmarks/quantization.py

clean:
	rm -rf _build

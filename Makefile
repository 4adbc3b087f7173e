# Deskpilot's one task runner. `make help` lists the targets.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The task pane (taskpane/) builds into the Python package, which serves it at /taskpane/ (and the
# compliance dashboard, a second entry of the same project, at /dashboard/).
PANE     := server/static/taskpane/index.html
PANE_SRC := taskpane/index.html taskpane/dashboard.html taskpane/vite.config.ts taskpane/tsconfig.json \
            $(shell find taskpane/src taskpane/scripts -type f ! -name '*.gen.ts' 2>/dev/null)
NODE_MODULES := taskpane/node_modules/.package-lock.json
# The task pane's end-to-end tests drive Debian's Chromium, never a downloaded browser.
CHROMIUM ?= /usr/bin/chromium
# llama-cpp-python compiles llama.cpp on first install: use every core.
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)

.DEFAULT_GOAL := help
.PHONY: help run test test-quick bench setup clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

run: setup ## Set up, then start the server (task pane + embedded model) on https://localhost:8765
	$(BIN)/deskpilot serve

test: setup $(CHROMIUM) ## Set up, then run the whole test suite (checks, Python, the pane's vitest, Chromium end to end)
	DESKPILOT_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest

# The quick tier, for your own loop: unit and integration tests and the checks; no child processes
# killed, no real model, no browser, none of the half-minute `slow` ones (the full sync under faults and
# the whole-API fuzz; the full suite runs them); on two workers (pytest-xdist): under 2 minutes on 2 cores.
QUICK := (unit or integration) and not (process or model or e2e or gpu or slow)
test-quick: setup ## The quick tier: unit and integration tests (no model, no processes, no browser)
	$(BIN)/python -m pytest -m "$(QUICK)" -q -n 2

bench: setup ## Run the benchmarks under bench/ (on an otherwise idle machine)
	$(BIN)/python bench/bench_summarize.py
	$(BIN)/python bench/bench_index.py
	$(BIN)/python bench/bench_extract.py
	$(BIN)/python bench/bench_actions.py
	$(BIN)/python bench/bench_load.py
	$(BIN)/python bench/bench_token.py
	$(BIN)/python bench/bench_models.py
	$(BIN)/python bench/bench_pii.py
	$(BIN)/python bench/bench_faithful.py
	$(BIN)/python bench/bench_metrics.py
	$(BIN)/python bench/bench_erase.py
	$(BIN)/python bench/bench_dashboard.py
	$(BIN)/python bench/bench_fuzz.py
	$(BIN)/python bench/bench_threads.py
	$(BIN)/python bench/bench_sync.py

setup: $(STAMP) $(PANE) ## Create .venv, install Deskpilot with its test tools, build the task pane

$(STAMP): pyproject.toml setup.py
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Deskpilot needs Python 3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(NODE_MODULES): taskpane/package-lock.json
	cd taskpane && npm ci --no-audit --no-fund
	touch $@

# The build generates the pane's API types from the server (so it needs .venv), type-checks, bundles.
$(PANE): $(STAMP) $(NODE_MODULES) $(PANE_SRC)
	cd taskpane && PYTHON=$(abspath $(BIN)/python) nice npm run build

# Installed when missing if we may (root with apt-get, as in CI); otherwise say what to do.
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "The end-to-end tests need Chromium at $(CHROMIUM): install Debian's chromium package," \
		     "or run: make test CHROMIUM=/path/to/chromium"; exit 1; \
	fi

# The installer tests trust a local CA in a real NSS database: Debian's libnss3-tools (certutil).
.PHONY: nss-tools
test: nss-tools
nss-tools:
	@command -v certutil >/dev/null || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libnss3-tools; \
	else echo "tests/test_installer.py skips its NSS tests: install libnss3-tools for certutil"; fi; }

clean: ## Remove the virtualenv, the task pane build and caches (keeps your data)
	rm -rf $(VENV) .pytest_cache build *.egg-info taskpane/node_modules server/static/taskpane test-artifacts

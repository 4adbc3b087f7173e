# Deskpilot's one task runner. `make help` lists the targets.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# llama-cpp-python compiles llama.cpp on first install: use every core.
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)

.DEFAULT_GOAL := help
.PHONY: help run test bench setup clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

run: setup ## Set up, then start the server (task pane + embedded model) on https://localhost:8765
	$(BIN)/deskpilot serve

test: setup ## Set up, then run the whole test suite
	$(BIN)/python -m pytest

bench: setup ## Run the benchmarks under bench/
	$(BIN)/python bench/bench_summarize.py

setup: $(STAMP) ## Create .venv and install Deskpilot with its test tools

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Deskpilot needs Python 3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

clean: ## Remove the virtualenv and caches (keeps your data)
	rm -rf $(VENV) .pytest_cache build *.egg-info

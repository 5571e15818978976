# higgsbench — the user's entry point. `make help` lists every target.
#
# The app (app/higgsbench) and the infrastructure (docker/, ansible/, k8s/) never import each
# other; these targets join them.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HB := $(BIN)/higgsbench

# Demo settings: generated events by default, or DATA=path/to/HIGGS.csv.gz
DATA ?=
DEMO_EVENTS ?= 200000
DEMO_ROWS ?= 1000000
DEMO_EPOCHS ?= 5
DEMO_DIR ?= runs/demo
SEED ?= 42

##@ Start here

.PHONY: help
help: ## List every target with one line each
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m [VAR=value…]\n"} \
	  /^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,spark]'
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Make the virtual environment (.venv) with the pinned dependencies

.PHONY: demo
demo: venv ## Set up, prepare data (generated, or DATA=HIGGS.csv.gz), train, write a report
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
ifeq ($(strip $(DATA)),)
	$(HB) data synth --events $(DEMO_EVENTS) --seed $(SEED) --out $(DEMO_DIR)/prepared
else
	$(HB) data prepare $(DATA) --rows $(DEMO_ROWS) --out $(DEMO_DIR)/prepared
endif
	$(HB) train --data $(DEMO_DIR)/prepared --out $(DEMO_DIR)/torch-adam --engine torch \
	  --optimizer adam --epochs $(DEMO_EPOCHS) --batch-size 1024 --seed $(SEED)
	$(HB) report $(DEMO_DIR)/torch-adam --out $(DEMO_DIR)/report
	@echo "demo report: $(DEMO_DIR)/report/report.md"

.PHONY: test
test: venv ## Run the test suite (real data from ../shared/data when present)
	$(BIN)/python -m pytest -ra

##@ Development

.PHONY: lint
lint: venv ## ruff check and format check
	$(BIN)/ruff check app tests
	$(BIN)/ruff format --check app tests

.PHONY: format
format: venv ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix app tests
	$(BIN)/ruff format app tests

.PHONY: clean
clean: ## Remove build outputs and caches (keeps data/ and runs/)
	rm -rf build .pytest_cache .ruff_cache app/*.egg-info
	find . -name __pycache__ -prune -exec rm -rf {} +

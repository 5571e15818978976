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

# Python environments. pyproject.toml holds compatible ranges; constraints.txt the exact
# versions every environment of the project installs (benchmarks compare only like with like).
CONSTRAINTS := constraints.txt
# make venv: the demo (no dev or control-host tools); venv-dev adds DEV_EXTRAS for the tests,
# lint and the Ansible targets, the Keras engine's included: a developer's make test runs what
# CI runs.
EXTRAS ?= spark,track
DEV_EXTRAS ?= dev,deploy,keras
# TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu: torch's CPU build (about 190 MB)
# instead of PyPI's CUDA build (several GB) for make venv and the images' wheelhouse;
# a pin of 2.13.0 in constraints.txt matches the CPU build 2.13.0+cpu (PEP 440 local label).
TORCH_CPU_INDEX ?=
PIP_INSTALL = $(BIN)/pip install --quiet -c $(CONSTRAINTS)$(if $(TORCH_CPU_INDEX), \
  --extra-index-url $(TORCH_CPU_INDEX))

# Containers. BuildKit is needed (secrets, bind mounts). DOCKER_BUILD is what
# docker/build-command.sh finds (buildx, a client older than 23, or another client that has
# BuildKit), worked out only when an image is built; or set it, e.g.
# DOCKER_BUILD="DOCKER_BUILDKIT=1 /usr/bin/docker build".
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' app/higgsbench/__init__.py)
GIT_SHA := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DOCKER ?= docker
DOCKER_BUILD ?= $(or $(shell DOCKER='$(DOCKER)' docker/build-command.sh),$(error \
  no docker client that builds with BuildKit: see the line above))
SPARK_IMAGE ?= higgsbench-spark:$(VERSION)
GPU_IMAGE ?= higgsbench-gpu:$(VERSION)
BIGDL_IMAGE ?= higgsbench-bigdl:$(VERSION)
TRACKING_IMAGE ?= higgsbench-tracking:$(VERSION)
# TRACKING=1: the mini-cluster gets its MLflow server (service mlflow) and bench-local logs there
TRACKING ?=
# ENGINE=bigdl runs the mini-cluster from the BigDL image (Spark 3.4.1)
ENGINE ?= spark
CLUSTER_IMAGE = $(if $(filter bigdl,$(ENGINE)),$(BIGDL_IMAGE),$(SPARK_IMAGE))
CA_CERT ?=
comma := ,
CA_SECRET = $(if $(CA_CERT),--secret id=ca_cert$(comma)src=$(CA_CERT))
# every image: the app version (its wheel, labels), the commit, the optional CA bundle (a secret)
BUILD_IMAGE = $(DOCKER_BUILD) --build-arg HIGGSBENCH_VERSION=$(VERSION) \
  --build-arg GIT_SHA=$(GIT_SHA) $(CA_SECRET)
COMPOSE ?= $(DOCKER) compose -f docker/compose.yaml
SPARK_SECRET_FILE ?= $(CURDIR)/.state/spark-secret
NODES ?= 2
OPTIMIZERS ?= adam
EPOCHS ?= 2
BATCH ?= 4096
EVENTS ?= 200000
export NODES SPARK_SECRET_FILE

##@ Start here

.PHONY: help
help: ## List every target with one line each
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m [VAR=value…]\n"} \
	  /^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(PIP_INSTALL) -e '.[$(EXTRAS)]'
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Make .venv for the demo: the app, Spark, the MLflow client, pinned by constraints.txt [TORCH_CPU_INDEX=]

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml $(CONSTRAINTS)
	$(PIP_INSTALL) -e '.[$(EXTRAS),$(DEV_EXTRAS)]'
	touch $@

.PHONY: venv-dev
venv-dev: $(VENV)/.installed-dev ## Add the test, lint and control-host tools (dev and deploy extras) to .venv

# Its own pins (BigDL's numpy 1.26 and pyspark 3.4.1 conflict with constraints.txt's), the app
# on top without its dependencies
$(VENV)-bigdl/.installed: docker/bigdl/requirements.txt pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)-bigdl
	$(VENV)-bigdl/bin/pip install --quiet --upgrade pip
	$(VENV)-bigdl/bin/pip install --quiet -r docker/bigdl/requirements.txt
	$(VENV)-bigdl/bin/pip install --quiet --no-deps -e .
	# make coverage measures the BigDL engine's lines too (coverage starts only under it),
	# with the main environment's coverage: their data files are combined
	$(VENV)-bigdl/bin/pip install --quiet -c $(CONSTRAINTS) coverage
	touch $@

.PHONY: venv-bigdl
venv-bigdl: $(VENV)-bigdl/.installed ## Make .venv-bigdl: BigDL DLlib with its own pyspark 3.4.1 and numpy 1.26

$(VENV)-tracking/.installed: docker/tracking/requirements.txt
	$(PYTHON) -m venv $(VENV)-tracking
	$(VENV)-tracking/bin/pip install --quiet --upgrade pip
	$(VENV)-tracking/bin/pip install --quiet -r docker/tracking/requirements.txt
	touch $@

.PHONY: venv-tracking
venv-tracking: $(VENV)-tracking/.installed ## Make .venv-tracking: the MLflow tracking server (full mlflow, its own pyarrow)

# `higgsbench train|bench --track http://127.0.0.1:$(TRACKING_PORT)` logs there
TRACKING_PORT ?= 5000
TRACKING_DIR ?= .state/mlflow
TRACKING_SERVER = TRACKING_DIR=$(TRACKING_DIR) TRACKING_PORT=$(TRACKING_PORT) \
  MLFLOW=$(VENV)-tracking/bin/mlflow scripts/tracking-server.sh

.PHONY: tracking-up
tracking-up: venv-tracking ## Start a local MLflow server on 127.0.0.1:TRACKING_PORT (5000), SQLite + artifacts in .state/mlflow
	$(TRACKING_SERVER) start

.PHONY: tracking-down
tracking-down: ## Stop the local MLflow server (by the process id tracking-up recorded)
	$(TRACKING_SERVER) stop

.PHONY: demo
demo: venv ## Set up; generated data (or DATA=HIGGS.csv.gz); train; local 2-worker Spark sweep; reports
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
ifeq ($(strip $(DATA)),)
	$(HB) data synth --events $(DEMO_EVENTS) --seed $(SEED) --out $(DEMO_DIR)/prepared
else
	$(HB) data prepare $(DATA) --rows $(DEMO_ROWS) --out $(DEMO_DIR)/prepared
endif
	$(HB) train --data $(DEMO_DIR)/prepared --out $(DEMO_DIR)/torch-adam --engine torch \
	  --optimizer adam --epochs $(DEMO_EPOCHS) --batch-size 1024 --seed $(SEED)
	$(HB) report $(DEMO_DIR)/torch-adam --out $(DEMO_DIR)/report
	$(HB) cluster up --workers 2 --cores 1 --memory 2g --state-dir $(DEMO_DIR)/cluster
	master=$$($(HB) cluster status --json --state-dir $(DEMO_DIR)/cluster \
	  | $(BIN)/python -c 'import json, sys; print(json.load(sys.stdin)["master_url"])'); \
	HIGGSBENCH_STATE_DIR=$(DEMO_DIR)/cluster $(HB) bench --engines spark --nodes 1,2 \
	  --optimizers adam --epochs 2 --batch-size 4096 --master $$master \
	  --data $(DEMO_DIR)/prepared --out $(DEMO_DIR)/bench --predict 1,2,4,8,16,32,64; \
	status=$$?; $(HB) cluster down --state-dir $(DEMO_DIR)/cluster; exit $$status
	@echo "demo: $(DEMO_DIR)/report/report.md (training) and $(DEMO_DIR)/bench/ (scaling plots)"

# `make test` (CI's) runs the tests that mostly wait (OpenStack, Ansible, the Docker
# mini-cluster) beside the ones that compute: tests/run_suite.py says how and why. The VM and
# GPU-image tests have targets of their own.
.PHONY: test
test: venv-dev venv-tracking k8s-validate ## Run the test suite, as two pytest runs side by side (real data from ../shared/data when present; `make coverage`: one run, with coverage)
	$(BIN)/python tests/run_suite.py

# The same suite as one pytest run, for coverage (one tracer's data file per process)
PYTEST_SUITE = $(BIN)/python -m pytest -ra --durations=25 -m 'not gpu_image and not cloud_vm'

# Coverage runs a tracer in every Python process the tests start, about a third slower where
# they run Python (the CLI, the Spark ranks): kept out of `make test`, and so out of CI.
.PHONY: coverage
coverage: venv-dev venv-tracking k8s-validate ## The test suite with line and branch coverage of app/higgsbench, subprocesses included (slower; not in CI)
	mkdir -p build/coverage && rm -f build/coverage/.coverage build/coverage/.coverage.* build/coverage/coverage.json
	COVERAGE_FILE=$(abspath build/coverage/.coverage) $(PYTEST_SUITE) \
	  --cov --cov-report=term --cov-report=json:build/coverage/coverage.json

.PHONY: test-unit
test-unit: venv-dev ## The unit tests alone (tests/unit: no cluster, container or server; about a minute)
	$(BIN)/python -m pytest -q tests/unit

.PHONY: test-mutation
test-mutation: venv-dev ## Mutation testing (mutmut) of metrics, data, record, sweep summary, scaling, atomic writer against tests/unit: score and survivors
	$(BIN)/python tests/mutation/run.py

.PHONY: test-gpu-image
test-gpu-image: venv-dev ## Resolve the GPU image's install (torch CUDA + TensorFlow CUDA at the pins) against PyPI: GBs of downloads
	$(BIN)/python -m pytest -ra -m gpu_image tests/test_install.py

##@ Containers and the local mini-cluster (Docker)

.PHONY: base-image
base-image: ## Make debian:bookworm-slim without a registry (debootstrap + docker import)
	DOCKER="$(DOCKER)" docker/base-image.sh debian:bookworm-slim

# The images' wheels are for the images' CPython and platform (docker/wheelhouse.sh: IMAGE_PYTHON,
# IMAGE_GLIBC, the Docker engine's architecture), not for whatever Python this machine has; only
# a pip is needed here (any venv's: $(BIN)/pip).
WHEELHOUSE = PIP=$(BIN)/pip DOCKER='$(DOCKER)' IMAGE_PYTHON=3.11 IMAGE_GLIBC=2.36 docker/wheelhouse.sh

$(BIN)/pip:
	$(PYTHON) -m venv $(VENV)

docker/dist/.done: pyproject.toml $(shell find app/higgsbench -type f ! -path '*/__pycache__/*') | $(BIN)/pip
	rm -rf docker/dist && mkdir -p docker/dist
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir docker/dist .
	touch $@

# the app's dependencies, resolved from its wheel (pure Python) for the images' platform
docker/wheelhouse/.done: pyproject.toml $(CONSTRAINTS) docker/wheelhouse.sh docker/dist/.done
	mkdir -p docker/wheelhouse
	SDIST_ONLY=pyspark SDIST_PINS=$(CONSTRAINTS) $(WHEELHOUSE) docker/wheelhouse -c $(CONSTRAINTS) \
	  $(if $(TORCH_CPU_INDEX),--extra-index-url $(TORCH_CPU_INDEX)) "$$(ls docker/dist/higgsbench-*.whl)[spark,track]"
	rm -f docker/wheelhouse/higgsbench-*.whl  # the app travels separately (docker/dist)
	touch $@

.PHONY: wheelhouse
wheelhouse: docker/wheelhouse/.done ## Wheels of the pinned dependencies (for the images' Python and platform) and of the app, for offline image builds

.PHONY: images
images: wheelhouse ## Build the Spark node image (master, worker, driver)
	$(BUILD_IMAGE) -f docker/Dockerfile --target node --build-arg FLAVOUR=spark -t $(SPARK_IMAGE) .

docker/wheelhouse-bigdl/.done: docker/bigdl/requirements.txt docker/wheelhouse.sh | $(BIN)/pip
	mkdir -p docker/wheelhouse-bigdl
	SDIST_ONLY=pyspark SDIST_PINS=$< $(WHEELHOUSE) docker/wheelhouse-bigdl -r $<
	touch $@

.PHONY: images-bigdl
images-bigdl: wheelhouse docker/wheelhouse-bigdl/.done ## Build the BigDL flavour of the node image (Spark 3.4.1)
	$(BUILD_IMAGE) -f docker/Dockerfile --target node --build-arg FLAVOUR=bigdl -t $(BIGDL_IMAGE) .

docker/wheelhouse/tracking/.done: docker/tracking/requirements.txt docker/wheelhouse.sh | $(BIN)/pip
	mkdir -p docker/wheelhouse/tracking
	$(WHEELHOUSE) docker/wheelhouse/tracking -r $<
	touch $@

.PHONY: images-tracking
images-tracking: docker/wheelhouse/tracking/.done ## Build the MLflow tracking server image (compose service mlflow)
	$(BUILD_IMAGE) -f docker/Dockerfile --target tracking -t $(TRACKING_IMAGE) .

.PHONY: images-gpu
images-gpu: wheelhouse ## Build the CUDA GPU trainer image, torch and Keras (several GB) [KERAS=0: torch only]
	$(BUILD_IMAGE) -f docker/Dockerfile --target gpu -t $(GPU_IMAGE) \
	  --build-arg GPU_EXTRAS=$(if $(filter 0,$(KERAS)),,keras-gpu) .

$(SPARK_SECRET_FILE):
	mkdir -p $(dir $@)
	umask 077 && $(PYTHON) -c 'import secrets; print(secrets.token_hex(32))' > $@

.PHONY: mini-secret
mini-secret: $(SPARK_SECRET_FILE) ## Generate the mini-cluster's RPC secret (mode 0600, not in git)

.PHONY: mini-up
mini-up: mini-secret ## Start the compose mini-cluster: master, NODES workers, history server [ENGINE=bigdl TRACKING=1]
	HIGGSBENCH_IMAGE=$(CLUSTER_IMAGE) HIGGSBENCH_TRACKING_IMAGE=$(TRACKING_IMAGE) \
	  $(COMPOSE) $(if $(TRACKING),--profile tracking) up -d --wait --scale worker=$(NODES) \
	  master worker history $(if $(TRACKING),mlflow)
	@echo "master UI http://127.0.0.1:$${MASTER_UI_PORT:-8080}  history http://127.0.0.1:$${HISTORY_UI_PORT:-18080}"
	$(if $(TRACKING),@echo "MLflow    http://127.0.0.1:$${TRACKING_PORT:-5000} (bench-local TRACKING=1 logs there)")

.PHONY: mini-down
mini-down: ## Stop the mini-cluster and remove its volumes
	HIGGSBENCH_IMAGE=$(CLUSTER_IMAGE) HIGGSBENCH_TRACKING_IMAGE=$(TRACKING_IMAGE) \
	  $(COMPOSE) --profile driver --profile tracking down -v --remove-orphans

.PHONY: mini-logs
mini-logs: ## Show the mini-cluster's recent logs
	HIGGSBENCH_IMAGE=$(CLUSTER_IMAGE) $(COMPOSE) logs --tail 100

RATE ?=
.PHONY: mini-netlimit
mini-netlimit: ## Limit each mini-cluster worker's sending rate with tc, RATE=200mbit (or RATE=off); needs root
	@test -n "$(RATE)" || { echo "mini-netlimit: say RATE=…, e.g. RATE=200mbit, or RATE=off"; exit 2; }
	workers=$$(HIGGSBENCH_IMAGE=$(CLUSTER_IMAGE) $(COMPOSE) ps -q worker); \
	  test -n "$$workers" || { echo "mini-netlimit: no worker is running (make mini-up)"; exit 1; }; \
	  DOCKER="$(DOCKER)" docker/netlimit.sh $(RATE) $$workers

BENCH_ID := bench-local-$(shell date +%Y%m%d-%H%M%S)
DRIVER = HIGGSBENCH_IMAGE=$(CLUSTER_IMAGE) HIGGSBENCH_INPUT=$(if $(DATA),$(abspath $(DATA)),/dev/null) \
  $(COMPOSE) run --rm --no-TTY driver

.PHONY: bench-local
bench-local: ## Sweep nodes 1…NODES in the mini-cluster [OPTIMIZERS=… EPOCHS=… DATA=… RUNS=dir]; results in ./runs
ifeq ($(strip $(DATA)),)
	$(DRIVER) data synth --events $(EVENTS) --seed $(SEED) --force --out /shared/data/prepared
else
	$(DRIVER) data prepare /input/HIGGS.csv.gz --force --out /shared/data/prepared
endif
	$(DRIVER) bench --engines $(ENGINE) --master spark://master:7077 \
	  --nodes $$(seq -s, 1 $(NODES)) --optimizers $(OPTIMIZERS) --epochs $(EPOCHS) \
	  --batch-size $(BATCH) --data /shared/data/prepared --out /shared/runs/$(BENCH_ID) \
	  $(if $(REPEAT),--repeat $(REPEAT)) \
	  $(if $(TRACKING),--track http://mlflow:5000)
	mkdir -p $(RUNS)
	# copied out as a tar stream, so the files are this user's and the container needs neither
	# root nor a capability
	HIGGSBENCH_IMAGE=$(CLUSTER_IMAGE) $(COMPOSE) run --rm --no-TTY --no-deps --entrypoint tar \
	  driver -C /shared/runs -c $(BENCH_ID) | tar -C $(RUNS) -x
	@echo "results: $(RUNS)/$(BENCH_ID)/bench.json"

RATES ?= 1gbit 200mbit 50mbit
.PHONY: bench-netlimit
bench-netlimit: venv ## The scaling model against real network limits: bench-local under each of RATES, predicted at that rate [NODES= REPEAT= OPTIMIZERS=]; needs root
	@set -eu; trap '$(MAKE) --no-print-directory mini-netlimit RATE=off' EXIT; \
	for rate in $(RATES); do \
	  $(MAKE) --no-print-directory mini-netlimit RATE=$$rate; \
	  $(MAKE) --no-print-directory bench-local RUNS=$(RUNS)/netlimit-$$rate; \
	  bench=$$(ls -d $(RUNS)/netlimit-$$rate/bench-local-* | tail -1); \
	  $(HB) bench --from $$bench/bench.json --predict $$(seq -s, 1 $(NODES)) \
	    --bandwidth $$rate >/dev/null; \
	  echo "$$rate: $$bench/bench.json (prediction.png: measured and predicted side by side)"; \
	done

include k8s/k8s.mk
include ansible/ansible.mk

# The dev tools (kubernetes-validate, ansible-lint, pytest) come with venv-dev; the control
# host's (the deploy extra) with ansible-tools, into whichever .venv there is.
k8s-validate ansible-lint test-openstack test-ansible: venv-dev
$(BIN)/../.ansible-tools: | venv

##@ Development

.PHONY: lint
lint: venv-dev ## ruff check and format check
	$(BIN)/ruff check app tests k8s ansible scripts
	$(BIN)/ruff format --check app tests k8s ansible scripts

.PHONY: format
format: venv-dev ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix app tests k8s ansible scripts
	$(BIN)/ruff format app tests k8s ansible scripts

.PHONY: docs
docs: ## Rewrite the measurement tables (docs/benchmarks.md, README) from docs/measurements/
	$(PYTHON) scripts/docs-tables.py

.PHONY: clean
clean: ## Remove build outputs and caches (keeps data/ and runs/)
	rm -rf build .pytest_cache .ruff_cache app/*.egg-info
	find . -name __pycache__ -prune -exec rm -rf {} +

# Kubernetes: the manifests' offline check and the cluster's RPC secret.
# Included by the Makefile; on its own: make -f k8s/k8s.mk k8s-validate BIN=.venv/bin

# This file's folder, however make was started (include k8s/k8s.mk, or -f /abs/k8s/k8s.mk).
K8S_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
BIN ?= $(K8S_DIR)/../.venv/bin
PYTHON ?= python3
# Pinned in constraints.txt (a dev tool, make venv-dev): the bundled schemas (Kubernetes 1.25
# to 1.37) come with the package version.
K8S_CONSTRAINTS := $(abspath $(K8S_DIR)/../constraints.txt)
K8S_VALIDATE_VERSION := $(shell sed -n 's/^kubernetes-validate==//p' $(K8S_CONSTRAINTS))
# Schema versions every manifest must satisfy: an older supported release and the newest.
K8S_VERSIONS ?= 1.30 1.37
K8S_SECRET := $(K8S_DIR)/base/spark-secret.txt

##@ Kubernetes (k8s/)

.PHONY: k8s-validate
k8s-validate: ## Check every k8s manifest and kustomize build against the API schemas, offline
	@$(BIN)/python -c 'import importlib.metadata as m, sys; \
	  sys.exit(m.version("kubernetes-validate") != "$(K8S_VALIDATE_VERSION)")' 2>/dev/null \
	  || $(BIN)/pip install --quiet -c $(K8S_CONSTRAINTS) kubernetes-validate
	$(BIN)/python $(K8S_DIR)/validate.py $(addprefix -k ,$(K8S_VERSIONS))

$(K8S_SECRET):
	umask 077 && $(PYTHON) -c 'import secrets, sys; sys.stdout.write(secrets.token_hex(32))' > $@
	chmod 600 $@

.PHONY: k8s-secret
k8s-secret: $(K8S_SECRET) ## Generate k8s/base/spark-secret.txt, the cluster's RPC secret (0600, not in git)

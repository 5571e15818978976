# Ansible: provision the OpenStack cluster and the GPU node, configure them, run the benchmarks
# there, tear it all down. Included by the Makefile; on its own:
#   make -f ansible/ansible.mk cluster-status BIN=.venv/bin
#
#   make cluster-up CLOUD=mycloud ADMIN_CIDR=198.51.100.7/32 [GPU=1]   provision.yml, then site.yml
#   make cluster-up PROVIDER=ssh HOSTS=debian@10.0.0.5,debian@10.0.0.6 [GPU=… BASTION=…]
#                                machines you already have (or INVENTORY=mine.ini): site.yml
#   make cluster-known-hosts     record the host keys of nodes not yet known (own machines)
#   make bench-cluster NODES=3 [OPTIMIZERS=adam,sgd EPOCHS=2 DATA=uci|path CLUSTER_EVENTS=…]
#   make bench-sweep             the same for NODES 1…5
#   make bench-gpu               the optimizer sweep on the GPU node
#   make bench-status            where each run is; ended runs fetched (DETACH=1 starts and returns)
#   make bench-wait              wait for the runs and fetch them (after DETACH=1 or a dropped SSH)
#   make cluster-tunnel          the master's web UIs on 127.0.0.1 (8080, 4040, 18080)
#   make cluster-down
# ansible/README.md explains the settings, the costs, and the SSH tunnel to the Spark UI.

# This file's folder, however make was started (include ansible/ansible.mk, or -f /abs/…).
ANSIBLE_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
BIN ?= $(ANSIBLE_DIR)/../.venv/bin
PYTHON ?= python3
# The control host's tools are the project's `deploy` extra (ansible, ansible-core,
# openstacksdk: pyproject.toml says why openstacksdk stays below 4.15), at the versions in
# constraints.txt, the one place for pins; ansible-lint is a dev tool (make venv-dev).
ROOT_DIR := $(abspath $(ANSIBLE_DIR)/..)
# The clouds.yaml entry (the openstack CLI's OS_CLOUD when set), and who may SSH to the master
# (required by cluster-up).
CLOUD ?= $(or $(OS_CLOUD),openstack)
ADMIN_CIDR ?=
# Where the cluster comes from: openstack (provision.yml makes it) or ssh (machines you already
# have: HOSTS=user@master,user@worker1,… [GPU=user@gpu BASTION=user@jump], rendered into INVENTORY
# by ssh_inventory.yml; or INVENTORY=a file of yours, used as it is).
PROVIDER ?= openstack
HOSTS ?=
# The GPU node, opt-in: PROVIDER=openstack: GPU=1 makes it (openstack_gpu_node; GPU=0 or
# nothing: no GPU node); PROVIDER=ssh: GPU=user@host is its login.
GPU ?=
BASTION ?=
# Settings for the playbooks, e.g. ANSIBLE_ARGS='-e openstack_worker_count=3 -e @mine.yml'.
ANSIBLE_ARGS ?=
# Parts of site.yml only (cluster-up, cluster-configure): TAGS=gpu, SKIP_TAGS=images; the tags
# are common, docker, images, spark and gpu (site.yml). Not given to provision.yml, which
# always runs whole.
TAGS ?=
SKIP_TAGS ?=
SITE_TAGS = $(if $(TAGS),--tags $(TAGS)) $(if $(SKIP_TAGS),--skip-tags $(SKIP_TAGS))
# Whether site.yml may reboot the GPU node after installing its driver (gpu_node_reboot): the
# servers provision.yml made, yes (GPU_REBOOT=0: no); machines of your own (PROVIDER=ssh) only
# with GPU_REBOOT=1, else the run stops and asks for a reboot when it suits you.
GPU_REBOOT ?=
SITE_REBOOT = $(if $(filter 1,$(GPU_REBOOT)),-e gpu_node_reboot=true,$(if \
  $(or $(filter 0,$(GPU_REBOOT)),$(filter ssh,$(PROVIDER))),-e gpu_node_reboot=false))
SITE_ARGS = $(SITE_TAGS) $(SITE_REBOOT)
# The cluster's name, on every target: prefix of its OpenStack resources, label of its
# containers, folder of its state here (.state/$(CLUSTER)/: inventory, host keys, the Spark
# secret, Ansible's log). The default, higgsbench-<your login> (as group_vars/all.yml has it),
# gives each user of a project a cluster of their own.
ifeq ($(origin CLUSTER),undefined)
CLUSTER := $(shell printf 'higgsbench-%s' "$${USER:-$$(id -un)}" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9-' '-')
endif
STATE_DIR = .state/$(CLUSTER)
# The inventory: the one provision.yml writes (cluster-up), under .state/$(CLUSTER)/ and never in
# git; for hosts you already have, INVENTORY=inventory.ini (the example) or a file of yours.
INVENTORY ?= $(STATE_DIR)/inventory.ini
# Benchmarks on the cluster (the Makefile sets these first; defaults for `make -f` alone).
NODES ?= 2
OPTIMIZERS ?= adam
EPOCHS ?= 2
BATCH ?= 4096
SEED ?= 42
# DATA: empty (generated events, CLUSTER_EVENTS of them), uci (each node downloads HIGGS from
# UCI), or a local HIGGS.csv.gz (uploaded to each node).
CLUSTER_EVENTS ?= 2000000
SWEEP_NODES ?= 1,2,3,4,5
GPU_OPTIMIZERS ?= sgd,adam,adamax,adadelta,adagrad
# the GPU bench's engines: ours and the thesis' Keras on the same card (torch alone for an
# image built with KERAS=0)
GPU_ENGINES ?= torch,keras
GPU_EPOCHS ?= $(EPOCHS)
GPU_AGAINST ?=
VERSION ?= $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' $(ANSIBLE_DIR)/../app/higgsbench/__init__.py)

ANSIBLE_PLAYBOOK = mkdir -p $(STATE_DIR) && ANSIBLE_LOG_PATH=$(abspath $(STATE_DIR))/ansible.log \
  ANSIBLE_CONFIG=$(ANSIBLE_DIR)/ansible.cfg $(BIN)/ansible-playbook -i $(INVENTORY) \
  -e openstack_cloud=$(CLOUD) -e higgsbench_cluster_name=$(CLUSTER) -e higgsbench_version=$(VERSION) $(ANSIBLE_ARGS)
OPENSTACK_GPU_ARGS = $(if $(filter 1,$(GPU)),-e openstack_gpu_node=true,$(if $(filter 0,$(GPU)),-e openstack_gpu_node=false))
# make cluster-tunnel: these ports of the master, each on the same port of 127.0.0.1 here (8080
# the master's UI, 4040 a running driver's, 18080 the history server's).
TUNNEL_PORTS ?= 8080 4040 18080
# The master's connection as Ansible has it (inventory, group_vars, ANSIBLE_ARGS): its login,
# port, key, the address its UIs listen on, the hop to it, and the cluster's known-hosts file.
TUNNEL_QUERY = ANSIBLE_CONFIG=$(ANSIBLE_DIR)/ansible.cfg ANSIBLE_CALLBACK_RESULT_FORMAT=json \
  $(BIN)/ansible 'master[0]' -i $(INVENTORY) -e higgsbench_cluster_name=$(CLUSTER) $(ANSIBLE_ARGS) -m ansible.builtin.debug -a 'msg={{ { \
  "login": (ansible_user ~ "@" if ansible_user | default("") else "") ~ ansible_host | default(inventory_hostname), \
  "port": ansible_port | default(22), "key": ansible_ssh_private_key_file | default(""), \
  "address": private_ip | default(ansible_host) | default(inventory_hostname), \
  "proxy": higgsbench_ssh_proxy | trim, "known_hosts": higgsbench_known_hosts_file} }}'
# …as shell assignments (login=… port=…), or a line saying there is no master.
TUNNEL_VARS = $(BIN)/python -c 'import json, shlex, sys; out = sys.stdin.read(); \
  _, sep, result = out.partition(" => "); \
  sep or sys.exit(f"no master in $(INVENTORY): make cluster-up first (or INVENTORY=…)\n{out}"); \
  print(" ".join(f"{k}={shlex.quote(str(v))}" for k, v in json.loads(result)["msg"].items()))'
# The bench playbooks' settings (roles/bench/defaults/main.yml), from the variables above.
RUNS ?= $(abspath $(ANSIBLE_DIR)/../runs)
RUN ?=
DETACH ?=
ROWS ?= 0
PRECISION ?= fp32
EXECUTOR_MEMORY ?=
BENCH_DATA = $(if $(filter-out synth uci,$(DATA)),$(abspath $(DATA)),$(or $(DATA),synth))
REPEAT ?= 1
BENCH_VARS = -e bench_epochs=$(EPOCHS) -e bench_batch_size=$(BATCH) -e bench_seed=$(SEED) -e bench_repeat=$(REPEAT) \
  -e bench_data=$(BENCH_DATA) -e bench_events=$(CLUSTER_EVENTS) -e bench_rows=$(ROWS) \
  -e bench_runs_dir=$(RUNS) $(if $(RUN),-e bench_run_id=$(RUN)) $(if $(DETACH),-e bench_wait=false)

##@ OpenStack cluster (ansible/)

$(BIN)/../.ansible-tools: $(ROOT_DIR)/pyproject.toml $(ROOT_DIR)/constraints.txt
	$(BIN)/pip install --quiet -c $(ROOT_DIR)/constraints.txt -e '$(ROOT_DIR)[deploy]'
	touch $@

# CLUSTER names servers, networks and a folder: any other name is refused before a recipe line
# that carries it reaches the shell (the name travels in the environment, never parsed).
.PHONY: cluster-name
cluster-name: export HB_CLUSTER = $(CLUSTER)
cluster-name:
	@printf '%s\n' "$$HB_CLUSTER" | grep -Eqx '[a-z][a-z0-9-]{0,39}' || { echo \
	  "CLUSTER=$$HB_CLUSTER: lower-case letters, digits and dashes, starting with a letter, at most 40" >&2; exit 2; }

.PHONY: ansible-tools
ansible-tools: $(BIN)/../.ansible-tools cluster-name ## Install the deploy extra (Ansible, openstacksdk) into the venv, pinned by constraints.txt

.PHONY: cluster-up
cluster-up: ansible-tools ## Provision master and workers on OpenStack and configure them [CLOUD= ADMIN_CIDR= GPU=1: a GPU node too]; PROVIDER=ssh HOSTS=… (or INVENTORY=…): machines you have
ifeq ($(PROVIDER),ssh)
ifeq ($(filter command line environment,$(origin INVENTORY)),)
	@test -n "$(HOSTS)" || { echo "PROVIDER=ssh: set HOSTS=user@master,user@worker1,… or INVENTORY=your-inventory.ini" >&2; exit 2; }
	$(ANSIBLE_PLAYBOOK) -e ssh_hosts=$(HOSTS) -e ssh_gpu_host=$(GPU) -e ssh_bastion=$(BASTION) \
	  -e ssh_inventory_file=$(abspath $(INVENTORY)) $(ANSIBLE_DIR)/ssh_inventory.yml
endif
	$(ANSIBLE_PLAYBOOK) $(ANSIBLE_DIR)/known_hosts.yml
else ifeq ($(PROVIDER),openstack)
	@test -n "$(ADMIN_CIDR)" || { echo "set ADMIN_CIDR to the address you SSH from, e.g. ADMIN_CIDR=198.51.100.7/32" >&2; exit 2; }
	@case "$(GPU)" in ""|0|1) ;; *) echo "PROVIDER=openstack: GPU=1 makes a GPU node (openstack_gpu_flavor), GPU=0 none; GPU=$(GPU) looks like a login, for PROVIDER=ssh" >&2; exit 2;; esac
	$(ANSIBLE_PLAYBOOK) -e openstack_admin_cidr=$(ADMIN_CIDR) -e openstack_inventory_file=$(abspath $(INVENTORY)) \
	  $(OPENSTACK_GPU_ARGS) $(ANSIBLE_DIR)/provision.yml
else
	@echo "PROVIDER must be openstack or ssh, not $(PROVIDER)" >&2; exit 2
endif
	$(ANSIBLE_PLAYBOOK) $(SITE_ARGS) $(ANSIBLE_DIR)/site.yml

.PHONY: cluster-known-hosts
cluster-known-hosts: ansible-tools ## Record the SSH host keys of nodes not yet in .state/CLUSTER/known_hosts (cluster-up does it)
	$(ANSIBLE_PLAYBOOK) $(ANSIBLE_DIR)/known_hosts.yml

.PHONY: cluster-configure
cluster-configure: ansible-tools ## Run site.yml alone on the hosts in INVENTORY (after a change) [TAGS=gpu SKIP_TAGS=images]
	$(ANSIBLE_PLAYBOOK) $(SITE_ARGS) $(ANSIBLE_DIR)/site.yml

.PHONY: cluster-down
cluster-down: ansible-tools ## Delete everything cluster-up made on OpenStack [CLOUD=] (PROVIDER=ssh: nothing, the machines are yours)
ifeq ($(PROVIDER),ssh)
	@echo "PROVIDER=ssh: the machines are yours, nothing is deleted (their containers: make cluster-status)"
else
	$(ANSIBLE_PLAYBOOK) $(ANSIBLE_DIR)/teardown.yml
endif

.PHONY: cluster-tunnel
cluster-tunnel: ansible-tools ## The master's web UIs on 127.0.0.1: 8080 (master), 4040 (a running driver), 18080 (history) [TUNNEL_PORTS=]; Ctrl-C ends it
	@set -e; master=$$($(TUNNEL_QUERY)); vars=$$(printf '%s' "$$master" | $(TUNNEL_VARS)); eval "$$vars"; \
	test -s "$$known_hosts" || { echo "no host keys in $$known_hosts: make cluster-known-hosts first" >&2; exit 2; }; \
	echo "tunnel to $$login: $(foreach p,$(TUNNEL_PORTS),http://127.0.0.1:$(p)) (Ctrl-C ends it)"; \
	exec ssh -N -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$$known_hosts" -o ExitOnForwardFailure=yes \
	  -o ServerAliveInterval=30 -p "$$port" $${key:+-i "$$key"} $${proxy:+-o ProxyCommand="$$proxy"} \
	  $(foreach p,$(TUNNEL_PORTS),-L 127.0.0.1:$(p):"$$address":$(p)) "$$login"

.PHONY: cluster-status
cluster-status: ansible-tools ## Each node, its containers, the workers the master sees, the GPU
	$(ANSIBLE_PLAYBOOK) $(ANSIBLE_DIR)/cluster_status.yml

.PHONY: bench-cluster
bench-cluster: ansible-tools ## Spark bench on the master against NODES workers [OPTIMIZERS= EPOCHS= DATA= RUN= DETACH=1]; results in ./runs
	$(ANSIBLE_PLAYBOOK) -e bench_nodes=$(NODES) -e bench_optimizers=$(OPTIMIZERS) \
	  $(if $(EXECUTOR_MEMORY),-e bench_executor_memory=$(EXECUTOR_MEMORY)) $(BENCH_VARS) $(ANSIBLE_DIR)/bench.yml

.PHONY: bench-sweep
bench-sweep: ansible-tools ## The Spark bench for NODES 1…5 [SWEEP_NODES= OPTIMIZERS= DATA= DETACH=1]; results in ./runs
	$(ANSIBLE_PLAYBOOK) -e bench_nodes=$(SWEEP_NODES) -e bench_optimizers=$(OPTIMIZERS) -e bench_run_name=bench-sweep \
	  $(if $(EXECUTOR_MEMORY),-e bench_executor_memory=$(EXECUTOR_MEMORY)) $(BENCH_VARS) $(ANSIBLE_DIR)/bench.yml

.PHONY: bench-gpu
bench-gpu: ansible-tools ## Optimizer sweep on the GPU node, torch and Keras [GPU_ENGINES= GPU_OPTIMIZERS= PRECISION= GPU_AGAINST=bench.json DETACH=1]; results in ./runs
	$(ANSIBLE_PLAYBOOK) -e bench_optimizers=$(GPU_OPTIMIZERS) -e bench_gpu_engines=$(GPU_ENGINES) \
	  -e bench_run_name=bench-gpu -e bench_precision=$(PRECISION) \
	  $(if $(GPU_AGAINST),-e bench_against=$(abspath $(GPU_AGAINST))) $(BENCH_VARS) -e bench_epochs=$(GPU_EPOCHS) \
	  $(ANSIBLE_DIR)/bench_gpu.yml

.PHONY: bench-status
bench-status: ansible-tools ## Where each bench run on the cluster is (last log lines); ended runs fetched into ./runs
	$(ANSIBLE_PLAYBOOK) -e bench_runs_dir=$(RUNS) $(ANSIBLE_DIR)/bench_status.yml

.PHONY: bench-wait
bench-wait: ansible-tools ## Wait for the cluster's bench runs to end and fetch them into ./runs (after DETACH=1 or a dropped SSH)
	$(ANSIBLE_PLAYBOOK) -e bench_runs_dir=$(RUNS) -e bench_wait=true $(ANSIBLE_DIR)/bench_status.yml

.PHONY: ansible-lint
ansible-lint: ansible-tools ## ansible-lint (production profile) and --syntax-check of every playbook
	@test -x $(BIN)/ansible-lint || { echo "ansible-lint is a dev tool: make venv-dev (or pip install -c constraints.txt -e '.[dev]')" >&2; exit 2; }
	cd $(ANSIBLE_DIR) && $(abspath $(BIN))/ansible-lint -c .ansible-lint .
	ANSIBLE_CONFIG=$(ANSIBLE_DIR)/ansible.cfg $(BIN)/ansible-playbook -i $(INVENTORY) --syntax-check \
	  $(ANSIBLE_DIR)/provision.yml $(ANSIBLE_DIR)/teardown.yml $(ANSIBLE_DIR)/site.yml \
	  $(ANSIBLE_DIR)/known_hosts.yml $(ANSIBLE_DIR)/ssh_inventory.yml $(ANSIBLE_DIR)/bench.yml \
	  $(ANSIBLE_DIR)/bench_gpu.yml $(ANSIBLE_DIR)/bench_status.yml $(ANSIBLE_DIR)/cluster_status.yml

.PHONY: test-openstack
test-openstack: ansible-tools ## provision.yml and teardown.yml against a real OpenStack API in one container (Keystone … Neutron)
	$(BIN)/python -m pytest -q -rA tests/test_openstack.py

.PHONY: test-cloud
test-cloud: ansible-tools ## cluster-up, cluster-status and cluster-down on real VMs in the test cloud (QEMU emulation, root; tens of minutes)
	HIGGSBENCH_REQUIRE_CLOUD=1 $(BIN)/python -m pytest -q -rA -s -m cloud_vm tests/test_cloud_vms.py

.PHONY: test-ansible
test-ansible: ansible-tools ## Run site.yml for real against local containers, twice (second: changed=0), lint
	$(BIN)/python -m pytest -m ansible -rA tests/test_ansible.py

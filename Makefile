# govcloud-operator: `make test` runs every check, `make demo` tells the story on a local cluster.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export PYTHONUNBUFFERED := 1
# Integration test files run in parallel, each worker with its own local control plane.
WORKERS ?= 4

.PHONY: all venv tools lint unit integration e2e test soak demo crds cluster-up cluster-down clean bench bench-smoke plugin

all: test

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python 3.11+ is needed (found " + sys.version.split()[0] + "); set PYTHON=python3.11")'
	@command -v kubectl >/dev/null || { echo "error: kubectl is not on PATH; install kubectl (any recent version)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	@touch $@

venv: $(STAMP)

## tools: find (KUBEBUILDER_ASSETS) or build the pinned binaries: the control plane, kwok, helm,
## cyclonus, velero and its AWS plugin, promtool (the alert rule tests) and krew with its
## manifest checker (the kubectl plugin's install test)
tools: venv
	$(PY) -m govcloud.dev tools
	$(PY) -m govcloud.dev tools promtool kubectl-krew validate-krew-manifest

## crds: regenerate crds/ from the pydantic models
crds: venv
	$(PY) -m govcloud.api.crdgen --out crds --out charts/govcloud-operator/crds

lint: venv
	$(VENV)/bin/ruff check operator tests e2e bench plugins
	$(VENV)/bin/ruff format --check operator tests e2e bench plugins
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) -m govcloud.api.crdgen --check --out crds --out charts/govcloud-operator/crds

unit: venv
	$(VENV)/bin/pytest tests/unit -q -n 2

integration: tools
	$(VENV)/bin/pytest tests/integration -q -n $(WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

e2e: tools
	$(PY) -m govcloud.dev tools helm
	$(VENV)/bin/pytest e2e -q -rs

## test: every check — lint, types, layers, unit, integration and e2e on the real local control plane
test: lint unit integration e2e

## soak: the long fault run (not part of test; docs/reliability.md): 1,000 tenants and their
## edits in bursts, more kill points and generated specs, every control-plane fault repeated,
## a bigger frozen site, more flaps and leader handovers, more rounds of tenant churn
SOAK_KILLS ?= 100
SOAK_EXAMPLES ?= 60
soak: tools
	GOVCLOUD_CRASH_KILLS=$(SOAK_KILLS) GOVCLOUD_GEN_EXAMPLES=$(SOAK_EXAMPLES) \
	GOVCLOUD_FAULT_ROUNDS=3 GOVCLOUD_SOAK_SITE_TENANTS=20 GOVCLOUD_SOAK_FLAPS=8 \
	GOVCLOUD_SOAK_FENCING_HANDOVERS=3 GOVCLOUD_SOAK_CHURN_ROUNDS=5 GOVCLOUD_SOAK_CHURN_TENANTS=40 \
	$(VENV)/bin/pytest -q -rP -m '' -p no:randomly --timeout 5400 -n 2 --dist loadfile \
	  tests/integration/test_overload.py tests/integration/test_crash_anywhere.py \
	  tests/integration/test_control_plane_faults.py tests/integration/test_subcenter_faults.py \
	  tests/integration/test_generated_specs.py tests/integration/test_fencing.py \
	  tests/integration/test_churn.py tests/unit/property

## demo: start a local control plane, run the operator, onboard the example departments
demo: tools
	$(PY) -m govcloud.dev.demo

## bench: the benchmark suite (not part of test): BENCH_TENANTS=50|200|1000, BENCH_ARGS for more
BENCH_TENANTS ?= 200
BENCH_ARGS ?=
bench: tools
	$(PY) -m bench --tenants $(BENCH_TENANTS) --json .cache/bench/results-$(BENCH_TENANTS).json $(BENCH_ARGS)

## bench-smoke: the tiny run that `make test` also runs (tests/integration/test_bench_smoke.py)
bench-smoke: tools
	$(VENV)/bin/pytest tests/integration/test_bench_smoke.py -q

## plugin: the krew archive of the kubectl plugin (`kubectl govcloud`) for one platform, and the
## krew manifest with its sha256, in build/plugin/ (docs/kubectl-plugin.md)
PLUGIN_OS ?= $(shell uname -s | tr '[:upper:]' '[:lower:]')
PLUGIN_ARCH ?= $(shell uname -m | sed -e 's/x86_64/amd64/' -e 's/aarch64/arm64/')
plugin: venv
	$(PY) plugins/krew/build.py --os $(PLUGIN_OS) --arch $(PLUGIN_ARCH) --out build/plugin

cluster-up: tools
	$(PY) -m govcloud.dev cluster up

cluster-down: venv
	$(PY) -m govcloud.dev cluster down

clean:
	rm -rf .cache/clusters .pytest_cache .mypy_cache .ruff_cache

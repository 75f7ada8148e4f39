# inferbudget: `make demo` runs the whole system locally; `make test` runs every test tier.
# Everything the targets need is installed by them (a virtualenv, Debian packages, Go-built binaries),
# idempotently: a warm run does no installing.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PYTEST := $(BIN)/pytest
CLUSTER := $(PYTHON) hack/cluster/cluster.py

.PHONY: help venv docs system-deps test test-unit test-integration test-e2e lint crd bench bench-scale demo \
	manifests image cluster-up cluster-down clean

help:
	@echo "make demo   - local cluster, Prometheus, simulated fleet, operator and a sample budget (live view)"
	@echo "make test   - every test tier (unit, e2e against a real local control plane)"
	@echo "make lint   - ruff and mypy --strict"
	@echo "make bench  - replay the public traces through every policy, cold and warm starts; tables in bench/results/"
	@echo "make bench-scale - 1,000 budgets on the local cluster: cycle time, queries, CPU, RSS (SCALE_ARGS=...)"
	@echo "make crd    - regenerate crds/ and docs/reference.md from the API models"

venv: $(STAMP)
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

# Debian packages: Prometheus and promtool (the package starts no service; tests start their own), openssl
# (the local cluster's certificates).
APT_PACKAGES := prometheus openssl
system-deps:
	@missing=""; for tool in $(APT_PACKAGES); do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: test-unit test-integration test-e2e

test-unit: venv system-deps  # tests/unit/test_rules.py runs promtool (Debian package prometheus)
	$(PYTEST) -q tests/unit

test-integration: venv system-deps
	$(PYTEST) -q -m integration tests/integration

# The cold build of the cluster's binaries (about 8-19 minutes) runs before pytest, with its progress shown.
test-e2e: venv system-deps
	$(CLUSTER) build
	$(PYTEST) -q -m e2e tests/e2e

# deploy/install.yaml, deploy/prometheus and deploy/grafana, rendered from the chart (with the cluster's helm).
manifests: venv
	$(CLUSTER) build
	$(BIN)/python charts/manifests.py

# The operator image, built with buildah on a Debian base bootstrapped once (no registry needed).
image:
	$(PYTHON) hack/image/image.py build

cluster-up:
	$(CLUSTER) up
	@echo 'use it: eval "$$($(CLUSTER) env)"'

cluster-down:
	$(CLUSTER) down

lint: venv
	$(BIN)/ruff check operator tests bench hack
	$(BIN)/mypy operator/inferbudget tests bench hack

crd: venv
	$(BIN)/python -m inferbudget.api.crd > crds/inferbudget.io_inferencebudgets.yaml
	cp crds/inferbudget.io_inferencebudgets.yaml charts/inferbudget/crds/
	$(BIN)/python -m inferbudget.api.reference > docs/reference.md

docs: crd

bench: venv
	$(BIN)/python bench/run_bench.py
	$(BIN)/python bench/run_bench.py --start warm --out bench/results/warm

# One operator replica against 1,000 budgets (3,000 kwok pods) on the local cluster `scale`; figures in
# bench/results/scale.md. SCALE_ARGS="--budgets 100" and the like: see bench/scale.py --help.
SCALE_ARGS ?=
bench-scale: venv system-deps
	$(CLUSTER) build
	$(BIN)/python bench/scale.py $(SCALE_ARGS)

# The whole system on this machine, decisions shown live; DEMO_SECONDS=N runs it unattended for N seconds.
demo: venv system-deps
	$(CLUSTER) build
	$(BIN)/python hack/demo.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

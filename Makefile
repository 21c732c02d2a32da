# fleet — the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test test-unit test-integration test-e2e fuzz lint bench bench-flux testbin testbin-flux redis venv clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "fleet needs Python 3.11+ (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

## testbin: build (or reuse from ~/.cache/fleet-testbin) etcd, kube-*, kwok, helm, kustomize, gitea;
## helm and kustomize are linked into .venv/bin too, where `.venv/bin/fleet` looks for them
testbin: venv
	@tests/testbin/build.sh
	@for tool in helm kustomize; do \
	  if [ -x tests/testbin/bin/$$tool ]; then ln -sfn "$(CURDIR)/tests/testbin/bin/$$tool" $(BIN)/$$tool; fi; \
	done

## testbin-flux: build (or reuse) Flux's source-controller and kustomize-controller v1.7.3 and
## their CRDs, for `make bench-flux` only (not part of testbin or test)
testbin-flux: testbin
	@tests/testbin/build.sh flux

## redis: make sure Debian's redis-server, prometheus and prometheus-alertmanager are there
## (installs them when root on Debian/Ubuntu)
redis:
	@tests/testbin/ensure-system-packages.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check fleet plugins workers tests
	$(BIN)/mypy
	$(BIN)/lint-imports

## test: lint, type-check, then every test tier against real binaries and servers
test: venv testbin redis lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: venv
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

## fuzz: the hypothesis harness (tests/unit/test_fuzz_render.py, test_validate_hypothesis.py)
## with a big budget: FUZZ_EXAMPLES cases per property (`make test` runs a handful)
FUZZ_EXAMPLES ?= 2000
fuzz: venv testbin
	FLEET_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FLEET_HYPOTHESIS_EXAMPLES=$(FUZZ_EXAMPLES) \
	  $(BIN)/python -m pytest -p no:cacheprovider --hypothesis-show-statistics \
	  tests/unit/test_fuzz_render.py tests/unit/test_validate_hypothesis.py $(PYTEST_ARGS)

test-integration: venv testbin redis
	$(BIN)/python -m pytest -m integration $(PYTEST_ARGS)

test-e2e: venv testbin redis
	$(BIN)/python -m pytest -m e2e $(PYTEST_ARGS)

## demo: start three local clusters and run fleet on fleet.example.yaml
demo: venv testbin
	@PATH="$(CURDIR)/$(BIN):$(CURDIR)/tests/testbin/bin:$$PATH" tests/testbin/demo.sh

## bench: benchmarks (figures and ratios, never pass/fail)
bench: venv testbin
	@PATH="$(CURDIR)/$(BIN):$(CURDIR)/tests/testbin/bin:$$PATH" tests/bench/run.sh

## bench-flux: fleet vs. Flux on the same N bundles (push -> all Ready, no-op CPU); not in
## `make bench` or `make test`. BENCH_FLUX_ARGS e.g. --bundles 10,40 --noop-window 60
BENCH_FLUX_ARGS ?=
bench-flux: venv testbin-flux
	@PATH="$(CURDIR)/$(BIN):$(CURDIR)/tests/testbin/bin:$$PATH" \
	  $(BIN)/python tests/bench/bench_flux.py $(BENCH_FLUX_ARGS)

clean:
	rm -rf $(VENV) .demo .bench .mypy_cache .ruff_cache .pytest_cache .import_linter_cache .grimp_cache

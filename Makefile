# ember — the two commands are `make up` and `make test`; the rest are their parts.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ember-installed
VM_STAMP := $(VENV)/.ember-vm-installed
# The guest image VM jobs boot (the default of `vm.image`).
VM_IMAGE := $(HOME)/.cache/ember/vm/image
PORT ?=
PYTEST_ARGS ?=
# The suite's line coverage of src/ember (this process only: Ray workers and subprocesses are
# not measured) may not fall below this; raise it as coverage rises.
COVERAGE_FLOOR ?= 91

export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# llama-cpp-python builds from source (minutes on 2 cores); pip caches the wheel it builds.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF

.PHONY: up test install sysdeps vm ui lint typecheck unit clean lock vm-contract

up: install ui  ## install what is missing, then run ember on 127.0.0.1:8000 (PORT=... to change)
	$(BIN)/ember up --config configs/default.yaml $(if $(PORT),--port $(PORT),)

# The suite runs in two lanes side by side: the Ray cluster tests (mostly waiting on clusters,
# servers and subprocesses), and beside them the VM tests (real VMs under TCG, each busy on one
# core), the browser tests (Chromium), the API fuzzer and the suites that need no cluster of
# their own, sized so both lanes end near the same time. Each lane keeps its own coverage data;
# they are combined and checked against the floor once both are done. The second lane's Ray
# (the browser tests') keeps its session files in a folder of its own, apart from the other
# lane's clusters; its output follows the other's. PYTEST_ARGS are options for both lanes (not
# paths).
# The browser tests come last: their cluster lives until the lane ends.
SIDE_TESTS := tests/storage tests/vectors tests/sandbox tests/memory tests/providers \
	tests/auth tests/unit tests/vm tests/fuzz tests/ui

test: sysdeps install vm ui lint typecheck  ## system packages, Python and npm packages, the whole suite, ruff, mypy, tsc
	rm -f .coverage .coverage.* .pytest-side.log
	( RAY_AUTH_MODE=disabled RAY_TMPDIR=/tmp/ember-lane2 COVERAGE_FILE=.coverage.side \
	  $(BIN)/pytest --cov --cov-report= \
	  $(SIDE_TESTS) $(PYTEST_ARGS) > .pytest-side.log 2>&1 ) & side=$$!; \
	RAY_AUTH_MODE=disabled COVERAGE_FILE=.coverage.main $(BIN)/pytest --cov --cov-report= \
	  $(addprefix --ignore=,$(SIDE_TESTS)) $(PYTEST_ARGS); main=$$?; \
	wait $$side; sides=$$?; echo "== the second lane: $(SIDE_TESTS)"; cat .pytest-side.log; \
	$(BIN)/coverage combine --quiet .coverage.main .coverage.side && \
	$(BIN)/coverage report --fail-under=$(COVERAGE_FLOOR) --format=total > /dev/null; cov=$$?; \
	echo "coverage: $$($(BIN)/coverage report --format=total)% (floor $(COVERAGE_FLOOR)%)"; \
	test $$main -eq 0 -a $$sides -eq 0 -a $$cov -eq 0

# Every case of the VM tier's sandbox contract (make test runs a handful: tests/vm/conftest.py).
vm-contract: install vm
	RAY_AUTH_MODE=disabled EMBER_VM_CONTRACT=full $(BIN)/pytest tests/vm/test_vm_sandbox.py $(PYTEST_ARGS)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: anything that depends on a bare `torch` would pull a multi-GB CUDA build.
# pip keeps built wheels in its cache, so a second install is quick.
$(STAMP): pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet --constraint requirements.lock --editable '.[dev]'
	touch $@

install: $(STAMP)

# VM jobs: libvirt-python (built against the libvirt `sysdeps` installs) and the guest image
# (Debian's cloud kernel and busybox-static, fetched with apt-get download).
$(VM_STAMP): $(STAMP)
	$(BIN)/pip install --quiet --constraint requirements.lock --editable '.[vm]'
	touch $@

$(VM_IMAGE)/image.json: | $(VM_STAMP)
	$(BIN)/ember vm image build --out $(VM_IMAGE)

vm: $(VM_STAMP) $(VM_IMAGE)/image.json

sysdeps:
	bash scripts/system-deps.sh

# The web UI: npm installs exactly what ui/package-lock.json pins, Vite builds it (after tsc
# checks it) into the package, where `ember up` serves it at /.
UI_BUILT := src/ember/ui/static/index.html
UI_SOURCES := $(shell find ui -path ui/node_modules -prune -o -type f -print 2>/dev/null)

ui/node_modules/.package-lock.json: ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund --loglevel=error

$(UI_BUILT): ui/node_modules/.package-lock.json $(UI_SOURCES)
	cd ui && npm run --silent build

ui: $(UI_BUILT)

lint: install
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: install
	$(BIN)/mypy

# Regenerate the constraints file from the current environment (after changing pyproject.toml).
lock: install
	$(BIN)/pip freeze --exclude-editable | grep -v '^ember' > requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .coverage ui/node_modules src/ember/ui/static

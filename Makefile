# The single entry point for people and CI. Every target installs what it needs on a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# Node.js 24 LTS comes from the npm registry into node_modules (package.json): the CDK CLI and
# jsii run on it instead of whatever node the machine has (Node 20 is end-of-life).
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Tests never need AWS: no credentials, no region lookups, no metadata service.
TEST_ENV := AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 \
	AWS_EC2_METADATA_DISABLED=true POWERTOOLS_METRICS_DISABLED=true
CDK := npx --no-install cdk
PYTEST_WORKERS ?= 2

.PHONY: help setup synth test test-unit test-infra test-e2e lint format demo soak bench deploy destroy diff clean package

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

setup: $(STAMP) $(NODE_STAMP) ## Create .venv and install the pinned Python and npm tools (idempotent)

synth: setup ## Synthesize the stack into cdk.out/ (no AWS credentials needed)
	$(CDK) synth --quiet --no-notices > /dev/null
	@ls cdk.out/*.template.json

package: setup ## Build the installable wheel (TravisWorker, TravisBuildAction, Lambda code) into dist/
	rm -f dist/codepipeline_travis_worker-*.whl
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir dist .
	@ls dist/codepipeline_travis_worker-*.whl

test: setup ## Run every test suite (unit, infrastructure, end-to-end) and the static gates
	$(TEST_ENV) $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile -q

test-unit: setup ## Unit tests only (fast)
	$(TEST_ENV) $(PY) -m pytest -q -m "not synth and not e2e"

test-infra: setup ## Template assertions, cdk-nag, cfn-lint and asl-validator
	$(TEST_ENV) $(PY) -m pytest -q -m synth

test-e2e: setup ## The worker end to end on the local emulators
	$(TEST_ENV) $(PY) -m pytest -q -m e2e

lint: setup ## ruff (lint + format check) and mypy
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy lambdas/worker stacks local app.py

format: setup ## Apply ruff's formatting and safe fixes
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

demo: setup ## Run the whole worker locally on the embedded emulators and show what happens
	$(TEST_ENV) $(PY) -m local.demo

soak: setup ## Many action runs with injected faults; writes soak-report.json
	$(TEST_ENV) $(PY) -m local.soak --runs 500 --report soak-report.json

bench: setup ## Measure cost and result delay (polling, push) locally; writes bench/report.json, bench/cost.png
	$(TEST_ENV) $(PY) -m local.bench --runs 3 --import-runs 5 --report bench/report.json --chart bench/cost.png

deploy: setup ## Deploy to the AWS account of your current credentials (see README)
	$(CDK) deploy --require-approval broadening

diff: setup ## Show what a deploy would change
	$(CDK) diff

destroy: setup ## Remove the stack (the token secret is retained)
	$(CDK) destroy

clean: ## Remove build output (keeps .venv and node_modules)
	rm -rf cdk.out .build .pytest_cache .mypy_cache .ruff_cache soak-report.json bench-report.json

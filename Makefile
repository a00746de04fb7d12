# Two commands matter: `make demo` (the whole job locally) and `make test` (lint + every test).
# Both set up what they need on a fresh machine: .venv/ with the requirements, Azurite from npm.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint format bench azurite-start azurite-stop devhost clean

setup: $(STAMP) node_modules/.installed

$(STAMP): requirements.txt requirements-local.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-local.txt -r requirements-dev.txt
	touch $(STAMP)

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: setup
	scripts/test.sh

demo: setup
	$(PY) -m scripts.demo

devhost: setup
	scripts/azurite.sh start
	$(PY) -m devhost

bench: setup
	$(PY) bench/coldstart.py
	$(PY) bench/dataprep.py
	$(PY) bench/corpus.py
	$(PY) bench/gateway.py

azurite-start: node_modules/.installed
	scripts/azurite.sh start

azurite-stop:
	scripts/azurite.sh stop

clean:
	scripts/azurite.sh stop || true
	rm -rf .azurite .autotune .pytest_cache .ruff_cache

# HealthCRM developer commands (GNU make).
#
#   make run             venv, local PostgreSQL + Redis, migrate, seed, web + worker + beat + HL7 listener (Ctrl-C stops all)
#   make test            venv, local PostgreSQL + Redis, pytest (PYTEST_ARGS="-k foo -x")
#   make test-fast       no browser, worker or slow walk tests, one wall clock instead of three
#   make lint            ruff check + ruff format --check + lint-imports (the import layers) + mypy
#   make security        bandit over the project's code (CI runs it too)
#   make mutants         apply each sabotage in tests/mutants/ to a scratch copy; its tests must fail (MUTANTS_ARGS="--only '07-*'")
#   make migrate | seed | shell
#   make services-start | services-status | services-stop
#   make clean           stop the services, remove .venv and .data
#
# With DATABASE_URL and/or REDIS_URL in the environment, those servers are used and no local one is
# started (CI does this). Otherwise scripts/devservices.py runs PostgreSQL 16 and Redis from the
# `local` extra under .data/ (ports 54329 and 63799; DEV_PG_PORT / DEV_REDIS_PORT override). `make run`
# stops those it started when it ends; `make test` leaves them running (`make services-stop`).
# make run: PORT (8000), BEAT_LOG_LEVEL and WORKER_LOG_LEVEL (warning).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
SEED_ARGS ?= --if-empty
MUTANTS_ARGS ?=

# Every recipe runs in one bash, stopping at the first failing line: the URLs exported by
# $(with_services) stay set for the recipe's later lines, and a failure's exit code is make's.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help

# Start the local services this checkout manages (a no-op for each one whose URL is already set,
# or that is already running) and export their URLs into the recipe's shell.
define with_services
$(PY) scripts/devservices.py start
devservices_env="$$($(PY) scripts/devservices.py env)"
eval "$$devservices_env"
endef

.PHONY: help venv run test test-fast lint security mutants migrate seed shell services-start services-status services-stop clean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

$(PY):
	$(PYTHON) -c 'import sys; sys.version_info >= (3, 11) or sys.exit("Python >= 3.11 is required, found " + sys.version)'
	$(PYTHON) -m venv $(VENV)

# Reinstalled whenever pyproject.toml changes.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[local,dev]'
	touch $@

venv: $(STAMP)

# Ctrl-C stops the servers and then the local PostgreSQL/Redis this run started (scripts/run.py); a
# failure or Ctrl-C before the servers start stops them too (the EXIT trap). Those that were already
# running keep running.
run: $(STAMP)
	devservices_report="$$($(PY) scripts/devservices.py start --report)" || { eval "$$devservices_report"; \
	  test -z "$${DEVSERVICES_STARTED:-}" || $(PY) scripts/devservices.py stop $$DEVSERVICES_STARTED; exit 1; }
	eval "$$devservices_report"
	trap 'test -z "$${DEVSERVICES_STARTED:-}" || $(PY) scripts/devservices.py stop $$DEVSERVICES_STARTED' EXIT
	devservices_env="$$($(PY) scripts/devservices.py env)"
	eval "$$devservices_env"
	$(PY) manage.py db_bootstrap
	DATABASE_LOGIN=owner $(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo --if-empty
	trap - EXIT
	exec $(PY) scripts/run.py

test: $(STAMP)
	$(with_services)
	$(PY) manage.py db_bootstrap
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(with_services)
	$(PY) manage.py db_bootstrap
	$(PY) -m pytest -m "not browser and not worker and not slow" --wall-clock=chicago-2330 $(PYTEST_ARGS)

# Slow (a test run per entry), so not part of `make test`: run it before a release (README).
mutants: $(STAMP)
	$(with_services)
	$(PY) manage.py db_bootstrap
	$(PY) scripts/mutants.py $(MUTANTS_ARGS)

lint: $(STAMP)
	status=0
	$(VENV)/bin/ruff check . || status=$$?
	$(VENV)/bin/ruff format --check . || status=$$?
	$(VENV)/bin/lint-imports || status=$$?
	$(VENV)/bin/mypy || status=$$?
	exit $$status

migrate: $(STAMP)
	$(with_services)
	$(PY) manage.py db_bootstrap
	DATABASE_LOGIN=owner $(PY) manage.py migrate --noinput

seed: $(STAMP)
	$(with_services)
	$(PY) manage.py seed_demo $(SEED_ARGS)

shell: $(STAMP)
	$(with_services)
	$(PY) manage.py shell

services-start: $(STAMP)
	$(with_services)

services-status:
	$(if $(wildcard $(PY)),$(PY),$(PYTHON)) scripts/devservices.py status

# Works without the venv too: stopping needs no server binaries.
services-stop:
	$(if $(wildcard $(PY)),$(PY),$(PYTHON)) scripts/devservices.py stop

clean: services-stop
	rm -rf $(VENV) .data

# bandit (config: [tool.bandit] in pyproject.toml; skips and per-line nosec say why).
security: $(STAMP)
	$(VENV)/bin/bandit -q -c pyproject.toml -r healthcrm compliance patients engagement integrations analytics staff

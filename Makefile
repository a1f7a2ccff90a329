# ParkSpot: `make run` to start everything, `make test` to run the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
LOCALSTRIPE_PORT ?= 8420

.PHONY: run dev test lint bench setup venv clean cluster cluster-drill cluster-clean cluster-deps

# A virtualenv with the pinned runtime; re-installed when requirements change.
$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ParkSpot needs Python 3.11 or newer")'
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3-venv is missing; installing it (Debian/Ubuntu)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq python3-venv; fi; \
	  $(PYTHON) -m venv $(VENV); }
	@$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

setup: $(VENV)/.dev
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py seed_demo

# With no real Stripe key, everything talks to localstripe on loopback (started
# as one of the Procfile's processes); with one, localstripe is left out.
STRIPE_LOCAL = if [ -z "$$STRIPE_SECRET_KEY" ]; then \
	  export STRIPE_SECRET_KEY=sk_test_localstripe STRIPE_PUBLISHABLE_KEY=pk_test_localstripe \
	    STRIPE_WEBHOOK_SECRET=whsec_localstripe LOCALSTRIPE_PORT=$(LOCALSTRIPE_PORT) \
	    STRIPE_API_BASE=http://127.0.0.1:$(LOCALSTRIPE_PORT); processes=""; \
	else processes="web worker beat"; fi

# /metrics adds up the counters of every process of the run (the web server's
# workers, the Celery worker): they share one directory, var/metrics/run-<port>
# (or PROMETHEUS_MULTIPROC_DIR), emptied here before any of them starts.
METRICS_DIR = export PROMETHEUS_MULTIPROC_DIR="$${PROMETHEUS_MULTIPROC_DIR:-$(CURDIR)/var/metrics/run-$(PORT)}"; \
	mkdir -p "$$PROMETHEUS_MULTIPROC_DIR"; \
	find "$$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name '*.db' -delete

# Serves as production does: gunicorn (config/gunicorn.py), debug off, static
# files through whitenoise, with the worker, beat and localstripe beside it.
# Every process logs JSON lines (LOG_FORMAT=json unless set; config/logs.py).
run: setup
	@echo "ParkSpot at http://127.0.0.1:$(PORT)  (API docs /api/v1/docs/, staff /admin/, /metrics)"
	@$(STRIPE_LOCAL); $(METRICS_DIR); \
	PATH="$(CURDIR)/$(BIN):$$PATH" DJANGO_DEBUG=0 WEB_PORT=$(PORT) LOG_FORMAT="$${LOG_FORMAT:-json}" \
	  exec $(BIN)/honcho start -f Procfile $$processes

# For changing code: Django's auto-reloading development server, debug on,
# readable log lines (LOG_FORMAT=plain unless set).
dev: setup
	@echo "ParkSpot (development server, debug on) at http://127.0.0.1:$(PORT)"
	@$(STRIPE_LOCAL); $(METRICS_DIR); \
	PATH="$(CURDIR)/$(BIN):$$PATH" DJANGO_DEBUG=1 WEB_PORT=$(PORT) LOG_FORMAT="$${LOG_FORMAT:-plain}" \
	  exec $(BIN)/honcho start -f Procfile.dev $$processes

test: $(VENV)/.dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(VENV)/.dev
	$(BIN)/python bench/run.py

# --- Cluster (docs/scaling.md): etcd, two Patroni nodes, HAProxy, Redis, two web
# nodes with their workers and beats, nginx; on one machine, in the foreground
# (Ctrl-C stops it all). Never part of `make test` or CI.
CLUSTER_PACKAGES := patroni etcd-server haproxy nginx-light redis-server postgresql-15
cluster-deps:
	@missing=""; for tool in patroni etcd haproxy nginx redis-server /usr/lib/postgresql/15/bin/postgres; do \
	  command -v $$tool >/dev/null 2>&1 || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing the cluster's Debian packages: $(CLUSTER_PACKAGES)"; \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo=sudo; fi; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq \
	    --no-install-recommends $(CLUSTER_PACKAGES) >/dev/null; fi

# The dev requirements too: localstripe (as `make run`).
cluster: cluster-deps $(VENV)/.dev
	@exec $(BIN)/python deploy/cluster/cluster.py

# Against a running `make cluster` (another terminal): kill web node 8001, then
# the database leader, under load; fails unless nothing was lost or double-booked
# and writes resumed within 45 s.
cluster-drill: $(VENV)/.runtime
	@$(BIN)/python deploy/cluster/drill.py

# Removes the cluster's data (stop `make cluster` first): the next one starts afresh.
cluster-clean:
	@if [ -f var/cluster/pg-data-root ]; then rm -rf "$$(cat var/cluster/pg-data-root)"; fi
	rm -rf var/cluster

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache

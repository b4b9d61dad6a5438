# The two commands: `make run` and `make test`. Both set up what they need first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8083
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/secureconnect
export TEST_DATABASE_URL

.PHONY: run test e2e bench lint migrate venv clean

$(VENV)/.runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.test: requirements-test.txt $(VENV)/.runtime
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

$(VENV)/.bench: requirements-bench.txt $(VENV)/.test
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	touch $@

venv: $(VENV)/.runtime

migrate: $(VENV)/.runtime
	$(PY) manage.py migrate --no-input

## Set up and start the service on http://$(HOST):$(PORT) (embedded SQLite unless DATABASE_URL or DB_HOST is set).
run: migrate
	$(PY) manage.py runserver $(HOST):$(PORT)

lint: $(VENV)/.test
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

## Set up and run the whole suite: lint, everything on PostgreSQL, the portable part on SQLite.
test: lint
	$(PY) manage.py check
	$(PY) -m pytest
	TEST_DATABASE_URL=sqlite:///$(CURDIR)/var/test-portable.sqlite3 $(PY) -m pytest -m portable -q

## Only the browser end-to-end tests (headless Chromium from `apt-get install chromium`); screenshots in test-artifacts/e2e/.
e2e: $(VENV)/.test
	$(PY) -m pytest tests/e2e

## Every benchmark and drill (bench/README.md; about 15 minutes, loopback only), then the plots and
## results into docs/benchmarks/. A failing drill is reported and the rest still run.
bench: $(VENV)/.bench
	$(PY) -m bench.relay
	$(PY) -m bench.rest
	$(PY) -m bench.rest --server uvicorn
	$(PY) -m bench.history
	$(PY) -m bench.connections
	-$(PY) -m bench.drills.db_outage
	-$(PY) -m bench.drills.redis_outage
	-$(PY) -m bench.drills.kill_restart
	$(PY) -m bench.report --markdown

clean:
	rm -rf $(VENV) var .pytest_cache

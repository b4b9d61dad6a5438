# The two commands: `make run` and `make test`. Both set up what they need first.
#
# Each has a virtualenv of its own: `make run` uses $(VENV), `make test` (and lint, e2e, bench)
# $(TEST_VENV). Installing test tools never touches the files a running `make run` has loaded,
# so its autoreloader does not restart the dev server (and drop live calls) during `make test`.
PYTHON ?= python3
VENV ?= .venv
TEST_VENV ?= .venv-test
PY := $(VENV)/bin/python
TEST_PY := $(TEST_VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8083
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/secureconnect
export TEST_DATABASE_URL

.PHONY: run test e2e bench lint migrate venv lock clean

# Installs come only from the hashed lock files (`make lock` writes them from requirements*.txt):
# every package, transitive ones included, at one version with its hashes.
PIP_INSTALL := $(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --only-binary=:all:
TEST_PIP_INSTALL := $(TEST_PY) -m pip install --quiet --disable-pip-version-check --require-hashes --only-binary=:all:

$(VENV)/.runtime: requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -r requirements.lock
	touch $@

$(TEST_VENV)/.test: requirements-test.lock
	$(PYTHON) -m venv $(TEST_VENV)
	$(TEST_PIP_INSTALL) -r requirements-test.lock
	touch $@

$(TEST_VENV)/.bench: requirements-bench.lock $(TEST_VENV)/.test
	$(TEST_PIP_INSTALL) -r requirements-bench.lock
	touch $@

venv: $(VENV)/.runtime

migrate: $(VENV)/.runtime
	$(PY) manage.py migrate --no-input

## Set up and start the service on http://$(HOST):$(PORT) (embedded SQLite unless DATABASE_URL or DB_HOST is set);
## `make run PORT=8091` for another port.
run: migrate
	$(PY) manage.py runserver $(HOST):$(PORT)

## Formatting, lint and the import contracts (pyproject.toml [tool.importlinter]: the layers).
lint: $(TEST_VENV)/.test
	$(TEST_VENV)/bin/ruff format --check .
	$(TEST_VENV)/bin/ruff check .
	$(TEST_VENV)/bin/lint-imports --no-cache --no-logo

## Set up and run the whole suite: lint, everything on PostgreSQL, the portable part on SQLite.
test: lint
	$(TEST_PY) manage.py check
	$(TEST_PY) -m pytest
	TEST_DATABASE_URL=sqlite:///$(CURDIR)/var/test-portable.sqlite3 $(TEST_PY) -m pytest -m portable -q

## Only the browser end-to-end tests (headless Chromium from `apt-get install chromium`); screenshots in test-artifacts/e2e/.
e2e: $(TEST_VENV)/.test
	$(TEST_PY) -m pytest tests/e2e

## Every benchmark and drill (bench/README.md; about 15 minutes, loopback only), then the plots and
## results into docs/benchmarks/. A failing drill is reported and the rest still run.
bench: $(TEST_VENV)/.bench
	$(TEST_PY) -m bench.relay
	$(TEST_PY) -m bench.rest
	$(TEST_PY) -m bench.rest --server uvicorn
	$(TEST_PY) -m bench.history
	$(TEST_PY) -m bench.replay
	$(TEST_PY) -m bench.connections
	-$(TEST_PY) -m bench.drills.db_outage
	-$(TEST_PY) -m bench.drills.redis_outage
	-$(TEST_PY) -m bench.drills.kill_restart
	$(TEST_PY) -m bench.report --markdown

## Re-resolve the lock files after a change to requirements*.txt. pip-tools runs in its own
## virtualenv (.venv-lock), never in the service's. The widest lock is resolved first and seeds the
## narrower ones, so a package has the same version in all three; existing pins are kept
## (LOCK_FLAGS=--upgrade to move everything to the newest allowed versions).
PIP_TOOLS_VERSION ?= 7.6.2
LOCK_FLAGS ?=
PIP_COMPILE = .venv-lock/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links --no-emit-trusted-host
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --disable-pip-version-check pip-tools==$(PIP_TOOLS_VERSION)
	$(PIP_COMPILE) $(LOCK_FLAGS) --output-file requirements-bench.lock requirements-bench.txt
	cp requirements-bench.lock requirements-test.lock
	$(PIP_COMPILE) --output-file requirements-test.lock requirements-test.txt
	cp requirements-test.lock requirements.lock
	$(PIP_COMPILE) --output-file requirements.lock requirements.txt

clean:
	rm -rf $(VENV) $(TEST_VENV) .venv-lock var .pytest_cache

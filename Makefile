# The two commands of the README: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DBT    := $(BIN)/dbt

# No network at build time: dbt's anonymous usage statistics stay off.
export DO_NOT_TRACK := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false

.PHONY: setup demo test test-dbt test-python lint bench clean

setup: $(VENV)/.installed profiles.yml data/.gitkeep

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

profiles.yml:
	cp profiles.example.yml profiles.yml

data/.gitkeep:
	mkdir -p data && touch $@

## demo: build the bundled sample and show what would be sent
demo: setup
	$(DBT) build
	$(DBT) show --select line_capi_payload --limit 5 --output json

## test: every test: dbt unit and data tests on the sample, then pytest
test: setup test-dbt test-python

test-dbt: setup
	mkdir -p target/test && LINE_CAPI_DUCKDB=target/test/line_capi.duckdb $(DBT) build --target-path target/test

test-python: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check sender tests bench

clean:
	rm -rf target logs data/*.duckdb data/*.duckdb.wal

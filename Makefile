# The two commands of the README: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DBT    := $(BIN)/dbt

# No network at build time: dbt's anonymous usage statistics stay off.
export DO_NOT_TRACK := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false

.PHONY: setup venv-check setup-spark demo test test-dbt test-python test-spark lint bench bench-quick clean

setup: venv-check $(VENV)/.installed profiles.yml data/.gitkeep

# A .venv made in another folder (a checkout copied or moved with it) starts that folder's
# Python from its scripts, and its editable install reads that folder's code: made again here.
# pip writes the Python's path on the first line, or on a later one after #!/bin/sh when the path
# is long or holds a space: the script names this folder's Python (python or python3) in its head.
venv-check:
	@if [ -e $(BIN)/sender ] && ! head -n 3 $(BIN)/sender | grep -qF '$(CURDIR)/$(BIN)/python'; then \
		echo "make: $(VENV) was made in another folder ($$(head -n 1 $(BIN)/sender)), not here: making it again" >&2; \
		rm -rf $(VENV); \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# The tests also compare the project on Spark (tests/test_spark.py): pyspark, about 500 MB that
# the demo does not need.
setup-spark: setup $(VENV)/.installed-spark

$(VENV)/.installed-spark: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,spark]'
	touch $@

profiles.yml:
	cp profiles.example.yml profiles.yml

data/.gitkeep:
	mkdir -p data && touch $@

## demo: the hourly job (sender run) on the bundled sample, sent to a local LINE-compatible server
# DEMO_PORT: the local server's port, one port for every demo (the ledger keeps each endpoint
# apart). The run goes to the server the demo started, by the port it says it listens on.
DEMO_PORT ?= 8787
# The demo's own files and settings, whatever the shell exports: a LINE_CAPI_DUCKDB, run log,
# alert webhook, heartbeat URL or token file of a real job set there must never receive the
# sample's run.
# DEMO_DUCKDB: another file when data/line_capi.duckdb is a real job's (sender run refuses to
# build the sample into a database whose ledger has sent to LINE).
DEMO_DUCKDB ?= data/line_capi.duckdb
# dbt's profile too: a DBT_PROFILES_DIR (or DBT_PROFILE, DBT_TARGET) of a real job whose profile
# names its own path would have dbt build the sample into that job's database.
DEMO_FILES := LINE_CAPI_DUCKDB=$(DEMO_DUCKDB) LINE_CAPI_RUN_LOG=$(basename $(DEMO_DUCKDB))_run.log \
              DBT_PROFILES_DIR='$(CURDIR)' DBT_PROFILE= DBT_TARGET= DBT_TARGET_PATH= DBT_LOG_PATH=
DEMO_ENV  := $(DEMO_FILES) \
             LINE_TAG_ID=00000000-0000-4000-8000-000000000000 LINE_ACCESS_TOKEN=mock-token \
             LINE_ACCESS_TOKEN_FILE= LINE_CHANNEL_ID=1234567890 \
             LINE_CAPI_ALERT_WEBHOOK= LINE_CAPI_ALERT_WEBHOOK_FILE= \
             LINE_CAPI_HEARTBEAT_URL= LINE_CAPI_HEARTBEAT_URL_FILE=
demo: setup
	@set -e; \
	free=0; $(BIN)/python -c 'import socket, sys; p = sys.argv[1]; p.isdigit() and 0 < int(p) < 65536 or sys.exit(2); s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(p)))' '$(DEMO_PORT)' 2>/dev/null || free=$$?; \
	[ $$free != 2 ] || { echo "make demo: DEMO_PORT must be a port number, 1 to 65535, not '$(DEMO_PORT)'" >&2; exit 2; }; \
	[ $$free = 0 ] || { echo "make demo: port $(DEMO_PORT) is in use (an earlier demo's server?); run make demo DEMO_PORT=<a free port>" >&2; exit 1; }; \
	said=$$(mktemp); \
	$(DEMO_ENV) $(BIN)/sender mock-server --port $(DEMO_PORT) --quiet 2>$$said & server=$$!; \
	trap 'kill $$server 2>/dev/null || true; wait $$server 2>/dev/null || true; sed -n "/mock-server: stopped/p" $$said >&2; rm -f $$said' EXIT; \
	url=; for _ in $$(seq 600); do \
		url=$$(sed -n 's|.* mock-server: listening on \(http://127\.0\.0\.1:[0-9]*\) .*|\1|p' $$said); \
		[ -z "$$url" ] && kill -0 $$server 2>/dev/null || break; sleep 0.1; \
	done; \
	[ -n "$$url" ] || { cat $$said >&2; echo "make demo: the local LINE server did not start (or did not say it listens within a minute)" >&2; exit 1; }; \
	sed -n "/mock-server: listening/p" $$said >&2; \
	$(DEMO_ENV) LINE_CAPI_ENDPOINT=$$url $(BIN)/sender run --export-dir sample/karte_export; \
	$(DEMO_FILES) $(BIN)/sender status

## test: every test: dbt unit and data tests on the sample, then pytest
test: setup-spark test-dbt test-python

# A new database each time: line_capi_coverage is incremental, and would keep an earlier build's
# columns and rows.
test-dbt: setup
	mkdir -p target/test && rm -f target/test/line_capi.duckdb target/test/line_capi.duckdb.wal
	KARTE_EXPORT_DIR= LINE_CAPI_DUCKDB=target/test/line_capi.duckdb $(DBT) build --target-path target/test \
		--vars '{karte_export_dir: sample/karte_export}'

test-python: setup-spark
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations 15

## test-spark: only the DuckDB-vs-Spark comparison (needs Java 17)
test-spark: setup-spark
	LINE_CAPI_REQUIRE_SPARK=1 $(BIN)/python -m pytest tests/test_spark.py

## bench: synthetic exports at 100k and 1M conversions, then the benchmark table (docs/bench.md)
bench: setup
	$(BIN)/python bench/run.py --markdown bench/out/table.md $(BENCH_ARGS)

bench-quick: setup
	$(BIN)/python bench/run.py --quick

## lint: ruff (lint and format) over the Python, sqlfluff over the SQL of models/, macros/ and tests/dbt/ (.sqlfluff)
lint: setup
	$(BIN)/ruff check sender tests bench datahub lint
	$(BIN)/ruff format --check sender tests bench datahub lint
	$(BIN)/sqlfluff lint models macros tests/dbt

# Not data/: a job's database there holds its send ledger, which no build makes again (the demo's
# database can go with `rm data/line_capi.duckdb*`).
clean:
	rm -rf target logs

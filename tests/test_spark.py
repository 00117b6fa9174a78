"""The same dbt project on Apache Spark (dbt-spark, session method, local pyspark) and on DuckDB:
line_capi_payload and line_capi_rejected must hold the same rows and the same JSON objects.

Skipped only when pyspark is not importable and LINE_CAPI_REQUIRE_SPARK is unset; CI sets it, so
a missing pyspark or Java fails there instead of skipping. Spark's tables are read from the Parquet
files of its warehouse folder (no second JVM), which is also how the sender gets a Spark-built
payload: docs/spark.md, "The sender and a Spark-built table".

Every Spark command of this module runs in one Spark session (tests/spark_dbt.py), each build's
tables in a schema of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import ipaddress
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import duckdb
import pytest
from pipeline_fixtures import (
    HOURLY_BUILD,
    PROFILE_EXAMPLE,
    SAMPLE_DIR,
    DbtResult,
    rewrite_export,
    run_dbt,
    write_export,
)
from sender_fixtures import invoke, sender_env
from spark_dbt import SparkDbt, profile_with_schema
from spark_fixtures import (
    AS_OF,
    HOUR,
    TYPED_TIMES,
    T,
    edge_tables,
    shift_jis_copy,
    write_mixed_export,
)
from test_pipeline import export_tables

from sender.build_info import check_build
from sender.dbt_output import check_duckdb_adapter
from sender.errors import RunError

HAS_PYSPARK = importlib.util.find_spec("pyspark") is not None
pytestmark = pytest.mark.skipif(
    not HAS_PYSPARK and not os.environ.get("LINE_CAPI_REQUIRE_SPARK"),
    reason="pyspark is not installed (pip install 'dbt-spark[session]'); "
    "set LINE_CAPI_REQUIRE_SPARK=1 to make this a failure",
)


def load_payload_sql(parquet_dir: Path) -> str:
    """The statement of docs/spark.md that gives the sender a Spark-built payload."""
    return (
        "create or replace table line_capi_payload as "
        f"select * from read_parquet('{parquet_dir}/*.parquet') "
        "order by event_timestamp, deduplication_key"
    )


def load_table_sql(table: str, parquet_dir: Path) -> str:
    """The statement of docs/spark.md that loads what the Spark build was made from
    (line_capi_build_info) and its coverage (line_capi_coverage)."""
    return (
        f"create or replace table {table} as select * from read_parquet('{parquet_dir}/*.parquet')"
    )


class SparkBuild:
    def __init__(self, result: DbtResult, spark_dir: Path, schema: str):
        self.returncode, self.output = result.returncode, result.output
        self.spark_dir, self.schema = spark_dir, schema
        self.warehouse = spark_dir / "warehouse" / f"{schema}.db"

    def table_dir(self, table: str) -> Path:
        return self.warehouse / table

    def rows(self, table: str, columns: str = "*", where: str = "true") -> list[tuple]:
        with duckdb.connect() as con:
            return con.sql(
                f"select {columns} from read_parquet('{self.table_dir(table)}/*.parquet')"
                f" where {where}"
            ).fetchall()


# What dbt prints when the JVM under it went away: a crash, or a kill from outside (the OOM
# killer), during the command or (connection refused) before it. Not a SQL or dbt failure: such a
# build is run once more in a new session, and the test says so.
JVM_GONE = (
    "Py4JNetworkError",
    "Answer from Java side is empty",
    "Connection reset by peer",
    "[Errno 111] Connection refused",
)


def spark_diagnostics(spark_dir: Path, output: str) -> str:
    """The end of dbt's output, then what the machine had: the last lines of an assertion
    message are what a CI log's tail shows."""
    lines = [output[-6000:], f"--- Spark build under {spark_dir}"]
    for crash_log in sorted(spark_dir.glob("hs_err_pid*.log")):
        lines += [f"--- JVM crash log {crash_log.name}:", crash_log.read_text()[:3000]]
    meminfo = dict(
        line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line
    )
    usage = shutil.disk_usage(spark_dir if spark_dir.exists() else spark_dir.parent)
    lines.append(
        f"--- MemAvailable {meminfo.get('MemAvailable', '?').strip()}, "
        f"free disk {usage.free // 2**20} MiB, load {os.getloadavg()}"
    )
    return "\n".join(lines)


def run_spark(
    server: SparkDbt, tmp: Path, *args: str, schema: str, export: Path, vars: dict | None = None
) -> DbtResult:
    """`dbt <args> --target spark` in the server's session, the tables in ``schema``."""
    return run_dbt(
        tmp,
        *args,
        "--target",
        "spark",
        export_dir=export,
        vars={"as_of": AS_OF, **(vars or {})},
        profile=profile_with_schema(PROFILE_EXAMPLE, schema),
        runner=server.run,
    )


def run_spark_build(
    server: SparkDbt,
    tmp: Path,
    export: Path,
    spark_args: tuple[str, ...],
    schema: str,
    vars: dict | None = None,
    before: tuple[str, ...] = (),
    before_vars: dict | None = None,
) -> SparkBuild:
    """`dbt build --target spark` (after the dbt command ``before``, with ``before_vars``) in
    ``schema``; once more, in a new session, if the JVM went away."""
    commands = [(before, before_vars)] if before else []
    commands.append((("build", *spark_args), vars))
    for attempt in (1, 2):
        run_dir = tmp / f"spark-run-{attempt}"
        for args, args_vars in commands:
            spark = run_spark(server, run_dir, *args, schema=schema, export=export, vars=args_vars)
            if spark.returncode != 0:
                break
        else:
            return SparkBuild(spark, server.spark_dir, schema)
        if attempt == 1 and any(sign in spark.output for sign in JVM_GONE):
            warnings.warn(
                "the JVM under the Spark build went away; building again in a new session\n"
                + spark_diagnostics(server.spark_dir, spark.output)[-3000:],
                stacklevel=2,
            )
            server.restart()
            continue
        break
    raise AssertionError(
        f"dbt {args[0]} --target spark failed\n" + spark_diagnostics(server.spark_dir, spark.output)
    )


def build_both(
    server: SparkDbt,
    tmp: Path,
    export: Path,
    spark_args: tuple[str, ...],
    schema: str,
    vars: dict | None = None,
    **spark: Any,
) -> tuple:
    """The DuckDB build of ``export``, and the Spark build in ``schema`` (run_spark_build's
    ``before`` and ``before_vars``; ``spark_export`` and ``spark_vars`` in place of or beside the
    DuckDB ones)."""
    all_vars = {"as_of": AS_OF, **(vars or {})}
    duck = run_dbt(tmp / "duckdb", *HOURLY_BUILD, export_dir=export, vars=all_vars)
    assert duck.returncode == 0, duck.output
    spark_vars = {**(vars or {}), **spark.pop("spark_vars", {})}
    spark_export = spark.pop("spark_export", export)
    return duck, run_spark_build(server, tmp, spark_export, spark_args, schema, spark_vars, **spark)


def _mkdirs(tmp: Path) -> Path:
    (tmp / "duckdb").mkdir(parents=True, exist_ok=True)
    return tmp


@pytest.fixture(scope="module")
def spark_server(tmp_path_factory):
    """The Spark session every command of this module runs in."""
    server = SparkDbt(tmp_path_factory.mktemp("spark-session"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fixture_builds(spark_server, tmp_path_factory):
    """The pipeline's fixture export plus edge rows, Parquet and CSV tables; the Spark build runs
    the unit tests and data tests too. On Spark the tables are read as a warehouse's own (var
    karte_catalog_tables): a seed run's hook registers the files as tables of karte_export, and
    the build reads that schema, with the unit tests, which name an export folder of their own."""
    tmp = _mkdirs(tmp_path_factory.mktemp("spark-fixtures"))
    export = write_mixed_export(tmp / "export", edge_tables())
    # its CSV files in Shift_JIS, which Spark reads as they are (DuckDB needs UTF-8)
    shift_jis = shift_jis_copy(export, tmp / "export-shift-jis")
    encoding = {"karte_export_encoding": "windows-31j"}
    catalog = {"karte_catalog_tables": True, "karte_source_schema": "karte_export", **encoding}
    return build_both(
        spark_server,
        tmp,
        export,
        (),
        "line_capi_fixtures",
        spark_export=shift_jis,
        spark_vars=catalog,
        before=("seed",),
        before_vars=encoding,
    )


@pytest.fixture(scope="module")
def sample_builds(spark_server, tmp_path_factory):
    """The bundled sample (CSV) at a fixed as_of; data tests, no unit tests (they ran above)."""
    tmp = _mkdirs(tmp_path_factory.mktemp("spark-sample"))
    return build_both(
        spark_server, tmp, SAMPLE_DIR, ("--exclude-resource-type", "unit_test"), "line_capi_sample"
    )


@pytest.fixture(scope="module")
def typed_builds(spark_server, tmp_path_factory):
    """The pipeline's fixture export as Parquet with typed times: conversions a `timestamp_ntz`
    of Japan time (a BigQuery DATETIME, with var karte_export_utc_offset '+09:00'), page views a
    `timestamp` (an instant), LINE logins a `date`, phones an integer that lost its leading 0.
    Models only on Spark: no unit tests (Spark's cast of their fixtures to these types fails), and
    no data tests (the two builds above run them on Spark; the DuckDB build runs them here)."""
    tmp = _mkdirs(tmp_path_factory.mktemp("spark-typed"))
    export = rewrite_export(
        write_export(tmp / "text", export_tables(), "csv"), tmp / "export", "parquet", TYPED_TIMES
    )
    vars = {"karte_export_utc_offset": "+09:00"}
    return build_both(
        spark_server,
        tmp,
        export,
        ("--exclude-resource-type", "unit_test", "--exclude-resource-type", "test"),
        "line_capi_typed",
        vars,
    )


def payload_objects(rows) -> dict[str, dict]:
    objects = {key: json.loads(payload) for key, payload in rows}
    assert len(objects) == len(rows), "duplicate deduplication_key"
    return objects


def flat_rows(rows) -> list[tuple]:
    """Rows with the payload parsed (key order ignored), as a sorted multiset."""
    return sorted(((json.dumps(json.loads(r[0]), sort_keys=True), *r[1:]) for r in rows), key=repr)


PAYLOAD_COLUMNS = (
    "payload, deduplication_key, event_name, event_timestamp, has_line_uid, converted_at"
)
# line_capi_payload_fields, a view: on Spark read from the table it shows (reason is null)
FIELDS_COLUMNS = (
    "deduplication_key, event_name, user_id, click_id, browser_id, email_sha256, phone_sha256, "
    "line_uid, web_url, web_referrer, web_title, web_ip_address, web_user_agent, custom_currency, "
    "custom_item_ids_json, custom_value, custom_quantity, event_timestamp"
)
REJECTED_COLUMNS = (
    "transaction_id, deduplication_key, event_name, user_id, pv_id, reason, sync_date, "
    "event_timestamp, converted_at"
)
# the coverage of each build, without what differs between two builds (dbt's id, start time)
COVERAGE_COLUMNS = "* exclude (invocation_id, built_at)"


def assert_same_outputs(duck: DbtResult, spark: SparkBuild) -> None:
    duck_payload = duck.rows("select deduplication_key, payload from line_capi_payload")
    spark_payload = spark.rows("line_capi_payload", "deduplication_key, payload")
    assert payload_objects(spark_payload) == payload_objects(duck_payload)
    assert flat_rows(spark.rows("line_capi_payload", PAYLOAD_COLUMNS)) == flat_rows(
        duck.rows(f"select {PAYLOAD_COLUMNS} from line_capi_payload")
    )
    spark_fields = spark.rows("int_conversions_joined", FIELDS_COLUMNS, where="reason is null")
    duck_fields = duck.rows(f"select {FIELDS_COLUMNS} from line_capi_payload_fields")
    assert sorted(spark_fields, key=repr) == sorted(duck_fields, key=repr)
    assert sorted(spark.rows("line_capi_rejected", REJECTED_COLUMNS), key=repr) == sorted(
        duck.rows(f"select {REJECTED_COLUMNS} from line_capi_rejected"), key=repr
    )
    assert sorted(spark.rows("line_capi_coverage", COVERAGE_COLUMNS), key=repr) == sorted(
        duck.rows(f"select {COVERAGE_COLUMNS} from line_capi_coverage"), key=repr
    )


def test_fixture_export_same_rows_and_json_on_spark_and_duckdb(fixture_builds):
    duck, spark = fixture_builds
    assert_same_outputs(duck, spark)
    # on Spark read as catalog tables, unit tests included
    assert spark.rows("line_capi_build_info", "export_location") == [("catalog:karte_export",)]
    # `sender run -- --target spark` stops as soon as dbt names its adapter, before the build
    # (the push sends from the DuckDB file); a DuckDB build's lines go through
    with pytest.raises(
        RunError, match="sender run builds on DuckDB only, and the dbt target is spark"
    ):
        check_duckdb_adapter(spark.output.splitlines())
    check_duckdb_adapter(duck.output.splitlines())
    assert "PASS stg_karte__conversions::rule_03_sync_date_to_unix_seconds" in spark.output
    payloads = payload_objects(
        duck.rows("select deduplication_key, payload from line_capi_payload")
    )
    # the edge rows reached the payload, so the comparison above covered them
    assert {
        "EDGE-Z",
        "EDGE-HHMM",
        "EDGE-NAIVE",
        "EDGE-NOSEC",
        "EDGE-FRAC",
        "EDGE-EPOCH",
        "EDGE-MS",
        "EDGE-EPOCH-FLOAT",
        "EDGE-MS-FLOAT",
        "EDGE-LOWER-Z",
        "EDGE-BQ-UTC",
        "EDGE-GMT",
    } <= set(payloads)
    times = {key: payloads[key]["event"]["event_timestamp"] for key in payloads}
    assert times["EDGE-BQ-UTC"] == times["EDGE-GMT"] == times["EDGE-Z"]  # UTC and GMT are Z
    assert (
        payloads["EDGE-EPOCH-FLOAT"]["event"]["event_timestamp"]
        == payloads["EDGE-EPOCH"]["event"]["event_timestamp"]
    )
    assert payloads["EDGE-Z"]["user"]["click_id"] == "Abc-1"  # not Newer_1 + line break
    assert payloads["EDGE-HHMM"]["user"]["click_id"] == "Old_2"  # `a+b` is not a click id
    assert "email" in payloads["EDGE-HHMM"]["user"]  # a\vb@example.com is an address for RE2
    assert payloads["EDGE-NAIVE"]["user"]["click_id"] == "Old_3"
    assert "value" not in payloads["EDGE-NOSEC"].get("custom", {})  # 12d is not a number
    assert len(payloads["EDGE-HHMM"]["custom"]["item_ids"]) == 100
    reasons = dict(duck.rows("select transaction_id, reason from line_capi_rejected"))
    assert reasons["EDGE-BAD"] == reasons["EDGE-UTC-NOSPACE"] == "invalid_sync_date"
    assert reasons["EDGE-NOID"] == "no_user_identifier"
    assert payloads["EDGE-EPOCH-FLOAT"]["custom"]["value"] == 1980
    phone = hashlib.sha256(b"+819012345678").hexdigest()  # not +8190123456780
    assert payloads["EDGE-PHONE-FLOAT"]["user"]["phone"] == phone
    assert "email" not in payloads["EDGE-PHONE-FLOAT"]["user"]  # \N is no user, on both engines
    assert reasons["EDGE\nKEY"] == "invalid_deduplication_key"
    assert reasons["None"] == reasons["NaN"] == reasons["-"] == "invalid_deduplication_key"
    uk_phone = hashlib.sha256(b"+442079460958").hexdigest()  # not +4402079460958
    assert payloads["EDGE-UK-PHONE"]["user"]["phone"] == uk_phone
    ips = {key: payloads[key]["web"]["ip_address"] for key in payloads if key.startswith("EDGE-IP")}
    assert ips == {
        "EDGE-IP-LIST": "203.0.113.5",
        "EDGE-IP-PORT": "2001:db8::2",
        "EDGE-IP-V4-PORT": "203.0.113.7",
    }
    assert "phone" not in payloads["EDGE-IP-LIST"]["user"]  # an extension's digits: no number


def test_typed_times_same_rows_and_json_on_spark_and_duckdb(typed_builds):
    duck, spark = typed_builds
    assert_same_outputs(duck, spark)
    payloads = payload_objects(spark.rows("line_capi_payload", "deduplication_key, payload"))
    # the Japan time without its offset is read at +09:00 (ORD-1 was two hours before as_of),
    # the instants of the page views as they are (ORD-1's click id comes from one of them)
    assert payloads["ORD-1"]["event"]["event_timestamp"] == T - 2 * HOUR
    assert payloads["ORD-1"]["user"]["click_id"]
    assert "phone" in payloads["ORD-1"]["user"]
    # a typed instant is kept as ISO 8601 text in UTC, on both engines (ORD-3 was at T - 4 h)
    assert spark.rows("line_capi_rejected", "sync_date", "transaction_id = 'ORD-3'") == [
        ("2026-02-28T23:00:00Z",)
    ]


def test_sample_export_same_rows_and_json_on_spark_and_duckdb(sample_builds):
    duck, spark = sample_builds
    assert_same_outputs(duck, spark)
    assert len(spark.rows("line_capi_payload", "payload")) >= 30


def test_sender_reads_a_spark_built_payload_loaded_into_duckdb(fixture_builds, tmp_path):
    """The docs/spark.md recipe: one statement turns the Parquet files into the table `sender`
    reads, with the same columns, types, rows and row order as a DuckDB build."""
    duck, spark = fixture_builds
    database = tmp_path / "sender.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute(load_payload_sql(spark.table_dir("line_capi_payload")))
        for table in ("line_capi_build_info", "line_capi_coverage"):
            con.execute(load_table_sql(table, spark.table_dir(table)))
        loaded_types = con.sql("describe line_capi_payload").fetchall()
        loaded = con.sql(f"select {PAYLOAD_COLUMNS} from line_capi_payload").fetchall()
        # the sender accepts the loaded pair as one finished build of a real export
        info = check_build(con, "https://conversion-api.tr.line.me")
        assert info.payload_rows == len(loaded) and not info.is_sample
    with duck.connect() as con:
        built_types = con.sql("describe line_capi_payload").fetchall()
        built = con.sql(f"select {PAYLOAD_COLUMNS} from line_capi_payload").fetchall()
    assert [(c[0], c[1]) for c in loaded_types] == [(c[0], c[1]) for c in built_types]
    assert [r[1] for r in loaded] == [r[1] for r in built]  # event_timestamp, key order
    assert flat_rows(loaded) == flat_rows(built)
    # status reads the loaded coverage, as after a DuckDB build
    status = invoke(["status"], sender_env(database))
    assert status.exit_code == 0, status.stderr
    assert "no coverage yet" not in status.stdout and "sendable" in status.stdout


def test_coverage_history_on_spark_appends_and_prunes(spark_server, fixture_builds, tmp_path):
    """line_capi_coverage on Parquet: a second run appends its rows, and the retention rewrites
    the table without the rows of a build more than coverage_retention_days old."""
    duck, spark = fixture_builds
    table = spark.table_dir("line_capi_coverage")
    (first,) = {row[0] for row in spark.rows("line_capi_coverage", "invocation_id")}
    with duckdb.connect() as con:
        con.execute(
            f"copy (select * replace ('expired' as invocation_id, built_at - interval 500 day "
            f"as built_at) from read_parquet('{table}/*.parquet')) "
            f"to '{table}/expired.parquet' (format parquet)"
        )
    assert {row[0] for row in spark.rows("line_capi_coverage", "invocation_id")} == {
        first,
        "expired",
    }
    assert spark.spark_dir == spark_server.spark_dir, "the fixture build's session is gone"
    result = run_spark(
        spark_server,
        tmp_path,
        "run",
        "--select",
        "line_capi_coverage",
        schema=spark.schema,
        export=duck.database.parent.parent / "export",  # the fixture's export, in UTF-8
    )
    assert result.returncode == 0, spark_diagnostics(spark.spark_dir, result.output)
    kept = spark.rows("line_capi_coverage", "invocation_id, event_name")
    assert len(kept) == 2 and first in {invocation for invocation, _ in kept}
    assert "expired" not in {invocation for invocation, _ in kept}


def test_a_csv_row_with_a_field_too_many_stops_the_spark_build(spark_server, tmp_path):
    """An unquoted comma in a value gives its row one field more than the header. DuckDB stops
    the build there; Spark's default read kept the header's number of fields and dropped the
    rest, so the row's values went on, shifted, without a word."""
    export = write_export(tmp_path / "export", export_tables(), "csv")
    conversions = export / "conversions.csv"
    # a column the build does not read (Spark's parser skips unread columns), and a comma in the
    # middle of a row: the row's count of fields, not its read ones, is what is wrong
    header, *rows = conversions.read_text().splitlines()
    lines = [header + ",visitor_id", *(f"{row},v-{i}" for i, row in enumerate(rows))]
    lines.insert(2, "Tokyo, " + lines[1])
    conversions.write_text("\n".join(lines) + "\n")
    result = run_spark(
        spark_server,
        tmp_path / "run",
        "run",
        "--select",
        "+int_conversions_windowed",  # a table: the file is read
        schema="line_capi_malformed",
        export=export,
    )
    assert result.returncode == 1, spark_diagnostics(spark_server.spark_dir, result.output)
    assert "[MALFORMED_CSV_RECORD] Malformed CSV record" in result.output
    assert "conversions.csv" in result.output


def test_spark_prints_its_errors_not_its_warnings(sample_builds):
    """profiles.example.yml's `spark.log.level: ERROR`: a build printed about 90 warnings (a
    session reused, Hive's notes on types), and a missing export folder a Java stack trace above
    dbt's error. The JVM's own output is the session's server.log."""
    _, spark = sample_builds
    log = (spark.spark_dir / "server.log").read_text(errors="replace")
    _, set_here, after = log.partition('Setting Spark log level to "ERROR".')
    assert set_here, log[-3000:]
    warnings = [line for line in after.splitlines() if " WARN " in line]
    assert warnings == [], warnings[:5]


def _process_tree(root: int) -> set[int]:
    """``root`` and every process under it, from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    tree = {root}
    while more := {pid for pid, parent in parents.items() if parent in tree} - tree:
        tree |= more
    return tree


def listening_addresses(root: int) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses of the TCP sockets that ``root``'s process tree listens on (Linux /proc)."""
    inodes = set()
    for pid in _process_tree(root):
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:["):
                        inodes.add(link[len("socket:[") : -1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            hex_address = fields[1].split(":")[0]  # 32-bit words, each little-endian
            raw = b"".join(
                bytes.fromhex(hex_address[i : i + 8])[::-1] for i in range(0, len(hex_address), 8)
            )
            address = ipaddress.ip_address(raw)
            found.add(getattr(address, "ipv4_mapped", None) or address)
    return found


def test_the_spark_session_listens_on_loopback_only(spark_server, sample_builds):
    """The profile's spark.driver.host and bindAddress: by default the local session's RPC and
    block manager ports listened on the machine's network address, without authentication,
    while the JVM held the export's rows."""
    _, spark = sample_builds
    assert spark.spark_dir == spark_server.spark_dir, "the sample build's session is gone"
    addresses = listening_addresses(spark_server.pid)
    assert addresses, "the session's JVM listens on nothing: is it running?"
    assert all(address.is_loopback for address in addresses), addresses


def test_the_spark_tables_files_are_readable_by_their_owner_only(sample_builds):
    """The profile's fs.permissions.umask-mode: under the usual umask 022 the Parquet files of
    line_capi_payload and the other tables were 0644 in 0755 folders, readable by every account
    on the machine, with hashed emails and phones, IPs and click ids in them."""
    _, spark = sample_builds
    files = [path for path in spark.warehouse.rglob("*") if path.is_file()]
    assert spark.table_dir("line_capi_payload") in {path.parent for path in files}
    modes = {str(path.relative_to(spark.warehouse)): path.stat().st_mode & 0o777 for path in files}
    assert set(modes.values()) == {0o600}, modes
    folders = [spark.table_dir(table) for table in ("line_capi_payload", "int_conversions_joined")]
    assert [folder.stat().st_mode & 0o777 for folder in folders] == [0o700, 0o700]

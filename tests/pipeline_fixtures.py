"""Helpers for tests that run the real dbt project on export files they write.

`run_dbt` runs `dbt` as a subprocess against a fresh DuckDB file and target folder in a tmp
directory, so tests never share state; `write_export` writes the four KARTE tables as CSV or
Parquet from lists of dicts, filling the columns a test leaves out.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dbt_forkserver
import duckdb

ROOT = Path(__file__).resolve().parent.parent
DBT = str(Path(sys.executable).parent / "dbt")
SAMPLE_DIR = ROOT / "sample" / "karte_export"
# What `sender run` builds every hour: the models and their data tests. The unit tests read
# their own rows, not the export: `make test-dbt` runs them, and so do the tests about them.
HOURLY_BUILD = ("build", "--exclude-resource-type", "unit_test")

COLUMNS = {
    "conversions": [
        "event_name",
        "user_id",
        "transaction_id",
        "sync_date",
        "revenue",
        "items",
        "session_id",
        "pv_id",
    ],
    "page_views": [
        "user_id",
        "sync_date",
        "session_id",
        "pv_id",
        "url",
        "referrer",
        "title",
        "ip_address",
        "user_agent",
        "lt_cid",
    ],
    "line_users": ["user_id", "line_user_id", "sync_date"],
    "user_master": [
        "user_id",
        "email",
        "phone",
        "first_name",
        "last_name",
        "gender",
        "birthday",
        "pref",
        "city",
        "zip_code",
        "country",
        "street_address",
    ],
}


@dataclass
class DbtResult:
    returncode: int
    output: str
    database: Path

    def connect(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.database), read_only=True)

    def rows(self, sql: str) -> list[tuple]:
        with self.connect() as con:
            return con.sql(sql).fetchall()

    def payloads(self) -> dict[str, dict]:
        """deduplication_key -> parsed payload JSON."""
        return {
            key: json.loads(p)
            for key, p in self.rows("select deduplication_key, payload from line_capi_payload")
        }

    def rejected(self) -> dict[str, str]:
        """transaction_id (or pv_id when it has none) -> reason."""
        return {
            tid if tid is not None else f"pv:{pv}": reason
            for tid, pv, reason in self.rows(
                "select transaction_id, pv_id, reason from line_capi_rejected"
            )
        }


def write_export(
    directory: Path,
    tables: dict[str, list[dict]],
    fmt: str = "csv",
    columns: dict[str, list[str]] | None = None,
) -> Path:
    """Write each table as <table>.<fmt>; missing tables are written empty (header only).

    An empty value is null in both formats, as DuckDB reads an empty CSV cell.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for table, default_columns in COLUMNS.items():
        names = (columns or {}).get(table, default_columns)
        rows = tables.get(table, [])
        if fmt == "csv":
            with open(directory / f"{table}.csv", "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=names, extrasaction="ignore")
                writer.writeheader()
                for row in rows:
                    writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        else:
            con = duckdb.connect()
            cols = ", ".join(f'"{n}" varchar' for n in names)
            con.sql(f"create table t ({cols})")
            if rows:
                con.executemany(
                    f"insert into t values ({', '.join('?' for _ in names)})",
                    [
                        [None if r.get(n) in (None, "") else str(r.get(n)) for n in names]
                        for r in rows
                    ],
                )
            con.sql(f"copy t to '{directory / (table + '.parquet')}' (format parquet)")
            con.close()
    return directory


def run_dbt(
    tmp_path: Path,
    *args: str,
    export_dir: Path | None = None,
    vars: dict | None = None,
    env: dict | None = None,
    database: Path | None = None,
    profile: str | None = None,
    runner: Callable[..., int] = dbt_forkserver.run,
) -> DbtResult:
    """Run `dbt <args>` on the project with its own database and target folder under tmp_path,
    and the profile ``profile`` (the text of a profiles.yml; default profiles.example.yml);
    ``runner``: what starts dbt (tests/spark_dbt.py's server runs the Spark commands).

    The export folder goes in env KARTE_EXPORT_DIR, as `sender run` passes it, and dbt starts in
    tmp_path with LINE_CAPI_DUCKDB the database's bare file name: so the profile and the vars
    dbt compares are the same from one test to the next, and the fork server can start a test's
    dbt from the parse of an earlier one (tests/dbt_forkserver.py) instead of parsing the whole
    project again.
    """
    profiles = tmp_path / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    if database is None:  # dbt starts in tmp_path and names the database by its file name
        database, here = tmp_path.absolute() / "line_capi.duckdb", tmp_path.absolute()
        named = database.name
    else:  # a database of the test's own: named in full, as a user names it in the message
        database, here = database.absolute(), ROOT
        named = str(database)
    profile_text = profile if profile is not None else PROFILE_EXAMPLE
    (profiles / "profiles.yml").write_text(profile_text)
    target = tmp_path / "target"
    command = [
        *args,
        "--project-dir",
        str(ROOT),
        "--profiles-dir",
        str(profiles),
        "--target-path",
        str(target),
        "--log-path",
        str(tmp_path / "logs"),
    ]
    if vars:
        command += ["--vars", json.dumps(vars, sort_keys=True)]
    overrides = {"LINE_CAPI_DUCKDB": named, **(env or {})}
    full_env = {
        # a developer's own LINE_* settings (a build memory limit) never reach the test's dbt
        **{k: v for k, v in os.environ.items() if not k.startswith("LINE_")},
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
        # relative paths in vars (karte_sample_dir) resolve against PWD: the project, as in a
        # build run by hand there, although the process starts in tmp_path
        "PWD": str(ROOT),
        "KARTE_EXPORT_DIR": str(export_dir) if export_dir is not None else "",
        **overrides,
    }
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        returncode = runner(
            command, cwd=here, env=full_env, stdout=stdout, stderr=stderr, timeout=600
        )
        output = b"".join(f.seek(0) or f.read() for f in (stdout, stderr))
    return DbtResult(returncode, output.decode(errors="replace"), database)


PROFILE_EXAMPLE = (ROOT / "profiles.example.yml").read_text()


def rewrite_export(
    csv_export: Path,
    directory: Path,
    fmt: str = "parquet",
    casts: dict[str, dict[str, str]] | None = None,
    parts: int = 1,
    layout: str = "file",
) -> Path:
    """A CSV export (write_export) written again the way a warehouse writes it.

    `fmt` is "parquet" or "csv.gz"; `casts` maps table -> column -> a DuckDB expression of the
    text column that gives the stored type (e.g. "cast(sync_date as timestamptz)"). With
    `parts` > 1 the rows are dealt into that many files, named as BigQuery's wildcard export
    names them (layout "parts": conversions-000000000000.parquet, ...) or put in a folder
    (layout "folder": conversions/part-0.parquet, ...).
    """
    directory.mkdir(parents=True, exist_ok=True)
    options = "format parquet" if fmt == "parquet" else "format csv, header, compression gzip"
    with duckdb.connect() as con:
        for table in COLUMNS:
            table_casts = (casts or {}).get(table, {})
            replaced = ", ".join(f"{expr} as {col}" for col, expr in table_casts.items())
            source = f"read_csv('{csv_export / table}.csv', all_varchar = true)"
            select = f"select * {f'replace ({replaced})' if replaced else ''} from {source}"
            numbered = f"select *, row_number() over () as part_row from ({select})"
            for part in range(parts):
                if layout == "file":
                    target = directory / f"{table}.{fmt}"
                elif layout == "parts":
                    target = directory / f"{table}-{part:012d}.{fmt}"
                else:
                    (directory / table).mkdir(exist_ok=True)
                    target = directory / table / f"part-{part}.{fmt}"
                kept = f"part_row % {parts} = {part}"
                rows = f"select * exclude (part_row) from ({numbered}) where {kept}"
                con.sql(f"copy ({rows}) to '{target}' ({options})")
    return directory

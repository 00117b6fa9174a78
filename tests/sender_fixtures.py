"""Shared helpers for the sender tests: synthetic payload databases, a live mock LINE server,
and running the CLI. Imported by the test modules (no conftest.py, on purpose)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dbt_forkserver
import duckdb
import pyarrow as pa
import sender_forkserver

from sender.mock_server import MockLineServer

TAG_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
# Recognisable, so that tests can grep every output for it.
TOKEN = "SeCrEtToKeN-8c1e-do-not-leak-7f3a"  # noqa: S105 - a fake, to grep for
CHANNEL_ID = "1234567890"
REPO = Path(__file__).resolve().parent.parent

PAYLOAD_DDL = """
create table line_capi_payload (
    deduplication_key varchar not null,
    event_name varchar not null,
    event_timestamp bigint not null,
    has_line_uid boolean not null,
    payload varchar not null,
    user_id varchar,
    email_sha256 varchar
)
"""


def make_event(
    i: int,
    *,
    ts: int | None = None,
    event_name: str = "Purchase",
    line_uid: bool = False,
    key: str | None = None,
) -> dict:
    ts = int(time.time()) - 3600 + (i % 3000) if ts is None else ts
    user: dict = {"email": f"{i:064x}"[-64:]}
    if line_uid:
        user["line_uid"] = "U" + f"{i:032x}"[-32:]
    return {
        "event": {
            "source_type": "web",
            "event_type": "conversion",
            "event_name": event_name,
            "deduplication_key": key or f"order-{i:07d}",
            "event_timestamp": ts,
        },
        "user": user,
        "custom": {"value": 1000 + i, "currency": "JPY"},
        "web": {"url": f"https://shop.example.com/thanks?o={i}"},
    }


def payload_rows(events: Iterable[dict]) -> list[tuple]:
    rows = []
    for ev in events:
        text = json.dumps(ev, separators=(",", ":"), ensure_ascii=False)
        assert text.startswith('{"event":{')
        rows.append(
            (
                ev["event"]["deduplication_key"],
                ev["event"]["event_name"],
                ev["event"]["event_timestamp"],
                "line_uid" in ev["user"],
                text,
            )
        )
    return rows


def write_build_info(
    con: duckdb.DuckDBPyConnection, *, is_sample: bool = False, location: str = "/data/export"
) -> None:
    """Write ``line_capi_build_info`` as a finished dbt build does: one row that matches
    ``line_capi_payload`` (the sender refuses to send without it)."""
    con.execute(
        """
        create or replace table line_capi_build_info as
        select
            'test-build' as invocation_id,
            ? as export_location,
            count(*) as payload_rows,
            coalesce(sum(event_timestamp), 0)::bigint as payload_event_timestamp_sum,
            ? as is_sample,
            now()::timestamp as built_at
        from line_capi_payload
        """,
        [location, is_sample],
    )


def write_payload(
    db: Path, events: Iterable[dict], *, replace: bool = True, is_sample: bool = False
) -> int:
    """Write ``line_capi_payload`` as dbt does: a new table, physically ordered, swapped in by
    drop + rename (so the ledger and the pending view must survive it), and its build info."""
    rows = payload_rows(events)
    con = duckdb.connect(str(db))
    try:
        con.execute(PAYLOAD_DDL.replace("line_capi_payload", "line_capi_payload__new"))
        columns = list(zip(*rows, strict=True)) if rows else [[]] * 5
        batch = pa.table(
            {
                "deduplication_key": pa.array(columns[0], pa.string()),
                "event_name": pa.array(columns[1], pa.string()),
                "event_timestamp": pa.array(columns[2], pa.int64()),
                "has_line_uid": pa.array(columns[3], pa.bool_()),
                "payload": pa.array(columns[4], pa.string()),
            }
        )
        con.register("_rows", batch)
        con.execute(
            "insert into line_capi_payload__new"
            " (deduplication_key, event_name, event_timestamp, has_line_uid, payload)"
            " select * from _rows"
        )
        con.execute(
            "create or replace table line_capi_payload__sorted as select * from"
            " line_capi_payload__new order by event_timestamp, deduplication_key"
        )
        con.execute("drop table line_capi_payload__new")
        if replace:
            con.execute("drop table if exists line_capi_payload")
        con.execute("alter table line_capi_payload__sorted rename to line_capi_payload")
        write_build_info(con, is_sample=is_sample)
    finally:
        con.close()
    db.chmod(0o600)  # as dbt writes it (sender.dbt_private_files)
    return len(rows)


def write_bulk_payload(db: Path, n: int, *, start: int | None = None, poison: str | None = None):
    """``n`` valid events generated in SQL (fast for large n); optional poisoned key that the
    mock server will be told to reject."""
    start = int(time.time()) - 7200 if start is None else start
    con = duckdb.connect(str(db))
    try:
        con.execute("drop table if exists line_capi_payload")
        con.execute(
            f"""
            create table line_capi_payload as
            with rows as (
                select
                    'bulk-' || lpad(i::varchar, 8, '0') as deduplication_key,
                    'Purchase' as event_name,
                    ({start} + i // 50)::bigint as event_timestamp,
                    false as has_line_uid,
                    lpad(printf('%x', i), 64, '0') as email_sha256
                from range({n}) as t(i)
            )
            select
                deduplication_key, event_name, event_timestamp, has_line_uid,
                '{{"event":{{"source_type":"web","event_type":"conversion","event_name":"'
                    || event_name || '","deduplication_key":"' || deduplication_key
                    || '","event_timestamp":' || event_timestamp::varchar
                    || '}},"user":{{"email":"' || email_sha256 || '"}},"custom":{{"value":1200,'
                    || '"currency":"JPY"}}}}' as payload,
                null::varchar as user_id,
                email_sha256
            from rows
            order by event_timestamp, deduplication_key
            """  # noqa: S608 - integers only
        )
        write_build_info(con)
    finally:
        con.close()
    db.chmod(0o600)  # as dbt writes it (sender.dbt_private_files)


def ledger_rows(db: Path) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "select event_name, deduplication_key, status, http_status, attempts, batch_id,"
            " run_id, is_test, error from line_capi_send_log order by deduplication_key"
        ).fetchall()
    finally:
        con.close()


def pending_keys(db: Path) -> set[str]:
    """The deduplication keys the line_capi_pending view still lists."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {
            r[0] for r in con.execute("select deduplication_key from line_capi_pending").fetchall()
        }
    finally:
        con.close()


def ledger_counts(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return dict(
            con.execute("select status, count(*) from line_capi_send_log group by 1").fetchall()
        )
    finally:
        con.close()


def db_text(db: Path) -> str:
    """Everything the sender stored, as text (to grep for the token)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        parts = []
        for table in ("line_capi_send_log", "line_capi_send_runs"):
            parts.append(repr(con.execute(f"select * from {table}").fetchall()))  # noqa: S608
        return "\n".join(parts)
    finally:
        con.close()


@contextmanager
def mock_server(**kwargs) -> Iterator[MockLineServer]:
    kwargs.setdefault("tag_id", TAG_ID)
    kwargs.setdefault("token", TOKEN)
    server = MockLineServer(**kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def database_held(db: Path, *, read_only: bool = False) -> Iterator[int]:
    """Another process holding ``db`` read-write (a dbt build, a duckdb shell) while inside, or
    read-only (`duckdb -readonly`: others may read it too); gives its pid."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time\ncon = duckdb.connect({str(db)!r}, read_only={read_only})\n"
            "print('held', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def sender_env(db: Path, endpoint: str | None = None, **extra: str) -> dict[str, str]:
    env = {
        "LINE_CAPI_DUCKDB": str(db),
        "LINE_TAG_ID": TAG_ID,
        "LINE_ACCESS_TOKEN": TOKEN,
        "LINE_CAPI_ENDPOINT": endpoint or "http://127.0.0.1:9",
    }
    env.update(extra)
    return env


# Fast retries for tests: tiny backoff, short timeouts.
FAST = ["--backoff-base", "0.01", "--max-backoff", "0.05", "--timeout", "5"]


def run_cli(
    args: list[str],
    env: dict[str, str],
    *,
    timeout: float = 60,
    cwd: Path | None = None,
    reader_gone: bool = False,
) -> subprocess.CompletedProcess:
    """Run ``python -m sender`` (a real process, forked from the sender's fork server where it
    can be: tests/sender_forkserver.py), in the checkout unless ``cwd`` says where. With
    ``reader_gone``, the reader of its stdout has closed it before the command writes
    (``sender preview | head`` once head has its lines): stdout is then empty."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LINE_")}
    full_env.update(dbt_forkserver.sender_env())  # `sender run` starts dbt from the fork server
    full_env.update(env)
    full_env.setdefault("PYTHONPATH", str(REPO))
    return sender_forkserver.run(
        args, env=full_env, cwd=cwd or REPO, timeout=timeout, reader_gone=reader_gone
    )


def push_now(db: Path, url: str, *, channel_id: str | None = None, **options):
    """Run the push loop in-process (fast) with test-friendly retry settings."""
    from sender.database import connect
    from sender.progress import Progress
    from sender.push import PushOptions, push
    from sender.settings import LineTarget

    defaults = {"backoff_base": 0.01, "max_backoff": 0.05, "timeout": 5.0, "batch_size": 100}
    defaults.update(options)
    target = LineTarget.from_values(endpoint=url, tag_id=TAG_ID, token=TOKEN, channel_id=channel_id)
    con = connect(db, read_only=False)
    try:
        return push(con, target, PushOptions(**defaults), Progress(quiet=True))
    finally:
        con.close()


def invoke(args: list[str], env: dict[str, str]):
    """The CLI in-process through Typer's CliRunner (stdout and stderr kept apart)."""
    from typer.testing import CliRunner

    from sender.cli import app

    clean = {k: None for k in os.environ if k.startswith("LINE_")}
    clean.update(env)
    return CliRunner().invoke(app, args, env=clean, catch_exceptions=False)

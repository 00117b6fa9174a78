"""The send ledger ``line_capi_send_log`` and the runs table ``line_capi_send_runs``.

Every outcome is written per batch with one set-based ``insert ... select`` from an Arrow table,
so one batch is one transaction, whatever its size. Rows are only appended (``--resend`` adds
new rows); the latest row of a key is its status.
"""

# ruff: noqa: S608 - SQL is built from this package's constant table names; values are bound.

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from sender.database import LEDGER_TABLE, RUNS_TABLE, fetch_one

_INSERT_SQL = f"""
insert into {LEDGER_TABLE} (
    event_name, deduplication_key, status, http_status, attempts, batch_id, run_id,
    event_timestamp, is_test, sent_at, error
)
select
    event_name, deduplication_key, $status, $http_status, $attempts, $batch_id, $run_id,
    event_timestamp, $is_test, $sent_at, $error
from _sender_outcome
"""

STATUSES = ("accepted", "rejected_by_api", "expired")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Ledger:
    """Writes outcomes from any thread, serialized on one cursor of its own."""

    def __init__(self, con: duckdb.DuckDBPyConnection, *, run_id: str, is_test: bool):
        self._cursor = con.cursor()
        self._lock = threading.Lock()
        self.run_id = run_id
        self.is_test = is_test

    def record(
        self,
        rows: pa.Table,
        *,
        status: str,
        batch_id: str,
        http_status: int | None,
        attempts: int,
        error: str | None = None,
    ) -> None:
        if rows.num_rows == 0:
            return
        if status not in STATUSES:
            raise ValueError(f"unknown ledger status {status!r}")
        keys = rows.select(["event_name", "deduplication_key", "event_timestamp"])
        params = {
            "status": status,
            "http_status": http_status,
            "attempts": attempts,
            "batch_id": batch_id,
            "run_id": self.run_id,
            "is_test": self.is_test,
            "sent_at": utc_now(),
            "error": error,
        }
        with self._lock:
            self._cursor.register("_sender_outcome", keys)
            try:
                self._cursor.execute(_INSERT_SQL, params)
            finally:
                self._cursor.unregister("_sender_outcome")

    def start_run(self, *, tag_id: str, endpoint: str, is_resend: bool) -> None:
        with self._lock:
            self._cursor.execute(
                f"insert into {RUNS_TABLE} (run_id, tag_id, endpoint, is_test, is_resend,"
                " started_at) values (?, ?, ?, ?, ?, ?)",
                [self.run_id, tag_id, endpoint, self.is_test, is_resend, utc_now()],
            )

    def finish_run(self, summary: dict, *, exit_code: int, outcome: str) -> None:
        with self._lock:
            self._cursor.execute(
                f"update {RUNS_TABLE} set pending = ?, sent = ?, accepted = ?, rejected = ?,"
                " expired = ?, left_pending = ?, retried = ?, requests = ?, exit_code = ?,"
                " outcome = ?, finished_at = ? where run_id = ?",
                [
                    summary["pending"],
                    summary["sent"],
                    summary["accepted"],
                    summary["rejected"],
                    summary["expired"],
                    summary["left_pending"],
                    summary["retried"],
                    summary["requests"],
                    exit_code,
                    outcome,
                    utc_now(),
                    self.run_id,
                ],
            )

    def close(self) -> None:
        with self._lock:
            self._cursor.close()


@dataclass(frozen=True)
class LedgerStatus:
    counts: dict[str, int]  # latest status of each key, events sent for real
    test_events: int  # keys sent with --test
    pending: int | None  # None when the payload table is missing
    last_run: dict | None


def read_status(
    con: duckdb.DuckDBPyConnection, *, has_ledger: bool, pending: int | None
) -> LedgerStatus:
    counts = dict.fromkeys(STATUSES, 0)
    test_events = 0
    last_run = None
    if has_ledger:
        for status, n in con.execute(
            f"""
            select status, count(*)
            from (
                select arg_max(status, sent_at) as status
                from {LEDGER_TABLE}
                where not is_test
                group by event_name, deduplication_key
            )
            group by status
            """
        ).fetchall():
            counts[status] = int(n)
        row = fetch_one(
            con,
            f"select count(distinct (event_name, deduplication_key)) from {LEDGER_TABLE}"
            " where is_test",
        )
        test_events = int(row[0]) if row else 0
        cursor = con.execute(f"select * from {RUNS_TABLE} order by started_at desc limit 1")
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
        row = rows[0] if rows else None
        if row is not None:
            last_run = {
                name: (value.isoformat(sep=" ") + "Z" if isinstance(value, dt.datetime) else value)
                for name, value in zip(names, row, strict=True)
            }
    return LedgerStatus(counts=counts, test_events=test_events, pending=pending, last_run=last_run)

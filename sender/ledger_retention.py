"""Ledger retention: key rows too old to count any more are deleted, about once a day.

The pending filter (sender.pending_rows) reads only the keys recorded, or with an event time,
within its window, which never starts more than ``LEDGER_WINDOW_MAX_SECONDS`` (LINE's 90 days plus
its 30-day de-duplication window) before now. A key row older than that by both clocks can never
count again, so deleting it changes no pending set, now or later. Retention keeps one day more,
and runs once at least a day's worth of rows has passed that age, so that each ``sender push``
only checks (one query that reads the first row group) and about one push a day deletes.

The outcomes (``line_capi_send_batches``) whose every key row is gone go too; the runs stay.
``line_capi_send_log`` therefore shows the last ``RETENTION_SECONDS`` of outcomes.
"""

# ruff: noqa: S608 - SQL is built from this package's constant table names; values are bound.

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import duckdb

from sender.database import BATCHES_TABLE, KEYS_TABLE, fetch_one
from sender.line_rules import DAY_SECONDS
from sender.pending_rows import LEDGER_WINDOW_MAX_SECONDS

RETENTION_SECONDS = LEDGER_WINDOW_MAX_SECONDS + DAY_SECONDS
# Delete only once this much more than the retention has accumulated: about once a day.
_BATCH_SECONDS = DAY_SECONDS


@dataclass(frozen=True)
class Pruned:
    keys: int
    outcomes: int


def _older_than(seconds: int) -> str:
    # both clocks: the event time and the recording time (outcome ids are nanoseconds)
    return f"event_timestamp < {int(seconds)} and outcome_id < {int(seconds)}::bigint * 1000000000"


def prune_is_due(con: duckdb.DuckDBPyConnection, now: float | None = None) -> bool:
    """Whether at least a day's worth of key rows has passed the retention (cheap: the keys
    table is appended in time order, so this reads its first row groups)."""
    horizon = int(time.time() if now is None else now) - RETENTION_SECONDS - _BATCH_SECONDS
    row = fetch_one(con, f"select exists (select 1 from {KEYS_TABLE} where {_older_than(horizon)})")
    return bool(row and row[0])


def prune(con: duckdb.DuckDBPyConnection, now: float | None = None) -> Pruned:
    """Delete the key rows older than the retention by both clocks, and the outcomes left
    without keys, in one transaction."""
    horizon = int(time.time() if now is None else now) - RETENTION_SECONDS
    con.execute("begin transaction")
    try:
        keys = fetch_one(con, f"delete from {KEYS_TABLE} where {_older_than(horizon)}")
        outcomes = fetch_one(
            con,
            f"delete from {BATCHES_TABLE} where outcome_id < {horizon}::bigint * 1000000000"
            f" and outcome_id not in (select outcome_id from {KEYS_TABLE}"
            f" where outcome_id < {horizon}::bigint * 1000000000)",
        )
        con.execute("commit")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("rollback")
        raise
    return Pruned(int(keys[0]) if keys else 0, int(outcomes[0]) if outcomes else 0)

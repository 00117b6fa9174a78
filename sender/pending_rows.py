"""The rows of ``line_capi_payload`` that are pending at a destination, streamed oldest first.

**Which ledger keys count.** A payload row is pending at a destination until its
``(event_name, deduplication_key)`` has a real (non-test) outcome there among the keys of the
*ledger window*: those recorded since the window's start, or whose recorded event_timestamp is
that recent. The window starts before the payload's oldest event (not older than LINE's 90 days:
older events are never sent) by the payload's span (its newest event minus its oldest), at least
one day and at most LINE's 30-day de-duplication window. So a key counts as sent when its
event_timestamp did not change; when a later build moved it forward because the key's earliest
export row left the lookback window while a later one stayed (the key was recorded while that
earlier row was in the window, less than a span ago); and when a rebuild shifted the timestamps
by up to a day (a time zone). A key that leaves the window and comes back later than that is sent
again, and LINE de-duplicates it (same event name and key within 30 days).

Older keys are never read: the cost of a push does not grow with the ledger, and retention
(sender.ledger_retention) deletes them without changing what is pending.

**How push reads them.** Once per run, one join of the payload's keys with the window's keys gives
the acknowledged rowids (sorted, 8 bytes each). The payload is then read in rowid ranges of
``chunk_rows`` (dbt writes it ordered by ``event_timestamp, deduplication_key``, so rowid order is
the send order), one small query each: a single streaming scan that keeps insertion order would
buffer the row groups scanned ahead (tens of MB each), so its memory would grow with the table.
Arrow drops each chunk's acknowledged rows, keeping the order.
"""

# ruff: noqa: S608 - SQL is built from this package's constant table names; values are bound.

from __future__ import annotations

import bisect
import collections
import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from sender.database import KEYS_TABLE, PAYLOAD_TABLE, PENDING_VIEW, RUNS_TABLE, fetch_one
from sender.request_body import MAX_AGE_SECONDS

# Rows fetched from DuckDB per chunk: a few MB each. Larger chunks raise the peak memory; smaller
# ones cost more queries.
SCAN_CHUNK_ROWS = 20_000
# Chunks read in parallel ahead of the one being sent, one per core of a small machine.
READ_AHEAD = 2

DAY_SECONDS = 86_400
# LINE treats two events with the same name and key within 30 days as one.
DEDUPLICATION_WINDOW_SECONDS = 30 * DAY_SECONDS
# The earliest start the window can have: keys older than this (by both clocks) never count.
LEDGER_WINDOW_MAX_SECONDS = MAX_AGE_SECONDS + DEDUPLICATION_WINDOW_SECONDS

_CHUNK_SQL = (
    "select rowid as payload_rowid, event_name, deduplication_key, event_timestamp,"
    f" has_line_uid, payload from {PAYLOAD_TABLE}"
    " where rowid >= {start:d} and rowid < {stop:d}"  # integers: the pruning needs constants
)

_SCHEMA = pa.schema(
    [
        ("payload_rowid", pa.int64()),
        ("event_name", pa.string()),
        ("deduplication_key", pa.string()),
        ("event_timestamp", pa.int64()),
        ("has_line_uid", pa.bool_()),
        ("payload", pa.string()),
    ]
)

_RECENT_KEYS_TEMP = "_sender_recent_keys"
# The join holds the window's keys in memory: more than the streaming needs when the ledger is
# busy. DuckDB spills to disk beyond it.
JOIN_MEMORY_BYTES = 256 * 2**20
_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def window_start_sql(now_sql: str) -> str:
    """The ledger window's start (Unix seconds) for the payload as it is, as a SQL scalar."""
    return (
        f"(select greatest(min(event_timestamp), {now_sql} - {MAX_AGE_SECONDS})"
        f" - least(greatest(max(event_timestamp) - min(event_timestamp), {DAY_SECONDS}),"
        f" {DEDUPLICATION_WINDOW_SECONDS}) from {PAYLOAD_TABLE})"
    )


def recent_keys_sql(destination_sql: str, now_sql: str) -> str:
    """The keys that count at a destination: with an event time since the window's start, or
    recorded since then (outcome ids are nanoseconds). Each bound is a join with the one-row
    window, so that DuckDB skips the older row groups of the keys table (appended in time
    order) while it scans; a plain ``or`` of two subquery comparisons would read them all."""
    window = f"(select {window_start_sql(now_sql)} as start) as ledger_window"
    where = f"sent.destination_id = {destination_sql} and not sent.is_test"
    keys = f"select sent.event_name, sent.deduplication_key from {KEYS_TABLE} as sent"
    return (
        f"{keys} inner join {window} on sent.event_timestamp >= ledger_window.start"
        f" where {where}"
        " union all"
        f" {keys} inner join {window} on sent.outcome_id >= ledger_window.start * 1000000000"
        f" where sent.event_timestamp < ledger_window.start and {where}"
    )


def _pending_select(destination_sql: str, columns: str) -> str:
    recent = recent_keys_sql(destination_sql, "epoch(now())::bigint")
    return (
        f"select {columns} from {PAYLOAD_TABLE} as payload where not exists ("
        f" select 1 from ({recent}) as sent where sent.event_name = payload.event_name"
        " and sent.deduplication_key = payload.deduplication_key)"
    )


def pending_sql(*, destination_id: int | None, columns: str = "*") -> str:
    """SQL for the rows pending at a destination (the rule of the ``line_capi_pending`` view)."""
    if destination_id is None:
        return f"select {columns} from {PAYLOAD_TABLE}"
    return _pending_select(str(int(destination_id)), columns)


def pending_view_ddl() -> str:
    """``line_capi_pending``: the rows pending at the destination of the latest push (every row
    before the first push). DuckDB binds a view's names when it is queried, so it follows each
    new ``line_capi_payload`` that dbt swaps in."""
    latest = f"(select destination_id from {RUNS_TABLE} order by started_at desc limit 1)"
    return f"create or replace view {PENDING_VIEW} as " + _pending_select(latest, "payload.*")


def count_pending(con: duckdb.DuckDBPyConnection, *, destination_id: int | None) -> int:
    row = fetch_one(con, pending_sql(destination_id=destination_id, columns="count(*)"))
    return int(row[0]) if row else 0


def ledger_has_keys(con: duckdb.DuckDBPyConnection, destination_id: int) -> bool:
    """Whether a real (non-test) outcome is recorded at the destination: if none is, there is
    nothing to filter."""
    row = fetch_one(
        con,
        f"select exists (select 1 from {KEYS_TABLE} where not is_test"
        f" and destination_id = {int(destination_id)})",
    )
    return bool(row and row[0])


@dataclass(frozen=True)
class PendingRows:
    """The payload as one run sees it: how many rows, and which of them the ledger holds."""

    last_rowid: int | None  # None: the table is empty
    rows: int
    with_line_uid: int
    acknowledged: pa.Array  # payload rowids, sorted (int64)
    acknowledged_with_line_uid: int

    @property
    def pending(self) -> int:
        return self.rows - len(self.acknowledged)

    @property
    def pending_with_line_uid(self) -> int:
        return self.with_line_uid - self.acknowledged_with_line_uid


def find_pending(
    con: duckdb.DuckDBPyConnection, *, destination_id: int | None, now: float | None = None
) -> PendingRows:
    """Count the payload and find its acknowledged rows at ``destination_id`` (None: every row is
    pending). Two queries; the join reads only the payload's keys and the recent ledger keys."""
    row = fetch_one(
        con,
        f"select max(rowid), count(*), count(*) filter (where has_line_uid) from {PAYLOAD_TABLE}",
    )
    last_rowid, rows, with_line_uid = row if row else (None, 0, 0)
    empty = pa.array([], pa.int64())
    if destination_id is None or not rows:
        return PendingRows(last_rowid, int(rows), int(with_line_uid or 0), empty, 0)
    now_sql = str(int(time.time() if now is None else now))
    cursor = con.cursor()
    try:
        with _memory_at_least(cursor, JOIN_MEMORY_BYTES):
            # materialized first, so that the join knows its size and builds on the smaller side
            cursor.execute(
                f"create temp table {_RECENT_KEYS_TEMP} as "
                + recent_keys_sql(str(int(destination_id)), now_sql)
            )
            acknowledged = cursor.sql(
                f"select payload.rowid as payload_rowid, payload.has_line_uid from {PAYLOAD_TABLE}"
                f" as payload semi join {_RECENT_KEYS_TEMP} as recent"
                " on payload.event_name = recent.event_name"
                " and payload.deduplication_key = recent.deduplication_key"
                " order by payload_rowid"
            ).to_arrow_table()
    finally:
        cursor.close()  # its temp table goes with it
    rowids = acknowledged.column("payload_rowid").combine_chunks().cast(pa.int64())
    with_uid = int(pc.sum(acknowledged.column("has_line_uid").cast(pa.int64())).as_py() or 0)
    return PendingRows(last_rowid, int(rows), int(with_line_uid or 0), rowids, with_uid)


@contextlib.contextmanager
def _memory_at_least(cursor: duckdb.DuckDBPyConnection, limit: int) -> Iterator[None]:
    """Raise DuckDB's memory limit to ``limit`` bytes for a while (never lower it)."""
    row = fetch_one(cursor, "select current_setting('memory_limit')")
    number, _, unit = str(row[0] if row else "").partition(" ")
    try:
        current = float(number) * _UNITS[unit]
    except (KeyError, ValueError):  # a form we do not know: leave it
        current = float("inf")
    if current >= limit:
        yield
        return
    cursor.execute(f"set memory_limit = '{limit}B'")
    try:
        yield
    finally:
        cursor.execute("set memory_limit = ?", [row[0]])


def _int64_view(array: pa.Array) -> memoryview | list:
    """The values of an int64 array without copying them (indexable, so bisect works on it)."""
    if len(array) == 0:
        return []
    values = memoryview(array.buffers()[1]).cast("q")
    return values[array.offset : array.offset + len(array)]


def _normalize(table: pa.Table) -> pa.Table:
    if table.schema != _SCHEMA:
        table = table.select(_SCHEMA.names).cast(_SCHEMA)
    return table


def iter_pending(
    con: duckdb.DuckDBPyConnection,
    *,
    destination_id: int | None = None,
    pending: PendingRows | None = None,
    limit: int | None = None,
    chunk_rows: int = SCAN_CHUNK_ROWS,
) -> Iterator[pa.Table]:
    """Yield Arrow tables of pending rows, in table order, at most ``limit`` rows in all.

    Columns: payload_rowid, event_name, deduplication_key, event_timestamp, has_line_uid and
    payload. ``pending`` comes from :func:`find_pending` (found here for ``destination_id`` when
    not given). The chunks are read ahead, ``READ_AHEAD`` at a time, on cursors of their own.
    Closing the iterator stops the reading.
    """
    if pending is None:
        pending = find_pending(con, destination_id=destination_id)
    remaining = limit
    if pending.last_rowid is None or (remaining is not None and remaining <= 0):
        return
    reader = _RangeReader(con, pending.acknowledged)
    ahead: collections.deque[Future] = collections.deque()
    try:
        for start in range(0, pending.last_rowid + 1, chunk_rows):
            ahead.append(reader.submit(start, start + chunk_rows))
            if len(ahead) <= READ_AHEAD:
                continue
            table = ahead.popleft().result()
            if table is None:
                continue
            if remaining is not None and table.num_rows >= remaining:
                yield table.slice(0, remaining)
                return
            if remaining is not None:
                remaining -= table.num_rows
            yield table
        while ahead:
            table = ahead.popleft().result()
            if table is None:
                continue
            if remaining is not None and table.num_rows >= remaining:
                yield table.slice(0, remaining)
                return
            if remaining is not None:
                remaining -= table.num_rows
            yield table
    finally:
        reader.close()


class _RangeReader:
    """Reads rowid ranges of the payload in parallel threads, each on a cursor of its own (a
    small range query runs on one DuckDB thread), and drops their acknowledged rows."""

    def __init__(self, con: duckdb.DuckDBPyConnection, acknowledged: pa.Array) -> None:
        self._con = con
        self._acknowledged = acknowledged
        self._positions = _int64_view(acknowledged)
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(READ_AHEAD, thread_name_prefix="sender-read")

    def submit(self, start: int, stop: int) -> Future:
        # the acknowledged rowids of this range: a slice of the sorted array
        low = bisect.bisect_left(self._positions, start)
        high = bisect.bisect_left(self._positions, stop, low)
        if high - low == stop - start:  # every row of the range was sent: nothing to read
            done: Future = Future()
            done.set_result(None)
            return done
        return self._pool.submit(self._read, start, stop, self._acknowledged.slice(low, high - low))

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = self._con.cursor()
            with self._lock:
                self._cursors.append(cursor)
        return cursor

    def _read(self, start: int, stop: int, sent: pa.Array) -> pa.Table | None:
        table = self._cursor().sql(_CHUNK_SQL.format(start=start, stop=stop)).to_arrow_table()
        if table.num_rows == 0:  # a range of deleted rows
            return None
        table = _normalize(table)
        if len(sent):
            table = table.filter(pc.invert(pc.is_in(table.column("payload_rowid"), value_set=sent)))
        return table if table.num_rows else None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for cursor in self._cursors:
            cursor.close()

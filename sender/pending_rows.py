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
the acknowledged rowids (sorted, 8 bytes each). Then one streaming scan reads the payload in rowid
order (dbt writes it ordered by ``event_timestamp, deduplication_key``, so rowid order is the send
order) from its first pending row, on a thread of its own, and Arrow drops each chunk's
acknowledged rows, keeping the order. The scan runs on one DuckDB thread: a parallel scan that
keeps insertion order buffers the row groups scanned ahead, so its memory would grow with the
table.
"""

# ruff: noqa: S608 - SQL is built from this package's constant table names; values are bound.

from __future__ import annotations

import bisect
import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from sender.database import (
    ACCEPTED,
    BATCHES_TABLE,
    KEYS_TABLE,
    PAYLOAD_TABLE,
    PENDING_VIEW,
    REJECTED_BY_API,
    RUNS_TABLE,
    fetch_one,
)
from sender.line_rules import (
    DAY_SECONDS,
    DEDUPLICATION_COLUMNS,
    DEDUPLICATION_WINDOW_SECONDS,
    MAX_AGE_SECONDS,
)

# Rows read from DuckDB per chunk: two requests of the default batch size, a few MB. Memory holds
# a few chunks at a time (read ahead, being sent), so larger ones raise the peak.
SCAN_CHUNK_ROWS = 10_000
# Chunks read ahead of the one being sent.
READ_AHEAD = 2

# The earliest start the window can have: keys older than this (by both clocks) never count.
LEDGER_WINDOW_MAX_SECONDS = MAX_AGE_SECONDS + DEDUPLICATION_WINDOW_SECONDS

_SCAN_SQL = (
    "select {rowid}event_name, deduplication_key, event_timestamp, has_line_uid, payload"
    f" from {PAYLOAD_TABLE} where rowid >= {{start:d}}"  # an integer: the pruning needs a constant
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


def recent_keys_sql(destination_sql: str, now_sql: str, *, but_refused: bool = False) -> str:
    """The keys that count at a destination: with an event time since the window's start, or
    recorded since then (outcome ids are nanoseconds). Each bound is a join with the one-row
    window, so that DuckDB skips the older row groups of the keys table (appended in time
    order) while it scans; a plain ``or`` of two subquery comparisons would read them all.
    ``but_refused``: the keys of the events LINE refused (``rejected_by_api``) do not count
    (``push --retry-rejected``); a key refused once and accepted since still does."""
    window = f"(select {window_start_sql(now_sql)} as start) as ledger_window"
    where = f"sent.destination_id = {destination_sql} and not sent.is_test"
    if but_refused:
        where += (
            f" and sent.outcome_id not in (select outcome_id from {BATCHES_TABLE}"
            f" where status = '{REJECTED_BY_API}')"
        )
    key = ", ".join(f"sent.{c}" for c in DEDUPLICATION_COLUMNS)
    keys = f"select {key} from {KEYS_TABLE} as sent"
    return (
        f"{keys} inner join {window} on sent.event_timestamp >= ledger_window.start"
        f" where {where}"
        " union all"
        f" {keys} inner join {window} on sent.outcome_id >= ledger_window.start * 1000000000"
        f" where sent.event_timestamp < ledger_window.start and {where}"
    )


def matching_payload_sql(join: str, keys_sql: str, columns: str) -> str:
    """The pending rule: the payload rows whose key is (``semi``) or is not (``anti``) among
    ``keys_sql``'s, matched on LINE's de-duplication key (event name and key)."""
    match = " and ".join(f"payload.{c} = sent.{c}" for c in DEDUPLICATION_COLUMNS)
    return (
        f"select {columns} from {PAYLOAD_TABLE} as payload"
        f" {join} join ({keys_sql}) as sent on {match}"
    )


def _pending_select(destination_sql: str, columns: str) -> str:
    return matching_payload_sql(
        "anti", recent_keys_sql(destination_sql, "epoch(now())::bigint"), columns
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
    def dense(self) -> bool:
        """Whether the rowids are 0 to rows - 1 (no row ever deleted), as dbt writes the table."""
        return self.last_rowid == self.rows - 1

    @property
    def pending_with_line_uid(self) -> int:
        return self.with_line_uid - self.acknowledged_with_line_uid


def find_pending(
    con: duckdb.DuckDBPyConnection,
    *,
    destination_id: int | None,
    now: float | None = None,
    retry_rejected: bool = False,
) -> PendingRows:
    """Count the payload and find its acknowledged rows at ``destination_id`` (None: every row is
    pending). Two queries; the join reads only the payload's keys and the recent ledger keys.
    ``retry_rejected``: the rows LINE refused at the destination are pending again."""
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
        with memory_at_least(cursor, JOIN_MEMORY_BYTES):
            # materialized first, so that the join knows its size and builds on the smaller side
            cursor.execute(
                f"create temp table {_RECENT_KEYS_TEMP} as "
                + recent_keys_sql(str(int(destination_id)), now_sql, but_refused=retry_rejected)
            )
            acknowledged = cursor.sql(
                matching_payload_sql(
                    "semi",
                    f"select * from {_RECENT_KEYS_TEMP}",
                    "payload.rowid as payload_rowid, payload.has_line_uid",
                )
                + " order by payload_rowid"
            ).to_arrow_table()
    finally:
        cursor.close()  # its temp table goes with it
    return PendingRows(last_rowid, int(rows), int(with_line_uid or 0), *_rowids(acknowledged))


def _rowids(found: pa.Table) -> tuple[pa.Array, int]:
    """The payload rowids of ``found`` (columns payload_rowid, has_line_uid; sorted) as int64,
    and how many of those rows carry user.line_uid."""
    rowids = found.column("payload_rowid").combine_chunks().cast(pa.int64())
    return rowids, int(pc.sum(found.column("has_line_uid").cast(pa.int64())).as_py() or 0)


# A resend leaves out the events first accepted at the destination longer ago than this: LINE
# de-duplicates within 30 days only, so sending one again would count it twice. A day's margin
# for LINE's clock and for how it counts the 30 days.
RESEND_HORIZON_SECONDS = DEDUPLICATION_WINDOW_SECONDS - DAY_SECONDS


def find_resendable(
    con: duckdb.DuckDBPyConnection, *, destination_id: int | None, now: float | None = None
) -> PendingRows:
    """The payload as ``push --resend`` sees it: every row, except (as ``acknowledged``) those
    accepted at ``destination_id`` (for real, not as a test) more than RESEND_HORIZON_SECONDS
    ago. An event accepted that long ago happened before it too, so only the payload's rows that
    old are looked up: with a lookback of a few days, none is."""
    everything = find_pending(con, destination_id=None)
    if destination_id is None or not everything.rows:
        return everything
    horizon = int(time.time() if now is None else now) - RESEND_HORIZON_SECONDS
    match = " and ".join(f"payload.{c} = sent.{c}" for c in DEDUPLICATION_COLUMNS)
    key = ", ".join(f"sent.{c}" for c in DEDUPLICATION_COLUMNS)
    cursor = con.cursor()
    try:
        skipped = cursor.sql(
            f"select payload.rowid as payload_rowid, payload.has_line_uid"
            f" from {PAYLOAD_TABLE} as payload semi join ("
            f" select {key} from {KEYS_TABLE} as sent"
            f" inner join {BATCHES_TABLE} as batch on batch.outcome_id = sent.outcome_id"
            f" where sent.destination_id = {int(destination_id)} and not sent.is_test"
            f" and batch.status = '{ACCEPTED}' and sent.outcome_id < {horizon * 1_000_000_000:d}"
            f" and sent.event_timestamp < {horizon}"
            f") as sent on {match}"
            f" where payload.event_timestamp < {horizon}"
            " order by payload_rowid"
        ).to_arrow_table()
    finally:
        cursor.close()
    return PendingRows(
        everything.last_rowid, everything.rows, everything.with_line_uid, *_rowids(skipped)
    )


@contextlib.contextmanager
def memory_at_least(cursor: duckdb.DuckDBPyConnection, limit: int) -> Iterator[None]:
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


def chunk_rows_for(batch_size: int) -> int:
    """Rows per scan chunk for requests of ``batch_size`` events: a whole number of batches, at
    least SCAN_CHUNK_ROWS. A batch never spans two chunks, so a chunk of another size cut
    --batch-size 6000 into 6,000 and 4,000, and capped a larger one at the chunk's 10,000."""
    return batch_size * max(1, -(-SCAN_CHUNK_ROWS // batch_size))


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
    not given). A thread of its own reads the chunks, ``READ_AHEAD`` ahead of the consumer, on a
    cursor of its own. Closing the iterator stops the reading.
    """
    if pending is None:
        pending = find_pending(con, destination_id=destination_id)
    remaining = limit
    if pending.last_rowid is None or (remaining is not None and remaining <= 0):
        return
    scan = _Scan(con, pending.acknowledged, chunk_rows, dense=pending.dense)
    try:
        for table in scan:
            if remaining is not None and table.num_rows >= remaining:
                yield table.slice(0, remaining)
                return
            if remaining is not None:
                remaining -= table.num_rows
            yield table
    finally:
        scan.close()


_END = object()


class _Scan:
    """The streaming scan of the payload, from its first pending row, on one DuckDB thread, cut
    into chunks of ``chunk_rows`` without their acknowledged rows. DuckDB's thread count is a
    setting of the database: close() restores it.

    When the rowids are ``dense``, they are counted here instead of read: a scan that returns
    ``rowid`` next to the payload texts costs DuckDB more than twice as much CPU."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        acknowledged: pa.Array,
        chunk_rows: int,
        *,
        dense: bool,
    ) -> None:
        self._dense = dense
        self._acknowledged = acknowledged
        self._positions = _int64_view(acknowledged)
        self._chunk_rows = chunk_rows
        self._cursor = con.cursor()
        row = fetch_one(self._cursor, "select current_setting('threads')")
        self._threads = int(row[0]) if row else None
        self._cursor.execute("set threads = 1")
        self._queue: queue.Queue = queue.Queue(maxsize=READ_AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="sender-read", daemon=True)
        self._thread.start()

    def __iter__(self) -> Iterator[pa.Table]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            self._queue.get_nowait()  # a reader waiting to hand over a chunk sees the stop
        self._thread.join()
        try:
            if self._threads is not None:
                self._cursor.execute(f"set threads = {self._threads}")
        finally:
            self._cursor.close()

    # -- the reading thread -----------------------------------------------------------------
    def _read(self) -> None:
        try:
            start = _first_pending(self._positions)
            rowid = "" if self._dense else "rowid as payload_rowid, "
            sql = _SCAN_SQL.format(rowid=rowid, start=start)
            held: list[pa.RecordBatch] = []
            count = 0
            for batch in self._cursor.sql(sql).to_arrow_reader(self._chunk_rows):
                held.append(batch)
                count += batch.num_rows
                if count >= self._chunk_rows:  # DuckDB's batches end at row groups: re-cut
                    table = pa.Table.from_batches(held)
                    self._hand_over(table.slice(0, self._chunk_rows), start)
                    start += self._chunk_rows
                    rest = table.slice(self._chunk_rows)
                    held, count = rest.to_batches(), rest.num_rows
                if self._stop.is_set():
                    return
            if count:
                self._hand_over(pa.Table.from_batches(held), start)
            self._put(_END)
        except BaseException as exc:  # raised again in the consumer
            self._put(exc)

    def _hand_over(self, table: pa.Table, first_rowid: int) -> None:
        if self._dense:
            table = table.add_column(0, "payload_rowid", _count_from(first_rowid, table.num_rows))
        table = _normalize(table)
        rowids = table.column("payload_rowid")
        low = bisect.bisect_left(self._positions, rowids[0].as_py())
        high = bisect.bisect_right(self._positions, rowids[-1].as_py(), low)
        if high > low:  # some of the chunk's rows were sent: a slice of the sorted array
            sent = self._acknowledged.slice(low, high - low)
            table = table.filter(pc.invert(pc.is_in(rowids, value_set=sent)))
        if table.num_rows:
            self._put(table)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue


def _count_from(first: int, n: int) -> pa.Array:
    """first, first + 1, ..., first + n - 1 as int64, without a Python loop."""
    ones = pa.repeat(pa.scalar(1, pa.int64()), n)
    return pc.add(pc.cumulative_sum(ones), first - 1)


def _first_pending(positions: memoryview | list) -> int:
    """The first rowid not acknowledged, when the acknowledged rowids begin at 0 (sorted,
    distinct): the scan starts there, and DuckDB skips the row groups before it."""
    return bisect.bisect_left(range(len(positions)), True, key=lambda i: positions[i] != i)

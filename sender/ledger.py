"""Recording outcomes: the send ledger and the runs table.

Outcomes are written by one writer thread that commits whatever has queued up since its last
commit in one transaction ("group commit"): each outcome (a delivered request, a rejected event,
a group of expired rows) is all-or-nothing, a commit costs one WAL sync however many outcomes it
holds, and the sending threads wait for the disk only when it falls a whole request behind
(sender.push). An outcome only counts as done (in the summary and the progress) once committed. A
crash loses at most the outcomes still queued: those events stay pending and are sent again by the
next run, which LINE de-duplicates.

An outcome's keys are copied inside DuckDB from the payload table, by the rowid ranges of its
rows, so that they never come out as Arrow: the push holds the file's lock, so the payload does
not change while it runs.
"""

# ruff: noqa: S608 - SQL is built from this package's constant table names; values are bound.

from __future__ import annotations

import contextlib
import datetime as dt
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from sender import fault_points
from sender.database import (
    BATCHES_TABLE,
    KEYS_TABLE,
    PAYLOAD_TABLE,
    RUNS_TABLE,
    STATUSES,
    fetch_one,
    first_line,
)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class LedgerEntry:
    events: int
    # the payload rows, as inclusive rowid ranges (copied inside DuckDB), or None: ``keys`` holds
    # them (event_name, deduplication_key, event_timestamp)
    ranges: list[tuple[int, int]] | None
    keys: pa.Table | None
    status: str
    batch_id: str
    http_status: int | None
    attempts: int
    error: str | None
    sent_at: dt.datetime
    # set once the outcome is committed, or once recording it has failed
    settled: threading.Event = field(default_factory=threading.Event, compare=False)


_BATCH_ROW = "(" + ", ".join(["?"] * 10) + ")"
_KEY_COLUMNS = ["event_name", "deduplication_key", "event_timestamp"]
# An outcome's rows are copied inside DuckDB, by rowid range, when they form at most this many
# runs of consecutive rowids (a batch is usually one): the keys never come out as Arrow.
MAX_ROWID_RANGES = 8
# How long the writer waits for one more outcome before it commits those it has. A commit costs
# a few milliseconds of CPU whatever its size, so fewer, larger ones leave more of the machine to
# the requests; the senders do not wait for the linger, they are sending their next batch.
GROUP_LINGER_SECONDS = 0.02
_STOP = object()
_DEFERRED_CHECKPOINT = "64GB"
_SETTLED = threading.Event()
_SETTLED.set()


class LedgerWriteError(Exception):
    """Outcomes could not be recorded (disk full, database gone): the run stops."""


def _settle(group: list[LedgerEntry]) -> None:
    for outcome in group:
        outcome.settled.set()


class LedgerWriter:
    """Queue outcomes from any thread; a background thread commits them in groups.

    ``on_commit(outcome)`` is called (in the writer thread) after each outcome is durable.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        run_id: str,
        is_test: bool,
        destination_id: int,
        on_commit: Callable[[LedgerEntry], None] | None = None,
        on_error: Callable[[LedgerWriteError], None] | None = None,
        max_queued: int = 256,
        max_group_rows: int = 200_000,
        max_group: int = 64,
        linger: float = GROUP_LINGER_SECONDS,
    ) -> None:
        self.run_id = run_id
        self.is_test = is_test
        self.destination_id = int(destination_id)
        self._cursor = con.cursor()
        self._queue: queue.Queue = queue.Queue(maxsize=max_queued)
        self._on_commit = on_commit
        self._on_error = on_error
        self._max_group_rows = max_group_rows
        self._max_group = max_group
        self._linger = linger
        self.error: BaseException | None = None
        # an on_commit that raised: the outcomes are recorded, and close() re-raises it
        self.callback_error: BaseException | None = None
        # outcome ids: nanoseconds since the epoch, strictly increasing and above every id
        # already recorded (only one process writes the file at a time: DuckDB's lock)
        row = fetch_one(self._cursor, f"select coalesce(max(outcome_id), 0) from {BATCHES_TABLE}")
        self._last_id = int(row[0]) if row else 0
        # DuckDB checkpoints inside the commit that takes the WAL past its threshold, and that
        # commit holds up every sender waiting on it: while the writer runs, the WAL only grows
        # (each commit is durable in it); close() restores the threshold.
        row = fetch_one(self._cursor, "select current_setting('checkpoint_threshold')")
        self._checkpoint_threshold = row[0] if row else None
        self._cursor.execute("set checkpoint_threshold = ?", [_DEFERRED_CHECKPOINT])
        self._thread = threading.Thread(target=self._run, name="sender-ledger", daemon=True)
        self._thread.start()

    def record(
        self,
        rows: pa.Table,
        *,
        status: str,
        batch_id: str,
        http_status: int | None,
        attempts: int,
        error: str | None = None,
    ) -> threading.Event:
        """Queue one outcome (blocks only when the writer is far behind).

        Returns an event that is set once the outcome is committed (or could not be): a sender
        that waits on it before it records its next outcome leaves at most two of its own
        unrecorded when the process is killed.
        """
        if rows.num_rows == 0:
            return _SETTLED
        if status not in STATUSES:
            raise ValueError(f"unknown ledger status {status!r}")
        if self.error is not None:
            raise self.error
        ranges = rowid_ranges(rows)
        keys = rows.select(_KEY_COLUMNS) if ranges is None else None
        outcome = LedgerEntry(
            rows.num_rows, ranges, keys, status, batch_id, http_status, attempts, error, utc_now()
        )
        self._queue.put(outcome)
        return outcome.settled

    def close(self) -> None:
        """Commit what is queued, stop the thread; re-raise a write error."""
        self._queue.put(_STOP)
        self._thread.join()
        if self._checkpoint_threshold is not None:
            with contextlib.suppress(duckdb.Error):
                self._cursor.execute("set checkpoint_threshold = ?", [self._checkpoint_threshold])
        self._cursor.close()
        if self.error is not None:
            raise self.error
        if self.callback_error is not None:
            raise self.callback_error

    # -- writer thread -----------------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            group: list[LedgerEntry] = []
            item = self._queue.get()
            rows = 0
            while True:
                if item is _STOP:
                    stopping = True
                    break
                group.append(item)
                rows += item.events
                if rows >= self._max_group_rows or len(group) >= self._max_group:
                    break
                try:
                    # the other senders' outcomes are a few milliseconds behind: one commit (and
                    # one WAL sync) for all of them
                    item = self._queue.get(timeout=self._linger)
                except queue.Empty:
                    break
            if group and self.error is None:
                try:
                    self._write(group)
                except Exception as exc:  # reported by close(); the rows stay pending
                    self.error = LedgerWriteError(
                        f"cannot record outcomes in the ledger: {first_line(exc)}"
                        + ("; free space on that disk" if "No space left" in str(exc) else "")
                        + "; what was not recorded stays pending and the next run sends it"
                        " again (LINE de-duplicates what it had accepted)"
                    )
                    self.error.__cause__ = exc
                    if self._on_error is not None:
                        self._on_error(self.error)
                    _settle(group)
                    continue
                if self._on_commit is not None:
                    try:
                        for outcome in group:
                            self._on_commit(outcome)
                    except Exception as exc:  # noqa: BLE001 - kept for close(); the thread goes on
                        # a thread that died here would leave every later outcome unsettled,
                        # and the senders waiting on them hung for good
                        self.callback_error = self.callback_error or exc
            _settle(group)

    def _next_id(self) -> int:
        self._last_id = max(self._last_id + 1, time.time_ns())
        return self._last_id

    def _write(self, group: list[LedgerEntry]) -> None:
        ids = [self._next_id() for _ in group]
        # one row per outcome, as bound values: cheaper than an Arrow table for a few rows
        outcomes = [
            value
            for outcome_id, o in zip(ids, group, strict=True)
            for value in (
                outcome_id,
                o.batch_id,
                self.run_id,
                o.status,
                o.http_status,
                o.attempts,
                o.events,
                self.is_test,
                o.sent_at,
                o.error,
            )
        ]
        flag = "true" if self.is_test else "false"
        copies = [
            f"select event_name, deduplication_key, event_timestamp, {outcome_id}"
            f" from {PAYLOAD_TABLE} where rowid between {low:d} and {high:d}"
            for outcome_id, o in zip(ids, group, strict=True)
            for low, high in o.ranges or ()
        ]
        listed = [
            o.keys.append_column("outcome_id", pa.repeat(pa.scalar(i, pa.int64()), o.events))
            for i, o in zip(ids, group, strict=True)
            if o.keys is not None
        ]
        cur = self._cursor
        if listed:
            cur.register("_sender_keys", pa.concat_tables(listed))
            copies.append(
                "select event_name, deduplication_key, event_timestamp, outcome_id"
                " from _sender_keys"
            )
        try:
            cur.execute("begin transaction")
            try:
                cur.execute(
                    f"insert into {BATCHES_TABLE} (outcome_id, batch_id, run_id, status,"
                    " http_status, attempts, events, is_test, sent_at, error) values "
                    + ", ".join([_BATCH_ROW] * len(group)),
                    outcomes,
                )
                fault_points.hit("ledger_write")  # test hook: sender/fault_points.py
                # one statement, literals not bound parameters: DuckDB inserts faster this way
                cur.execute(
                    f"insert into {KEYS_TABLE} (event_name, deduplication_key, event_timestamp,"
                    " outcome_id, is_test, destination_id) select *, "
                    f"{flag}, {self.destination_id} from (" + " union all ".join(copies) + ")"
                )
                cur.execute("commit")
            except BaseException:
                # a failed commit (disk full) has already rolled back: keep the original error
                with contextlib.suppress(duckdb.Error):
                    cur.execute("rollback")
                raise
        finally:
            if listed:
                cur.unregister("_sender_keys")


def rowid_ranges(rows: pa.Table) -> list[tuple[int, int]] | None:
    """The rows' payload rowids as at most MAX_ROWID_RANGES inclusive ranges, or None (no rowids,
    or too scattered). A run is a stretch where each rowid is the previous one plus one."""
    if "payload_rowid" not in rows.column_names:
        return None
    rowids = rows.column("payload_rowid").combine_chunks()
    if rowids.null_count:
        return None
    # steps[i] = rowids[i] - rowids[i - 1] (null at 0): a new run starts wherever it is not 1
    steps = pc.pairwise_diff(rowids)
    starts = [0, *pc.indices_nonzero(pc.not_equal(steps, 1)).to_pylist()]
    if len(starts) > MAX_ROWID_RANGES:
        return None
    ends = [s - 1 for s in starts[1:]] + [len(rowids) - 1]
    return [(rowids[a].as_py(), rowids[b].as_py()) for a, b in zip(starts, ends, strict=True)]


# -- runs ------------------------------------------------------------------------------------
def start_run(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    tag_id: str,
    endpoint: str,
    destination_id: int,
    is_test: bool,
    is_resend: bool,
) -> None:
    con.execute(
        f"insert into {RUNS_TABLE} (run_id, tag_id, endpoint, destination_id, is_test, is_resend,"
        " started_at) values (?, ?, ?, ?, ?, ?, ?)",
        [run_id, tag_id, endpoint, destination_id, is_test, is_resend, utc_now()],
    )


def finish_run(
    con: duckdb.DuckDBPyConnection, run_id: str, summary: dict, *, exit_code: int, outcome: str
) -> None:
    con.execute(
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
            run_id,
        ],
    )

"""The push loop: stream pending rows, batch them, post them concurrently, record outcomes.

- 2xx: the batch's rows go to the ledger as ``accepted``, all or nothing (see sender.ledger).
- 400: the request was discarded whole; split it in halves, recursively, until the invalid
  events are alone: those are ``rejected_by_api``, all the others are delivered.
- 401/403: stop at once, no retry. Another unexpected status (404, ...): stop too.
- A TLS certificate that does not verify: stop at once, no retry (a configuration problem).
- The first request goes alone: when the token, the endpoint or the certificate is wrong, one
  request finds out, not one per worker.
- 408/429/5xx, timeouts, connection errors: retry with backoff (same keys: LINE de-duplicates on
  event name + key), within ``max_retries``; what is left stays pending for the next run.
- Events older than 90 days or more than 24 h ahead: not sent, recorded as ``expired``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from sender import fault_points
from sender.build_info import check_build
from sender.database import ensure_ledger, first_line, has_ledger
from sender.destinations import destination_id as find_destination
from sender.destinations import pending_destination
from sender.exit_codes import ExitCode
from sender.ledger import LedgerWriter, finish_run, start_run
from sender.ledger import Outcome as Recorded
from sender.ledger_retention import RETENTION_SECONDS, prune, prune_is_due
from sender.line_client import LineClient, Outcome, Response, backoff_delay
from sender.pending_rows import PendingRows, find_pending, iter_pending, ledger_has_keys
from sender.progress import Progress
from sender.request_body import (
    PAYLOAD_COLUMN,
    Body,
    build_body,
    payload_texts,
    splice_test_flag,
    split_by_size,
    split_expired,
)
from sender.settings import ConfigError, LineTarget

# 5,000 events of ~0.5-1 KB make 2.5-5 MB per request: large enough that the per-request costs
# (HTTP round trip, one ledger insert) vanish, small enough that a retry, a 400 bisection or the
# requests held in memory (about 2 x concurrency of them) stay cheap.
DEFAULT_BATCH_SIZE = 5_000
DEFAULT_CONCURRENCY = 4
DEFAULT_MAX_RETRIES = 5
DEFAULT_TIMEOUT = 30.0
DEFAULT_BACKOFF_BASE = 1.0
DEFAULT_MAX_BACKOFF = 60.0

# Answers after which nothing more is sent: retrying cannot fix them.
_STOPS_THE_RUN = (Outcome.AUTH, Outcome.TLS, Outcome.FATAL)


@dataclass(frozen=True)
class PushOptions:
    batch_size: int = DEFAULT_BATCH_SIZE
    concurrency: int = DEFAULT_CONCURRENCY
    max_retries: int = DEFAULT_MAX_RETRIES
    timeout: float = DEFAULT_TIMEOUT
    backoff_base: float = DEFAULT_BACKOFF_BASE
    max_backoff: float = DEFAULT_MAX_BACKOFF
    limit: int | None = None
    test: bool = False
    resend: bool = False


@dataclass
class Summary:
    run_id: str
    dry_run: bool = False
    test: bool = False
    pending: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    expired: int = 0
    left_pending: int = 0
    retried: int = 0
    requests: int = 0
    batches: int = 0
    elapsed_s: float = 0.0
    events_per_s: float = 0.0
    exit_code: int = 0
    outcome: str = "ok"
    message: str | None = None
    shown: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        data = asdict(self)
        if not self.shown:
            data.pop("shown")
        return data


class _Stop:
    """Why the run stops early (first reason wins)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason: str | None = None
        self.message: str | None = None
        self._lock = threading.Lock()

    def set(self, reason: str, message: str) -> None:
        with self._lock:
            if self.reason is None:
                self.reason, self.message = reason, message
        self.event.set()


def new_run_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


def check_channel_id(pending: PendingRows, target: LineTarget) -> None:
    """Refuse to start when pending rows carry user.line_uid and no channel id is configured
    (LINE needs X-Line-ChannelID for them)."""
    if pending.pending_with_line_uid and not target.channel_id:
        raise ConfigError(
            f"{pending.pending_with_line_uid:,} pending rows carry user.line_uid: set"
            f" LINE_CHANNEL_ID (the LINE Login channel that issued them) for LINE Tag"
            f" {target.tag_id}, or pass --channel-id"
        )


class Pusher:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        target: LineTarget,
        options: PushOptions,
        progress: Progress,
    ) -> None:
        self.con = con
        self.target = target
        self.options = options
        self.progress = progress
        self.summary = Summary(run_id=new_run_id(), test=options.test)
        self.client = LineClient(target, timeout=options.timeout)
        self.stop = _Stop()
        self._lock = threading.Lock()
        self._rng = random.Random()  # noqa: S311 - jitter, not security
        self.writer: LedgerWriter | None = None
        self._expired_groups = 0
        self.destination_id = 0
        self._first_answer = threading.Event()
        self._first_lock = threading.Lock()

    # -- counters -------------------------------------------------------------------------
    def _add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self.summary, name, getattr(self.summary, name) + n)

    # -- the run --------------------------------------------------------------------------
    def run(self) -> Summary:
        opts = self.options
        started = time.monotonic()
        # before anything is written or sent: the payload is a finished build, and not the sample
        check_build(self.con, self.target.endpoint)
        ensure_ledger(self.con)
        self.destination_id = find_destination(
            self.con, self.target.endpoint, self.target.tag_id, create=True
        )
        # nothing recorded at this destination yet: no need to look the rows up in the ledger
        use_ledger = not opts.resend and ledger_has_keys(self.con, self.destination_id)
        rows = find_pending(self.con, destination_id=self.destination_id if use_ledger else None)
        check_channel_id(rows, self.target)
        pending = rows.pending
        if opts.limit is not None:
            pending = min(pending, opts.limit)
        self.summary.pending = pending
        start_run(
            self.con,
            run_id=self.summary.run_id,
            tag_id=self.target.tag_id,
            endpoint=self.target.endpoint,
            destination_id=self.destination_id,
            is_test=opts.test,
            is_resend=opts.resend,
        )
        self.progress.log(
            f"run {self.summary.run_id}: {pending:,} pending events for LINE Tag "
            f"{self.target.tag_id} at {self.target.endpoint}"
            + (" (test events)" if opts.test else "")
        )
        self.progress.start(pending)
        # A short queue: a queued outcome pins its Arrow chunk (payloads included) in memory,
        # and when the disk is slower than the network the senders should wait, not pile up.
        self.writer = LedgerWriter(
            self.con,
            run_id=self.summary.run_id,
            is_test=opts.test,
            destination_id=self.destination_id,
            on_commit=self._committed,
            on_error=lambda exc: self.stop.set("ledger", str(exc)),
            max_queued=2 * opts.concurrency + 2,
            max_group=opts.concurrency,  # every sender waiting: commit, no need to linger
        )
        error: BaseException | None = None
        try:
            self._send_all(rows)
        except KeyboardInterrupt:
            self.stop.set("interrupted", "interrupted: what was not acknowledged stays pending")
        except BaseException as exc:  # recorded in the runs table, then re-raised
            self.stop.set("error", f"stopped by an error: {type(exc).__name__}")
            error = exc
        finally:
            self.client.close()
            try:
                self.writer.close()  # commits what is still queued
            except BaseException as exc:
                self.stop.set("error", f"stopped by an error: {type(exc).__name__}")
                error = error or exc
            self.progress.finish()
            if error is None and self.stop.reason is None:
                self._prune_ledger()
            try:
                self._finish(started)
            except Exception as exc:  # the disk that refused the ledger refuses the runs table
                error = error or exc
        if error is not None:
            raise error
        return self.summary

    def _prune_ledger(self) -> None:
        """Retention, once the sends are done: most runs only check, about one a day deletes."""
        try:
            if prune_is_due(self.con):
                pruned = prune(self.con)
                self.progress.log(
                    f"ledger retention: {pruned.keys:,} key rows older than"
                    f" {RETENTION_SECONDS // 86_400} days deleted"
                )
        except duckdb.Error as exc:  # the sends are recorded; the next run tries again
            self.progress.log(f"warning: ledger retention skipped: {first_line(exc)}")

    def _committed(self, recorded: Recorded) -> None:
        """Called by the ledger writer once an outcome is durable: only now it counts."""
        n = recorded.keys.num_rows
        counter = {"accepted": "accepted", "rejected_by_api": "rejected", "expired": "expired"}
        self._add(**{counter[recorded.status]: n})
        self.progress.advance(n)

    def _send_all(self, rows: PendingRows) -> None:
        opts = self.options
        in_flight: set[Future] = set()
        max_in_flight = opts.concurrency * 2
        chunks = iter_pending(self.con, pending=rows, limit=opts.limit)
        with (
            contextlib.closing(chunks),  # ends the scan at once when stopping early
            ThreadPoolExecutor(opts.concurrency, thread_name_prefix="sender") as pool,
        ):
            try:
                for chunk in chunks:
                    if self.stop.event.is_set():
                        break
                    for batch in split_by_size(self._prepare(chunk), opts.batch_size):
                        while len(in_flight) >= max_in_flight:
                            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                            self._reap(done)
                        if self.stop.event.is_set():
                            break
                        self.summary.batches += 1
                        batch_id = f"{self.summary.run_id}-{self.summary.batches:06d}"
                        in_flight.add(pool.submit(self._deliver_batch, batch, batch_id))
                while in_flight:
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    self._reap(done)
            except BaseException:
                self.stop.event.set()  # the caller records why
                for fut in in_flight:
                    fut.cancel()
                raise

    def _prepare(self, chunk: pa.Table) -> pa.Table:
        """Record the expired rows, splice the test flag into the others."""
        sendable = self._expire(chunk)
        if sendable.num_rows and self.options.test:
            sendable = sendable.set_column(
                sendable.schema.get_field_index(PAYLOAD_COLUMN),
                PAYLOAD_COLUMN,
                splice_test_flag(sendable.column(PAYLOAD_COLUMN)),
            )
        return sendable

    def _reap(self, done: set[Future]) -> None:
        for fut in done:
            exc = fut.exception()
            if exc is not None:
                raise exc

    def _expire(self, chunk: pa.Table) -> pa.Table:
        split = split_expired(chunk)
        for rows, why in (
            (split.too_old, "event_timestamp older than 90 days"),
            (split.too_far_ahead, "event_timestamp more than 24 h ahead (milliseconds?)"),
        ):
            if rows.num_rows:
                self._expired_groups += 1
                self.writer.record(
                    rows,
                    status="expired",
                    batch_id=f"{self.summary.run_id}-expired-{self._expired_groups:06d}",
                    http_status=None,
                    attempts=0,
                    error=why,
                )
                self.progress.log(f"warning: {rows.num_rows:,} events not sent: {why}")
        return split.sendable

    # -- one batch, in a worker thread ------------------------------------------------------
    def _deliver_batch(self, batch: pa.Table, batch_id: str) -> None:
        if self.stop.event.is_set():
            return
        self._add(sent=batch.num_rows)
        self._deliver(batch, batch_id)

    def _deliver(self, rows: pa.Table, batch_id: str) -> None:
        n = rows.num_rows
        body = build_body(rows.column(PAYLOAD_COLUMN))
        has_line_uid = bool(pc.any(rows.column("has_line_uid")).as_py())
        resp, attempts = self._post_with_retries(body, has_line_uid, batch_id)
        fault_points.hit("after_response")  # test hook: sender/fault_points.py
        del body
        if resp is None:  # stopped (401 elsewhere, Ctrl-C): stays pending
            return
        if resp.outcome is Outcome.ACCEPTED:
            # The worker takes its next batch only once this one is recorded: a killed run
            # leaves unrecorded no more than the requests in flight.
            self.writer.record(
                rows,
                status="accepted",
                batch_id=batch_id,
                http_status=resp.http_status,
                attempts=attempts,
            ).wait()
        elif resp.outcome in (Outcome.BAD_REQUEST, Outcome.TOO_LARGE):
            if n == 1:
                key = rows.column("deduplication_key")[0].as_py()
                name = rows.column("event_name")[0].as_py()
                why = "invalid event" if resp.outcome is Outcome.BAD_REQUEST else "event too large"
                self.writer.record(
                    rows,
                    status="rejected_by_api",
                    batch_id=batch_id,
                    http_status=resp.http_status,
                    attempts=attempts,
                    error=f"HTTP {resp.http_status}: {why}",
                )
                self.progress.log(
                    f"warning: LINE rejected event {name}/{key} (HTTP {resp.http_status})"
                )
                return
            half = n // 2
            self._deliver(rows.slice(0, half), f"{batch_id}.0")
            self._deliver(rows.slice(half), f"{batch_id}.1")
        elif resp.outcome in _STOPS_THE_RUN:
            self.stop.set(*self._why_stop(resp))
        else:  # retries exhausted: stays pending
            self.progress.log(
                f"warning: {n:,} events left pending after {attempts} attempts ({resp.error})"
            )

    def _post_with_retries(
        self, body: Body, has_line_uid: bool, batch_id: str
    ) -> tuple[Response | None, int]:
        opts = self.options
        attempts = 0
        while True:
            if self.stop.event.is_set():
                return None, attempts
            attempts += 1
            resp = self._post(body, has_line_uid)
            if resp is None:
                return None, attempts - 1
            if resp.outcome is not Outcome.RETRYABLE or attempts > opts.max_retries:
                return resp, attempts
            self._add(retried=1)
            delay = backoff_delay(
                attempts,
                base=opts.backoff_base,
                cap=opts.max_backoff,
                retry_after=resp.retry_after,
                rng=self._rng,
            )
            self.progress.log(
                f"retrying batch {batch_id} in {delay:.1f}s after {resp.error}"
                f" (attempt {attempts} of {opts.max_retries + 1})"
            )
            if self.stop.event.wait(delay):
                return resp, attempts

    def _post(self, body: Body, has_line_uid: bool) -> Response | None:
        """One POST; until a first answer came back, one at a time (None: stopped meanwhile)."""
        if self._first_answer.is_set():
            self._add(requests=1)
            return self.client.post(body, has_line_uid=has_line_uid)
        with self._first_lock:
            if self.stop.event.is_set():
                return None
            self._add(requests=1)
            resp = self.client.post(body, has_line_uid=has_line_uid)
            if resp.outcome in _STOPS_THE_RUN:  # before any other worker may send
                self.stop.set(*self._why_stop(resp))
            self._first_answer.set()
            return resp

    def _why_stop(self, resp: Response) -> tuple[str, str]:
        """The stop reason and its one-line message for an answer in _STOPS_THE_RUN."""
        if resp.outcome is Outcome.AUTH:
            return (
                "auth",
                f"LINE answered HTTP {resp.http_status} for LINE Tag {self.target.tag_id}: "
                "the access token is wrong, belongs to another tag, or is not a LINE Tag "
                "access token; nothing more was sent",
            )
        if resp.outcome is Outcome.TLS:
            return "tls", f"{resp.error}; nothing more was sent, the rest stays pending"
        return (
            "fatal",
            f"LINE answered HTTP {resp.http_status} for {self.target.events_url}: "
            "check LINE_CAPI_ENDPOINT and LINE_TAG_ID; nothing more was sent",
        )

    def _finish(self, started: float) -> None:
        s = self.summary
        s.elapsed_s = round(time.monotonic() - started, 3)
        s.events_per_s = round(s.accepted / s.elapsed_s, 1) if s.elapsed_s > 0 else 0.0
        s.left_pending = max(0, s.pending - s.accepted - s.rejected - s.expired)
        s.exit_code, s.outcome = decide_exit(s, self.stop.reason)
        s.message = self.stop.message
        finish_run(self.con, s.run_id, s.as_dict(), exit_code=int(s.exit_code), outcome=s.outcome)


def decide_exit(s: Summary, stop_reason: str | None) -> tuple[ExitCode, str]:
    if stop_reason == "interrupted":
        return ExitCode.INTERRUPTED, "interrupted"
    if stop_reason == "auth":
        return ExitCode.AUTHENTICATION, "authentication_failed"
    if stop_reason == "tls":
        return ExitCode.TLS_CERTIFICATE, "tls_certificate"
    if stop_reason == "fatal":
        return ExitCode.UNEXPECTED_RESPONSE, "unexpected_response"
    if stop_reason == "ledger":
        return ExitCode.DATABASE_ERROR, "ledger_write_failed"
    if stop_reason == "error":
        return ExitCode.INTERNAL_ERROR, "error"
    if s.left_pending:
        return ExitCode.PENDING_LEFT, "pending_left"
    if s.rejected:
        return ExitCode.REJECTED_BY_API, "rejected_by_api"
    return ExitCode.OK, "ok"


def push(
    con: duckdb.DuckDBPyConnection, target: LineTarget, options: PushOptions, progress: Progress
) -> Summary:
    return Pusher(con, target, options, progress).run()


def dry_run(
    con: duckdb.DuckDBPyConnection,
    options: PushOptions,
    *,
    show: int = 0,
    endpoint: str | None = None,
    tag_id: str | None = None,
) -> Summary:
    """What ``push`` would do, without network or ledger writes (``con`` may be read-only): the
    rows pending at the destination ``endpoint``/``tag_id`` (default: that of the last push)."""
    started = time.monotonic()
    summary = Summary(run_id="dry-run", dry_run=True, test=options.test)
    destination = None
    if has_ledger(con) and not options.resend:
        destination = pending_destination(con, endpoint=endpoint, tag_id=tag_id)
    rows = find_pending(con, destination_id=destination)
    for chunk in iter_pending(con, pending=rows, limit=options.limit):
        summary.pending += chunk.num_rows
        split = split_expired(chunk)
        summary.expired += split.too_old.num_rows + split.too_far_ahead.num_rows
        sendable = split.sendable
        if options.test and sendable.num_rows:
            sendable = sendable.set_column(
                sendable.schema.get_field_index(PAYLOAD_COLUMN),
                PAYLOAD_COLUMN,
                splice_test_flag(sendable.column(PAYLOAD_COLUMN)),
            )
        for batch in split_by_size(sendable, options.batch_size):
            summary.batches += 1
            summary.sent += batch.num_rows
            if len(summary.shown) < show:
                wanted = show - len(summary.shown)
                summary.shown.extend(payload_texts(batch.column(PAYLOAD_COLUMN), wanted))
    summary.left_pending = summary.pending - summary.expired
    summary.elapsed_s = round(time.monotonic() - started, 3)
    summary.outcome = "dry_run"
    return summary

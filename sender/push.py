"""The push loop: stream pending rows, batch them, post them concurrently, record outcomes.

- 202: the batch's rows go to the ledger as ``accepted``, all or nothing (see sender.ledger).
- 400: the request was discarded whole; split it in halves, recursively, until the invalid
  events are alone: those are ``rejected_by_api``, all the others are delivered. A whole batch
  refused event by event, with nothing accepted in the run, stops it (REFUSALS_BEFORE_STOP); so
  does a run that accepts nothing and whose smaller batches are all refused (_settle_run).
- 413: split the same way until the requests fit; for one event alone, stop (a proxy's limit).
- 401/403: stop at once, no retry. Another unexpected status (404, ...): stop too.
- A TLS certificate that does not verify: stop at once, no retry (a configuration problem).
- The first batch goes alone, until it is answered or its retries are over: when the token,
  the endpoint or the certificate is wrong, one request finds out, and when LINE is down or out
  of reach, one batch's retries, not one series per worker.
- 408/425/429/5xx, timeouts, connection errors: retry with backoff (same keys: LINE de-duplicates on
  event name + key), within ``max_retries``; what is left stays pending for the next run. A
  ``Retry-After`` longer than ``max_backoff`` ends the run's sending: the rest waits for the next.
  So does a batch that used up its retries before anything was accepted in the run (LINE down,
  or out of reach): the other batches would only do the same, for as long again each.
- A 2xx other than LINE's 202 did not come from LINE (a proxy's page): stop, nothing recorded.
- Events older than 90 days or more than 24 h ahead: not sent, recorded as ``expired``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from sender import fault_points
from sender.batches import prepare_chunk
from sender.build_info import check_build
from sender.database import (
    ACCEPTED,
    EXPIRED,
    PAYLOAD_TABLE,
    REJECTED_BY_API,
    ensure_ledger,
    fetch_one,
    first_line,
)
from sender.destinations import destination_id as find_destination
from sender.ledger import LedgerEntry, LedgerWriter, finish_run, start_run
from sender.ledger_retention import RETENTION_SECONDS, prune, prune_is_due
from sender.line_client import (
    PROXY_AUTH_REQUIRED,
    HttpOutcome,
    LineClient,
    Response,
    backoff_delay,
)
from sender.line_rules import MAX_DEDUPLICATION_KEY_LENGTH, MAX_REQUEST_BYTES, TEST_KEY_PREFIX
from sender.pending_rows import (
    PendingRows,
    chunk_rows_for,
    find_pending,
    find_resendable,
    iter_pending,
    ledger_has_keys,
)
from sender.progress import Progress
from sender.push_summary import (
    COUNTER_OF_STATUS,
    NewEventNames,
    Summary,
    decide_exit,
    first_push_note,
    held_message,
    new_event_names,
    not_resent_message,
)
from sender.request_body import PAYLOAD_COLUMN, Body, build_body
from sender.settings import DEFAULT_ENDPOINT, LineTarget
from sender.window_gap import find_window_gap

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
STOPS_THE_RUN = (HttpOutcome.AUTH, HttpOutcome.TLS, HttpOutcome.FATAL)
# A whole batch of at least this many events refused one by one, and nothing accepted in the
# run: LINE refuses the request, not the events (a channel id, an event name it does not know).
# The run stops with them pending, instead of bisecting every batch at two requests an event
# and recording each event as rejected.
REFUSALS_BEFORE_STOP = 10
# Requests (batches, or the pieces of a refused batch) in a row whose retries ended without an
# answer LINE took, after it accepted events in the run: LINE went down or out of reach midway.
# One is a batch's bad luck, and the run goes on; at this many it stops, the rest pending for the
# next run, rather than spend every other request's retries (thousands, for a refused batch cut
# into single events) and hold the job past its hour.
FAILED_IN_A_ROW_BEFORE_STOP = 2
# Rejected events whose order id a push prints: the console goes to cron mail, the journal or a
# CI job's log, which others may read and keep; the ledger has every one.
REJECTIONS_NAMED = 20


def _attempts(count: int) -> str:
    """``count`` attempts, in words: `1 attempt` (--max-retries 0), `5 attempts`."""
    return f"{count:,} attempt{'' if count == 1 else 's'}"


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
    # the rows LINE refused (rejected_by_api) here are pending again: the model was fixed
    retry_rejected: bool = False
    # send the rows of an event name new to the destination whose order ids it has under
    # another name (two conversion types of one order, on purpose): see new_event_names
    allow_renamed: bool = False


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


INTERRUPTED_MESSAGE = "interrupted: what was not acknowledged stays pending"


@contextlib.contextmanager
def stop_signals_noted(note: Callable[[], None]) -> Iterator[None]:
    """SIGTERM and SIGINT only call ``note`` while the block runs, instead of raising
    KeyboardInterrupt wherever the main thread is: once the sends are over, the push's last steps
    (the scan's and the writer's close, the runs row) each touch the database, and one of them
    stopped midway left the ledger's last commit unrecorded or the connection busy (exit 10). A
    no-op outside the main thread, where no handler can be set."""
    numbers = (signal.SIGTERM, signal.SIGINT)
    try:
        before = {number: signal.signal(number, lambda *_: note()) for number in numbers}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)


def new_run_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


def holds_line_uid_rows(pending: PendingRows, channel_id: str | None) -> bool:
    """Whether the rows with user.line_uid are held back: LINE needs X-Line-ChannelID for them,
    and no channel id is configured. The other rows are sent; these stay pending, so that a site
    that starts using LINE Login does not stop every other event until the setting is made."""
    return bool(pending.pending_with_line_uid) and not channel_id


def rows_to_resend(
    con: duckdb.DuckDBPyConnection, destination_id: int | None, *, test: bool
) -> PendingRows:
    """What ``--resend`` sends: every row, but those LINE would count twice (first accepted at
    the destination too long ago; see find_resendable). A test send has keys of its own."""
    return find_resendable(con, destination_id=None if test else destination_id)


def payload_holds_rows(con: duckdb.DuckDBPyConnection) -> bool:
    return fetch_one(con, f"select count(*) > 0 from {PAYLOAD_TABLE}")[0]  # noqa: S608


def renamed_held(
    names: NewEventNames | None, options: PushOptions
) -> tuple[NewEventNames, pa.Array] | None:
    """The event names a push holds back (new_event_names), as the array without_event_names
    takes; None when there are none, or the options send them. Every event of a new name is held
    once some of its orders went to the destination under another name: the build that renamed
    those renamed its other orders too (a catch-up built without the site's vars), and sending
    them now under that name would count them twice once they go out under the right one. A new
    name none of whose orders went out before (a conversion type added) goes."""
    if names is None or not names.renamed or options.allow_renamed:
        return None
    return names, pa.array(names.renamed_names(), pa.string())


def without_event_names(batch: pa.Table, names: pa.Array) -> tuple[pa.Table, int]:
    """The batch without its rows of an event name in ``names``, and how many those were."""
    held_rows = pc.fill_null(pc.is_in(batch.column("event_name"), value_set=names), False)
    held = int(pc.sum(held_rows.cast(pa.int64())).as_py() or 0)
    return (batch.filter(pc.invert(held_rows)), held) if held else (batch, 0)


def without_line_uid(batch: pa.Table) -> tuple[pa.Table, int]:
    """The batch without its rows that carry user.line_uid, and how many those were."""
    has_line_uid = pc.fill_null(batch.column("has_line_uid"), False)
    held = int(pc.sum(has_line_uid.cast(pa.int64())).as_py() or 0)
    return (batch.filter(pc.invert(has_line_uid)), held) if held else (batch, 0)


@dataclass(frozen=True)
class _Answer:
    """LINE's answer to a batch, after the retries: what a response handler gets."""

    rows: pa.Table
    batch_id: str
    response: Response
    attempts: int


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
        self._hold_line_uid = False  # set by run(): see holds_line_uid_rows
        self._renamed: tuple[NewEventNames, pa.Array] | None = None  # set by run(): renamed_held
        self.destination_id = 0
        # until the run's first batch has an answer (see _post), only its worker sends
        self._gate = threading.Event()
        self._pioneer: int | None = None  # that worker's thread
        self._pioneer_lock = threading.Lock()
        self._accepted_any = threading.Event()
        self._failed_in_a_row = 0  # since LINE last answered: FAILED_IN_A_ROW_BEFORE_STOP
        # events of small batches refused whole before anything was accepted (_settle_refusals)
        self._refused_alone: list[_Answer] = []
        self._rejections_named = 0  # rejected events whose key was printed (REJECTIONS_NAMED)
        # per worker thread: the commit of its last accepted batch (see _accepted)
        self._worker = threading.local()
        # what each answer does, once its retries are over
        self._handlers: dict[HttpOutcome, Callable[[_Answer], None]] = {
            HttpOutcome.ACCEPTED: self._accepted,
            HttpOutcome.BAD_REQUEST: self._bisect,
            HttpOutcome.TOO_LARGE: self._bisect,
            HttpOutcome.AUTH: self._stop_run,
            HttpOutcome.TLS: self._stop_run,
            HttpOutcome.FATAL: self._stop_run,
            HttpOutcome.RETRYABLE: self._left_pending,
        }

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
        built = check_build(self.con, self.target.endpoint)
        if built.window_line() is not None and not opts.test:
            self.progress.log(built.window_line())
        ensure_ledger(self.con)
        self.destination_id = find_destination(
            self.con, self.target.endpoint, self.target.tag_id, create=True
        )
        gap = None if opts.test else find_window_gap(self.con, self.destination_id)
        if gap is not None:
            self.progress.log(f"warning: {gap.describe()}")
        first_push = False
        if opts.resend:
            rows = rows_to_resend(self.con, self.destination_id, test=opts.test)
            self.summary.not_resent = len(rows.acknowledged)
        else:
            # nothing recorded at this destination yet: no need to look the rows up in the ledger
            used = ledger_has_keys(self.con, self.destination_id)
            first_push = not used
            rows = find_pending(
                self.con,
                destination_id=self.destination_id if used else None,
                retry_rejected=opts.retry_rejected,
            )
        self._hold_line_uid = holds_line_uid_rows(rows, self.target.channel_id)
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
            # a key sent again has two outcomes: `status` counts it once, under its latest
            is_resend=opts.resend or opts.retry_rejected,
        )
        self.progress.log(
            f"run {self.summary.run_id}: {pending:,} pending events for LINE Tag "
            f"{self.target.tag_id} at {self.target.endpoint}"
            + (" (test events)" if opts.test else "")
        )
        if first_push and pending and not opts.test:
            self.progress.log(f"note: {first_push_note(self.con)}")
        elif pending and not opts.test and not opts.resend:
            names = new_event_names(self.con, self.destination_id)
            if names is not None:
                self.progress.log(f"warning: {names.warning()}")
            self._renamed = renamed_held(names, opts)
        if opts.test and not opts.resend and not pending and payload_holds_rows(self.con):
            # a connection check after the first real push: nothing left to test with
            self.progress.log(
                "note: nothing is pending at this destination, so --test sends nothing; add"
                " --resend to send events already sent as tests (LINE does not count them)"
            )
        if self.summary.not_resent:
            self.progress.log(f"warning: {not_resent_message(self.summary.not_resent)}")
        if self._hold_line_uid:
            self.progress.log(
                f"warning: {rows.pending_with_line_uid:,} pending events carry user.line_uid and"
                " are held back: LINE_CHANNEL_ID is not set"
            )
        self.progress.start(pending)
        # A short queue: when the disk is slower than the network the senders should wait, not
        # pile up outcomes. Each worker has at most two outcomes unrecorded (see _accepted), so
        # one commit can take every one of them.
        self.writer = LedgerWriter(
            self.con,
            run_id=self.summary.run_id,
            is_test=opts.test,
            destination_id=self.destination_id,
            on_commit=self._committed,
            on_error=lambda exc: self.stop.set("ledger", str(exc)),
            max_queued=2 * opts.concurrency + 2,
            max_group=2 * opts.concurrency,
        )
        error: BaseException | None = None
        # the handlers in force until the end of the finally below (stop_signals_noted)
        with contextlib.ExitStack() as self._last_steps:
            try:
                self._send_all(rows)
                self._settle_run()
            except KeyboardInterrupt:
                self.stop.set("interrupted", INTERRUPTED_MESSAGE)
            except BaseException as exc:  # recorded in the runs table, then re-raised
                self.stop.set("error", f"stopped by an error: {type(exc).__name__}")
                error = exc
            finally:
                self._last_steps.enter_context(stop_signals_noted(self._interrupted))
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

    def _interrupted(self) -> None:
        """A SIGTERM or Ctrl-C during the push's last steps: noted, and they go to their end."""
        self.stop.set("interrupted", INTERRUPTED_MESSAGE)

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

    def _committed(self, entry: LedgerEntry) -> None:
        """Called by the ledger writer once an entry is durable: only now it counts."""
        n = entry.events
        self._add(**{COUNTER_OF_STATUS[entry.status]: n})
        self.progress.advance(n)

    # -- the sending loop, in the main thread -----------------------------------------------
    def _send_all(self, rows: PendingRows) -> None:
        opts = self.options
        in_flight: set[Future] = set()
        max_in_flight = opts.concurrency * 2
        chunks = iter_pending(
            self.con, pending=rows, limit=opts.limit, chunk_rows=chunk_rows_for(opts.batch_size)
        )
        with (
            contextlib.closing(chunks),  # ends the scan at once when stopping early
            ThreadPoolExecutor(opts.concurrency, thread_name_prefix="sender") as pool,
        ):
            try:
                for chunk in chunks:
                    if self.stop.event.is_set():
                        break
                    prepared = prepare_chunk(chunk, batch_size=opts.batch_size, test=opts.test)
                    for rows_, why in prepared.expired:
                        self._record_expired(rows_, why)
                    for batch in prepared.batches:
                        if self._hold_line_uid:
                            batch, held = without_line_uid(batch)
                            self.summary.held += held
                            self.progress.advance(held)
                        if self._renamed is not None:
                            batch, held = without_event_names(batch, self._renamed[1])
                            self.summary.held_renamed += held
                            self.progress.advance(held)
                        if not batch.num_rows:
                            continue
                        while len(in_flight) >= max_in_flight:
                            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                            _reap(done)
                        if self.stop.event.is_set():
                            break
                        self.summary.batches += 1
                        batch_id = f"{self.summary.run_id}-{self.summary.batches:06d}"
                        in_flight.add(pool.submit(self._deliver_batch, batch, batch_id))
                while in_flight:
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    _reap(done)
                # the sends are over: from here the scan closes, then the ledger's last commit
                self._last_steps.enter_context(stop_signals_noted(self._interrupted))
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    # before the pool waits for its workers: one in a retry's backoff would
                    # otherwise record the run as `unavailable` (exit 1) on its way out
                    self.stop.set("interrupted", INTERRUPTED_MESSAGE)
                self.stop.event.set()  # the caller records why
                for fut in in_flight:
                    fut.cancel()
                raise

    def _record_expired(self, rows: pa.Table, why: str) -> None:
        self._expired_groups += 1
        self.writer.record(
            rows,
            status=EXPIRED,
            batch_id=f"{self.summary.run_id}-expired-{self._expired_groups:06d}",
            http_status=None,
            attempts=0,
            error=why,
        )
        self.progress.log(f"warning: {rows.num_rows:,} events not sent: {why}")

    # -- one batch, in a worker thread ------------------------------------------------------
    def _deliver_batch(self, batch: pa.Table, batch_id: str) -> None:
        if self.stop.event.is_set():
            return
        # counted as sent once one of its requests went out (not when a stop kept it back)
        self._worker.unsent = batch.num_rows
        # the events of this batch refused alone, recorded once the whole batch is answered
        self._worker.refused = []
        self._worker.accepted = 0
        self._worker.probed = False
        try:
            self._deliver(batch, batch_id)
        finally:
            if self._pioneer == threading.get_ident():
                # its retries are over (and a stop, if they failed, set): the others may send
                self._gate.set()
        self._settle_refusals(batch.num_rows)

    def _settle_refusals(self, events: int) -> None:
        """Record the batch's events that were refused alone, unless the batch says the request
        itself is refused: every event refused, none accepted in the run (they stay pending)."""
        refused: list[_Answer] = self._worker.refused
        if not refused:
            return
        every_one = len(refused) == events and self._worker.accepted == 0
        if every_one and not self._accepted_any.is_set():
            if events >= REFUSALS_BEFORE_STOP:
                self._stop_refused(f"each of the {events:,} events of a batch sent one by one")
                return
            with self._lock:  # too few to tell: judged with the whole run (_settle_run)
                self._refused_alone.extend(refused)
                deferred = sum(answer.rows.num_rows for answer in self._refused_alone)
            if deferred >= REFUSALS_BEFORE_STOP and not self._accepted_any.is_set():
                # as many as a larger batch needs: no need to try every other event alone
                self._stop_refused(
                    f"each of {deferred:,} events sent one by one from small batches"
                )
            return
        if self.stop.event.is_set():
            return  # the batch was cut short: they stay pending, and the next run judges them
        for answer in refused:
            self._record_refusal(answer)

    def _settle_run(self) -> None:
        """Judge the small batches refused whole before anything was accepted: if the run
        accepted nothing at all, LINE refuses its requests, as for a larger batch (a quiet hour
        of three events and a wrong LINE_CHANNEL_ID), and they stay pending; otherwise those
        events are refused, each alone, and recorded as such."""
        refused, self._refused_alone = self._refused_alone, []
        if not refused or self.stop.event.is_set():
            return  # stopped: they stay pending, and the next run judges them
        if not self._accepted_any.is_set():
            events = sum(answer.rows.num_rows for answer in refused)
            self._stop_refused(
                "the one event of the run"
                if events == 1
                else f"each of the {events:,} events of the run, sent one by one",
                verdict="too few to tell refused events from a refused request, taken for the"
                " request, as most often",
            )
            return
        for answer in refused:
            self._record_refusal(answer)

    def _deliver(self, rows: pa.Table, batch_id: str) -> None:
        body = build_body(rows.column(PAYLOAD_COLUMN))
        has_line_uid = bool(pc.any(rows.column("has_line_uid")).as_py())
        resp, attempts = self._post_with_retries(body, has_line_uid, batch_id)
        fault_points.hit("after_response")  # test hook: sender/fault_points.py
        del body
        if resp is None:  # stopped (401 elsewhere, Ctrl-C): stays pending
            return
        self._handlers[resp.outcome](_Answer(rows, batch_id, resp, attempts))

    # -- what each answer does (self._handlers) -------------------------------------------
    def _accepted(self, answer: _Answer) -> None:
        # The commit runs while the worker sends its next batch; the worker waits for it only
        # when that batch is answered too. So a worker never idles on the disk, and a killed
        # run leaves unrecorded at most two acknowledged batches per worker (re-sent by the
        # next run, de-duplicated by LINE).
        self._accepted_any.set()
        self._worker.accepted = getattr(self._worker, "accepted", 0) + answer.rows.num_rows
        committed = self.writer.record(
            answer.rows,
            status=ACCEPTED,
            batch_id=answer.batch_id,
            http_status=answer.response.http_status,
            attempts=answer.attempts,
        )
        previous = getattr(self._worker, "committed", None)
        self._worker.committed = committed
        if previous is not None:
            previous.wait()

    def _bisect(self, answer: _Answer) -> None:
        """400 (an invalid event) or 413: LINE kept nothing; halve until the culprit is alone."""
        rows, resp = answer.rows, answer.response
        if self._worth_probing(answer):
            rows = self._probe(rows, answer.batch_id)
            if rows is None:
                return
        if rows.num_rows > 1:
            half = rows.num_rows // 2
            self._deliver(rows.slice(0, half), f"{answer.batch_id}.0")
            self._deliver(rows.slice(half), f"{answer.batch_id}.1")
            return
        if resp.outcome is HttpOutcome.BAD_REQUEST:
            self._worker.refused.append(answer)  # judged with its batch: _settle_refusals
        else:  # 413 for one event, a few kB where LINE takes 300 MB: a limit on the way
            size = len(build_body(rows.column(PAYLOAD_COLUMN)))
            self.stop.set(
                "fatal",
                f"{self.target.events_url} answered HTTP 413 (too large) to a request of one"
                f" event, {size:,} bytes, where LINE takes up to {MAX_REQUEST_BYTES // 10**6} MB:"
                " a limit on the way refuses it (a proxy's or a firewall's request size; check"
                " HTTPS_PROXY); nothing more was sent, the events stay pending",
            )

    def _worth_probing(self, answer: _Answer) -> bool:
        """A whole batch refused with 400 before anything was accepted in the run: it may be the
        request that LINE refuses (once per batch; smaller batches are judged whole)."""
        return (
            answer.response.outcome is HttpOutcome.BAD_REQUEST
            and answer.rows.num_rows >= 2 * REFUSALS_BEFORE_STOP
            and not self._worker.probed
            and not self._accepted_any.is_set()
        )

    def _probe(self, rows: pa.Table, batch_id: str) -> pa.Table | None:
        """Send REFUSALS_BEFORE_STOP events spread over the batch, each alone. All refused, and
        nothing accepted in the run: LINE refuses the request, and the run stops with every event
        pending (about ten requests, not two an event). Otherwise the batch without them, to
        bisect; ten invalid events at its start are then found as any others."""
        self._worker.probed = True
        n = rows.num_rows
        picked = [i * n // REFUSALS_BEFORE_STOP for i in range(REFUSALS_BEFORE_STOP)]
        refused_before = len(self._worker.refused)
        for k, i in enumerate(picked):
            self._deliver(rows.slice(i, 1), f"{batch_id}.p{k}")
        refused = len(self._worker.refused) - refused_before
        if refused == len(picked) and not self._accepted_any.is_set():
            self._stop_refused(f"each of {refused} events sent one by one from a refused batch")
            return None
        probed = set(picked)
        return rows.filter(pa.array([i not in probed for i in range(n)]))

    def _stop_refused(
        self, what: str, *, verdict: str = "it refuses the requests, not the events"
    ) -> None:
        retried = (
            " With --retry-rejected, the events LINE refused before may simply be refused again:"
            " is their model fixed and the payload rebuilt?"
            if self.options.retry_rejected
            else ""
        )
        self.stop.set(
            "refused",
            f"LINE answered 400 to {what}, and accepted none in this run: {verdict}"
            " (LINE_CHANNEL_ID for events with a LINE user id, an event name not set up in LINE"
            " Ads Manager); nothing more was sent, the events stay pending" + retried,
        )

    def _record_refusal(self, answer: _Answer) -> None:
        rows, resp = answer.rows, answer.response
        self.writer.record(
            rows,
            status=REJECTED_BY_API,
            batch_id=answer.batch_id,
            http_status=resp.http_status,
            attempts=answer.attempts,
            error=f"HTTP {resp.http_status}: invalid event",
        )
        with self._lock:
            named, self._rejections_named = self._rejections_named, self._rejections_named + 1
        if named > REJECTIONS_NAMED:
            return
        if named == REJECTIONS_NAMED:
            self.progress.log(
                f"warning: LINE rejected more events; the keys of the first {REJECTIONS_NAMED}"
                " are above, of all of them in line_capi_send_log where status ="
                " 'rejected_by_api'"
            )
            return
        key = rows.column("deduplication_key")[0].as_py()
        name = rows.column("event_name")[0].as_py()
        test_key = (TEST_KEY_PREFIX + key)[:MAX_DEDUPLICATION_KEY_LENGTH]
        sent_as = f", sent as the test key {test_key}" if self.options.test else ""
        self.progress.log(
            f"warning: LINE rejected event {name}/{key} (HTTP {resp.http_status}{sent_as})"
        )

    def _stop_run(self, answer: _Answer) -> None:
        """An answer retrying cannot fix: nothing more is sent."""
        self.stop.set(*self._why_stop(answer.response))

    def _left_pending(self, answer: _Answer) -> None:
        """Retries exhausted: the rows stay pending for the next run. Before anything was
        accepted in the run, the run stops sending: LINE is down or out of reach."""
        resp = answer.response
        self.progress.log(
            f"warning: {answer.rows.num_rows:,} events left pending after"
            f" {_attempts(answer.attempts)} ({resp.error})"
        )
        pending = "nothing more was sent, the events stay pending for the next run"
        if self._accepted_any.is_set():
            with self._lock:
                self._failed_in_a_row += 1
                failed = self._failed_in_a_row
            if failed < FAILED_IN_A_ROW_BEFORE_STOP:
                return
            self.stop.set(
                "unreachable" if not resp.reached else "unavailable",
                f"LINE accepted events in this run, then the retries of {failed} requests in a"
                f" row ended without an answer it took (the last: {resp.error}): it went down or"
                f" out of reach midway; {pending}",
            )
            return
        if not resp.reached:
            self.stop.set(
                "unreachable",
                f"LINE could not be reached in {_attempts(answer.attempts)} ({resp.error}), and"
                " nothing was accepted in this run: check the network, DNS, a proxy"
                f" (HTTPS_PROXY) or a firewall between this machine and"
                f" {self.target.endpoint}; {pending}",
            )
        else:
            answered = (
                f"answered {resp.error} to"
                if resp.http_status is not None
                else f"did not answer within --timeout ({resp.error}) in"
            )
            self.stop.set(
                "unavailable",
                f"LINE {answered} {_attempts(answer.attempts)}, and accepted nothing in this run:"
                f" it is unavailable; {pending}",
            )

    # -- the requests ------------------------------------------------------------------------
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
            if resp.reached and getattr(self._worker, "unsent", 0):
                self._add(sent=self._worker.unsent)
                self._worker.unsent = 0
            if resp.outcome is HttpOutcome.ACCEPTED:
                self._accepted_any.set()  # at once: a batch failing meanwhile must not stop the run
            if resp.outcome is not HttpOutcome.RETRYABLE:
                with self._lock:  # LINE answers (a 400 too): not down
                    self._failed_in_a_row = 0
                return resp, attempts
            if resp.retry_after is not None and resp.retry_after > opts.max_backoff:
                # honoured, not cut short: no request before LINE's time, so none in this run
                self.stop.set(
                    "retry_later",
                    f"LINE asked for no request in the next {resp.retry_after:,.0f}s"
                    f" (Retry-After), longer than --max-backoff {opts.max_backoff:g}s: nothing"
                    " more was sent, the rest stays pending for the next run",
                )
                return resp, attempts
            if attempts > opts.max_retries:
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
        """One POST (None: stopped meanwhile). Until the run's first batch has an answer, only
        its worker sends: a wrong token or endpoint costs one request, and LINE down or out of
        reach one batch's retries, not every worker's. The gate opens at an answer that is not
        a retryable failure, or once that batch's retries are over (a failure sets the stop)."""
        if not self._gate.is_set() and not self._is_pioneer():
            while not self._gate.wait(0.05):
                if self.stop.event.is_set():
                    return None
            if self.stop.event.is_set():
                return None
        self._add(requests=1)
        resp = self.client.post(body, has_line_uid=has_line_uid)
        if not self._gate.is_set():
            if resp.outcome in STOPS_THE_RUN:  # before any other worker may send
                self.stop.set(*self._why_stop(resp))
            if resp.outcome is not HttpOutcome.RETRYABLE:
                self._gate.set()
        return resp

    def _is_pioneer(self) -> bool:
        """Whether this worker sends the run's first batch (the first to ask is)."""
        with self._pioneer_lock:
            if self._pioneer is None:
                self._pioneer = threading.get_ident()
            return self._pioneer == threading.get_ident()

    def _why_stop(self, resp: Response) -> tuple[str, str]:
        """The stop reason and its one-line message for an answer in STOPS_THE_RUN."""
        if resp.outcome is HttpOutcome.AUTH:
            page = (
                " with a web page, which a proxy or a firewall sends when it refuses a request"
                " (check HTTPS_PROXY, and that this machine may reach "
                f"{self.target.endpoint}); else"
                if resp.html
                else ":"
            )
            # a rehearsal's mock server started with another token is not LINE: say which
            who = (
                "LINE"
                if self.target.endpoint == DEFAULT_ENDPOINT
                else f"{self.target.endpoint} (not LINE's endpoint)"
            )
            return (
                "auth",
                f"{who} answered HTTP {resp.http_status} for LINE Tag {self.target.tag_id}{page}"
                " the access token is wrong, belongs to another tag, or is not a LINE Tag"
                " access token; nothing more was sent",
            )
        if resp.outcome is HttpOutcome.TLS:
            return "tls", f"{resp.error}; nothing more was sent, the rest stays pending"
        if resp.http_status == PROXY_AUTH_REQUIRED:
            return (
                "fatal",
                f"the proxy refused the connection to {self.target.endpoint} ({resp.error}):"
                " give HTTPS_PROXY its user and password (http://user:password@host:port), or"
                " let this machine through; nothing more was sent, the events stay pending",
            )
        if resp.http_status is not None and 200 <= resp.http_status < 300:
            return (
                "fatal",
                f"{self.target.events_url} answered HTTP {resp.http_status}, where LINE answers"
                " 202: something else answered (a proxy's page, an endpoint that is not LINE's);"
                " check LINE_CAPI_ENDPOINT and any proxy; nothing was recorded as delivered,"
                " the events stay pending",
            )
        if resp.http_status is None:  # no answer in HTTP: the endpoint is not LINE's
            return (
                "fatal",
                f"{resp.error}; check LINE_CAPI_ENDPOINT; nothing more was sent, the events"
                " stay pending",
            )
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
        others_sent = None if self.stop.message else s.sent > 0
        held = held_message(s.held, self.target.tag_id, others_sent=others_sent) if s.held else None
        renamed = (
            self._renamed[0].held_message(s.held_renamed)
            if s.held_renamed and self._renamed
            else None
        )
        # each, when a push stopped early or held rows back: each needs its own remedy
        s.message = "; also ".join(m for m in (self.stop.message, held, renamed) if m) or None
        finish_run(self.con, s.run_id, s.as_dict(), exit_code=int(s.exit_code), outcome=s.outcome)


def _reap(done: set[Future]) -> None:
    for fut in done:
        exc = fut.exception()
        if exc is not None:
            raise exc


def push(
    con: duckdb.DuckDBPyConnection, target: LineTarget, options: PushOptions, progress: Progress
) -> Summary:
    return Pusher(con, target, options, progress).run()

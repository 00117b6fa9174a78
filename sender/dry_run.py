"""``sender push --dry-run``: what a push would send, counted and shown, without network or ledger
writes; it refuses and holds back what the push would (sender.push)."""

from __future__ import annotations

import time

import duckdb

from sender.batches import prepare_chunk
from sender.build_info import check_build
from sender.database import has_ledger
from sender.destinations import pending_destination
from sender.pending_rows import chunk_rows_for, find_pending, iter_pending
from sender.push import (
    PushOptions,
    holds_line_uid_rows,
    renamed_held,
    rows_to_resend,
    without_event_names,
    without_line_uid,
)
from sender.push_summary import Summary, held_message, new_event_names
from sender.request_body import PAYLOAD_COLUMN, payload_texts
from sender.settings import DEFAULT_ENDPOINT


def dry_run(
    con: duckdb.DuckDBPyConnection,
    options: PushOptions,
    *,
    show: int = 0,
    endpoint: str = DEFAULT_ENDPOINT,
    tag_id: str | None = None,
    channel_id: str | None = None,
) -> Summary:
    """What ``push`` would do, without network or ledger writes (``con`` may be read-only): the
    rows pending at the destination ``endpoint``/``tag_id`` (default: that of the last push).
    It refuses what ``push`` would refuse before sending (an unfinished or sample build for
    that endpoint) and holds back what it would (line_uid rows without a channel id); the
    settings come validated."""
    started = time.monotonic()
    check_build(con, endpoint, ask_server=False)  # no request: the push asks the server
    summary = Summary(run_id="dry-run", dry_run=True, test=options.test)
    destination = None
    if has_ledger(con):
        destination = pending_destination(con, endpoint=endpoint, tag_id=tag_id)
    if options.resend:
        rows = rows_to_resend(con, destination, test=options.test)
        summary.not_resent = len(rows.acknowledged)
    else:
        rows = find_pending(con, destination_id=destination, retry_rejected=options.retry_rejected)
    renamed = None
    if destination is not None and not options.test and not options.resend and rows.pending:
        names = new_event_names(con, destination)
        if names is not None:
            summary.warnings.append(names.warning())
        renamed = renamed_held(names, options)
    hold_line_uid = holds_line_uid_rows(rows, channel_id)
    chunk_rows = chunk_rows_for(options.batch_size)
    for chunk in iter_pending(con, pending=rows, limit=options.limit, chunk_rows=chunk_rows):
        summary.pending += chunk.num_rows
        prepared = prepare_chunk(chunk, batch_size=options.batch_size, test=options.test)
        summary.expired += prepared.expired_rows
        for batch in prepared.batches:
            if hold_line_uid:
                batch, held = without_line_uid(batch)
                summary.held += held
            if renamed is not None:
                batch, held = without_event_names(batch, renamed[1])
                summary.held_renamed += held
            if not batch.num_rows:
                continue
            summary.batches += 1
            summary.sent += batch.num_rows
            if len(summary.shown) < show:
                wanted = show - len(summary.shown)
                summary.shown.extend(payload_texts(batch.column(PAYLOAD_COLUMN), wanted))
    summary.left_pending = summary.pending - summary.expired
    summary.elapsed_s = round(time.monotonic() - started, 3)
    summary.outcome = "dry_run"
    held = [held_message(summary.held, tag_id, dry_run=True)] if summary.held else []
    if summary.held_renamed and renamed is not None:
        held.append(renamed[0].held_message(summary.held_renamed, dry_run=True))
    summary.message = "; also ".join(held) or None
    return summary

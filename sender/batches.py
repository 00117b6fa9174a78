"""A chunk of pending rows made into requests: the expired rows set aside, test events made
(request_body.as_test_events), the rest cut into batches. Pure functions of Arrow tables, shared
by push and its dry run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from sender.line_rules import (
    EXPIRY_MARGIN_SECONDS,
    MAX_AGE_SECONDS,
    MAX_AHEAD_SECONDS,
    MAX_BODY_BYTES,
)
from sender.request_body import PAYLOAD_COLUMN, as_test_events

TOO_OLD = f"event_timestamp older than {MAX_AGE_SECONDS // 86_400} days"
TOO_FAR_AHEAD = f"event_timestamp more than {MAX_AHEAD_SECONDS // 3_600} h ahead (milliseconds?)"


@dataclass(frozen=True)
class ExpirySplit:
    sendable: pa.Table
    too_old: pa.Table
    too_far_ahead: pa.Table


def split_expired(table: pa.Table, now: float | None = None) -> ExpirySplit:
    """Separate the events LINE would refuse by time: older than 90 days, or more than 24 hours
    ahead (milliseconds instead of seconds, or a clock problem)."""
    now = time.time() if now is None else now
    oldest = int(now) - MAX_AGE_SECONDS + EXPIRY_MARGIN_SECONDS
    latest = int(now) + MAX_AHEAD_SECONDS - EXPIRY_MARGIN_SECONDS
    ts = table.column("event_timestamp")
    too_old = pc.less(ts, oldest)
    ahead = pc.greater(ts, latest)
    if not (pc.any(too_old).as_py() or pc.any(ahead).as_py()):
        empty = table.slice(0, 0)
        return ExpirySplit(table, empty, empty)
    ok = pc.invert(pc.or_(too_old, ahead))
    return ExpirySplit(table.filter(ok), table.filter(too_old), table.filter(ahead))


def split_by_size(
    table: pa.Table, batch_size: int, max_bytes: int = MAX_BODY_BYTES
) -> Iterator[pa.Table]:
    """Slices of at most ``batch_size`` rows whose body stays under ``max_bytes``."""
    n = table.num_rows
    if n == 0:
        return
    lengths = pc.binary_length(table.column(PAYLOAD_COLUMN))

    def body_size(start: int, stop: int) -> int:
        # the texts, a comma between two of them, and the brackets
        return int(pc.sum(lengths.slice(start, stop - start)).as_py() or 0) + (stop - start) + 1

    start = 0
    while start < n:
        stop = min(start + batch_size, n)
        while stop - start > 1 and body_size(start, stop) > max_bytes:
            # Rare (events of kilobytes each with a huge batch size): halve until it fits.
            stop = start + (stop - start) // 2
        yield table.slice(start, stop - start)
        start = stop


@dataclass(frozen=True)
class PreparedChunk:
    """What one chunk becomes: groups of expired rows (each with why), and the requests."""

    expired: list[tuple[pa.Table, str]]
    batches: list[pa.Table]

    @property
    def expired_rows(self) -> int:
        return sum(rows.num_rows for rows, _ in self.expired)


def prepare_chunk(
    chunk: pa.Table, *, batch_size: int, test: bool, now: float | None = None
) -> PreparedChunk:
    """Set the expired rows aside, make the others test events when ``test`` (request_body),
    and cut them into batches of at most ``batch_size`` rows (and MAX_BODY_BYTES)."""
    split = split_expired(chunk, now)
    expired = [
        (rows, why)
        for rows, why in ((split.too_old, TOO_OLD), (split.too_far_ahead, TOO_FAR_AHEAD))
        if rows.num_rows
    ]
    sendable = split.sendable
    if test and sendable.num_rows:
        sendable = sendable.set_column(
            sendable.schema.get_field_index(PAYLOAD_COLUMN),
            PAYLOAD_COLUMN,
            as_test_events(sendable.column(PAYLOAD_COLUMN)),
        )
    return PreparedChunk(expired, list(split_by_size(sendable, batch_size)))

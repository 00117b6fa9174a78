"""Request bodies straight from the Arrow ``payload`` column: ``[`` + payloads joined by ``,``
+ ``]``, done by Arrow's C++ kernels, never parsed or re-serialized in Python."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

MAX_EVENTS_PER_REQUEST = 100_000
# LINE takes at most 300 MB per request; stay well below (bytes, including brackets and commas).
MAX_BODY_BYTES = 250_000_000

EVENT_PREFIX = '{"event":{'
TEST_FLAG_PREFIX = '{"event":{"test_flag":true,'

# LINE accepts events from 90 days before to 24 hours after arrival. Keep a margin so that an
# event does not cross the limit while its batch is in flight or being retried.
MAX_AGE_SECONDS = 90 * 86_400
MAX_AHEAD_SECONDS = 86_400
EXPIRY_MARGIN_SECONDS = 600


class PayloadFormatError(ValueError):
    """A payload row does not start with ``{"event":{`` (the contract with the dbt model)."""


def splice_test_flag(payload: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Insert ``"test_flag":true,`` right after the ``{"event":{`` prefix of every payload."""
    if not pc.all(pc.starts_with(payload, EVENT_PREFIX)).as_py():
        raise PayloadFormatError(f"a payload does not start with {EVENT_PREFIX}: rebuild with dbt")
    return pc.replace_substring(payload, EVENT_PREFIX, TEST_FLAG_PREFIX, max_replacements=1)


def build_body(payload: pa.ChunkedArray | pa.Array) -> bytes:
    """``[p1,p2,...]`` as bytes, for a fixed Content-Length."""
    if isinstance(payload, pa.ChunkedArray):
        payload = payload.combine_chunks() if payload.num_chunks != 1 else payload.chunk(0)
    if len(payload) == 0:
        return b"[]"
    offsets = pa.array([0, len(payload)], pa.int32())
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, payload), ",")[0]
    return b"[" + joined.as_buffer().to_pybytes() + b"]"


def split_by_size(
    table: pa.Table, batch_size: int, max_bytes: int = MAX_BODY_BYTES
) -> Iterator[pa.Table]:
    """Slices of at most ``batch_size`` rows whose body stays under ``max_bytes``."""
    n = table.num_rows
    if n == 0:
        return
    lengths = pc.binary_length(table.column("payload"))

    def body_size(start: int, stop: int) -> int:
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

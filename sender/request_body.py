"""Request bodies from Arrow memory, never parsed, re-serialized or copied in Python.

Arrow joins a batch's payload texts with commas (``binary_join``: one copy, in C, without the
GIL), and the body is ``[``, that buffer and ``]``, sent as three parts with a fixed
Content-Length.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from sender.line_rules import (
    DEDUPLICATION_KEY_MEMBER,
    EVENT_PREFIX,
    MAX_DEDUPLICATION_KEY_LENGTH,
    TEST_FLAG_MEMBER,
    TEST_KEY_PREFIX,
)


class PayloadFormatError(ValueError):
    """A payload row does not start with ``{"event":{`` (the contract with the dbt model)."""


PAYLOAD_COLUMN = "payload"


def as_test_events(elements: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """The payloads as test events: ``"test_flag":true,`` inserted right after the
    ``{"event":{`` prefix, and each key prefixed with ``test-`` (line_rules.TEST_KEY_PREFIX)."""
    if not pc.all(pc.starts_with(elements, EVENT_PREFIX)).as_py():
        raise PayloadFormatError(f"a payload does not start with {EVENT_PREFIX}: rebuild with dbt")
    flagged = pc.replace_substring(
        elements, EVENT_PREFIX, EVENT_PREFIX + TEST_FLAG_MEMBER, max_replacements=1
    )
    kept = MAX_DEDUPLICATION_KEY_LENGTH - len(TEST_KEY_PREFIX)
    tested = pc.replace_substring_regex(
        flagged,
        f'{DEDUPLICATION_KEY_MEMBER}([0-9A-Za-z_-]{{1,{kept}}})[0-9A-Za-z_-]*"',
        f'{DEDUPLICATION_KEY_MEMBER}{TEST_KEY_PREFIX}\\1"',
        max_replacements=1,
    )
    # a payload without a key of [0-9A-Za-z_-] is left as it was: never send it as a test
    # under its real key
    if not pc.all(pc.match_substring(tested, DEDUPLICATION_KEY_MEMBER + TEST_KEY_PREFIX)).as_py():
        raise PayloadFormatError(
            "a payload has no deduplication_key of [0-9A-Za-z_-]: rebuild with dbt"
        )
    return tested


class Body:
    """A request body in parts that point into Arrow memory.

    ``requests`` sends an object with ``__iter__`` and ``__len__`` part by part under a fixed
    ``Content-Length`` (no chunked encoding); it can be sent again for a retry.
    """

    __slots__ = ("_parts", "_length")

    def __init__(self, parts: tuple) -> None:
        self._parts = parts
        self._length = sum(len(part) for part in parts)

    def __len__(self) -> int:
        return self._length

    def __iter__(self):
        return iter(self._parts)

    def __bytes__(self) -> bytes:
        return b"".join(bytes(part) for part in self._parts)

    def __repr__(self) -> str:
        return f"Body({self._length:,} bytes)"


def _string_chunks(elements: pa.ChunkedArray | pa.Array) -> list[pa.Array]:
    chunks = elements.chunks if isinstance(elements, pa.ChunkedArray) else [elements]
    out = []
    for chunk in chunks:
        if not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
            chunk = chunk.cast(pa.string())
        if chunk.null_count:
            raise PayloadFormatError("a payload is null: rebuild line_capi_payload with dbt")
        if len(chunk):
            out.append(chunk)
    return out


def _joined(texts: pa.Array) -> memoryview:
    """The texts with a comma between two of them, in one buffer (one copy, by Arrow)."""
    one_list = pa.ListArray.from_arrays(pa.array([0, len(texts)], pa.int32()), texts)
    joined = pc.binary_join(one_list, ",")
    _, offsets_buffer, data_buffer = joined.buffers()
    offsets = memoryview(offsets_buffer).cast("q" if pa.types.is_large_string(joined.type) else "i")
    return memoryview(data_buffer)[offsets[joined.offset] : offsets[joined.offset + 1]]


def build_body(elements: pa.ChunkedArray | pa.Array) -> Body:
    """``[p1,p2,...,pn]`` from the payload texts ``p1`` ... ``pn`` (each chunk of a chunked
    array joined on its own: no copy to make it one array first)."""
    parts: list = [b"["]
    for chunk in _string_chunks(elements):
        if len(parts) > 1:
            parts.append(b",")
        parts.append(_joined(chunk))
    parts.append(b"]")
    return Body(tuple(parts))


def payload_texts(elements: pa.ChunkedArray | pa.Array, limit: int) -> list[str]:
    """The first ``limit`` payloads as text (for --show)."""
    return elements.slice(0, limit).to_pylist()

"""Streaming the rows of ``line_capi_payload`` that the ledger has not acknowledged, oldest first.

dbt writes ``line_capi_payload`` physically ordered by ``event_timestamp, deduplication_key``, so
rowid order is the send order. The table is read in rowid ranges of ``chunk_rows``, one small
query each (DuckDB prunes the other row groups on rowid), not with one streaming scan: a parallel
scan that must keep insertion order buffers the row groups scanned ahead of the one being read
(~120k rows, tens of MB each), so its memory grew with the table. A range query keeps the order
(DuckDB preserves insertion order) and materializes one chunk, whatever the table size. An
anti-join with the ledger in the same query would lose that order (the hash join runs in
parallel), so each chunk is filtered on its own: one semi join per chunk finds the chunk's keys in
the ledger, and Arrow drops them, keeping the order. Not pruned by event time: a key whose
event_timestamp changed between two dbt builds must still count as sent. Only the outcomes of one
destination count (sender.destinations): ``destination_id=None`` reads every row.
"""

# ruff: noqa: S608 - SQL is built from this package's constant table names; values are bound.

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from sender.database import KEYS_TABLE, PAYLOAD_TABLE, fetch_one

# Rows fetched from DuckDB per Arrow record batch (and filtered against the ledger per query):
# a few MB each. Larger chunks raise the peak memory; smaller ones query the ledger more often.
SCAN_CHUNK_ROWS = 20_000

# The comma after each payload lets request bodies point into the Arrow buffer (request_body).
_SCAN_SQL = (
    "select event_name, deduplication_key, event_timestamp, has_line_uid,"
    f" payload || ',' as payload_comma from {PAYLOAD_TABLE}"
)
# One chunk: the rows of a rowid range (bound as integers: the pruning needs constants).
_RANGE_SQL = _SCAN_SQL + " where rowid >= {start:d} and rowid < {stop:d}"
_MAX_ROWID_SQL = f"select max(rowid) from {PAYLOAD_TABLE}"

# The ledger rows of the chunk's keys. A semi join builds its hash table on the (small) chunk
# and streams the ledger past it: ~20x faster than an anti join that hashes the whole ledger.
_ACKNOWLEDGED_SQL = f"""
select sent.event_name, sent.deduplication_key
from {KEYS_TABLE} as sent
semi join _sender_chunk as chunk
    on sent.event_name = chunk.event_name
    and sent.deduplication_key = chunk.deduplication_key
where not sent.is_test
    and sent.destination_id = {{destination_id:d}}
"""

_SCHEMA = pa.schema(
    [
        ("event_name", pa.string()),
        ("deduplication_key", pa.string()),
        ("event_timestamp", pa.int64()),
        ("has_line_uid", pa.bool_()),
        ("payload_comma", pa.string()),
    ]
)


def pending_sql(*, destination_id: int | None, columns: str = "*") -> str:
    """SQL for the rows pending at a destination (the rule of the ``line_capi_pending`` view)."""
    if destination_id is None:
        return f"select {columns} from {PAYLOAD_TABLE}"
    return (
        f"select {columns} from {PAYLOAD_TABLE} as payload where not exists ("
        f" select 1 from {KEYS_TABLE} as sent"
        " where sent.event_name = payload.event_name"
        " and sent.deduplication_key = payload.deduplication_key"
        f" and not sent.is_test and sent.destination_id = {int(destination_id)})"
    )


def ledger_has_keys(con: duckdb.DuckDBPyConnection, destination_id: int) -> bool:
    """Whether a real (non-test) outcome is recorded at the destination: if none is, there is
    nothing to filter."""
    row = fetch_one(
        con,
        f"select exists (select 1 from {KEYS_TABLE} where not is_test"
        f" and destination_id = {int(destination_id)})",
    )
    return bool(row and row[0])


def count_pending(con: duckdb.DuckDBPyConnection, *, destination_id: int | None) -> int:
    row = fetch_one(con, pending_sql(destination_id=destination_id, columns="count(*)"))
    return int(row[0]) if row else 0


def _normalize(batch: pa.RecordBatch | pa.Table) -> pa.Table:
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    if table.schema != _SCHEMA:
        table = table.select(_SCHEMA.names).cast(_SCHEMA)
    return table


def iter_pending(
    con: duckdb.DuckDBPyConnection,
    *,
    destination_id: int | None,
    limit: int | None = None,
    chunk_rows: int = SCAN_CHUNK_ROWS,
) -> Iterator[pa.Table]:
    """Yield Arrow tables of pending rows, in table order, at most ``limit`` rows in all.

    Columns: event_name, deduplication_key, event_timestamp, has_line_uid and payload_comma
    (the payload text followed by a comma, see :mod:`sender.request_body`).

    Each chunk is one query on ``con`` (rowids ``[start, start + chunk_rows)``), fully read
    before it is yielded, so ``con`` is free between chunks; the ledger filter runs on its own
    cursor all the same.
    """
    remaining = limit
    if remaining is not None and remaining <= 0:
        return
    row = fetch_one(con, _MAX_ROWID_SQL)
    last_rowid = row[0] if row else None
    if last_rowid is None:  # empty table
        return
    ledger_cursor = con.cursor() if destination_id is not None else None
    try:
        for start in range(0, int(last_rowid) + 1, chunk_rows):
            sql = _RANGE_SQL.format(start=start, stop=start + chunk_rows)
            table = con.sql(sql).to_arrow_table()
            if table.num_rows == 0:  # a range of deleted rows
                continue
            table = _normalize(table)
            if ledger_cursor is not None:
                table = _drop_acknowledged(ledger_cursor, table, destination_id)
                if table.num_rows == 0:
                    continue
            if remaining is not None:
                if table.num_rows >= remaining:
                    yield table.slice(0, remaining)
                    return
                remaining -= table.num_rows
            yield table
    finally:
        if ledger_cursor is not None:
            ledger_cursor.close()


def _pair(table: pa.Table) -> pa.ChunkedArray | pa.Array:
    # event names match ^[A-Za-z0-9_-]{1,20}$, so a NUL separator cannot be ambiguous
    return pc.binary_join_element_wise(
        table.column("event_name"), table.column("deduplication_key"), "\x00"
    )


def _drop_acknowledged(
    cursor: duckdb.DuckDBPyConnection, table: pa.Table, destination_id: int
) -> pa.Table:
    """The rows of ``table`` that the ledger does not hold for the destination, in order."""
    cursor.register("_sender_chunk", table.select(["event_name", "deduplication_key"]))
    try:
        sent = cursor.sql(_ACKNOWLEDGED_SQL.format(destination_id=destination_id)).to_arrow_table()
    finally:
        cursor.unregister("_sender_chunk")
    if sent.num_rows == 0:
        return table
    keep = pc.invert(pc.is_in(_pair(table), value_set=_pair(sent).combine_chunks()))
    return table.filter(keep)

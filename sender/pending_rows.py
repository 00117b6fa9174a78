"""Streaming the rows of ``line_capi_payload`` that the ledger has not acknowledged, oldest first.

dbt writes ``line_capi_payload`` physically ordered by ``event_timestamp, deduplication_key`` and
DuckDB keeps insertion order for a plain scan, so the payload is read with a plain scan (no
``order by``: nothing is materialized, memory stays flat whatever the table size). An anti-join
with the ledger in the same query would lose that order (the hash join runs in parallel), so each
chunk of the scan is filtered on its own, on a second cursor: a small query per chunk that only
looks at ledger rows in the chunk's time range (zone maps skip the rest, as the ledger is appended
roughly in event time order).
"""

# ruff: noqa: S608 - SQL is built from this package's constant table names; values are bound.

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from sender.database import LEDGER_TABLE, PAYLOAD_COLUMNS, PAYLOAD_TABLE, fetch_one

# Rows fetched from DuckDB per Arrow record batch (and filtered against the ledger per query).
SCAN_CHUNK_ROWS = 50_000

_SCAN_SQL = f"select {', '.join(PAYLOAD_COLUMNS)} from {PAYLOAD_TABLE}"

_FILTER_SQL = f"""
select chunk.* exclude (_row)
from _sender_chunk as chunk
where not exists (
    select 1
    from {LEDGER_TABLE} as sent
    where sent.event_timestamp between $lo and $hi
        and sent.event_name = chunk.event_name
        and sent.deduplication_key = chunk.deduplication_key
        and sent.status in ('accepted', 'rejected_by_api', 'expired')
        and not sent.is_test
)
order by chunk._row
"""

_SCHEMA = pa.schema(
    [
        ("event_name", pa.string()),
        ("deduplication_key", pa.string()),
        ("event_timestamp", pa.int64()),
        ("has_line_uid", pa.bool_()),
        ("payload", pa.string()),
    ]
)


def pending_sql(*, use_ledger: bool, columns: str = "*") -> str:
    """SQL for the pending set (same rule as the ``line_capi_pending`` view)."""
    if not use_ledger:
        return f"select {columns} from {PAYLOAD_TABLE}"
    return (
        f"select {columns} from {PAYLOAD_TABLE} as payload where not exists ("
        f" select 1 from {LEDGER_TABLE} as sent"
        " where sent.event_name = payload.event_name"
        " and sent.deduplication_key = payload.deduplication_key"
        " and sent.status in ('accepted', 'rejected_by_api', 'expired')"
        " and not sent.is_test)"
    )


def count_pending(con: duckdb.DuckDBPyConnection, *, use_ledger: bool) -> int:
    row = fetch_one(con, pending_sql(use_ledger=use_ledger, columns="count(*)"))
    return int(row[0]) if row else 0


def _normalize(batch: pa.RecordBatch | pa.Table) -> pa.Table:
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    if table.schema != _SCHEMA:
        table = table.select(list(PAYLOAD_COLUMNS)).cast(_SCHEMA)
    return table


def iter_pending(
    con: duckdb.DuckDBPyConnection,
    *,
    use_ledger: bool,
    limit: int | None = None,
    chunk_rows: int = SCAN_CHUNK_ROWS,
) -> Iterator[pa.Table]:
    """Yield Arrow tables of pending rows, in table order, at most ``limit`` rows in all.

    ``con`` holds the streaming scan; the ledger filter runs on its own cursor because a
    connection with an unfinished result refuses another query.
    """
    remaining = limit
    if remaining is not None and remaining <= 0:
        return
    reader = con.sql(_SCAN_SQL).to_arrow_reader(chunk_rows)
    ledger_cursor = con.cursor() if use_ledger else None
    try:
        for batch in reader:
            if batch.num_rows == 0:
                continue
            table = _normalize(batch)
            if ledger_cursor is not None:
                table = _drop_acknowledged(ledger_cursor, table)
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
        reader.close()


def _drop_acknowledged(cursor: duckdb.DuckDBPyConnection, table: pa.Table) -> pa.Table:
    timestamps = table.column("event_timestamp")
    bounds = pc.min_max(timestamps)
    numbered = table.append_column("_row", pa.array(range(table.num_rows), pa.int32()))
    cursor.register("_sender_chunk", numbered)
    try:
        result = cursor.sql(
            _FILTER_SQL,
            params={"lo": bounds["min"].as_py(), "hi": bounds["max"].as_py()},
        ).to_arrow_table()
    finally:
        cursor.unregister("_sender_chunk")
    return _normalize(result)

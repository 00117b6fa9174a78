"""What ``sender preview`` shows: the first pending payloads, oldest first."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from sender.database import has_ledger
from sender.destinations import pending_destination
from sender.pending_rows import pending_sql

_COLUMNS = "event_timestamp, event_name, deduplication_key, has_line_uid, payload"


@dataclass(frozen=True)
class PreviewRow:
    event_timestamp: int
    event_name: str
    deduplication_key: str
    has_line_uid: bool
    payload: str


def first_pending(
    con: duckdb.DuckDBPyConnection, *, endpoint: str | None, tag_id: str | None, limit: int
) -> list[PreviewRow]:
    """The first ``limit`` rows pending at ``tag_id`` at ``endpoint`` (default: the destination
    of the last push), in send order."""
    destination = None
    if has_ledger(con):
        destination = pending_destination(con, endpoint=endpoint, tag_id=tag_id)
    sql = pending_sql(destination_id=destination, columns=_COLUMNS)
    rows = con.execute(
        f"select * from ({sql}) order by event_timestamp, deduplication_key limit {int(limit)}"  # noqa: S608
    ).fetchall()
    return [PreviewRow(*row) for row in rows]


def table_lines(rows: list[PreviewRow], *, width: int) -> list[str]:
    """A table for people, payloads cut to ``width`` characters."""
    if not rows:
        return ["nothing pending"]
    lines = [f"{'event time (UTC)':<20} {'event_name':<20} {'deduplication_key':<24} uid  payload"]
    for row in rows:
        when = dt.datetime.fromtimestamp(row.event_timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        text = row.payload if len(row.payload) <= width else row.payload[: width - 1] + "…"
        uid = "yes" if row.has_line_uid else "no "
        lines.append(f"{when:<20} {row.event_name:<20} {row.deduplication_key:<24} {uid:<4} {text}")
    return lines

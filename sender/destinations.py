"""Destinations: where outcomes were recorded, one row per (endpoint, LINE Tag id).

An event is pending at a destination until it has an outcome there, so a rehearsal against
``sender mock-server`` never hides an event from the real tag, nor one tag from another.
"""

# ruff: noqa: S608 - SQL is built from this package's constant table names; values are bound.

from __future__ import annotations

from urllib.parse import urlsplit

import duckdb

from sender.database import DESTINATIONS_TABLE, RUNS_TABLE, fetch_one

_DEFAULT_PORTS = {"https": 443, "http": 80}


def destination_key(endpoint: str, tag_id: str) -> tuple[str, str]:
    """One spelling per destination: scheme and host in lower case, no default port, no trailing
    slash; the tag id in lower case."""
    if "://" not in endpoint:  # not a URL (the "unknown" destination of a migration)
        return endpoint.strip(), tag_id.strip().lower()
    parts = urlsplit(endpoint.strip().rstrip("/"))
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}", tag_id.strip().lower()


def destination_id(
    con: duckdb.DuckDBPyConnection, endpoint: str, tag_id: str, *, create: bool
) -> int | None:
    """The id of a destination; a new one is added when ``create`` (ids grow from 1)."""
    from sender.ledger import utc_now

    key = destination_key(endpoint, tag_id)
    row = fetch_one(
        con,
        f"select destination_id from {DESTINATIONS_TABLE} where endpoint = ? and tag_id = ?",
        list(key),
    )
    if row is not None:
        return int(row[0])
    if not create:
        return None
    row = fetch_one(con, f"select coalesce(max(destination_id), 0) + 1 from {DESTINATIONS_TABLE}")
    new_id = int(row[0]) if row else 1
    con.execute(
        f"insert into {DESTINATIONS_TABLE} (destination_id, endpoint, tag_id, created_at)"
        " values (?, ?, ?, ?)",
        [new_id, *key, utc_now()],
    )
    return new_id


def latest_destination_id(con: duckdb.DuckDBPyConnection) -> int | None:
    """The destination of the latest push (what the view line_capi_pending shows)."""
    row = fetch_one(
        con, f"select destination_id from {RUNS_TABLE} order by started_at desc limit 1"
    )
    return int(row[0]) if row and row[0] is not None else None


def list_destinations(con: duckdb.DuckDBPyConnection) -> list[tuple[int, str, str]]:
    """(destination_id, endpoint, tag_id), in the order they were first used."""
    return [
        (int(i), endpoint, tag)
        for i, endpoint, tag in con.execute(
            f"select destination_id, endpoint, tag_id from {DESTINATIONS_TABLE}"
            " order by destination_id"
        ).fetchall()
    ]


def pending_destination(
    con: duckdb.DuckDBPyConnection, *, endpoint: str | None, tag_id: str | None
) -> int | None:
    """The destination whose pending rows a read-only command shows: ``tag_id`` at ``endpoint``
    when a tag id is given, else that of the latest push. None: nothing recorded there, every
    row is pending."""
    if tag_id:
        from sender.settings import DEFAULT_ENDPOINT

        return destination_id(con, endpoint or DEFAULT_ENDPOINT, tag_id, create=False)
    return latest_destination_id(con)

"""Migrating a ledger written by an earlier version, in place, with nothing lost.

Earlier ledgers recorded outcomes without their destination. Each outcome row names its run
(``line_capi_send_batches.run_id``) and each run its endpoint and tag id
(``line_capi_send_runs``), so every key row is attributed to the destination of the run that
recorded it. A key row whose run cannot be found (deleted by hand) goes to the destination
``unknown``/``unknown``: kept, but pending at every real destination. All in one transaction;
the number of key rows is checked before it commits. A second step makes the runs table's
destination required, which stops the push of 0.1.0 before it sends on a migrated file.

The ledger's layout is numbered (LEDGER_VERSION) and the number kept in the file
(``line_capi_ledger_version``): a sender refuses, with one line and before it reads or writes
anything else, a ledger whose number is higher than its own, which a later version wrote and this
one cannot read or record in correctly (a rollback without restoring the copy taken before the
upgrade). Files from before the number was kept are recognised by their columns, as above.
"""

# ruff: noqa: S608 - SQL is built from this package's constant table names; values are bound.

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa

from sender import __version__
from sender.database import (
    BATCHES_DDL,
    BATCHES_TABLE,
    DESTINATIONS_DDL,
    DESTINATIONS_TABLE,
    KEYS_DDL,
    KEYS_TABLE,
    RUNS_DDL,
    RUNS_TABLE,
    VERSION_DDL,
    VERSION_TABLE,
    DatabaseError,
    fetch_one,
    has_ledger,
    table_exists,
)
from sender.destinations import destination_id

UNKNOWN = "unknown"
_NEW_KEYS = f"{KEYS_TABLE}__migrated"

# The ledger's layouts, numbered; a later version that changes a table adds one (and a step below):
#   1  0.1.0: key rows without a destination
#   2  key rows and runs with their destination (line_capi_send_destinations)
#   3  a run requires its destination; the number kept in line_capi_ledger_version
LEDGER_VERSION = 3


class NewerLedger(DatabaseError):
    """The ledger was written by a later version, in a layout this one does not know."""


def recorded_version(con: duckdb.DuckDBPyConnection) -> tuple[int, str] | None:
    """The layout number the file records and the sender that gave it; None before numbers were
    kept (or before the first push)."""
    if not table_exists(con, VERSION_TABLE):
        return None
    row = fetch_one(con, f"select max(version), arg_max(written_by, version) from {VERSION_TABLE}")
    return (int(row[0]), str(row[1])) if row and row[0] is not None else None


def refuse_newer(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """NewerLedger when the file's ledger has a higher layout number than this sender's."""
    found = recorded_version(con)
    if found is not None and found[0] > LEDGER_VERSION:
        version, written_by = found
        raise NewerLedger(
            f"the ledger in {path} has layout {version}, written by sender {written_by}; this"
            f" sender ({__version__}) knows layout {LEDGER_VERSION} at most and would miscount"
            " what was sent: run that version again, or restore the copy of the database taken"
            ' before the upgrade (docs/operations.md, "Going back")'
        )


def _version_behind(con: duckdb.DuckDBPyConnection) -> bool:
    found = recorded_version(con)
    behind = found is None or found[0] < LEDGER_VERSION
    return has_ledger(con) and behind and not _runs_destination_optional(con)


def record_version(con: duckdb.DuckDBPyConnection) -> None:
    """Keep LEDGER_VERSION in the file (when it is not what the file records). A file whose runs
    table still takes a run without a destination (it holds such a run, none known) is not laid
    out as LEDGER_VERSION says: it stays unnumbered, and a later version reads it by its
    columns."""
    found = recorded_version(con)
    if (found is not None and found[0] == LEDGER_VERSION) or _runs_destination_optional(con):
        return
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.execute(VERSION_DDL)
    con.execute(f"delete from {VERSION_TABLE}")
    con.execute(f"insert into {VERSION_TABLE} values (?, ?, ?)", [LEDGER_VERSION, __version__, now])


def has_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    row = fetch_one(
        con,
        "select count(*) from duckdb_columns() where schema_name = 'main' and table_name = ?"
        " and column_name = ? and database_name = current_database()",
        [table, column],
    )
    return bool(row and row[0])


def _keys_lack_destinations(con: duckdb.DuckDBPyConnection) -> bool:
    return table_exists(con, KEYS_TABLE) and not has_column(con, KEYS_TABLE, "destination_id")


def _runs_accept_no_destination(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether a run may be recorded without a destination: then the push of 0.1.0, run on this
    file after a rollback, would send every event it finds pending and fail to record any (its
    key rows have one column fewer), sending them again every hour. Its first write, the run's
    row, names no destination: refused, it stops before its first request."""
    if not _runs_destination_optional(con):
        return False
    # a run this version recorded always has one; a row without (none known) keeps it as it is
    unattributed = fetch_one(con, f"select count(*) from {RUNS_TABLE} where destination_id is null")
    return unattributed == (0,)


def _runs_destination_optional(con: duckdb.DuckDBPyConnection) -> bool:
    row = fetch_one(
        con,
        "select count(*) from duckdb_columns() where schema_name = 'main' and table_name = ?"
        " and column_name = 'destination_id' and is_nullable"
        " and database_name = current_database()",
        [RUNS_TABLE],
    )
    return bool(row and row[0])


def layout_now(con: duckdb.DuckDBPyConnection) -> int:
    """The layout of the file's ledger as it is: its number, or the one its columns show."""
    if _keys_lack_destinations(con):
        return 1
    found = recorded_version(con)
    return found[0] if found is not None else 2


def migration_note(con: duckdb.DuckDBPyConnection, path: Path, before: int) -> str:
    """One line for the person who upgraded: what the migration did, and the copy to keep."""
    keys, known, unknown = fetch_one(
        con,
        f"select count(*), count(distinct destination_id) filter (where endpoint <> '{UNKNOWN}'),"
        f" count(*) filter (where endpoint = '{UNKNOWN}')"
        f" from {KEYS_TABLE} left join {DESTINATIONS_TABLE} using (destination_id)",
    ) or (0, 0, 0)
    return (
        f"the ledger in {path} was migrated in place from layout {before} to"
        f" {LEDGER_VERSION} (sender {__version__}): {keys:,} key rows kept, each at the"
        f" destination of the run that recorded it ({known} destination(s)"
        + (f"; {unknown:,} whose run is gone, at destination unknown" if unknown else "")
        + "); nothing is sent again. The migration is one way: keep the copy of the database"
        ' taken before the upgrade (docs/operations.md, "Going back")'
    )


def needs_new_layout(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the file holds a ledger laid out by an earlier version: key rows without a
    destination, or a runs table that takes a run without one."""
    return _keys_lack_destinations(con) or _runs_accept_no_destination(con)


def needs_migration(con: duckdb.DuckDBPyConnection) -> bool:
    """needs_new_layout, or a ledger without its layout number (or with a lower one)."""
    return needs_new_layout(con) or _version_behind(con)


def migrate(con: duckdb.DuckDBPyConnection) -> bool:
    """Migrate in place when needed; returns whether it did."""
    if not needs_migration(con):
        return False
    # two steps: DuckDB sets a column not null only in a transaction without updates; stopped
    # between them, the next command takes the second
    for needed, step in (
        (_keys_lack_destinations, _migrate),
        (_runs_accept_no_destination, _refuse_runs_without_destination),
        (_version_behind, record_version),
    ):
        if not needed(con):
            continue
        con.execute("begin transaction")
        try:
            step(con)
            con.execute("commit")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("rollback")
            raise
    return True


def _refuse_runs_without_destination(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"alter table {RUNS_TABLE} alter column destination_id set not null")


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DESTINATIONS_DDL)
    con.execute(BATCHES_DDL)
    con.execute(RUNS_DDL)
    if not has_column(con, RUNS_TABLE, "destination_id"):
        con.execute(f"alter table {RUNS_TABLE} add column destination_id integer")
    # each spelling of (endpoint, tag id) in the runs -> its destination, in order of first use
    spellings = con.execute(
        f"select endpoint, tag_id from {RUNS_TABLE} group by endpoint, tag_id"
        " order by min(started_at), endpoint, tag_id"
    ).fetchall()
    ids = [destination_id(con, endpoint, tag, create=True) for endpoint, tag in spellings]
    mapping = pa.table(
        {
            "endpoint": [s[0] for s in spellings],
            "tag_id": [s[1] for s in spellings],
            "destination_id": pa.array(ids, pa.int32()),
        }
    )
    con.register("_sender_destination_map", mapping)
    try:
        con.execute(
            f"update {RUNS_TABLE} set destination_id = map.destination_id"
            " from _sender_destination_map as map"
            f" where {RUNS_TABLE}.endpoint = map.endpoint and {RUNS_TABLE}.tag_id = map.tag_id"
        )
    finally:
        con.unregister("_sender_destination_map")
    attributed = f"""
        select
            sent.event_name, sent.deduplication_key, sent.event_timestamp, sent.outcome_id,
            sent.is_test, run.destination_id
        from {KEYS_TABLE} as sent
        left join {BATCHES_TABLE} as batch on batch.outcome_id = sent.outcome_id
        left join {RUNS_TABLE} as run on run.run_id = batch.run_id
    """
    row = fetch_one(con, f"select count(*) from ({attributed}) where destination_id is null")
    unknown = None
    if row and row[0]:
        unknown = destination_id(con, UNKNOWN, UNKNOWN, create=True)
    con.execute(KEYS_DDL.replace(KEYS_TABLE, _NEW_KEYS))
    con.execute(
        f"insert into {_NEW_KEYS} (event_name, deduplication_key, event_timestamp, outcome_id,"
        " is_test, destination_id)"
        " select event_name, deduplication_key, event_timestamp, outcome_id, is_test,"
        f" coalesce(destination_id, {int(unknown or 0)}) from ({attributed})"
    )
    before = fetch_one(con, f"select count(*) from {KEYS_TABLE}")
    after = fetch_one(con, f"select count(*) from {_NEW_KEYS}")
    if before != after:
        raise DatabaseError(
            f"ledger migration stopped: {before[0] if before else 0} key rows before,"
            f" {after[0] if after else 0} after; nothing was changed"
        )
    con.execute(f"drop table {KEYS_TABLE}")
    con.execute(f"alter table {_NEW_KEYS} rename to {KEYS_TABLE}")

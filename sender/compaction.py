"""``sender compact``: write the database afresh, giving back the space of what it no longer holds.

DuckDB reuses the blocks that dbt's replaced tables and the ledger's retention free, but never
gives them back: the file keeps its largest size, such as that of a catch-up over a long window.
Compacting copies every table and view into a new file beside it (private, as every file the
sender writes), compares each table's rows, and moves the new file over the old one. It holds
the run lock (a ``sender run`` starting meanwhile exits 13) and the database's own lock (a push
or a dbt build that holds the file makes it exit 5).
"""

# ruff: noqa: S608 - SQL is built from quoted catalog and table names read from the database.

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sender.database import DatabaseError, connect, require_database
from sender.run_locks import run_lock

_COPY = "compacted"


@dataclass(frozen=True)
class Compacted:
    tables: int
    bytes_before: int
    bytes_after: int

    def describe(self, database: Path) -> str:
        mib = 1024 * 1024
        return (
            f"compacted {database}: {self.tables} tables,"
            f" {self.bytes_before / mib:,.1f} MiB -> {self.bytes_after / mib:,.1f} MiB"
        )


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def compact(database: Path) -> Compacted:
    """Copy ``database`` into a new file and move it over the old one (DatabaseError when a
    table's rows differ; the old file is then left as it was)."""
    # a link to a bigger disk stays a link: the copy is made beside the file it names and
    # replaces that file (the run lock stays where every run takes it, beside the link)
    target = database.resolve() if database.is_symlink() else database
    new = target.with_name(f".{target.name}.compact")
    require_database(database)  # before the lock file: a mistyped path leaves nothing behind
    with run_lock(database):
        for leftover in (new, new.with_name(new.name + ".wal")):  # of a compaction killed midway
            leftover.unlink(missing_ok=True)
        con = connect(database, read_only=False, memory_limit=None)
        try:
            con.execute("checkpoint")  # the old file whole, without a WAL to replay
            before = os.path.getsize(database)
            (old,) = con.execute("select current_database()").fetchone()
            tables = [
                row[0]
                for row in con.execute(
                    "select table_name from information_schema.tables"
                    " where table_catalog = ? and table_schema = 'main'"
                    " and table_type = 'BASE TABLE' order by 1",
                    [old],
                ).fetchall()
            ]
            con.execute(f"attach '{str(new).replace(chr(39), chr(39) * 2)}' as {_COPY}")
            con.execute(f"copy from database {_quoted(old)} to {_COPY}")
            for table in tables:
                counts = con.execute(
                    f"select (select count(*) from {_quoted(old)}.main.{_quoted(table)}),"
                    f" (select count(*) from {_COPY}.main.{_quoted(table)})"
                ).fetchone()
                if counts[0] != counts[1]:
                    raise DatabaseError(
                        f"compacting {database}: table {table} has {counts[0]:,} rows, its copy"
                        f" {counts[1]:,}; nothing was changed"
                    )
            con.execute(f"detach {_COPY}")  # checkpoints the copy: no WAL is left beside it
        except BaseException:
            con.close()
            new.unlink(missing_ok=True)
            raise
        con.close()
        wal = database.with_name(database.name + ".wal")
        if wal.exists():  # it would be replayed on the copy: leave the old file as it is
            new.unlink(missing_ok=True)
            raise DatabaseError(
                f"compacting {database}: its WAL was not written back; nothing was changed"
            )
        os.replace(new, target)
    return Compacted(len(tables), before, os.path.getsize(database))

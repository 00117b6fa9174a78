"""``sender compact`` and ``sender backup``: the database copied into a new file, table by table.

DuckDB reuses the blocks that dbt's replaced tables and the ledger's retention free, but never
gives them back: the file keeps its largest size, such as that of a catch-up over a long window.
Compacting copies every table and view into a new file beside it (private, as every file the
sender writes), compares each table's rows, and moves the new file over the old one. A backup
makes the same copy elsewhere and leaves the database as it is. Both hold the run lock (a
``sender run`` starting meanwhile exits 13) and the database's own lock (a push or a dbt build
that holds the file makes them exit 5), so the copy is of the database between two runs.
"""

# ruff: noqa: S608 - SQL is built from quoted catalog and table names read from the database.

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from sender import fault_points
from sender.database import (
    DatabaseError,
    check_is_duckdb_file,
    connect,
    open_duckdb,
    require_database,
)
from sender.errors import RunError
from sender.exit_codes import ExitCode
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


def _copy_into(con, database: Path, new: Path) -> int:
    """Copy every table and view of the open ``database`` into the new file ``new``, compare each
    table's rows, and close the copy (checkpointed: no WAL beside it); the number of tables
    (DatabaseError when a table's rows differ)."""
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
    try:
        con.execute(f"attach '{str(new).replace(chr(39), chr(39) * 2)}' as {_COPY}")
        fault_points.hit("database_copy")  # test hook: sender/fault_points.py
        con.execute(f"copy from database {_quoted(old)} to {_COPY}")
    except (duckdb.IOException, OSError) as exc:
        raise _copy_failed(exc, database, new) from None
    for table in tables:
        counts = con.execute(
            f"select (select count(*) from {_quoted(old)}.main.{_quoted(table)}),"
            f" (select count(*) from {_COPY}.main.{_quoted(table)})"
        ).fetchone()
        if counts[0] != counts[1]:
            raise DatabaseError(
                f"copying {database}: table {table} has {counts[0]:,} rows, its copy"
                f" {counts[1]:,}; nothing was changed"
            )
    try:
        con.execute(f"detach {_COPY}")  # checkpoints the copy: no WAL is left beside it
    except (duckdb.IOException, OSError) as exc:
        raise _copy_failed(exc, database, new) from None
    return len(tables)


def _copy_failed(exc: BaseException, database: Path, new: Path) -> DatabaseError:
    """Why the copy ``new`` could not be written, said of the copy's disk, not of the database
    (DuckDB names the database it copies, and puts the cause on a later line)."""
    text = str(exc)
    code = exc.errno if isinstance(exc, OSError) else None
    if code == errno.ENOSPC or "No space left on device" in text:
        size = database.stat().st_size / 2**20
        reason = f"its disk is full (a copy needs about {size:,.1f} MiB, the database's size)"
    elif code == errno.EROFS or "Read-only file system" in text:
        reason = "its disk is read-only"
    elif code == errno.EACCES or "Permission denied" in text:
        reason = "this user may not write there"
    else:
        reason = text.splitlines()[-1].strip() or text
    return DatabaseError(
        f"cannot write the copy in {new.parent}: {reason}; {database} is left as it was"
    )


def _remove_copy(new: Path) -> None:
    for path in (new, new.with_name(new.name + ".wal")):  # of a copy killed midway, or failed
        with contextlib.suppress(FileNotFoundError):
            try:
                path.unlink()
            except OSError as exc:  # a read-only disk: nothing can have been written there
                if exc.errno != errno.EROFS:
                    raise


@contextlib.contextmanager
def _opened_for_copy(database: Path, new: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The database, opened read-write for a copy into ``new`` and closed after it; on any error
    the copy is removed. DuckDB stops a query on Ctrl-C (or SIGTERM, which sigterm_as_interrupt
    raises as Ctrl-C) with a RuntimeError of its own: an interrupt (exit 130), not a bug."""
    _remove_copy(new)  # of a copy killed midway
    con = connect(database, read_only=False, memory_limit=None)
    try:
        yield con
    except RuntimeError as exc:
        con.close()
        _remove_copy(new)
        if "Query interrupted" in str(exc):
            raise KeyboardInterrupt from None
        raise
    except BaseException:
        con.close()
        _remove_copy(new)
        raise
    con.close()


def compact(database: Path) -> Compacted:
    """Copy ``database`` into a new file and move it over the old one (DatabaseError when a
    table's rows differ; the old file is then left as it was)."""
    # a link to a bigger disk stays a link: the copy is made beside the file it names and
    # replaces that file (the run lock stays where every run takes it, beside the link)
    target = database.resolve() if database.is_symlink() else database
    new = target.with_name(f".{target.name}.compact")
    require_database(database)  # before the lock file: a mistyped path leaves nothing behind
    with run_lock(database, holder="sender compact"):
        with _opened_for_copy(database, new) as con:
            con.execute("checkpoint")  # the old file whole, without a WAL to replay
            before = os.path.getsize(database)
            tables = _copy_into(con, database, new)
        wal = database.with_name(database.name + ".wal")
        if wal.exists():  # it would be replayed on the copy: leave the old file as it is
            _remove_copy(new)
            raise DatabaseError(
                f"compacting {database}: its WAL was not written back; nothing was changed"
            )
        os.replace(new, target)
    return Compacted(tables, before, os.path.getsize(database))


@dataclass(frozen=True)
class BackedUp:
    copy: Path
    tables: int
    bytes: int

    def describe(self, database: Path) -> str:
        return (
            f"backed up {database} to {self.copy}: {self.tables} tables,"
            f" {self.bytes / (1024 * 1024):,.1f} MiB"
        )


def backup_path(database: Path, dest: Path, now: dt.datetime) -> Path:
    """The backup's file: ``dest`` itself, or in a folder ``dest`` a new name per backup
    (``line_capi-20261207T031500Z.duckdb``), so that a daily job keeps each day's."""
    if dest.is_dir():
        return dest / f"{database.stem}-{now:%Y%m%dT%H%M%SZ}{database.suffix or '.duckdb'}"
    return dest


def backup(database: Path, dest: Path) -> BackedUp:
    """Copy ``database`` (ledger, coverage history, last build) to a new file at ``dest``,
    leaving the database as it is (RunError, exit 2, for a destination that cannot be one)."""
    require_database(database)
    copy = backup_path(database, dest, dt.datetime.now(dt.UTC))
    if not copy.parent.is_dir():
        raise RunError(f"the backup's folder {copy.parent} does not exist", ExitCode.USAGE)
    if copy.exists() or copy.is_symlink():
        same = copy.exists() and copy.resolve() == database.resolve()
        raise RunError(
            f"{copy} is the database itself"
            if same
            else f"{copy} exists: name a new file, or a"
            " folder (each backup then gets a name of its own)",
            ExitCode.USAGE,
        )
    # one name per database in a folder: a copy killed midway is removed by the next backup
    new = copy.with_name(f".{database.name}.backup-partial")
    with run_lock(database, holder="sender backup"):
        _refuse_earlier_layout(database)
        with _opened_for_copy(database, new) as con:
            tables = _copy_into(con, database, new)
        os.replace(new, copy)
    return BackedUp(copy, tables, os.path.getsize(copy))


def _refuse_earlier_layout(database: Path) -> None:
    """A backup leaves the database as it is: a ledger of an earlier layout (after an upgrade,
    before its first run) would be migrated by the read-write open the copy needs, and the
    backup would hold the new layout instead of the one it was asked for."""
    from sender.ledger_migration import needs_migration

    check_is_duckdb_file(database)
    probe = open_duckdb(database, read_only=True)  # without connect()'s migration
    try:
        behind = needs_migration(probe)
    finally:
        probe.close()
    if behind:
        raise RunError(
            f"the ledger in {database} has an earlier version's layout, which the next run (or any"
            " command that writes) migrates: back it up as it is with cp while no run is going"
            ' (docs/operations.md, "Upgrading"), or with sender backup after that run',
            ExitCode.USAGE,
        )

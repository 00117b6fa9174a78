"""Opening the DuckDB file that dbt writes, with one-line errors, and the ledger's DDL.

The sender owns the ledger's tables and views in that file; dbt never touches them, and they
never block ``dbt build`` (which replaces ``line_capi_payload`` by drop + rename: DuckDB views bind
by name when queried, so ``line_capi_pending`` simply follows the new table). A ledger written by
an earlier version is migrated in place when the file is first opened, and one of a later version
refused (sender.ledger_migration).
"""

# ruff: noqa: S608 - SQL is built from this package's constant table names; values are bound.

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable
from pathlib import Path

import duckdb

from sender.file_modes import looks_like_duckdb, tighten_database
from sender.settings import is_quoted

PAYLOAD_TABLE = "line_capi_payload"
LEDGER_TABLE = "line_capi_send_log"  # a view: one row per event and outcome
KEYS_TABLE = "line_capi_send_keys"  # the events of each outcome (narrow: cheap to append)
BATCHES_TABLE = "line_capi_send_batches"  # one row per outcome: a request, or expired rows
RUNS_TABLE = "line_capi_send_runs"
DESTINATIONS_TABLE = "line_capi_send_destinations"  # one row per (endpoint, tag id)
VERSION_TABLE = "line_capi_ledger_version"  # one row: the ledger's layout (sender.ledger_migration)
PENDING_VIEW = "line_capi_pending"
BUILD_INFO_TABLE = "line_capi_build_info"  # written by dbt: what the payload was built from

# A ledger entry's status: each event sent gets exactly one of these at a destination. An event
# with none is pending (sender.pending_rows): a 429, a 5xx or no answer writes nothing here.
ACCEPTED = "accepted"  # LINE answered 202 for its request (sender.line_client.classify)
REJECTED_BY_API = "rejected_by_api"  # LINE answered 400 for it alone
EXPIRED = "expired"  # not sent: older than 90 days or more than 24 h ahead
STATUSES = (ACCEPTED, REJECTED_BY_API, EXPIRED)

PAYLOAD_COLUMNS = ("event_name", "deduplication_key", "event_timestamp", "has_line_uid", "payload")

# The ledger is stored normalized: what is the same for every event of a request lives once in
# line_capi_send_batches, so that recording an accepted batch appends only the keys and an integer
# (4x less to write than one wide row per event). line_capi_send_log joins them back.
BATCHES_DDL = f"""
create table if not exists {BATCHES_TABLE} (
    outcome_id bigint not null,
    batch_id varchar not null,
    run_id varchar not null,
    status varchar not null check (status in ({", ".join(f"'{s}'" for s in STATUSES)})),
    http_status integer,
    attempts integer not null,
    events integer not null,
    is_test boolean not null,
    sent_at timestamp not null,
    error varchar
)
"""

KEYS_DDL = f"""
create table if not exists {KEYS_TABLE} (
    event_name varchar not null,
    deduplication_key varchar not null,
    event_timestamp bigint not null,
    outcome_id bigint not null,
    is_test boolean not null,
    destination_id integer not null
)
"""

# Where outcomes were recorded: an event is pending at a destination until it has an outcome there.
# The key rows carry its small integer id, which is cheaper to append and to filter than two texts.
DESTINATIONS_DDL = f"""
create table if not exists {DESTINATIONS_TABLE} (
    destination_id integer not null primary key,
    endpoint varchar not null,
    tag_id varchar not null,
    created_at timestamp not null,
    unique (endpoint, tag_id)
)
"""

LEDGER_VIEW_DDL = f"""
create or replace view {LEDGER_TABLE} as
select
    sent.event_name,
    sent.deduplication_key,
    batch.status,
    batch.http_status,
    batch.attempts,
    batch.batch_id,
    batch.run_id,
    sent.event_timestamp,
    batch.is_test,
    batch.sent_at,
    batch.error,
    sent.destination_id,
    destination.endpoint,
    destination.tag_id
from {KEYS_TABLE} as sent
inner join {BATCHES_TABLE} as batch
    on sent.outcome_id = batch.outcome_id
inner join {DESTINATIONS_TABLE} as destination
    on sent.destination_id = destination.destination_id
"""

RUNS_DDL = f"""
create table if not exists {RUNS_TABLE} (
    run_id varchar not null,
    tag_id varchar not null,
    endpoint varchar not null,
    is_test boolean not null,
    is_resend boolean not null,
    pending bigint,
    sent bigint,
    accepted bigint,
    rejected bigint,
    expired bigint,
    left_pending bigint,
    retried bigint,
    requests bigint,
    exit_code integer,
    outcome varchar,
    started_at timestamp not null,
    finished_at timestamp,
    -- not null: the push of 0.1.0, which knows no destinations, starts its run with an insert
    -- without one, and so stops before its first request on a ledger it would corrupt
    destination_id integer not null
)
"""

# The layout the ledger's tables have, as a number (LEDGER_VERSION in sender.ledger_migration), and
# the sender that gave it: a sender refuses a ledger of a later layout than it knows. Never
# change this table: every earlier sender reads its version and written_by.
VERSION_DDL = f"""
create table if not exists {VERSION_TABLE} (
    version integer not null,
    written_by varchar not null,
    updated_at timestamp not null
)
"""


class DatabaseError(Exception):
    """A database problem the user can fix; the message is one line."""


class DatabaseLocked(DatabaseError):
    pass


class NoPayload(DatabaseError):
    pass


_LOCK = re.compile(r"Could not set lock on file|is locked by another process", re.IGNORECASE)


def is_lock_error(text: str) -> bool:
    """Whether DuckDB's ``text`` says another process holds the file (in the sender or in
    dbt's output)."""
    return bool(_LOCK.search(text))


# DuckDB's words for the holder, or those of locked() itself (dbt's plugin says them)
_LOCK_HOLDER = re.compile(
    r"lock is held in (?P<program>\S+) \(PID (?P<pid>\d+)\)"
    r"|another process \(pid (?P<pid2>\d+), (?P<program2>[^:\s]+):"
)


def locked(path: Path, detail: str = "") -> DatabaseLocked:
    """The one-line error of a database another process holds; ``detail``, DuckDB's message,
    may name that process (a push, a dbt build, a DuckDB shell left open)."""
    holder = _LOCK_HOLDER.search(detail)
    who = (
        f"(pid {holder['pid'] or holder['pid2']},"
        f" {Path(holder['program'] or holder['program2']).name}: a sender push or run, a dbt"
        " build, or a DuckDB shell left open)"
        if holder
        else "(is dbt build still running?)"
    )
    return DatabaseLocked(f"database {path} is locked by another process {who}")


# DuckDB keeps every block it reads cached up to its memory limit (80% of RAM by default), so
# streaming a large table would grow the process by the table's size. A limit keeps memory flat;
# joins and sorts spill to disk beyond it. The sender reads each block once (rowid ranges, in
# order), so a cache larger than a few row groups only adds memory, and more the larger the table.
DEFAULT_MEMORY_LIMIT = "32MB"


def memory_limit_problem(value: str) -> str | None:
    """Why DuckDB would refuse ``value`` as its memory limit (``64MB``, ``1.5GiB``, ``60%``),
    in a few words, or None. DuckDB parses it at connect and fails a limit too small at the
    first query; it reads a negative size as no limit at all, which is refused here."""
    if value.strip().startswith("-"):
        return "a negative size, which DuckDB reads as no limit at all"
    try:
        with duckdb.connect(config={"memory_limit": value}) as con:
            con.execute("select current_setting('memory_limit')").fetchall()
    except duckdb.Error as exc:
        reason = first_line(exc)
        return "too small for DuckDB to run a query" if "Out of Memory" in reason else reason
    return None


# glibc's malloc raises its mmap threshold (up to 32 MiB) each time a large block is freed, and
# its trim threshold with it, so that freed heap memory is kept. Fixed at that maximum, the
# chunk-sized buffers (a few MB: DuckDB results, Arrow columns) come from the heap, whose freed
# memory the next chunk reuses (an mmap-ed buffer is fresh pages, faulted in one by one for
# every chunk), and the trim threshold stays low, so a freed heap top goes back to the system.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024


def _fix_mmap_threshold() -> None:
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to do
        return
    mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)


# Names DuckDB gives its own catalogs: a database file named so (main.duckdb) is attached under
# that name, and dbt's three-part names then point at DuckDB's own (a Catalog Error per model).
RESERVED_NAMES = ("main", "system", "temp")


def database_name_problem(path: Path) -> str | None:
    """Why the database cannot be a file of this name, or None: one DuckDB keeps, or one in the
    quotes of a .env that Docker's env file and Compose keep (a second, empty database)."""
    if is_quoted(str(path)) or is_quoted(path.name):
        return (
            f"database {path}: its name is in quotes, which are part of the value (Docker's"
            " --env-file and Compose's env_file keep them): write LINE_CAPI_DUCKDB without quotes"
        )
    if path.stem.lower() in RESERVED_NAMES:
        names = ", ".join(RESERVED_NAMES)
        return (
            f"database {path} has a name DuckDB keeps for its own catalogs ({names}): name the"
            " file otherwise, such as site.duckdb (LINE_CAPI_DUCKDB, or the profile's path)"
        )
    return None


def check_is_duckdb_file(path: Path) -> None:
    """DatabaseError (one line) when ``path`` is a folder, a device or a pipe (/dev/null), or a
    file with content that is not a DuckDB database (a CSV named by mistake); an empty file is
    left to DuckDB."""
    if path.is_dir():
        raise DatabaseError(f"database {path} is a folder: name the DuckDB file dbt builds")
    if path.exists() and not path.is_file():
        raise DatabaseError(
            f"database {path} is not a regular file (a device or a pipe): name the DuckDB file"
            " dbt builds"
        )
    if not looks_like_duckdb(path):
        raise DatabaseError(
            f"{path} is not a DuckDB database file: name the file dbt builds"
            " (LINE_CAPI_DUCKDB or --database)"
        )


def require_database(path: Path) -> None:
    """NoPayload when ``path`` does not exist: dbt has not built it, or it is misnamed."""
    if not path.exists():
        # a relative default read from another folder (a cron job's home) looks like "no build"
        if path.is_absolute():
            raise NoPayload(f"database {path} does not exist: run `dbt build` first")
        raise NoPayload(
            f"database {path} does not exist in {Path.cwd()}: run `dbt build` first, or name"
            " the database (--database or LINE_CAPI_DUCKDB)"
        )


def open_duckdb(path: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """DuckDB's own open of ``path``, its errors in this package's words (a lock held by another
    process is DatabaseLocked); connect() adds the checks and the ledger's migration."""
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if is_lock_error(str(exc)):
            raise locked(path, str(exc)) from None
        raise DatabaseError(f"cannot open database {path}: {first_line(exc)}") from None
    except duckdb.Error as exc:
        raise DatabaseError(f"cannot open database {path}: {first_line(exc)}") from None


def connect(
    path: Path,
    *,
    read_only: bool,
    memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
    notice: Callable[[str], None] | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open ``path``; never creates a database: a missing file means dbt has not run yet. A
    database file (or WAL) other users can read is set to 0600 first; ``notice`` gets one line
    for each."""
    require_database(path)
    check_is_duckdb_file(path)  # before its mode is touched: it may be any file of the user's
    for message in tighten_database(path):
        if notice is not None:
            notice(message)
    _fix_mmap_threshold()
    con = open_duckdb(path, read_only=read_only)
    try:
        con.execute("set enable_progress_bar = false")  # our own progress goes to stderr
        if memory_limit:
            con.execute("set memory_limit = ?", [memory_limit])
    except duckdb.Error as exc:
        con.close()
        raise DatabaseError(f"memory limit {memory_limit!r}: {first_line(exc)}") from None
    from sender.ledger_migration import (
        layout_now,
        migration_note,
        needs_migration,
        needs_new_layout,
        refuse_newer,
    )

    try:
        refuse_newer(con, path)
        # a read-only command reads a ledger that lacks only its layout number as it is: the
        # next command that writes records it
        if read_only and needs_new_layout(con):  # migrated once, read-write, then opened as asked
            con.close()
            connect(path, read_only=False, memory_limit=memory_limit, notice=notice).close()
            return connect(path, read_only=True, memory_limit=memory_limit)
        if not read_only and needs_migration(con):
            before = layout_now(con)
            ensure_ledger(con)
            if notice is not None:
                notice(migration_note(con, path, before))
    except BaseException:
        con.close()
        raise
    return con


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def fetch_one(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> tuple | None:
    """First row of a query, with the result fully consumed (DuckDB 2.x refuses the next query
    on a connection whose previous result was not read to the end)."""
    rows = (
        con.execute(sql, params).fetchall() if params is not None else con.execute(sql).fetchall()
    )
    return rows[0] if rows else None


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = fetch_one(
        con,
        "select count(*) from duckdb_tables() where schema_name = 'main' and table_name = ?"
        " and database_name = current_database()",
        [name],
    )
    if row and row[0]:
        return True
    row = fetch_one(
        con,
        "select count(*) from duckdb_views() where schema_name = 'main' and view_name = ?"
        " and database_name = current_database()",
        [name],
    )
    return bool(row and row[0])


def require_payload(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    if not table_exists(con, PAYLOAD_TABLE):
        raise NoPayload(f"database {path} has no table {PAYLOAD_TABLE}: run `dbt build` first")
    columns = {
        row[0]
        for row in con.execute(
            "select column_name from duckdb_columns() where schema_name = 'main'"
            " and table_name = ? and database_name = current_database()",
            [PAYLOAD_TABLE],
        ).fetchall()
    }
    missing = [c for c in PAYLOAD_COLUMNS if c not in columns]
    if missing:
        raise NoPayload(
            f"table {PAYLOAD_TABLE} in {path} lacks column(s) {', '.join(missing)}: "
            "rebuild it with `dbt build`"
        )


def ensure_ledger(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ledger tables and views, the runs table and the pending view (idempotent);
    migrate a ledger of an earlier version first."""
    from sender.ledger_migration import migrate, record_version
    from sender.pending_rows import pending_view_ddl

    migrate(con)
    con.execute(DESTINATIONS_DDL)
    con.execute(BATCHES_DDL)
    con.execute(KEYS_DDL)
    con.execute(RUNS_DDL)
    con.execute(LEDGER_VIEW_DDL)
    con.execute(pending_view_ddl())
    record_version(con)


def has_ledger(con: duckdb.DuckDBPyConnection) -> bool:
    return table_exists(con, KEYS_TABLE) and table_exists(con, BATCHES_TABLE)

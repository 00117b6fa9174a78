"""A dbt-duckdb profile plugin: what ``dbt`` writes is readable by its owner only, and DuckDB
keeps to the build's memory limit (sender/build_memory.py).

``profiles.example.yml`` lists it (``plugins: [{module: sender.dbt_private_files}]``), so a
``dbt build`` started by hand keeps the rules of ``sender run`` (docs/security.md): before DuckDB
opens the database, dbt's process gets a umask that masks group and others (the database, its
WAL, DuckDB's spill folder and everything dbt writes from then on are 0600/0700), an existing
database file others can read is set to 0600 with one warning, and dbt's ``target/`` and ``logs/``
folders (written before any connection is made) are set to 0700 and dbt's log file to 0600.
Each connection gets the memory limit of ``LINE_CAPI_BUILD_MEMORY_LIMIT`` (default 60% of the
memory DuckDB sees). A DuckDB error that quotes an export row (a malformed CSV's ``Original
Line:``, a customer's email and address) loses the row before dbt sees the error, so neither dbt's
console, ``logs/dbt.log`` nor ``target/run_results.json`` keeps it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import sys
from pathlib import Path
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin
from dbt.adapters.events.logging import AdapterLogger
from dbt_common.exceptions import DbtRuntimeError

from sender import build_memory, fault_points, file_modes
from sender.database import database_name_problem, locked
from sender.dbt_output import hide_quoted_rows

_logger = AdapterLogger("DuckDB")


def dbt_folders() -> list[Path]:
    """dbt's target and log folders of this invocation (flags, else the project's defaults)."""
    try:
        from dbt.flags import get_flags

        flags = get_flags()
    except Exception:  # dbt's internals moved: the umask still covers what comes next
        return []
    project = Path(getattr(flags, "PROJECT_DIR", None) or os.getcwd())
    folders = []
    for name, default in (("TARGET_PATH", "target"), ("LOG_PATH", "logs")):
        value = Path(getattr(flags, name, None) or default)
        folders.append(value if value.is_absolute() else project / value)
    return folders


# struct flock as fcntl(F_GETLK) reads and writes it: type, whence, start, len, pid
_FLOCK = "hhqqi"


def held_by_another_process(path: Path) -> int | None:
    """The pid of another process that holds the file open in DuckDB (its fcntl lock: a
    writer's, or a reader's, either of which refuses dbt; 0 when the system does not say whose),
    else None. Called before this process opens the file (closing a file drops the process's own
    fcntl locks on it); dbt-duckdb closes its connection before it connects again."""
    if not sys.platform.startswith("linux"):  # struct flock is laid out otherwise: whose is unknown
        return _held_whose_unknown(path)
    try:
        with path.open("rb+") as file:
            wanted = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
            try:
                found = fcntl.fcntl(file, fcntl.F_GETLK, wanted)
            except OSError:
                return None
            kind, _, _, _, pid = struct.unpack(_FLOCK, found)
            return None if kind == fcntl.F_UNLCK else pid
    except OSError:  # not ours to open: DuckDB says why
        return None


def _held_whose_unknown(path: Path) -> int | None:
    """0 when another process holds the file's fcntl lock, else None."""
    try:
        with path.open("rb+") as file:
            try:
                fcntl.lockf(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return 0
            fcntl.lockf(file, fcntl.LOCK_UN)
    except OSError:  # not ours to open: DuckDB says why
        return None
    return None


def program_of(pid: int) -> str:
    """The name of process ``pid``'s program (as DuckDB names the holder of a lock)."""
    try:
        # a program replaced on disk since it started (a package upgrade) reads "… (deleted)"
        return Path(os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")).name or "?"
    except OSError:
        return "?"


def _is_local_file(path: str) -> bool:
    return bool(path) and path != ":memory:" and "://" not in path and not path.startswith("md:")


def _without_quoted_rows(error: Exception) -> Exception | None:
    """``error`` again, of its kind, without the export rows its message quotes; None when it
    quotes none."""
    message = str(error)
    hidden = hide_quoted_rows(message)
    if hidden == message:
        return None
    try:
        return type(error)(hidden)
    except Exception:  # a kind built otherwise: dbt reports any error of a query as this one
        return DbtRuntimeError(hidden)


def _hiding_quoted_rows(method):
    def call(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except Exception as error:
            hidden = _without_quoted_rows(error)
            if hidden is None:
                raise
            raise hidden from None

    call.hides_quoted_rows = True
    return call


def hide_quoted_rows_from_dbt() -> None:
    """Every query dbt-duckdb runs goes through its cursor wrapper: the errors of its ``execute``
    and of the fetches after it (DuckDB reads a CSV as a query's rows are fetched) leave out the
    rows they quote. dbt prints such an error, logs it to ``logs/dbt.log`` (four times) and
    stores it in ``target/run_results.json``, where it stayed for days."""
    try:
        from dbt.adapters.duckdb.environments.local import DuckDBCursorWrapper
    except ImportError:  # dbt-duckdb moved it: tests/test_secrets_paths.py says so
        return
    if getattr(DuckDBCursorWrapper.execute, "hides_quoted_rows", False):  # patched once
        return
    DuckDBCursorWrapper.execute = _hiding_quoted_rows(DuckDBCursorWrapper.execute)
    for name in ("fetchall", "fetchmany", "fetchone"):  # else forwarded by its __getattr__

        def fetch(self, *args, _name=name, **kwargs):
            return getattr(self._cursor, _name)(*args, **kwargs)

        setattr(DuckDBCursorWrapper, name, _hiding_quoted_rows(fetch))


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        file_modes.use_private_umask()
        hide_quoted_rows_from_dbt()
        if seen := os.environ.get(build_memory.PLUGIN_SEEN_ENV):  # sender run asks: loaded?
            with contextlib.suppress(OSError):
                Path(seen).touch()
        for folder in dbt_folders():
            file_modes.tighten(folder, folder=True)
            # dbt opened its log before this umask, and a shared sticky folder (/tmp) keeps its
            # mode: the log itself (and its rotated parts) holds a failed model's message, which
            # can quote an export row (DuckDB's "Original Line:" of a malformed CSV)
            for log in sorted(folder.glob("dbt.log*")):
                file_modes.tighten(log)

    def update_connection_config(self, creds, config: dict[str, Any]) -> None:
        # Runs right before duckdb.connect: an existing file is tightened before it is opened.
        if creds.path != creds.path.strip():
            # a .env saved with Windows line endings: a new, empty database would be built
            raise DbtRuntimeError(
                f"the database path {creds.path!r} has a space or line break at its start or end"
                " (a .env file saved with Windows line endings?): fix LINE_CAPI_DUCKDB"
            )
        fault_points.hit("dbt_connect")  # test hook: sender/fault_points.py
        try:
            limit = build_memory.build_memory_limit(os.environ)
        except build_memory.MemoryLimitError as exc:
            raise DbtRuntimeError(str(exc)) from None
        # max_memory is DuckDB's other name for memory_limit: one of them, never both
        if build_memory.configured(os.environ):
            config.pop("max_memory", None)
            config["memory_limit"] = limit  # a profile's settings: still override it per cursor
        elif not {"memory_limit", "max_memory"} & config.keys():
            config["memory_limit"] = limit
        if _is_local_file(creds.path):
            path = Path(creds.path)
            # DuckDB's own errors for these come as three tracebacks from dbt's threads
            if not path.parent.is_dir():
                raise DbtRuntimeError(
                    f"the folder of the database {path} does not exist: create it, or fix"
                    " LINE_CAPI_DUCKDB (or the profile's path)"
                )
            if (named := database_name_problem(path)) is not None:
                raise DbtRuntimeError(named)
            if path.is_dir():
                raise DbtRuntimeError(
                    f"database {path} is a folder: LINE_CAPI_DUCKDB (or the profile's path) must"
                    f" name the DuckDB file dbt builds, such as {path / 'line_capi.duckdb'}"
                )
            holder = held_by_another_process(path) if path.is_file() else None
            if holder is not None:
                detail = f"lock is held in {program_of(holder)} (PID {holder})" if holder else ""
                raise DbtRuntimeError(
                    f"{locked(path, detail)}: build once it has finished, or use sender run"
                )
            if path.is_file() and not file_modes.looks_like_duckdb(path):
                # DuckDB would build in memory, write nothing, and report success
                raise DbtRuntimeError(
                    f"{path} is not a DuckDB database file: LINE_CAPI_DUCKDB (or the profile's"
                    " path) must name the database file dbt builds"
                )
            for message in file_modes.tighten_database(path):
                _logger.warning(message)

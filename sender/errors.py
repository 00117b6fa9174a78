"""Which exit code each error means: one table, from exception to exit code, for every command
(codes: sender.exit_codes). Why a push stopped early has its own table, from stop reason to exit
code: sender.push_summary.STOP_REASONS."""

from __future__ import annotations

import errno
from pathlib import Path

import duckdb

from sender.build_info import SampleRefused
from sender.database import DatabaseError, DatabaseLocked, NoPayload, first_line
from sender.exit_codes import ExitCode
from sender.ledger import LedgerWriteError
from sender.request_body import PayloadFormatError
from sender.settings import ConfigError


class RunError(Exception):
    """A step of ``sender run`` stops the run; the message is one line, the exit code its own.
    ``own_words``: the message is the sender's, not dbt's or DuckDB's, which may quote the
    export's values: only such a message goes into an alert."""

    def __init__(self, message: str, code: ExitCode, *, own_words: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.own_words = own_words


# The first match wins: subclasses before their bases.
EXIT_CODES: tuple[tuple[type[BaseException], ExitCode], ...] = (
    (ConfigError, ExitCode.USAGE),
    (DatabaseLocked, ExitCode.DATABASE_LOCKED),
    (NoPayload, ExitCode.NO_PAYLOAD),
    (PayloadFormatError, ExitCode.NO_PAYLOAD),
    (SampleRefused, ExitCode.SAMPLE_DATA_REFUSED),
    (LedgerWriteError, ExitCode.DATABASE_ERROR),
    (DatabaseError, ExitCode.DATABASE_ERROR),
    (duckdb.Error, ExitCode.DATABASE_ERROR),
    (KeyboardInterrupt, ExitCode.INTERRUPTED),
)


def known_error(
    exc: BaseException, *, database: Path | str | None = None
) -> tuple[ExitCode, str] | None:
    """The exit code and the one-line message of an error a user can act on; None for a bug.
    A database error names ``database`` first, unless it is a DatabaseError that names it."""
    code = next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), None)
    if code is None:
        return None
    if code is ExitCode.INTERRUPTED:
        return code, "interrupted"
    message = first_line(exc) if isinstance(exc, duckdb.Error) else str(exc)
    # a DatabaseError that names the file already says which; any other says it first
    named = isinstance(exc, DatabaseError) and str(database) in message
    if code is ExitCode.DATABASE_ERROR and database is not None and not named:
        message = f"database {database}: {message}"
    return code, message


def path_mistake(exc: BaseException) -> str | None:
    """A path the system refuses, from a user's setting or option, as one line; None for any
    other error. Raised wherever a command first touches the path (every command exited 70 for
    a name over 255 bytes, or a LINE_CAPI_DUCKDB holding bytes that are not UTF-8)."""
    if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
        name = str(exc.filename or "")
        shown = name if len(name) <= 80 else name[:40] + "…" + name[-20:]
        return f"the path {shown} is too long for the file system: give a shorter one"
    if isinstance(exc, UnicodeEncodeError) and "surrogates not allowed" in str(exc):
        return (
            "a path or setting holds bytes that are not UTF-8 (a file name in another"
            " encoding?): give it in UTF-8"
        )
    return None

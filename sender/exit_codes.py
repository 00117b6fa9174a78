"""Every exit code of ``sender``, in one place (documented in docs/sender.md)."""

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes; MEANINGS says what each means.

    A push that stops early (INTERRUPTED, AUTHENTICATION, TLS_CERTIFICATE, UNEXPECTED_RESPONSE,
    DATABASE_ERROR, INTERNAL_ERROR) exits with the code of the first reason it met; otherwise
    USAGE when rows were held back (rows with user.line_uid for want of LINE_CHANNEL_ID, or
    renamed events; also when LINE's being down or out of reach stopped it), else PENDING_LEFT
    when rows are left pending, else REJECTED_BY_API when LINE rejected some.
    """

    OK = 0
    PENDING_LEFT = 1
    USAGE = 2
    AUTHENTICATION = 3
    REJECTED_BY_API = 4
    DATABASE_LOCKED = 5
    NO_PAYLOAD = 6
    UNEXPECTED_RESPONSE = 7
    SAMPLE_DATA_REFUSED = 8
    TLS_CERTIFICATE = 9
    DATABASE_ERROR = 10
    STALE_EXPORT = 11
    BUILD_FAILED = 12
    ALREADY_RUNNING = 13
    INTERNAL_ERROR = 70
    INTERRUPTED = 130


MEANINGS = {
    ExitCode.OK: "everything pending was delivered (or expired), or nothing was pending",
    ExitCode.PENDING_LEFT: "some rows are still pending after the retries (408/425/429/5xx,"
    " timeouts, dropped connections; LINE down or out of reach): the next run sends them",
    ExitCode.USAGE: "bad option or configuration (token, tag id, channel id, endpoint, a dbt var)",
    ExitCode.AUTHENTICATION: "LINE answered 401/403: wrong token, or a token of another tag",
    ExitCode.REJECTED_BY_API: "LINE rejected some events (400); recorded as rejected_by_api",
    ExitCode.DATABASE_LOCKED: "the DuckDB file is locked by another process (dbt build?)",
    ExitCode.NO_PAYLOAD: "no database, no line_capi_payload, or its build did not finish:"
    " run dbt build",
    ExitCode.UNEXPECTED_RESPONSE: "an answer retrying cannot fix (404: wrong endpoint or tag id;"
    " a redirect, a 2xx other than 202, a proxy's 407 or plain http on an https endpoint: something"
    " else answered; 400 for every event of a batch sent alone: the request itself is refused; 413"
    " for one event alone: a proxy's size limit)",
    ExitCode.SAMPLE_DATA_REFUSED: "the payload was built from the bundled sample and the endpoint"
    " is not sender mock-server on loopback, or (sender run) the sample was to be built into a"
    " real job's database; nothing was sent",
    ExitCode.TLS_CERTIFICATE: "the endpoint's TLS certificate does not verify (or the CA bundle"
    " set cannot be read): nothing more was sent, no retry; set REQUESTS_CA_BUNDLE",
    ExitCode.DATABASE_ERROR: "the database cannot be read or written (not a lock): a ledger write"
    " failed, disk full, a ledger that a later version wrote; (sender run) the database is gone"
    " while its run log records events sent from it",
    ExitCode.STALE_EXPORT: "sender run: the export folder is missing, or its newest sync_date is"
    " older than the freshness limit or hours in the future (a time without its offset); nothing"
    " was built or sent",
    ExitCode.BUILD_FAILED: "sender run: dbt source freshness or dbt build failed, ran out of"
    " memory or disk, or was killed; nothing was sent",
    ExitCode.ALREADY_RUNNING: "sender run: another run holds the lock file next to the database",
    ExitCode.INTERNAL_ERROR: "an unexpected error (a bug): one line on stderr, the traceback with"
    " --debug or in the run log",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C, SIGTERM; sender run: its push killed); what was"
    " not acknowledged stays pending",
}


# `sender compact` touches neither LINE nor the export: its own few codes.
COMPACT_MEANINGS = {
    ExitCode.OK: "the database was written afresh",
    ExitCode.USAGE: "bad option (the database path)",
    ExitCode.DATABASE_LOCKED: "a push, a dbt build or a DuckDB shell holds the file: run it"
    " between two scheduled runs",
    ExitCode.NO_PAYLOAD: "the database does not exist",
    ExitCode.DATABASE_ERROR: "not a DuckDB file, or the copy failed (disk full, rows that differ):"
    " the old file is left as it was",
    ExitCode.ALREADY_RUNNING: "a sender run holds the run lock: try again after it",
    ExitCode.INTERNAL_ERROR: "an unexpected error (a bug): the traceback with --debug",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C, SIGTERM): the old file is left as it was",
}
BACKUP_MEANINGS = {
    ExitCode.OK: "the copy was written",
    ExitCode.USAGE: "bad option: the backup's folder does not exist, or its file does; or the"
    " ledger has an earlier version's layout, which the next run migrates",
    ExitCode.DATABASE_LOCKED: COMPACT_MEANINGS[ExitCode.DATABASE_LOCKED],
    ExitCode.NO_PAYLOAD: COMPACT_MEANINGS[ExitCode.NO_PAYLOAD],
    ExitCode.DATABASE_ERROR: "not a DuckDB file, or the copy failed (its disk full or read-only,"
    " rows that differ): no copy is left",
    ExitCode.ALREADY_RUNNING: "a sender run (or compact) holds the run lock: try again after it",
    ExitCode.INTERNAL_ERROR: COMPACT_MEANINGS[ExitCode.INTERNAL_ERROR],
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C, SIGTERM): no copy is left",
}


def exit_code_table(meanings: dict[ExitCode, str] = MEANINGS) -> str:
    """The codes as a Markdown list, one item per code (``--help`` shows them)."""
    return "\n".join(f"- {int(code)} {code.name}: {meanings[code]}" for code in meanings)

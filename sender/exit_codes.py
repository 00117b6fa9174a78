"""Every exit code of ``sender``, in one place (documented in docs/sender.md)."""

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes.

    When several apply, the first in this order wins: INTERRUPTED, AUTHENTICATION,
    UNEXPECTED_RESPONSE, PENDING_LEFT, REJECTED_BY_API.
    """

    OK = 0
    """Everything pending was delivered (or expired), or there was nothing to send."""
    PENDING_LEFT = 1
    """Some rows are still pending after the retries (5xx, 429, timeouts): the next run sends
    them."""
    USAGE = 2
    """Bad option or configuration (missing/invalid token, tag id, channel id, endpoint)."""
    AUTHENTICATION = 3
    """LINE answered 401/403: wrong token, token of another tag, or a Messaging API token."""
    REJECTED_BY_API = 4
    """LINE answered 400 for some events; they are recorded as ``rejected_by_api``."""
    DATABASE_LOCKED = 5
    """The DuckDB file is locked by another process (dbt build still running?)."""
    NO_PAYLOAD = 6
    """The DuckDB file or the ``line_capi_payload`` table does not exist: run ``dbt build``."""
    UNEXPECTED_RESPONSE = 7
    """An HTTP status that retrying cannot fix (404: wrong endpoint or tag id, ...); stopped."""
    INTERRUPTED = 130
    """Interrupted (Ctrl-C / SIGTERM); what was not acknowledged stays pending."""

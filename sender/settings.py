"""Configuration: validated values from environment variables or options.

The access token is wrapped in :class:`Secret` so that it never shows up in a ``repr``, a log
line, an exception message or a traceback's locals; error messages name the tag id instead.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sender.line_rules import CHANNEL_ID

DEFAULT_ENDPOINT = "https://conversion-api.tr.line.me"
DEFAULT_DATABASE = "data/line_capi.duckdb"

# A header value: visible ASCII only, so the token cannot smuggle in a header (CR/LF) or spaces.
_TOKEN_CHARS = re.compile(r"^[\x21-\x7e]+$")
# A line of a .env pasted whole into the token's file or variable: LINE_ACCESS_TOKEN=... (a name
# with TOKEN in it, so that what the message quotes is never a part of a token)
_ASSIGNMENT = re.compile(r"^(?:export\s+)?[A-Z0-9_]*TOKEN[A-Z0-9_]*=")


class ConfigError(ValueError):
    """A configuration problem, reported as one line and exit code 2 (never contains the token)."""


class Secret:
    """A string that refuses to be printed. Use :meth:`reveal` only where it goes on the wire."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str | None = None) -> None:
        self._value = value
        # where the value came from, for messages: "LINE_ACCESS_TOKEN_FILE /run/secrets/token"
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __reduce__(self):  # no pickling the raw value by accident
        raise TypeError("Secret cannot be pickled")


def is_quoted(value: str) -> bool:
    """The value is wrapped in quotes, which Docker's --env-file and Compose's env_file keep."""
    return len(value) > 1 and value[0] == value[-1] and value[0] in "'\""


def _quoted(value: str) -> str:
    """What a refused value wrapped in quotes needs said: the quotes are in the value."""
    if is_quoted(value):
        return (
            "; the quotes are part of the value (Docker's --env-file and Compose's env_file keep"
            " them): write it without quotes"
        )
    return ""


def validate_tag_id(tag_id: str | None, *, option: str | None = None) -> str:
    """The tag id, checked; ``option`` is the command's option that sets it too (``sender run``
    has none, so its message names only the variable)."""
    value = (tag_id or "").strip()
    if not value:
        also = f"; or pass {option}" if option else ""
        raise ConfigError(f"LINE_TAG_ID is not set (the LINE Tag id, a UUID{also})")
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise ConfigError(f"LINE_TAG_ID {value!r} is not a UUID{_quoted(value)}") from None
    if str(parsed) != value.lower():
        raise ConfigError(f"LINE_TAG_ID {value!r} is not a UUID in 8-4-4-4-12 form")
    return str(parsed)  # in lower case, as LINE shows it: a tag id pasted in capitals is the same


def validate_token(token: str | Secret | None, tag_id: str) -> Secret:
    """The token, checked; its messages name where it came from (the variable, the option or
    the file of LINE_ACCESS_TOKEN_FILE), never the value."""
    source = (token.source if isinstance(token, Secret) else None) or "LINE_ACCESS_TOKEN"
    raw = token.reveal() if isinstance(token, Secret) else token or ""
    value = raw.strip()
    if not raw:
        raise ConfigError(
            f"LINE_ACCESS_TOKEN is not set: set it to the access token of LINE Tag {tag_id} "
            "(or LINE_ACCESS_TOKEN_FILE, a file holding it)"
        )
    if not value:
        raise ConfigError(f"{source} is blank: set it to the access token of LINE Tag {tag_id}")
    if _quoted(value):  # the value is not shown: the quotes only are named
        raise ConfigError(
            f"{source} (the access token of LINE Tag {tag_id}) is wrapped in quotes{_quoted(value)}"
        )
    if _ASSIGNMENT.match(value):
        raise ConfigError(
            f"{source} (the access token of LINE Tag {tag_id}) starts with"
            f" {_ASSIGNMENT.match(value).group(0)}: give the token alone"
        )
    if value[:7].lower() == "bearer " and _TOKEN_CHARS.match(value[7:].strip()):
        raise ConfigError(
            f"{source} (the access token of LINE Tag {tag_id}) starts with 'Bearer ': give the"
            " token alone, the sender sends it in the X-Line-TagAccessToken header"
        )
    if not _TOKEN_CHARS.match(value):
        raise ConfigError(
            f"{source} (the access token of LINE Tag {tag_id}) contains spaces or control"
            " characters: a token is one word of visible ASCII"
        )
    return Secret(value, source)


def validate_channel_id(channel_id: str | None) -> str | None:
    value = (channel_id or "").strip()
    if not value:
        return None
    if not CHANNEL_ID.match(value):
        raise ConfigError(
            f"LINE_CHANNEL_ID {value!r} must be digits only (the LINE Login channel)"
            + _quoted(value)
        )
    return value


def is_loopback_host(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# What a URL may hold that is a secret: a user and password (anything before its last @, which
# may hold a / ? or #), a query (an API key), a fragment
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/+")
_URL_QUERY = re.compile(r"[?#].*$", re.DOTALL)


def _shown_url(value: str) -> str:
    """``value`` quoted for a message, without what may be a secret in it: the credentials of
    `https://user:password@host` and a query or fragment (`?key=…`), each shown as `…`. Refused
    endpoints reach the run log, `sender status` and the alert webhook."""
    if "@" in value:
        scheme = _URL_SCHEME.match(value)
        value = (scheme.group(0) if scheme else "") + "…@" + value.rsplit("@", 1)[1]
    return repr(_URL_QUERY.sub("?…", value))


def validate_endpoint(endpoint: str | None) -> str:
    """``https://`` anywhere; ``http://`` only to a loopback host (personal data in clear text
    never leaves the machine)."""
    given = (endpoint or DEFAULT_ENDPOINT).strip()
    value = given.rstrip("/")
    shown = _shown_url(value)
    if any(ch.isspace() or not ch.isprintable() for ch in value):  # a line break: a forged log line
        raise ConfigError(
            f"LINE_CAPI_ENDPOINT {shown} contains spaces or control characters: give a base URL"
        )
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - a port out of range raises only when read
    except ValueError as exc:  # an unclosed [IPv6 bracket, a port out of range
        # its words quote the port, which is a password's part in `user:pass@host`
        why = "" if "@" in value else f": {exc}"
        raise ConfigError(f"LINE_CAPI_ENDPOINT {shown} is not a valid URL{why}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # as given: `http://` without its host is not echoed as 'http:'
        raise ConfigError(
            f"LINE_CAPI_ENDPOINT {_shown_url(given)} is not an http(s) URL{_quoted(given)}"
        )
    # an @ anywhere: `https://user:12/x@host` parses as the host `user`, port 12
    if parts.username or parts.password or parts.query or parts.fragment or "@" in value:
        raise ConfigError(
            f"LINE_CAPI_ENDPOINT {shown} must be a base URL (scheme://host[:port]),"
            " without a user, password, query or fragment"
        )
    segments = parts.path.lower().split("/")
    if "v1" in segments or segments[-1] == "events":  # the whole URL, copied from LINE's docs
        base = f"{parts.scheme}://{parts.netloc}"
        raise ConfigError(
            f"LINE_CAPI_ENDPOINT {shown} holds the API's path: give the base URL ({base});"
            " the sender adds /v1/<tag id>/events"
        )
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"LINE_CAPI_ENDPOINT {shown} is plain http: only https is allowed, "
            "except to a loopback host (127.0.0.1, ::1, localhost) such as `sender mock-server`"
        )
    return value


def validate_secret_url(url: Secret, name: str, what: str) -> Secret:
    """A URL that is a secret (the alert webhook, the heartbeat URL), set in env ``name``:
    https, or http to a loopback host. ``what`` names it in errors, which never repeat it."""
    value = url.reveal().strip()
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        # sent percent-encoded, to a page that does not exist: said now, not at each run
        raise ConfigError(f"{name} contains spaces or control characters ({what})")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - a port out of range raises only when read
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"{name} is not an https URL ({what})")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise ConfigError(
            f"{name} is plain http: {what} must be https (http only to a loopback host)"
        )
    return Secret(value)


@dataclass(frozen=True)
class LineTarget:
    """Where and how to send. ``repr`` shows the tag id and the endpoint, never the token."""

    endpoint: str
    tag_id: str
    token: Secret
    channel_id: str | None

    @property
    def events_url(self) -> str:
        return f"{self.endpoint}/v1/{self.tag_id}/events"

    @classmethod
    def from_values(
        cls,
        *,
        endpoint: str | None,
        tag_id: str | None,
        token: str | Secret | None,
        channel_id: str | None,
        tag_option: str | None = "--tag-id",
    ) -> LineTarget:
        tag = validate_tag_id(tag_id, option=tag_option)
        target = cls(
            endpoint=validate_endpoint(endpoint),
            tag_id=tag,
            token=validate_token(token, tag),
            channel_id=validate_channel_id(channel_id),
        )
        _refuse_token_elsewhere(target)
        return target


def _refuse_token_elsewhere(target: LineTarget) -> None:
    """A token pasted into the endpoint as well (a host name such as ``https://<token>.x``
    passes as a URL) would be looked up in DNS, printed and kept in the ledger: refused, in a
    message that names the setting and not its value."""
    token = target.token.reveal().lower()
    if len(token) >= 8 and token in target.endpoint.lower():
        raise ConfigError(
            "LINE_CAPI_ENDPOINT holds the access token: set it to the API's base URL"
            " (the token goes in LINE_ACCESS_TOKEN alone)"
        )


def dry_run_settings(
    *, endpoint: str | None, tag_id: str | None, channel_id: str | None
) -> dict[str, str | None]:
    """The settings a dry run uses, checked as for a push; no token, and the tag id optional
    (without it, the destination of the last push is counted)."""
    return {
        "endpoint": validate_endpoint(endpoint),
        "tag_id": None if tag_id is None else validate_tag_id(tag_id, option="--tag-id"),
        "channel_id": validate_channel_id(channel_id),
    }


def target_from_env(env: Mapping[str, str], token: Secret | None) -> LineTarget:
    """The push's target from the environment `sender run` hands to its push (an empty
    variable counts as unset, as for the push's options)."""
    return LineTarget.from_values(
        endpoint=env.get("LINE_CAPI_ENDPOINT") or None,
        tag_id=env.get("LINE_TAG_ID") or None,
        token=token,
        channel_id=env.get("LINE_CHANNEL_ID") or None,
        tag_option=None,
    )


def optional_path(value: str | None) -> Path | None:
    """A folder or file setting that may be left unset: surrounding whitespace dropped (a .env's
    CR), blank is unset."""
    text = (value or "").strip()
    return Path(text) if text else None


def database_path(value: str | None) -> Path:
    """The database file; surrounding whitespace dropped, as for every other setting: a .env
    saved with Windows line endings would otherwise name a new, empty database (whose empty
    ledger sends everything again)."""
    return Path((value or "").strip() or DEFAULT_DATABASE)

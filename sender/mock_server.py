"""A LINE-compatible Conversion API server, for tests and for rehearsing a scheduled run.

It checks what LINE checks (see docs/line-capi.md): the path ``/v1/{tag_id}/events`` exactly (no
trailing slash, no query) with a UUID tag id in lower case, the ``X-Line-TagAccessToken`` header
(401 otherwise), ``X-Line-ChannelID`` (digits) when an event has ``user.line_uid``, the media type
``application/json``, a ``Content-Length`` and no chunked encoding, a bare JSON array in UTF-8 of
at most 100,000 events, and each event's fields and patterns. The first bad event makes
the whole request a 400 (nothing of it is kept); otherwise 202 with an empty body.

Accepted events are counted per ``(event_name, deduplication_key)`` so tests can assert
exactly-once or at-least-once delivery. Faults can be injected (one-shot, in order) or set for
every request: 429 with ``Retry-After``, 500 after accepting part of the batch, 503, slow
answers, dropped connections, 401, and poisoned keys that always get a 400.

``GET /_mock/stats`` returns the counters as JSON (for rehearsals and subprocess tests). Tests
watch and steer it through public hooks: ``on_request`` (sees each request once it has arrived
whole, and may answer it instead), ``fault_policy`` (the fault for a request when none is
queued) and ``on_record`` (each request's record and the events kept).

This module keeps its own copy of LINE's rules (limits, patterns) on purpose, rather than
importing the sender's (sender.line_rules): it is an independent check of the sender, so a rule
the sender gets wrong is not wrong here too.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import ssl
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sender.build_info import MOCK_SERVER_NAME, MOCK_STATS_PATH
from sender.settings import ConfigError

MAX_EVENTS = 100_000
MAX_BODY_BYTES = 300_000_000
MAX_AGE_SECONDS = 90 * 86_400
MAX_AHEAD_SECONDS = 86_400

_EVENT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,20}\Z")
_DEDUP_KEY = re.compile(r"^[0-9a-zA-Z_-]{1,256}\Z")
_LINE_UID = re.compile(r"^U[0-9a-f]{32}\Z")
_CLICK_ID = re.compile(r"^[a-zA-Z0-9_-]+\Z")
_SHA256 = re.compile(r"^[0-9a-f]{64}\Z")
_EXTERNAL_ID = re.compile(r"^[0-9a-zA-Z_-]{1,512}\Z")
_CURRENCY = re.compile(r"^[A-Z]{3}\Z")
_URL = re.compile(r"^https?://.+", re.DOTALL)
_DIGITS = re.compile(r"^[0-9]+\Z")
_PATH = re.compile(r"^/v1/(?P<tag>[^/]+)/events\Z")

FAULT_KINDS = ("429", "500", "503", "slow", "drop", "401")


class Invalid(ValueError):
    """Why a request is answered 400 (reported in the X-Mock-Reason header and the log)."""


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:  # in lower case, as LINE shows it (the sender writes it so)
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _no_nulls(obj: dict, where: str) -> None:
    for name, value in obj.items():
        if value is None:
            raise Invalid(f"{where}.{name} is null")


_USER_IDS = {
    "line_uid": lambda v: isinstance(v, str) and bool(_LINE_UID.match(v)),
    "click_id": lambda v: isinstance(v, str) and bool(_CLICK_ID.match(v)),
    "browser_id": _is_uuid,
    "email": lambda v: isinstance(v, str) and bool(_SHA256.match(v)),
    "phone": lambda v: isinstance(v, str) and bool(_SHA256.match(v)),
    "ifa": _is_uuid,
    "external_id": lambda v: isinstance(v, str) and bool(_EXTERNAL_ID.match(v)),
}
_EVENT_FIELDS = {
    "source_type",
    "event_type",
    "event_name",
    "deduplication_key",
    "event_timestamp",
    "test_flag",
}
_CUSTOM_FIELDS = {"value", "currency", "quantity", "item_ids", "keywords", "category"}
_WEB_FIELDS = {"url", "referrer", "title", "user_agent", "ip_address"}


def validate_event(ev: object, now: float) -> None:
    """Raise :class:`Invalid` when LINE would refuse this event."""
    if not isinstance(ev, dict):
        raise Invalid("an element of the array is not an object")
    unknown = set(ev) - {"event", "user", "web", "custom"}
    if unknown:
        raise Invalid(f"unknown top-level field(s) {sorted(unknown)}")
    event, user = ev.get("event"), ev.get("user")
    if not isinstance(event, dict):
        raise Invalid("event is missing or not an object")
    if not isinstance(user, dict):
        raise Invalid("user is missing or not an object")
    _no_nulls(event, "event")
    _no_nulls(user, "user")
    if set(event) - _EVENT_FIELDS:
        raise Invalid(f"unknown event field(s) {sorted(set(event) - _EVENT_FIELDS)}")
    if event.get("source_type") != "web":
        raise Invalid("event.source_type must be 'web'")
    if event.get("event_type") not in ("conversion", "page_view"):
        raise Invalid("event.event_type must be 'conversion' or 'page_view'")
    name = event.get("event_name")
    if not isinstance(name, str) or not _EVENT_NAME.match(name):
        raise Invalid(f"event.event_name {name!r} does not match ^[A-Za-z0-9_-]{{1,20}}$")
    key = event.get("deduplication_key")
    if not isinstance(key, str) or not _DEDUP_KEY.match(key) or key == "undefined":
        raise Invalid(f"event.deduplication_key {key!r} is invalid")
    ts = event.get("event_timestamp")
    if not _is_int(ts):
        raise Invalid("event.event_timestamp is not an integer")
    if ts < now - MAX_AGE_SECONDS or ts > now + MAX_AHEAD_SECONDS:
        raise Invalid(f"event.event_timestamp {ts} is outside -90 days .. +24 hours")
    if "test_flag" in event and not isinstance(event["test_flag"], bool):
        raise Invalid("event.test_flag is not a boolean")
    if set(user) - set(_USER_IDS):
        raise Invalid(f"unknown user field(s) {sorted(set(user) - set(_USER_IDS))}")
    if not user:
        raise Invalid("user has no identifier")
    for field_name, check in _USER_IDS.items():
        if field_name in user and not check(user[field_name]):
            raise Invalid(f"user.{field_name} does not match its pattern")
    custom = ev.get("custom")
    if custom is not None:
        _validate_custom(custom)
    if name == "Purchase" and "value" not in (custom if isinstance(custom, dict) else {}):
        raise Invalid("a Purchase event has no custom.value")
    web = ev.get("web")
    if web is not None:
        _validate_web(web)
    if "custom" in ev and custom is None or "web" in ev and web is None:
        raise Invalid("custom/web is null")


def _validate_custom(custom: object) -> None:
    if not isinstance(custom, dict):
        raise Invalid("custom is not an object")
    _no_nulls(custom, "custom")
    if set(custom) - _CUSTOM_FIELDS:
        raise Invalid(f"unknown custom field(s) {sorted(set(custom) - _CUSTOM_FIELDS)}")
    if "value" in custom and (
        not _is_number(custom["value"]) or not 0 <= custom["value"] <= 2_147_483_647
    ):
        raise Invalid("custom.value is not a number in 0..2147483647")
    if "currency" in custom:
        if not isinstance(custom["currency"], str) or not _CURRENCY.match(custom["currency"]):
            raise Invalid("custom.currency is not an ISO 4217 code")
        if "value" not in custom:
            raise Invalid("custom.currency without custom.value")
    if "quantity" in custom and (not _is_int(custom["quantity"]) or custom["quantity"] < 0):
        raise Invalid("custom.quantity is not an integer >= 0")
    for name, limit in (("item_ids", 100), ("keywords", 10)):
        if name in custom:
            value = custom[name]
            if (
                not isinstance(value, list)
                or len(value) > limit
                or not all(isinstance(x, str) for x in value)
            ):
                raise Invalid(f"custom.{name} is not an array of at most {limit} strings")
    if "category" in custom and (
        not isinstance(custom["category"], str) or len(custom["category"]) > 300
    ):
        raise Invalid("custom.category is not a string of at most 300 characters")


def _utf16_length(text: object) -> int:
    """Characters as Java and JavaScript count them: one beyond U+FFFF (an emoji) is two."""
    return len(str(text).encode("utf-16-le")) // 2


def _validate_web(web: object) -> None:
    if not isinstance(web, dict):
        raise Invalid("web is not an object")
    _no_nulls(web, "web")
    if set(web) - _WEB_FIELDS:
        raise Invalid(f"unknown web field(s) {sorted(set(web) - _WEB_FIELDS)}")
    for name in web:
        if not isinstance(web[name], str):
            raise Invalid(f"web.{name} is not a string")
    if "url" in web and (not _URL.match(web["url"]) or _utf16_length(web["url"]) > 2048):
        raise Invalid("web.url is not an http(s) URL of at most 2048 characters")
    if _utf16_length(web.get("referrer", "")) > 2048:
        raise Invalid("web.referrer is longer than 2048 characters")
    if _utf16_length(web.get("title", "")) > 1024:
        raise Invalid("web.title is longer than 1024 characters")
    if "ip_address" in web:
        try:
            if "%" in web["ip_address"]:  # an IPv6 zone id: Python takes it, LINE does not
                raise ValueError
            ipaddress.ip_address(web["ip_address"])
        except ValueError:
            raise Invalid("web.ip_address is not an IPv4 or IPv6 address") from None


@dataclass
class Fault:
    """One injected misbehaviour. ``kind`` is one of FAULT_KINDS."""

    kind: str
    retry_after: float | None = 1  # for 429/503
    delay: float = 2.0  # for slow: seconds before answering (the request is then processed)
    accept_fraction: float = 0.5  # for 500: share of the (valid) events kept before the 500

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; one of {', '.join(FAULT_KINDS)}")


@dataclass(frozen=True)
class IncomingRequest:
    """A POST that has arrived whole, as ``on_request`` sees it."""

    path: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Answer:
    """What ``on_request`` may return to answer a request itself (nothing is validated or
    kept; the request is recorded with this status)."""

    status: int
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True)
class RequestRecord:
    status: int  # 0 = connection dropped
    events: int
    channel_id: str | None
    test_flags: int
    reason: str | None


class _Server(ThreadingHTTPServer):
    """Counts the connections it accepts; with an SSL context, speaks HTTPS (the handshake runs
    in the connection's own thread, so a client that refuses the certificate stops nothing)."""

    daemon_threads = True

    def __init__(self, address, handler, ssl_context: ssl.SSLContext | None) -> None:
        self.ssl_context = ssl_context
        self.connections = 0
        self._count_lock = threading.Lock()
        super().__init__(address, handler)

    def get_request(self):
        request = super().get_request()
        with self._count_lock:
            self.connections += 1
        return request

    def finish_request(self, request, client_address) -> None:
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        try:
            wrapped = self.ssl_context.wrap_socket(request, server_side=True)
        except OSError:  # the client refused the certificate, or went away
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            wrapped.close()


class MockLineServer:
    """Run with :meth:`start` (a background thread) or :meth:`serve_forever`. With
    ``ssl_context`` (a server context holding a certificate) it speaks HTTPS."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = "mock-token",  # noqa: S107 - the local mock's default
        tag_id: str | None = None,
        delay: float = 0.0,
        chaos: float = 0.0,
        log=None,
        clock=time.time,
        ssl_context: ssl.SSLContext | None = None,
        on_request: Callable[[IncomingRequest], Answer | None] | None = None,
        fault_policy: Callable[[], Fault | None] | None = None,
        on_record: Callable[[RequestRecord, list[dict]], None] | None = None,
    ) -> None:
        self.token = token
        # hooks for tests: see the module's docstring
        self.on_request = on_request
        self.fault_policy = fault_policy
        self.on_record = on_record
        self.tag_id = tag_id.lower() if tag_id else None  # None: any UUID
        self.delay = delay  # seconds added to every request
        self.chaos = chaos  # probability of a random retryable fault per request
        self.clock = clock
        self.log = log
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self.poisoned: set[str] = set()
        self.accepted: Counter[tuple[str, str]] = Counter()
        self.requests: list[RequestRecord] = []
        self._rand = __import__("random").Random(7)
        handler = type("Handler", (_Handler,), {"mock": self})
        self.httpd = _Server((host, port), handler, ssl_context)
        self._thread: threading.Thread | None = None

    # -- control -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if self.httpd.ssl_context is not None else "http"
        return f"{scheme}://{host}:{port}"

    def start(self) -> str:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self.url

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def inject(self, kind: str, times: int = 1, **kwargs) -> None:
        """Queue ``times`` faults of ``kind``; each request consumes the next queued one."""
        with self._lock:
            for _ in range(times):
                self._faults.append(Fault(kind, **kwargs))

    def clear_faults(self) -> None:
        """Drop the faults still queued: LINE is back."""
        with self._lock:
            self._faults.clear()

    def inject_spec(self, spec: str, *, retry_after: float | None = 1) -> None:
        """Queue faults from ``KIND[:COUNT]`` (the ``--fault`` option); ConfigError when bad."""
        kind, _, count = spec.partition(":")
        if kind not in FAULT_KINDS or (count and not count.isdigit()):
            raise ConfigError(
                f"--fault {spec!r}: use KIND[:COUNT], KIND one of {', '.join(FAULT_KINDS)}"
            )
        self.inject(kind, int(count or 1), retry_after=retry_after)

    def poison(self, *keys: str) -> None:
        """Requests containing any of these deduplication keys always get a 400."""
        with self._lock:
            self.poisoned.update(keys)

    def next_fault(self) -> Fault | None:
        """The fault for the request that just arrived: the next queued one, else the
        ``fault_policy``'s, else a random one at the ``chaos`` rate."""
        with self._lock:
            if self._faults:
                return self._faults.popleft()
        if self.fault_policy is not None:
            return self.fault_policy()
        with self._lock:
            if self.chaos and self._rand.random() < self.chaos:
                return Fault(self._rand.choice(["429", "500", "503", "drop"]), retry_after=0.2)
        return None

    def record(self, rec: RequestRecord, events: list[dict] | None = None) -> None:
        """Count a request and the events it kept (then ``on_record`` sees them)."""
        with self._lock:
            self.requests.append(rec)
            for ev in events or ():
                self.accepted[(ev["event"]["event_name"], ev["event"]["deduplication_key"])] += 1
        if self.on_record is not None:
            self.on_record(rec, list(events or ()))
        if self.log is not None:
            reason = f" ({rec.reason})" if rec.reason else ""
            self.log(f"POST {rec.status or 'dropped'} {rec.events} events{reason}")

    # -- views for tests -------------------------------------------------------------------
    def stats(self) -> dict:
        with self._lock:
            statuses = Counter(r.status for r in self.requests)
            return {
                "connections": self.httpd.connections,
                "requests": len(self.requests),
                "by_status": {str(k): v for k, v in sorted(statuses.items())},
                "accepted_events": sum(self.accepted.values()),
                "accepted_unique": len(self.accepted),
                "duplicates": sum(v - 1 for v in self.accepted.values() if v > 1),
            }

    def accepted_keys(self) -> set[str]:
        with self._lock:
            return {key for _, key in self.accepted}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = MOCK_SERVER_NAME + "1.0"  # how the sender tells it from other servers
    mock: MockLineServer

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
        return

    def _answer(self, status: int, *, reason: str | None = None, headers=None, body=b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if reason:
            self.send_header("X-Mock-Reason", reason.encode("ascii", "replace").decode()[:300])
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        if self.path == MOCK_STATS_PATH:
            body = json.dumps(self.mock.stats()).encode()
            self._answer(200, headers={"Content-Type": "application/json"}, body=body)
        else:
            self._answer(404, reason="not found")

    def do_POST(self):  # noqa: N802
        mock = self.mock
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True  # the body is not read: the connection is unusable
            mock.record(RequestRecord(400, 0, None, 0, "chunked transfer encoding"))
            return self._answer(400, reason="chunked transfer encoding")
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self.close_connection = True
            mock.record(RequestRecord(400, 0, None, 0, "no Content-Length"))
            return self._answer(400, reason="no Content-Length")
        length = int(length_header)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            mock.record(RequestRecord(413, 0, None, 0, "body over 300 MB"))
            return self._answer(413, reason="body over 300 MB")
        body = self.rfile.read(length)
        channel = self.headers.get("X-Line-ChannelID")
        if mock.on_request is not None:
            answer = mock.on_request(IncomingRequest(self.path, self.headers, body))
            if answer is not None:
                mock.record(RequestRecord(answer.status, 0, channel, 0, "on_request"))
                return self._answer(answer.status, reason="on_request", headers=answer.headers)

        fault = mock.next_fault()
        delay = mock.delay + (fault.delay if fault and fault.kind == "slow" else 0.0)
        if delay:
            time.sleep(delay)
        if fault is not None and fault.kind == "drop":
            mock.record(RequestRecord(0, 0, channel, 0, "dropped (injected)"))
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return None
        if fault is not None and fault.kind in ("429", "503"):
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            mock.record(RequestRecord(int(fault.kind), 0, channel, 0, "injected"))
            return self._answer(int(fault.kind), reason="injected", headers=headers)

        match = _PATH.match(self.path)  # as the spec writes it: no trailing slash, no query
        if not match:
            mock.record(RequestRecord(404, 0, channel, 0, f"no such path {self.path}"))
            return self._answer(404, reason="no such path")
        tag = match.group("tag")
        if not _is_uuid(tag):
            mock.record(RequestRecord(404, 0, channel, 0, "malformed tag id"))
            return self._answer(404, reason="malformed tag id")
        if mock.tag_id is not None and tag != mock.tag_id:
            # LINE: a token belongs to one tag, so another tag's id is a 401, as a wrong token is
            mock.record(RequestRecord(401, 0, channel, 0, "token of another tag"))
            return self._answer(401, reason="the token belongs to another LINE Tag")
        if (fault is not None and fault.kind == "401") or self.headers.get(
            "X-Line-TagAccessToken"
        ) != mock.token:
            mock.record(RequestRecord(401, 0, channel, 0, "bad token"))
            return self._answer(401, reason="bad X-Line-TagAccessToken")
        media_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if media_type != "application/json":
            mock.record(RequestRecord(400, 0, channel, 0, "Content-Type"))
            return self._answer(400, reason="Content-Type is not application/json")

        try:
            events = self._validate(body, channel)
        except Invalid as exc:
            mock.record(RequestRecord(400, 0, channel, 0, str(exc)))
            return self._answer(400, reason=str(exc))
        test_flags = sum(1 for ev in events if ev["event"].get("test_flag") is True)
        if fault is not None and fault.kind == "500":
            kept = events[: int(len(events) * fault.accept_fraction)]
            mock.record(RequestRecord(500, len(events), channel, test_flags, "injected"), kept)
            return self._answer(500, reason="injected")
        mock.record(RequestRecord(202, len(events), channel, test_flags, None), events)
        return self._answer(202)

    def _validate(self, body: bytes, channel: str | None) -> list[dict]:
        mock = self.mock
        try:
            # UTF-8 only (RFC 8259): json.loads would take UTF-16 bytes, and a byte order mark
            events = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise Invalid("body is not JSON in UTF-8") from None
        if not isinstance(events, list):
            raise Invalid("body is not a bare JSON array")
        if not events or len(events) > MAX_EVENTS:
            raise Invalid(f"{len(events)} events: need 1..{MAX_EVENTS}")
        now = mock.clock()
        with mock._lock:
            poisoned = set(mock.poisoned)
        needs_channel = False
        for i, ev in enumerate(events):
            try:
                validate_event(ev, now)
            except Invalid as exc:
                raise Invalid(f"event #{i}: {exc}") from None
            if ev["event"]["deduplication_key"] in poisoned:
                raise Invalid(f"event #{i}: poisoned key {ev['event']['deduplication_key']}")
            needs_channel = needs_channel or "line_uid" in ev["user"]
        if needs_channel and (channel is None or not _DIGITS.match(channel)):
            raise Invalid("user.line_uid without a valid X-Line-ChannelID header")
        return events

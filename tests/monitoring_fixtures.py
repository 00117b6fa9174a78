"""Helpers for the monitoring tests: ``line_capi_coverage`` rows written as the dbt mart writes
them (one row per build and LINE event name, kept across builds), and a local Slack-compatible
webhook receiver that records what it is sent."""

from __future__ import annotations

import csv
import datetime as dt
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb

IDENTIFIERS = ("click_id", "browser_id", "email", "phone", "line_uid", "ip_and_user_agent")
# Every rejection reason, in the order of the seed (and of the mart's columns: the data test
# assert_reject_reasons_match_the_seed keeps the two in step). Read, not retyped: a new reason
# is one row of the seed.
_REASONS_SEED = Path(__file__).resolve().parent.parent / "seeds" / "line_capi_reject_reasons.csv"
with _REASONS_SEED.open(newline="", encoding="utf-8") as _seed:
    REASONS = tuple(row["reason"] for row in csv.DictReader(_seed))

# The contract of the mart, column for column.
COVERAGE_DDL = (
    "create table if not exists line_capi_coverage (invocation_id varchar, event_name varchar,"
    " is_sample boolean, conversions_in_window bigint, sendable bigint, rejected bigint, "
    + ", ".join(f"rejected_{r} bigint" for r in REASONS)
    + ", "
    + ", ".join(f"with_{i} bigint" for i in IDENTIFIERS)
    + ", built_at timestamp, as_of timestamp)"
)

# The usual shares of a healthy site, and the one a release broke: no click ids any more.
USUAL_SHARES = {
    "click_id": 0.4,
    "browser_id": 0.9,
    "email": 0.7,
    "phone": 0.3,
    "line_uid": 0.05,
    "ip_and_user_agent": 1.0,
}


@dataclass
class Build:
    """One build's coverage: per event name, sendable count, shares and rejections."""

    invocation_id: str
    built_at: dt.datetime
    events: dict[str, dict] = field(default_factory=dict)
    is_sample: bool = False

    def add(
        self,
        event_name: str,
        *,
        sendable: int = 200,
        shares: dict[str, float] | None = None,
        rejected: dict[str, int] | None = None,
    ) -> Build:
        self.events[event_name] = {
            "sendable": sendable,
            "shares": {**USUAL_SHARES, **(shares or {})},
            "rejected": rejected or {},
        }
        return self


def hourly_builds(
    n: int, *, event_names: tuple[str, ...] = ("Purchase",), end: dt.datetime | None = None
) -> list[Build]:
    """``n`` healthy builds an hour apart, the last an hour before ``end`` (default: now)."""
    end = end or dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    builds = []
    for i in range(n):
        build = Build(f"build-{i:03d}", end - dt.timedelta(hours=n - i))
        for name in event_names:
            build.add(name, rejected={"no_user_identifier": 3 + i % 2})
        builds.append(build)
    return builds


def write_coverage(db: Path, builds: list[Build]) -> None:
    con = duckdb.connect(str(db))
    try:
        con.execute(COVERAGE_DDL)
        for build in builds:
            for name, event in build.events.items():
                sendable = event["sendable"]
                rejected = [event["rejected"].get(r, 0) for r in REASONS]
                identifiers = [round(event["shares"][i] * sendable) for i in IDENTIFIERS]
                values = [
                    build.invocation_id,
                    name,
                    build.is_sample,
                    sendable + sum(rejected),
                    sendable,
                    sum(rejected),
                    *rejected,
                    *identifiers,
                    build.built_at,
                    build.built_at,
                ]
                marks = ", ".join("?" * len(values))
                con.execute(f"insert into line_capi_coverage values ({marks})", values)
    finally:
        con.close()


# -- the webhook receiver ------------------------------------------------------------------------
# A recognisable path: the webhook URL is a secret, and tests grep every output for it.
WEBHOOK_PATH = "/services/T000/B000/wEbHoOkSeCrEt-do-not-print"
# a heartbeat monitor's ping URL, as healthchecks.io's: a secret as well
HEARTBEAT_PATH = "/ping/5e1fb0d2-hEaRtBeAtSeCrEt-do-not-print"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
        pass

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        receiver: WebhookReceiver = self.server.receiver  # type: ignore[attr-defined]
        with receiver.lock:
            receiver.posts.append(
                {"path": self.path, "type": self.headers.get("Content-Type"), "body": body}
            )
        self._answer(receiver.status)

    def do_GET(self):  # noqa: N802 - a heartbeat monitor's ping
        receiver: WebhookReceiver = self.server.receiver  # type: ignore[attr-defined]
        with receiver.lock:
            receiver.gets.append(self.path)
        self._answer(receiver.status)

    def _answer(self, status: int) -> None:
        self.send_response(status)
        if 300 <= status < 400:  # somewhere a client that follows redirects would go
            self.send_header("Location", "/moved")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


class WebhookReceiver:
    """A Slack-compatible webhook (POSTs, kept in ``posts``) that is also a heartbeat monitor
    (GETs, their paths kept in ``gets``), answering every request with ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.posts: list[dict] = []
        self.gets: list[str] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.receiver = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{WEBHOOK_PATH}"

    @property
    def heartbeat_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{HEARTBEAT_PATH}"

    def texts(self) -> list[str]:
        """The ``text`` of every message received (each must be a JSON object with one)."""
        with self.lock:
            return [json.loads(p["body"])["text"] for p in self.posts]


@contextmanager
def webhook_receiver(status: int = 200) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(status)
    receiver._thread.start()
    try:
        yield receiver
    finally:
        receiver.httpd.shutdown()
        receiver.httpd.server_close()


def closed_port_url() -> str:
    """A loopback URL where nothing listens (the port was free a moment ago)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{WEBHOOK_PATH}"

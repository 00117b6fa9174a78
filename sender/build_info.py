"""What the payload was built from (dbt's table ``line_capi_build_info``), checked before sending.

``push`` refuses a payload whose build did not finish (the build info is missing, or describes
another table than the one in the file) and a payload built from the bundled sample for any
endpoint but ``sender mock-server``: the sample's times are shifted to look current, and LINE
would count its invented conversions. So is a real export replayed with its times shifted (var
karte_export_time_anchor): LINE would record each conversion at a time it did not happen. Neither
refusal sends anything: the sample's is made before any connection to a remote endpoint, and a
loopback one is only asked whether it is the mock (a tunnel or a proxy on this machine may
forward to LINE).
"""

# ruff: noqa: S608 - SQL is built from this package's constant table names; values are bound.

from __future__ import annotations

import datetime as dt
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import requests
import urllib3

from sender.database import (
    BUILD_INFO_TABLE,
    DESTINATIONS_TABLE,
    PAYLOAD_TABLE,
    RUNS_TABLE,
    NoPayload,
    fetch_one,
    table_exists,
)
from sender.ledger_migration import UNKNOWN, has_column
from sender.settings import is_loopback_host

_COLUMNS = (
    "invocation_id",
    "export_location",
    "is_sample",
    "built_at",
    "payload_rows",
    "payload_event_timestamp_sum",
)


# the file the bundled sample's folder holds, and any copy of it (macro is_bundled_sample)
SAMPLE_MARKER = "LINE_CAPI_SAMPLE"


def holds_sample_marker(folder: Path) -> bool:
    """The folder holds the sample's marker file; a folder this user may not search is not the
    sample here (the run's export check says it cannot be read)."""
    try:
        return (folder / SAMPLE_MARKER).is_file()
    except OSError:
        return False


class SampleRefused(Exception):
    """The payload comes from the bundled sample and the endpoint is not sender mock-server."""


# What sender mock-server answers (sender.mock_server): its counters, under its own name.
MOCK_STATS_PATH = "/_mock/stats"
MOCK_SERVER_NAME = "MockLineCAPI/"


def answers_as_mock(endpoint: str) -> bool | None:
    """Whether the loopback ``endpoint`` is sender mock-server: True, False (something else
    answered, or took a connection and did not answer in time: a tunnel, a proxy, another
    program), or None (nothing listens: nothing can be sent there either). One GET without the
    token, no proxy, no redirect, at most 64 KB read; the certificate is not checked (a
    rehearsal's is self-signed), as nothing is sent."""
    with requests.Session() as session, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # urllib3's InsecureRequestWarning
        session.trust_env = False
        try:
            resp = session.get(
                endpoint.rstrip("/") + MOCK_STATS_PATH,
                timeout=(2.0, 5.0),
                allow_redirects=False,
                verify=False,  # noqa: S501 - only asks who answers; sends nothing
                stream=True,
            )
            body = resp.raw.read(64 * 1024, decode_content=True)
            resp.close()
        except (requests.ConnectTimeout, requests.ConnectionError) as exc:
            # refused: nothing listens; a connection taken, then dropped or silent: something does
            return None if _refused(exc) else False
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError):
            return False  # an answer cut short or stalled (read as a stream: urllib3's errors)
    try:
        stats = json.loads(body)
    except ValueError:
        return False
    return (
        resp.status_code == 200
        and resp.headers.get("Server", "").startswith(MOCK_SERVER_NAME)
        and isinstance(stats, dict)
        and "accepted_events" in stats
    )


def _refused(exc: BaseException) -> bool:
    """Whether a connection error is a refused connection (or one not made in time), anywhere in
    its chain of causes."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return True
        nested = [getattr(current, "reason", None), current.__cause__, *current.args]
        current = next((x for x in nested if isinstance(x, BaseException)), None)
    return "Connection refused" in str(exc)


def check_sample_destination(
    sample: str,
    endpoint: str,
    *,
    ask_server: bool = True,
    remedy: str = "build a real export (env KARTE_EXPORT_DIR or var karte_export_dir)",
) -> None:
    """Raise SampleRefused when ``endpoint`` is not loopback, or is a loopback server that is
    not sender mock-server; ``sample`` says what is the sample, such as "the payload was built
    from the bundled sample (/srv/sample)", and ``remedy`` how to build what may go out."""
    host = urlsplit(endpoint).hostname or ""
    if not is_loopback_host(host):
        raise SampleRefused(
            f"{sample}, which is never sent to {host}: {remedy}, or rehearse against sender"
            " mock-server on 127.0.0.1"
        )
    if ask_server and answers_as_mock(endpoint) is False:
        raise SampleRefused(
            f"{sample}, which is sent only to sender mock-server, and what answers at {endpoint}"
            f" is not it (a tunnel or a proxy there may forward to LINE): rehearse against"
            f" sender mock-server (make demo starts one), or {remedy}"
        )


def real_endpoint_sent_to(database: Path) -> str | None:
    """An endpoint that is not loopback which the ledger in ``database`` has sent to (a real
    job's database), else None; None too when it cannot be read now (a lock: the run says so)."""
    try:
        con = duckdb.connect(str(database), read_only=True)
    except duckdb.Error:
        return None
    try:
        if table_exists(con, DESTINATIONS_TABLE):
            query = f"select distinct endpoint from {DESTINATIONS_TABLE}"
        elif has_column(con, RUNS_TABLE, "endpoint"):  # 0.1.0's, not migrated: each run's
            query = f"select distinct endpoint from {RUNS_TABLE}"
        else:
            return None
        endpoints = [endpoint for (endpoint,) in con.sql(query).fetchall()]
    except duckdb.Error:
        return None
    finally:
        con.close()
    # a migrated key row whose run was gone has the endpoint 'unknown' (sender.ledger_migration)
    real = sorted(
        e for e in endpoints if e != UNKNOWN and not is_loopback_host(urlsplit(e).hostname or "")
    )
    return real[0] if real else None


def check_sample_database(sample: str, database: Path) -> None:
    """Raise SampleRefused when ``database`` is a real job's: the sample built there would
    replace that job's payload, and its run log, coverage history and alerts would count the
    sample's run (``make demo`` in a checkout whose job kept the default database)."""
    if not database.is_file():
        return
    endpoint = real_endpoint_sent_to(database)
    if endpoint is not None:
        raise SampleRefused(
            f"{sample}, and database {database} is a real job's (its ledger has sent to"
            f" {urlsplit(endpoint).hostname}): build the sample into a database of its own"
            " (LINE_CAPI_DUCKDB=data/demo.duckdb; make demo DEMO_DUCKDB=data/demo.duckdb)"
        )


@dataclass(frozen=True)
class BuildInfo:
    invocation_id: str
    export_location: str
    is_sample: bool
    built_at: dt.datetime | None
    payload_rows: int
    payload_event_timestamp_sum: int
    time_shift_seconds: int = 0  # var karte_export_time_anchor (a replay), or the sample's
    window: tuple[dt.datetime, dt.datetime] | None = None  # UTC: window_start, as_of

    def window_line(self) -> str | None:
        """The build's window, for the push's first lines: a replay or a catch-up says which
        conversions it holds (None: a build before these columns)."""
        if self.window is None:
            return None
        start, end = self.window
        return (
            f"the build of {self.built_at:%Y-%m-%d %H:%M}Z holds the conversions from"
            f" {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
            f" ({(end - start).total_seconds() / 3600:,.0f} h up to its as_of)"
            if self.built_at
            else None
        )

    def describe(self) -> str:
        """When and from what it was built, for people: `status` and `preview` show it."""
        sample = " (the bundled sample)" if self.is_sample else ""
        when = f"{self.built_at}Z" if self.built_at else "at an unknown time"
        return f"{when} from {self.export_location}{sample}: {self.payload_rows:,} payload rows"

    def as_dict(self) -> dict:
        return {
            "invocation_id": self.invocation_id,
            "export_location": self.export_location,
            "is_sample": self.is_sample,
            "built_at": self.built_at.isoformat(sep=" ") + "Z" if self.built_at else None,
            "payload_rows": self.payload_rows,
        }


def read_build_info(con: duckdb.DuckDBPyConnection) -> BuildInfo | None:
    """The build info row, or None when dbt has not written one (or wrote an unusable one)."""
    if not table_exists(con, BUILD_INFO_TABLE):
        return None
    try:
        rows = con.execute(f"select {', '.join(_COLUMNS)} from {BUILD_INFO_TABLE}").fetchall()
    except duckdb.Error:  # written by another version of the project
        return None
    if len(rows) != 1:
        return None
    (invocation_id, location, is_sample, built_at, rows_, checksum) = rows[0]
    # a build before the column: its times were shifted only if it was the sample
    shifted = has_column(con, BUILD_INFO_TABLE, "time_shift_seconds") and fetch_one(
        con, f"select time_shift_seconds from {BUILD_INFO_TABLE}"
    )
    window = has_column(con, BUILD_INFO_TABLE, "window_start") and fetch_one(
        con, f"select window_start, as_of from {BUILD_INFO_TABLE}"
    )
    return BuildInfo(
        str(invocation_id),
        str(location),
        bool(is_sample),
        built_at,
        int(rows_ or 0),
        int(checksum or 0),
        int(shifted[0] or 0) if shifted else 0,
        (window[0], window[1]) if window and window[0] and window[1] else None,
    )


def check_build(
    con: duckdb.DuckDBPyConnection, endpoint: str, *, ask_server: bool = True
) -> BuildInfo:
    """The build info, once it is known to describe the payload in the file and to be allowed
    for ``endpoint``; raises NoPayload or SampleRefused otherwise. ``ask_server`` False (a dry
    run, which makes no request): a sample payload is checked against a loopback address only."""
    row = fetch_one(
        con, "select path from duckdb_databases() where database_name = current_database()"
    )
    path = row[0] if row else "the database"
    info = read_build_info(con)
    if info is None:
        raise NoPayload(
            f"database {path} has no usable table {BUILD_INFO_TABLE}: the last dbt build did not"
            " finish (or predates it); run `dbt build` and send once it succeeds"
        )
    row = fetch_one(con, f"select count(*), coalesce(sum(event_timestamp), 0) from {PAYLOAD_TABLE}")
    rows, checksum = (int(row[0]), int(row[1])) if row else (0, 0)
    if (rows, checksum) != (info.payload_rows, info.payload_event_timestamp_sum):
        raise NoPayload(
            f"{PAYLOAD_TABLE} in {path} ({rows:,} rows) is not the payload of the last finished"
            f" build ({info.payload_rows:,} rows): a dbt build stopped half-way; run `dbt build`"
            " and send once it succeeds"
        )
    if info.is_sample:
        where = f"the payload was built from the bundled sample ({info.export_location})"
        check_sample_destination(where, endpoint, ask_server=ask_server)
    elif info.time_shift_seconds:
        # a replay: LINE would record each conversion at a time it did not happen
        hours = info.time_shift_seconds / 3600
        where = (
            f"the payload's times were moved {hours:+,.1f} h by var karte_export_time_anchor"
            f" (a replay of {info.export_location})"
        )
        remedy = "build without it to send the conversions at their own times"
        check_sample_destination(where, endpoint, ask_server=ask_server, remedy=remedy)
    return info

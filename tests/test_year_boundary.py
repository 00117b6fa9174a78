"""The hourly job across the turn of the year, end to end: `sender run` (dbt and the sender) with
the clock moved to the last hours of 2026 and the first of 2027, by libfaketime, which gives
every process it starts (the sender, dbt, DuckDB) the same moved clock. The year turns in Japan
(15:00 UTC) nine hours before it turns in UTC; an export written in Japan time crosses it first."""

from __future__ import annotations

import calendar
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import libfaketime
from schedule_fixtures import HOUR, clock_export, sender_run
from sender_fixtures import mock_server, run_cli

from sender.exit_codes import ExitCode

FAKETIME_LIBRARY = Path(libfaketime.__file__).parent / "vendor" / "libfaketime" / "src"


# dbt's threads one at a time: libfaketime serialises every reading of the clock behind one
# lock, and dbt's two threads contending for it made a build of the sample 12 s instead of 8
# (2.6 million futex calls a build, against 13 thousand without libfaketime)
ONE_DBT_THREAD = ("--threads", "1")


def utc(text: str) -> float:
    return calendar.timegm(dt.datetime.fromisoformat(text).utctimetuple())


class MovedClock:
    """A clock moved to ``at`` (a UTC time): ``now()`` for this process's own use (the export's
    times, the mock server's clock) and ``env()``, which moves a child process's clock with it;
    both go on ticking."""

    def __init__(self) -> None:
        self.shift = 0.0

    def move_to(self, at: str) -> float:
        self.shift = utc(at) - time.time()
        return self.now()

    def now(self) -> float:
        return time.time() + self.shift

    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": str(FAKETIME_LIBRARY / "libfaketime.so.1"),
            "FAKETIME": f"{self.shift:+.0f}",  # seconds from the real clock
            "DONT_FAKE_MONOTONIC": "1",  # timeouts and retries keep the real pace
            # dbt as a plain subprocess: the tests' dbt server was started on the real clock
            "LINE_CAPI_DBT": str(Path(sys.executable).parent / "dbt"),
        }


def test_the_moved_clock_reaches_the_processes_the_job_starts(tmp_path):
    """Without this, the test below would pass on the real clock and prove nothing."""
    clock = MovedClock()
    clock.move_to("2026-12-31T15:20:00+00:00")
    probe = (
        "import time, duckdb; print(int(time.time()), "
        "int(duckdb.sql('select epoch(now())').fetchall()[0][0]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, **clock.env()},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for seconds in map(int, out):
        assert abs(seconds - utc("2026-12-31T15:20:00+00:00")) < 120


def test_the_hourly_job_sends_each_conversion_once_across_the_turn_of_the_year(tmp_path):
    clock = MovedClock()
    # each order's time (UTC); Japan's new year is 2026-12-31T15:00Z, UTC's nine hours later
    orders = {
        "ORD-DEC31-JST-2220": "2026-12-31T13:20:00+00:00",
        "ORD-DEC31-JST-2350": "2026-12-31T14:50:00+00:00",
        "ORD-JAN1-JST-0014": "2026-12-31T15:14:00+00:00",
        "ORD-JAN1-JST-0820": "2026-12-31T23:20:00+00:00",
        "ORD-JAN1-UTC-0008": "2027-01-01T00:08:00+00:00",
    }
    runs = [
        # (the clock at the run, the orders LINE has after it): the first run an hour after
        # Japan's new year, the second twenty minutes after UTC's
        (
            "2026-12-31T15:20:00+00:00",
            ["ORD-DEC31-JST-2220", "ORD-DEC31-JST-2350", "ORD-JAN1-JST-0014"],
        ),
        ("2027-01-01T00:20:00+00:00", ["ORD-JAN1-JST-0820", "ORD-JAN1-UTC-0008"]),
    ]
    expected: dict[tuple[str, str], int] = {}
    with mock_server(clock=clock.now) as srv:
        for i, (at, sent) in enumerate(runs):
            now = clock.move_to(at)
            # the export as KARTE holds it at that hour: every order placed so far, in Japan time
            placed = {k: (now - utc(t)) / HOUR for k, t in orders.items() if utc(t) <= now}
            export = clock_export(tmp_path / f"export-{i}", placed, newest_hours=0.05, now=now)
            r = sender_run(tmp_path, srv.url, export=export, dbt=ONE_DBT_THREAD, env=clock.env())
            assert r.returncode == ExitCode.OK, (at, r.stdout, r.stderr)
            # the freshness check ran on the moved clock: the export's newest page view is
            # 0.05 h (3 minutes) old by it, and dbt's results were taken for this run's
            assert "export fresh (" in r.stderr and "page_views 0.1 h old" in r.stderr, r.stderr
            expected.update({("Conversion", key): 1 for key in sent})
            assert srv.accepted == expected, at
        status = run_cli(
            ["status", "--json"],
            {"LINE_CAPI_DUCKDB": str(tmp_path / "line_capi.duckdb"), **clock.env()},
        )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["pending"] == 0
    with duckdb.connect(str(tmp_path / "line_capi.duckdb"), read_only=True) as con:
        # the ledger's own clock moved too: every key was recorded in its run's hour
        recorded = dict(
            con.sql(
                "select deduplication_key, strftime(sent_at, '%Y') from line_capi_send_log"
            ).fetchall()
        )
    assert recorded == {
        "ORD-DEC31-JST-2220": "2026",
        "ORD-DEC31-JST-2350": "2026",
        "ORD-JAN1-JST-0014": "2026",
        "ORD-JAN1-JST-0820": "2027",
        "ORD-JAN1-UTC-0008": "2027",
    }

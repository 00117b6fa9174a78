"""The scheduled job: `sender run` (lock, freshness, build, push), stale exports, catch-up after
an outage, and the recipes of docs/operations.md, run as a scheduler would run them."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import dbt_forkserver
import duckdb
import pytest
import yaml
from pipeline_fixtures import (
    DBT,
    HOURLY_BUILD,
    ROOT,
    SAMPLE_DIR,
    rewrite_export,
    run_dbt,
    write_export,
)
from schedule_fixtures import HOUR, TAG_ID, clock_export, dbt_args, iso, sender_run
from sender_fixtures import TOKEN, database_held, mock_server, run_cli, sender_env

from sender.alerts import run_warning_findings
from sender.dbt_artifacts import built_elsewhere
from sender.dbt_output import QuotedRowFilter
from sender.dbt_vars import merge_vars, take_export_dir
from sender.exit_codes import ExitCode
from sender.freshness import (
    PAGE_VIEWS_TRAIL,
    PAGE_VIEWS_UNMATCHED,
    Freshness,
    arrived_late,
    read_freshness,
)
from sender.run_history import (
    BUILD_OK,
    ROTATE_BYTES,
    ExportCheck,
    exit_codes,
    export_checked_line,
    last_run,
    last_send_of,
    rotated,
    streak_before_last,
    undelivered_alert,
)
from sender.run_locks import TARGET_LOCK_NAME, current_user, lock_path
from sender.run_log import RunLog
from sender.scheduled_run import RunConfig, ScheduledRun, run_config, target_path
from sender.settings import ConfigError
from sender.status import job_lines


def one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, stderr
    return errors[0]


def build_stops(tmp_path: Path, export: Path) -> tuple[subprocess.CompletedProcess, str]:
    """A `sender run` on ``export`` whose build fails before anything is sent: the run, and its
    one error line."""
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export)
        assert srv.stats()["requests"] == 0
    assert r.returncode == ExitCode.BUILD_FAILED, r.stderr
    return r, one_error_line(r.stderr)


def test_dbt_results_are_this_runs_by_dbts_own_time_not_the_files_mtime(tmp_path):
    """A target folder on a share whose clock lags stamps dbt's results older than the run's
    start: read by mtime, this run's freshness results were taken for an earlier run's and
    ignored (a quiet night stopped as exit 12; a year-boundary test with its clock moved ahead
    ran without the freshness check). dbt's own generated_at says which run wrote them."""
    started = time.time()
    sources = tmp_path / "sources.json"

    def write(generated: float) -> None:
        stamp = dt.datetime.fromtimestamp(generated, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        result = {
            "unique_id": "source.line_capi.karte.page_views",
            "status": "pass",
            "max_loaded_at_time_ago_in_s": 5400.0,
            "criteria": {"warn_after": {"count": 3}, "error_after": {"count": 6}},
        }
        sources.write_text(json.dumps({"metadata": {"generated_at": stamp}, "results": [result]}))
        os.utime(sources, (started - 600, started - 600))  # the share's clock: ten minutes behind

    write(started + 4)
    (fresh,) = read_freshness(sources, started)
    assert (fresh.table, fresh.status, fresh.age_hours) == ("page_views", "pass", 1.5)
    write(started - 120)  # an earlier run's results, left in the folder
    assert read_freshness(sources, started) == []
    sources.write_text("{")  # cut off
    assert read_freshness(sources, started) == []


def test_the_export_ages_of_a_run_are_taken_at_the_moment_dbt_measured_them(tmp_path):
    """dbt's snapshotted_at is when it measured each table's age: the run's other ages (the
    page views' trail, the newest page view's time) are taken from it, not from a clock read
    after a build that may take minutes, so one conversion is not 0.1 h old in one line of a
    run and 0.2 h in the next."""
    sources = tmp_path / "sources.json"
    generated = dt.datetime.now(dt.UTC)

    def results(*snapshots: object) -> list[Freshness]:
        rows = [
            {"unique_id": f"source.line_capi.karte.t{i}", "status": "pass", "snapshotted_at": at}
            for i, at in enumerate(snapshots)
        ]
        stamp = generated.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        sources.write_text(json.dumps({"metadata": {"generated_at": stamp}, "results": rows}))
        return read_freshness(sources, generated.timestamp() - 1)

    measured = results("2026-12-08T00:29:45.342415+00:00", "2026-12-08T09:29:45Z")
    assert [r.checked_at for r in measured] == [
        dt.datetime(2026, 12, 8, 0, 29, 45, 342415, dt.UTC).timestamp(),
        dt.datetime(2026, 12, 8, 9, 29, 45, tzinfo=dt.UTC).timestamp(),
    ]
    # none, not a time, or a time without its offset: not read (the run's own clock instead)
    assert [r.checked_at for r in results(None, "soon", "2026-12-08T00:29:45", 3)] == [None] * 4


def test_a_stale_export_stops_the_run_with_one_line_naming_the_table_and_age(tmp_path):
    export = clock_export(tmp_path / "export", {"ORD-1": 31}, newest_hours=30)
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export)
        assert srv.stats()["requests"] == 0
    assert r.returncode == ExitCode.STALE_EXPORT, r.stderr
    line = one_error_line(r.stderr)
    assert "KARTE export table conversions is stale" in line or "table page_views" in line
    assert "30.0 h old (the limit is 6 h)" in line
    # status tells the job stopped, though no push ran (an earlier push would say "ok")
    status = run_cli(["status", "--json"], {"LINE_CAPI_DUCKDB": str(tmp_path / "line_capi.duckdb")})
    job = json.loads(status.stdout)["last_job"]
    assert (job["exit_code"], job["outcome"]) == (11, "STALE_EXPORT"), status.stderr
    assert "30.0 h old (the limit is 6 h)" in job["message"] and "; log:" not in job["message"]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "line_capi.duckdb").exists() or "dbt build ok" not in r.stderr
    log = (tmp_path / "line_capi_run.log").read_text()
    assert "freshness of karte.conversions" in log  # dbt's own lines, timestamped
    assert "is stale" in log


def test_a_quiet_night_in_an_export_written_this_hour_is_a_warning_not_a_stale_export(tmp_path):
    """A small shop's night: no event for 7 hours (the limit is 6), but the hourly export wrote
    its files minutes ago. The export runs; the site had nothing new. An export that stopped
    writing (the test above) still stops the run."""
    export = clock_export(tmp_path / "export", {"ORD-1": 7.5}, newest_hours=7, written_hours=0.1)
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export)
        assert srv.accepted == {("Conversion", "ORD-1"): 1}
    assert r.returncode == ExitCode.OK, r.stderr
    assert (
        "warning: KARTE export table conversions is stale: its newest sync_date is 7.0 h old"
        " (the limit is 6 h), but its files were written 0.1 h ago: no new row since" in r.stderr
    )
    assert "export usable" in r.stderr


def test_page_views_that_stopped_while_conversions_go_on_are_not_called_a_quiet_spell(tmp_path):
    """Each conversion fires on a page view the same export holds: page views 8 hours behind
    conversions of minutes ago is most often a page_views query that broke, and new conversions
    go without IP address, user agent or click id. The warning said "no new row since (a quiet
    spell on the site)", untrue. The run goes on: the table may hold other events (add-to-cart)
    beside page views of converters only, a healthy site's quiet night."""
    export = clock_export(tmp_path / "export", {"ORD-1": 8}, newest_hours=8, written_hours=0.1)
    written = (export / "conversions.csv").stat().st_mtime
    with (export / "conversions.csv").open("a", newline="") as file:
        file.write(f"buy,u9,ORD-9,{iso(time.time() - 0.1 * HOUR, True)},,,,pv-9\r\n")
    os.utime(export / "conversions.csv", (written, written))
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export)
    assert r.returncode == ExitCode.OK, r.stderr
    assert (
        "warning: KARTE export table page_views is stale: its newest sync_date is 8.0 h old (the"
        " limit is 6 h); conversions are 0.1 h old: if those rows are conversions (not other"
        " events the table holds), the page views stopped while they went on" in r.stderr
    )
    assert "page_views is stale: its newest sync_date is 8.0 h old (the limit is 6 h), but" not in (
        r.stderr
    )


def test_conversions_newer_than_every_page_view_are_warned_then_alerted(tmp_path):
    """Each conversion is sent with what its page view carries when it is built: a page_views
    export that runs hours behind the conversions' (or stopped) sends every new conversion
    without IP address, user agent and click id, for good, while each run exits 0 and the
    identifiers' shares fall slowly (a build counts a day of conversions). Each run says how far
    the page views trail; the third in a row alerts, once."""
    export = clock_export(tmp_path / "export", {"ORD-1": 2.5}, newest_hours=2.5)
    # one conversion whose page view is not there; a single-page app's purchase, its page view
    # 2.4 h older but there, and an order entered in the back office (no pv_id) are not counted
    with (export / "conversions.csv").open("a", newline="") as file:
        now = iso(time.time() - 0.1 * HOUR, True)
        file.write(f"buy,u0,ORD-0,{now},,,,pv-0\r\nbuy,u0,ORD-B,{now},,,,\r\n")
        file.write(f"buy,u9,ORD-9,{now},,,,pv-9\r\n")
    said = []
    for _ in range(3):
        with mock_server() as srv:
            r = sender_run(tmp_path, srv.url, export=export)
        assert r.returncode == ExitCode.OK, r.stderr
        # its age as the run's freshness line says it (one clock read), however slow the run
        age = re.search(r"run: export \w+ \(conversions (\d+\.\d) h old", r.stderr).group(1)
        assert age in ("0.1", "0.2"), r.stderr
        assert re.search(
            rf"warning: 1 conversion carries no page view, the newest \(Conversion, {age} h old\)"
            r" 2\.4 h newer than the newest page view: the page_views export runs behind the"
            r" conversions' or has stopped",
            r.stderr,
        ), r.stderr
        said.append([x for x in r.stderr.splitlines() if "run: alert: page views" in x])
    assert said[:2] == [[], []]
    (alert,) = said[2]
    assert alert.endswith(
        "alert: page views trailed the conversions at 3 runs in a row: the conversions they sent"
        " went without IP address, user agent and click id; the page_views export runs behind"
        " the conversions' or has stopped (the run log's warning gives how far)"
    )


def test_conversions_whose_pv_ids_name_no_page_view_are_warned_of_and_alerted_at_the_third(
    tmp_path,
):
    """One Datahub query changed how it writes pv_id: every conversion went without IP address,
    user agent and click id, exit 0, with no word (the share alerts need 50 conversions a day)."""
    export = clock_export(tmp_path / "export", {f"ORD-{i}": 1 + i for i in range(6)}, 0.2)
    conversions = export / "conversions.csv"
    (tmp_path / "kept").mkdir()
    with mock_server() as srv:
        kept = sender_run(tmp_path / "kept", srv.url, export=export)
        assert kept.returncode == 0 and PAGE_VIEWS_UNMATCHED not in kept.stderr, kept.stderr
        conversions.write_text(conversions.read_text().replace(",pv-", ",PV-"))
        changed = sender_run(tmp_path, srv.url, export=export)
    assert changed.returncode == 0, changed.stderr
    assert (
        "warning: 6 of the build's 6 conversions with a pv_id name no page view of the export,"
        " though the page views reach past them: the conversions and page_views exports write"
        " pv_id differently"
    ) in changed.stderr, changed.stderr
    # the alert at the third run in a row that says so, as for page views that trail
    log = tmp_path / "line_capi_run.log"
    warned = [x for x in log.read_text().splitlines() if PAGE_VIEWS_UNMATCHED in x]
    assert len(warned) == 1 and run_warning_findings(log) == []
    with log.open("a") as file:
        for hour in (11, 12):
            file.write(f"2026-12-07T{hour}:00:00Z run: start: project /p, database /d, export /e\n")
            file.write(f"2026-12-07T{hour}:00:08Z run: {BUILD_OK}PASS=80\n")
            file.write(f"2026-12-07T{hour}:00:09Z run: warning: 6 {PAGE_VIEWS_UNMATCHED}\n")
            file.write(f"2026-12-07T{hour}:00:10Z run: done: exit 0\n")
    [finding] = run_warning_findings(log)
    assert finding.startswith("nearly every conversion named a page view (pv_id) the export")


def test_the_page_views_trail_alert_comes_once_per_streak(tmp_path):
    log = tmp_path / "run.log"

    def runs(*trailing: bool | None) -> None:
        """A run that built, its page views trailing (True) or not; None: a run that did not
        build (a stale export), with a run the lock refused inside it."""
        with log.open("a") as file:
            for trails in trailing:
                file.write("2026-12-07T10:00:00Z run: start: project /p, database /d, export /e\n")
                if trails is None:
                    file.write(
                        "2026-12-07T10:00:01Z run: start: project /p, database /d, export /e\n"
                    )
                    file.write("2026-12-07T10:00:01Z run: done: exit 13\n")
                    file.write("2026-12-07T10:00:02Z run: done: exit 11\n")
                    continue
                file.write(f"2026-12-07T10:00:08Z run: {BUILD_OK}PASS=80\n")
                if trails:
                    file.write(
                        f"2026-12-07T10:00:09Z run: warning: x is 2.0 h {PAGE_VIEWS_TRAIL}\n"
                    )
                file.write("2026-12-07T10:00:10Z run: done: exit 0\n")

    runs(True, True)
    assert run_warning_findings(log) == []
    runs(True)
    assert len(run_warning_findings(log)) == 1
    runs(True)
    assert run_warning_findings(log) == []  # said at the third
    runs(False, True, True, True)  # a run that kept up ends the streak: a new one alerts
    assert len(run_warning_findings(log)) == 1
    # runs that did not build neither end the streak nor add to it
    runs(False, True, None, True, None)
    assert run_warning_findings(log) == []
    runs(True)
    assert len(run_warning_findings(log)) == 1
    # a run that kept up, whose alert (a lost one, carried) quotes the warning after it: an
    # alert line is no warning of that run's
    runs(False, False)
    with log.open("a") as file:
        file.write(f"2026-12-07T10:00:11Z run: alert: x {PAGE_VIEWS_TRAIL} (not delivered after)\n")
    runs(True, True)
    assert run_warning_findings(log) == []  # two runs in a row, not three


def test_rows_that_arrive_hours_old_are_no_quiet_spell(tmp_path):
    """Times written 9 hours early (UTC labelled +09:00, a wrong karte_export_utc_offset), or an
    export that delivers its rows hours late: every run found the newest row 9 h old while the
    files were written minutes ago, called it a quiet spell ("no new row since", untrue: rows
    came every hour) and sent the events as 9 h old, for ever. New rows that were already past
    the limit at the run before, which did not have them, are no quiet spell: the run stops.
    Each sync writes a new folder behind the `current` link the job names, as the docs'
    Datahub sync does."""
    current = tmp_path / "current"

    def sync(n: int, conversions: dict[str, float], newest: float) -> None:
        clock_export(tmp_path / f"sync-{n}", conversions, newest_hours=newest, written_hours=0.1)
        current.unlink(missing_ok=True)
        current.symlink_to(tmp_path / f"sync-{n}")

    def run(**values) -> subprocess.CompletedProcess:
        with mock_server() as srv:
            r = sender_run(tmp_path, srv.url, export=current, **values)
            run.accepted = dict(srv.accepted)
        return r

    late = (
        r"error: KARTE export table (conversions|page_views) is stale: its newest sync_date is"
        r" {age} h old \(the limit is 6 h\), though newer rows came since the last run's check"
        r" 0\.0 h ago, \d\.\d h old already then: the export delivers its rows over 6 h late, or"
        r" writes its times with a wrong offset \(UTC written as \+09:00"
    )
    sync(1, {"ORD-1": 10}, newest=10)
    r = run()
    assert r.returncode == ExitCode.OK, r.stderr
    assert run.accepted == {("Conversion", "ORD-1"): 1}
    assert "no new row since (a quiet spell on the site)" in r.stderr
    assert "export usable (" in r.stderr and "conversions 10.0 h old" in r.stderr
    # the next hour's conversion, 9 h old when it comes: the export's newest moves, still stale
    sync(2, {"ORD-1": 10, "ORD-2": 9}, newest=9)
    r = run()
    assert r.returncode == ExitCode.STALE_EXPORT, r.stderr
    assert run.accepted == {} and "dbt build ok" not in r.stderr
    assert re.search(late.format(age=r"9\.0"), one_error_line(r.stderr)), r.stderr
    # nothing new since the run that stopped: the rows go out, said for what they are
    r = run()
    assert r.returncode == ExitCode.OK, r.stderr
    assert "no new row since (a quiet spell on the site)" not in r.stderr
    assert (
        ": no new row since the last run, which stopped on rows that came hours late; they go"
        " out in this run, as old as their times say" in r.stderr
    )
    # each hour that brings rows hours old stops again
    sync(3, {"ORD-1": 10, "ORD-2": 9, "ORD-3": 8.5}, newest=8.5)
    r = run()
    assert r.returncode == ExitCode.STALE_EXPORT, r.stderr
    assert re.search(late.format(age=r"8\.5"), one_error_line(r.stderr)), r.stderr
    # a limit above the delay is the way out it names
    r = run(vars_="{karte_freshness_error_hours: 12}")
    assert r.returncode == ExitCode.OK, r.stderr
    assert run.accepted[("Conversion", "ORD-3")] == 1  # (a new server: a new destination)


def test_an_arrival_is_late_only_when_the_run_before_could_have_had_it():
    now = 1_800_000_000.0
    stale = Freshness("conversions", "error", age_hours=9.0, limit_hours=6)
    hour_ago = ExportCheck(now - HOUR, {"conversions": 10.0})
    assert arrived_late(stale, hour_ago, now) is not None
    # the same newest row as the hour before: a quiet spell
    assert arrived_late(stale, ExportCheck(now - HOUR, {"conversions": 8.0}), now) is None
    # runs six hours apart: a row 9 h old now was 3 h old at the last check, which may have
    # come minutes after it
    six_ago = ExportCheck(now - 6 * HOUR, {"conversions": 20.0})
    assert arrived_late(stale, six_ago, now) is None
    # the last check had no such table, or there is none
    assert arrived_late(stale, ExportCheck(now - HOUR, {}), now) is None
    assert arrived_late(stale, None, now) is None


def test_the_freshness_line_names_the_tables_by_name_whatever_order_dbt_found_them_in():
    """dbt lists the tables as its threads finish: one run's line would differ from the next's."""
    for ages in (
        {"page_views": 0.2, "conversions": 9.25},
        {"conversions": 9.25, "page_views": 0.2},
    ):
        line = export_checked_line("fresh", ages)
        assert line == "export fresh (conversions 9.2 h old, page_views 0.2 h old)"


def test_an_export_written_every_hour_without_a_new_row_for_days_is_stale(tmp_path):
    """A broken Datahub query (or a removed tag) while the export job still writes its files
    every hour: each run took 20 days without a new row for a quiet spell and exited 0."""
    export = clock_export(tmp_path / "export", {"ORD-1": 80}, newest_hours=80, written_hours=0.1)
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export)
        assert srv.accepted == {}
    assert r.returncode == ExitCode.STALE_EXPORT, r.stderr
    assert re.search(
        r"error: KARTE export table (conversions|page_views) is stale: its newest sync_date is"
        r" 80\.0 h old \(the limit is 6 h\), though its files were written 0\.1 h ago: the export"
        r" runs but has added no row in over 72 h \(its query or the site's tag broken\?\); a"
        r" site quiet for longer: raise karte_freshness_error_hours",
        r.stderr,
    ), r.stderr
    # the way out it names: a limit above the spell
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export, vars_="{karte_freshness_error_hours: 96}")
    assert r.returncode == ExitCode.OK, r.stderr


def test_an_export_hours_in_the_future_stops_the_run_before_anything_is_sent(tmp_path):
    # Japan time written without its offset reads as UTC: 9 hours ahead
    export = clock_export(tmp_path / "export", {"ORD-1": 0.1}, newest_hours=0, with_offset=False)
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export)
        assert srv.stats()["requests"] == 0
    assert r.returncode == ExitCode.STALE_EXPORT, r.stderr
    line = one_error_line(r.stderr)
    assert (
        "has sync_dates up to 9.0 h in the future: a time without an offset is read as UTC" in line
    )
    assert "set dbt var karte_export_utc_offset: '+09:00'" in line
    assert "dbt build ok" not in r.stderr
    # minutes ahead is a clock difference, not a time zone
    export = clock_export(tmp_path / "skewed", {"ORD-2": 1}, newest_hours=-0.2)
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export)
        assert srv.accepted == {("Conversion", "ORD-2"): 1}
    assert r.returncode == ExitCode.OK, r.stderr


def test_one_conversion_stamped_years_ahead_is_a_warning_not_a_stopped_job(tmp_path):
    # one typo (2096, with its offset) stopped every run until then, its line blaming offsets
    typo = {"ORD-1": 1, "ORD-TYPO": -70 * 365 * 24}
    export = clock_export(tmp_path / "export", typo, newest_hours=1)
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export)
        assert srv.accepted == {("Conversion", "ORD-1"): 1}, r.stderr
    assert r.returncode == ExitCode.OK, r.stderr
    (warning,) = [line for line in r.stderr.splitlines() if "15 h after the clock" in line]
    assert "warning: KARTE export table conversions has 1 sync_dates more than 15 h after the" in (
        warning
    )
    assert "(the first: 209" in warning and "in the future" not in r.stderr
    # 9 hours ahead is still the offset mistake it looks like: the run stops (above)


def test_japan_time_without_its_offset_is_sent_at_its_instant_with_var_karte_export_utc_offset(
    tmp_path,
):
    now = int(time.time())
    export = clock_export(
        tmp_path / "export", {"ORD-1": 2}, newest_hours=0.5, with_offset=False, now=now
    )
    sent: list[dict] = []
    with mock_server(on_record=lambda _rec, events: sent.extend(events)) as srv:
        r = sender_run(
            tmp_path, srv.url, export=export, vars_="{karte_export_utc_offset: '+09:00'}"
        )
        assert srv.accepted == {("Conversion", "ORD-1"): 1}
    assert r.returncode == ExitCode.OK, r.stderr
    # the conversion of two hours ago, not of nine hours from now minus two
    (event,) = sent
    assert event["event"]["event_timestamp"] == now - 2 * 3600


def test_a_plain_dbt_build_stops_on_conversions_hours_ahead_of_the_clock(tmp_path):
    """`dbt build && sender push` by hand has no freshness check: the build's own data test
    stops it, before the payload is built, so the push sends nothing 9 hours late."""
    now = int(time.time())
    export = clock_export(
        tmp_path / "export", {"ORD-1": 2}, newest_hours=0.5, with_offset=False, now=now
    )
    result = run_dbt(tmp_path, *HOURLY_BUILD, export_dir=export)
    assert result.returncode != 0
    # one line that says what to do, not a failed test's row count
    assert re.search(
        r"2 conversions are stamped more than an hour after the clock, up to 8\.[5-9] h \(the"
        r" first: 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\): times without an offset are read as UTC\."
        r" If the export writes Japan time without its offset, set dbt var"
        r" karte_export_utc_offset: '\+09:00'",
        result.output,
    ), result.output
    tables = {name for (name,) in result.rows("select table_name from duckdb_tables()")}
    assert "line_capi_payload" not in tables and "int_conversions_windowed" not in tables
    fixed = run_dbt(
        tmp_path, *HOURLY_BUILD, export_dir=export, vars={"karte_export_utc_offset": "+09:00"}
    )
    assert fixed.returncode == 0, fixed.output
    assert "PASS assert_no_conversion_times_hours_ahead" in fixed.output
    (event_timestamp,) = fixed.rows("select event_timestamp from line_capi_payload")[0]
    assert event_timestamp == now - 2 * 3600


def test_conversions_hours_off_their_own_page_views_stop_the_run(tmp_path):
    """Conversions in Japan time without their offset beside page views with it: conversions 9.5
    hours old or more read as past times, so no check of the clock sees them, but each is 9 hours
    (and the minutes a checkout takes) after the page view it fired on. Sent as read, each would
    go out 9 hours late."""
    now = time.time()
    ages = {"ORD-1": 9.5, "ORD-2": 10, "ORD-3": 12}
    checkout_minutes = [2, 12, 50]
    conversions, views, users = [], [], []
    for i, (key, age) in enumerate(ages.items()):
        at = now - age * HOUR
        conversions.append(
            {
                "event_name": "buy",
                "user_id": f"u{i}",
                "transaction_id": key,
                "sync_date": iso(at, with_offset=False),
                "pv_id": f"pv-{i}",
            }
        )
        viewed = at - checkout_minutes[i] * 60
        views.append(
            {
                "user_id": f"u{i}",
                "sync_date": iso(viewed),
                "pv_id": f"pv-{i}",
                "url": "https://a.jp/",
            }
        )
        users.append({"user_id": f"u{i}", "email": f"buyer{i}@example.jp"})
    views.append({"user_id": "u-last", "sync_date": iso(now - 360), "pv_id": "pv-last", "url": ""})
    export = write_export(
        tmp_path / "export", {"conversions": conversions, "page_views": views, "user_master": users}
    )
    r, line = build_stops(tmp_path, export)
    assert "3 of 3 conversions are stamped 9 h after the page view they fired on (pv_id)" in line
    assert "dbt var karte_export_utc_offset" in line
    sent: list[dict] = []
    with mock_server(on_record=lambda _rec, events: sent.extend(events)) as srv:
        r = sender_run(
            tmp_path, srv.url, export=export, vars_="{karte_export_utc_offset: '+09:00'}"
        )
    assert r.returncode == ExitCode.OK, r.stderr
    times = sorted(event["event"]["event_timestamp"] for event in sent)
    assert [round((now - t) / HOUR, 1) for t in times] == [12.0, 10.0, 9.5]


def test_conversions_hours_after_their_page_views_at_no_common_offset_are_sent(tmp_path):
    """A slow checkout, a tab left open: most conversions nearly an hour after their page views,
    some hours after at no common offset, is no time zone mistake."""
    now = time.time()
    lags = {"ORD-1": 55 / 60, "ORD-2": 58 / 60, "ORD-3": 59.5 / 60, "ORD-4": 3.2, "ORD-5": 9}
    conversions, views, users = [], [], []
    for i, (key, lag) in enumerate(lags.items()):
        at = now - 2 * HOUR
        conversions.append(
            {
                "event_name": "buy",
                "user_id": f"u{i}",
                "transaction_id": key,
                "sync_date": iso(at),
                "pv_id": f"pv-{i}",
            }
        )
        views.append(
            {"user_id": f"u{i}", "sync_date": iso(at - lag * HOUR), "pv_id": f"pv-{i}", "url": ""}
        )
        users.append({"user_id": f"u{i}", "email": f"buyer{i}@example.jp"})
    export = write_export(
        tmp_path / "export", {"conversions": conversions, "page_views": views, "user_master": users}
    )
    result = run_dbt(tmp_path, *HOURLY_BUILD, export_dir=export)
    assert result.returncode == 0, result.output
    assert "PASS assert_conversion_times_match_their_page_views" in result.output
    assert result.rows("select count(*) from line_capi_payload") == [(5,)]


def test_page_views_without_their_offset_stop_a_plain_build_naming_the_direction(tmp_path):
    """The other way round: page views in Japan time without the offset (read 9 hours late)
    beside conversions with it. No check of the clock looks at page views; the build stops on
    each conversion being 9 hours before the page view it fired on."""
    now = time.time()
    conversions, views, users = [], [], []
    for i, minutes in enumerate([1, 4, 20]):
        at = now - 2 * HOUR
        conversions.append(
            {
                "event_name": "buy",
                "user_id": f"u{i}",
                "transaction_id": f"ORD-{i}",
                "sync_date": iso(at),
                "pv_id": f"pv-{i}",
            }
        )
        viewed = iso(at - minutes * 60, with_offset=False)
        views.append({"user_id": f"u{i}", "sync_date": viewed, "pv_id": f"pv-{i}", "url": ""})
        users.append({"user_id": f"u{i}", "email": f"buyer{i}@example.jp"})
    export = write_export(
        tmp_path / "export", {"conversions": conversions, "page_views": views, "user_master": users}
    )
    result = run_dbt(tmp_path, *HOURLY_BUILD, export_dir=export)
    assert result.returncode != 0
    assert (
        "3 of 3 conversions are stamped 9 h before the page view they fired on (pv_id)"
        in result.output
    ), result.output
    tables = {name for (name,) in result.rows("select table_name from duckdb_tables()")}
    assert "line_capi_payload" not in tables


def test_a_missing_export_folder_is_one_line_not_a_failed_build(tmp_path):
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=tmp_path / "not-synced-yet")
    assert r.returncode == ExitCode.STALE_EXPORT, r.stderr
    assert one_error_line(r.stderr).endswith(
        f"error: KARTE export folder {tmp_path / 'not-synced-yet'} does not exist"
        f" (has the export sync run?); log: {tmp_path / 'line_capi_run.log'}"
    )
    # one of its files named instead: the setting is wrong, not the export late
    table = tmp_path / "conversions.csv"
    table.write_text("event_name\n")
    r = sender_run(tmp_path, "http://127.0.0.1:9", export=table)
    assert r.returncode == ExitCode.USAGE, r.stderr
    assert f"error: KARTE export folder {table} is a file: name the folder that holds" in (
        one_error_line(r.stderr)
    )
    # a ~ no shell expanded (systemd's EnvironmentFile): the setting is wrong, not the sync late
    r = sender_run(tmp_path, "http://127.0.0.1:9", export=tmp_path / "~" / "karte")
    assert r.returncode == ExitCode.USAGE, r.stderr
    assert one_error_line(r.stderr).endswith(
        "(has the export sync run?); a ~ in it is not expanded: give the full path; log:"
        f" {tmp_path / 'line_capi_run.log'}"
    )


def test_a_token_in_a_path_the_run_names_stays_out_of_its_output_and_log(tmp_path):
    """The token pasted into the export folder's setting: the run's lines quote that setting
    (here its error), on the console and in the run log; both get the mask, in any case."""
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=tmp_path / TOKEN.lower())
    assert r.returncode == ExitCode.STALE_EXPORT, r.stderr
    assert "does not exist" in one_error_line(r.stderr) and "********" in r.stderr
    log = (tmp_path / "line_capi_run.log").read_text()
    assert "********" in log
    assert TOKEN.lower() not in (r.stdout + r.stderr + log).lower()


def test_a_line_break_in_a_logged_setting_cannot_forge_a_run_log_line(tmp_path):
    """Each entry is one line of the log: `sender status` reads the last job's result from it."""
    log = RunLog(tmp_path / "run.log")
    log.write("run", "start: export /x\n2026-01-01T00:00:00Z run: done: exit 0\r")
    log.close()
    [line] = (tmp_path / "run.log").read_text().splitlines()
    assert line.endswith("run: start: export /x\\n2026-01-01T00:00:00Z run: done: exit 0\\r")


def test_a_line_that_arrives_after_the_run_log_closed_goes_to_the_console_only(tmp_path):
    # Ctrl-C: the run closes its log while dbt's last lines of stderr still come in; writing
    # them raised "I/O operation on closed file" in the thread that reads them, a traceback
    log = RunLog(tmp_path / "run.log")
    log.write("run", "start: sender run")
    log.close()
    console = io.StringIO()
    log.write("dbt", "Cancelling the build", echo=console)
    assert console.getvalue() == "Cancelling the build\n"
    assert (tmp_path / "run.log").read_text().count("\n") == 1


@pytest.mark.parametrize("log", ["named elsewhere", "the default, next to the database"])
def test_a_database_folder_this_user_cannot_write_is_one_line(tmp_path, log):
    # /sys refuses new files to every user, root included (Permission denied, or read-only)
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.2)
    env = {"LINE_CAPI_DUCKDB": "/sys/line_capi.duckdb"}
    options = ["--log-file", str(tmp_path / "run.log")] if log == "named elsewhere" else []
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, *options, export=export, env=env)
        assert srv.stats()["requests"] == 0
    # the default log goes into the same folder: not "run log ... cannot be written" (exit 2)
    assert r.returncode == ExitCode.DATABASE_ERROR, r.stderr
    line = one_error_line(r.stderr)
    made = "lock file /sys/line_capi.duckdb.lock" if options else "run log /sys/line_capi_run.log"
    assert f"cannot create the {made}: " in line
    assert "must be able to write the database's folder" in line
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr


def test_a_run_log_of_another_sites_database_is_refused_and_not_read(tmp_path):
    """Two sites' jobs given one LINE_CAPI_RUN_LOG: each would read the other's runs as its own
    (a failure taken for the other site's streak, so never alerted; `status` showing the other's
    job). The second site's run stops before it starts, without a line in that log, and its
    status does not read it."""
    shared = tmp_path / "shared_run.log"
    # site a's job stops at its freshness check (a stale export): a run all the same, logged
    export = clock_export(tmp_path / "export", {"ORD-1": 31}, newest_hours=30)
    site_a, site_b = tmp_path / "a", tmp_path / "b"
    site_a.mkdir(), site_b.mkdir()
    with mock_server() as srv:
        first = sender_run(site_a, srv.url, "--log-file", str(shared), export=export)
        assert first.returncode == ExitCode.STALE_EXPORT, first.stderr
        logged = shared.read_text()
        second = sender_run(site_b, srv.url, "--log-file", str(shared), export=export)
        assert srv.stats()["requests"] == 0
    assert second.returncode == ExitCode.USAGE, second.stderr
    assert one_error_line(second.stderr) == (
        f"error: run log {shared} holds the runs of database {site_a / 'line_capi.duckdb'}, not"
        f" of {site_b / 'line_capi.duckdb'}: give each site's job a run log of its own"
        " (LINE_CAPI_RUN_LOG, --log-file), or leave it unset: the default is beside each"
        " database (a database moved from there: move its log aside)"
    )
    assert shared.read_text() == logged
    status = run_cli(
        ["status", "--json", "--log-file", str(shared)],
        {"LINE_CAPI_DUCKDB": str(site_a / "line_capi.duckdb")},
    )
    assert json.loads(status.stdout)["last_job"]["exit_code"] == ExitCode.STALE_EXPORT
    assert "holds the runs of" not in status.stderr
    other = run_cli(
        ["status", "--json", "--log-file", str(shared)],
        {"LINE_CAPI_DUCKDB": str(site_b / "line_capi.duckdb")},
    )
    assert f"run log {shared} holds the runs of database" in other.stderr
    assert json.loads(other.stdout)["last_job"] is None


def test_a_log_is_its_own_databases_however_the_database_is_named(tmp_path, monkeypatch):
    """The start line names the database resolved; a relative or linked name of the same file is
    the same database, and the default log (beside its database, named after it) is never taken
    for another's, even after the site's folder moved."""
    from sender.run_history import other_database_message

    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "link").symlink_to(data)
    log = tmp_path / "named.log"
    log.write_text(
        f"2026-12-05T10:00:00Z run: start: project /p, database {data / 'site.duckdb'}, export /e\n"
    )
    monkeypatch.chdir(tmp_path)
    for same in (Path("data/site.duckdb"), tmp_path / "link" / "site.duckdb"):
        assert other_database_message(log, same) is None
    assert other_database_message(log, data / "other.duckdb") is not None
    moved = tmp_path / "moved"
    moved.mkdir()
    beside = moved / "site_run.log"
    beside.write_text(log.read_text())  # the default log, copied with its database
    assert other_database_message(beside, moved / "site.duckdb") is None


def test_a_log_to_dev_stdout_under_a_shells_redirect_loses_no_line(tmp_path):
    """`sender run --log-file /dev/stdout > out.txt`: opened again, /dev/stdout had an offset of
    its own, and the log's lines and the push's summary wrote over each other."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1, "ORD-2": 2}, newest_hours=0.2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINE_")}
    env |= dbt_forkserver.sender_env() | {"PYTHONPATH": str(ROOT)}
    out = tmp_path / "out.txt"
    with mock_server() as srv, out.open("w") as stdout:
        env |= {
            "LINE_CAPI_DUCKDB": str(tmp_path / "line_capi.duckdb"),
            "LINE_TAG_ID": TAG_ID,
            "LINE_ACCESS_TOKEN": TOKEN,
            "LINE_CAPI_ENDPOINT": srv.url,
            "KARTE_EXPORT_DIR": str(export),
        }
        command = [sys.executable, "-m", "sender", "run", "--log-file", "/dev/stdout"]
        done = subprocess.run(
            [*command, "--", *dbt_args(tmp_path)],
            env=env,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    assert done.returncode == ExitCode.OK, done.stderr
    lines = out.read_text().splitlines()
    assert re.fullmatch(r"\S+Z run: start: project .*", lines[0]), lines[:2]
    assert re.fullmatch(r"\S+Z run: done: exit 0", lines[-1]), lines[-3:]
    assert any("accepted 2" in line for line in lines), lines
    assert not (tmp_path / "line_capi_run.log").exists()


def test_a_database_in_a_folder_that_does_not_exist_is_refused_not_made(tmp_path):
    """LINE_CAPI_DUCKDB=date/line_capi.duckdb (a typo), or ~/lc/x.duckdb from a systemd
    EnvironmentFile, which expands no ~: the run made the folder for its log and lock, and built a
    second, empty ledger that re-sent the window, with exit 0 and nothing a cron mail shows."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.2)
    for name in ("date/line_capi.duckdb", "~/lc/x.duckdb"):
        database = tmp_path / name
        with mock_server() as srv:
            r = sender_run(
                tmp_path, srv.url, export=export, env={"LINE_CAPI_DUCKDB": str(database)}
            )
            assert srv.stats()["requests"] == 0
        assert r.returncode == ExitCode.USAGE, r.stderr
        assert r.stderr == (
            f"error: the folder of the database {database} does not exist: create it, or fix"
            " LINE_CAPI_DUCKDB (or --database)\n"
        )
        assert not database.parent.exists()
    # stopped by another setting first, it leaves no log there either
    with mock_server() as srv:
        env = {"LINE_CAPI_DUCKDB": str(tmp_path / "date" / "x.duckdb"), "LINE_TAG_ID": ""}
        r = sender_run(tmp_path, srv.url, export=export, env=env)
    assert r.returncode == ExitCode.USAGE and "LINE_TAG_ID" in r.stderr
    assert not (tmp_path / "date").exists()


def test_settings_with_a_windows_line_ending_or_left_empty_name_what_they_would_unset(tmp_path):
    """`. ./.env` of a file saved with CRLF leaves "\r" at the end of each value, and
    `LINE_CAPI_RUN_LOG=` is set but empty: neither names another file or folder."""
    log = tmp_path / "run.log"
    env = {"LINE_CAPI_RUN_LOG": f"{log}\r", "LINE_CAPI_PROJECT_DIR": f"{ROOT}\r"}
    with mock_server() as srv:  # a missing export stops the run before dbt: quick
        r = sender_run(tmp_path, srv.url, export=tmp_path / "nowhere", env=env)
    assert r.returncode == ExitCode.STALE_EXPORT, r.stderr
    assert f"start: project {ROOT}, database" in r.stderr
    assert "does not exist (has the export sync run?)" in log.read_text()
    assert sorted(p.name for p in tmp_path.iterdir() if "\r" in p.name) == []

    for empty in (
        {"LINE_CAPI_RUN_LOG": ""},
        {"LINE_CAPI_RUN_LOG": " ", "LINE_CAPI_PROJECT_DIR": ""},
    ):
        with mock_server() as srv:
            r = sender_run(tmp_path, srv.url, export=tmp_path / "nowhere", env=empty)
        assert r.returncode == ExitCode.STALE_EXPORT, r.stderr
        assert "Is a directory" not in r.stderr
        assert "does not exist" in (tmp_path / "line_capi_run.log").read_text().splitlines()[-2]


def test_a_file_the_run_may_not_use_is_one_line_not_a_crash(tmp_path):
    # a dbt without its execute bit is refused to every user, root included
    dbt = tmp_path / "dbt"
    dbt.write_text("#!/bin/sh\n")
    dbt.chmod(0o644)
    config = RunConfig(
        project_dir=ROOT,
        database=tmp_path / "line_capi.duckdb",
        export_dir=None,
        log_file=tmp_path / "run.log",
        dbt=str(dbt),
    )
    out, err = io.StringIO(), io.StringIO()
    assert ScheduledRun(config, out=out, err=err).run() == ExitCode.USAGE
    (line,) = [x for x in err.getvalue().splitlines() if "error:" in x]
    assert line.endswith(
        f"error: permission denied: {dbt}: this run's user ({current_user()}) may not use it;"
        " run the job as the user that owns the project (its data, target and logs folders), or"
        " give them to it (chown -R)"
    )


def test_an_export_past_its_warning_age_is_sent_with_a_warning_not_called_fresh(tmp_path):
    export = clock_export(tmp_path / "export", {"ORD-1": 4.5}, newest_hours=4)
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export)
        assert srv.accepted == {("Conversion", "ORD-1"): 1}
    assert r.returncode == ExitCode.OK, r.stderr
    assert "is stale: its newest sync_date is 4.0 h old (the limit is 3 h)" in r.stderr
    assert "export usable (" in r.stderr and "export fresh" not in r.stderr
    assert "conversions 4.0 h old" in r.stderr  # the tables in the order dbt's threads finish


def test_the_last_job_is_read_from_the_end_of_the_run_log(tmp_path):
    log = tmp_path / "line_capi_run.log"
    log.write_text(
        "2026-12-01T09:40:00Z run: start: project /p, database /d, export /e\n"
        "2026-12-01T09:40:09Z dbt: Done. PASS=66\n"
        "2026-12-01T09:40:12Z run: done: exit 0\n"
        "2026-12-01T10:40:00Z run: start: project /p, database /d, export /e\n"
        "2026-12-01T10:40:05Z run: error: dbt build failed: boom; log: /d/line_capi_run.log\n"
        "2026-12-01T10:40:05Z run: done: exit 12\n"
    )
    assert last_run(log).as_dict() == {
        "started_at": "2026-12-01T10:40:00Z",
        "finished_at": "2026-12-01T10:40:05Z",
        "exit_code": 12,
        "outcome": "BUILD_FAILED",
        "message": "dbt build failed: boom",
        "last_ok_at": "2026-12-01T09:40:12Z",
        "runs_since_ok": 1,
        "heartbeat": None,
        "alert": None,
        "warnings": [],
    }
    with log.open("a") as file:  # killed: a start and nothing after it
        file.write("2026-12-01T11:40:00Z run: start: project /p, database /d, export /e\n")
    assert last_run(log).describe() == (
        "started 2026-12-01T11:40:00Z, never finished (killed, crashed or still running)"
    )
    assert last_run(tmp_path / "none.log") is None
    # the next run ends: the killed one is not taken for a run still going
    with log.open("a") as file:
        file.write(
            "2026-12-01T12:40:00Z run: start: project /p, database /d, export /e\n"
            "2026-12-01T12:40:12Z run: done: exit 0\n"
        )
    assert last_run(log).describe() == "started 2026-12-01T12:40:00Z, exit 0 OK"
    # a run started while that one runs is refused by the lock: its lines fall inside the other's
    with log.open("a") as file:
        file.write(
            "2026-12-01T13:40:00Z run: start: project /p, database /d, export /e\n"
            "2026-12-01T13:40:03Z run: start: project /p, database /d, export /e\n"
            "2026-12-01T13:40:03Z run: error: another sender run (pid 7) holds /d.lock\n"
            "2026-12-01T13:40:03Z run: done: exit 13\n"
        )
    assert last_run(log).describe() == (
        "started 2026-12-01T13:40:00Z, never finished (killed, crashed or still running)"
    )
    # a run its settings stopped (a token file that cannot be read) before it took the lock
    with log.open("a") as file:
        file.write(
            "2026-12-01T13:40:05Z run: start: stopped by its settings, before the lock and the"
            " build\n"
            "2026-12-01T13:40:05Z run: error: LINE_ACCESS_TOKEN_FILE /t cannot be read\n"
            "2026-12-01T13:40:05Z run: done: exit 2\n"
        )
    assert last_run(log).exit_code is None  # the run that holds the lock is still going
    with log.open("a") as file:  # its heartbeat's line follows its end, after its alerts'
        file.write("2026-12-01T13:40:20Z run: done: exit 0\n")
        file.write("2026-12-01T13:40:20Z run: alert: the problem above has ended\n")
        file.write("2026-12-01T13:40:21Z run: heartbeat sent\n")
    assert last_run(log).as_dict() == {
        "started_at": "2026-12-01T13:40:00Z",
        "finished_at": "2026-12-01T13:40:20Z",
        "exit_code": 0,
        "outcome": "OK",
        "message": None,
        "last_ok_at": "2026-12-01T13:40:20Z",
        "runs_since_ok": 0,
        "heartbeat": "sent",
        "alert": None,
        "warnings": [],
    }
    # a push that failed: its own error line is the run's (status showed no message for 1, 3, 4)
    with log.open("a") as file:
        file.write(
            "2026-12-01T14:40:00Z run: start: project /p, database /d, export /e\n"
            "2026-12-01T14:40:09Z sender: error: LINE answered 401 for LINE Tag t: check it\n"
            "2026-12-01T14:40:09Z sender: error: later line\n"
            "2026-12-01T14:40:09Z run: done: exit 3\n"
        )
    assert last_run(log).describe() == (
        "started 2026-12-01T14:40:00Z, exit 3 AUTHENTICATION: LINE answered 401 for LINE Tag t:"
        " check it"
    )
    # a run that exited 0 with warnings: its exit code says none of them, `sender status` does
    with log.open("a") as file:
        file.write(
            "2026-12-01T15:40:00Z run: start: project /p, database /d, export /e\n"
            "2026-12-01T15:40:04Z run: warning: page views trail\n"
            "2026-12-01T15:40:05Z sender: warning: 3 events left pending after 6 attempts\n"
            "2026-12-01T15:40:09Z run: warning: dbt built without the plugin\n"
            "2026-12-01T15:40:09Z run: done: exit 0\n"
            "2026-12-01T15:40:10Z run: warning: heartbeat not delivered: HTTP 500\n"
        )
    job = last_run(log)
    assert job.warnings == ("page views trail", "dbt built without the plugin")
    assert job_lines(job) == [
        "last job  sender run started 2026-12-01T15:40:00Z, exit 0 OK",
        "          heartbeat not delivered: HTTP 500",
        "          warning: page views trail (and 1 more in the run log)",
    ]


def test_a_quiet_window_without_conversions_is_not_a_stale_export(tmp_path):
    """A small site with no conversion in the export's window exports conversions as a header
    only: with page views fresh, the run goes on (and sends nothing) with a warning."""
    export = clock_export(tmp_path / "export", {}, newest_hours=0.2)
    conversions = export / "conversions.csv"
    conversions.write_text(conversions.read_text().splitlines()[0] + "\n")
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export)
        assert srv.stats()["requests"] == 0
    assert r.returncode == ExitCode.OK, r.stderr
    assert (
        "warning: KARTE export table conversions has no row with a readable sync_date: no"
        " conversion in the export (a quiet window)" in r.stderr
    )
    assert "export usable (page_views 0.2 h old)" in r.stderr
    # the bundled Datahub queries export the page views of converters only: none either
    page_views = export / "page_views.csv"
    header = page_views.read_text().splitlines()[0] + "\n"
    page_views.write_text(header)
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export)
    assert r.returncode == ExitCode.OK, r.stderr
    assert "with a readable sync_date (page_views has none either): no conversion" in r.stderr
    # page views that stopped hours ago: a stale export, however empty the conversions
    stale = clock_export(tmp_path / "stale", {}, newest_hours=30)
    (stale / "conversions.csv").write_text(conversions.read_text())  # the header only
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=stale)
    assert r.returncode == ExitCode.STALE_EXPORT, r.stderr
    assert "KARTE export table page_views is stale" in one_error_line(r.stderr)


def test_an_export_whose_times_no_longer_parse_is_stale_not_quiet(tmp_path):
    """Rows whose sync_date all fail to parse (the export's format changed) are not an empty
    window: every conversion would be rejected as invalid_sync_date, with exit 0."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.2)
    for table in ("conversions", "page_views"):
        path = export / f"{table}.csv"
        lines = path.read_text().splitlines()
        column = lines[0].split(",").index("sync_date")
        rows = [line.split(",") for line in lines[1:]]
        for row in rows:
            row[column] = "20261202 0740"
        path.write_text("\n".join([lines[0], *(",".join(row) for row in rows)]) + "\n")
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export)
        assert srv.stats()["requests"] == 0
    assert r.returncode == ExitCode.STALE_EXPORT, r.stderr
    assert "has rows but no readable sync_date: its format changed?" in one_error_line(r.stderr)


def test_a_profile_that_builds_another_database_stops_the_run(tmp_path):
    """A profile with a path of its own: dbt builds there, and the push would send the old
    build of the database it reads, with exit 0, hour after hour."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.2)
    database = tmp_path / "line_capi.duckdb"
    args = dbt_args(tmp_path)
    profile = tmp_path / "profiles" / "profiles.yml"
    own_path = "{{ env_var('LINE_CAPI_DUCKDB', '') or 'data/line_capi.duckdb' }}"
    assert own_path in profile.read_text()
    profile.write_text(profile.read_text().replace(own_path, str(tmp_path / "other.duckdb")))
    env = {
        "LINE_CAPI_DUCKDB": str(database),
        "LINE_TAG_ID": TAG_ID,
        "LINE_ACCESS_TOKEN": TOKEN,
        "KARTE_EXPORT_DIR": str(export),
    }
    with mock_server() as srv:
        env["LINE_CAPI_ENDPOINT"] = srv.url
        r = run_cli(["run", "--", *args], env, timeout=300)
        assert srv.stats()["requests"] == 0
    assert r.returncode == ExitCode.BUILD_FAILED, r.stderr
    assert (
        f"error: dbt build wrote another database than {database}: its line_capi_build_info is"
        " not this build's. The profile's path must be env_var('LINE_CAPI_DUCKDB')"
        " (profiles.example.yml), and the build must not leave out line_capi_build_info"
        " (--select, --exclude); nothing was sent; log: "
    ) in one_error_line(r.stderr)


def test_a_selection_after_the_double_dash_is_named_as_the_cause(tmp_path):
    """`sender run -- --select line_capi_payload` leaves line_capi_build_info as the last full
    build wrote it: the error says the selection, not a profile that builds elsewhere."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.2)
    with mock_server() as srv:
        assert sender_run(tmp_path, srv.url, export=export).returncode == ExitCode.OK
        r = run_cli(
            ["run", "--", *dbt_args(tmp_path), "--select", "line_capi_payload"],
            {
                "LINE_CAPI_DUCKDB": str(tmp_path / "line_capi.duckdb"),
                "LINE_TAG_ID": TAG_ID,
                "LINE_ACCESS_TOKEN": TOKEN,
                "LINE_CAPI_ENDPOINT": srv.url,
                "KARTE_EXPORT_DIR": str(export),
            },
            timeout=300,
        )
        assert srv.stats()["requests"] == 1  # the first run's
    assert r.returncode == ExitCode.USAGE, r.stderr
    assert (
        "error: dbt build with --select (after `sender run --`) left out line_capi_build_info,"
        " so the push would send an older build: sender run builds the whole project; run a"
        " partial build with `dbt build --select …` by hand; nothing was sent"
    ) in one_error_line(r.stderr)


def test_a_database_built_elsewhere_is_told_from_one_that_cannot_be_read_now(tmp_path):
    db = tmp_path / "line_capi.duckdb"
    assert built_elsewhere(db, "run-1")  # no file: dbt wrote another
    with duckdb.connect(str(db)) as con:
        con.execute(
            "create table line_capi_build_info as select 'run-1' as invocation_id,"
            " 'x' as export_location, false as is_sample, now() as built_at,"
            " 0 as payload_rows, 0 as payload_event_timestamp_sum"
        )
    assert not built_elsewhere(db, "run-1")
    assert built_elsewhere(db, "run-2")  # an older build: this one went elsewhere
    with database_held(db):  # another process has it now: not judged, the push says why
        assert not built_elsewhere(db, "run-2")


def test_a_failure_streak_is_read_whole_however_long_the_log(tmp_path):
    """The alerts' reminder counts the runs in a row that failed alike: with about 14 KB per
    hour, a day's streak is far more than one read from the end of the log."""
    log = tmp_path / "line_capi_run.log"
    noise = "".join(
        f"2026-12-01T00:40:01Z dbt: {i:05d} OK created sql table model x\n" for i in range(300)
    )
    codes = [0, 12, *[3] * 40]
    with log.open("w") as file:
        for hour, code in enumerate(codes):
            file.write(f"2026-12-01T00:40:00Z run: start: hour {hour}\n{noise}")
            file.write(f"2026-12-01T00:40:09Z run: done: exit {code}\n")
    assert log.stat().st_size > 2 * 256 * 1024
    assert exit_codes(log) == [12, *[3] * 40]
    with log.open("a") as file:  # a run killed before its last line leaves the streak as it was
        file.write("2026-12-01T00:40:00Z run: start: killed\n" + noise[:5000])
    assert exit_codes(log) == [12, *[3] * 40]
    assert exit_codes(tmp_path / "none.log") == []
    # the run that ends the streak: what it follows, counted whole (its "resolved" alert)
    with log.open("a") as file:
        file.write(
            "2026-12-01T00:40:00Z run: start: back\n2026-12-01T00:40:09Z run: done: exit 0\n"
        )
    assert streak_before_last(log) == (3, 40)
    assert streak_before_last(tmp_path / "none.log") is None


def test_the_run_log_keeps_itself_small_and_a_streak_is_read_across_its_parts(tmp_path):
    """No Docker volume, Kubernetes claim or CI cache has a logrotate: a run that finds its log
    past ROTATE_BYTES moves it aside, keeping one previous part."""
    log = tmp_path / "line_capi_run.log"
    line = "2026-12-01T00:40:01Z dbt: " + "x" * 200 + "\n"
    with log.open("w") as file:
        file.write(
            "2026-12-01T00:40:00Z run: start: hour 0\n2026-12-01T00:40:09Z run: done: exit 0\n"
        )
        file.write(line * (ROTATE_BYTES // len(line)))
        for hour in (1, 2, 3):  # a streak that began before the rotation
            file.write(f"2026-12-01T0{hour}:40:00Z run: start: hour {hour}\n")
            file.write(f"2026-12-01T0{hour}:40:09Z run: done: exit 11\n")
    log.chmod(0o600)
    before = log.read_bytes()
    for size_then in ("large", "small"):
        run_log = RunLog(log)
        run_log.write("run", "start: hour 4")
        run_log.write("run", "done: exit 11")
        run_log.close()
        if size_then == "large":  # moved aside whole, with its mode; the new log holds one run
            assert (tmp_path / "line_capi_run.log.1").read_bytes() == before
            assert stat.S_IMODE((tmp_path / "line_capi_run.log.1").stat().st_mode) == 0o600
            assert log.stat().st_size < 200
    # the second run found the log small: no second rotation
    assert (tmp_path / "line_capi_run.log.1").read_bytes() == before
    assert exit_codes(log) == [0, 11, 11, 11, 11, 11]
    assert last_run(log).exit_code == 11


def test_a_database_path_that_is_not_utf8_is_one_line_not_a_crash(tmp_path):
    """A folder named in another encoding (Shift_JIS from a Windows share) made the run's first
    log line fail: exit 70, an internal error, and no `done` line."""
    folder = os.fsencode(tmp_path) + b"/\x83f\x81[\x83^"  # "データ" in Shift_JIS
    os.mkdir(folder)
    database = os.fsdecode(folder + b"/site.duckdb")
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.2)
    env = {"LINE_CAPI_DUCKDB": database}
    r = sender_run(tmp_path, "http://127.0.0.1:9", export=export, env=env)
    assert r.returncode == ExitCode.USAGE, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        "error: a path or setting holds bytes that are not UTF-8 (a file name in another"
        " encoding?): give it in UTF-8"
    ), r.stderr
    assert "Traceback" not in r.stderr


def test_a_run_that_creates_its_database_says_so_once(tmp_path):
    # a job started in another folder (cron's home) with the relative default built a second
    # database there, and its empty ledger sent the window again, without a word
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.2)
    notes = []
    with mock_server() as srv:
        for _ in range(2):
            r = sender_run(tmp_path, srv.url, export=export)
            assert r.returncode == 0, r.stderr
            notes.append([x for x in r.stderr.splitlines() if "note: database" in x])
    assert len(notes[0]) == 1 and notes[1] == []
    assert (
        f"note: database {tmp_path / 'line_capi.duckdb'} is new: its ledger is empty"
        in (notes[0][0])
    )


def test_a_token_file_named_from_the_jobs_folder_is_read_by_its_push(tmp_path):
    """A relative LINE_ACCESS_TOKEN_FILE passed the run's own check, in the folder the job
    started in, and the push, which runs in the project folder, could not read it: exit 2 after
    a whole build, every hour."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.2)
    home = tmp_path / "home"
    home.mkdir()
    (home / "access-token").write_text(TOKEN + "\n")
    (home / "access-token").chmod(0o600)
    env = {"LINE_ACCESS_TOKEN": "", "LINE_ACCESS_TOKEN_FILE": "access-token"}
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export, env=env, cwd=home)
        assert r.returncode == 0, r.stderr
        assert "pending 1, sent 1, accepted 1" in r.stdout
        assert srv.stats()["accepted_events"] == 1


def test_a_run_whose_database_is_gone_but_its_run_log_remains_stops(tmp_path):
    """`make clean` removed data/*.duckdb: the next run built a new database, sent the window
    again and started the ledger and coverage history afresh, with exit 0 and only a note. It
    stops now and names both ways on; the demo's sample database may go."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.2)
    db = tmp_path / "line_capi.duckdb"
    log = tmp_path / "line_capi_run.log"
    with mock_server() as srv:
        assert sender_run(tmp_path, srv.url, export=export).returncode == 0
        db.unlink()
        Path(f"{db}.wal").unlink(missing_ok=True)
        r = sender_run(tmp_path, srv.url, export=export)
        assert r.returncode == ExitCode.DATABASE_ERROR, r.stderr
        error = [x for x in r.stderr.splitlines() if " error: " in x]
        assert (
            len(error) == 1
            and (
                f"database {db} is missing, but its run log {log} records events sent from it"
                " until 20"
            )
            in error[0]
        ), r.stderr
        assert f"move the run log aside: mv {log} {log}.old; nothing was built or sent" in error[0]
        assert srv.stats()["requests"] == 1 and not db.exists()
        # the second way on: a new ledger, which sends the window again
        log.rename(f"{log}.old")
        r = sender_run(tmp_path, srv.url, export=export)
        assert r.returncode == 0, r.stderr
        assert "is new: its ledger is empty" in r.stderr
        assert srv.stats()["requests"] == 2
    # the sample's database (make demo's) holds nothing of a real job: it may be removed
    demo = tmp_path / "demo"
    demo.mkdir()
    with mock_server() as srv:
        env = {"LINE_CAPI_DUCKDB": str(demo / "demo.duckdb"), "LINE_CHANNEL_ID": "1234567890"}
        for _ in range(2):
            r = sender_run(demo, srv.url, export=SAMPLE_DIR, env=env)
            assert r.returncode == 0, r.stderr
            (demo / "demo.duckdb").unlink()
        # a real export next, into the demo's database path, whose log holds the sample's runs
        r = sender_run(demo, srv.url, export=export, env=env)
        assert r.returncode == 0, r.stderr
    # a run whose push LINE accepted nothing of (out of reach) left no ledger to lose either
    down = tmp_path / "down"
    down.mkdir()
    env = {"LINE_CAPI_MAX_RETRIES": "0"}
    r = sender_run(down, "http://127.0.0.1:9", export=export, env=env)
    assert r.returncode == ExitCode.PENDING_LEFT, r.stderr
    (down / "line_capi.duckdb").unlink()
    with mock_server() as srv:
        r = sender_run(down, srv.url, export=export, env=env)
        assert r.returncode == 0, r.stderr


def test_the_last_send_is_found_past_a_thousand_events_quiet_runs_and_the_rotation(tmp_path):
    """The check above read `accepted 1391` where the summary says `accepted 1,391`, and only the
    log's last 256 KB: a site sending 1,000 events a run, or one quiet for a night, lost its
    ledger with exit 0 and sent its window again."""
    db, export = tmp_path / "site.duckdb", tmp_path / "export"
    log = tmp_path / "site_run.log"

    def run(hour: int, accepted: str, *, database: Path = db) -> str:
        at = f"2026-12-0{1 + hour // 24}T{hour % 24:02}:00:0"
        return (
            f"{at}0Z run: start: project {tmp_path}, database {database}, export {export}\n"
            + f"{at}1Z dbt: {'x' * 200}\n" * 100  # dbt's lines: about 20 KB a run
            + f"{at}2Z sender: pending {accepted}, sent {accepted}, accepted {accepted},"
            " rejected 0, expired 0, left pending 0, retried 0, 2 requests in 0.4s\n"
            f"{at}3Z run: done: exit 0\n"
        )

    def last_send() -> str | None:
        return last_send_of(log, db, sample=lambda _: False)

    log.write_text(run(0, "1,391"))
    assert last_send() == "2026-12-01T00:00:02Z"
    # a night of quiet runs after it, over 256 KB, then another site's runs in the same log
    other = tmp_path / "other.duckdb"
    quiet = "".join(run(h, "0") for h in range(1, 20)) + run(20, "5", database=other)
    log.write_text(run(0, "1,391") + quiet)
    assert log.stat().st_size > 256 * 1024 and last_send() == "2026-12-01T00:00:02Z"
    # the run that sent is in the rotated part; the current one holds only quiet runs
    rotated(log).write_text(run(0, "1,391"))
    log.write_text(quiet)
    assert last_send() == "2026-12-01T00:00:02Z"
    # none of this database's runs accepted an event: nothing to keep
    rotated(log).write_text(run(0, "0"))
    assert last_send() is None


def test_a_build_without_the_profiles_plugin_is_said(tmp_path):
    """An upgrade that kept its profiles.yml (make setup never overwrites it) ran without the
    plugin: dbt's files readable by others, no build memory limit, and not a word."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.2)
    old = tmp_path / "old_profile"
    old.mkdir()
    text = (ROOT / "profiles.example.yml").read_text()
    without = re.sub(r"\n\s*plugins:\n\s*- module: sender\.dbt_private_files", "", text)
    assert "dbt_private_files" not in without
    (old / "profiles.yml").write_text(without)
    said = "warning: dbt built without the profile's plugin sender.dbt_private_files"
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export)
        assert r.returncode == 0 and said not in r.stderr, r.stderr
        r = sender_run(tmp_path, srv.url, export=export, dbt=("--profiles-dir", str(old)))
        assert r.returncode == 0, r.stderr
        # at exit 0 a warning reaches no one (a systemd timer, a container): alerted, once
        again = sender_run(tmp_path, srv.url, export=export, dbt=("--profiles-dir", str(old)))
        assert again.returncode == 0 and said in again.stderr, again.stderr
    assert said in r.stderr and '(docs/operations.md, "Upgrading")' in r.stderr
    assert not (tmp_path / "target" / ".line_capi_plugin_seen").exists()
    alert = "run: alert: dbt built without the profile's plugin sender.dbt_private_files: what"
    assert alert in r.stderr
    assert alert not in again.stderr


def test_a_fresh_export_without_conversions_in_the_window_is_normal(tmp_path):
    export = clock_export(tmp_path / "export", {"ORD-OLD": 40}, newest_hours=0.2)
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export)
        assert srv.stats()["requests"] == 0
    assert r.returncode == ExitCode.OK, r.stderr
    assert "export fresh" in r.stderr and "pending 0, sent 0" in r.stdout
    # normal, but worth a line: a configured conversion type whose window is empty
    assert (
        "warning: dbt test assert_each_configured_event_has_conversions warned (buy sent as"
        " Conversion): a configured conversion type had no conversion in this build's window"
        in r.stderr
    )


def test_a_first_run_whose_conversions_are_nearly_all_rejected_says_so_at_once(tmp_path):
    """Order ids written as floats (pandas): every conversion rejected, nothing sent, exit 0.
    The alert comes after three builds; the first run's warning says it now, with the reason."""
    keys = {f"20260000{i}.0": 1 + i / 10 for i in range(9)} | {"ORD-OK": 1}
    export = clock_export(tmp_path / "export", keys, newest_hours=0.2)
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export)
        assert srv.accepted_keys() == {"ORD-OK"}
    assert r.returncode == ExitCode.OK, r.stderr
    assert (
        "warning: dbt test assert_each_configured_event_is_mostly_sendable warned (Conversion: 9"
        " of 10 rejected, most as invalid_deduplication_key): nearly every conversion of a"
        " configured type was rejected in this build's window" in r.stderr
    ), r.stderr
    # eight of ten rejected is not "nearly every": no warning
    keys = {f"20260000{i}.0": 1 + i / 10 for i in range(8)} | {"ORD-A": 1, "ORD-B": 1}
    export = clock_export(tmp_path / "export2", keys, newest_hours=0.2)
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export)
    assert r.returncode == ExitCode.OK, r.stderr
    assert "mostly_sendable" not in r.stderr


def test_a_csv_that_mixes_line_endings_is_one_line_that_says_so(tmp_path):
    # a row added with `echo >>` to a copy of the sample, whose files end their rows in CRLF:
    # DuckDB's sniffer finds no dialect, and the general hint named none of the real cause
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.2)
    path = export / "conversions.csv"
    assert path.read_bytes().endswith(b"\r\n")  # written as Python's csv writes: CRLF
    with path.open("ab") as file:
        file.write(b"buy,u9,ORD-9,2026-01-01T00:00:00+09:00,,,s9,pv-9\n")
    _, line = build_stops(tmp_path, export)
    assert 'Error when sniffing file "' in line and "conversions.csv" in line
    assert "the file mixes line endings: some rows end in CRLF, others in LF" in line
    assert "a malformed CSV" not in line


def test_a_malformed_csv_is_one_line_that_says_what_is_wrong(tmp_path):
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.2)
    with (export / "conversions.csv").open("a") as file:
        # ended as the file's other rows are (CRLF): malformed, not a mix of line endings
        file.write('buy,u9,ORD-9,2026-01-01T00:00:00+09:00,,,s9,pv-9,extra,"unclosed\r\n')
    r, line = build_stops(tmp_path, export)
    assert 'Error when sniffing file "' in line and "conversions.csv" in line
    assert "a malformed CSV: not separated by commas, a row with more or fewer fields" in line
    assert "Traceback" not in r.stderr
    # a bad row past the rows DuckDB samples: its error names the line; the file is added
    export = clock_export(tmp_path / "long", {"ORD-1": 1}, newest_hours=0.2)
    with (export / "page_views.csv").open("a") as file:
        file.writelines(
            f"u{i},2026-01-01T00:00:00+09:00,,pv-x{i},https://x.jp/,,,,,\n" for i in range(21000)
        )
        row = 'u9,2026-01-01T00:00:00+09:00,,pv-9,https://x.jp/?m=taro@example.jp,,,,,,x,"u'
        file.write(row + "\n")
    with mock_server() as srv:
        r = sender_run(tmp_path / "long", srv.url, export=export)
    assert r.returncode == ExitCode.BUILD_FAILED, r.stderr
    line = one_error_line(r.stderr)
    assert f"CSV Error on Line: 21004 of {export / 'page_views.csv'} (a malformed CSV" in line
    # DuckDB quotes the row whole; the run log (a container's log, with /dev/stdout) keeps the
    # rest of its message, never the row, which may be a customer's
    log = (tmp_path / "long" / "line_capi_run.log").read_text()
    assert f"Original Line: (not shown: {len(row)} characters of the export" in log
    assert "taro@example.jp" not in log and "taro@example.jp" not in r.stderr + r.stdout
    assert "Expected Number of Columns" in log
    # a gzipped CSV saved as Shift_JIS: DuckDB finds it only as it reads; the line says so
    export = clock_export(tmp_path / "sjis", {"ORD-1": 1}, newest_hours=0.2)
    users = export / "user_master.csv"
    header = users.read_text().split("\n", 1)[0].split(",")
    row = [
        "山田@example.jp" if name == "email" else "u9" if name == "user_id" else ""
        for name in header
    ]
    text = users.read_text() + ",".join(row) + "\n"
    users.unlink()
    (export / "user_master.csv.gz").write_bytes(gzip.compress(text.encode("cp932")))
    with mock_server() as srv:
        r = sender_run(tmp_path / "sjis", srv.url, export=export)
    assert r.returncode == ExitCode.BUILD_FAILED, r.stderr
    line = one_error_line(r.stderr)
    assert "user_master.csv.gz (the file is not UTF-8: a spreadsheet may have saved it as" in line
    assert "a malformed CSV" not in line


@pytest.mark.parametrize("damage", ["cut short", "not gzip"])
def test_a_gz_file_duckdb_cannot_decompress_says_how_it_came_to_be(tmp_path, damage):
    """A sync that stopped half-way through a copy, or a file named .gz that is plain text: the
    line names the file and what to do about it, not only DuckDB's IO error."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.2)
    plain = export / "page_views.csv"
    packed = gzip.compress(plain.read_bytes())
    (export / "page_views.csv.gz").write_bytes(
        packed[: len(packed) // 2] if damage == "cut short" else plain.read_bytes()
    )
    plain.unlink()
    _, line = build_stops(tmp_path, export)
    assert str(export / "page_views.csv.gz") in line
    if damage == "cut short":
        assert "Unexpected end of GZIP stream" in line
        assert "(the gzip file is cut short: its export or copy did not finish" in line
    else:
        assert "Input is not a GZIP stream" in line
        assert "(the file is named .gz but is not gzip-compressed: rename it without .gz" in line


@pytest.mark.parametrize("damage", ["parquet cut short", "row over 2 MB"])
def test_a_file_duckdb_cannot_read_says_why_not(tmp_path, damage):
    """A Parquet file whose copy stopped half-way, and a well-formed CSV with one row longer than
    DuckDB reads (it said "a malformed CSV"): the line says what is wrong and what to do."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.2)
    if damage == "parquet cut short":
        plain = export / "conversions.csv"
        packed = export / "conversions.parquet"
        with duckdb.connect() as con:
            con.execute(
                f"copy (select * from read_csv('{plain}', all_varchar = true)) to '{packed}'"
            )
        plain.unlink()
        packed.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    else:
        with (export / "page_views.csv").open("a") as file:
            file.write(f"u9,2026-01-01T00:00:00Z,,pv-9,https://x.jp/,,,,{'M' * 2_100_000},\n")
    _, line = build_stops(tmp_path, export)
    if damage == "parquet cut short":
        assert f"No magic bytes found at end of file '{export / 'conversions.parquet'}'" in line
        assert "(not a whole Parquet file: its export or copy did not finish" in line
    else:
        assert "page_views.csv (a row over 2,000,000 bytes, the most DuckDB reads in a line" in line
        assert "a malformed CSV" not in line


def test_a_quote_left_open_keeps_the_rows_it_runs_over_out_of_the_run_log(tmp_path):
    """A value whose quote is never closed, past the rows DuckDB samples: DuckDB's error quotes
    the row and every row after it up to its limit, other customers' emails among them, over
    many lines; the run log (a container's log with /dev/stdout) kept all but the first."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.2)
    with (export / "page_views.csv").open("a") as file:
        file.writelines(
            f"u{i},2026-01-01T00:00:00+09:00,,pv-x{i},https://x.jp/,,,,,\n" for i in range(21000)
        )
        file.write('u9,2026-01-01T00:00:00+09:00,,pv-9,https://x.jp/,"Opened-here,,,,\n')
        rows = [
            f"u{i},2026-01-01T00:00:00+09:00,,pv-y{i},https://x.jp/?m=customer{i}@mail.example,,,,,\n"
            for i in range(40)
        ]
        # a blank line among them (a quoted value may hold one) does not end the quoted rows
        file.writelines([*rows[:20], "\n", *rows[20:]])
    r, _ = build_stops(tmp_path, export)
    assert f"CSV Error on Line: 21004 of {export / 'page_views.csv'} (a malformed CSV" in (
        one_error_line(r.stderr)
    )
    log = (tmp_path / "line_capi_run.log").read_text()
    for text in (log, r.stdout, r.stderr):
        assert "@mail.example" not in text and "Opened-here" not in text
    # what was left out, counted; DuckDB's words for the problem and its options kept
    assert re.search(r"\(not shown: \d+ more lines of the export, \d+ characters: a quoted", log)
    assert "Value with unterminated quote found." in log
    assert f"file = {export / 'page_views.csv'}" in log


def test_rows_the_profiles_plugin_left_out_already_are_counted_once():
    """With CRLF rows, DuckDB's `Original Line:` ends its line, and the plugin in dbt's process
    has put its count of the rows it left out on the next: the run log kept that count, not
    a count of 1 for the plugin's own line."""
    rows = QuotedRowFilter()
    said = "  (not shown: 32 more lines of the export, 2411 characters: a quoted value left open"
    kept = [
        *rows("  Original Line: "),
        *rows(said),
        *rows("  Value with unterminated quote found."),
        *rows.finish(),
    ]
    assert kept == ["  Original Line: ", said, "  Value with unterminated quote found."]


def test_quoted_rows_that_run_to_the_end_of_the_output_are_left_out_and_counted():
    """No description and no option list after the rows (the output cut short, a message
    DuckDB words otherwise): nothing of the rows is kept, and the end says what was left out."""
    rows = QuotedRowFilter()
    kept = [
        *rows("  Invalid Input Error: CSV Error on Line: 7"),
        *rows("  Original Line: "),
        *rows("a@mail.example,+819012345678,Tokyo"),
        *rows(""),
        *rows("b@mail.example,+819012345679,Osaka"),
        *rows.finish(),
    ]
    assert kept == [
        "  Invalid Input Error: CSV Error on Line: 7",
        "  Original Line: ",
        "(not shown: 3 more lines of the export, 68 characters: a quoted value left open runs on"
        " over the rows after it)",
    ]
    assert rows("after the end") == ["after the end"] and rows.finish() == []


def test_an_optional_column_under_another_name_is_a_warning_that_says_what_is_lost(tmp_path):
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.2)
    views = export / "page_views.csv"
    header, rest = views.read_text().split("\n", 1)
    # a warehouse's upper-case names are the contract's all the same, never "not read"
    header = header.replace("lt_cid", "line_tag_cookie").replace("user_id", "USER_ID")
    views.write_text(header + "\n" + rest)
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export)
        assert srv.accepted == {("Conversion", "ORD-1"): 1}  # sent all the same
    assert r.returncode == ExitCode.OK, r.stderr
    warned = [x for x in r.stderr.splitlines() if "has no column" in x]
    assert len(warned) == 1, r.stderr  # once, though dbt's hooks ran twice
    assert warned[0].endswith(
        "warning: KARTE export table page_views has no column lt_cid: every event goes without"
        " user.browser_id (not read from the export: line_tag_cookie; if one of these holds it,"
        " map it with var karte_column_map); an event LINE has accepted is not sent again once"
        " it is there"
    )


def test_the_run_reads_the_export_run_a_current_link_pointed_at_when_it_started(tmp_path):
    """A sync swapping `current` mid-run cannot mix two exports: the link is followed once."""
    run_folder = clock_export(tmp_path / "20261130-10", {"ORD-NEW": 2}, newest_hours=0.2)
    current = tmp_path / "current"
    current.symlink_to(run_folder.name)
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=current)
    assert r.returncode == ExitCode.OK, r.stderr
    with duckdb.connect(str(tmp_path / "line_capi.duckdb"), read_only=True) as con:
        assert con.sql("select export_location from line_capi_build_info").fetchall() == [
            (str(run_folder.resolve()),)
        ]


def test_catch_up_after_an_outage_sends_exactly_what_was_never_accepted(tmp_path):
    """Outage longer than lookback_hours: one run with a wider window sends only the rest."""
    ages = {"ORD-NEW": 2, "ORD-DAY2": 30, "ORD-DAY3": 50, "ORD-GONE": 100}
    export = clock_export(tmp_path / "export", ages, newest_hours=0.1)
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export)
        assert r.returncode == ExitCode.OK, r.stderr
        assert srv.accepted == {("Conversion", "ORD-NEW"): 1}
        r = sender_run(tmp_path, srv.url, export=export, vars_="{lookback_hours: 72}")
        assert r.returncode == ExitCode.OK, r.stderr
        assert "pending 2, sent 2, accepted 2" in r.stdout
        # every key once: nothing sent twice, the 100-hour-old one outside even the wider window
        assert srv.accepted == {
            ("Conversion", "ORD-NEW"): 1,
            ("Conversion", "ORD-DAY2"): 1,
            ("Conversion", "ORD-DAY3"): 1,
        }


def test_a_catch_up_that_adds_its_own_vars_keeps_the_sites_vars(tmp_path):
    """dbt reads one --vars, the last: a job passing its site's event mapping with --vars and a
    catch-up adding `--vars '{lookback_hours: 72}'` after it built without the mapping, and sent
    the orders LINE had as CompleteRegistration again as Conversion (counted twice)."""
    ages = {"ORD-NEW": 2, "ORD-DAY2": 30}
    export = clock_export(tmp_path / "export", ages, newest_hours=0.1)
    site = "{karte_conversion_events: {buy: CompleteRegistration}, lookback_hours: 24}"
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export, vars_=site)
        assert r.returncode == ExitCode.OK, r.stderr
        r = sender_run(tmp_path, srv.url, export=export, vars_=[site, "{lookback_hours: 72}"])
        assert r.returncode == ExitCode.OK, r.stderr
        assert "pending 1, sent 1, accepted 1" in r.stdout
        assert srv.accepted == {
            ("CompleteRegistration", "ORD-NEW"): 1,
            ("CompleteRegistration", "ORD-DAY2"): 1,
        }


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # the later value of a var wins; the first --vars' place is kept; the = form counts too
        (
            ("--target", "t", "--vars", "{a: 1, b: [x]}", "-x", "--vars={a: 2}"),
            ("--target", "t", "--vars", "{a: 2, b: [x]}", "-x"),
        ),
        # times stay the values dbt would have read; an empty --vars sets nothing
        (
            ("--vars", "{as_of: '2026-11-30T10:00:00+09:00', n: 日本}", "--vars", ""),
            ("--vars", "{as_of: '2026-11-30T10:00:00+09:00', n: 日本}"),
        ),
        # one --vars, or one that is not a mapping: left to dbt, which says what is wrong
        (("--vars", "{a: 1}"), ("--vars", "{a: 1}")),
        (("--vars", "[1]", "--vars", "{a: 1}"), ("--vars", "[1]", "--vars", "{a: 1}")),
        (("--vars", "{a: 1", "--vars", "{a: 2}"), ("--vars", "{a: 1", "--vars", "{a: 2}")),
    ],
)
def test_several_vars_after_the_double_dash_are_merged(args, expected):
    assert merge_vars(args) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("-x", "--vars", "{karte_export_dir: /e, lookback_hours: 2}", "-y"),
            ("/e", ("-x", "--vars", "{lookback_hours: 2}", "-y")),
        ),
        (("--vars={karte_export_dir: e}", "-y"), ("e", ("-y",))),
        # not there, not a text, or not a mapping: left to dbt, which says what is wrong
        (("--vars", "{lookback_hours: 2}"), (None, ("--vars", "{lookback_hours: 2}"))),
        (("--vars", "{karte_export_dir: 3}"), (None, ("--vars", "{karte_export_dir: 3}"))),
        (("--vars", "{karte_export_dir: ' '}"), (None, ("--vars", "{karte_export_dir: ' '}"))),
        (("--vars", "[1]"), (None, ("--vars", "[1]"))),
    ],
)
def test_the_export_var_is_taken_out_of_the_vars_for_the_run_to_pass_on(args, expected):
    assert take_export_dir(args) == expected


@pytest.mark.parametrize("given", ["{lookback_hours: 48", "[1, 2]"])
def test_vars_that_are_no_mapping_beside_a_project_export_var_are_left_to_dbt(tmp_path, given):
    """The run gives dbt the export's folder in the --vars: one that is not a YAML mapping (a
    brace missing) is dbt's to refuse in one line, not the run's to crash on."""
    project = project_with_vars(tmp_path, {"karte_export_dir": "/srv/karte"})
    config = run_config(
        database=tmp_path / "line_capi.duckdb",
        export_dir=None,
        project_dir=project,
        log_file=None,
        dbt_args=("--vars", given),
        env={},
    )
    assert config.dbt_args == ("--vars", given)
    assert config.export_dir == Path("/srv/karte")


def test_a_relative_export_var_is_the_project_folders_as_dbt_reads_it(tmp_path, monkeypatch):
    # dbt runs in the project folder (its PWD) and read a relative var from there, not from the
    # folder the run started in
    monkeypatch.chdir(tmp_path)
    config = run_config(
        database=tmp_path / "line_capi.duckdb",
        export_dir=str(tmp_path / "elsewhere"),
        project_dir=ROOT,
        log_file=None,
        dbt_args=("--vars", "{karte_export_dir: sample/karte_export, lookback_hours: 2}"),
        env={},
    )
    assert config.export_dir == (ROOT / "sample" / "karte_export").resolve()
    # and dbt is given that folder, absolute
    assert config.dbt_args == (
        "--vars",
        f"{{lookback_hours: 2, karte_export_dir: {config.export_dir}}}",
    )


def test_two_sites_in_one_folder_keep_their_own_run_logs(tmp_path):
    for site in ("shop", "outlet"):
        duckdb.connect(str(tmp_path / f"{site}.duckdb")).close()  # built by an earlier hour
        env = {"LINE_CAPI_DUCKDB": str(tmp_path / f"{site}.duckdb")}
        r = sender_run(tmp_path, "http://127.0.0.1:9", export=tmp_path / f"{site}-export", env=env)
        assert r.returncode == ExitCode.STALE_EXPORT, r.stderr
    for site in ("shop", "outlet"):
        log = tmp_path / f"{site}_run.log"
        assert f"{site}-export does not exist" in last_run(log).error
        assert exit_codes(log) == [ExitCode.STALE_EXPORT]
        status = run_cli(
            ["status", "--json"], {"LINE_CAPI_DUCKDB": str(tmp_path / f"{site}.duckdb")}
        )
        assert f"{site}-export does not exist" in json.loads(status.stdout)["last_job"]["message"]
    assert not (tmp_path / "line_capi_run.log").exists()


def test_a_run_for_another_database_waits_for_the_dbt_target_folder(tmp_path):
    # another site's run of the same checkout holds dbt's target folder (tests pass their own)
    lock = tmp_path / "target" / TARGET_LOCK_NAME
    lock.parent.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            f"f = open({str(lock)!r}, 'a+'); f.write('/srv/outlet.duckdb (pid 4242)'); f.flush()\n"
            "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        waiting = subprocess.Popen(
            [sys.executable, "-m", "sender", "run", "--", *dbt_args(tmp_path)],
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("LINE_")},
                **dbt_forkserver.sender_env(),
                "PYTHONPATH": str(ROOT),
                "LINE_CAPI_DUCKDB": str(tmp_path / "shop.duckdb"),
                "LINE_TAG_ID": TAG_ID,
                "LINE_ACCESS_TOKEN": TOKEN,
                "LINE_CAPI_ENDPOINT": "http://127.0.0.1:9",
                "KARTE_EXPORT_DIR": str(tmp_path / "shop-export"),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=str(ROOT),
        )
        line = waiting.stderr.readline()
        while "waiting" not in line and line:
            line = waiting.stderr.readline()
        assert line.rstrip().endswith(
            "waiting for the sender run of /srv/outlet.duckdb (pid 4242): it uses the same dbt"
            f" target folder {tmp_path / 'target'} (set DBT_TARGET_PATH per database to run them"
            " side by side)"
        )
        time.sleep(0.5)
        assert waiting.poll() is None  # still waiting: nothing checked, built or sent
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
        _, rest = waiting.communicate(timeout=60)
    finally:
        holder.kill()
        holder.wait()
    # its turn came: it ran (and found its export missing)
    assert waiting.returncode == ExitCode.STALE_EXPORT, rest
    assert "shop-export does not exist" in rest
    assert lock.read_text() == f"{tmp_path / 'shop.duckdb'} (pid {waiting.pid})\n"


def test_a_second_concurrent_run_is_refused_at_once(tmp_path):
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.1)
    lock = lock_path(tmp_path / "line_capi.duckdb")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            f"f = open({str(lock)!r}, 'a+'); f.write('4242'); f.flush()\n"
            "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with mock_server() as srv:
            r = sender_run(tmp_path, srv.url, export=export)
            assert srv.stats()["requests"] == 0
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == ExitCode.ALREADY_RUNNING, r.stderr
    assert "another sender run (pid 4242) holds" in one_error_line(r.stderr)
    assert not (tmp_path / "line_capi.duckdb").exists()  # nothing was built
    assert "is new: its ledger is empty" not in r.stderr  # nor would it send anything


@pytest.mark.parametrize(
    ("vars_", "message"),
    [
        ("{lookback_hours: 0}", "invalid dbt var lookback_hours=0"),
        # read by the sources' YAML, before any macro: once a 60-line traceback
        ("{karte_freshness_warn_hours: abc}", "invalid dbt var karte_freshness_warn_hours=abc"),
        # refused as its model compiles: once "Failure in model stg_karte__conversions"
        ("{karte_conversion_filter: 'revenue >>> 3'}", "invalid dbt var karte_conversion_filter="),
    ],
)
def test_a_var_the_project_refuses_sends_nothing_and_is_a_configuration_error(
    tmp_path, vars_, message
):
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.1)
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export, vars_=vars_)
        assert srv.stats()["requests"] == 0
    assert r.returncode == ExitCode.USAGE, r.stderr
    assert message in one_error_line(r.stderr)
    assert "Traceback" not in r.stderr


def sample_run_env(tmp_path) -> dict[str, str]:
    """A `sender run` of the sample whose push would go nowhere (it stops before)."""
    return {
        "LINE_CAPI_DUCKDB": str(tmp_path / "line_capi.duckdb"),
        "LINE_TAG_ID": TAG_ID,
        "LINE_ACCESS_TOKEN": TOKEN,
        "LINE_CAPI_ENDPOINT": "http://127.0.0.1:9",
        "KARTE_EXPORT_DIR": str(SAMPLE_DIR),
    }


@pytest.mark.parametrize(
    ("after", "refusal"),
    [
        # a typo: dbt's usage header and its "did you mean"
        (
            ["--slect", "line_capi_payload"],
            "No such option '--slect'. (Did you mean one of: '--select', '--selector'?)",
        ),
        # an option without its value (an unset, unquoted $SITE_VARS): no usage header
        (["--vars"], "Option '--vars' requires an argument."),
    ],
)
def test_a_dbt_option_refused_after_the_double_dash_is_a_usage_error(tmp_path, after, refusal):
    """`sender run -- --slect x` exited 12, a failed build by its code (and its alert), where
    the mistake was in the command line."""
    env = sample_run_env(tmp_path)
    r = run_cli(["run", "--", *dbt_args(tmp_path), *after], env)
    assert r.returncode == ExitCode.USAGE, r.stderr
    (error,) = [x for x in r.stderr.splitlines() if "error: " in x]
    assert (
        f"error: dbt source freshness refused the arguments after `sender run --`: {refusal}; log: "
        in error
    ), error


def test_a_dbt_target_the_profile_lacks_is_a_usage_error_that_names_the_targets(tmp_path):
    # exit 12, a failed build, and the line stopped at "The valid target names ... are:;"
    env = sample_run_env(tmp_path)
    r = run_cli(["run", "--", *dbt_args(tmp_path), "--target", "prod"], env)
    assert r.returncode == ExitCode.USAGE, r.stderr
    (error,) = [x for x in r.stderr.splitlines() if "error: " in x]
    assert (
        "error: dbt source freshness failed: The profile 'line_capi' does not have a target named"
        " 'prod'. The valid target names for this profile are: duckdb, spark; log: " in error
    ), error


def test_the_export_var_wins_over_the_export_option_for_every_check_of_the_run(tmp_path):
    # dbt reads var karte_export_dir over env KARTE_EXPORT_DIR; the run named, checked and aged
    # the option's folder (here a missing one: exit 11) while dbt read the var's
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.2)
    with mock_server() as srv:
        r = sender_run(
            tmp_path,
            srv.url,
            "--export-dir",
            str(tmp_path / "old-export"),
            vars_=json.dumps({"karte_export_dir": str(export), "lookback_hours": 24}),
        )
        assert srv.stats()["accepted_events"] == 1, r.stderr
    assert r.returncode == 0, r.stderr
    log = (tmp_path / "line_capi_run.log").read_text()
    assert f"export {export}" in log
    # the option's folder only in the note that says it is not read
    (noted,) = [line for line in log.splitlines() if "old-export" in line]
    assert f"note: reading the export in {export}, which var karte_export_dir names in" in noted


def test_a_run_whose_console_reader_has_gone_sends_and_logs_all_the_same(tmp_path):
    # `sender run | head`, a log shipper that died: the push's summary lines found stdout gone,
    # the thread echoing them died with a traceback, and the run's exit code followed click's 1
    export = clock_export(tmp_path / "export", {"ORD-1": 1, "ORD-2": 2}, newest_hours=0.2)
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export, reader_gone=True)
        assert srv.stats()["accepted_events"] == 2, r.stderr
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "Exception" not in r.stderr, r.stderr
    log = (tmp_path / "line_capi_run.log").read_text()
    assert "accepted 2, rejected 0" in log and log.endswith("run: done: exit 0\n"), log


def project_with_vars(tmp: Path, declared: dict) -> Path:
    """A copy of the project's dbt_project.yml with these vars, in a folder of its own."""
    project = tmp / "project"
    project.mkdir()
    loaded = yaml.safe_load((ROOT / "dbt_project.yml").read_text())
    loaded["vars"].update(declared)
    (project / "dbt_project.yml").write_text(yaml.safe_dump(loaded))
    return project


@pytest.mark.parametrize(
    ("declared", "option", "expected", "noted"),
    [
        # the site's export named in dbt_project.yml, relative to the project as dbt reads it
        ({"karte_export_dir": "karte/current"}, None, "project/karte/current", False),
        # the project's own block before the global var, as in dbt
        (
            {"karte_export_dir": "/global", "line_capi": {"karte_export_dir": "/own"}},
            None,
            "/own",
            False,
        ),
        # the same folder named in both places
        ({"karte_export_dir": "/srv/karte"}, "/srv/karte", "/srv/karte", False),
        # unset, or an expression only dbt renders: the option's folder
        ({"karte_export_dir": None}, "/srv/other", "/srv/other", False),
        ({"karte_export_dir": "{{ env_var('EXPORT') }}"}, "/srv/other", "/srv/other", False),
    ],
)
def test_the_export_var_of_dbt_project_yml_is_the_folder_the_run_checks(
    tmp_path, declared, option, expected, noted
):
    project = project_with_vars(tmp_path, declared)
    config = run_config(
        database=tmp_path / "line_capi.duckdb",
        export_dir=option,
        project_dir=project,
        log_file=None,
        dbt_args=(),
        env={},
    )
    assert config.export_dir == (tmp_path / expected).resolve()
    assert (config.export_note is not None) == noted
    # a var's folder goes to dbt as the folder checked (a link resolved once, a ~ expanded)
    named_there = isinstance(declared.get("line_capi", declared).get("karte_export_dir"), str)
    if named_there and "{{" not in str(declared):
        assert config.dbt_args == ("--vars", f"{{karte_export_dir: {config.export_dir}}}")
    else:
        assert config.dbt_args == ()


def dbt_env_of_a_run(tmp_path: Path, project: Path, env: dict) -> tuple[RunConfig, dict]:
    """The configuration of a `sender run` of ``project`` with ``env``, and the environment it
    gives dbt."""
    config = run_config(
        database=tmp_path / "line_capi.duckdb",
        export_dir="/srv/karte",
        project_dir=project,
        log_file=None,
        dbt_args=(),
        env=env,
    )
    return config, ScheduledRun(config).child_env()


def test_the_files_a_push_reads_reach_it_as_full_paths_from_the_runs_folder(tmp_path, monkeypatch):
    """The push runs in the project folder: a relative token file or CA bundle, named from the
    folder the job started in, is handed over in full (an absolute one, or a ~, as given)."""
    monkeypatch.chdir(tmp_path)
    given = {
        "LINE_ACCESS_TOKEN_FILE": "secrets/access-token",
        "REQUESTS_CA_BUNDLE": "proxy-ca.pem",
        "SSL_CERT_FILE": "/etc/ssl/cert.pem",
        "CURL_CA_BUNDLE": "~/ca.pem",
    }
    _, env = dbt_env_of_a_run(tmp_path, ROOT, given)
    assert env["LINE_ACCESS_TOKEN_FILE"] == str(tmp_path / "secrets" / "access-token")
    assert env["REQUESTS_CA_BUNDLE"] == str(tmp_path / "proxy-ca.pem")
    assert (env["SSL_CERT_FILE"], env["CURL_CA_BUNDLE"]) == ("/etc/ssl/cert.pem", "~/ca.pem")


def test_the_names_under_vars_in_dbt_project_yml_reach_the_builds_name_check(tmp_path):
    """A slip there (curency: USD) ran with the default without a word: dbt's macros see only
    --vars, so sender run hands dbt the names (tests/test_pipeline.py has the check itself)."""
    declared = {
        "curency": "USD",
        "line_capi": {"lookback_hour": 48},
        "dbt_date": {"time_zone": "x"},
    }
    _, env = dbt_env_of_a_run(tmp_path, project_with_vars(tmp_path, declared), {})
    names = json.loads(env["LINE_CAPI_PROJECT_VARS"])
    assert {"curency", "lookback_hour", "currency", "lookback_hours"} <= set(names)
    # each with whether its value is a mapping: another's is a package's block of vars
    assert names["dbt_date"] and names["karte_column_map"] and not names["curency"]
    assert "line_capi" not in names


def test_dbts_own_settings_reach_it_without_a_windows_line_ending(tmp_path):
    """A .env saved with Windows line endings: the sender strips its own settings, and dbt made
    a target folder whose name ends in a carriage return beside the one the run's lock and
    results read."""
    given = {"DBT_TARGET_PATH": "target/outlet\r", "DBT_LOG_PATH": " logs/outlet\r"}
    config, env = dbt_env_of_a_run(tmp_path, ROOT, given)
    assert (env["DBT_TARGET_PATH"], env["DBT_LOG_PATH"]) == ("target/outlet", "logs/outlet")
    assert target_path(config) == ROOT / "target" / "outlet"


@pytest.mark.parametrize("where", ["--vars", "dbt_project.yml"])
def test_an_impossible_date_in_a_var_is_one_line_not_a_crash(tmp_path, where):
    """{as_of: 2026-13-01}: YAML reads an unquoted date as a date, and fails on one that is none;
    the run exited 70 (a bug, it says) with nothing in the run log."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.2)
    env = {}
    if where == "dbt_project.yml":
        project = project_with_vars(tmp_path, {})
        text = (project / "dbt_project.yml").read_text().replace("as_of: null", "as_of: 2026-02-30")
        assert "as_of: 2026-02-30" in text
        (project / "dbt_project.yml").write_text(text)
        env["LINE_CAPI_PROJECT_DIR"] = str(project)
    vars_ = "{as_of: 2026-13-01}" if where == "--vars" else ""
    r = sender_run(tmp_path, "http://127.0.0.1:9", export=export, vars_=vars_, env=env)
    assert r.returncode == ExitCode.USAGE, r.stderr
    said = r.stderr.strip().splitlines()
    assert len(said) == 1 and said[0].startswith(
        f"error: {where} holds an impossible date or time ("
    ), said
    assert "quote it to give it as text" in said[0] and "Traceback" not in r.stderr
    assert "run: done: exit 2" in (tmp_path / "line_capi_run.log").read_text()


def test_an_export_in_dbt_project_yml_and_another_in_the_run_is_refused_before_dbt(tmp_path):
    """One checkout, two sites: dbt_project.yml's var is read by every site's dbt, so a site whose
    KARTE_EXPORT_DIR names its own export sent the other site's orders to its LINE Tag, exit 0."""
    project = project_with_vars(tmp_path, {"karte_export_dir": "/srv/shop/current"})
    with pytest.raises(ConfigError) as refused:
        run_config(
            database=tmp_path / "outlet.duckdb",
            export_dir="/srv/outlet/current",
            project_dir=project,
            log_file=None,
            dbt_args=(),
            env={},
        )
    assert str(refused.value).startswith(
        "two KARTE exports named: var karte_export_dir in dbt_project.yml names /srv/shop/current,"
        " and --export-dir or KARTE_EXPORT_DIR names /srv/outlet/current; dbt would read the"
        " var's, for every site of this checkout: take the var out of dbt_project.yml"
    )


def test_a_missing_export_named_in_dbt_project_yml_is_one_line_before_dbt_starts(tmp_path):
    # the run checked no folder, and dbt said "file missing" for each table
    project = project_with_vars(tmp_path, {"karte_export_dir": "karte/current"})
    env = {"LINE_CAPI_PROJECT_DIR": str(project)}
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, env=env)
    assert r.returncode == ExitCode.STALE_EXPORT, r.stderr
    assert (
        f"error: KARTE export folder {project / 'karte' / 'current'} does not exist"
        in one_error_line(r.stderr)
    )


def test_a_site_reads_the_export_its_own_run_names_when_dbt_project_yml_names_one(tmp_path):
    """dbt reads dbt_project.yml's var over env KARTE_EXPORT_DIR: a run that names another
    export stops (exit 2) before dbt; one that names none reads the var's; a var given after
    `--` (a catch-up of another folder) is the one dbt builds, not dbt_project.yml's."""
    shop = tmp_path / "shop-current"  # a link, as the export sync's current is
    shop.symlink_to(clock_export(tmp_path / "shop", {"SHOP-1": 1}, newest_hours=0.2))
    outlet = clock_export(tmp_path / "outlet", {"OUTLET-1": 1, "OUTLET-2": 2}, newest_hours=0.2)
    project = tmp_path / "project"
    project.mkdir()
    for part in ("models", "macros", "seeds", "tests"):
        (project / part).symlink_to(ROOT / part)
    settings = (ROOT / "dbt_project.yml").read_text()
    assert "  karte_export_dir: null\n" in settings
    (project / "dbt_project.yml").write_text(
        settings.replace("  karte_export_dir: null\n", f"  karte_export_dir: {shop}\n")
    )
    env = {"LINE_CAPI_PROJECT_DIR": str(project)}
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=outlet, env=env)
        assert r.returncode == ExitCode.USAGE, r.stderr
        assert "error: two KARTE exports named: var karte_export_dir in dbt_project.yml names" in (
            one_error_line(r.stderr)
        )
        assert srv.stats()["requests"] == 0 and not (tmp_path / "target").exists()
        # a plain dbt build says the same, and builds nothing
        build = subprocess.run(
            [DBT, "build", "--project-dir", str(project), *dbt_args(tmp_path)],
            cwd=tmp_path,
            env={
                **os.environ,
                "DO_NOT_TRACK": "1",
                "KARTE_EXPORT_DIR": str(outlet),
                "LINE_CAPI_DUCKDB": str(tmp_path / "plain.duckdb"),
            },
            capture_output=True,
            text=True,
        )
        assert build.returncode != 0
        assert (
            f"dbt_project.yml names this export and env KARTE_EXPORT_DIR names another, {outlet}"
            in build.stdout
        )
        # nothing named in the run: the var's export
        r = sender_run(tmp_path, srv.url, env=env)
        assert r.returncode == 0, r.stderr
        assert srv.accepted_keys() == {"SHOP-1"}
        # a var after --: this run's choice, which dbt builds too
        r = sender_run(
            tmp_path, srv.url, vars_=json.dumps({"karte_export_dir": str(outlet)}), env=env
        )
        assert r.returncode == 0, r.stderr
        assert srv.accepted_keys() == {"SHOP-1", "OUTLET-1", "OUTLET-2"}


def test_a_run_that_names_no_export_is_a_configuration_error(tmp_path):
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url)  # KARTE_EXPORT_DIR empty, no var
        assert srv.stats()["requests"] == 0
    assert r.returncode == ExitCode.USAGE, r.stderr
    # in the run's terms: `sender run --vars` is refused, the var goes after --
    assert (
        "no KARTE export named: set KARTE_EXPORT_DIR or pass --export-dir /path/to/export"
        in one_error_line(r.stderr)
    )
    assert "sender run -- --vars '{karte_export_dir: ...}'" in r.stderr


def test_a_run_that_names_the_syncs_folder_is_told_to_name_its_current_link(tmp_path):
    """KARTE_EXPORT_DIR=/srv/karte, where the sync keeps its copies, instead of its current."""
    dest = tmp_path / "karte"
    run = clock_export(dest / "20261205-10", {"ORD-1": 1}, newest_hours=1)
    (dest / "current").symlink_to(run.name)
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=dest)
        assert srv.stats()["requests"] == 0
    assert r.returncode == ExitCode.USAGE, r.stderr
    assert (
        f"error: KARTE export folder {dest} holds no export table but a current folder: it is"
        f" the export sync's DEST; name {dest / 'current'} (KARTE_EXPORT_DIR or --export-dir);"
    ) in one_error_line(r.stderr)


def test_a_missing_table_under_a_run_says_to_name_the_folder_as_the_run_does(tmp_path):
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=1)
    (export / "line_users.csv").unlink()
    _, line = build_stops(tmp_path, export)
    assert f"KARTE export file missing: {export}/line_users.csv" in line
    assert "set KARTE_EXPORT_DIR or --export-dir (or var karte_export_dir) to the folder" in line


@pytest.mark.parametrize("profiles", ["a folder without profiles.yml", "a missing folder"])
def test_a_run_without_a_dbt_profile_says_to_copy_the_example(tmp_path, profiles):
    """A checkout installed without make setup has no profiles.yml (nor ~/.dbt)."""
    folder = tmp_path / "dbt-profiles"
    if profiles == "a folder without profiles.yml":
        folder.mkdir()
    env = sample_run_env(tmp_path)
    dbt = ["--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")]
    r = run_cli(["run", "--", *dbt, "--profiles-dir", str(folder)], env)
    assert r.returncode == ExitCode.USAGE, r.stderr
    line = one_error_line(r.stderr)
    assert "dbt source freshness failed: dbt found no profile (" in line
    assert f"copy profiles.example.yml to profiles.yml in {ROOT} (make setup does)" in line
    assert not (tmp_path / "line_capi.duckdb").exists()


def test_a_crash_has_its_own_exit_code_and_its_traceback_goes_to_the_log(tmp_path):
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.1)
    with mock_server() as srv:
        r = sender_run(
            tmp_path,
            srv.url,
            export=export,
            env={"LINE_CAPI_FAULT_POINT": "after_response:1:crash"},
        )
    assert r.returncode == ExitCode.INTERNAL_ERROR, r.stderr
    assert "error: internal error (RuntimeError: fault point after_response" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    log = (tmp_path / "line_capi_run.log").read_text()
    assert "Traceback (most recent call last)" in log and "the traceback is in" in r.stderr
    assert TOKEN not in log + r.stderr + r.stdout


def test_a_crash_of_the_run_itself_ends_its_log_as_every_run_does(tmp_path):
    """A bug in sender run itself (not in its push) left no `done` line: `sender status` read
    the run as killed or still running, and the alerts' streaks did not count it."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.1)
    env = {"LINE_CAPI_FAULT_POINT": "lock_write:1:crash"}
    r = sender_run(tmp_path, "http://127.0.0.1:9", export=export, env=env)
    assert r.returncode == ExitCode.INTERNAL_ERROR, r.stderr
    assert "error: internal error (RuntimeError: fault point lock_write" in r.stderr
    log = tmp_path / "line_capi_run.log"
    assert log.read_text().splitlines()[-1].endswith("run: done: exit 70")
    assert last_run(log).exit_code == ExitCode.INTERNAL_ERROR
    status = run_cli(["status"], sender_env(tmp_path / "line_capi.duckdb"))
    assert "exit 70 INTERNAL_ERROR" in status.stdout, status.stdout


def test_dbt_source_freshness_alone_sees_the_shifted_sample_as_fresh(tmp_path):
    result = run_dbt(tmp_path, "source", "freshness", export_dir=SAMPLE_DIR)
    assert result.returncode == 0, result.output
    sources = json.loads((tmp_path / "target" / "sources.json").read_text())
    ages = {r["unique_id"]: r["max_loaded_at_time_ago_in_s"] for r in sources["results"]}
    assert set(ages) == {"source.line_capi.karte.conversions", "source.line_capi.karte.page_views"}
    assert all(0 <= a < 3600 for a in ages.values()), ages


def test_freshness_reads_a_mapped_and_typed_sync_date(tmp_path):
    """A warehouse export: sync_date stored as TIMESTAMPTZ under another name, mapped back."""
    text = clock_export(tmp_path / "text", {"ORD-1": 31}, newest_hours=30)
    typed = tmp_path / "typed"
    rewrite_export(
        text, typed, casts={"conversions": {"sync_date": "cast(sync_date as timestamptz)"}}
    )
    with duckdb.connect() as con:
        con.sql(
            f"copy (select * rename (sync_date as ordered_at) from '{typed}/conversions.parquet')"
            f" to '{typed}/conversions.parquet' (format parquet)"
        )
    mapping = {"karte_column_map": {"conversions": {"sync_date": "ordered_at"}}}
    (tmp_path / "stale").mkdir()
    stale = run_dbt(tmp_path / "stale", "source", "freshness", export_dir=typed, vars=mapping)
    assert stale.returncode == 1, stale.output
    sources = json.loads((tmp_path / "stale" / "target" / "sources.json").read_text())
    ages = {
        r["unique_id"].split(".")[-1]: r["max_loaded_at_time_ago_in_s"] for r in sources["results"]
    }
    assert 29.9 * 3600 < ages["conversions"] < 30.5 * 3600, ages


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LINE_TAG_ID": "not-a-uuid"}, "LINE_TAG_ID 'not-a-uuid' is not a UUID"),
        ({"LINE_CAPI_ENDPOINT": "http://10.0.0.1"}, "is plain http: only https is allowed"),
        ({"LINE_ACCESS_TOKEN": ""}, "LINE_ACCESS_TOKEN is not set"),
        # sender run has no --tag-id: its message names only the variable
        ({"LINE_TAG_ID": ""}, "LINE_TAG_ID is not set (the LINE Tag id, a UUID)"),
        ({"LINE_CHANNEL_ID": "12ab"}, "LINE_CHANNEL_ID '12ab' must be digits only"),
        ({"LINE_CAPI_ENDPOINT": "http://[::1"}, "is not a valid URL: Invalid IPv6 URL"),
        ({"LINE_CAPI_ENDPOINT": "http://127.0.0.1:99999"}, "is not a valid URL: Port out of range"),
        ({"LINE_CAPI_CONCURRENCY": "0"}, "(env var: 'LINE_CAPI_CONCURRENCY')"),
        ({"LINE_CAPI_TIMEOUT": "soon"}, "(env var: 'LINE_CAPI_TIMEOUT')"),
    ],
)
def test_a_push_setting_the_push_would_refuse_stops_the_run_before_dbt(tmp_path, env, message):
    r = sender_run(tmp_path, "http://127.0.0.1:9", export=SAMPLE_DIR, env=env)
    assert r.returncode == ExitCode.USAGE, r.stderr
    assert message in one_error_line(r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""
    assert TOKEN not in r.stderr
    # dbt never started: no database, no target folder; the run log holds the stop, and only it
    assert not (tmp_path / "line_capi.duckdb").exists()
    assert not (tmp_path / "target").exists()
    log = (tmp_path / "line_capi_run.log").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in log][1:] == [
        f"run: {one_error_line(r.stderr)}",
        "run: done: exit 2",
    ]
    assert TOKEN not in "\n".join(log)


def test_the_run_starts_the_dbt_that_line_capi_dbt_names(tmp_path):
    """A dbt installed apart from the sender: here a wrapper that notes each command, then runs
    dbt as the other tests' runs do (through the fork server; with LINE_CAPI_TEST_DBT=subprocess,
    the real dbt next to this Python)."""
    calls, tokens = tmp_path / "dbt-calls.txt", tmp_path / "dbt-tokens.txt"
    wrapper = tmp_path / "bin" / "dbt"
    wrapper.parent.mkdir()
    real = dbt_forkserver.sender_env().get("LINE_CAPI_DBT") or Path(sys.executable).parent / "dbt"
    wrapper.write_text(
        f'#!/bin/sh\necho "$1 $2" >> {calls}\n'
        f"printenv LINE_ACCESS_TOKEN LINE_ACCESS_TOKEN_FILE >> {tokens}\n"
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    with mock_server() as srv:
        # a relative path: from the folder the run starts in (ROOT)
        named = os.path.relpath(wrapper, ROOT)
        env = {"LINE_CAPI_DBT": named, "LINE_CHANNEL_ID": "1234567890"}
        r = sender_run(tmp_path, srv.url, export=SAMPLE_DIR, env=env)
        assert r.returncode == 0, r.stderr
        assert srv.stats()["accepted_events"] > 0
    assert calls.read_text().splitlines() == ["source freshness", "build --exclude-resource-type"]
    assert tokens.read_text() == ""  # dbt has no use for the token: it is not handed to dbt


@pytest.mark.parametrize("named", ["/nowhere/bin/dbt", "README.md"])
def test_a_line_capi_dbt_that_is_no_executable_stops_the_run_before_dbt(tmp_path, named):
    r = sender_run(tmp_path, "http://127.0.0.1:9", export=SAMPLE_DIR, env={"LINE_CAPI_DBT": named})
    assert r.returncode == ExitCode.USAGE, r.stderr
    assert f"LINE_CAPI_DBT={named} is not an executable file" in one_error_line(r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""
    assert not (tmp_path / "target").exists() and not (tmp_path / "line_capi.duckdb").exists()


def test_a_run_log_that_is_a_folder_is_a_usage_error(tmp_path):
    folder = tmp_path / "logs-folder"
    folder.mkdir()
    r = sender_run(tmp_path, "http://127.0.0.1:9", "--log-file", str(folder), export=SAMPLE_DIR)
    assert r.returncode == ExitCode.USAGE, r.stderr
    line = one_error_line(r.stderr)
    assert f"run log {folder} cannot be written: Is a directory" in line
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "line_capi.duckdb").exists()


def test_a_run_log_on_a_full_disk_leaves_the_run_to_finish(tmp_path):
    """/dev/full refuses every write with ENOSPC, as a full disk does: the run sends and exits 0,
    with one warning; it was exit 70. The device keeps its mode (root would have made it 0600)."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1, "ORD-2": 2}, newest_hours=0.2)
    before = os.stat("/dev/full").st_mode
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, "--log-file", "/dev/full", export=export)
        accepted = srv.stats()["accepted_unique"]
    assert r.returncode == ExitCode.OK, r.stderr
    assert accepted == 2
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: run log")]
    assert warnings == [
        "warning: run log /dev/full cannot be written (No space left on device): the rest of"
        " this run's lines go to the console only"
    ]
    assert "Traceback" not in r.stderr and os.stat("/dev/full").st_mode == before


def test_a_database_held_by_another_process_is_exit_5_not_a_failed_build(tmp_path):
    db = tmp_path / "line_capi.duckdb"
    with database_held(db) as holder, mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=SAMPLE_DIR)
        assert srv.stats()["requests"] == 0
    assert r.returncode == ExitCode.DATABASE_LOCKED, r.stderr
    line = one_error_line(r.stderr)
    # dbt's plugin finds the lock before DuckDB would: it names the holder as DuckDB would have
    program = Path(os.readlink(f"/proc/{os.getpid()}/exe")).name  # the holder's Python is ours
    assert (
        f"database {db} is locked by another process (pid {holder}, {program}: a sender push or"
        " run, a dbt build, or a DuckDB shell left open)" in line
    ), line
    assert "Conflicting lock" not in r.stderr and "Traceback" not in r.stderr


def test_a_lost_alert_is_found_past_runs_that_posted_nothing_and_across_the_rotation(tmp_path):
    log = tmp_path / "run.log"
    lost = (
        "2026-12-07T10:00:00Z run: start: project /p, database /d, export /e\n"
        "2026-12-07T10:00:09Z run: done: exit 11\n"
        "2026-12-07T10:00:10Z run: warning: alert not delivered: the alert webhook answered 500\n"
        "2026-12-07T10:00:10Z run: alert: `sender run` exited 11 STALE_EXPORT: why\n"
    )
    refused = (  # `sender backup` held the lock: nothing to alert on, nothing posted
        "2026-12-07T11:00:00Z run: start: project /p, database /d, export /e\n"
        "2026-12-07T11:00:00Z run: error: another sender run holds the lock\n"
        "2026-12-07T11:00:00Z run: done: exit 13\n"
    )
    log.write_text(lost + refused)
    assert undelivered_alert(log) == (
        "2026-12-07T10:00:09Z",  # when the run finished, as its `done` line and status say
        ["`sender run` exited 11 STALE_EXPORT: why"],
    )
    # a run without a webhook says its findings as alert lines: not a lost alert
    log.write_text(refused + "2026-12-07T11:00:01Z run: alert: `sender run` exited 13\n")
    assert undelivered_alert(log) is None
    # posted since: the run that posted it carried it
    log.write_text(lost + refused + "2026-12-07T12:00:11Z run: alert sent to the alert webhook (1")
    assert undelivered_alert(log) is None
    # the log rotated after the run that lost it: read in its rotated part
    rotated_part = tmp_path / "run.log.1"
    rotated_part.write_text(lost)
    log.write_text(refused)
    assert undelivered_alert(log) is not None
    # and a streak of warnings is counted across the rotation too
    built = "2026-12-07T10:00:08Z run: dbt build ok: PASS=80\n"
    warned = f"2026-12-07T10:00:09Z run: warning: x {PAGE_VIEWS_TRAIL}\n"
    rotated_part.write_text((built + warned) * 2)
    log.write_text(built + warned)
    assert len(run_warning_findings(log)) == 1


def test_the_lines_said_after_a_run_stay_in_its_log_however_large(tmp_path):
    """The alert and heartbeat lines follow the run's `done` line: a log rotated between them
    lost them to `sender status` and to the next run's carry of a lost alert."""
    log = tmp_path / "run.log"
    log.write_bytes(b"x" * (ROTATE_BYTES + 1))
    after = RunLog(log, rotate=False)
    after.write("run", "heartbeat sent")
    after.close()
    assert not (tmp_path / "run.log.1").exists()
    assert log.read_text().endswith("run: heartbeat sent\n")
    RunLog(log).close()  # a run's start moves it aside
    assert (tmp_path / "run.log.1").exists()

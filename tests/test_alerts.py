"""Alerts: one message to the webhook when a push or run needs a person, never a secret in it,
and never a changed exit code when the webhook itself fails."""

from __future__ import annotations

import datetime as dt
import json
import re
import time

import duckdb
import pytest
from monitoring_fixtures import (
    WEBHOOK_PATH,
    Build,
    closed_port_url,
    hourly_builds,
    webhook_receiver,
    write_coverage,
)
from schedule_fixtures import clock_export, sender_run
from sender_fixtures import (
    FAST,
    TAG_ID,
    TOKEN,
    database_held,
    mock_server,
    run_cli,
    sender_env,
)

from sender.alert_settings import AlertSettings
from sender.alerts import (
    MAX_CARRIED,
    after_push,
    carried_findings,
    run_exit_finding,
    run_recovery_finding,
)
from sender.cli import run as cli_run
from sender.cli.common import Failure
from sender.coverage import read_coverage
from sender.coverage_alerts import (
    FADE_HISTORY_BUILDS,
    absent_identifier_findings,
    empty_event_findings,
    fade_findings,
    rejected_event_findings,
    sendable_drop_findings,
    share_drop_findings,
)
from sender.database import connect
from sender.exit_codes import ExitCode
from sender.run_log import RunLog, RunLogError
from sender.settings import Secret

KEY_OR_HASH = re.compile(r"order-\d|ORD-\d|\b[0-9a-f]{64}\b")


def assert_nothing_secret(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text
        assert WEBHOOK_PATH not in text  # the webhook URL is a secret too
        assert not KEY_OR_HASH.search(text), text


pytestmark = pytest.mark.payload(events=12)  # the db fixture (conftest.py)


def push(db, url: str, webhook: str | None, *args: str, **env: str):
    extra = {"LINE_CAPI_ALERT_WEBHOOK": webhook} if webhook else {}
    return run_cli(["push", *FAST, *args], sender_env(db, url, **extra, **env))


def test_a_failed_push_posts_one_message_without_secrets(db):
    with webhook_receiver() as hook, mock_server(token="another-token") as srv:  # noqa: S106
        r = push(db, srv.url, hook.url)
        texts = hook.texts()
        posts = list(hook.posts)
    assert r.returncode == ExitCode.AUTHENTICATION, r.stderr
    assert len(texts) == 1, texts
    assert posts[0]["path"] == WEBHOOK_PATH and posts[0]["type"] == "application/json"
    text = texts[0]
    assert "`sender push` exited 3 AUTHENTICATION" in text
    assert f"LINE Tag {TAG_ID} at {srv.url.removeprefix('http://')}" in text
    assert "alert sent to the alert webhook" in r.stderr
    assert_nothing_secret(text, r.stdout, r.stderr)


def test_events_line_rejects_are_counted_in_the_alert(db):
    """`exited 4 REJECTED_BY_API` alone read the same for one odd order and for a model change
    LINE refuses whole: the alert counts them."""
    with webhook_receiver() as hook, mock_server() as srv:
        srv.poison("order-0000005", "order-0000009")
        r = push(db, srv.url, hook.url)
        texts = hook.texts()
    assert r.returncode == ExitCode.REJECTED_BY_API, r.stderr
    [text] = texts
    assert "`sender push` exited 4 REJECTED_BY_API" in text
    assert re.search(r"LINE rejected 2 of the \d+ events sent \(HTTP 400: each event alone\)", text)
    assert_nothing_secret(text)


def test_a_successful_push_and_a_push_without_webhook_post_nothing(db):
    with webhook_receiver() as hook, mock_server() as srv:
        assert push(db, srv.url, hook.url).returncode == ExitCode.OK
        assert push(db, "http://127.0.0.1:9", None, "--resend").returncode == 1  # no webhook set
        with mock_server(token="another-token") as wrong:  # noqa: S106
            r = push(db, wrong.url, None, "--resend")
        assert r.returncode == ExitCode.AUTHENTICATION
        assert hook.posts == []
    assert "alert" not in r.stderr


@pytest.mark.parametrize("receiver", ["answers 500", "nothing listening"])
def test_a_failing_webhook_logs_one_line_and_leaves_the_exit_code(db, receiver):
    with webhook_receiver(status=500) as hook, mock_server(token="another-token") as srv:  # noqa: S106
        url = hook.url if receiver == "answers 500" else closed_port_url()
        r = push(db, srv.url, url)
        posted = len(hook.posts)
    assert r.returncode == ExitCode.AUTHENTICATION, r.stderr
    assert posted == (1 if receiver == "answers 500" else 0)  # one try, no retry storm
    lines = [line for line in r.stderr.splitlines() if "alert" in line]
    expected = (
        "answered HTTP 500" if receiver == "answers 500" else "cannot be reached (ConnectionError)"
    )
    assert lines[0] == f"warning: alert not delivered: the alert webhook {expected}"
    # what it would have said is said here, once: a streak's alert is never posted again
    (said,) = lines[1:]
    assert said.startswith("alert: `sender push` exited 3 AUTHENTICATION: LINE answered 401"), said
    assert "Traceback" not in r.stderr
    assert_nothing_secret(r.stdout, r.stderr)


def test_events_left_pending_alert_once_when_the_streak_reaches_its_length(db):
    with webhook_receiver() as hook, mock_server() as srv:
        srv.inject("503", 20)
        counts = []
        for _ in range(4):
            r = push(db, srv.url, hook.url, "--max-retries", "0")
            assert r.returncode == ExitCode.PENDING_LEFT, r.stderr
            counts.append(len(hook.posts))
        texts = hook.texts()
    assert counts == [0, 0, 1, 1]
    assert "events left pending by 3 runs in a row (12 after the last run)" in texts[0]
    assert "exited" not in texts[0]  # pending rows are not a failed push
    assert_nothing_secret(*texts)


def test_a_pending_streak_of_refused_tokens_names_the_refusal_not_an_outage(db):
    """A revoked token for three days: the streak's alert blamed LINE unreachable or throttling,
    beside the exit code's own alert of the first hour."""
    with webhook_receiver() as hook, mock_server(token="another-token") as srv:  # noqa: S106
        for _ in range(3):
            assert push(db, srv.url, hook.url).returncode == ExitCode.AUTHENTICATION
        texts = hook.texts()
    [streak] = [text for text in texts if "events left pending by 3 runs in a row" in text]
    assert "the last run exited 3 AUTHENTICATION: " in streak, streak
    assert "unreachable or throttling" not in streak
    assert_nothing_secret(*texts)


def test_the_pending_streak_length_is_configurable(db):
    with webhook_receiver() as hook, mock_server() as srv:
        srv.inject("503", 20)
        env = {"LINE_CAPI_ALERT_PENDING_RUNS": "1"}
        assert push(db, srv.url, hook.url, "--max-retries", "0", **env).returncode == 1
        assert len(hook.posts) == 1


def test_a_pending_streak_is_reminded_while_it_lasts_and_its_end_is_said_once(db):
    """A LINE outage leaves events pending hour after hour with exit 1, the code a failing run
    is not alerted on: the streak's message comes again every LINE_CAPI_ALERT_REPEAT_RUNS runs,
    and the first push that leaves nothing pending says that it is over."""
    env = {"LINE_CAPI_ALERT_PENDING_RUNS": "2", "LINE_CAPI_ALERT_REPEAT_RUNS": "2"}
    with webhook_receiver() as hook, mock_server() as srv:
        srv.inject("503", 100)
        counts = []
        for _ in range(5):
            r = push(db, srv.url, hook.url, "--max-retries", "0", **env)
            assert r.returncode == ExitCode.PENDING_LEFT, r.stderr
            counts.append(len(hook.posts))
        srv.clear_faults()
        for _ in range(2):
            assert push(db, srv.url, hook.url, **env).returncode == ExitCode.OK
            counts.append(len(hook.posts))
        texts = hook.texts()
    assert counts == [0, 1, 1, 2, 2, 3, 3], counts
    assert "events left pending by 2 runs in a row" in texts[0]
    assert "events left pending by 4 runs in a row (12 after the last run)" in texts[1]
    assert texts[2] == (
        f"line-capi (LINE Tag {TAG_ID} at {srv.url.removeprefix('http://')}): resolved\n"
        "• resolved: nothing left pending by the last run, after 5 runs in a row that left"
        " events pending"
    )


def test_a_run_stopped_by_a_held_database_says_so_not_the_last_pushs_findings(tmp_path):
    """An on-call drill: after an outage's pending streak had ended ("resolved"), a process
    that held the database read-only (`duckdb -readonly`) stopped each run with exit 5, and the
    webhook posted "resolved" again at every run, the lock only at the first: the alert read
    the last push's rows as if the run had pushed. Only what this run did is said now."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1, "ORD-2": 2}, newest_hours=0.1)
    env = {"LINE_CAPI_MAX_RETRIES": "0", "LINE_CAPI_ALERT_PENDING_RUNS": "1"}
    db = tmp_path / "line_capi.duckdb"
    with webhook_receiver() as hook, mock_server() as srv:
        env["LINE_CAPI_ALERT_WEBHOOK"] = hook.url
        srv.inject("503", 100)
        assert sender_run(tmp_path, srv.url, export=export, env=env).returncode == 1
        srv.clear_faults()
        assert sender_run(tmp_path, srv.url, export=export, env=env).returncode == 0
        assert len(hook.posts) == 2 and "resolved: nothing left pending" in hook.texts()[1]
        with database_held(db, read_only=True) as holder:  # the alert can read it
            held = [sender_run(tmp_path, srv.url, export=export, env=env) for _ in range(2)]
            pushed = push(db, srv.url, hook.url)
        texts = hook.texts()[2:]
    assert [r.returncode for r in held] == [ExitCode.DATABASE_LOCKED] * 2, held[0].stderr
    assert pushed.returncode == ExitCode.DATABASE_LOCKED, pushed.stderr
    # the first held run: its cause, in its own words; the second: nothing new to say
    assert len(texts) == 2, texts
    assert "`sender run` exited 5 DATABASE_LOCKED: " in texts[0] and f"pid {holder}" in texts[0]
    assert "`sender push` exited 5 DATABASE_LOCKED" in texts[1]
    assert not any("resolved" in text or "pending" in text for text in texts), texts


def test_a_ledger_of_another_layout_leaves_the_exit_codes_finding(tmp_path):
    """A ledger whose tables the alert cannot query (a later version's) made the whole alert
    fail, the exit code's own finding with it: `warning: alert check failed`, nothing posted."""
    db = tmp_path / "line_capi.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create table line_capi_send_destinations (endpoint varchar, tag_id varchar)")
    con.execute("create table line_capi_send_runs (started_at timestamp)")
    con.close()
    lines = []
    with webhook_receiver() as hook:
        after_push(
            AlertSettings(webhook=Secret(hook.url)),
            database=db,
            endpoint="https://conversion-api.tr.line.me",
            tag_id=TAG_ID,
            exit_code=ExitCode.DATABASE_ERROR,
            say=lines.append,
            since=dt.datetime(2026, 1, 1),
        )
        texts = hook.texts()
    assert not any("alert check failed" in line for line in lines), lines
    assert len(texts) == 1 and "`sender push` exited 10 DATABASE_ERROR" in texts[0], texts


def test_conversions_that_reach_the_export_after_every_window_are_alerted_with_the_catch_up(
    tmp_path,
):
    """An on-call drill: an export whose query added no conversion for over a day (its files
    still written, so each run went on) then added its backlog at once. The rows older than the
    window were in no build's window, never sent, and nothing said so."""
    env, now = {}, time.time()  # the same order keeps the same time in both exports
    with webhook_receiver() as hook, mock_server() as srv:
        env["LINE_CAPI_ALERT_WEBHOOK"] = hook.url
        export = clock_export(tmp_path / "export", {"ORD-OLD": 30}, newest_hours=0.2, now=now)
        assert sender_run(tmp_path, srv.url, export=export, env=env).returncode == 0
        # the backlog: one order before this build's 24 h window, one in it
        backlog = {"ORD-OLD": 30, "ORD-LATE": 26, "ORD-NEW": 1}
        export = clock_export(tmp_path / "export", backlog, newest_hours=0.2, now=now)
        r = sender_run(tmp_path, srv.url, export=export, env=env)
        assert r.returncode == 0, r.stderr
        assert set(srv.accepted) == {("Conversion", "ORD-NEW")}
        texts = hook.texts()
        assert len(texts) == 1, texts
        found = re.search(r"lookback_hours: (\d+)\}", texts[0])
        assert "1 conversion of Conversion reached the export only after the window" in texts[0]
        assert found and 27 <= int(found[1]) <= 28, texts[0]
        status = run_cli(["status"], sender_env(tmp_path / "line_capi.duckdb"))
        assert "  late: 1 reached the export after every window (the oldest at " in status.stdout
        # the catch-up it names sends it; the next build has read it: said once
        r = sender_run(
            tmp_path, srv.url, export=export, env=env, vars_=f"{{lookback_hours: {found[1]}}}"
        )
        assert r.returncode == 0, r.stderr
        assert ("Conversion", "ORD-LATE") in srv.accepted
        assert len(hook.texts()) == 1, hook.texts()


def test_the_end_of_a_failing_run_streak_is_said(tmp_path):
    """A run that exits 0 after runs that failed (and were alerted on) says so: by the webhook,
    or without one as an `alert:` line, which the cron recipe mails."""
    stale = clock_export(tmp_path / "stale", {"ORD-1": 31}, newest_hours=30)
    fresh = clock_export(tmp_path / "fresh", {"ORD-1": 1}, newest_hours=0.1)
    with webhook_receiver() as hook, mock_server() as srv:
        env = {"LINE_CAPI_ALERT_WEBHOOK": hook.url}
        codes = [sender_run(tmp_path, srv.url, export=e, env=env).returncode for e in (stale,) * 2]
        healthy = sender_run(tmp_path, srv.url, export=fresh, env=env)
        texts = hook.texts()
        assert codes == [ExitCode.STALE_EXPORT] * 2
        assert healthy.returncode == ExitCode.OK, healthy.stderr
        assert len(texts) == 2, texts  # the failure, then its end
        assert texts[1].endswith(
            "resolved\n• resolved: `sender run` exited 0 OK, after 2 runs in a row that exited"
            " 11 STALE_EXPORT"
        ), texts[1]
        # without a webhook: an `alert:` line
        assert sender_run(tmp_path, srv.url, export=stale).returncode == ExitCode.STALE_EXPORT
        r = sender_run(tmp_path, srv.url, export=fresh)
    (line,) = [line for line in r.stderr.splitlines() if "alert: " in line]
    assert line.endswith(
        "sender run: alert: resolved: `sender run` exited 0 OK, after 1 run that exited 11"
        " STALE_EXPORT"
    ), line


def test_only_the_end_of_a_streak_alerted_on_is_said_and_only_once():
    assert run_recovery_finding(None) is None
    # the events LINE refused are not sent again by a run that exits 0: not said to be resolved
    assert run_recovery_finding((ExitCode.REJECTED_BY_API, 1)).endswith(
        "after 1 run that exited 4 REJECTED_BY_API: LINE refused no event since; those it refused"
        " stay rejected_by_api (line_capi_send_log), sent again by `sender push"
        " --retry-rejected` once the cause is fixed"
    )
    assert run_recovery_finding((ExitCode.PENDING_LEFT, 5)) is None  # the pending streak's own
    assert run_recovery_finding((ExitCode.OK, 5)) is None  # the run after the one that said it
    assert run_recovery_finding((ExitCode.ALREADY_RUNNING, 2), stuck_runs=3) is None
    assert run_recovery_finding((ExitCode.INTERRUPTED, 3), stuck_runs=3) == (
        "resolved: `sender run` exited 0 OK, after 3 runs in a row that exited 130 INTERRUPTED"
    )
    assert run_recovery_finding((ExitCode.BUILD_FAILED, 1)).endswith(
        "after 1 run that exited 12 BUILD_FAILED"
    )


def test_a_coverage_drop_posts_one_message_once_per_build(db):
    builds = hourly_builds(25)
    builds[-1].add("Purchase", shares={"click_id": 0.02})
    write_coverage(db, builds)
    with webhook_receiver() as hook, mock_server() as srv:
        assert push(db, srv.url, hook.url).returncode == ExitCode.OK
        texts = hook.texts()
        # the same build pushed again: it was checked already
        assert push(db, srv.url, hook.url, "--resend").returncode == ExitCode.OK
        assert len(hook.posts) == 1
    assert len(texts) == 1
    assert (
        "click_id share of Purchase fell to 2% (4 of 200 sendable) from an average of 40%"
        " over the previous 24 builds" in texts[0]
    )
    assert "1 problem" in texts[0] and "browser_id" not in texts[0]
    assert_nothing_secret(*texts)


def settings(**values) -> AlertSettings:
    return AlertSettings(**values)


def history_of(tmp_path, builds, read: int = 26):
    """The coverage history of ``builds``, as the alerts read it from a database (its last
    ``read`` builds)."""
    tmp_path.mkdir(exist_ok=True)
    db = tmp_path / "coverage.duckdb"
    write_coverage(db, builds)
    con = connect(db, read_only=True)
    try:
        return read_coverage(con, builds=read)
    finally:
        con.close()


def findings(tmp_path, builds, **values) -> list[str]:
    return share_drop_findings(history_of(tmp_path, builds), settings(**values))


def test_a_share_drop_is_reported_only_when_it_means_something(tmp_path):
    builds = hourly_builds(25)
    builds[-1].add("Purchase", shares={"click_id": 0.19, "line_uid": 0.0})
    # click_id: 19% < 0.5 x 40%; line_uid fell to 0 but from 5%, below the smallest share watched
    assert [f.split(" share")[0] for f in findings(tmp_path / "a", builds)] == ["click_id"]
    # a share at 21% is not below half of 40%
    builds[-1].add("Purchase", shares={"click_id": 0.21})
    assert findings(tmp_path / "b", builds) == []
    # too few sendable conversions in the latest build to tell
    builds[-1].add("Purchase", sendable=20, shares={"click_id": 0.0})
    assert findings(tmp_path / "c", builds) == []
    assert findings(tmp_path / "d", builds, min_sendable=10) != []
    # a threshold of 0.9 (a fall of 90 %) is not crossed by 40% -> 19%
    builds[-1].add("Purchase", shares={"click_id": 0.19})
    assert findings(tmp_path / "e", builds, share_drop=0.9) == []


def test_a_share_drop_is_reported_once_not_at_every_build_after_it(tmp_path):
    builds = hourly_builds(26)
    builds[-2].add("Purchase", shares={"click_id": 0.02})
    builds[-1].add("Purchase", shares={"click_id": 0.02})
    assert findings(tmp_path, builds) == []  # the build before had fallen already


def test_too_short_a_history_reports_nothing(tmp_path):
    builds = hourly_builds(3)
    builds[-1].add("Purchase", shares={"click_id": 0.0})
    assert findings(tmp_path, builds) == []  # 2 earlier builds: no baseline yet


def test_a_watched_identifier_never_there_is_reported_once_at_its_third_build(tmp_path):
    """A share that was never there does not fall: a site whose page views lack the LINE Tag's
    cookie from the first build (the tag that sends it to KARTE not live) heard nothing."""

    def absent(name, builds, **values):
        return absent_identifier_findings(history_of(tmp_path / name, builds), settings(**values))

    builds = hourly_builds(3)
    for build in builds:
        build.add("Purchase", shares={"browser_id": 0.0, "phone": 0.0, "line_uid": 0.0})
    [found] = absent("three", builds)
    assert found.startswith("browser_id in none of the 200 sendable Purchase events, nor in any")
    assert "is the tag that sends it to KARTE live?" in found
    # phone and LINE user ids are a site's to have or not: never reported so
    assert absent("two", builds[:2]) == []  # not yet as many builds as LINE_CAPI_ALERT_EMPTY_BUILDS
    four = hourly_builds(4)
    for build in four:
        build.add("Purchase", shares={"browser_id": 0.0})
    assert absent("four", four) == []  # once, at the third, not at each build after it
    # a build with too few sendable events to tell does not count, nor does it break the run
    quiet = hourly_builds(4)
    for build in quiet:
        build.add("Purchase", shares={"browser_id": 0.0})
    quiet[1].add("Purchase", sendable=20, shares={"browser_id": 0.0})
    assert len(absent("quiet", quiet)) == 1
    # busy, then a long quiet spell, then busy again: not a site's first builds, not said again
    again = hourly_builds(58)
    for at, build in enumerate(again):
        build.add("Purchase", sendable=30 if 30 <= at < 55 else 200, shares={"browser_id": 0.0})
    assert absent("again", again) == []
    # it was there once in the history: a fall, share_drop_findings' to report
    fell = hourly_builds(3)
    for build in fell:
        build.add("Purchase", shares={"browser_id": 0.0})
    fell[0].add("Purchase", shares={"browser_id": 0.9})
    assert absent("fell", fell) == []


def test_a_share_that_fades_over_days_is_reported_once_against_a_week_ago(tmp_path):
    """A user master that stopped updating: new buyers come without an email, and the share
    falls over four days. The trailing day's average slides down with it, so the share drop
    was never said; against the same builds a week earlier it is, once, as it crosses half."""

    def faded(name, builds, **values):
        history = history_of(tmp_path / name, builds, read=FADE_HISTORY_BUILDS)
        return fade_findings(history, settings(**values)), share_drop_findings(
            history, settings(**values)
        )

    def fading(last: float) -> list:
        builds = hourly_builds(200)
        for at, build in enumerate(builds):
            share = 0.8 if at < 104 else 0.8 - (0.8 - 0.41) * (at - 104) / (198 - 104)
            build.add("Purchase", shares={"email": share})
        builds[-1].add("Purchase", shares={"email": last})
        return builds

    [found], dropped = faded("crossing", fading(0.38))
    assert dropped == []  # the trailing average slid down with it
    assert found.startswith("email share of Purchase is 38%, down from 80% a week ago")
    assert faded("above", fading(0.41)) == ([], [])  # not yet half
    builds = fading(0.38)
    builds.append(hourly_builds(1)[0].add("Purchase", shares={"email": 0.37}))
    builds[-1].built_at = builds[-2].built_at + dt.timedelta(hours=1)
    assert faded("after", builds)[0] == []  # said at the crossing, not at each build after
    # a sudden fall is the trailing average's to say: not said twice
    sudden = hourly_builds(200)
    sudden[-1].add("Purchase", shares={"email": 0.1})
    fade, dropped = faded("sudden", sudden)
    assert fade == [] and [d.split(" share")[0] for d in dropped] == ["email"]


def test_a_fall_in_the_share_of_conversions_sendable_is_reported_once(tmp_path):
    """60% of the orders written as 1234.0 (pandas): far from nearly all rejected, so no
    rejected streak, yet most orders no longer reach LINE."""

    def dropped(name, builds, **values):
        return sendable_drop_findings(history_of(tmp_path / name, builds), settings(**values))

    builds = hourly_builds(25)
    builds[-1].add("Purchase", sendable=90, rejected={"invalid_deduplication_key": 150})
    [found] = dropped("fell", builds)
    assert found.startswith(
        "sendable share of Purchase fell to 38% (90 of 240 conversions in the window) from an"
        " average of 98% over the previous 24 builds; rejected as invalid_deduplication_key 150"
    )
    # the next build, still down: said once
    builds.append(
        Build("build-next", builds[-1].built_at + dt.timedelta(hours=1)).add(
            "Purchase", sendable=90, rejected={"no_user_identifier": 150}
        )
    )
    assert dropped("again", builds) == []
    # a third rejected is not below half the usual share
    builds = hourly_builds(25)
    builds[-1].add("Purchase", sendable=140, rejected={"invalid_deduplication_key": 70})
    assert dropped("third", builds) == []


def empty_findings(tmp_path, builds, **values) -> list[str]:
    return empty_event_findings(history_of(tmp_path, builds), settings(**values))


def empty(build):
    return build.add("Purchase", sendable=0)  # and nothing rejected: no conversion at all


def test_a_conversion_type_without_conversions_is_reported_once_per_streak(tmp_path):
    builds = hourly_builds(10)
    for build in builds[-2:]:
        empty(build)
    assert empty_findings(tmp_path / "two", builds) == []  # 2 builds: not yet
    empty(builds[-3])
    assert empty_findings(tmp_path / "three", builds) == [
        "no conversions of Purchase in 3 builds in a row: is its KARTE event name"
        " (var karte_conversion_event or karte_conversion_events) spelt as in the export,"
        " and does the site still record it?"
    ]
    empty(builds[-4])
    assert empty_findings(tmp_path / "four", builds) == []  # reported at the third already
    assert len(empty_findings(tmp_path / "four-of-4", builds, empty_builds=4)) == 1


def test_a_type_whose_newest_conversion_is_a_day_old_is_not_called_misspelt(tmp_path):
    """Files written every hour, no new row: the run goes on (a quiet spell) and the empty
    streak's alert asked whether the event name was spelt as in the export, though the export
    held conversions of that name, the newest 30 hours old. A name the export has no row of
    (var karte_conversion_event misspelt) is still asked about its spelling."""
    builds = hourly_builds(10)
    for build in builds[-3:]:
        empty(build)
    db = tmp_path / "coverage.duckdb"
    write_coverage(db, builds)
    with duckdb.connect(str(db)) as con:
        con.execute("alter table line_capi_coverage add column export_newest_at timestamp")
        con.execute("update line_capi_coverage set export_newest_at = as_of - interval 30 hour")
    with connect(db, read_only=True) as con:
        history = read_coverage(con, builds=26)
    assert empty_event_findings(history, settings()) == [
        "no conversions of Purchase in 3 builds in a row; the export's newest is 30 h old: has"
        " the site stopped recording it, or the export adding rows (its query, or the site's"
        " tag)? Its files are still written, or the run would have stopped as stale"
        " (docs/karte-datahub.md)"
    ]
    # none of the name in the export at all
    with duckdb.connect(str(db)) as con:
        con.execute("update line_capi_coverage set export_newest_at = null")
    with connect(db, read_only=True) as con:
        history = read_coverage(con, builds=26)
    [found] = empty_event_findings(history, settings())
    assert "is its KARTE event name" in found


def test_a_misspelt_conversion_type_is_reported_after_its_first_builds(tmp_path):
    # Purchase is configured in every build; Registration (misspelt: no rows) from build 7 on
    builds = hourly_builds(9)
    for build in builds[-3:]:
        build.add("Registration", sendable=0)
    found = empty_findings(tmp_path / "a", builds)
    assert [f.split(" in ")[0] for f in found] == ["no conversions of Registration"]
    # the sample's builds do not count towards a real export's streak
    for build in builds[-3:-1]:
        build.is_sample = True
    assert empty_findings(tmp_path / "b", builds) == []
    assert empty_findings(tmp_path / "c", builds, empty_builds=1) != []


def test_an_empty_conversion_type_posts_one_message(db):
    builds = hourly_builds(5)
    for build in builds[-3:]:
        empty(build)
    write_coverage(db, builds)
    with webhook_receiver() as hook, mock_server() as srv:
        assert push(db, srv.url, hook.url).returncode == ExitCode.OK
        texts = hook.texts()
    assert len(texts) == 1
    assert "no conversions of Purchase in 3 builds in a row" in texts[0]
    assert_nothing_secret(*texts)


def streak_findings(tmp_path, builds, **values) -> list[str]:
    """What the two streak rules, no conversions and none sendable, find at the last build."""
    history = history_of(tmp_path, builds)
    found = empty_event_findings(history, settings(**values))
    return found + rejected_event_findings(history, settings(**values))


def all_rejected(build):
    return build.add(
        "Purchase", sendable=0, rejected={"no_user_identifier": 2, "invalid_deduplication_key": 10}
    )


ALL_REJECTED = (
    "no sendable conversions of Purchase in 3 builds in a row: all 12 in the window were rejected"
    " (invalid_deduplication_key 10, no_user_identifier 2): see line_capi_rejected"
    " (docs/troubleshooting.md)"
)


def test_runs_whose_every_conversion_is_rejected_alert(tmp_path):
    """The gap a user hit: an export whose every conversion is rejected (here every
    transaction_id is a "no value" word) ran hour after hour with exit 0 and nothing pending,
    and no alert said so."""
    keys = {"None": 1, "nan": 2, "\\N": 3, "NULL": 4, "undefined": 5}
    export = clock_export(tmp_path / "export", keys, newest_hours=0.1)
    env = {"LINE_CAPI_ALERT_EMPTY_BUILDS": "2"}
    sent = []
    with webhook_receiver() as hook, mock_server() as srv:
        env["LINE_CAPI_ALERT_WEBHOOK"] = hook.url
        for _ in range(2):
            r = sender_run(tmp_path, srv.url, export=export, env=env)
            assert r.returncode == ExitCode.OK, r.stderr
            sent.append(len(hook.posts))
        texts = hook.texts()
        assert srv.stats()["accepted_events"] == 0
    assert sent == [0, 1], texts  # the second build in a row
    assert texts[0].endswith(
        "1 problem\n• no sendable conversions of Conversion in 2 builds in a row: all 5 in the"
        " window were rejected (invalid_deduplication_key 5): see line_capi_rejected"
        " (docs/troubleshooting.md)"
    ), texts[0]
    assert_nothing_secret(*texts)


def test_a_conversion_type_whose_every_conversion_is_rejected_is_reported_once_per_streak(
    tmp_path,
):
    builds = hourly_builds(10)
    for build in builds[-2:]:
        all_rejected(build)
    assert streak_findings(tmp_path / "two", builds) == []  # 2 builds: not yet
    all_rejected(builds[-3])
    assert streak_findings(tmp_path / "three", builds) == [ALL_REJECTED]
    all_rejected(builds[-4])
    assert streak_findings(tmp_path / "four", builds) == []  # reported at the third already
    four = streak_findings(tmp_path / "four-of-4", builds, empty_builds=4)
    assert four == [ALL_REJECTED.replace("in 3 builds", "in 4 builds")]
    # the sample's builds do not count towards a real export's streak
    for build in builds[-3:-1]:
        build.is_sample = True
    assert streak_findings(tmp_path / "sample", builds) == []


def test_a_build_with_fewer_rejected_than_the_share_breaks_a_streak_of_rejected_builds(tmp_path):
    builds = [all_rejected(build) for build in hourly_builds(3)]  # the first 3 builds ever
    builds[1].add("Purchase", sendable=10, rejected={"no_user_identifier": 40})  # 80%
    assert streak_findings(tmp_path / "80%", builds) == []
    assert streak_findings(tmp_path / "80% watched", builds, rejected_share=0.75) == [ALL_REJECTED]
    all_rejected(builds[1])
    assert streak_findings(tmp_path / "none sendable", builds) == [ALL_REJECTED]


def test_nearly_every_conversion_rejected_is_reported_too(tmp_path):
    """One guest checkout path sends its orders without a number: the share alert needs 50
    sendable conversions, so 999 rejected beside 1 sent went unheard."""
    builds = hourly_builds(3)
    for build in builds:
        build.add("Purchase", sendable=1, rejected={"invalid_deduplication_key": 999})
    assert streak_findings(tmp_path, builds) == [
        "most conversions of Purchase rejected in 3 builds in a row: 999 of 1,000 in the window"
        " (invalid_deduplication_key 999): see line_capi_rejected (docs/troubleshooting.md)"
    ]


def test_a_few_rejected_conversions_of_a_quiet_type_are_no_streak(tmp_path):
    """One anonymous order stays in the window for a day, rejected in every build: no alert."""
    builds = hourly_builds(6)
    for build in builds:
        build.add("Purchase", sendable=0, rejected={"no_user_identifier": 4})
    for at in range(1, len(builds) + 1):
        assert streak_findings(tmp_path / str(at), builds[:at]) == []
    builds[-3].add("Purchase", sendable=0, rejected={"no_user_identifier": 5})
    for build in builds[-2:]:
        build.add("Purchase", sendable=0, rejected={"no_user_identifier": 5})
    assert streak_findings(tmp_path / "five", builds) != []  # five is enough


def test_empty_and_all_rejected_builds_make_one_finding_at_a_time(tmp_path):
    """Builds each empty (E) or with every conversion rejected (R), after healthy ones (S): the
    empty builds before the first rejected one are the empty finding's streak, the builds from it
    on the rejected finding's, an empty window among them included; one finding at most per
    build."""
    builds = hourly_builds(13)
    for build, kind in zip(builds, "SEEERERSRREEE", strict=True):
        if kind == "E":
            empty(build)
        elif kind == "R":
            all_rejected(build)
    said = []
    for at in range(len(builds)):
        found = streak_findings(tmp_path / str(at), builds[: at + 1])
        said.append(" & ".join(f.split(" of Purchase")[0] for f in found) or "-")
    assert said == [
        *("-", "-", "-", "no conversions"),  # S E E E
        *("-", "-", "no sendable conversions"),  # R E R: 3 builds from the first R
        *("-", "-", "-", "no sendable conversions"),  # S R R E
        *("-", "no conversions"),  # E E: 3 empty builds, the rejected streak 5 long
    ]
    window = streak_findings(tmp_path / "RRE", builds[:11])[0]
    assert "all 12 in the last window that held any were rejected" in window


def test_the_webhook_url_can_come_from_a_file(db, tmp_path):
    with webhook_receiver() as hook, mock_server(token="another-token") as srv:  # noqa: S106
        secret = tmp_path / "alert-webhook"
        secret.write_text(hook.url + "\n")
        secret.chmod(0o644)  # as the usual umask leaves it: anyone could post to the channel
        env = {"LINE_CAPI_ALERT_WEBHOOK_FILE": str(secret)}
        r = push(db, srv.url, None, **env)
        assert r.returncode == ExitCode.AUTHENTICATION and len(hook.posts) == 1
        assert (
            f"warning: LINE_CAPI_ALERT_WEBHOOK_FILE {secret} is readable by other users"
            f" (mode 0644): chmod 600 {secret}"
        ) in r.stderr.splitlines()
        both = push(db, srv.url, hook.url, **env)
        assert len(hook.posts) == 1
    assert both.returncode == ExitCode.USAGE
    assert both.stderr.strip() == (
        "error: LINE_CAPI_ALERT_WEBHOOK and LINE_CAPI_ALERT_WEBHOOK_FILE are both set: keep one"
    )
    assert_nothing_secret(r.stderr, both.stderr)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LINE_CAPI_ALERT_SHARE_DROP", "1.5", "must be a number between 0 and 1"),
        ("LINE_CAPI_ALERT_MIN_SHARE", "ten", "must be a number between 0 and 1"),
        ("LINE_CAPI_ALERT_PENDING_RUNS", "0", "must be a whole number from 1 to 1,000,000"),
        ("LINE_CAPI_ALERT_SHARE_BUILDS", "2.5", "must be a whole number from 1 to 1,000,000"),
        ("LINE_CAPI_ALERT_MIN_SENDABLE", "\u00b2", "must be a whole number from 1 to 1,000,000"),
        # beyond 64 bits: accepted once, then every push's alert check failed in SQL
        ("LINE_CAPI_ALERT_PENDING_RUNS", "9" * 20, "must be a whole number from 1 to 1,000,000"),
        ("LINE_CAPI_ALERT_WEBHOOK", "http://hooks.example.com" + WEBHOOK_PATH, "must be https"),
        ("LINE_CAPI_ALERT_WEBHOOK", "hooks.example.com" + WEBHOOK_PATH, "not an https URL"),
        # a space pasted inside: posted percent-encoded to a page that does not exist
        ("LINE_CAPI_ALERT_WEBHOOK", "https://hooks.example.com/a " + WEBHOOK_PATH, "spaces or"),
        # the heartbeat's URL, read with the alert settings
        ("LINE_CAPI_HEARTBEAT_URL", "http://hc.example/ping", "must be https"),
    ],
)
def test_a_malformed_alert_setting_is_one_line_and_exit_2(db, name, value, message):
    with mock_server() as srv:
        r = run_cli(["push"], sender_env(db, srv.url, **{name: value}))
        assert srv.stats()["requests"] == 0
    assert r.returncode == ExitCode.USAGE
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"error: {name}")
    assert message in r.stderr
    assert_nothing_secret(r.stderr)
    # --json: the same line as the object's message, not the option parser's generic one
    r = run_cli(["push", "--json"], sender_env(db, "http://127.0.0.1:9", **{name: value}))
    got = json.loads(r.stdout)
    assert got["exit_code"] == ExitCode.USAGE and got["message"].startswith(name), got
    assert message in got["message"]


def test_a_stale_export_posts_one_message_from_sender_run(tmp_path):
    export = clock_export(tmp_path / "export", {"ORD-1": 31}, newest_hours=30)
    with webhook_receiver() as hook, mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export, env={"LINE_CAPI_ALERT_WEBHOOK": hook.url})
        texts = hook.texts()
    assert r.returncode == ExitCode.STALE_EXPORT, r.stderr
    assert len(texts) == 1
    assert "`sender run` exited 11 STALE_EXPORT: KARTE export table " in texts[0]
    assert "is stale: its newest sync_date is 30.0 h old (the limit is 6 h)" in texts[0]
    assert_nothing_secret(texts[0], r.stdout, r.stderr)
    log = (tmp_path / "line_capi_run.log").read_text()
    # what it said, for `sender status` and whoever reads the log after the chat has scrolled
    (sent,) = [line for line in log.splitlines() if "alert sent to the alert webhook" in line]
    assert "(1 finding(s)): `sender run` exited 11 STALE_EXPORT: KARTE export table " in sent
    assert_nothing_secret(log)


def test_a_build_that_failed_in_dbts_words_alerts_the_codes_meaning_not_the_export(tmp_path):
    """Since a build that ran out of memory or disk alerts with the run's own line, the line of
    any other failed build must still stay out: dbt's and DuckDB's words may quote the export
    (here a malformed row past the rows DuckDB samples, with a customer's email in it)."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.2)
    with (export / "page_views.csv").open("a") as file:
        file.writelines(
            f"u{i},2026-01-01T00:00:00+09:00,,pv-x{i},https://x.jp/,,,,,\n" for i in range(21000)
        )
        file.write("u9,2026-01-01T00:00:00+09:00,,pv-9,https://x.jp/?m=taro@mail.example,,,,,,x\n")
    with webhook_receiver() as hook, mock_server() as srv:
        env = {"LINE_CAPI_ALERT_WEBHOOK": hook.url}
        r = sender_run(tmp_path, srv.url, export=export, env=env)
        texts = hook.texts()
    assert r.returncode == ExitCode.BUILD_FAILED, r.stderr
    assert "failed: Invalid Input Error" in r.stderr  # the run's own console says why
    assert len(texts) == 1 and texts[0].endswith(
        "• `sender run` exited 12 BUILD_FAILED: sender run: dbt source freshness or dbt build"
        " failed, ran out of memory or disk, or was killed; nothing was sent"
    ), texts
    assert "mail.example" not in texts[0] and "CSV" not in texts[0]


def test_a_disk_too_full_for_the_lock_file_is_one_line_and_an_alert(tmp_path):
    """A disk so full that the run's pid did not fit in its lock file: exit 70 (a bug, by its
    code), a traceback that did not fit either, and no alert."""
    export = clock_export(tmp_path / "export", {"ORD-1": 2}, newest_hours=0.5)
    env = {"LINE_CAPI_FAULT_POINT": "lock_write:1:enospc"}
    with webhook_receiver() as hook, mock_server() as srv:
        env["LINE_CAPI_ALERT_WEBHOOK"] = hook.url
        r = sender_run(tmp_path, srv.url, export=export, env=env)
        texts = hook.texts()
    assert r.returncode == ExitCode.DATABASE_ERROR, r.stderr
    line = (
        f"cannot write the lock file {tmp_path / 'line_capi.duckdb.lock'}: No space left on"
        " device (a full disk? free disk space)"
    )
    errors = [x for x in r.stderr.splitlines() if "error" in x]
    assert len(errors) == 1 and f"sender run: error: {line}; log: " in errors[0], r.stderr
    assert "Traceback" not in r.stderr + (tmp_path / "line_capi_run.log").read_text()
    # the run's own line, the cause, rather than the label of every exit 10
    assert texts[0].endswith(f"• `sender run` exited 10 DATABASE_ERROR: {line}"), texts
    assert srv.stats()["accepted_events"] == 0


def test_a_run_its_settings_stop_is_logged_alerted_and_shown_by_status(tmp_path):
    """A token file that cannot be read stops the run before it starts: under cron nobody reads
    stderr, so the run log, the alert and `sender status` say so, as for any failed run."""
    missing = tmp_path / "secrets" / "access-token"
    env = {"LINE_ACCESS_TOKEN": "", "LINE_ACCESS_TOKEN_FILE": str(missing)}
    duckdb.connect(str(tmp_path / "line_capi.duckdb")).close()  # earlier hours built it
    with webhook_receiver() as hook, mock_server() as srv:
        r = sender_run(tmp_path, srv.url, env={**env, "LINE_CAPI_ALERT_WEBHOOK": hook.url})
        assert srv.stats()["requests"] == 0
        texts = hook.texts()
    assert r.returncode == ExitCode.USAGE, r.stderr
    error = r.stderr.splitlines()[0]
    assert error.startswith("error: LINE_ACCESS_TOKEN_FILE") and str(missing) in error, r.stderr
    assert len(texts) == 1 and "`sender run` exited 2" in texts[0], texts
    log = (tmp_path / "line_capi_run.log").read_text()
    assert f"run: {error}" in log and "run: done: exit 2" in log, log
    status = run_cli(["status"], {"LINE_CAPI_DUCKDB": str(tmp_path / "line_capi.duckdb")})
    assert "exit 2 USAGE: LINE_ACCESS_TOKEN_FILE" in status.stdout, status.stdout + status.stderr
    assert_nothing_secret(log, r.stderr, status.stdout, *texts)
    # a malformed alert setting is such a stop too: logged and shown, though it cannot alert
    r = sender_run(tmp_path, "http://127.0.0.1:9", env={"LINE_CAPI_ALERT_PENDING_RUNS": "0"})
    assert r.returncode == ExitCode.USAGE and r.stderr.count("\n") == 1, r.stderr
    status = run_cli(["status"], {"LINE_CAPI_DUCKDB": str(tmp_path / "line_capi.duckdb")})
    assert "exit 2 USAGE: LINE_CAPI_ALERT_PENDING_RUNS='0' must be" in status.stdout, status.stdout


def test_a_settings_stop_whose_run_log_refuses_its_later_lines_prints_them(
    tmp_path, monkeypatch, capsys
):
    """The lines a settings stop says after its run (a lost alert) go to its run log, which it
    opens again for them: a log refused then (replaced by a folder, its folder's rights
    changed) leaves them on the console, not a traceback."""
    db = tmp_path / "line_capi.duckdb"
    duckdb.connect(str(db)).close()  # earlier hours built it: the stop alerts
    opened = []

    def refused_after_the_run(path, *, rotate=True):
        opened.append(rotate)
        if not rotate:
            raise RunLogError(path, "refused for this test")
        return RunLog(path, rotate=rotate)

    monkeypatch.setattr(cli_run, "RunLog", refused_after_the_run)
    settings = AlertSettings(webhook=Secret(closed_port_url()))
    failure = Failure("error: LINE_TAG_ID is not set", ExitCode.USAGE)
    cli_run.stopped_by_settings(failure, settings, database=str(db), log_file=None)
    assert False in opened, opened
    err = capsys.readouterr().err
    assert "alert: `sender run` exited 2 USAGE" in err, err
    assert "warning: alert not delivered: the alert webhook cannot be reached" in err, err
    log = (tmp_path / "line_capi_run.log").read_text()
    assert "run: done: exit 2" in log and "alert not delivered" not in log, log


def test_a_settings_stops_lost_alert_is_posted_by_the_next_run(tmp_path):
    """A run stopped by its settings said its lost alert on stderr only: the next run had nothing
    to read back, and the streak alerts once. Its lines go to the run log too, and are carried."""
    missing = tmp_path / "secrets" / "access-token"
    env = {"LINE_ACCESS_TOKEN": "", "LINE_ACCESS_TOKEN_FILE": str(missing)}
    duckdb.connect(str(tmp_path / "line_capi.duckdb")).close()
    lost = {**env, "LINE_CAPI_ALERT_WEBHOOK": closed_port_url()}
    r = sender_run(tmp_path, "http://127.0.0.1:9", env=lost)
    assert r.returncode == ExitCode.USAGE, r.stderr
    assert "warning: alert not delivered: the alert webhook cannot be reached" in r.stderr
    log = (tmp_path / "line_capi_run.log").read_text()
    assert "run: alert: `sender run` exited 2 USAGE: LINE_ACCESS_TOKEN_FILE" in log, log
    with webhook_receiver() as hook:
        r = sender_run(
            tmp_path, "http://127.0.0.1:9", env={**env, "LINE_CAPI_ALERT_WEBHOOK": hook.url}
        )
        texts = hook.texts()
    assert r.returncode == ExitCode.USAGE, r.stderr
    assert len(texts) == 1, texts
    assert "`sender run` exited 2 USAGE: LINE_ACCESS_TOKEN_FILE" in texts[0]
    assert "(not delivered after the run that finished 20" in texts[0], texts[0]


def test_a_run_that_keeps_failing_alerts_once_then_at_each_reminder(tmp_path):
    export = clock_export(tmp_path / "export", {"ORD-1": 31}, newest_hours=30)
    env = {"LINE_CAPI_ALERT_REPEAT_RUNS": "2"}
    sent = []
    with webhook_receiver() as hook, mock_server() as srv:
        for _ in range(3):
            env["LINE_CAPI_ALERT_WEBHOOK"] = hook.url
            r = sender_run(tmp_path, srv.url, export=export, env=env)
            assert r.returncode == ExitCode.STALE_EXPORT, r.stderr
            sent.append(len(hook.posts))
        texts = hook.texts()
    assert sent == [1, 1, 2]  # the second hour of the outage stays quiet
    assert "(still: 3 runs in a row)" in texts[1] and "still" not in texts[0]


def test_a_failing_run_after_another_failure_alerts_anew():
    def finding(code, earlier, repeat=24):
        return run_exit_finding(code, error="why", earlier_codes=earlier, repeat_runs=repeat)

    assert finding(12, [0, 12]) is None  # the same failure as the hour before
    # a build that failed in dbt's words (which may quote the export): the code's label
    no_words = run_exit_finding(12, error=None, earlier_codes=[11, 11], repeat_runs=24)
    assert no_words.startswith("`sender run` exited 12 BUILD_FAILED: sender run:")
    # ... in the run's own (a full disk, memory, a kill): those words
    assert finding(12, [11, 11]) == "`sender run` exited 12 BUILD_FAILED: why"
    assert finding(10, [0]) == "`sender run` exited 10 DATABASE_ERROR: why"
    assert finding(11, [12]) == "`sender run` exited 11 STALE_EXPORT: why"
    # the run's own diagnosis, not the code's label ("a token, a tag id...": the run log)
    assert finding(2, [0]) == "`sender run` exited 2 USAGE: why"
    assert finding(5, [0]) == "`sender run` exited 5 DATABASE_LOCKED: why"
    assert finding(11, [11] * 24).endswith(": why (still: 25 runs in a row)")
    assert finding(0, []) is None and finding(1, [1]) is None


def test_runs_that_keep_finding_the_lock_held_or_keep_being_stopped_alert():
    """One run that found another running, or was stopped, is normal; three in a row are a
    run that hangs (cron) or the scheduler's timeout stopping each (systemd, GitHub Actions)."""

    def finding(code, earlier):
        return run_exit_finding(
            code, error="why", earlier_codes=earlier, repeat_runs=24, stuck_runs=3
        )

    assert finding(13, [0]) is None and finding(13, [0, 13]) is None
    assert finding(13, [0, 13, 13]) == (
        "`sender run` exited 13 ALREADY_RUNNING 3 runs in a row: another run has held the lock"
        " all that time: one hangs (its process is still there), or runs take longer than the hour"
    )
    stopped = finding(130, [130, 130])
    assert stopped.startswith("`sender run` exited 130 INTERRUPTED 3 runs in a row")
    assert finding(13, [13] * 3) is None  # the 4th: reminded a day later, not every hour
    assert finding(13, [13] * 26).startswith("`sender run` exited 13 ALREADY_RUNNING 27 runs")
    assert finding(130, [13, 13]) is None  # a different code starts its own streak


def test_without_a_webhook_a_run_prints_what_the_webhook_would_get_once(tmp_path):
    """A job whose only channel is cron's mail heard nothing of an outage but each hour's exit
    code. Without a webhook the run prints the alert's findings as `alert:` lines, at the run
    that reaches the streak only; a failed run's own error line is not said twice."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1, "ORD-2": 2}, newest_hours=0.1)
    env = {"LINE_CAPI_MAX_RETRIES": "0", "LINE_CAPI_ALERT_PENDING_RUNS": "2"}
    alerts = []
    with mock_server() as srv:
        srv.inject("503", 100)
        for _ in range(3):
            r = sender_run(tmp_path, srv.url, export=export, env=env)
            assert r.returncode == ExitCode.PENDING_LEFT, r.stderr
            alerts.append([x for x in r.stderr.splitlines() if "sender run: alert: " in x])
    assert [len(found) for found in alerts] == [0, 1, 0], alerts
    assert "events left pending by 2 runs in a row" in alerts[1][0]
    assert_nothing_secret(*alerts[1])
    with mock_server(token="another-token") as srv:  # noqa: S106
        r = sender_run(tmp_path, srv.url, export=export)
    assert r.returncode == ExitCode.AUTHENTICATION, r.stderr
    assert "alert: " not in r.stderr  # its exit code and error line say it


def test_sender_run_alerts_once_for_a_push_it_started(tmp_path):
    """The push that `sender run` starts gets no webhook: one message, from the run."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.1)
    with webhook_receiver() as hook, mock_server(token="another-token") as srv:  # noqa: S106
        r = sender_run(tmp_path, srv.url, export=export, env={"LINE_CAPI_ALERT_WEBHOOK": hook.url})
        texts = hook.texts()
    assert r.returncode == ExitCode.AUTHENTICATION, r.stderr
    assert len(texts) == 1, texts
    assert "`sender run` exited 3 AUTHENTICATION" in texts[0]
    assert_nothing_secret(texts[0], r.stdout, r.stderr)


def test_a_token_quoted_in_a_finding_is_not_posted(monkeypatch):
    """A run's own error line goes into its alert (exit 2: a setting it refused), and a token
    pasted into another setting by mistake would be in that line."""
    from sender.alerts import Where, notify
    from sender.settings import Secret

    monkeypatch.setenv("LINE_ACCESS_TOKEN", TOKEN)
    said: list[str] = []
    with webhook_receiver() as hook:
        notify(
            settings(webhook=Secret(hook.url)),
            Where.from_values(tag_id=TAG_ID, endpoint=None),
            [f"`sender run` exited 2 USAGE: invalid dbt var currency={TOKEN}: expected ISO 4217"],
            said.append,
        )
        # the header names the endpoint, where a token pasted into it comes back lowercased
        notify(
            settings(webhook=Secret(hook.url)),
            Where.from_values(tag_id=TAG_ID, endpoint=f"https://{TOKEN.lower()}.example"),
            ["`sender run` exited 2 USAGE: LINE_CAPI_ENDPOINT holds the access token"],
            said.append,
        )
        texts = hook.texts()
    assert len(texts) == 2 and "invalid dbt var currency=********" in texts[0]
    assert " at ********.example" in texts[1]
    assert_nothing_secret(*texts, *said)
    assert TOKEN.lower() not in "".join(texts).lower()


def test_a_lost_alert_is_carried_once_with_the_run_that_found_it():
    lost = ("2026-12-07T10:40:05Z", ["a", "b (not delivered after the run that finished 09:40)"])
    assert carried_findings(lost, ["c"]) == [
        "a (not delivered after the run that finished 2026-12-07T10:40:05Z)",
        "b (not delivered after the run that finished 09:40)",  # its first run's time kept
    ]
    assert carried_findings(lost, ["a", "b"]) == []  # found again by this run: said once
    assert carried_findings(None, ["c"]) == []
    many = ("t", [f"finding {i:02}" for i in range(30)])
    assert len(carried_findings(many, [])) == MAX_CARRIED


def test_a_database_upgraded_from_0_1_0_is_told_of_an_identifier_never_there(tmp_path):
    """0.1.0 kept coverage too: an upgraded database held five builds before this version's
    first, so the count of builds was never three at this version's builds, and a site whose
    page views never had the LINE Tag's cookie heard nothing. 0.1.0's rows have no late count."""

    def absent(name: str, old: int, new: int) -> list[str]:
        builds = hourly_builds(old + new)
        for build in builds:
            build.add("Purchase", shares={"browser_id": 0.0})
        db = tmp_path / name / "coverage.duckdb"
        db.parent.mkdir()
        write_coverage(db, builds)
        con = duckdb.connect(str(db))
        con.execute("alter table line_capi_coverage add column late_conversions bigint")
        con.execute("alter table line_capi_coverage add column late_oldest_at timestamp")
        new_ids = [b.invocation_id for b in builds[old:]]
        con.execute(
            "update line_capi_coverage set late_conversions = 0 where invocation_id in"
            f" ({', '.join('?' * len(new_ids))})",
            new_ids,
        )
        history = read_coverage(con, builds=26)
        con.close()
        return absent_identifier_findings(history, settings())

    assert absent("two", old=5, new=2) == []
    [found] = absent("three", old=5, new=3)
    assert found.startswith("browser_id in none of the 200 sendable Purchase events, nor in any")
    assert absent("four", old=5, new=4) == []  # once
    assert absent("long", old=40, new=3) != []  # more old builds than the history reads


def test_a_conversion_type_the_last_build_made_and_this_one_leaves_out_is_alerted_at_once(
    tmp_path,
):
    """A site that adds a second conversion type with karte_conversion_events: {signup: ...}
    alone replaces the default buy sent as Conversion: every order then went neither to LINE
    nor to line_capi_rejected, with exit 0 and not a word. The run says so, and alerts, once."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.2)
    only_signup = "{karte_conversion_events: {signup: CompleteRegistration}}"
    warned = (
        "warning: dbt test assert_no_conversion_type_left_out warned (Conversion left out): the"
        " previous build made these LINE event names and this one is not configured for them"
    )
    alert = "run: alert: a LINE event name the previous build made is not in this build"
    with mock_server() as srv:
        first = sender_run(tmp_path, srv.url, export=export)
        assert first.returncode == 0 and srv.stats()["accepted_events"] == 1, first.stderr
        assert warned not in first.stderr and alert not in first.stderr
        r = sender_run(tmp_path, srv.url, export=export, vars_=only_signup)
        assert r.returncode == 0, r.stderr
        assert warned in r.stderr and alert in r.stderr, r.stderr
        assert "list buy in it too" in r.stderr
        # said once: the next build is compared with this one
        again = sender_run(tmp_path, srv.url, export=export, vars_=only_signup)
        assert again.returncode == 0, again.stderr
        assert "assert_no_conversion_type_left_out" not in again.stderr
        assert alert not in again.stderr

"""The heartbeat: one GET to an outside monitor's URL after each job that exited 0, so that a job
that stops running at all is heard of; never the URL in any output, never a changed exit code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from monitoring_fixtures import (
    HEARTBEAT_PATH,
    WEBHOOK_PATH,
    closed_port_url,
    hourly_builds,
    webhook_receiver,
    write_coverage,
)
from schedule_fixtures import clock_export, sender_run
from sender_fixtures import FAST, TOKEN, mock_server, run_cli, sender_env

from sender.exit_codes import ExitCode

pytestmark = pytest.mark.payload(events=6)  # the db fixture (conftest.py)


def assert_url_not_shown(*texts: str) -> None:
    for text in texts:
        assert HEARTBEAT_PATH not in text and "hEaRtBeAt" not in text, text
        assert TOKEN not in text and WEBHOOK_PATH not in text


def push(db, url: str, heartbeat: str, *args: str):
    env = sender_env(db, url, LINE_CAPI_HEARTBEAT_URL=heartbeat)
    return run_cli(["push", *FAST, *args], env)


def test_a_run_pings_once_when_it_exits_0_and_not_when_it_fails(tmp_path):
    """Once per job: the push that `sender run` starts does not ping for itself. A run that
    stops (a stale export) does not ping, so a monitor hears of a job failing hour after hour
    as it hears of one that no longer runs."""
    stale = clock_export(tmp_path / "stale", {"ORD-1": 31}, newest_hours=30)
    fresh = clock_export(tmp_path / "fresh", {"ORD-1": 1}, newest_hours=0.1)
    with webhook_receiver() as monitor, mock_server() as srv:
        env = {"LINE_CAPI_HEARTBEAT_URL": monitor.heartbeat_url}
        failed = sender_run(tmp_path, srv.url, export=stale, env=env)
        assert failed.returncode == ExitCode.STALE_EXPORT, failed.stderr
        assert monitor.gets == []
        ok = sender_run(tmp_path, srv.url, export=fresh, env=env)
        assert ok.returncode == ExitCode.OK, ok.stderr
        assert monitor.gets == [HEARTBEAT_PATH]
    assert "sender run: heartbeat sent" in ok.stderr
    log = (tmp_path / "line_capi_run.log").read_text()
    assert log.count("heartbeat sent") == 1
    # `sender status` tells the job's ping with the job
    status = run_cli(["status"], {"LINE_CAPI_DUCKDB": str(tmp_path / "line_capi.duckdb")})
    lines = status.stdout.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("last job"))
    assert lines[i].endswith("exit 0 OK") and lines[i + 1] == "          heartbeat sent"
    assert_url_not_shown(failed.stdout, failed.stderr, ok.stdout, ok.stderr, log)


def test_a_run_whose_alert_the_webhook_did_not_take_does_not_ping(tmp_path):
    """An alert of a run that exits 0 (a conversion type without conversions) to a webhook that
    is gone: it was one warning line nobody reads under systemd or Kubernetes, while the ping
    told the outside monitor all was well. The ping is held back, so the monitor reports the
    job, and `sender status` says the alert was lost."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.1)
    with webhook_receiver() as monitor, mock_server() as srv:
        env = {
            "LINE_CAPI_HEARTBEAT_URL": monitor.heartbeat_url,
            "LINE_CAPI_ALERT_WEBHOOK": closed_port_url(),
            "LINE_CAPI_ALERT_EMPTY_BUILDS": "1",
        }
        r = sender_run(
            tmp_path, srv.url, export=export, env=env, vars_="{karte_conversion_event: order}"
        )
        assert r.returncode == ExitCode.OK, r.stderr
        assert monitor.gets == []
    assert "warning: alert not delivered: the alert webhook cannot be reached" in r.stderr
    assert "alert: no conversions of Conversion in 1 builds in a row" in r.stderr
    assert "warning: heartbeat not sent: the alert webhook did not take this run's alert" in (
        r.stderr
    )
    status = run_cli(["status"], {"LINE_CAPI_DUCKDB": str(tmp_path / "line_capi.duckdb")})
    lines = status.stdout.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("last job"))
    assert lines[i + 1].startswith("          alert not delivered: the alert webhook cannot be")
    assert lines[i + 2].startswith("          heartbeat not sent: the alert webhook did not take")
    # the next run has nothing of its own to alert on (the streak alerts once), and the webhook
    # still refuses: the lost alert is posted again, lost again, and the ping held back again
    with webhook_receiver() as monitor, mock_server() as srv:
        env["LINE_CAPI_HEARTBEAT_URL"] = monitor.heartbeat_url
        again = sender_run(tmp_path, srv.url, export=export, env=env)
        assert again.returncode == ExitCode.OK and monitor.gets == [], again.stderr
    finished = re.findall(r"(\S+) run: done: exit 0", log_text(tmp_path))[0]
    (carried,) = [x for x in again.stderr.splitlines() if " sender run: alert: " in x]
    carried = carried.split(" sender run: alert: ", 1)[1]
    assert carried.startswith("no conversions of Conversion in 1 builds in a row"), carried
    assert carried.endswith(f" (not delivered after the run that finished {finished})")
    # the webhook back: the next run posts it once, with when it was found, and pings
    with webhook_receiver() as monitor, mock_server() as srv:
        env["LINE_CAPI_HEARTBEAT_URL"] = monitor.heartbeat_url
        env["LINE_CAPI_ALERT_WEBHOOK"] = monitor.url
        back = sender_run(tmp_path, srv.url, export=export, env=env)
        assert back.returncode == ExitCode.OK and monitor.gets == [HEARTBEAT_PATH], back.stderr
        (text,) = monitor.texts()
        assert carried in text
        # delivered: not posted again
        after = sender_run(tmp_path, srv.url, export=export, env=env)
        assert after.returncode == ExitCode.OK, after.stderr
        assert len(monitor.texts()) == 1 and len(monitor.gets) == 2


def test_a_push_pings_but_not_a_dry_run_a_test_send_or_a_failed_push(db):
    with webhook_receiver() as monitor, mock_server() as srv:
        hb = monitor.heartbeat_url
        assert push(db, srv.url, hb, "--dry-run").returncode == ExitCode.OK
        assert push(db, srv.url, hb, "--test", "--resend", "--limit", "1").returncode == 0
        assert monitor.gets == []
        r = push(db, srv.url, hb)
        assert r.returncode == ExitCode.OK, r.stderr
        assert monitor.gets == [HEARTBEAT_PATH]
        # nothing left to send is a push that succeeded all the same
        assert push(db, srv.url, hb).returncode == ExitCode.OK
        assert len(monitor.gets) == 2
    with webhook_receiver() as monitor, mock_server(token="another-token") as srv:  # noqa: S106
        refused = push(db, srv.url, monitor.heartbeat_url, "--resend")
        assert refused.returncode == ExitCode.AUTHENTICATION
        assert monitor.gets == []
    assert "heartbeat sent" in r.stderr
    assert_url_not_shown(r.stdout, r.stderr, refused.stderr)


def test_a_push_whose_alert_the_webhook_did_not_take_does_not_ping(db):
    """`dbt build && sender push` as the job: the same as for `sender run`."""
    builds = hourly_builds(3)
    empty = builds[-1].add("Purchase", sendable=0)
    assert empty.events["Purchase"]["sendable"] == 0
    write_coverage(db, builds)
    with webhook_receiver() as monitor, mock_server() as srv:
        env = sender_env(
            db,
            srv.url,
            LINE_CAPI_HEARTBEAT_URL=monitor.heartbeat_url,
            LINE_CAPI_ALERT_WEBHOOK=closed_port_url(),
            LINE_CAPI_ALERT_EMPTY_BUILDS="1",
        )
        r = run_cli(["push", *FAST], env)
        assert r.returncode == ExitCode.OK, r.stderr
        assert monitor.gets == []
    assert "alert: no conversions of Purchase in 1 builds in a row" in r.stderr
    assert "warning: heartbeat not sent: the alert webhook did not take" in r.stderr


@pytest.mark.parametrize(
    ("status", "listening", "said"),
    [
        (503, True, "answered HTTP 503"),
        (301, True, "answered HTTP 301"),  # a redirect is said, not followed
        (200, False, "cannot be reached (ConnectionError)"),
    ],
)
def test_a_ping_that_fails_is_a_warning_and_the_exit_code_stays(db, status, listening, said):
    with webhook_receiver(status) as monitor, mock_server() as srv:
        r = push(db, srv.url, monitor.heartbeat_url if listening else closed_port_url())
    assert r.returncode == ExitCode.OK, r.stderr
    assert f"warning: heartbeat not delivered: the heartbeat URL {said}" in r.stderr
    assert "heartbeat sent" not in r.stderr
    assert_url_not_shown(r.stdout, r.stderr)


def test_the_url_may_come_from_a_file(db, tmp_path):
    url_file = tmp_path / "heartbeat-url"
    with webhook_receiver() as monitor, mock_server() as srv:
        url_file.write_text(monitor.heartbeat_url + "\n")
        url_file.chmod(0o600)
        env = sender_env(db, srv.url, LINE_CAPI_HEARTBEAT_URL_FILE=str(url_file))
        r = run_cli(["push", *FAST], env)
        assert r.returncode == ExitCode.OK, r.stderr
        assert monitor.gets == [HEARTBEAT_PATH]
        assert "warning" not in r.stderr
        url_file.chmod(0o644)  # anyone on the machine could ping it: one warning, the ping goes
        loose = run_cli(["push", *FAST], env)
        assert loose.returncode == ExitCode.OK, loose.stderr
        assert monitor.gets == [HEARTBEAT_PATH] * 2
    assert [line for line in loose.stderr.splitlines() if "warning" in line] == [
        f"warning: LINE_CAPI_HEARTBEAT_URL_FILE {url_file} is readable by other users (mode 0644):"
        f" chmod 600 {url_file}"
    ]
    assert_url_not_shown(r.stdout, r.stderr, loose.stdout, loose.stderr)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "http://hc-ping.example/5e1fb0d2-hEaRtBeAt",
            "error: LINE_CAPI_HEARTBEAT_URL is plain http: the heartbeat URL must be https"
            " (http only to a loopback host)",
        ),
        (
            "hc-ping.com/5e1fb0d2-hEaRtBeAt",
            "error: LINE_CAPI_HEARTBEAT_URL is not an https URL (the heartbeat URL)",
        ),
        (  # a port out of range: "not delivered (InvalidURL)" after every good run
            "https://hc-ping.com:99999/5e1fb0d2-hEaRtBeAt",
            "error: LINE_CAPI_HEARTBEAT_URL is not an https URL (the heartbeat URL)",
        ),
        (  # pasted with a line break in it: requests would send it percent-encoded
            "https://hc-ping.com/5e1fb0d2-\nhEaRtBeAt",
            "error: LINE_CAPI_HEARTBEAT_URL contains spaces or control characters"
            " (the heartbeat URL)",
        ),
    ],
)
def test_a_malformed_url_stops_the_push_and_the_run_before_anything(db, tmp_path, url, message):
    with mock_server() as srv:
        pushed = push(db, srv.url, url)
        ran = sender_run(tmp_path, srv.url, env={"LINE_CAPI_HEARTBEAT_URL": url})
        assert srv.stats()["requests"] == 0
    for r in (pushed, ran):
        assert r.returncode == ExitCode.USAGE
        assert message in r.stderr.splitlines(), r.stderr
        assert_url_not_shown(r.stdout, r.stderr)
    # left in the run log, where sender status shows the last job
    assert message.removeprefix("error: ") in (tmp_path / "line_capi_run.log").read_text()


def log_text(tmp_path: Path) -> str:
    return (tmp_path / "line_capi_run.log").read_text()

"""Knowing that it works: coverage in `sender status`, and the HTML page of `sender report`."""

from __future__ import annotations

import json
import re
import stat

import duckdb
import pytest
from monitoring_fixtures import IDENTIFIERS, Build, hourly_builds, write_coverage
from schedule_fixtures import clock_export, sender_run
from sender_fixtures import (
    TAG_ID,
    TOKEN,
    invoke,
    make_event,
    mock_server,
    push_now,
    run_cli,
    sender_env,
    write_payload,
)

from sender.exit_codes import ExitCode

HOSTILE = '<script>alert("x")</script>&<img src="https://evil.example/p.png">'


@pytest.fixture
def sent_db(tmp_path):
    """A payload sent to the mock server (a real ledger), and no coverage table yet."""
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(i) for i in range(12)])
    with mock_server() as srv:
        summary = push_now(db, srv.url)
    assert summary.accepted == 12
    return db


def test_status_shows_the_latest_builds_coverage_next_to_the_ledger(sent_db):
    builds = hourly_builds(3, event_names=("Purchase", "CompleteRegistration"))
    builds[-1].add(
        "Purchase", sendable=120, shares={"click_id": 0.25}, rejected={"no_user_identifier": 7}
    )
    builds[-1].add("CompleteRegistration", sendable=0)  # configured, no conversion this time
    write_coverage(sent_db, builds)

    r = invoke(["status", "--json"], sender_env(sent_db))
    assert r.exit_code == 0, r.output
    status = json.loads(r.stdout)
    assert status["counts"]["accepted"] == 12  # the ledger is still there
    coverage = status["coverage"]
    assert coverage["invocation_id"] == "build-002"
    assert coverage["built_at"] == f"{builds[-1].built_at.isoformat(sep=' ')}Z"
    assert coverage["as_of"] == coverage["built_at"]
    purchase = coverage["events"]["Purchase"]
    assert purchase["sendable"] == 120 and purchase["rejected"] == 7
    assert purchase["conversions_in_window"] == 127
    assert purchase["rejected_by_reason"]["no_user_identifier"] == 7
    assert purchase["rejected_by_reason"]["invalid_sync_date"] == 0
    assert purchase["identifiers"]["click_id"] == {"count": 30, "share": 0.25}
    # a table of an earlier version, without the late conversions' columns: none
    assert (purchase["late_conversions"], purchase["late_oldest_at"]) == (0, None)
    assert set(purchase["identifiers"]) == set(IDENTIFIERS)
    empty = coverage["events"]["CompleteRegistration"]
    assert empty["sendable"] == 0 and empty["identifiers"]["email"] == {"count": 0, "share": None}

    text = invoke(["status"], sender_env(sent_db)).stdout
    assert "coverage  build build-002" in text
    assert "Purchase: 127 in window, 120 sendable, 7 rejected" in text
    assert "click_id 30 (25%)" in text and "rejected: no_user_identifier 7" in text
    assert "CompleteRegistration: 0 in window, 0 sendable, 0 rejected" in text


def test_a_new_rejection_reason_column_needs_no_sender_change(sent_db):
    write_coverage(sent_db, hourly_builds(1))
    with duckdb.connect(str(sent_db)) as con:
        con.execute("alter table line_capi_coverage add column rejected_blocked_by_filter bigint")
        con.execute("update line_capi_coverage set rejected_blocked_by_filter = 5")
    status = json.loads(invoke(["status", "--json"], sender_env(sent_db)).stdout)
    assert status["coverage"]["events"]["Purchase"]["rejected_by_reason"]["blocked_by_filter"] == 5


def test_without_the_coverage_table_every_command_says_no_coverage_yet(sent_db, tmp_path):
    r = invoke(["status", "--json"], sender_env(sent_db))
    assert r.exit_code == 0 and json.loads(r.stdout)["coverage"] is None
    r = invoke(["status"], sender_env(sent_db))
    assert r.exit_code == 0 and "coverage  no coverage yet" in r.stdout
    page = tmp_path / "report.html"
    r = invoke(["report", "--output", str(page)], sender_env(sent_db))
    assert r.exit_code == 0, r.output
    text = page.read_text()
    assert "No coverage yet" in text
    assert TAG_ID in text and "accepted" in text  # the sends are still shown


def test_the_report_is_one_private_self_contained_page_with_charts(sent_db, tmp_path):
    builds = hourly_builds(50, event_names=("Purchase", HOSTILE))
    builds[-1].add("Purchase", shares={"click_id": 0.0}, rejected={"timestamp_out_of_range": 2})
    write_coverage(sent_db, builds)
    with mock_server() as other:  # a second destination, where the run left rows pending
        other.inject("503", 5, retry_after=None)
        assert push_now(sent_db, other.url, max_retries=0).left_pending == 12
    page = tmp_path / "report.html"
    page.write_text("<!doctype html><p>an older report")
    page.chmod(0o644)  # replaced, and no longer readable by others

    r = run_cli(["report", "--output", str(page)], sender_env(sent_db))
    assert r.returncode == 0, r.stderr
    assert str(page) in r.stdout
    assert stat.S_IMODE(page.stat().st_mode) == 0o600
    text = page.read_text()
    assert text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")
    # shares and rejections per event name, sends per destination
    assert text.count("<svg") == 2 * 2 + 2
    assert f"{other.url}, LINE Tag {TAG_ID}" in text
    assert "<td>unavailable</td><td>1</td><td>0</td><td>0</td><td>0</td><td>12</td>" in text
    assert "<polyline" in text and "<text" in text  # lines, axes and labels
    # the time axis dated with its year: 400 days of history hold two of each day and month
    assert re.search(r'text-anchor="(?:start|middle|end)">20\d\d-\d\d-\d\d \d\d:\d\d</text>', text)
    for identifier in IDENTIFIERS:  # labelled, not told apart by colour alone
        assert f">{identifier} " in text
    assert "<script" not in text.lower()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.IGNORECASE)
    assert "url(http" not in text and "@import" not in text
    assert HOSTILE not in text and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    # 48 builds by default, newest last; the broken click id of the latest build is in the table
    assert "build-001" not in text and "48 builds" in text
    assert "<td>click_id</td><td>0</td><td>0%</td>" in text
    assert "timestamp_out_of_range" in text and f"LINE Tag {TAG_ID}" in text
    # counts, names, dates and destinations only
    assert TOKEN not in text and "order-00000" not in text
    assert not re.search(r"\b[0-9a-f]{64}\b", text)
    assert len(text.encode()) < 300_000


def test_the_report_counts_a_killed_run_from_what_it_recorded(sent_db):
    """A killed run never writes its counts (start_run's row is all it leaves); its sends are in
    the ledger, and the report's "Sends per run" shows them rather than zeros."""
    from sender.report import read_runs

    con = duckdb.connect(str(sent_db))
    con.execute(
        "update line_capi_send_runs set finished_at = null, accepted = null, rejected = null,"
        " expired = null, left_pending = null, outcome = null, exit_code = null"
    )
    [[run]] = read_runs(con, 10).values()
    con.close()
    assert (run.outcome, run.exit_code, run.parts()) == (None, None, (12, 0, 0, 0))


def test_report_builds_and_a_bad_output_path(sent_db, tmp_path):
    write_coverage(sent_db, hourly_builds(5))
    page = tmp_path / "few.html"
    r = invoke(["report", "-o", str(page), "--builds", "2"], sender_env(sent_db))
    assert r.exit_code == 0 and "2 builds" in page.read_text()
    (tmp_path / "a-file").write_text("not a folder")
    r = run_cli(["report", "-o", str(tmp_path / "a-file" / "r.html")], sender_env(sent_db))
    assert r.returncode == ExitCode.USAGE
    assert r.stderr.strip().startswith("error: cannot write") and len(r.stderr.splitlines()) == 1
    r = run_cli(["report", "-o", str(page)], sender_env(tmp_path / "missing.duckdb"))
    assert r.returncode == ExitCode.NO_PAYLOAD and "Traceback" not in r.stderr
    # an unset $OUT (-o ""), a folder: one line, exit 2, nothing written
    for output, said in (("", "--output is empty or '.'"), (str(tmp_path), "is a folder")):
        r = run_cli(["report", "-o", output], sender_env(sent_db))
        assert r.returncode == ExitCode.USAGE, r.stderr
        assert said in r.stderr and len(r.stderr.splitlines()) == 1
    # - is stdout; the "wrote" line goes to stderr
    r = run_cli(["report", "-o", "-", "--builds", "2"], sender_env(sent_db))
    assert r.returncode == 0 and r.stdout.startswith("<!doctype html>") and "2 builds" in r.stdout
    assert not (tmp_path / "-").exists() and r.stderr.startswith("wrote -")
    # a link is followed, not replaced: the page lands on the disk it points to
    real = tmp_path / "elsewhere" / "report.html"
    real.parent.mkdir()
    real.write_text("<!DOCTYPE html><p>last week's report")
    link = tmp_path / "report-link.html"
    link.symlink_to(real)
    assert invoke(["report", "-o", str(link)], sender_env(sent_db)).exit_code == 0
    assert link.is_symlink() and real.read_text().startswith("<!doctype html>")
    # it replaces an earlier report only: -o naming the database lost the ledger, exit 0
    before = sent_db.read_bytes()
    r = run_cli(["report", "-o", str(sent_db)], sender_env(sent_db))
    assert r.returncode == ExitCode.USAGE and sent_db.read_bytes() == before
    assert r.stderr == f"error: --output {sent_db} is the database: name the HTML file to write\n"
    export = tmp_path / "conversions.csv"
    export.write_text("transaction_id,sync_date\n")
    r = run_cli(["report", "-o", str(export)], sender_env(sent_db))
    assert r.returncode == ExitCode.USAGE and export.read_text() == "transaction_id,sync_date\n"
    assert f"--output {export} exists and is not a report" in r.stderr
    assert invoke(["report", "-o", str(page)], sender_env(sent_db)).exit_code == 0  # an earlier one


def test_a_build_with_one_event_name_is_charted_without_a_line(tmp_path):
    """A single build: one point per identifier, centred, still labelled."""
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(1)])
    write_coverage(db, [Build("only", hourly_builds(1)[0].built_at).add("Purchase")])
    page = tmp_path / "one.html"
    assert invoke(["report", "-o", str(page)], sender_env(db)).exit_code == 0
    text = page.read_text()
    assert "<polyline" not in text and ">click_id 40%</text>" in text
    assert "Nothing sent yet" in text


def test_status_and_report_read_the_coverage_a_real_build_wrote(tmp_path):
    """The mart of `dbt build` and the sender agree on the table: one real `sender run`."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1, "ORD-2": 2}, newest_hours=0.1)
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export)
    assert r.returncode == ExitCode.OK, r.stderr
    db = tmp_path / "line_capi.duckdb"
    status = json.loads(invoke(["status", "--json"], sender_env(db)).stdout)
    coverage = status["coverage"]
    assert coverage["invocation_id"] == status["build"]["invocation_id"]
    conversion = coverage["events"]["Conversion"]
    assert conversion["sendable"] == 2 and conversion["conversions_in_window"] == 2
    assert conversion["identifiers"]["email"] == {"count": 2, "share": 1.0}
    assert set(conversion["rejected_by_reason"]) >= {"no_user_identifier", "invalid_sync_date"}
    page = tmp_path / "report.html"
    assert invoke(["report", "-o", str(page)], sender_env(db)).exit_code == 0
    assert "Conversion: identifier shares over 1 build<" in page.read_text()

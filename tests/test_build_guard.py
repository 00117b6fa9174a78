"""Never the sample in production, never a half-finished build: what dbt records of each build
(line_capi_build_info) and what the sender refuses before any connection."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import socket

import duckdb
import pytest
from pipeline_fixtures import SAMPLE_DIR, run_dbt
from schedule_fixtures import TAG_ID, clock_export, sender_run
from sender_fixtures import (
    FAST,
    REPO,
    TOKEN,
    make_event,
    mock_server,
    run_cli,
    sender_env,
    write_payload,
)

from sender.exit_codes import ExitCode


@pytest.fixture(scope="module")
def sample_build(tmp_path_factory):
    """The sample, named the way a scheduled job names its export: env KARTE_EXPORT_DIR."""
    tmp = tmp_path_factory.mktemp("sample")
    result = run_dbt(tmp, "run", env={"KARTE_EXPORT_DIR": str(SAMPLE_DIR)})
    assert result.returncode == 0, result.output
    return result


def test_a_build_without_an_export_location_fails_in_one_line(tmp_path):
    result = run_dbt(tmp_path, "build")
    assert result.returncode != 0
    message = "no KARTE export named: set env KARTE_EXPORT_DIR or --vars"
    lines = [line for line in result.output.splitlines() if message in line]
    assert len(lines) == 1, result.output
    assert not result.database.exists() or not result.rows(
        "select * from duckdb_tables() where table_name = 'line_capi_payload'"
    )


def test_the_var_names_the_export_before_the_env_and_resolves_against_the_project(tmp_path):
    """var karte_export_dir wins over env KARTE_EXPORT_DIR; a relative one is read from the
    folder dbt was started in (PWD), as a build run by hand in the project."""
    result = run_dbt(
        tmp_path,
        "run",
        vars={"karte_export_dir": "sample/karte_export"},
        env={"KARTE_EXPORT_DIR": str(tmp_path / "not-this-one")},
    )
    assert result.returncode == 0, result.output
    assert result.rows("select export_location, is_sample from line_capi_build_info") == [
        (str(SAMPLE_DIR), True)
    ]


def test_build_info_records_what_the_build_read(sample_build):
    [row] = sample_build.rows(
        "select export_location, is_sample, lookback_hours, conversions_rows, page_views_rows,"
        " line_users_rows, user_master_rows, payload_rows, rejected_rows,"
        " epoch(as_of) - epoch(window_start) from line_capi_build_info"
    )
    (payload_rows,) = sample_build.rows("select count(*) from line_capi_payload")[0]
    (rejected_rows,) = sample_build.rows("select count(*) from line_capi_rejected")[0]
    assert row == (str(SAMPLE_DIR), True, 24, 83, 217, 10, 40, payload_rows, rejected_rows, 86400)


def test_the_sample_is_never_sent_to_a_real_endpoint_and_no_connection_is_made(sample_build):
    db = sample_build.database
    with socket.socket() as proxy:  # every HTTPS connection would go through it
        proxy.bind(("127.0.0.1", 0))
        proxy.listen(8)
        proxy.setblocking(False)
        env = sender_env(db, "https://conversion-api.tr.line.me")
        env["HTTPS_PROXY"] = env["https_proxy"] = f"http://127.0.0.1:{proxy.getsockname()[1]}"
        for extra in ([], ["--test", "--limit", "1"], ["--resend"]):
            r = run_cli(["push", *FAST, *extra], env)
            assert r.returncode == ExitCode.SAMPLE_DATA_REFUSED, r.stderr
            [line] = r.stderr.strip().splitlines()
            assert line.startswith("error: the payload was built from the bundled sample")
            assert TOKEN not in r.stdout + r.stderr
        with pytest.raises(BlockingIOError):
            proxy.accept()  # nobody ever connected
    with duckdb.connect(str(db), read_only=True) as con:  # nothing was recorded either
        assert not con.sql(
            "select * from duckdb_tables() where table_name = 'line_capi_send_runs'"
        ).fetchall()
    with mock_server() as srv:  # a rehearsal on loopback is allowed
        r = run_cli(["push", *FAST], sender_env(db, srv.url, LINE_CHANNEL_ID="1234567890"))
        assert r.returncode == ExitCode.OK, r.stderr
        assert srv.stats()["accepted_unique"] > 0


@pytest.mark.parametrize(
    "answer",
    [
        "202 to everything",
        "404 to the stats path",
        "no answer to the stats path",
        "an answer cut short",  # urllib3's own error while the body streams: was a traceback
    ],
)
def test_the_sample_goes_to_no_loopback_server_but_the_mock(sample_build, answer):
    """A tunnel or an egress proxy on 127.0.0.1 in front of LINE (ssh -L, stunnel, a sidecar):
    the sample went through it with a real tag and token, exit 0. The push asks the server who it
    is first (one GET, no token) and sends nothing to anything but sender mock-server."""
    import http.server
    import threading

    seen: list[tuple[str, str, str]] = []

    class Forwarder(http.server.BaseHTTPRequestHandler):
        def _answer(self, status: int) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            seen.append((self.command, self.path, self.headers.get("Authorization") or ""))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def do_GET(self):  # noqa: N802
            if answer == "no answer to the stats path":  # taken, then closed: a tunnel's peer gone
                seen.append((self.command, self.path, self.headers.get("Authorization") or ""))
                self.close_connection = True
                return
            if answer == "an answer cut short":  # the mock's headers, then half a body
                seen.append((self.command, self.path, self.headers.get("Authorization") or ""))
                self.send_response(200)
                self.send_header("Server", "MockLineCAPI/1.0")
                self.send_header("Content-Length", "100")
                self.end_headers()
                self.wfile.write(b'{"accepted_events"')
                self.close_connection = True
                return
            self._answer(202 if answer == "202 to everything" else 404)

        def do_POST(self):  # noqa: N802
            self._answer(202)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forwarder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        # a dry run makes no request at all: it cannot ask, and says nothing of the server
        dry = run_cli(["push", "--dry-run"], sender_env(sample_build.database, url))
        assert dry.returncode == 0 and seen == [], (dry.stderr, seen)
        r = run_cli(["push", *FAST], sender_env(sample_build.database, url))
    finally:
        server.shutdown()
        server.server_close()
    assert r.returncode == ExitCode.SAMPLE_DATA_REFUSED, r.stderr
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("error: the payload was built from the bundled sample")
    assert f"what answers at {url} is not it (a tunnel or a proxy there may forward" in line
    assert seen == [("GET", "/_mock/stats", "")]  # asked who it is, without the token; no POST


def test_a_real_export_replayed_with_its_times_moved_goes_to_the_mock_only(tmp_path):
    """var karte_export_time_anchor (replay an export) moved a real export's orders to now, and
    a push sent them to LINE at times they did not happen, with exit 0 and no word."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    export = clock_export(
        tmp_path / "export", {"ORD-1": 30, "ORD-2": 31}, newest_hours=30, now=now.timestamp()
    )
    replay = {
        "as_of": now.isoformat(),
        "karte_export_time_anchor": (now - dt.timedelta(hours=29)).isoformat(),
    }
    result = run_dbt(tmp_path, "run", export_dir=export, vars=replay)
    assert result.returncode == 0, result.output
    assert result.rows("select time_shift_seconds, payload_rows from line_capi_build_info") == [
        (29 * 3600, 2)
    ]
    r = run_cli(["push", *FAST], sender_env(result.database, "https://line.invalid"))
    assert r.returncode == ExitCode.SAMPLE_DATA_REFUSED, r.stderr
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("error: the payload's times were moved +29.0 h by var"), line
    assert line.endswith(
        "build without it to send the conversions at their own times, or rehearse against sender"
        " mock-server on 127.0.0.1"
    ), line
    with mock_server() as srv:  # a rehearsal of the replay
        r = run_cli(["push", *FAST], sender_env(result.database, srv.url))
        assert r.returncode == ExitCode.OK and srv.stats()["accepted_events"] == 2, r.stderr
    # the push names the window of the build it sends
    start = now - dt.timedelta(hours=24)
    assert (
        f" holds the conversions from {start:%Y-%m-%d %H:%M} to {now:%Y-%m-%d %H:%M} UTC (24 h"
        " up to its as_of)"
    ) in r.stderr, r.stderr
    # the same export read as it is: nothing moved, nothing in a 24-hour window
    plain = run_dbt(tmp_path / "plain", "run", export_dir=export, vars={"as_of": now.isoformat()})
    assert plain.rows("select time_shift_seconds from line_capi_build_info") == [(0,)]


def test_preview_names_the_build_its_rows_come_from(sample_build):
    """After a failed build of a real export, preview listed the last good build's rows (the
    sample's) as if they were the export's."""
    for extra in ([], ["--json"]):
        r = run_cli(["preview", "-n", "2", *extra], sender_env(sample_build.database))
        assert r.returncode == ExitCode.OK, r.stderr
        (line,) = r.stderr.splitlines()
        assert re.fullmatch(
            rf"build 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?Z from {re.escape(str(SAMPLE_DIR))}"
            r" \(the bundled sample\): \d+ payload rows",
            line,
        ), line
        assert "ORD-" in r.stdout


@pytest.mark.parametrize("how", ["a copy", "a link"])
def test_a_copy_of_the_sample_or_a_link_to_it_is_still_the_sample(tmp_path, how):
    export = tmp_path / "karte-export"
    if how == "a copy":
        shutil.copytree(SAMPLE_DIR, export)
    else:
        export.symlink_to(SAMPLE_DIR)
    result = run_dbt(tmp_path, "run", export_dir=export)
    assert result.returncode == 0, result.output
    assert result.rows("select is_sample from line_capi_build_info") == [(True,)]
    # the sample's times follow the run, as in the demo: events to send, and to refuse
    (sent,) = result.rows("select count(*) from line_capi_payload")[0]
    assert sent > 0
    r = run_cli(["push", *FAST], sender_env(result.database, "https://line.invalid"))
    assert r.returncode == ExitCode.SAMPLE_DATA_REFUSED, r.stderr


@pytest.mark.parametrize("export", ["the sample", "a copy"])
def test_sender_run_refuses_the_sample_for_a_real_endpoint_before_the_build(tmp_path, export):
    """The push would refuse the sample after the build; sender run says so before it starts dbt,
    and leaves the refusal in its run log for sender status."""
    folder = SAMPLE_DIR
    if export == "a copy":
        folder = tmp_path / "karte-export"
        shutil.copytree(SAMPLE_DIR, folder)
    r = sender_run(tmp_path, "https://conversion-api.tr.line.me", export=folder)
    assert r.returncode == ExitCode.SAMPLE_DATA_REFUSED, r.stderr
    [line] = r.stderr.strip().splitlines()
    assert line == (
        f"error: export {folder} is the bundled sample (it holds LINE_CAPI_SAMPLE), which is"
        " never sent to conversion-api.tr.line.me: build a real export (env KARTE_EXPORT_DIR or"
        " var karte_export_dir), or rehearse against sender mock-server on 127.0.0.1"
    )
    assert TOKEN not in r.stdout + r.stderr
    assert not (tmp_path / "line_capi.duckdb").exists()  # dbt never ran
    log = (tmp_path / "line_capi_run.log").read_text()
    assert "before the lock and the build" in log and log.rstrip().endswith("done: exit 8")


@pytest.mark.parametrize("layout", ["current", "0.1.0's, not migrated"])
def test_sender_run_never_builds_the_sample_into_a_real_jobs_database(tmp_path, layout):
    """`make demo` in a checkout whose job kept the default database (0.1.0's README put it
    there): the sample's build replaced the job's payload, and its run went into the job's run
    log and coverage history. A database whose ledger has sent to a real endpoint is refused
    for the sample, before the build; a loopback rehearsal's is not."""
    from test_destinations import write_v1_ledger

    from sender.database import ensure_ledger
    from sender.destinations import destination_id

    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(1)])  # the job's last build
    real = "https://conversion-api.tr.line.me"
    if layout == "current":
        with duckdb.connect(str(db)) as con:
            ensure_ledger(con)
            destination_id(con, real, TAG_ID, create=True)
    else:
        write_v1_ledger(db, runs=[("r1", real, TAG_ID, 0)], outcomes=[])
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=SAMPLE_DIR)
        assert srv.stats()["requests"] == 0
    assert r.returncode == ExitCode.SAMPLE_DATA_REFUSED, r.stderr
    [line] = r.stderr.strip().splitlines()
    assert line == (
        f"error: export {SAMPLE_DIR} is the bundled sample (it holds LINE_CAPI_SAMPLE), and"
        f" database {db} is a real job's (its ledger has sent to conversion-api.tr.line.me):"
        " build the sample into a database of its own (LINE_CAPI_DUCKDB=data/demo.duckdb;"
        " make demo DEMO_DUCKDB=data/demo.duckdb)"
    )
    assert not (tmp_path / "target").exists()  # dbt never ran: the job's payload is as it was
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.sql("select deduplication_key from line_capi_payload").fetchall() == [
            (make_event(1)["event"]["deduplication_key"],)
        ]
    # nor did the job: its run log (sender status's last job, the next run's "resolved") is left
    # as it was; a sample sent to a real endpoint (above) is the job's own mistake, and logged
    assert not (tmp_path / "line_capi_run.log").exists()


def test_a_rehearsals_database_is_no_real_jobs(tmp_path):
    """The demo's own ledger (loopback only) takes the sample again; any other endpoint is real."""
    from sender.build_info import real_endpoint_sent_to
    from sender.database import ensure_ledger
    from sender.destinations import destination_id

    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(1)])
    with duckdb.connect(str(db)) as con:
        ensure_ledger(con)
        destination_id(con, "http://127.0.0.1:8787", TAG_ID, create=True)
        destination_id(con, "http://[::1]:8787", TAG_ID, create=True)
        # a migrated 0.1.0 key row whose run was gone (sender.ledger_migration)
        destination_id(con, "unknown", "unknown", create=True)
    assert real_endpoint_sent_to(db) is None
    with duckdb.connect(str(db)) as con:
        destination_id(con, "https://line-proxy.example:8443", TAG_ID, create=True)
    assert real_endpoint_sent_to(db) == "https://line-proxy.example:8443"


def test_a_marker_that_cannot_be_looked_up_leaves_the_folder_to_the_runs_own_checks(tmp_path):
    """A folder this user may not search (EACCES, here ENAMETOOLONG, which root meets too) is no
    traceback before the build: sender run's export check says what is wrong with it."""
    from sender.cli.run import holds_sample_marker

    assert holds_sample_marker(SAMPLE_DIR)
    with pytest.raises(OSError, match="File name too long"):
        (tmp_path / ("x" * 300) / "LINE_CAPI_SAMPLE").is_file()
    assert not holds_sample_marker(tmp_path / ("x" * 300))


def test_an_export_without_the_marker_is_not_the_sample(tmp_path):
    export = tmp_path / "karte-export"
    shutil.copytree(SAMPLE_DIR, export)
    (export / "LINE_CAPI_SAMPLE").unlink()
    result = run_dbt(tmp_path, "run", export_dir=export)
    assert result.returncode == 0, result.output
    assert result.rows("select is_sample from line_capi_build_info") == [(False,)]


def test_build_info_rebuilt_alone_from_a_real_export_cannot_pass_the_sample_off(tmp_path):
    """`dbt run -s line_capi_build_info` after a sample build, with a real export named: the
    build info would say "not the sample" about the sample's payload, and the push would send
    it. The model is built only with every model it is built from: the sample stays refused."""
    export = tmp_path / "karte-export"
    shutil.copytree(SAMPLE_DIR, export)
    (export / "LINE_CAPI_SAMPLE").unlink()
    sample = run_dbt(tmp_path, "run", export_dir=SAMPLE_DIR)
    assert sample.returncode == 0, sample.output
    alone = run_dbt(tmp_path, "run", "-s", "line_capi_build_info", export_dir=export)
    assert alone.returncode != 0
    assert (
        "line_capi_build_info describes the build of line_capi_payload and is built with every"
        " model it is built from, and 14 of them are not selected (line_capi_payload, "
        in alone.output
    )
    assert alone.rows("select is_sample from line_capi_build_info") == [(True,)]
    r = run_cli(["push", *FAST], sender_env(alone.database, "https://line.invalid"))
    assert r.returncode == ExitCode.SAMPLE_DATA_REFUSED, r.stderr
    # with the payload but not what it is built from (the docs once said so): the payload would
    # keep the sample's rows, from the tables the sample build left
    stale = run_dbt(tmp_path, "run", "-s", "line_capi_payload+", export_dir=export)
    assert stale.returncode != 0
    assert "is built with every model it is built from, and 13 of them are not selected (" in (
        stale.output
    )
    assert "run dbt build, select +line_capi_build_info, or leave it out (--exclude" in stale.output
    assert stale.rows("select is_sample from line_capi_build_info") == [(True,)]
    # with every model it is built from, from the real export: all describe the same build
    together = run_dbt(tmp_path, "run", "-s", "+line_capi_build_info", export_dir=export)
    assert together.returncode == 0, together.output
    assert together.rows("select is_sample from line_capi_build_info") == [(False,)]


@pytest.mark.parametrize("damage", ["drop build info", "a row more", "another build's rows"])
def test_a_half_finished_build_is_never_sent(tmp_path, damage):
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(i) for i in range(20)])
    with duckdb.connect(str(db)) as con:
        if damage == "drop build info":
            con.execute("drop table line_capi_build_info")
        elif damage == "a row more":
            con.execute("insert into line_capi_payload select * from line_capi_payload limit 1")
        else:  # same count, other rows: the payload of the next build, whose tests failed
            con.execute("update line_capi_payload set event_timestamp = event_timestamp + 3600")
    with mock_server() as srv:
        r = run_cli(["push", *FAST], sender_env(db, srv.url))
        assert srv.stats()["requests"] == 0
    assert r.returncode == ExitCode.NO_PAYLOAD, r.stderr
    [line] = r.stderr.strip().splitlines()
    assert "run `dbt build` and send once it succeeds" in line


def test_a_crash_exits_70_with_one_line_and_the_traceback_only_with_debug(tmp_path):
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(i) for i in range(20)])
    with mock_server() as srv:
        env = sender_env(db, srv.url, LINE_CAPI_FAULT_POINT="after_response:1:crash")
        r = run_cli(["push", *FAST], env)
        debug = run_cli(["--debug", "push", *FAST, "--resend"], env)
        # a scheduler reading --json still gets its one object
        as_json = run_cli(["push", *FAST, "--resend", "--json"], env)
    assert r.returncode == debug.returncode == ExitCode.INTERNAL_ERROR, r.stderr
    assert as_json.returncode == ExitCode.INTERNAL_ERROR, as_json.stderr
    [printed] = as_json.stdout.splitlines()
    assert json.loads(printed)["exit_code"] == ExitCode.INTERNAL_ERROR
    [line] = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith("error: internal error (RuntimeError: fault point after_response")
    assert line.endswith("run with --debug for the traceback") and "Traceback" not in r.stderr
    assert "Traceback (most recent call last)" in debug.stderr
    assert TOKEN not in r.stderr + debug.stderr + r.stdout + debug.stdout
    with duckdb.connect(str(db), read_only=True) as con:  # the runs table says so too
        outcomes = con.sql("select outcome, exit_code from line_capi_send_runs").fetchall()
    assert outcomes == [("error", 70)] * 3


def _rehearsal_env(text: str) -> dict[str, str]:
    """The NAME=value words of the documented rehearsal, up to `sender push` (backslash line
    continuations joined)."""
    command = text.replace("\\\n", " ").split("sender push")[0]
    return dict(re.findall(r"\b([A-Z_]+)=(\S+)", command))


@pytest.mark.parametrize("where", ["docs/sender.md", "sender/cli/mock.py"])
def test_the_documented_mock_rehearsal_sends_the_whole_sample(sample_build, tmp_path, where):
    """The rehearsal as the docs and `sender mock-server --help` write it, on a fresh build of the
    sample: every event accepted, exit 0 (the sample has LINE user ids: without LINE_CHANNEL_ID
    they would be held back and the push would exit 2)."""
    text = (REPO / where).read_text(encoding="utf-8")
    block = text[text.index("sender mock-server --port 8787 &") :]
    env = _rehearsal_env(block)
    assert env["LINE_CAPI_ENDPOINT"] == "http://127.0.0.1:8787", block[:300]
    db = tmp_path / "line_capi.duckdb"
    shutil.copy(sample_build.database, db)
    with mock_server(tag_id=None, token=env["LINE_ACCESS_TOKEN"]) as server:
        env["LINE_CAPI_ENDPOINT"] = server.url
        result = run_cli(["push", *FAST], {**env, "LINE_CAPI_DUCKDB": str(db)})
        accepted = server.accepted_keys()
    (payload_rows,) = sample_build.rows("select count(*) from line_capi_payload")[0]
    assert result.returncode == 0, result.stderr
    assert len(accepted) == payload_rows > 0

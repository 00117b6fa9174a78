"""The access token on the paths tests/test_secrets.py does not walk: ``--help`` of every command
(with the token in the environment and on the command line), the mock-server command's own
output, dropped connections and timeouts, 401, a locked database, a full disk, a SIGKILLed run.
Every process runs in its own directory; afterwards every file there (the DuckDB file, its WAL,
any log), every table and view of the database and all output are searched for the token."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import duckdb
import requests
from fault_fixtures import run_sender, sender_process_env
from sender_fixtures import (
    CHANNEL_ID,
    TAG_ID,
    TOKEN,
    make_event,
    mock_server,
    sender_env,
    write_payload,
)

from sender import fault_points
from sender.exit_codes import ExitCode
from sender.line_client import LineClient
from sender.settings import LineTarget

FAST = ["--backoff-base", "0.01", "--max-backoff", "0.02", "--max-retries", "1"]


def all_database_text(db) -> str:
    """Every row of every table and view in the file."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [
            r[0]
            for r in con.execute(
                "select table_name from duckdb_tables() where database_name = current_database()"
                " union all select view_name from duckdb_views()"
                " where database_name = current_database() and not internal"
            ).fetchall()
        ]
        assert "line_capi_send_runs" in names and "line_capi_send_log" in names
        return "\n".join(repr(con.execute(f'select * from "{name}"').fetchall()) for name in names)
    finally:
        con.close()


def test_token_absent_from_help_mock_server_faults_lock_disk_full_and_kill(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    db = work / "line_capi.duckdb"
    write_payload(db, [make_event(i) for i in range(60)] + [make_event(99, line_uid=True)])
    outputs: list[str] = []

    def run(args, env, **extra):
        r = run_sender(args, env, cwd=work, **extra)
        outputs.extend([r.stdout, r.stderr])
        return r

    # --help of every command and of the group, token in the environment and as an option
    for command in ([], ["push"], ["status"], ["preview"], ["mock-server"]):
        r = run([*command, "--help"], sender_env(db))
        assert r.returncode == 0 and "Usage" in r.stdout, (command, r.stderr)
        run([*command, "--access-token", TOKEN, "--help"], sender_env(db))
    run([], sender_env(db))  # `sender` alone lists the commands

    # the mock-server command, with the token as its expected token: its own log lines
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sender",
            "mock-server",
            "--port",
            "0",
            "--fault",
            "drop",
            "--fault",
            "slow",
            "--fault",
            "401",
            "--fault",
            "500",
            "--poison",
            "order-0000007",
        ],
        cwd=work,
        env=sender_process_env(sender_env(db)),  # LINE_ACCESS_TOKEN=TOKEN
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = server.stderr.readline()
        outputs.append(first)
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", first).group(1)
        env = sender_env(db, url, LINE_CHANNEL_ID=CHANNEL_ID)
        # drop, slow (beyond the timeout), then 401 at the third attempt: stops with exit 3
        r = run(
            ["push", *FAST, "--max-retries", "2", "--timeout", "0.5", "--concurrency", "1"]
            + ["--batch-size", "20"],
            env,
        )
        assert r.returncode == 3, r.stderr
        assert "connection error" in r.stderr and "timeout" in r.stderr
        # 500 then the poisoned event isolated; the summary as JSON
        r = run(["push", *FAST, "--json", "--batch-size", "20"], env)
        assert r.returncode == 4, r.stderr
        # a wrong token: 401 from the start
        r = run(["push", *FAST, "--resend"], {**env, "LINE_ACCESS_TOKEN": TOKEN + "-wrong"})
        assert r.returncode == 3, r.stderr
        outputs.append(requests.get(f"{url}/_mock/stats", timeout=5).text)
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=10)
        outputs.extend([out, err])
    assert "stopped:" in err  # the final log line was captured

    # SIGKILL in the middle of a run, and the output it leaves
    with mock_server() as srv:
        env = sender_env(db, srv.url, LINE_CHANNEL_ID=CHANNEL_ID)
        r = run(
            ["push", "--resend", "--batch-size", "10"],
            env,
            **{fault_points.ENV_VAR: "after_response:2"},
        )
        assert r.returncode == -signal.SIGKILL
        # the disk full while recording
        r = run(
            ["push", "--resend", "--batch-size", "10"],
            env,
            **{fault_points.ENV_VAR: "ledger_write:1:enospc"},
        )
        assert r.returncode == ExitCode.DATABASE_ERROR and "No space left on device" in r.stderr
        # read-only commands, JSON forms
        for args in (
            ["status"],
            ["status", "--json"],
            ["preview"],
            ["preview", "--json"],
            ["push", "--dry-run", "--show", "2", "--json"],
        ):
            assert run(args, env).returncode == 0, args

    # connection refused, the token also given as an option
    r = run(
        ["push", *FAST, "--resend", "--access-token", TOKEN],
        sender_env(db, "http://127.0.0.1:9", LINE_CHANNEL_ID=CHANNEL_ID),
    )
    assert r.returncode == 1

    # the database locked by another process
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time\ncon = duckdb.connect({str(db)!r})\nprint('locked', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        for args in (["push"], ["status"], ["preview"]):
            r = run(args, sender_env(db))
            assert r.returncode == 5 and "locked by another process" in r.stderr
    finally:
        holder.kill()
        holder.wait()

    everything = "\n".join(outputs)
    assert TAG_ID in everything  # messages name the tag instead
    assert TOKEN not in everything
    assert TOKEN not in all_database_text(db)
    # every file the runs left behind (database, WAL, any log), byte for byte
    for path in work.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_client_errors_on_dropped_and_timed_out_requests_carry_no_token():
    with mock_server() as srv:
        target = LineTarget.from_values(
            endpoint=srv.url, tag_id=TAG_ID, token=TOKEN, channel_id=None
        )
        client = LineClient(target, timeout=0.3)
        body = ("[" + json.dumps(make_event(1)) + "]").encode()
        srv.inject("drop")
        srv.inject("slow", delay=0.6)
        srv.inject("401")
        answers = [client.post(body, has_line_uid=False) for _ in range(3)]
        client.close()
    assert [a.error.split(" ")[0] for a in answers] == ["connection", "timeout", "HTTP"]
    for answer in answers:
        assert TOKEN not in repr(answer)
    assert TOKEN not in repr(client)

"""The CLI surface: help everywhere, one-line errors and their exit codes, status and preview."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest
import requests
import typer
import typer.main
from sender_fixtures import (
    FAST,
    REPO,
    TAG_ID,
    TOKEN,
    database_held,
    invoke,
    make_event,
    mock_server,
    run_cli,
    sender_env,
    write_payload,
)

from sender.cli import app
from sender.exit_codes import ExitCode
from sender.mock_server import Fault
from sender.run_log import RunLog

COMMANDS = ["push", "status", "report", "preview", "mock-server", "run", "compact", "backup"]


pytestmark = pytest.mark.payload(events=30)  # the db fixture (conftest.py)


def test_every_command_has_help_with_an_example():
    assert set(typer.main.get_command(app).commands) == set(COMMANDS)
    for name in COMMANDS:
        r = invoke([name, "--help"], sender_env_for_help())
        assert r.exit_code == 0
        assert "Example" in r.stdout, name
        assert "sender " in r.stdout


def help_line_starts(stdout: str) -> list[str]:
    """Each line of a --help page without its indent and list bullet."""
    return [line.strip().lstrip("•").strip() for line in stdout.splitlines()]


def test_help_of_the_scheduled_commands_lists_every_exit_code_one_a_line():
    for name in ("push", "run"):
        r = invoke([name, "--help"], sender_env_for_help())
        assert r.exit_code == 0
        lines = help_line_starts(r.stdout)
        for code in ExitCode:
            prefix = f"{int(code)} {code.name}: "
            assert any(line.startswith(prefix) for line in lines), (name, code, r.stdout)


def test_help_text_is_rewrapped_not_broken_where_the_source_breaks_its_lines():
    """A docstring's paragraph reads as one paragraph (Typer's rich mode kept each source line
    break, leaving a line of one word before each)."""
    r = invoke(["run", "--help"], sender_env_for_help())
    assert (
        "...); several --vars are merged into one, each var keeping its last value. The push"
        in (r.stdout)
    ), r.stdout


@pytest.mark.parametrize("command", ["compact", "backup"])
def test_help_of_compact_and_backup_lists_their_own_exit_codes_not_the_pushs(command):
    r = invoke([command, "--help"], sender_env_for_help())
    assert r.exit_code == 0
    lines = help_line_starts(r.stdout)
    assert any(
        line.startswith("5 DATABASE_LOCKED: a push, a dbt build or a DuckDB shell")
        for line in lines
    )
    assert any(line.startswith("13 ALREADY_RUNNING: a sender run") for line in lines)
    for code in (ExitCode.AUTHENTICATION, ExitCode.REJECTED_BY_API, ExitCode.STALE_EXPORT):
        assert f"{int(code)} {code.name}: " not in r.stdout, code


def sender_env_for_help():
    return {"LINE_ACCESS_TOKEN": TOKEN, "LINE_TAG_ID": TAG_ID, "COLUMNS": "200"}


def test_version_is_the_installed_one():
    import tomllib

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    r = invoke(["--version"], {})
    # in a git checkout, its commit too: a development version names none
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    said = f"sender {version}" + (f" (commit {commit})" if (REPO / ".git").exists() else "")
    assert r.exit_code == 0 and r.stdout.strip() == said


def test_no_args_shows_help():
    r = invoke([], {})
    assert "push" in r.stdout and "mock-server" in r.stdout


def test_a_ctrl_c_that_no_command_handles_exits_130_not_1(monkeypatch, capsys):
    """A Ctrl-C outside a command's own handler (in its option callbacks, say): Typer 0.29 exits
    130 itself; older Typers (pyproject.toml admits them) and click raise Abort, which exit 1
    would read as "pending left, the next run sends it"."""
    import sender.cli

    interrupted = typer.Typer()

    @interrupted.command()
    def during_parsing(abort: bool = False) -> None:
        raise typer.Abort() if abort else KeyboardInterrupt

    monkeypatch.setattr(sender.cli, "app", interrupted)
    monkeypatch.setattr(sys, "argv", ["sender", "--abort"])
    assert sender.cli._run_app() == ExitCode.INTERRUPTED
    assert capsys.readouterr().err.splitlines()[-1] == "error: interrupted"
    monkeypatch.setattr(sys, "argv", ["sender"])
    assert sender.cli._run_app() == ExitCode.INTERRUPTED


def test_help_never_shows_the_token():
    for args in ([], ["--help"], *([c, "--help"] for c in COMMANDS)):
        r = invoke(list(args), sender_env_for_help())
        assert TOKEN not in r.stdout + r.stderr
    assert app.pretty_exceptions_show_locals is False


def test_python_dash_m_sender_works():
    r = subprocess.run(
        [sys.executable, "-m", "sender", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert r.returncode == 0 and "push" in r.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LINE_ACCESS_TOKEN": ""}, "LINE_ACCESS_TOKEN is not set"),
        ({"LINE_ACCESS_TOKEN": "  "}, "LINE_ACCESS_TOKEN is blank"),
        ({"LINE_ACCESS_TOKEN": "two words"}, "LINE_ACCESS_TOKEN (the access token of LINE Tag"),
        ({"LINE_ACCESS_TOKEN": "two words"}, "contains spaces or control characters"),
        (
            {"LINE_ACCESS_TOKEN": f"Bearer {TOKEN}"},
            "give the token alone, the sender sends it in the X-Line-TagAccessToken header",
        ),
        ({"LINE_TAG_ID": "not-a-uuid"}, "is not a UUID"),
        # Docker's --env-file keeps quotes around a value: said, not left to be guessed
        (
            {"LINE_TAG_ID": f'"{TAG_ID}"'},
            "is not a UUID; the quotes are part of the value (Docker's --env-file and Compose's"
            " env_file keep them): write it without quotes",
        ),
        ({"LINE_CHANNEL_ID": "'1234567890'"}, "(the LINE Login channel); the quotes are part"),
        ({"LINE_CAPI_ENDPOINT": '"http://127.0.0.1:8787"'}, "URL; the quotes are part of the"),
        ({"LINE_TAG_ID": ""}, "LINE_TAG_ID is not set (the LINE Tag id, a UUID; or pass --tag-id)"),
        ({"LINE_CHANNEL_ID": "12ab"}, "digits only"),
        ({"LINE_CAPI_ENDPOINT": "http://conversion-api.example.com"}, "only https"),
        ({"LINE_CAPI_ENDPOINT": "ftp://127.0.0.1"}, "not an http(s) URL"),
        # as the user wrote it, not cut to 'http:'
        ({"LINE_CAPI_ENDPOINT": "http://"}, "LINE_CAPI_ENDPOINT 'http://' is not an http(s) URL"),
        (
            {"LINE_CAPI_ENDPOINT": f"https://conversion-api.tr.line.me/v1/{TAG_ID}/events"},
            "holds the API's path: give the base URL (https://conversion-api.tr.line.me);",
        ),
        ({"LINE_CAPI_ENDPOINT": "http://127.0.0.1:8787/v1"}, "the sender adds /v1/<tag id>/events"),
        ({"LINE_CAPI_ENDPOINT": "http://[::1"}, "is not a valid URL: Invalid IPv6 URL"),
        ({"LINE_CAPI_ENDPOINT": "http://127.0.0.1:99999"}, "is not a valid URL: Port out of range"),
    ],
)
def test_config_errors_are_one_line_exit_2(db, env, message):
    r = invoke(["push"], sender_env(db, **env))
    assert r.exit_code == ExitCode.USAGE
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr
    assert TOKEN not in r.stdout + r.stderr


@pytest.mark.parametrize(
    ("endpoint", "shown"),
    [
        ("https://user:SeCrEtPass@capi.example.com", "'https://…@capi.example.com' must be a base"),
        ("https://capi.example.com/?key=SeCrEtPass", "'https://capi.example.com/?…' must be a"),
        ("https://capi.example.com#SeCrEtPass", "'https://capi.example.com?…' must be a base"),
        ("ftp://user:SeCrEtPass@127.0.0.1", "'ftp://…@127.0.0.1' is not an http(s) URL"),
        ("http://u:SeCrEtPass@capi.example.com", "'http://…@capi.example.com' must be a base"),
        ("https://u:SeCrEtPass@[::1", "'https://…@[::1' is not a valid URL"),
        ("https://u:SeCrEt Pass@capi.example.com", "contains spaces or control characters"),
        # a password holding / ? or #: all before the last @ is the user's part
        ("https://user:pa/SeCrEt@capi.example.com", "'https://…@capi.example.com' is not a valid"),
        ("https://user:p#SeCrEt@capi.example.com", "'https://…@capi.example.com' is not a valid"),
        ("https://user:12/SeCrEt@capi.example.com", "'https://…@capi.example.com' must be a base"),
        ("user:SeCrEtPass@capi.example.com", "'…@capi.example.com' is not an http(s) URL"),
        ("https:/user:SeCrEtPass@capi.example.com", "'https:/…@capi.example.com' is not an http"),
    ],
)
def test_a_refused_endpoint_is_never_quoted_with_its_credentials_or_query(db, endpoint, shown):
    """A refused LINE_CAPI_ENDPOINT is quoted in its error, which reaches the run log, `sender
    status` and the alert webhook: a password or an API key in it was quoted with it."""
    r = invoke(["push"], sender_env(db, LINE_CAPI_ENDPOINT=endpoint))
    assert r.exit_code == ExitCode.USAGE
    assert shown in r.stderr, r.stderr
    assert "SeCrEt" not in r.stdout + r.stderr


@pytest.mark.parametrize("env_token", ["", "the-variable's-token"])
def test_a_token_typed_as_an_option_is_the_one_sent(db, env_token):
    """--access-token on the command line wins over the environment (and works without it)."""
    with mock_server(token="the-typed-one") as srv:  # noqa: S106
        r = run_cli(
            ["push", *FAST, "--access-token", "the-typed-one"],
            sender_env(db, srv.url, LINE_ACCESS_TOKEN=env_token),
        )
        assert r.returncode == 0, r.stderr
        assert len(srv.accepted) == 30
    bad = run_cli(["push", "--access-token", "two words"], sender_env(db))
    assert bad.returncode == ExitCode.USAGE
    assert "error: --access-token (the access token of LINE Tag" in bad.stderr


def without_token(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != "LINE_ACCESS_TOKEN"}


@pytest.mark.parametrize(
    ("env", "code", "message"),
    [
        ({"LINE_TAG_ID": "not-a-uuid"}, ExitCode.USAGE, "is not a UUID"),
        ({"LINE_CHANNEL_ID": "12ab"}, ExitCode.USAGE, "digits only"),
        ({"LINE_CAPI_ENDPOINT": "ftp://127.0.0.1"}, ExitCode.USAGE, "not an http(s) URL"),
        ({"LINE_CAPI_ENDPOINT": "http://capi.example.com"}, ExitCode.USAGE, "only https"),
        ({"LINE_CAPI_ENDPOINT": "http://[::1"}, ExitCode.USAGE, "Invalid IPv6 URL"),
        ({"IS_SAMPLE": "1"}, ExitCode.SAMPLE_DATA_REFUSED, "built from the bundled sample"),
    ],
)
def test_dry_run_refuses_what_push_refuses_before_sending(tmp_path, env, code, message):
    """Same codes as the push, before counting anything; no access token needed."""
    db = tmp_path / "line_capi.duckdb"
    is_sample = bool(env.pop("IS_SAMPLE", ""))
    write_payload(db, [make_event(i) for i in range(5)], is_sample=is_sample)
    endpoint = "https://conversion-api.tr.line.me"
    r = invoke(["push", "--dry-run"], without_token(sender_env(db, endpoint, **env)))
    assert r.exit_code == code, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "would send" not in r.stdout


def test_dry_run_without_a_channel_id_says_what_a_push_would_hold_back(tmp_path):
    """Line_uid rows and no LINE_CHANNEL_ID: the rehearsal before any credential is set (the
    README's order) counts them and names the setting, and does not fail."""
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(i, line_uid=i < 2) for i in range(5)])
    endpoint = "https://conversion-api.tr.line.me"
    r = invoke(["push", "--dry-run"], without_token(sender_env(db, endpoint)))
    assert r.exit_code == 0, r.stderr
    assert "would send 3 in 1 requests, hold back 2 (user.line_uid)" in r.stdout
    (warning,) = r.stderr.strip().splitlines()
    assert warning.startswith("warning: 2 events carry user.line_uid and a push would hold them")
    assert "LINE_CHANNEL_ID" in warning


def test_dry_run_needs_no_token_and_rehearses_the_sample_on_loopback(tmp_path):
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(i) for i in range(5)], is_sample=True)
    r = invoke(["push", "--dry-run"], without_token(sender_env(db, "http://127.0.0.1:9")))
    assert r.exit_code == 0, r.stderr
    assert "would send 5 in 1 requests" in r.stdout


@pytest.mark.parametrize(
    "endpoint",
    ["http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9", "http://127.8.9.10:9"],
)
def test_loopback_http_is_allowed(db, endpoint):
    r = invoke(["push", *FAST, "--max-retries", "0"], sender_env(db, endpoint))
    assert r.exit_code == ExitCode.PENDING_LEFT  # nothing listens there, but it was allowed


def test_missing_database_file_says_run_dbt_build(tmp_path):
    for args in (["push"], ["status"], ["preview"], ["push", "--dry-run"]):
        r = invoke(args, sender_env(tmp_path / "nope.duckdb"))
        assert r.exit_code == ExitCode.NO_PAYLOAD
        assert "run `dbt build` first" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "nope.duckdb").exists()  # never created by the sender


def test_a_file_that_is_not_a_duckdb_database_is_named_and_left_as_it_is(tmp_path):
    export = tmp_path / "conversions.csv"  # named as the database by mistake
    export.write_text("event_name,user_id\nbuy,u1\n")
    export.chmod(0o644)
    report = ["report", "-o", str(tmp_path / "r.html")]
    for args in (["push"], ["status"], ["preview"], ["push", "--dry-run"], report):
        r = invoke(args, sender_env(export))
        assert r.exit_code == ExitCode.DATABASE_ERROR, (args, r.stderr)
        assert r.stderr.strip() == (
            f"error: {export} is not a DuckDB database file: name the file dbt builds"
            " (LINE_CAPI_DUCKDB or --database)"
        )
    assert export.stat().st_mode & 0o777 == 0o644  # not made private: it is not our file
    assert export.read_text() == "event_name,user_id\nbuy,u1\n"
    r = invoke(["status"], sender_env(tmp_path))
    assert r.exit_code == ExitCode.DATABASE_ERROR
    assert (
        r.stderr.strip()
        == f"error: database {tmp_path} is a folder: name the DuckDB file dbt builds"
    )
    # /dev/null: not DuckDB's "Could not fsync" after the build started, nor a log in /dev
    for args in (["status"], ["push"], ["run", "--export-dir", str(tmp_path)]):
        r = invoke(args, sender_env("/dev/null"))
        assert r.exit_code == ExitCode.DATABASE_ERROR, (args, r.stderr)
        assert r.stderr.strip().endswith(
            "database /dev/null is not a regular file (a device or a pipe): name the DuckDB"
            " file dbt builds"
        ), r.stderr
    assert not os.path.exists("/dev/null_run.log")


def test_a_database_path_with_a_windows_line_ending_names_the_same_file(db):
    # `. ./.env` of a file saved with CRLF line endings leaves "\r" at the end of each value
    r = run_cli(["status", "--json"], sender_env(db, LINE_CAPI_DUCKDB=f"{db}\r"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["database"] == str(db)
    assert sorted(p.name for p in db.parent.iterdir() if "\r" in p.name) == []


def test_missing_payload_table_says_run_dbt_build(tmp_path):
    import duckdb

    db = tmp_path / "empty.duckdb"
    duckdb.connect(str(db)).close()
    r = invoke(["push"], sender_env(db))
    assert r.exit_code == ExitCode.NO_PAYLOAD and "no table line_capi_payload" in r.stderr
    r = invoke(["status"], sender_env(db))
    assert r.exit_code == 0 and "run dbt build" in r.stdout


def test_show_without_dry_run_is_a_usage_error(db):
    r = invoke(["push", "--show", "3"], sender_env(db))
    assert r.exit_code == ExitCode.USAGE


def test_batch_size_limit_is_enforced(db):
    r = invoke(["push", "--batch-size", "100001"], sender_env(db))
    assert r.exit_code == 2


def test_push_tuning_comes_from_the_environment_too(db):
    """What `sender run` passes on: its push has no options, only this environment."""
    with mock_server() as srv:
        r = invoke(
            ["push", "--json"],
            sender_env(db, srv.url, LINE_CAPI_BATCH_SIZE="7", LINE_CAPI_CONCURRENCY="2"),
        )
        assert r.exit_code == 0, r.stderr
        summary = json.loads(r.stdout)
        assert summary["accepted"] == 30 and summary["batches"] == 5  # 7+7+7+7+2
        assert sorted(rec.events for rec in srv.requests) == [2, 7, 7, 7, 7]
    r = invoke(["push"], sender_env(db, LINE_CAPI_CONCURRENCY="0"))
    assert r.exit_code == ExitCode.USAGE and "LINE_CAPI_CONCURRENCY" in r.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LINE_CAPI_TIMEOUT", "inf"),  # waited forever
        ("LINE_CAPI_TIMEOUT", "nan"),
        ("LINE_CAPI_BACKOFF_BASE", "1e308"),  # overflowed the retry's sleep: exit 70
        ("LINE_CAPI_MAX_BACKOFF", "1e308"),
        ("LINE_CAPI_MAX_BACKOFF", "3601"),
    ],
)
def test_a_wait_beyond_an_hour_or_not_a_number_is_a_usage_error(db, name, value):
    with mock_server() as srv:
        r = invoke(["push"], sender_env(db, srv.url, **{name: value}))
        assert srv.stats()["requests"] == 0
    assert r.exit_code == ExitCode.USAGE, r.stderr
    assert name in r.stderr


def test_a_memory_limit_duckdb_refuses_is_a_usage_error_before_the_database_opens(db):
    with mock_server() as srv:
        r = invoke(["push"], sender_env(db, srv.url, LINE_CAPI_MEMORY_LIMIT="garbage"))
        assert srv.stats()["requests"] == 0
    assert r.exit_code == ExitCode.USAGE, r.stderr
    said = " ".join(r.stderr.replace("│", " ").split())  # the error's box, unwrapped
    assert "'garbage' is not a memory limit DuckDB accepts" in said, r.stderr
    r = invoke(["push", "--dry-run", "--memory-limit", "64MB"], sender_env(db))
    assert r.exit_code == 0, r.stderr


@pytest.mark.parametrize("command", [["status"], ["preview"], ["push", "--dry-run"]])
def test_the_default_database_missing_from_another_folder_names_that_folder(tmp_path, command):
    """A job started in the wrong folder (cron's home) reads data/line_capi.duckdb there."""
    env = {"LINE_TAG_ID": "00000000-0000-4000-8000-000000000000"}
    r = run_cli(command, env, cwd=tmp_path)
    assert r.returncode == ExitCode.NO_PAYLOAD, r.stderr
    assert r.stderr.strip() == (
        f"error: database data/line_capi.duckdb does not exist in {tmp_path}: run `dbt build`"
        " first, or name the database (--database or LINE_CAPI_DUCKDB)"
    )


def test_push_json_prints_one_object_for_an_error_before_the_summary(db, tmp_path):
    """A scheduler that parses stdout gets the exit code and stderr's line, never the token."""
    with database_held(db):
        locked = run_cli(["push", "--json"], sender_env(db))
    cases = [
        (locked, ExitCode.DATABASE_LOCKED, "is locked by another process"),
        (
            run_cli(["push", "--json"], sender_env(tmp_path / "nope.duckdb")),
            ExitCode.NO_PAYLOAD,
            "does not exist: run `dbt build` first",
        ),
        (
            run_cli(["push", "--json"], sender_env(db, LINE_ACCESS_TOKEN="")),
            ExitCode.USAGE,
            "LINE_ACCESS_TOKEN is not set",
        ),
        (
            run_cli(["push", "--json", "--dry-run"], sender_env(db, LINE_TAG_ID="nope")),
            ExitCode.USAGE,
            "LINE_TAG_ID 'nope' is not a UUID",
        ),
    ]
    for r, code, message in cases:
        assert r.returncode == code, r.stderr
        (line,) = r.stdout.strip().splitlines()
        found = json.loads(line)
        assert found["exit_code"] == code and found["outcome"] == "error", found
        assert message in found["message"]
        assert r.stderr.strip() == f"error: {found['message']}"
        assert TOKEN not in r.stdout + r.stderr
    # without --json, stdout stays empty
    r = run_cli(["push"], sender_env(db, LINE_ACCESS_TOKEN=""))
    assert r.returncode == ExitCode.USAGE and r.stdout == ""


def test_push_json_prints_one_object_when_the_option_parser_refuses_a_value(db):
    refused = [
        run_cli(["push", "--json", "--batch-size", "0"], sender_env(db)),
        run_cli(["push", "--json"], sender_env(db, LINE_CAPI_CONCURRENCY="0")),
    ]
    for r in refused:
        assert r.returncode == ExitCode.USAGE, r.stderr
        (line,) = r.stdout.strip().splitlines()
        assert json.loads(line) == {
            "exit_code": 2,
            "outcome": "error",
            "message": "an option or argument was refused: see stderr, or sender push --help",
        }
        assert "Invalid value for" in r.stderr  # the parser's own message stays on stderr
    # other commands print no JSON they were not asked for
    r = run_cli(["status", "--batch-size", "3"], sender_env(db))
    assert r.returncode == ExitCode.USAGE and r.stdout == ""


def test_status_and_preview(db):
    env = sender_env(db)
    r = invoke(["status", "--json"], env)
    assert json.loads(r.stdout)["pending"] == 30 and json.loads(r.stdout)["last_run"] is None
    r = invoke(["preview", "-n", "3", "--width", "40"], env)
    assert r.exit_code == 0 and len(r.stdout.strip().splitlines()) == 4
    assert "order-" in r.stdout
    with mock_server() as srv:
        assert invoke(["push", *FAST, "--limit", "10"], sender_env(db, srv.url)).exit_code == 0
        sent_env = sender_env(db, srv.url)
    r = invoke(["status", "--json"], env)
    info = json.loads(r.stdout)
    assert info["pending"] == 20 and info["counts"]["accepted"] == 10
    assert info["last_run"]["outcome"] == "ok" and info["last_run"]["accepted"] == 10
    assert [(d["endpoint"], d["pending"]) for d in info["destinations"]] == [(srv.url, 20)]
    r = invoke(["status"], env)
    assert "accepted 10" in r.stdout and "pending   20" in r.stdout
    r = invoke(["preview", "--json", "-n", "100"], sent_env)
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 20 and all(json.loads(x)["event"] for x in lines)
    # at another destination (env's endpoint: port 9) nothing was sent yet
    r = invoke(["preview", "--json", "-n", "100"], env)
    assert len(r.stdout.strip().splitlines()) == 30
    # a destination mistyped is refused as a push refuses it, not shown as all pending
    for option, value, why in (
        ("--tag-id", "nope", "LINE_TAG_ID 'nope' is not a UUID"),
        ("--endpoint", "https://x:99999", "LINE_CAPI_ENDPOINT 'https://x:99999' is not a valid"),
    ):
        r = invoke(["preview", option, value], env)
        assert r.exit_code == ExitCode.USAGE and r.stdout == "", r.stderr
        [line] = r.stderr.splitlines()
        assert line.startswith(f"error: {why}"), line


def test_mock_server_command_rehearsal(db):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sender",
            "mock-server",
            "--port",
            "0",
            "--fault",
            "503:1",
            "--retry-after",
            "0",
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LINE_ACCESS_TOKEN": TOKEN, "PYTHONPATH": str(REPO)},
    )
    try:
        line = proc.stderr.readline()
        assert "listening on http://127.0.0.1:" in line, line
        url = line.split("listening on ")[1].split(" ")[0]
        r = run_cli(["push", *FAST], sender_env(db, url))
        assert r.returncode == 0, r.stderr
        assert "retrying" in r.stderr
        stats = requests.get(f"{url}/_mock/stats", timeout=5).json()
        assert stats["accepted_unique"] == 30 and stats["by_status"]["503"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=10)[1]
    assert proc.returncode == 0 and "stopped" in out
    assert TOKEN not in line + out


def test_mock_server_stays_on_loopback():
    r = invoke(["mock-server", "--host", "0.0.0.0"], {})  # noqa: S104
    assert r.exit_code == ExitCode.USAGE and "loopback" in r.stderr


def test_a_tag_id_pasted_in_capitals_is_sent_as_line_writes_it(tmp_path):
    """LINE shows a tag id in lower case; the mock, as strict, refuses a path in capitals (404)."""
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(i) for i in range(3)])
    with mock_server() as srv:
        r = invoke(["push", *FAST], sender_env(db, srv.url, LINE_TAG_ID=TAG_ID.upper()))
        assert r.exit_code == ExitCode.OK, r.stderr
        assert len(srv.accepted) == 3
    assert f"for LINE Tag {TAG_ID} at" in r.stderr
    runs = duckdb.connect(str(db), read_only=True).sql("select tag_id from line_capi_send_runs")
    assert runs.fetchall() == [(TAG_ID,)]


def test_a_first_push_to_a_destination_names_the_event_names_it_sends(tmp_path):
    """A site moving from a connector counts every order twice when the names differ: the first
    push to a destination says which names it sends (not a test send, nor the pushes after)."""
    db = tmp_path / "line_capi.duckdb"
    events = [make_event(i) for i in range(3)]
    events += [make_event(i, event_name="CompleteRegistration") for i in range(3, 5)]
    write_payload(db, events)
    note = (
        "note: a first push to this destination: the payload's event names are Purchase (3),"
        " CompleteRegistration (2); LINE counts a conversion once only when the LINE Tag (or a"
        " connector that sent before this job) gave it the same event name and deduplication key"
    )
    with mock_server() as srv:
        test = invoke(["push", *FAST, "--test", "--limit", "1"], sender_env(db, srv.url))
        assert test.exit_code == ExitCode.OK and "first push" not in test.stderr
        first = invoke(["push", *FAST], sender_env(db, srv.url))
        assert first.exit_code == ExitCode.OK and note in first.stderr
        write_payload(db, [*events, make_event(5)])  # the next build: one new event
        again = invoke(["push", *FAST], sender_env(db, srv.url))
        assert again.stdout.startswith("pending 1, sent 1") and "first push" not in again.stderr
    # an empty payload: nothing pending, and --resend would send nothing either: no such advice
    empty = tmp_path / "empty.duckdb"
    write_payload(empty, [])
    with mock_server() as srv:
        r = invoke(["push", *FAST, "--test"], sender_env(empty, srv.url))
    assert r.exit_code == ExitCode.OK and "--resend" not in r.stderr


def test_orders_renamed_by_a_build_without_the_sites_vars_are_held_back_not_sent_twice(tmp_path):
    """A site whose vars live in its job (line_event_name: Purchase), built once by hand without
    them: the same orders come out as Conversion, and LINE would count each twice. The push
    holds back every event of that name (exit 2, sent by --allow-renamed-events), the new orders
    it named so too (a catch-up built without the vars sent those as Conversion, and LINE counted
    them twice once they went out as Purchase), and the dry run says so before; a new name whose
    orders are all new (a conversion type added) only warns."""
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(i, key=f"ORD-{i}") for i in range(3)])
    warning = (
        "warning: events named Conversion (3) go to this destination for the first time; it has"
        " had Purchase before"
    )
    held = "4 events of the new name Conversion"
    why = "3 of them carry order ids this destination has under Purchase, and LINE would count"
    with mock_server() as srv:
        test = invoke(["push", *FAST, "--test", "--limit", "1"], sender_env(db, srv.url))
        assert test.exit_code == ExitCode.OK, test.stderr
        # only a test send there yet: no name to compare with, nothing said
        dry = invoke(["push", "--dry-run"], sender_env(db, srv.url))
        assert "for the first time" not in dry.stderr, dry.stderr
        first = invoke(["push", *FAST], sender_env(db, srv.url))
        assert first.exit_code == ExitCode.OK and "for the first time" not in first.stderr
        # the three orders renamed, and a new order the same build named so
        renamed = [make_event(i, key=f"ORD-{i}", event_name="Conversion") for i in range(4)]
        write_payload(db, renamed)
        warning = warning.replace("Conversion (3)", "Conversion (4)")
        dry = invoke(["push", "--dry-run"], sender_env(db, srv.url))
        assert dry.exit_code == ExitCode.OK and warning in dry.stderr, dry.stderr
        assert f"{held}: a push would hold them back: {why}" in dry.stderr
        assert "would send 0 in 0 requests, hold back 4 (renamed)" in dry.stdout
        # what --limit takes of them is what is counted
        limited = invoke(["push", "--dry-run", "--limit", "2"], sender_env(db, srv.url))
        assert "error" not in limited.stderr and "2 events of the new name Conversion" in (
            limited.stderr
        ), limited.stderr
        stopped = invoke(["push", *FAST], sender_env(db, srv.url))
        assert stopped.exit_code == ExitCode.USAGE, stopped.stderr
        assert warning in stopped.stderr and f"error: {held} were not sent: {why}" in stopped.stderr
        assert "sender push --allow-renamed-events; they stay pending" in stopped.stderr
        assert not {("Conversion", "ORD-0"), ("Conversion", "ORD-3")} & set(srv.accepted)
        sent = invoke(["push", *FAST, "--allow-renamed-events"], sender_env(db, srv.url))
        assert sent.exit_code == ExitCode.OK, sent.stderr
        assert sent.stdout.startswith("pending 4, sent 4")
        # a name new here whose orders are new too: a conversion type added; said, and sent
        write_payload(db, [*renamed, make_event(9, key="REG-9", event_name="CompleteRegistration")])
        added = invoke(["push", *FAST], sender_env(db, srv.url))
        assert added.exit_code == ExitCode.OK and added.stdout.startswith("pending 1, sent 1")
        assert "events named CompleteRegistration (1) go to this destination for the first" in (
            added.stderr
        )
        # the held line names the names those orders went under, not every name the destination had
        write_payload(db, [make_event(i, key=f"ORD-{i}", event_name="Order") for i in range(3)])
        dry = invoke(["push", "--dry-run"], sender_env(db, srv.url))
        assert (
            "3 events of the new name Order: a push would hold them back: 3 of them carry order"
            " ids this destination has under Conversion, Purchase"
        ) in dry.stderr, dry.stderr
        # beside it, a conversion type added (its orders all new) goes: only the renamed waits
        signup = make_event(20, key="SIGN-1", event_name="Signup")
        write_payload(
            db, [make_event(i, key=f"ORD-{i}", event_name="Order") for i in range(3)] + [signup]
        )
        both = invoke(["push", *FAST], sender_env(db, srv.url))
        assert both.exit_code == ExitCode.USAGE, both.stderr
        assert "error: 3 events of the new name Order were not sent: 3 of them" in both.stderr
        assert ("Signup", "SIGN-1") in srv.accepted and ("Order", "ORD-0") not in srv.accepted


def test_mock_server_refuses_a_tag_id_that_is_not_a_uuid():
    r = invoke(["mock-server", "--port", "0", "--tag-id", "nope"], {})
    assert r.exit_code == ExitCode.USAGE and "LINE_TAG_ID 'nope' is not a UUID" in r.stderr


def test_mock_server_rejects_unknown_fault():
    r = invoke(["mock-server", "--port", "0", "--fault", "418"], {})
    assert r.exit_code == ExitCode.USAGE


def push_under_way(db, srv, *, concurrency: int) -> subprocess.Popen:
    """A `sender push` of one event per request, once the server has had `concurrency` requests."""
    env = {**os.environ, **sender_env(db, srv.url), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sender",
            "push",
            "--batch-size",
            "1",
            "--concurrency",
            str(concurrency),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60  # a loaded machine starts Python slowly
    while srv.stats()["requests"] < concurrency and time.time() < deadline:
        time.sleep(0.05)
    # else the signal would reach it before its handlers are set: a misleading failure
    if srv.stats()["requests"] < concurrency:
        proc.kill()
        raise AssertionError(f"the push sent nothing within 60 s: {proc.communicate()[1]}")
    return proc


@pytest.mark.parametrize(
    "server",
    [
        {"delay": 0.5},  # stopped while a request waits for its answer
        # stopped in a retry's backoff: the worker recorded the run `unavailable`, exit 1
        {"fault_policy": lambda: Fault("503", retry_after=20)},
    ],
    ids=["answer", "backoff"],
)
def test_sigterm_stops_push_cleanly(db, server):
    with mock_server(**server) as srv:
        proc = push_under_way(db, srv, concurrency=1)
        time.sleep(0.3)  # its answer in: the 503's backoff has begun
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert "interrupted" in err and "Traceback" not in err
    assert "left pending" in out
    con = duckdb.connect(str(db), read_only=True)
    (outcome,) = con.execute("select outcome from line_capi_send_runs").fetchone()
    con.close()
    assert outcome == "interrupted"


def test_a_token_pasted_into_another_setting_is_never_echoed(db, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    from_file = {"LINE_ACCESS_TOKEN": "", "LINE_ACCESS_TOKEN_FILE": str(token_file)}
    cases = [
        (["push"], sender_env(db, LINE_TAG_ID=TOKEN)),
        (["push", "--json"], sender_env(db, LINE_TAG_ID=TOKEN)),
        (["push"], sender_env(db, LINE_CHANNEL_ID=TOKEN)),
        (["push"], sender_env(db, LINE_CAPI_ENDPOINT=TOKEN)),
        # the token file is not read yet when these are refused
        (["push"], sender_env(db, LINE_TAG_ID=TOKEN, **from_file)),
        (["push", TOKEN], sender_env(db, **from_file)),
        (["push", TOKEN], sender_env(db)),
    ]
    for args, env in cases:
        r = run_cli(args, env)
        assert r.returncode == ExitCode.USAGE, (args, r.stderr)
        assert TOKEN not in r.stdout + r.stderr, args
        assert "********" in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_token_inside_the_endpoint_is_refused_before_any_lookup(db):
    """`https://<token>.example` is a valid URL: the token would go out as a DNS query and into
    the progress, the summary and the ledger. Refused, naming the setting (in any case: a host
    name comes back lowercased). A line break in the endpoint is refused as well."""
    for endpoint in (f"https://{TOKEN.lower()}.example.invalid", f"https://x.example/{TOKEN}"):
        for args in (["push"], ["push", "--json"]):
            r = run_cli(args, sender_env(db, LINE_CAPI_ENDPOINT=endpoint))
            assert r.returncode == ExitCode.USAGE, (endpoint, r.stderr)
            assert "LINE_CAPI_ENDPOINT holds the access token" in r.stderr
            assert TOKEN.lower() not in (r.stdout + r.stderr).lower()
    assert TOKEN.lower().encode() not in db.read_bytes().lower()  # nothing recorded
    r = run_cli(["push"], sender_env(db, LINE_CAPI_ENDPOINT="http://127.0.0.1:9/a\r\nX-Evil: 1"))
    assert r.returncode == ExitCode.USAGE
    assert "contains spaces or control characters" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_the_option_parser_refuses_in_one_line_that_names_the_help(db):
    cases = {
        ("push", "--bogus"): "error: No such option: --bogus (see sender push --help)",
        # dbt's options go after `--`; one before it is a typo, refused before the lock and dbt
        ("run", "--bogus"): "error: No such option: --bogus (dbt's options go after --:"
        " sender run -- --vars '{…}'; see sender run --help)",
        ("run", "--vars", "{a: 1}"): "error: No such option: --vars (dbt's options go after"
        " --: sender run -- --vars '{…}'; see sender run --help)",
        ("pushh",): "error: No such command 'pushh'. Did you mean 'push'? (see sender --help)",
        ("report",): "error: Missing option '--output' / '-o'. (see sender report --help)",
    }
    for args, line in cases.items():
        r = run_cli(list(args), sender_env(db))
        assert r.returncode == ExitCode.USAGE, r.stderr
        assert r.stderr.strip() == line
    r = run_cli(["push"], sender_env(db, LINE_CAPI_CONCURRENCY="abc"))
    assert r.returncode == ExitCode.USAGE
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: Invalid value for '--concurrency'")
    assert "LINE_CAPI_CONCURRENCY" in line
    # `sender` alone still prints its help, as before
    r = run_cli([], sender_env(db))
    assert r.returncode == ExitCode.USAGE and "sender [OPTIONS] COMMAND" in r.stdout + r.stderr


def test_a_burst_of_signals_stops_push_once_and_cleanly(db):
    """Ctrl-C reaches every process of the terminal's group, and `sender run` then terminates its
    push as well: the second signal, in the middle of stopping, must not cut the clean-up short."""
    with mock_server(delay=0.3) as srv:
        proc = push_under_way(db, srv, concurrency=2)
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
            proc.send_signal(number)
            time.sleep(0.02)
        out, err = proc.communicate(timeout=30)
        accepted = srv.stats()["accepted_unique"]
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert "left pending" in out
    r = run_cli(["status", "--json"], sender_env(db))
    status = json.loads(r.stdout)
    assert status["last_run"]["outcome"] == "interrupted", status["last_run"]
    assert status["counts"]["accepted"] == accepted, status  # each accepted event is recorded
    assert status["pending"] == 30 - accepted


def test_help_under_a_locale_that_is_not_utf8_prints_instead_of_crashing(db):
    """cron or a terminal under EUC-JP or Latin-1: Rich's bullets and an ellipsis of the help
    cannot be encoded, and every --help of push and run was exit 70."""
    for command in ("push", "run", "status"):
        r = run_cli([command, "--help"], sender_env(db, PYTHONIOENCODING="iso-8859-1"))
        assert r.returncode == 0, r.stderr
        assert "Usage: sender " + command in r.stdout and "Traceback" not in r.stderr


def test_a_reader_that_closes_stdout_early_leaves_each_command_its_own_exit_code(db, tmp_path):
    """`sender preview | head` exited 1, the code of events left pending; so did a push whose
    summary found its reader gone, after sending everything."""
    env = sender_env(db)
    pending = json.loads(run_cli(["status", "--json"], env).stdout)["pending"]
    for args in (["preview", "--json", "-n", "100"], ["preview"], ["status"], ["status", "--json"]):
        r = run_cli(args, env, reader_gone=True)
        assert r.returncode == 0, (args, r.stderr)
        assert "Traceback" not in r.stderr and "Error" not in r.stderr, r.stderr
    # the page was not all read: the command does not say it wrote it
    r = run_cli(["report", "-o", "-"], env, reader_gone=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    with mock_server() as srv:
        r = run_cli(["push", *FAST, "--json"], sender_env(db, srv.url), reader_gone=True)
        assert r.returncode == 0, r.stderr
        assert srv.stats()["accepted_events"] == pending > 0
        r = run_cli(["push", *FAST], sender_env(db, srv.url), reader_gone=True)
        assert r.returncode == 0, r.stderr  # nothing left: its "nothing pending" line unread
    assert run_cli(["report", "-o", "-"], env).stderr.startswith("wrote - (")


def test_a_path_too_long_for_the_file_system_is_one_line_not_a_crash(tmp_path):
    """A database name over 255 bytes made every command exit 70, an internal error."""
    long_name = tmp_path / ("x" * 300 + ".duckdb")
    for args in (["status"], ["push", "--dry-run"], ["status", "--json"]):
        r = run_cli(args, sender_env(long_name))
        assert r.returncode == ExitCode.USAGE, (args, r.stderr)
        [line] = r.stderr.splitlines()
        assert line.startswith("error: the path /") and line.endswith(
            "xxx.duckdb is too long for the file system: give a shorter one"
        ), line
        assert len(line) < 200  # the name shortened
        if "--json" in args:
            assert json.loads(r.stdout) == {
                "exit_code": 2,
                "outcome": "error",
                "message": line.removeprefix("error: "),
            }


def test_status_and_preview_json_print_one_object_when_they_stop_early(db, tmp_path):
    """A scheduler reading `status --json` got nothing on stdout for a locked or missing database;
    `push --json` printed its error object."""
    with database_held(db):
        locked = [run_cli([command, "--json"], sender_env(db)) for command in ("status", "preview")]
    missing = run_cli(["status", "--json"], sender_env(tmp_path / "none.duckdb"))
    refused = run_cli(["preview", "--json", "--bogus"], sender_env(db))
    cases = [*[(r, ExitCode.DATABASE_LOCKED) for r in locked], (missing, ExitCode.NO_PAYLOAD)]
    for r, code in [*cases, (refused, ExitCode.USAGE)]:
        assert r.returncode == code, r.stderr
        (line,) = r.stdout.strip().splitlines()
        got = json.loads(line)
        assert got["exit_code"] == code and got["outcome"] == "error"
        if code != ExitCode.USAGE:
            assert r.stderr.strip() == "error: " + got["message"]
    assert json.loads(refused.stdout)["message"] == (
        "an option or argument was refused: see stderr, or sender preview --help"
    )
    # the command is the first word: a value that names one does not make its refusal JSON
    r = run_cli(["report", "-o", "status", "--json"], sender_env(db))
    assert r.returncode == ExitCode.USAGE and r.stdout == ""


def test_status_before_a_first_build_shows_why_the_first_run_stopped(tmp_path):
    """A first run that stopped on its settings built no database: `status` said only that the
    database does not exist, while its run log said why."""
    env = {"LINE_CAPI_DUCKDB": str(tmp_path / "first.duckdb"), "LINE_TAG_ID": TAG_ID}
    r = run_cli(["run", "--export-dir", str(tmp_path)], {**env, "LINE_ACCESS_TOKEN": ""})
    assert r.returncode == ExitCode.USAGE, r.stderr
    text, as_json = run_cli(["status"], env), run_cli(["status", "--json"], env)
    for got in (text, as_json):
        assert got.returncode == ExitCode.NO_PAYLOAD, got.stderr
    job = json.loads(as_json.stdout)["last_job"]
    assert job["exit_code"] == ExitCode.USAGE and "LINE_ACCESS_TOKEN" in job["message"]
    assert text.stdout.splitlines()[0] == f"database  {tmp_path / 'first.duckdb'} (does not exist)"
    assert "last job  sender run " in text.stdout and "LINE_ACCESS_TOKEN" in text.stdout
    # no run either: the error line alone
    other = {"LINE_CAPI_DUCKDB": str(tmp_path / "none.duckdb")}
    assert run_cli(["status"], other).stdout == ""


def test_status_says_when_the_job_last_succeeded_while_it_fails(db, tmp_path):
    """During an outage the last job says why it fails, not since when: the run log knows the
    last run that exited 0, however many failed runs (and a rotation) came after it."""
    log = tmp_path / "run.log"
    lines = [
        "2026-12-04T10:40:09Z run: done: exit 0",
        *[f"2026-12-04T1{h}:40:09Z run: done: exit 11" for h in range(1, 4)],
        "2026-12-04T14:40:00Z run: start: sender run",
        "2026-12-04T14:40:05Z run: error: LINE answered 401",
        "2026-12-04T14:40:09Z run: done: exit 3",
    ]
    log.with_name("run.log.1").write_text("\n".join(lines[:2]) + "\n")  # rotated in between
    log.write_text("\n".join(lines[2:]) + "\n")
    env = sender_env(db)
    text = run_cli(["status", "--log-file", str(log)], env).stdout.splitlines()
    job = json.loads(run_cli(["status", "--json", "--log-file", str(log)], env).stdout)["last_job"]
    i = next(i for i, line in enumerate(text) if line.startswith("last job"))
    assert text[i : i + 2] == [
        "last job  sender run started 2026-12-04T14:40:00Z, exit 3 AUTHENTICATION: LINE answered"
        " 401",
        "last ok   sender run finished 2026-12-04T10:40:09Z (4 runs since)",
    ]
    assert (job["last_ok_at"], job["runs_since_ok"]) == ("2026-12-04T10:40:09Z", 4)
    # once a run succeeds, the last job says it all
    with log.open("a") as file:
        file.write("2026-12-04T15:40:00Z run: start: sender run\n")
        file.write("2026-12-04T15:40:09Z run: done: exit 0\n")
    text = run_cli(["status", "--log-file", str(log)], env).stdout
    assert "last ok" not in text and "exit 0 OK" in text and "heartbeat" not in text
    job = json.loads(run_cli(["status", "--json", "--log-file", str(log)], env).stdout)["last_job"]
    assert (job["last_ok_at"], job["runs_since_ok"]) == ("2026-12-04T15:40:09Z", 0)
    # its ping, when a heartbeat URL is set: the monitor reports the job down although it exited 0
    with log.open("a") as file:
        file.write("2026-12-04T16:40:00Z run: start: sender run\n")
        file.write("2026-12-04T16:40:09Z run: done: exit 0\n")
        file.write(
            "2026-12-04T16:40:10Z run: warning: heartbeat not delivered: the heartbeat URL"
            " cannot be reached (ConnectionError)\n"
        )
    text = run_cli(["status", "--log-file", str(log)], env).stdout.splitlines()
    i = next(i for i, line in enumerate(text) if line.startswith("last job"))
    assert text[i : i + 2] == [
        "last job  sender run started 2026-12-04T16:40:00Z, exit 0 OK",
        "          heartbeat not delivered: the heartbeat URL cannot be reached (ConnectionError)",
    ]
    job = json.loads(run_cli(["status", "--json", "--log-file", str(log)], env).stdout)["last_job"]
    assert job["heartbeat"].startswith("not delivered: the heartbeat URL cannot be reached")


def test_status_while_the_database_is_held_still_shows_the_running_job(db, tmp_path):
    """Every hour the job holds the database for a while: `sender status` then said only "locked",
    not whether the job was running or since when, which its run log knows."""
    log = tmp_path / "run.log"
    RunLog(log).write("run", "start: sender run (pid 4242)")
    env = sender_env(db, LINE_CAPI_RUN_LOG=str(log))
    with database_held(db):
        text = run_cli(["status"], env)
        as_json = run_cli(["status", "--json"], env)
    for r in (text, as_json):
        assert r.returncode == ExitCode.DATABASE_LOCKED, r.stderr
        assert r.stderr.startswith("error: database ")
        assert "is locked by another process" in r.stderr
    started = as_json.stdout.split('"started_at":"')[1][:20]
    assert text.stdout.splitlines() == [
        f"database  {db} (held by another process)",
        f"last job  sender run started {started}, never finished (killed, crashed or still"
        " running)",
        "last ok   none in the run log",
    ]
    (line,) = as_json.stdout.splitlines()
    got = json.loads(line)
    assert got["exit_code"] == ExitCode.DATABASE_LOCKED and got["outcome"] == "error"
    assert got["database"] == str(db) and "is locked" in got["message"]
    assert got["last_job"] == {
        "started_at": started,
        "finished_at": None,
        "exit_code": None,
        "outcome": None,
        "message": None,
        "last_ok_at": None,
        "runs_since_ok": 0,
        "heartbeat": None,
        "alert": None,
        "warnings": [],
    }
    # a job run with `--log-file` (not the env var): status takes the same option
    env = sender_env(db)
    assert "last job" not in run_cli(["status"], env).stdout  # the default log has no run
    r = run_cli(["status", "--log-file", str(log)], env)
    assert r.returncode == ExitCode.OK, r.stderr
    assert f"last job  sender run started {started}, never finished" in r.stdout, r.stdout
    with database_held(db):
        r = run_cli(["status", "--json", "--log-file", str(log)], env)
    assert json.loads(r.stdout)["last_job"]["started_at"] == started


def test_status_says_when_the_run_log_it_was_told_to_read_does_not_exist(db, tmp_path):
    """A mistyped --log-file (or the job logs elsewhere) is a warning, not a last job silently
    left out; a run log named with a .env's CR is the same file."""
    log = tmp_path / "run.log"
    RunLog(log).write("run", "start: sender run (pid 4242)")
    env = sender_env(db)
    missing = tmp_path / "rn.log"
    for args in (["status"], ["status", "--json"]):
        r = run_cli([*args, "--log-file", str(missing)], env)
        assert r.returncode == ExitCode.OK, r.stderr
        assert r.stderr == (
            f"warning: run log {missing} does not exist (--log-file, env LINE_CAPI_RUN_LOG):"
            " no last job\n"
        )
    r = run_cli(["status"], sender_env(db, LINE_CAPI_RUN_LOG=f"{log}\r"))
    assert (r.returncode, r.stderr) == (ExitCode.OK, "")
    assert "last job  sender run started " in r.stdout
    assert run_cli(["status"], sender_env(db, LINE_CAPI_RUN_LOG="")).stderr == ""  # the default
    # a folder, or another file (the database itself): no last job either, and said
    for other in (tmp_path, db):
        r = run_cli(["status", "--log-file", str(other)], env)
        assert r.returncode == ExitCode.OK, r.stderr
        assert r.stderr == (
            f"warning: run log {other} holds no run of sender run (--log-file, env"
            " LINE_CAPI_RUN_LOG): no last job\n"
        )


def test_help_examples_fit_an_80_column_terminal():
    """Rich folds a longer example line, and a folded shell command loses its meaning: the
    mock-server example's `\\` moved to the next line, and pasted, the push went to LINE itself."""
    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        text = inspect.cleandoc(command.callback.__doc__ or "")
        in_example = False
        for line in text.splitlines():
            if line.strip().startswith("Example"):
                in_example = True
            elif in_example and line.startswith("    "):
                # Rich indents a code block by 2 inside the 80 columns it has
                assert len(line.strip()) <= 76, (name, line)

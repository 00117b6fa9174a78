"""The access token never appears in output, logs, exceptions, help or the ledger."""

from __future__ import annotations

import pickle
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fault_fixtures import sender_process_env
from sender_fixtures import (
    FAST,
    TAG_ID,
    TOKEN,
    db_text,
    make_event,
    mock_server,
    run_cli,
    sender_env,
    write_payload,
)

from sender.exit_codes import ExitCode
from sender.line_client import LineClient
from sender.settings import ConfigError, LineTarget, Secret


def test_secret_and_config_reprs_hide_the_token():
    target = LineTarget.from_values(
        endpoint="http://127.0.0.1:1", tag_id=TAG_ID, token=TOKEN, channel_id=None
    )
    for text in (
        repr(target),
        str(target),
        repr(target.token),
        str(target.token),
        f"{target}",
        repr(LineClient(target, timeout=1)),
    ):
        assert TOKEN not in text
    assert target.token.reveal() == TOKEN
    with pytest.raises(TypeError):
        pickle.dumps(target.token)
    assert repr(Secret("x")) == "Secret('********')"


def test_config_errors_name_the_tag_not_the_token():
    with pytest.raises(ConfigError) as err:
        LineTarget.from_values(endpoint=None, tag_id=TAG_ID, token=TOKEN + " x", channel_id=None)
    assert TOKEN not in str(err.value) and TAG_ID in str(err.value)


def test_token_never_in_any_output_or_the_ledger(tmp_path):
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(i) for i in range(40)] + [make_event(99, line_uid=True)])
    outputs: list[str] = []

    def run(args, env):
        r = run_cli(args, env)
        outputs.extend([r.stdout, r.stderr])
        return r

    channel = {"LINE_CHANNEL_ID": "1234"}
    with mock_server() as srv:
        srv.poison("order-0000003")
        srv.inject("500")
        srv.inject("drop")
        assert (
            run(
                ["push", *FAST, "--batch-size", "10"], sender_env(db, srv.url, **channel)
            ).returncode
            == 4
        )
        run(["push", *FAST], sender_env(db, srv.url))  # missing channel id
        run(["push", *FAST, "--resend", "--json"], sender_env(db, srv.url, **channel))
        run(
            ["push", *FAST, "--test", "--resend", "--limit", "2"],
            sender_env(db, srv.url, **channel),
        )
    with mock_server(token="the-right-one") as srv:  # noqa: S106
        assert run(["push", *FAST, "--resend"], sender_env(db, srv.url, **channel)).returncode == 3
    run(
        ["push", *FAST, "--resend", "--max-retries", "1"],
        sender_env(db, "http://127.0.0.1:9", **channel),
    )  # connection refused
    run(["push"], sender_env(db, "http://example.com"))  # refused endpoint
    run(["push"], sender_env(db, LINE_TAG_ID="nope"))
    run(  # connection refused, given up after one retry: only the option's token matters here
        ["push", *FAST, "--max-retries", "1", "--access-token", TOKEN + "\n"],
        sender_env(db, LINE_ACCESS_TOKEN=""),
    )
    run(["push", "--dry-run", "--show", "3"], sender_env(db))
    run(["status"], sender_env(db))
    run(["report", "-o", str(tmp_path / "report.html")], sender_env(db))
    outputs.append((tmp_path / "report.html").read_text())
    run(["preview"], sender_env(db))
    run(["push", "--help"], sender_env(db))
    run(["push"], sender_env(tmp_path / "missing.duckdb"))
    everything = "\n".join(outputs)
    assert "401" in everything or "access token" in everything  # the failure paths did run
    assert TOKEN not in everything
    assert TOKEN not in db_text(db)


def token_file_env(db, url: str | None, token_file, **extra: str) -> dict[str, str]:
    """The push's environment with the token in a file instead of LINE_ACCESS_TOKEN."""
    env = sender_env(db, url, LINE_ACCESS_TOKEN_FILE=str(token_file), **extra)
    del env["LINE_ACCESS_TOKEN"]
    return env


def test_a_token_file_works_with_and_without_a_trailing_newline(tmp_path):
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(i) for i in range(6)])
    outputs = []
    with mock_server() as srv:  # expects TOKEN
        # Notepad's UTF-8 begins with a byte order mark
        for i, content in enumerate(
            (TOKEN + "\n", TOKEN, TOKEN + "\r\n", "\ufeff" + TOKEN + "\r\n")
        ):
            token_file = tmp_path / f"token-{i}"
            token_file.write_text(content, newline="")
            token_file.chmod(0o600)
            r = run_cli(
                ["push", *FAST, "--resend", "--limit", "2"],
                token_file_env(db, srv.url, token_file),
            )
            outputs.extend([r.stdout, r.stderr])
            assert r.returncode == 0, r.stderr
        assert srv.stats()["by_status"] == {"202": 4}
        # a file holding another token reaches LINE, which refuses it: the file was really read
        wrong = tmp_path / "wrong-token"
        wrong.write_text(TOKEN + "-old\n")
        wrong.chmod(0o600)
        r = run_cli(["push", *FAST, "--resend"], token_file_env(db, srv.url, wrong))
        outputs.extend([r.stdout, r.stderr])
        assert r.returncode == 3, r.stderr
    assert TOKEN not in "\n".join(outputs) + db_text(db)


def test_a_token_file_other_users_can_read_is_warned_about_not_a_mounted_secret(tmp_path):
    """A file of this user with the usual umask 022 (0644) shows the token to every account on
    the machine: one warning line, and the push goes on. Docker's and Kubernetes' secret mounts
    (a file of another user, a link into ..data) are readable by design: no warning."""
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(i) for i in range(2)])
    loose = tmp_path / "token"
    loose.write_text(TOKEN + "\n")
    loose.chmod(0o644)
    (tmp_path / "..data").mkdir()
    mounted = tmp_path / "..data" / "token"
    mounted.write_text(TOKEN + "\n")
    mounted.chmod(0o644)
    linked = tmp_path / "k8s-token"
    linked.symlink_to(mounted)
    with mock_server() as srv:
        r = run_cli(["push", *FAST, "--resend"], token_file_env(db, srv.url, loose))
        assert r.returncode == 0, r.stderr
        assert [line for line in r.stderr.splitlines() if "warning" in line] == [
            f"warning: LINE_ACCESS_TOKEN_FILE {loose} is readable by other users (mode 0644):"
            f" chmod 600 {loose}"
        ]
        loose.chmod(0o600)
        quiet = run_cli(["push", *FAST, "--resend"], token_file_env(db, srv.url, loose))
        linked_run = run_cli(["push", *FAST, "--resend"], token_file_env(db, srv.url, linked))
        # sender run checks the same file before its build, in one line too
        run = run_cli(["run"], {**token_file_env(db, srv.url, mounted), "KARTE_EXPORT_DIR": ""})
    for done in (quiet, linked_run):
        assert done.returncode == 0 and "warning" not in done.stderr, done.stderr
    assert run.stderr.startswith(
        f"warning: LINE_ACCESS_TOKEN_FILE {mounted} is readable by other users (mode 0644)"
    ), run.stderr
    assert TOKEN not in r.stdout + r.stderr + run.stdout + run.stderr


def test_token_file_errors_are_one_line_naming_the_variable_never_the_token(tmp_path):
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(1)])
    empty = tmp_path / "empty"
    empty.write_text("\n")
    holder = tmp_path / "token"
    holder.write_text(TOKEN + "\n")
    holder.chmod(0o600)
    folder = tmp_path / "a-folder"
    folder.mkdir()
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe" + TOKEN.encode())
    cases = [
        (token_file_env(db, None, tmp_path / "missing"), "cannot be read: No such file"),
        (token_file_env(db, None, folder), "cannot be read: Is a directory"),
        (token_file_env(db, None, empty), "is empty"),
        (token_file_env(db, None, binary), "is not UTF-8 text"),
        (sender_env(db, LINE_ACCESS_TOKEN_FILE=str(holder)), "are both set: keep one"),
    ]
    with mock_server() as srv:
        for env, message in cases:
            env["LINE_CAPI_ENDPOINT"] = srv.url
            for command in (["push"], ["run"], ["mock-server", "--port", "0"]):
                r = run_cli(command, env)
                assert r.returncode == ExitCode.USAGE, (command, message, r.stderr)
                [line] = r.stderr.strip().splitlines()
                assert message in line and "LINE_ACCESS_TOKEN" in line, (command, line)
                assert TOKEN not in r.stdout + r.stderr
        assert srv.stats()["requests"] == 0
    # each sender run stopped before anything, and logged why, never the token
    log = (tmp_path / "line_capi_run.log").read_text()
    assert log.count("run: done: exit 2") == len(cases) and TOKEN not in log
    assert all(message in log for _, message in cases)


@pytest.mark.parametrize(
    ("held", "said"),
    [
        (f"Bearer {TOKEN}", "starts with 'Bearer ': give the token alone"),
        # a line of a .env, or its quotes: each cost a request and a 401 that blamed the token
        (f"LINE_ACCESS_TOKEN={TOKEN}", "starts with LINE_ACCESS_TOKEN=: give the token alone"),
        (f'"{TOKEN}"', "is wrapped in quotes; the quotes are part of the value"),
    ],
)
def test_a_token_file_holding_more_than_the_token_is_named_in_the_error(tmp_path, held, said):
    """'Bearer <token>' pasted into the file: the error names the file, where the fix is."""
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(1)])
    holder = tmp_path / "token"
    holder.write_text(f"{held}\n")
    holder.chmod(0o600)
    with mock_server() as srv:
        for command in (["push"], ["run"]):
            r = run_cli(command, token_file_env(db, srv.url, holder))
            assert r.returncode == ExitCode.USAGE, (command, r.stderr)
            [line] = r.stderr.strip().splitlines()
            assert line.startswith(f"error: LINE_ACCESS_TOKEN_FILE {holder} (the access token of")
            assert said in line
            assert TOKEN not in r.stdout + r.stderr
        # the variable itself, quoted as Docker's --env-file keeps it
        env = {**sender_env(db, srv.url), "LINE_ACCESS_TOKEN": held}
        r = run_cli(["push"], env)
        assert r.returncode == ExitCode.USAGE and said in r.stderr and TOKEN not in r.stderr
        assert srv.stats()["requests"] == 0


def test_a_secret_read_from_a_file_is_scrubbed_from_a_crash_report(tmp_path, monkeypatch, capsys):
    from sender.cli import report_crash
    from sender.secret_env import read_secret

    holder = tmp_path / "token"
    holder.write_text(TOKEN + "\n")
    holder.chmod(0o600)
    monkeypatch.delenv("LINE_ACCESS_TOKEN", raising=False)
    monkeypatch.setenv("LINE_ACCESS_TOKEN_FILE", str(holder))
    assert read_secret("LINE_ACCESS_TOKEN").reveal() == TOKEN
    try:
        raise RuntimeError(f"a library that put {TOKEN} in its message")
    except RuntimeError as exc:
        report_crash(exc, debug=True, log=tmp_path / "crash.log")
    err = capsys.readouterr().err
    assert "a library that put ******** in its message" in err
    assert TOKEN not in err + (tmp_path / "crash.log").read_text()


def test_the_mock_server_reads_the_token_it_expects_from_a_file(tmp_path):
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(i) for i in range(3)])
    holder = tmp_path / "token"
    holder.write_text(TOKEN + "\n")
    holder.chmod(0o600)
    env = sender_process_env(token_file_env(db, None, holder))
    server = subprocess.Popen(
        [sys.executable, "-m", "sender", "mock-server", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = server.stderr.readline()
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", first).group(1)
        wrong = run_cli(["push", *FAST], sender_env(db, url, LINE_ACCESS_TOKEN=TOKEN + "x"))
        right = run_cli(["push", *FAST], sender_env(db, url))
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=10)
    assert wrong.returncode == ExitCode.AUTHENTICATION, wrong.stderr
    assert right.returncode == 0, right.stderr
    assert TOKEN not in first + out + err + right.stderr + wrong.stderr


def test_read_secret_is_generic_over_the_variable_name(tmp_path):
    from sender.secret_env import read_secret

    hook = tmp_path / "webhook"
    hook.write_text("https://hooks.example.com/T0/B0/xyz\n")
    name = "LINE_CAPI_ALERT_WEBHOOK"
    assert read_secret(name, environ={}) is None
    assert read_secret(name, environ={f"{name}_FILE": str(hook)}).reveal() == (
        "https://hooks.example.com/T0/B0/xyz"
    )
    assert read_secret(name, environ={name: "https://a.example"}).reveal() == "https://a.example"
    # a value typed on the command line wins over both, as options win over the environment
    both = {name: "x-env", f"{name}_FILE": str(hook)}
    assert read_secret(name, option="x-typed", environ=both).reveal() == "x-typed"
    with pytest.raises(ConfigError, match=f"^{name} and {name}_FILE are both set: keep one$"):
        read_secret(name, environ=both)
    with pytest.raises(ConfigError) as err:
        read_secret(name, environ={f"{name}_FILE": str(tmp_path / "gone")})
    assert str(err.value) == (
        f"{name}_FILE {tmp_path / 'gone'} cannot be read: No such file or directory"
    )


def test_the_secret_files_kept_in_the_checkout_are_never_committed():
    """deploy/env.example keeps the token, the alert webhook and the heartbeat URL in files of
    the checkout's folder (/srv/line-capi): a `git add -A` there must not commit one."""
    root = Path(__file__).resolve().parent.parent
    named = set(re.findall(r"/srv/line-capi/([\w.-]+)", (root / "deploy/env.example").read_text()))
    assert named == {".env", "access-token", "alert-webhook", "heartbeat-url"}
    for name in sorted(named):
        ignored = subprocess.run(["git", "check-ignore", "-q", name], cwd=root, check=False)
        assert ignored.returncode == 0, f"{name} is not in .gitignore"

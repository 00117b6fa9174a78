"""The tests' sender fork server (tests/sender_forkserver.py) runs `python -m sender` as the
interpreter does: the same exit code and output, in its caller's folder and environment; and a
command whose environment would start the interpreter differently is a plain process."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import forkserver
import pytest
import sender_forkserver
from schedule_fixtures import clock_export, sender_run
from sender_fixtures import FAST, REPO, mock_server, run_cli, sender_env

from sender.exit_codes import ExitCode


def refuse_plain(*_, **__):
    raise AssertionError("ran as a plain process, not forked")


def forked(monkeypatch, args, env, **options):
    """The command run by the server, the plain path refused: a fallback cannot pass for a
    fork (and the server is tested whatever LINE_CAPI_TEST_SENDER says)."""
    with monkeypatch.context() as patch:
        patch.setattr(sender_forkserver, "_plain", refuse_plain)
        patch.delenv("LINE_CAPI_TEST_SENDER", raising=False)
        return run_cli(args, env, **options)


def plain(monkeypatch, args, env, **options):
    with monkeypatch.context() as patch:
        patch.setenv("LINE_CAPI_TEST_SENDER", "subprocess")
        return run_cli(args, env, **options)


def untimed(result) -> tuple[str, str]:
    """Its output, each time in it (the report's "Written …", its date too) left out."""
    stamp = r"(?:\d{4}-\d\d-\d\d[ T])?\d\d:\d\d:\d\dZ"
    return tuple(re.sub(stamp, "", text) for text in (result.stdout, result.stderr))


def forked_and_plain(monkeypatch, args, env, **options):
    return forked(monkeypatch, args, env, **options), plain(monkeypatch, args, env, **options)


@pytest.mark.parametrize(
    ("args", "reader_gone"),
    [
        (["--version"], False),
        (["status"], False),
        (["status", "--json"], False),
        (["preview", "-n", "3"], False),
        (["preview", "--json", "-n", "100"], True),  # `| head`: its reader gone
        (["push", "--no-such-option"], False),
        (["push", "--help"], False),
        (["report", "-o", "/dev/stdout"], False),  # a pipe, as subprocess.run gives it
    ],
)
def test_a_forked_command_prints_and_exits_as_a_plain_process(db, monkeypatch, args, reader_gone):
    forked, plain = forked_and_plain(monkeypatch, args, sender_env(db), reader_gone=reader_gone)
    assert (forked.returncode, *untimed(forked)) == (plain.returncode, *untimed(plain))
    assert forked.stdout or forked.stderr or reader_gone


def test_a_forked_push_sends_and_records_as_a_plain_one(db, tmp_path, monkeypatch):
    copy = tmp_path / "copy.duckdb"
    shutil.copy(db, copy)
    args = ["push", *FAST, "--json"]
    with mock_server() as srv:
        results = [
            forked(monkeypatch, args, sender_env(db, srv.url)),
            plain(monkeypatch, args, sender_env(copy, srv.url)),
        ]
    assert [r.returncode for r in results] == [ExitCode.OK] * 2, results[0].stderr
    assert [json.loads(r.stdout)["accepted"] for r in results] == [250, 250]
    # the same lines, but for each line's time and each run's id
    lines = [re.sub(r"^\S+ |run \S+", "", r.stderr, flags=re.M) for r in results]
    assert lines[0] == lines[1] and "pending events" in lines[0], lines


def test_each_command_runs_in_its_callers_folder_and_environment(tmp_path, monkeypatch):
    """A relative database path is read in the caller's folder, from the caller's environment;
    the server's own folder (the checkout) and environment have neither."""
    for name in ("first", "second"):
        env = {"LINE_CAPI_DUCKDB": f"{name}.duckdb"}
        forked, plain = forked_and_plain(monkeypatch, ["status"], env, cwd=tmp_path)
        assert forked.returncode == plain.returncode == ExitCode.NO_PAYLOAD, forked.stderr
        assert f"database {name}.duckdb does not exist in {tmp_path}" in forked.stderr
        assert forked.stderr == plain.stderr


@pytest.mark.parametrize(
    "setting",
    [
        {"PYTHONIOENCODING": "iso-8859-1"},  # its streams' encoding
        {"LC_ALL": "C"},  # the locale's
        {"PYTHONPATH": "/somewhere/else"},  # another module path
        {"LD_PRELOAD": "/usr/lib/libfaketime.so.1"},  # a library loaded before Python
        {"TYPER_USE_RICH": "0"},  # read as Typer is imported
    ],
)
def test_an_environment_that_starts_python_differently_runs_a_plain_process(setting, monkeypatch):
    monkeypatch.delenv("LINE_CAPI_TEST_SENDER", raising=False)
    usual = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO))}
    assert sender_forkserver.forks(usual, REPO)
    assert not sender_forkserver.forks({**usual, **setting}, REPO)


def test_a_relative_module_path_runs_a_plain_process(monkeypatch):
    """Python makes a relative PYTHONPATH entry absolute in the folder it starts in: the same
    text as the server's names another folder in another working folder."""
    monkeypatch.delenv("LINE_CAPI_TEST_SENDER", raising=False)
    relative = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}."}
    monkeypatch.setattr(sender_forkserver._server, "started_env", relative)
    assert not sender_forkserver.forks(relative, REPO)
    absolute = {**relative, "PYTHONPATH": str(REPO)}
    monkeypatch.setattr(sender_forkserver._server, "started_env", absolute)
    assert sender_forkserver.forks(absolute, REPO)


def test_a_folder_with_a_sender_of_its_own_runs_a_plain_process(tmp_path, monkeypatch):
    """`python -m sender` finds a `sender` in its working folder first."""
    monkeypatch.delenv("LINE_CAPI_TEST_SENDER", raising=False)
    usual = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO))}
    assert sender_forkserver.forks(usual, tmp_path)
    Path(tmp_path, "sender").mkdir()
    assert not sender_forkserver.forks(usual, tmp_path)


def test_a_command_past_its_timeout_is_killed_as_subprocess_run_kills_it(db, monkeypatch):
    """A LINE endpoint that takes the connection and never answers: the test's timeout ends the
    command, and the test hears of it as from subprocess.run."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired):
            forked(monkeypatch, ["push", "--timeout", "60"], sender_env(db, endpoint), timeout=3)
        assert time.monotonic() - started < 30


def test_a_working_folder_that_does_not_exist_is_refused_as_subprocess_run_refuses_it(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("LINE_CAPI_TEST_SENDER", raising=False)
    with pytest.raises(FileNotFoundError):
        run_cli(["--version"], {}, cwd=tmp_path / "gone")


def test_the_push_of_a_forked_run_is_forked_too_and_sends_as_a_plain_runs(tmp_path, monkeypatch):
    """A forked `sender run` starts its push as `python -m sender --debug push` with its
    sys.executable, which forwards it to the server; a plain run's push is a plain process."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1, "ORD-2": 2}, newest_hours=0.2)
    results, requests = {}, {}
    with mock_server() as srv:
        for how in ("forked", "plain"):
            folder = tmp_path / how
            folder.mkdir()
            with monkeypatch.context() as patch:
                if how == "forked":
                    patch.setattr(sender_forkserver, "_plain", refuse_plain)
                    patch.delenv("LINE_CAPI_TEST_SENDER", raising=False)
                else:
                    patch.setenv("LINE_CAPI_TEST_SENDER", "subprocess")
                before = len(sender_forkserver.forked())
                results[how] = sender_run(folder, srv.url, export=export)
                requests[how] = sender_forkserver.forked()[before:]
        assert srv.stats()["requests"] == 2
    assert [r.returncode for r in results.values()] == [ExitCode.OK] * 2, results
    assert [args[0] for args in requests["forked"]] == ["run", "--debug"]
    assert requests["forked"][1] == ["--debug", "push"] and requests["plain"] == []
    # the same lines, but for each line's time, each run's id, each run's folder and the
    # export's ages (the second run measures them later)
    lines = [
        re.sub(
            r"^\S+ |run \S+|\d+\.\d h old",
            "",
            r.stderr.replace(str(tmp_path / how), "F"),
            flags=re.M,
        )
        for how, r in results.items()
    ]
    assert lines[0] == lines[1] and "2 pending events" in lines[0], lines


def test_the_python_of_a_forked_command_forks_only_the_sender_it_would_fork(monkeypatch):
    """That Python (tests/sender_forkserver.py, as_python) forwards `-m sender ...` to the server
    when the command would fork, and runs anything else as the real Python; the dbt beside it is
    the real one, which a run looks for next to its Python."""
    monkeypatch.delenv("LINE_CAPI_TEST_SENDER", raising=False)  # the server is tested either way
    env = {**sender_forkserver._server_env(), **sender_forkserver.python_env()}
    python = Path(env[sender_forkserver.SERVER_ENV]).with_name("python")
    assert python.with_name("dbt").resolve() == (Path(sys.executable).parent / "dbt").resolve()

    def run(args, **changes):
        before = len(sender_forkserver.forked())
        result = subprocess.run(
            [str(python), *args], env={**env, **changes}, capture_output=True, text=True, cwd=REPO
        )
        return result, sender_forkserver.forked()[before:]

    real = subprocess.run(
        [sys.executable, "-m", "sender", "push", "--no-such-option"],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    for args in (["--version"], ["push", "--no-such-option"]):
        result, requests = run(["-m", "sender", *args])
        assert requests == [args]
        if args == ["--version"]:
            assert result.returncode == 0 and result.stdout.startswith("sender "), result
        else:
            assert (result.returncode, result.stderr) == (real.returncode, real.stderr)
    # the real Python: another program, or an environment that starts Python differently
    result, requests = run(["-c", "import sys; print(sys.flags.no_site, sys.executable)"])
    assert result.stdout.split() == ["0", sys.executable] and requests == []
    result, requests = run(["-m", "sender", "push", "--no-such-option"], LC_ALL="C")
    assert (result.returncode, result.stderr, requests) == (real.returncode, real.stderr, [])


def test_that_python_runs_from_a_path_with_a_space(tmp_path):
    """A checkout in a folder whose name has a space: a `#!` line cannot name that Python."""
    real = tmp_path / "a venv" / "bin"
    real.mkdir(parents=True)
    (real / "python").symlink_to(sys.executable)
    (real / "dbt").symlink_to(Path(sys.executable).parent / "dbt")
    shim_folder = tmp_path / "the server's folder"
    shim_folder.mkdir()
    python = sender_forkserver._python_beside_dbt(shim_folder, str(real / "python"))
    assert (shim_folder / "dbt").resolve() == (Path(sys.executable).parent / "dbt").resolve()
    result = subprocess.run(
        [python, "-c", "import sys; print(sys.argv[1:])", "one two", "$HOME"],
        capture_output=True,
        text=True,
    )
    assert (result.returncode, result.stdout) == (0, "['one two', '$HOME']\n"), result.stderr


def test_a_command_whose_caller_went_away_before_its_pid_came_is_stopped():
    """A caller that a signal ended as it asked (a run's Ctrl-C as its push starts): the
    command it asked for must not run on, holding the run's database and pipes."""
    address = sender_forkserver._server.address()
    read, write = os.pipe()
    request = {"args": ["mock-server", "--port", "0"], "cwd": str(REPO), "env": dict(os.environ)}
    request.update(umask=0o077, ignored=[])
    with open(os.devnull) as stdin, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(address)
        socket.send_fds(
            conn, [json.dumps(request).encode() + b"\n"], [stdin.fileno(), write, write]
        )
    os.close(write)  # the command holds the only other copies: its end is this pipe's end
    deadline = time.monotonic() + 30
    with os.fdopen(read, "rb", buffering=0) as said:
        while time.monotonic() < deadline:
            left = deadline - time.monotonic()
            if select.select([said], [], [], left)[0] and not said.read(1 << 16):
                break
        else:
            pytest.fail("the command still runs 30 s after its caller went away")


def test_a_signal_for_a_command_that_has_ended_is_ignored():
    """A late SIGTERM to the program's stand-in (act_as), once its command ended and was
    reaped: the command's own exit code stands, not a traceback's."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    forkserver.pass_on(gone.pid, signal.SIGTERM)  # no ProcessLookupError

"""The tests' dbt fork server (tests/dbt_forkserver.py) starts dbt as the `dbt` script does:
the same exit code and output, and each command in its caller's folder, environment, umask and
time zone, not the server's."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from subprocess import Popen

import dbt_forkserver
import pytest

SHIM = str(Path(dbt_forkserver.__file__).resolve())  # what LINE_CAPI_DBT names in the tests
PROBE_MACRO = """
{% macro probe() %}
    {% do run_query("copy (select 1 as x) to 'probe.csv'") %}
    {% set noon = modules.datetime.datetime(2026, 1, 1, 12).astimezone().strftime('%z') %}
    {{ log('probe ' ~ env_var('LINE_CAPI_PROBE') ~ ' ' ~ noon, info=true) }}
{% endmacro %}
"""


def dbt(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        code = dbt_forkserver.run(args, cwd=cwd, env=env, stdout=stdout, stderr=stderr, timeout=120)
        output = b"".join(f.seek(0) or f.read() for f in (stdout, stderr))
    return code, output.decode()


@pytest.fixture
def project(tmp_path):
    """A dbt project of one macro, and a profile with an in-memory DuckDB."""
    root = tmp_path / "project"
    (root / "macros").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(
        "name: probe\nversion: '1.0.0'\nconfig-version: 2\nprofile: probe\n"
    )
    (root / "macros" / "probe.sql").write_text(PROBE_MACRO)
    (root / "profiles.yml").write_text(
        "probe:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: ':memory:'\n"
    )
    return root


def base_env(tmp_path: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "DBT_"))},
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
    }


def test_each_command_runs_in_its_callers_folder_environment_umask_and_time_zone(project, tmp_path):
    """Two commands in a row, each with its own: the second cannot inherit the first's."""
    args = ["run-operation", "probe", "--project-dir", str(project), "--profiles-dir", str(project)]
    cases = [("Asia/Tokyo", "+0900", 0o027, 0o640), ("America/New_York", "-0500", 0o077, 0o600)]
    for zone, offset, umask, mode in cases:
        here = tmp_path / zone.replace("/", "-")
        here.mkdir()
        env = {**base_env(tmp_path), "LINE_CAPI_PROBE": f"hello-{zone}", "TZ": zone}
        before = os.umask(umask)
        try:
            code, output = dbt(args, here, env)
        finally:
            os.umask(before)
        assert code == 0, output
        assert f"probe hello-{zone} {offset}" in output
        written = here / "probe.csv"  # a relative path: the caller's folder
        assert written.read_text().splitlines() == ["x", "1"]
        assert stat.S_IMODE(written.stat().st_mode) == mode  # 0666 under the caller's umask


def test_a_failing_command_exits_and_prints_as_the_dbt_script_does(project, tmp_path, monkeypatch):
    """The same exit code and the same lines (their times aside) as a plain subprocess, whether
    asked for by run() or by this file acting as the `dbt` script (for `sender run`)."""
    env = base_env(tmp_path)
    args = ["run-operation", "no_such_macro", "--project-dir", str(project)]
    # each parses in full: the server lends no parse (it would spare dbt's line saying so)
    args += ["--no-partial-parse", "--profiles-dir", str(project), "--target-path"]
    forked = dbt([*args, str(tmp_path / "forked")], tmp_path, env)
    script = subprocess.run(
        [SHIM, *args, str(tmp_path / "script")],
        cwd=tmp_path,
        env={**env, **dbt_forkserver.sender_env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    monkeypatch.setenv("LINE_CAPI_TEST_DBT", "subprocess")
    spawned = dbt([*args, str(tmp_path / "spawned")], tmp_path, env)

    def lines(output: str) -> list[str]:
        return [re.sub(r"^\d\d:\d\d:\d\d  ", "", line) for line in output.splitlines()]

    assert forked[0] == script.returncode == spawned[0] == 2  # dbt's code for a stopping error
    assert lines(forked[1]) == lines(script.stdout + script.stderr) == lines(spawned[1])
    assert any("no_such_macro" in line for line in lines(forked[1]))


def _signals_as_in_a_terminal() -> None:
    for number in dbt_forkserver.FORWARDED:
        signal.signal(number, signal.SIG_DFL)


def _signals_as_in_a_scripts_background() -> None:
    _signals_as_in_a_terminal()
    for number in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(number, signal.SIG_IGN)


def start_busy(project: Path, tmp_path: Path, command: list[str], env: dict, started) -> Popen:
    """`command run-operation busy`, started with the signals ``started`` sets, once dbt is
    inside a loop of Python work that a signal gets into."""
    (project / "macros" / "busy.sql").write_text(
        "{% macro busy() %}{% do log('busy', info=true) %}"
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
        "{% endmacro %}"
    )
    args = ["run-operation", "busy", "--project-dir", str(project), "--profiles-dir", str(project)]
    proc = subprocess.Popen(
        [*command, *args],
        cwd=tmp_path,
        env={**base_env(tmp_path), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=started,
    )
    for line in proc.stdout:
        if "busy" in line:
            break
    time.sleep(0.5)  # inside the loop
    return proc


def stop(proc: Popen) -> None:
    proc.kill()  # (a script killed takes its dbt along)
    proc.wait()
    proc.stdout.close()


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_as_the_dbt_script_it_passes_signals_on_and_ends_as_dbt_ended(project, tmp_path, number):
    """`sender run` stops its dbt with SIGTERM (a timeout, Ctrl-C): the forked dbt gets it, and
    the script ends as dbt ended: by the signal, or with the code dbt chose for it. Both started
    as a terminal starts a command: from a script's `make test &`, the suite ignores SIGINT."""
    ends = {}
    for how, command, env in [
        ("script", [SHIM], dbt_forkserver.sender_env()),
        ("dbt", [dbt_forkserver.DBT], {}),
    ]:
        proc = start_busy(project, tmp_path, command, env, _signals_as_in_a_terminal)
        try:
            proc.send_signal(number)
            ends[how] = proc.wait(60)
        finally:
            stop(proc)
    assert ends["script"] == ends["dbt"] != 0, ends


def test_as_the_dbt_script_its_dbt_ignores_the_signals_the_script_was_started_ignoring(
    project, tmp_path
):
    """A command started by a script's `cmd &` ignores SIGINT and SIGQUIT, and so does every
    program it starts (an exec keeps the signals a process ignores): the forked dbt too, not the
    fork server's own. SIGTERM still stops it."""
    proc = start_busy(
        project, tmp_path, [SHIM], dbt_forkserver.sender_env(), _signals_as_in_a_scripts_background
    )
    try:
        proc.send_signal(signal.SIGINT)  # the script passes it on; its dbt ignores it
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == -signal.SIGTERM
    finally:
        stop(proc)


def test_a_new_target_folder_starts_from_the_parse_of_an_earlier_command_like_it(project, tmp_path):
    """Each test builds in a target folder of its own, with a database of its own: dbt would
    parse the whole project each time. The server lends the new folder the last parse of a
    command with the same profile, vars and database name, and dbt checks all but the
    database's path before it uses it."""
    (project / "profiles.yml").write_text(
        "probe:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        "      path: \"{{ env_var('LINE_CAPI_DUCKDB') }}\"\n"
    )

    def parse(name: str, database: str, *more: str, parsed: Path | None = None, **env) -> str:
        folder = tmp_path / name
        if parsed is not None:  # a parse of another command's, put there by hand
            (folder / "target").mkdir(parents=True)
            shutil.copyfile(parsed, folder / "target" / "partial_parse.msgpack")
        folder.mkdir(exist_ok=True)
        env = {**base_env(tmp_path), "LINE_CAPI_DUCKDB": str(folder / database), **env}
        args = ["parse", "--project-dir", str(project), "--profiles-dir", str(project)]
        args += ["--target-path", str(folder / "target"), "--log-path", str(folder / "logs")]
        code, output = dbt([*args, *more], folder, env)
        assert code == 0, output
        return (folder / "logs" / "dbt.log").read_text()

    full, partial = "saved manifest not found. Starting full parse.", "Partial parsing enabled"
    refused = "Unable to do partial parsing because profile has changed"
    assert full in parse("first", "line_capi.duckdb")
    assert partial in parse("second", "line_capi.duckdb")  # another folder, the same name
    lent = tmp_path / "second" / "target" / "partial_parse.msgpack"
    assert stat.S_IMODE(lent.stat().st_mode) == 0o600  # as private as dbt's own in this project
    assert stat.S_IMODE(lent.parent.stat().st_mode) == 0o700
    # another database name or other vars: nothing lent
    assert full in parse("shop", "shop.duckdb")
    assert full in parse("vars", "line_capi.duckdb", "--vars", "{probe: 1}")
    # and dbt's own check still counts the database's name, though not its path
    assert refused in parse("named", "shop.duckdb", parsed=lent)
    # partial parsing off, in any spelling dbt reads: nothing lent (a lent file would be 0600;
    # the one dbt writes itself in this project of no plugin follows the umask)
    before = os.umask(0o022)
    try:
        parse("off", "line_capi.duckdb", DBT_PARTIAL_PARSE="False")
    finally:
        os.umask(before)
    written = tmp_path / "off" / "target" / "partial_parse.msgpack"
    assert stat.S_IMODE(written.stat().st_mode) == 0o644

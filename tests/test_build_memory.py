"""The build's memory: the limit every dbt connection gets, and what a run says when the build
runs out of memory or is killed for it (sender/build_memory.py), with real dbt processes."""

from __future__ import annotations

import duckdb
import pytest
from pipeline_fixtures import ROOT, run_dbt
from schedule_fixtures import clock_export, sender_run
from sender_fixtures import TAG_ID, TOKEN, mock_server, run_cli

from sender import build_memory
from sender.exit_codes import ExitCode

SHOW_LIMIT = ("show", "--inline", "select current_setting('memory_limit') as memory_limit")


def one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, stderr
    return errors[0]


def shown(value: str) -> str:
    """How DuckDB shows a memory limit once set (``300MB`` is ``286.1 MiB``)."""
    with duckdb.connect(config={"memory_limit": value}) as con:
        return con.execute("select current_setting('memory_limit')").fetchone()[0]


def test_every_dbt_connection_gets_the_build_limit_or_the_default(tmp_path):
    default = run_dbt(tmp_path / "default", *SHOW_LIMIT)
    assert default.returncode == 0, default.output
    # 60% of the memory DuckDB sees here (a container's limit, or the machine's), not its own 80%
    assert shown(build_memory.DEFAULT) in default.output, default.output
    assert shown("80%") not in default.output

    chosen = run_dbt(tmp_path / "env", *SHOW_LIMIT, env={build_memory.ENV_VAR: "300MB"})
    assert chosen.returncode == 0, chosen.output
    assert shown("300MB") in chosen.output, chosen.output


def profile_with(lines: str) -> str:
    """profiles.example.yml with ``lines`` added to the DuckDB output."""
    profile = (ROOT / "profiles.example.yml").read_text()
    own = profile.replace("      threads: 2\n", "      threads: 2\n" + lines, 1)
    assert own != profile
    return own


def test_a_profiles_own_memory_settings_and_the_variable_take_turns(tmp_path):
    settings = profile_with("      settings:\n        memory_limit: 700MB\n")
    result = run_dbt(
        tmp_path / "s", *SHOW_LIMIT, profile=settings, env={build_memory.ENV_VAR: "300MB"}
    )
    assert result.returncode == 0, result.output
    assert shown("700MB") in result.output, result.output  # settings: win over everything

    options = profile_with("      config_options:\n        memory_limit: 700MB\n")
    result = run_dbt(tmp_path / "o", *SHOW_LIMIT, profile=options, env={build_memory.ENV_VAR: ""})
    assert result.returncode == 0, result.output
    assert shown("700MB") in result.output, result.output  # an empty variable is no variable
    # DuckDB's other name for the setting: the variable replaces it, rather than clash with it
    alias = profile_with("      config_options:\n        max_memory: 700MB\n")
    result = run_dbt(
        tmp_path / "v", *SHOW_LIMIT, profile=alias, env={build_memory.ENV_VAR: "300MB"}
    )
    assert result.returncode == 0, result.output
    assert shown("300MB") in result.output, result.output


def test_a_spill_past_its_disk_allowance_is_a_full_disk_not_a_lack_of_memory(tmp_path):
    """DuckDB refuses to spill past max_temp_directory_size (90% of the free disk) with an "Out of
    Memory Error": the advice is free space, not more memory.

    A sort of 96 MB under a 64 MB limit has to spill. (The sample build under a few MB also
    spills, but whether a spillable block or one that cannot be offloaded meets the limit first
    depends on timing: it failed on CI the other way.)"""
    tight = profile_with(
        "      settings:\n        memory_limit: 64MB\n        max_temp_directory_size: 1MB\n"
        "        threads: 1\n"
    )
    sort = "select count(*) as n from (select i from range(12000000) t(i) order by hash(i))"
    result = run_dbt(tmp_path, "show", "--inline", sort, profile=tight)
    assert result.returncode != 0
    assert "failed to offload" in result.output, result.output
    said = build_memory.out_of_memory(result.output.splitlines())
    assert said is not None and said.startswith("the disk is full"), said
    # the same sort with room to spill: the limit alone was not the problem
    roomy = profile_with("      settings:\n        memory_limit: 64MB\n        threads: 1\n")
    result = run_dbt(tmp_path / "roomy", "show", "--inline", sort, profile=roomy)
    assert result.returncode == 0, result.output
    assert "12000000" in result.output, result.output


@pytest.mark.parametrize("value", ["lots", "1000", "150%", "1KB", "-1"])
def test_a_limit_duckdb_refuses_is_one_line_before_anything_runs(tmp_path, value):
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.1)
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export, env={build_memory.ENV_VAR: value})
        assert srv.stats()["requests"] == 0
    assert r.returncode == ExitCode.USAGE, r.stderr
    line = one_error_line(r.stderr)
    assert f"{build_memory.ENV_VAR}={value!r} is not a memory limit DuckDB accepts" in line
    assert not (tmp_path / "line_capi.duckdb").exists()  # no dbt ran


@pytest.mark.parametrize("value", ["lots", "1KB", "-5"])
def test_a_push_limit_duckdb_refuses_stops_the_run_before_the_build(tmp_path, value):
    """LINE_CAPI_MEMORY_LIMIT was opened only after the build (exit 10), and -5 meant none."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.1)
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export, env={"LINE_CAPI_MEMORY_LIMIT": value})
        assert srv.stats()["requests"] == 0
    assert r.returncode == ExitCode.USAGE, r.stderr
    line = one_error_line(r.stderr)
    assert "LINE_CAPI_MEMORY_LIMIT" in line, line
    assert f"{value!r} is not a memory limit DuckDB accepts" in line, line
    assert not (tmp_path / "line_capi.duckdb").exists()  # no dbt ran


def test_a_hand_run_build_with_a_refused_limit_says_which_variable(tmp_path):
    result = run_dbt(tmp_path, "build", env={build_memory.ENV_VAR: "lots"})
    assert result.returncode != 0
    assert f"{build_memory.ENV_VAR}='lots' is not a memory limit DuckDB accepts" in result.output
    assert "Traceback" not in result.output


def test_a_build_out_of_memory_says_so_and_which_variable_to_raise(tmp_path):
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.1)
    with mock_server() as srv:
        r = sender_run(tmp_path, srv.url, export=export, env={build_memory.ENV_VAR: "4MB"})
        assert srv.stats()["requests"] == 0
    assert r.returncode == ExitCode.BUILD_FAILED, r.stderr
    line = one_error_line(r.stderr)
    assert "failed: DuckDB ran out of memory (" in line, line
    assert f"set {build_memory.ENV_VAR} higher" in line
    assert "Failure in model" not in line


def test_a_dbt_killed_by_the_kernel_is_named_as_the_out_of_memory_killer(tmp_path):
    """SIGKILL at dbt's first connection, as the out-of-memory killer sends it."""
    export = clock_export(tmp_path / "export", {"ORD-1": 1}, newest_hours=0.1)
    with mock_server() as srv:
        r = sender_run(
            tmp_path, srv.url, export=export, env={"LINE_CAPI_FAULT_POINT": "dbt_connect:1"}
        )
        assert srv.stats()["requests"] == 0
    assert r.returncode == ExitCode.BUILD_FAILED, r.stderr
    line = one_error_line(r.stderr)
    assert "dbt source freshness was killed by SIGKILL" in line, line
    assert "out-of-memory killer" in line and f"set {build_memory.ENV_VAR} lower" in line
    log = (tmp_path / "line_capi_run.log").read_text()
    assert log.rstrip().endswith(f"done: exit {int(ExitCode.BUILD_FAILED)}")


def test_a_push_killed_by_a_signal_is_interrupted_and_leaves_its_events_pending(tmp_path):
    export = clock_export(tmp_path / "export", {"ORD-1": 1, "ORD-2": 2}, newest_hours=0.1)
    with mock_server() as srv:
        r = sender_run(
            tmp_path, srv.url, export=export, env={"LINE_CAPI_FAULT_POINT": "before_request:1"}
        )
        assert srv.stats()["requests"] == 0
    assert r.returncode == ExitCode.INTERRUPTED, r.stderr
    assert "sender push was killed by SIGKILL" in one_error_line(r.stderr)
    with mock_server() as srv:  # the push alone, on the build the killed run left
        env = {
            "LINE_CAPI_DUCKDB": str(tmp_path / "line_capi.duckdb"),
            "LINE_TAG_ID": TAG_ID,
            "LINE_ACCESS_TOKEN": TOKEN,
            "LINE_CAPI_ENDPOINT": srv.url,
        }
        again = run_cli(["push"], env)
        assert again.returncode == ExitCode.OK, again.stderr
        assert srv.stats()["accepted_unique"] == 2


def test_signals_and_duckdb_messages_are_read_as_one_line():
    assert build_memory.killed_by(0) is None and build_memory.killed_by(12) is None
    assert build_memory.killed_by(-9) == "SIGKILL"
    assert build_memory.killed_by(-15) == "SIGTERM"
    assert build_memory.killed_by(137) is None  # the sender's own codes are not signals
    assert build_memory.killed_by(137, shell_codes=True) == "SIGKILL"  # a shell wrapper's dbt
    assert "a timeout" in build_memory.killed_message("dbt build", "SIGTERM")
    assert "crashed (SIGSEGV)" in build_memory.killed_message("dbt build", "SIGSEGV")
    full = build_memory.out_of_memory(["  IO Error: could not write: No space left on device"])
    assert full is not None and full.startswith("the disk is full")
    assert build_memory.out_of_memory(["Failure in model x", "Parser Error: y"]) is None

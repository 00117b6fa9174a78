#!/usr/bin/env python3
"""Start `dbt` for the tests without paying for its start-up every time.

Importing dbt costs about two CPU seconds (mashumaro compiles its dataclasses' code at import),
its first parse in a process about one more (the JSON schemas it validates the project and the
profile with are built on first use), and the suite starts dbt over a hundred times. This module
runs one server process per pytest worker that imports dbt and builds the sample once, then
forks a child per command (tests/forkserver.py); the child becomes `dbt <args>` as the `dbt`
script runs it (the same `dbt.cli.main:cli`, the caller's working folder, environment, umask,
time zone, argv and standard streams, its own exit), only with that start-up done.

    run(["build", ...], cwd=..., env=..., stdout=f, stderr=f, timeout=600) -> returncode

`run` returns what `subprocess.run(...).returncode` would: the exit code, or minus the signal
that killed dbt.

Each test builds in its own target folder, where dbt finds no saved parse and parses the whole
project again (about two seconds). So the server also lends each command that starts in a target
folder without one the last saved parse of a command with the same project, profile text, vars,
target and database file name (see _lend_parse): dbt still checks that parse and parses again
what differs. dbt would refuse it for the database path alone, which its profile check counts
although nothing in a parse of this project reads it: in the server, that check leaves the path
out (see _parse_check_without_the_path); the database's name, all else in the profile, the vars
and the files still count.

With env LINE_CAPI_TEST_DBT=subprocess every command is a plain subprocess of the `dbt` script
instead (`make test` passes either way; the server only saves time).

The protocol and the child's set-up are tests/forkserver.py's, which the sender's fork server
(tests/sender_forkserver.py) shares.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import pkgutil
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import forkserver

DBT = str(Path(sys.executable).parent / "dbt")
ROOT = Path(__file__).resolve().parent.parent
SERVER_ENV = "LINE_CAPI_TEST_DBT_SERVER"  # the socket, for _as_dbt
FORWARDED = forkserver.FORWARDED  # to dbt, by _as_dbt
_server = forkserver.Client(str(Path(__file__).resolve()), "dbt")
_parse_folder = ""  # in the server: where it keeps the parses it lends (its socket's folder)


def run(args: list[str], *, cwd: Path, env: dict[str, str], stdout, stderr, timeout: float) -> int:
    """Run `dbt <args>` in `cwd` with exactly `env`; its output goes to the open files."""
    if not forking():
        return subprocess.run(
            [DBT, *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            timeout=timeout,
            check=False,
        ).returncode
    with open(os.devnull) as stdin:
        fds = [stdin.fileno(), stdout.fileno(), stderr.fileno()]
        return _server.run(args, cwd=cwd, env=env, fds=fds, timeout=timeout)


def forking() -> bool:
    return os.environ.get("LINE_CAPI_TEST_DBT") != "subprocess"


def sender_env() -> dict[str, str]:
    """The environment that makes a `sender run` started by a test run its dbt commands through
    this process's server: LINE_CAPI_DBT names this file, which then acts as the `dbt` script
    (see _as_dbt). Empty with LINE_CAPI_TEST_DBT=subprocess: the sender's own dbt."""
    if not forking():
        return {}
    return {"LINE_CAPI_DBT": str(Path(__file__).resolve()), SERVER_ENV: _server.address()}


def _as_dbt(args: list[str]) -> None:
    """This file run as `dbt <args>` (by `sender run`, through LINE_CAPI_DBT): see
    forkserver.act_as."""
    forkserver.act_as(os.environ[SERVER_ENV], args, "dbt")


# ---------------------------------------------------------------------------------- server side


def _import_dbt() -> None:
    """What a `dbt build`, `seed`, `test`, `source freshness` or `docs generate` imports."""
    import dbt.cli.main  # noqa: F401
    import dbt.parser
    import dbt.task

    for package in (dbt.task, dbt.parser):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            __import__(module.name)
    import dbt.adapters.duckdb.impl  # noqa: F401
    import dbt.adapters.duckdb.plugins  # noqa: F401


def _cache_jinja_by_text() -> None:
    """Turn on dbt's test caching, as dbt's own test fixtures do (dbt.tests.fixtures.project):
    each macro's and file's jinja is parsed once by its text, and dbt's plugins are looked for
    once, for the life of the process. The warm-up fills the caches and every child starts with
    them: a full parse of the project (a command whose vars differ from its folder's last
    parse) takes about 1 s instead of 2. A test that changes a macro's text gets it parsed."""
    from dbt_common.tests import enable_test_caching

    enable_test_caching()


def _warm_up() -> None:
    """A `dbt build` and a `dbt source freshness` of the bundled sample in a throwaway folder.
    dbt builds some things on first use and keeps them for the life of the process: the JSON
    schemas it validates the project and the profile with, the list of its plugins, and each
    macro's jinja compiled to Python (kept by the macro's text: a test that changes a macro gets
    its new text compiled). With a parse alone, each build compiled some 250 macros again: 0.4 s
    of a 2.6 s build of the sample, 0.2 s of a 0.8 s `source freshness`. Running commands one
    after another in one process is what dbt's own dbtRunner does."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt.adapters.factory import reset_adapters
    from dbt.cli.main import dbtRunner

    with tempfile.TemporaryDirectory() as folder:
        # each command runs with its caller's environment: this one is the warm-up's alone
        os.environ.update(
            DO_NOT_TRACK="1",
            LINE_CAPI_DUCKDB=str(Path(folder, "warm-up.duckdb")),
            KARTE_EXPORT_DIR=str(ROOT / "sample" / "karte_export"),
        )
        Path(folder, "profiles.yml").write_text((ROOT / "profiles.example.yml").read_text())
        common = [
            "--quiet",
            "--no-static-parser",  # its Rust parser hangs in a process forked after use
            "--project-dir",
            str(ROOT),
            "--profiles-dir",
            folder,
            "--target-path",
            str(Path(folder, "target")),
            "--log-path",
            folder,
        ]
        # The unit tests stay out: dbt parses their fixtures with its Rust parser, whatever the
        # flag says. A command that fails (a change that breaks the sample's build) leaves less
        # warmed up, and the tests that run it say why.
        for command in (["build", "--exclude-resource-type", "unit_test"], ["source", "freshness"]):
            dbtRunner().invoke([*command, *common])
        reset_adapters()  # and with them their locks (POSIX semaphores)
        # the adapter leaves the database open for the next command of the process: closed,
        # DuckDB's own threads end with it
        if DuckDBConnectionManager._ENV is not None:  # noqa: SLF001
            DuckDBConnectionManager._ENV.close()  # noqa: SLF001
        DuckDBConnectionManager.close_all_connections()
        gc.collect()
    # nothing may run at a fork: no thread of Python's, DuckDB's or dbt's Rust parser
    forkserver.freeze("dbt")


def _parse_check_without_the_path() -> None:
    """dbt parses the whole project again when anything in the profile's connection differs,
    the database path included; each test has its own database file, named line_capi.duckdb
    in a folder of its own. Left out of the check, the path no longer stops a test from
    starting from an earlier test's parse. The database's name (the file's name without
    .duckdb) still counts, and so does the rest of the profile."""
    import dataclasses
    import pprint

    from dbt.contracts.files import FileHash
    from dbt.parser.manifest import ManifestLoader

    checked = ManifestLoader.build_manifest_state_check

    def build_manifest_state_check(self):
        state = checked(self)
        connection = sorted(
            (key, value)
            for key, value in self.root_project.credentials.connection_info()
            if key != "path"
        )
        profile_hash = FileHash.from_contents(pprint.pformat(connection))
        return dataclasses.replace(state, profile_hash=profile_hash)

    ManifestLoader.build_manifest_state_check = build_manifest_state_check


def _serve(address: str) -> None:
    sys.path[0] = str(Path(DBT).parent)  # as for the dbt script, not this file's folder
    global _parse_folder
    _import_dbt()
    _parse_check_without_the_path()
    _parse_folder = os.path.dirname(address)
    _cache_jinja_by_text()
    _warm_up()
    forkserver.serve(address, _become_dbt, before=_lend_parse, after=_keep_parse)


PARSE_FILE = "partial_parse.msgpack"  # dbt's saved parse, in its target folder
NO = {"0", "false", "f", "no", "n", "off"}  # what dbt reads as false in DBT_PARTIAL_PARSE


def _lend_parse(request: dict) -> tuple[Path, Path] | None:
    """Copy the saved parse of an earlier command like this one into its target folder when
    that folder has none (a private file, as dbt's own is in this project). Returns where dbt
    saves its parse and where the server keeps the parse of commands like this one, or None
    when dbt is not to parse partially."""
    args = request["args"]
    off = request["env"].get("DBT_PARTIAL_PARSE", "").strip().lower() in NO
    if "--no-partial-parse" in args or off:
        return None
    cwd = Path(request["cwd"])
    project = cwd / _option(args, request["env"], "--project-dir", "DBT_PROJECT_DIR", ".")
    target = project / _option(args, request["env"], "--target-path", "DBT_TARGET_PATH", "target")
    profiles = cwd / _option(args, request["env"], "--profiles-dir", "DBT_PROFILES_DIR", ".")
    try:
        profile = (profiles / "profiles.yml").read_text()
    except (OSError, ValueError):  # ValueError: not UTF-8, which dbt then says
        profile = ""  # ~/.dbt, or none: a key like any other
    same = [
        str(project.resolve()),
        profile,
        Path(request["env"].get("LINE_CAPI_DUCKDB", "")).name,
        [a for i, a in enumerate(args) if i and args[i - 1] in ("--vars", "--target", "-t")],
    ]
    key = hashlib.sha256(json.dumps(same).encode()).hexdigest()[:16]
    saved = Path(_parse_folder, f"parse-{key}.msgpack")
    if saved.exists() and not (target / PARSE_FILE).exists():
        try:
            target.mkdir(mode=0o700, exist_ok=True)
            with open(saved, "rb") as kept:
                fd = os.open(target / PARSE_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with open(fd, "wb") as lent:
                    shutil.copyfileobj(kept, lent)
        except OSError:  # no parent folder, or another command's copy: dbt parses in full
            pass
    return target / PARSE_FILE, saved


def _keep_parse(lent: tuple[Path, Path] | None) -> None:
    """After the command: keep the parse it saved for the next command like it."""
    if lent is None:
        return
    parsed, saved = lent
    partial = saved.with_name(f"{saved.name}.{os.getpid()}")
    try:
        shutil.copyfile(parsed, partial)
        os.replace(partial, saved)
    except OSError:  # dbt saved none (it stopped before): keep what was kept
        Path(partial).unlink(missing_ok=True)


def _option(args: list[str], env: dict, flag: str, variable: str, default: str) -> str:
    """A path option of dbt's: ``--flag value`` or ``--flag=value``, else the environment's."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return env.get(variable) or default


def _become_dbt(request: dict) -> None:
    """What the `dbt` script does, in a process that already imported dbt and is its caller's."""
    sys.argv = [DBT, *request["args"]]
    from dbt.cli.main import cli

    sys.exit(cli())


if __name__ == "__main__":
    if sys.argv[1:2] == [forkserver.SERVE]:
        _serve(sys.argv[2])
    else:
        _as_dbt(sys.argv[1:])

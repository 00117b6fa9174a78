#!/usr/bin/env python3
"""Start `dbt` for the tests without paying for its start-up every time.

Importing dbt costs about two CPU seconds (mashumaro compiles its dataclasses' code at import),
its first parse in a process about one more (the JSON schemas it validates the project and the
profile with are built on first use), and the suite starts dbt over a hundred times. This module
runs one server process per pytest worker that imports dbt and parses the project once, then
forks a child per command; the child becomes `dbt <args>` as the `dbt` script runs it (the same
`dbt.cli.main:cli`, the caller's working folder, environment, umask, time zone, argv and standard
streams, its own exit), only with that start-up done.

    run(["build", ...], cwd=..., env=..., stdout=f, stderr=f, timeout=600) -> returncode

`run` returns what `subprocess.run(...).returncode` would: the exit code, or minus the signal
that killed dbt. With env LINE_CAPI_TEST_DBT=subprocess every command is a plain subprocess of
the `dbt` script instead (`make test` passes either way; the server only saves time).

The protocol is one Unix socket connection per command: the client sends its argv, working
folder, environment and umask as one JSON line with its stdin, stdout and stderr as file
descriptors (SCM_RIGHTS); the server forks a handler that forks dbt, answers ``pid N`` when dbt
started and ``exit N`` (minus the signal, if a signal ended it) when it ended.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import pkgutil
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DBT = str(Path(sys.executable).parent / "dbt")
ROOT = Path(__file__).resolve().parent.parent
SERVER_ENV = "LINE_CAPI_TEST_DBT_SERVER"  # the socket, for _as_dbt
SERVE = "--serve-dbt-forks"
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)  # to dbt, by _as_dbt
_server: tuple[subprocess.Popen, str] | None = None


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
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn, open(os.devnull) as stdin:
        conn.connect(_address())
        conn.settimeout(timeout)
        pid, answers = _start(
            conn, args, cwd, env, [stdin.fileno(), stdout.fileno(), stderr.fileno()]
        )
        try:
            return _exit_code(pid, answers)
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            raise subprocess.TimeoutExpired([DBT, *args], timeout) from None


def forking() -> bool:
    return os.environ.get("LINE_CAPI_TEST_DBT") != "subprocess"


def sender_env() -> dict[str, str]:
    """The environment that makes a `sender run` started by a test run its dbt commands through
    this process's server: LINE_CAPI_DBT names this file, which then acts as the `dbt` script
    (see _as_dbt). Empty with LINE_CAPI_TEST_DBT=subprocess: the sender's own dbt."""
    if not forking():
        return {}
    return {"LINE_CAPI_DBT": str(Path(__file__).resolve()), SERVER_ENV: _address()}


def _start(conn: socket.socket, args: list[str], cwd, env: dict, fds: list[int]):
    """Ask the server for `dbt <args>` on the three standard streams ``fds``: its pid, and the
    reader of the server's answers."""
    umask = os.umask(0o22)
    os.umask(umask)
    request = {"args": args, "cwd": str(cwd), "env": env, "umask": umask}
    socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], fds)
    answers = conn.makefile("r")
    return int(answers.readline().split()[1]), answers


def _exit_code(pid: int, answers) -> int:
    answer = answers.readline()
    if not answer.startswith("exit "):
        raise RuntimeError(f"the dbt fork server stopped while dbt ran (pid {pid})")
    return int(answer.split()[1])


def _as_dbt(args: list[str]) -> None:
    """This file run as `dbt <args>` (by `sender run`, through LINE_CAPI_DBT): the server's child
    writes to this process's standard streams, gets the signals this process gets, and this
    process ends as it ended, with its exit code or by its signal."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(os.environ[SERVER_ENV])
        pid, answers = _start(conn, args, os.getcwd(), dict(os.environ), [0, 1, 2])
        for forwarded in FORWARDED:
            signal.signal(forwarded, lambda number, _: os.kill(pid, number))
        code = _exit_code(pid, answers)
    if code < 0:
        if -code in FORWARDED:
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)


def _address() -> str:
    """The socket of this process's server, started on first use and stopped at exit."""
    global _server
    if _server is None or _server[0].poll() is not None:
        folder = tempfile.mkdtemp(prefix="line-capi-dbt-fork-")
        address = os.path.join(folder, "socket")
        server = subprocess.Popen(
            [sys.executable, __file__, SERVE, address], stdin=subprocess.DEVNULL
        )
        atexit.register(_stop, server, folder)
        while not os.path.exists(address):  # the server binds once dbt is imported
            try:
                server.wait(0.02)
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError("the dbt fork server could not start (see its output above)")
        _server = (server, address)
    return _server[1]


def _stop(server: subprocess.Popen, folder: str) -> None:
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    for name in os.listdir(folder):
        os.unlink(os.path.join(folder, name))
    os.rmdir(folder)


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


def _warm_up() -> None:
    """One `dbt parse` of the project in a throwaway folder. dbt builds some things on first use
    and keeps them for the life of the process (the JSON schemas it validates the project and
    the profile with, the list of its plugins): about a second of every command after it.
    Running commands one after another in one process is what dbt's own dbtRunner does."""
    import threading

    from dbt.adapters.factory import reset_adapters
    from dbt.cli.main import dbtRunner

    os.environ["DO_NOT_TRACK"] = "1"  # each command runs with its caller's environment
    with tempfile.TemporaryDirectory() as folder:
        profile = Path(folder, "profiles.yml")
        profile.write_text(
            f"line_capi:\n  target: duckdb\n  outputs:\n    duckdb:\n"
            f"      type: duckdb\n      path: {Path(folder, 'warm-up.duckdb')}\n"
        )
        result = dbtRunner().invoke(
            [
                "parse",
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
        )
    if not result.success or threading.active_count() != 1:  # nothing may run at a fork
        raise RuntimeError(f"the dbt fork server's warm-up parse failed: {result.exception}")
    reset_adapters()  # and with them their locks (POSIX semaphores)
    gc.collect()


def _serve(address: str) -> None:
    sys.path[0] = str(Path(DBT).parent)  # as for the dbt script, not this file's folder
    _import_dbt()
    _warm_up()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # _stop: exit as Python exits
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address + ".binding")
    listener.listen()
    os.rename(address + ".binding", address)  # the client waits for this name
    parent = os.getppid()
    listener.settimeout(2)
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            if os.getppid() != parent:  # the pytest worker died without stopping the server
                sys.exit(0)
            continue
        if os.fork() == 0:
            listener.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _handle(conn)  # never returns: its process exits
        conn.close()


def _handle(conn: socket.socket) -> None:
    """In the handler: fork dbt, say its pid, wait for it, say how it ended."""
    message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    while not message.endswith(b"\n"):
        more = conn.recv(1 << 20)
        if not more:  # the caller went away before it finished asking
            os._exit(1)
        message += more
    pid = os.fork()
    if pid == 0:
        conn.close()
        _become_dbt(json.loads(message), fds)  # exits as dbt exits
    try:
        for fd in fds:
            os.close(fd)
        conn.sendall(f"pid {pid}\n".encode())
        _wait_unless_abandoned(pid, conn)
        status = os.waitpid(pid, 0)[1]
        conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
    finally:
        os._exit(0)


def _wait_unless_abandoned(pid: int, conn: socket.socket) -> None:
    """Wait until dbt ends; kill it if its caller goes first (a `dbt` killed by SIGKILL, a test
    that timed out), as nothing would be left to read what it writes."""
    ended = os.pidfd_open(pid)
    while True:
        ready = select.select([ended, conn], [], [])[0]
        if ended in ready:
            return
        try:
            gone = not conn.recv(1)
        except OSError:
            gone = True
        if gone:
            os.kill(pid, signal.SIGKILL)
            return


def _become_dbt(request: dict, fds: list[int]) -> None:
    """What the `dbt` script does, in a process that already imported dbt."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.umask(request["umask"])
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()  # a new process reads TZ as it starts
    sys.argv = [DBT, *request["args"]]
    from dbt.cli.main import cli

    sys.exit(cli())


if __name__ == "__main__":
    if sys.argv[1:2] == [SERVE]:
        _serve(sys.argv[2])
    else:
        _as_dbt(sys.argv[1:])

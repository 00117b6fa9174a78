#!/usr/bin/env python3
"""Start `python -m sender` for the tests without paying for its imports every time.

A sender process spends about half a CPU second importing pyarrow, DuckDB, requests and Typer
before it reads its command line, and the suite starts over four hundred of them. This module
runs one server process per pytest worker that imports the sender once, then forks a child per
command (tests/forkserver.py); the child runs `sender/__main__.py` as `python -m sender <args>`
runs it (runpy, the working folder first on the module path), in the caller's working folder,
environment, umask, time zone, signals and standard streams, with its own exit.

    run(["status"], env=..., cwd=..., timeout=60) -> subprocess.CompletedProcess

What a fork cannot give a command is what an interpreter reads as it starts: its flags and
module path (PYTHON*), its streams' encoding (PYTHONIOENCODING, the locale), a library loaded
before it (LD_PRELOAD: the year test's libfaketime). A command whose environment differs from
the server's in any of these, or whose working folder holds another `sender`, is a plain
process, as is every command with env LINE_CAPI_TEST_SENDER=subprocess (`make test` passes
either way; the server only saves time).
"""

from __future__ import annotations

import locale
import os
import pkgutil
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

import forkserver

REPO = Path(__file__).resolve().parent.parent
STARTUP = ("PYTHON", "LC_", "LANG", "LD_", "FAKETIME")  # read as an interpreter starts
_server = forkserver.Client(str(Path(__file__).resolve()), "sender", env=lambda: _server_env())


def run(
    args: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    reader_gone: bool = False,
) -> subprocess.CompletedProcess:
    """`python -m sender <args>` with exactly ``env``, its output captured as text. With
    ``reader_gone``, the reader of its stdout has closed it before the command writes
    (``sender preview | head`` once head has its lines): stdout is then empty."""
    command = [sys.executable, "-m", "sender", *args]
    if not forks(env, cwd):
        return _plain(command, env=env, cwd=cwd, timeout=timeout, reader_gone=reader_gone)
    with (
        open(os.devnull) as stdin,
        tempfile.TemporaryFile() as stdout,
        tempfile.TemporaryFile() as stderr,
    ):
        if reader_gone:
            read, write = os.pipe()
            os.close(read)
            out = write
        else:
            out = stdout.fileno()
        try:
            code = _server.run(
                args, cwd=cwd, env=env, fds=[stdin.fileno(), out, stderr.fileno()], timeout=timeout
            )
        finally:
            if reader_gone:
                os.close(write)
        texts = [_text(f) for f in (stdout, stderr)]
    return subprocess.CompletedProcess(command, code, *texts)


def forks(env: dict[str, str], cwd: Path) -> bool:
    """Whether a command with ``env`` in ``cwd`` is forked from the server: it would start as
    the server's interpreter started, with the same `sender`."""
    if os.environ.get("LINE_CAPI_TEST_SENDER") == "subprocess":
        return False
    if _startup(env) != _startup(_server_env()):
        return False
    folder = Path(cwd).resolve()
    return folder == REPO or not any((folder / name).exists() for name in ("sender", "sender.py"))


def _startup(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(STARTUP)}


def _server_env() -> dict[str, str]:
    """The pytest worker's environment with the checkout on the module path, as the tests run
    the sender."""
    return {"PYTHONPATH": str(REPO), **os.environ}


def _plain(command, *, env, cwd, timeout, reader_gone) -> subprocess.CompletedProcess:
    if not reader_gone:
        return subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout, cwd=str(cwd)
        )
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(cwd)
    ) as proc:
        proc.stdout.close()  # before the interpreter has started: its first write fails
        _, stderr = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(command, proc.returncode, "", stderr)


def _text(file) -> str:
    """What ``subprocess.run(..., text=True)`` makes of a stream's bytes."""
    file.seek(0)
    data = file.read().decode(locale.getpreferredencoding(False))
    return data.replace("\r\n", "\n").replace("\r", "\n")


# ---------------------------------------------------------------------------------- server side


def _serve(address: str) -> None:
    import sender

    for module in pkgutil.walk_packages(sender.__path__, "sender."):
        if module.name != "sender.__main__":  # runpy runs it as __main__, in the child
            __import__(module.name)
    _import_on_first_use()
    forkserver.freeze("sender")
    forkserver.serve(address, _become_sender)


def _import_on_first_use() -> None:
    """What every command imports as it runs: Typer's pydantic adapters, which read its
    arguments (0.06 CPU s)."""
    import typer._adapters  # noqa: F401
    import typer._click.decorators  # noqa: F401


def _become_sender(request: dict) -> None:
    """What `python -m sender` does, in a process that already imported the sender and is its
    caller's."""
    sys.path[0] = request["cwd"]  # -m puts the working folder first
    sys.argv = [sys.executable, *request["args"]]  # runpy sets argv[0] to __main__.py's path
    runpy.run_module("sender", run_name="__main__", alter_sys=True)
    sys.exit(0)


if __name__ == "__main__":
    if sys.argv[1:2] == [forkserver.SERVE]:
        _serve(sys.argv[2])

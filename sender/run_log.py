"""``sender run``'s log, and the children whose every line goes to it.

``RunLog`` appends timestamped lines to the run log (kept under 10 MB by
``sender.run_history.rotate_if_large``, which also reads its end for ``sender status``) and echoes
the run's own lines to the console. ``run_logged`` runs dbt or the push as a child process and
logs each line of its output: a customer's row that a DuckDB error quotes is left out, and a
crash's traceback goes to the log only.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from sender.dbt_output import ANSI, QuotedRowFilter
from sender.file_modes import private_file, private_umask
from sender.run_history import rotate_if_large
from sender.secret_env import scrub
from sender.settings import ConfigError

# the sender's own timestamp off a terminal (sender.progress): the log adds one already
_SENDER_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ sender: ")


class RunLogError(ConfigError):
    """The run log cannot be opened; ``reason`` is the system's word for why."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"run log {path} cannot be written: {reason} (--log-file, env LINE_CAPI_RUN_LOG)"
        )
        self.reason = reason


# The process's own output named as a log (`--log-file /dev/stdout` in a container): written
# through the descriptor it already has. Opened again, it would get an offset of its own, and
# under a shell's `> file` its lines and the console's would write over each other.
_OWN_STREAMS = {
    "/dev/stdout": 1,
    "/dev/fd/1": 1,
    "/proc/self/fd/1": 1,
    "/dev/stderr": 2,
    "/dev/fd/2": 2,
    "/proc/self/fd/2": 2,
}


class RunLog:
    """Timestamped lines to the log file (appended) and, when asked, to a console stream."""

    def __init__(self, path: Path, *, rotate: bool = True) -> None:
        """``rotate``: move a log past ROTATE_BYTES aside first; not for the lines said after a
        run's end (its alert, its heartbeat), which belong with that run."""
        self.path = path
        try:
            own = _OWN_STREAMS.get(str(path))
            if own is not None:
                self._file = os.fdopen(os.dup(own), "a", encoding="utf-8")
            else:
                if rotate:
                    rotate_if_large(path)
                self._file = private_file(path, "a")
        except OSError as exc:  # a folder, a read-only place: the user's path, not a bug
            raise RunLogError(path, exc.strerror or type(exc).__name__) from None
        self._lock = threading.Lock()
        self._failed = False  # the disk refused a line: the rest goes to the console only
        # closed while a child's last lines still come in (Ctrl-C): they go to the console only
        self._closed = False
        # consoles whose reader has gone (`sender run | head`, a log shipper that died): the
        # run goes on, its lines go to the log only
        self._gone: set[int] = set()

    def write(self, source: str, text: str, echo: IO[str] | None = None) -> None:
        """Log ``text``; echo it too (the run's own lines with a timestamp off a terminal)."""
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        # a token pasted into a setting the run names (the export folder) never reaches the log
        text = scrub(text)
        plain = _SENDER_STAMP.sub("", ANSI.sub("", text))
        # one entry per line: a setting holding a line break cannot forge the run's result line
        plain = plain.replace("\r", "\\r").replace("\n", "\\n")
        with self._lock:
            if not (self._failed or self._closed):
                try:
                    self._file.write(f"{stamp} {source}: {plain}\n")
                    self._file.flush()
                except OSError as exc:  # a full disk: the run goes on, its exit code says why
                    self._failed = True
                    sys.stderr.write(
                        f"warning: run log {self.path} cannot be written"
                        f" ({exc.strerror or type(exc).__name__}): the rest of this run's lines"
                        " go to the console only\n"
                    )
            if echo is not None and id(echo) not in self._gone:
                if source == "run" and not echo.isatty():
                    text = f"{stamp} sender run: {text}"
                try:
                    echo.write(text + "\n")
                    echo.flush()
                except (BrokenPipeError, ValueError):  # its reader gone; closed (a test harness)
                    self._gone.add(id(echo))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            with contextlib.suppress(OSError):  # the buffered rest, on a disk that is full
                self._file.close()


class _LoggedStream:
    """One stream of a child's output, line by line into the run log (and a console): never the
    export rows a DuckDB error quotes; a crash's traceback to the log only, the console gets its
    one line. ``lines`` and ``in_traceback`` are the child's, shared by its two streams."""

    def __init__(
        self,
        log: RunLog,
        source: str,
        echo: IO[str] | None,
        lines: list[str],
        in_traceback: list[bool],
    ) -> None:
        self.log, self.source, self.echo = log, source, echo
        self.lines, self.in_traceback = lines, in_traceback
        self.quoted_rows = QuotedRowFilter()  # one per stream, for its whole life

    def pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._keep(self.quoted_rows(line.rstrip("\n")))
        self._keep(self.quoted_rows.finish())  # the output ended inside quoted rows

    def _keep(self, texts: list[str]) -> None:
        for text in texts:
            self.lines.append(text)
            if text.startswith("Traceback (most recent call last):"):
                self.in_traceback[0] = True
            elif self.in_traceback[0] and text.startswith("error: "):
                self.in_traceback[0] = False
            self.log.write(self.source, text, None if self.in_traceback[0] else self.echo)


def run_logged(
    command: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log: RunLog,
    source: str,
    echo_out: IO[str] | None = None,
    echo_err: IO[str] | None = None,
) -> tuple[int, list[str]]:
    """Run ``command``; log each line of its stdout and stderr. Returns the exit code and the
    lines (stdout and stderr, in arrival order). Ctrl-C/SIGTERM stop the child too."""
    lines: list[str] = []
    in_traceback = [False]
    out = _LoggedStream(log, source, echo_out, lines, in_traceback)
    err = _LoggedStream(log, source, echo_err, lines, in_traceback)
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        # dbt and the push create the database, its WAL and dbt's files for their owner only
        umask=private_umask(),
        # killed by SIGKILL, the run would leave a dbt build holding the database for hours
        preexec_fn=stop_with_this_process(),
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    err_thread = threading.Thread(target=err.pump, args=(proc.stderr,), daemon=True)
    err_thread.start()
    try:
        out.pump(proc.stdout)
        err_thread.join()
        return proc.wait(), lines
    except KeyboardInterrupt:
        proc.terminate()
        # the child's last lines, logged before the run ends: a push's summary (stdout) says
        # what it sent before it stopped
        out_thread = threading.Thread(target=out.pump, args=(proc.stdout,), daemon=True)
        out_thread.start()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out_thread.join(timeout=5)
        err_thread.join(timeout=5)
        raise


_PR_SET_PDEATHSIG = 1


def stop_with_this_process() -> Callable[[], None] | None:
    """For ``subprocess.Popen(preexec_fn=...)``: the child (dbt, the push) gets SIGTERM when this
    process dies, even by SIGKILL (Linux; elsewhere None, and the child runs as before). Else a
    killed run left its `dbt build` or its push going on as an orphan: holding the database
    (each hour after it exited 5), writing to pipes nobody reads, outliving the run's lock. The
    push stops as on Ctrl-C: what LINE has not acknowledged stays pending. Looked up before the
    fork: the child only makes the call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def in_child() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the run died before the request was made
            os.kill(os.getpid(), signal.SIGTERM)

    return in_child

"""What ``sender push`` shows while it runs: a progress line on a terminal, plain timestamped
log lines otherwise (cron, CI). Everything goes to stderr; stdout keeps the summary."""

from __future__ import annotations

import datetime as dt
import sys
import threading
import time
from typing import TextIO

from sender.secret_env import scrub


class Progress:
    def __init__(
        self, stream: TextIO | None = None, *, tty: bool | None = None, quiet: bool = False
    ):
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty() if tty is None else tty
        self._quiet = quiet
        self._lock = threading.Lock()
        self._total = 0
        self._done = 0
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._log_every = 10.0
        self._bar_visible = False
        self._broken = False

    def start(self, total: int) -> None:
        self._total = total
        self._started = time.monotonic()
        self._last_draw = self._started

    def advance(self, events: int) -> None:
        with self._lock:
            self._done += events
            now = time.monotonic()
            if self._quiet:
                return
            if self._tty:
                if now - self._last_draw >= 0.1 or self._done >= self._total:
                    self._draw(now)
            elif now - self._last_draw >= self._log_every:
                self._last_draw = now
                self._emit(self._status_text(now))

    def log(self, message: str) -> None:
        """A line that stays (warnings, outcomes); the bar is redrawn under it."""
        with self._lock:
            if self._tty and self._bar_visible:
                self._write("\r\x1b[2K")
                self._bar_visible = False
            self._emit(message)

    def finish(self) -> None:
        with self._lock:
            if self._tty and self._bar_visible:
                self._draw(time.monotonic())
                self._write("\n")
                self._bar_visible = False

    def _status_text(self, now: float) -> str:
        elapsed = max(now - self._started, 1e-9)
        pct = 100.0 * self._done / self._total if self._total else 100.0
        return (
            f"{self._done:,}/{self._total:,} events done ({pct:.0f}%), "
            f"{self._done / elapsed:,.0f} events/s"
        )

    def _draw(self, now: float) -> None:
        self._last_draw = now
        width = 30
        filled = int(width * self._done / self._total) if self._total else width
        bar = "#" * filled + "-" * (width - filled)
        self._write(f"\r\x1b[2K[{bar}] {self._status_text(now)}")
        self._bar_visible = True

    def _emit(self, message: str) -> None:
        if self._quiet and not message.startswith(("warning", "error")):
            return
        if self._tty:
            self._write(message + "\n")
        else:
            stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            self._write(f"{stamp} sender: {message}\n")

    def _write(self, text: str) -> None:
        if self._broken:
            return
        try:
            # a token pasted into a setting a line names (the endpoint) is not printed
            self._stream.write(scrub(text))
            self._stream.flush()
        except (OSError, ValueError):  # closed pipe, full disk, a closed file: output stops
            self._broken = True

"""An outage longer than the build's window: the conversions no run ever had a chance to send.

Each build holds the conversions of ``lookback_hours`` before its ``as_of``. Once every run has
sent its payload whole, a window that starts no later than the last such run leaves nothing out.
After an outage longer than the window (LINE unreachable over a weekend, a revoked token, a
stopped scheduler) the first build back starts its window after the last push that left nothing
pending at the destination: what happened between the two was in no payload that was sent whole,
and nothing else would ever say so. The push warns, and the alert names the catch-up to run
(docs/operations.md, "Catch-up after an outage").
"""

# ruff: noqa: S608 - SQL is built from this package's constant table names; values are bound.

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import duckdb

from sender.database import BUILD_INFO_TABLE, RUNS_TABLE, fetch_one, table_exists
from sender.line_rules import DAY_SECONDS, MAX_AGE_SECONDS


@dataclass(frozen=True)
class WindowGap:
    last_complete: dt.datetime  # UTC: when the last push that left nothing pending started
    window_start: dt.datetime  # UTC: as_of - lookback_hours of the build in the file
    as_of: dt.datetime

    @property
    def needed_hours(self) -> int:
        """A lookback that reaches back over the gap (an hour's margin)."""
        return math.ceil((self.as_of - self.last_complete).total_seconds() / 3600) + 1

    @property
    def catch_up_hours(self) -> int:
        """The lookback to run: over the gap, but no further back than LINE accepts."""
        return min(self.needed_hours, MAX_AGE_SECONDS // 3600)

    def describe(self) -> str:
        stamp = "%Y-%m-%d %H:%M UTC"
        lost = (
            f" (LINE takes no event older than {MAX_AGE_SECONDS // DAY_SECONDS} days: those"
            " before cannot be sent any more)"
            if self.needed_hours > self.catch_up_hours
            else ""
        )
        return (
            f"conversions from {self.last_complete:{stamp}} to {self.window_start:{stamp}} may"
            " never have been sent: the last push that left nothing pending started before this"
            f" build's window; catch up with `sender run -- --vars '{{lookback_hours:"
            f" {self.catch_up_hours}}}'`{lost}, after the --vars the job passes, if any (raise"
            " the Datahub queries' WINDOW first when that is over 24; docs/operations.md,"
            " Catch-up after an outage)"
        )


def find_window_gap(
    con: duckdb.DuckDBPyConnection, destination_id: int, *, before: dt.datetime | None = None
) -> WindowGap | None:
    """The gap between the last real push at ``destination_id`` that started before ``before``
    (None: any) and left nothing pending, and the window of the build in the file; None when
    there is none, or no such push yet (a first run has no gap)."""
    if not (table_exists(con, RUNS_TABLE) and table_exists(con, BUILD_INFO_TABLE)):
        return None
    try:
        build = fetch_one(con, f"select as_of, lookback_hours from {BUILD_INFO_TABLE}")
    except duckdb.Error:  # a build info of another version
        return None
    if not build or build[0] is None or build[1] is None:
        return None
    as_of = build[0]
    window_start = as_of - dt.timedelta(hours=int(build[1]))
    bound = " and started_at < ?" if before is not None else ""
    row = fetch_one(
        con,
        f"select max(started_at) from {RUNS_TABLE} where destination_id = ? and not is_test"
        " and finished_at is not null and left_pending = 0 and exit_code in (0, 4)" + bound,
        [int(destination_id), *([before] if before is not None else [])],
    )
    last_complete = row[0] if row else None
    if last_complete is None or last_complete >= window_start:
        return None
    return WindowGap(last_complete=last_complete, window_start=window_start, as_of=as_of)

"""An outage longer than the build's window: the conversions no run ever had a chance to send.

Each build holds the conversions of ``lookback_hours`` before its ``as_of`` that its export holds.
A conversion reaches the export some time after it happened: KARTE adds the row minutes to about
an hour after the event, and the export is written hourly. So the last push that sent its payload
whole covered the conversions up to ``EXPORT_DELAY_HOURS`` before it started, and a window that
starts no later than that leaves nothing out. After an outage (LINE unreachable over a weekend, a
revoked token, a stopped scheduler) that outran the window less that delay, or with a
``lookback_hours`` shorter than the delay plus the schedule, the first build back starts its
window after that point: what happened between the two was in no payload that was sent whole,
and nothing else would ever say so. The push warns, and the alert names the catch-up to run
(docs/operations.md, "Catch-up after an outage").
"""

# ruff: noqa: S608 - SQL is built from this package's constant table names; values are bound.

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import duckdb

from sender.coverage import COVERAGE_TABLE
from sender.database import BUILD_INFO_TABLE, RUNS_TABLE, fetch_one, table_exists
from sender.line_rules import DAY_SECONDS, MAX_AGE_SECONDS

# How long after it happened a conversion may first be in the export a build reads: about an hour
# for KARTE to add the row, up to an hour for the next hourly export, and an hour's margin.
EXPORT_DELAY_HOURS = 3

# A push that sent its payload whole: it finished, and left nothing pending (exit 0, or 4: every
# event had an outcome, some refused by LINE).
COMPLETE_RUN = "finished_at is not null and left_pending = 0 and exit_code in (0, 4)"


@dataclass(frozen=True)
class WindowGap:
    last_complete: dt.datetime  # UTC: when the last push that left nothing pending started
    window_start: dt.datetime  # UTC: as_of - lookback_hours of the build in the file
    as_of: dt.datetime
    # UTC: the as_of of the build that push sent, when it was over an hour older than the push
    # (a replay of a past window, a build left from before an outage); None: as new as the push
    sent_as_of: dt.datetime | None = None

    @property
    def covered_until(self) -> dt.datetime:
        """UTC: the conversions up to here were in an export before the last complete push,
        and in the window of the build it sent."""
        until = min(self.last_complete, self.sent_as_of or self.last_complete)
        return until - dt.timedelta(hours=EXPORT_DELAY_HOURS)

    @property
    def needed_hours(self) -> int:
        """A lookback that reaches back over the gap (an hour's margin)."""
        return hours_back(self.as_of, self.covered_until)

    def describe(self) -> str:
        stamp = "%Y-%m-%d %H:%M UTC"
        sent = (
            f" and sent a build whose window ended at {self.sent_as_of:{stamp}} (a replay of a"
            " past window, or a build left from before), so its export may have held the"
            f" conversions only up to {EXPORT_DELAY_HOURS} hours before that"
            if self.sent_as_of is not None
            else f", its export may have held the conversions only up to {EXPORT_DELAY_HOURS}"
            " hours before it"
        )
        return (
            f"conversions from {self.covered_until:{stamp}} to {self.window_start:{stamp}} may"
            " never have been sent: the last push that left nothing pending started at"
            f" {self.last_complete:{stamp}}{sent}, and this build's window starts later (an"
            f" outage, or a lookback_hours shorter than the time between runs plus"
            f" {EXPORT_DELAY_HOURS} hours); {catch_up_advice(self.needed_hours)}"
        )


def hours_back(as_of: dt.datetime, since: dt.datetime) -> int:
    """A lookback from ``as_of`` that reaches back over ``since`` (an hour's margin)."""
    return math.ceil((as_of - since).total_seconds() / 3600) + 1


def catch_up_advice(needed_hours: int) -> str:
    """The catch-up to run for a lookback of ``needed_hours``, no further back than LINE takes."""
    hours = min(needed_hours, MAX_AGE_SECONDS // 3600)
    lost = (
        f" (LINE takes no event older than {MAX_AGE_SECONDS // DAY_SECONDS} days: those"
        " before cannot be sent any more)"
        if needed_hours > hours
        else ""
    )
    return (
        f"catch up with `sender run -- --vars '{{lookback_hours: {hours}}}'`{lost}, after the"
        " --vars the job passes, if any (raise the Datahub queries' WINDOW first when that is"
        " over 24; docs/operations.md, Catch-up after an outage)"
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
        f" and {COMPLETE_RUN}" + bound,
        [int(destination_id), *([before] if before is not None else [])],
    )
    last_complete = row[0] if row else None
    if last_complete is None:
        return None
    sent_as_of = _as_of_sent_by(con, last_complete)
    if sent_as_of is not None and sent_as_of >= last_complete - dt.timedelta(hours=1):
        sent_as_of = None  # the usual build, made just before its push
    gap = WindowGap(last_complete, window_start, as_of, sent_as_of)
    return gap if gap.covered_until < window_start else None


def _as_of_sent_by(con: duckdb.DuckDBPyConnection, started_at: dt.datetime) -> dt.datetime | None:
    """The as_of of the build that a push started at ``started_at`` sent: the last build before
    it (line_capi_coverage keeps each build's); None when the coverage has none."""
    if not table_exists(con, COVERAGE_TABLE):
        return None
    try:
        row = fetch_one(
            con,
            f"select as_of from {COVERAGE_TABLE} where built_at <= ? and as_of is not null"
            " order by built_at desc limit 1",
            [started_at],
        )
    except duckdb.Error:  # a coverage of another version
        return None
    return row[0] if row else None

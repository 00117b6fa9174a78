"""Reading ``line_capi_coverage``: per build and LINE event name, how many conversions the window
held, how many were sendable or rejected (by reason), and how many sendable events carry each user
identifier. dbt keeps one set of rows per build (history).

Columns are read by their prefix, so that a new rejection reason (``rejected_<reason>``) or a new
identifier (``with_<identifier>``) shows up without a change here. A database without the table
(a build that predates it) simply has no coverage.
"""

# ruff: noqa: S608 - SQL is built from this package's constant table name and the table's own
# column names (checked against a pattern); values are bound.

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import duckdb

from sender.database import table_exists

COVERAGE_TABLE = "line_capi_coverage"
NO_COVERAGE = f"no coverage yet (no {COVERAGE_TABLE}: the last build predates it)"

_REQUIRED = (
    "invocation_id",
    "event_name",
    "is_sample",
    "conversions_in_window",
    "sendable",
    "rejected",
    "built_at",
    "as_of",
)
# Late conversions (a build since 0.2.0): read when the table has them, else none
_LATE = ("late_conversions", "late_oldest_at")
_REASON_PREFIX = "rejected_"
_IDENTIFIER_PREFIX = "with_"
_COLUMN_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def utc_text(value: dt.datetime | None) -> str | None:
    """A UTC timestamp as ``2026-03-01 10:00:00Z`` (the status and report spelling)."""
    return value.isoformat(sep=" ") + "Z" if value is not None else None


def share(count: int, sendable: int) -> float | None:
    """``count`` among ``sendable``, or None when nothing was sendable."""
    return count / sendable if sendable else None


@dataclass(frozen=True)
class EventCoverage:
    event_name: str
    is_sample: bool
    conversions_in_window: int
    sendable: int
    rejected: int
    rejected_by_reason: dict[str, int]  # reason -> count, in the table's column order
    identifiers: dict[str, int]  # identifier -> sendable events that carry it
    # conversions no build could send (line_capi_coverage.late_conversions) and the oldest's time
    late_conversions: int = 0
    late_oldest_at: dt.datetime | None = None
    # the newest conversion of the name in the export this build read (None: none there)
    export_newest_at: dt.datetime | None = None
    # built by a version before late conversions were counted (0.1.0): its row has none
    before_late_counts: bool = False

    def share(self, identifier: str) -> float | None:
        return share(self.identifiers.get(identifier, 0), self.sendable)

    def as_dict(self) -> dict:
        return {
            "is_sample": self.is_sample,
            "conversions_in_window": self.conversions_in_window,
            "sendable": self.sendable,
            "rejected": self.rejected,
            "rejected_by_reason": self.rejected_by_reason,
            "late_conversions": self.late_conversions,
            "late_oldest_at": utc_text(self.late_oldest_at),
            "identifiers": {
                name: {"count": n, "share": _rounded(self.share(name))}
                for name, n in self.identifiers.items()
            },
        }


@dataclass(frozen=True)
class BuildCoverage:
    invocation_id: str
    built_at: dt.datetime | None
    as_of: dt.datetime | None
    events: dict[str, EventCoverage]  # by event name, sorted

    @property
    def is_sample(self) -> bool:
        return any(e.is_sample for e in self.events.values())

    def as_dict(self) -> dict:
        return {
            "invocation_id": self.invocation_id,
            "built_at": utc_text(self.built_at),
            "as_of": utc_text(self.as_of),
            "events": {name: e.as_dict() for name, e in self.events.items()},
        }


@dataclass(frozen=True)
class CoverageHistory:
    """The last builds, oldest first; the reasons and identifiers the table has columns for."""

    builds: list[BuildCoverage]
    reasons: tuple[str, ...]
    identifiers: tuple[str, ...]
    complete: bool = False  # every build the table holds (fewer than were asked for)

    @property
    def latest(self) -> BuildCoverage | None:
        return self.builds[-1] if self.builds else None

    @property
    def event_names(self) -> list[str]:
        return sorted({name for build in self.builds for name in build.events})


def _rounded(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def _columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        row[0]
        for row in con.execute(
            "select column_name from duckdb_columns() where schema_name = 'main'"
            " and table_name = ? and database_name = current_database() order by column_index",
            [COVERAGE_TABLE],
        ).fetchall()
    ]


def read_coverage(con: duckdb.DuckDBPyConnection, *, builds: int = 1) -> CoverageHistory | None:
    """The last ``builds`` builds' coverage (oldest first), or None when the database has no
    usable ``line_capi_coverage`` (missing, or written by another version)."""
    if not table_exists(con, COVERAGE_TABLE):
        return None
    columns = _columns(con)
    if any(c not in columns for c in _REQUIRED):
        return None
    reasons = [c for c in columns if c.startswith(_REASON_PREFIX) and _COLUMN_NAME.match(c)]
    identifiers = [c for c in columns if c.startswith(_IDENTIFIER_PREFIX) and _COLUMN_NAME.match(c)]
    counts = [*reasons, *identifiers]
    picked = ", ".join(f"coalesce({c}, 0)::bigint" for c in counts)
    late = (
        "coalesce(c.late_conversions, 0)::bigint, c.late_oldest_at, c.late_conversions is null"
        if all(c in columns for c in _LATE)
        else "0::bigint, null::timestamp, false"
    )
    newest = "c.export_newest_at" if "export_newest_at" in columns else "null::timestamp"
    try:
        rows = con.execute(
            f"""
            with builds as (
                select invocation_id, max(built_at) as built_at, max(as_of) as as_of
                from {COVERAGE_TABLE}
                group by invocation_id
                order by built_at desc nulls last, as_of desc nulls last, invocation_id desc
                limit ?
            )
            select
                builds.invocation_id, builds.built_at, builds.as_of, {newest}, c.event_name,
                coalesce(c.is_sample, false), coalesce(c.conversions_in_window, 0)::bigint,
                coalesce(c.sendable, 0)::bigint, coalesce(c.rejected, 0)::bigint,
                {late}
                {", " + picked if picked else ""}
            from builds
            inner join {COVERAGE_TABLE} as c on c.invocation_id = builds.invocation_id
            order by builds.built_at nulls first, builds.as_of nulls first,
                builds.invocation_id, c.event_name
            """,
            [int(builds)],
        ).fetchall()
    except duckdb.Error:  # columns of an unexpected type: written by another version
        return None
    found: dict[str, BuildCoverage] = {}
    for row in rows:
        invocation_id, built_at, as_of, newest_at, name, is_sample, window, sendable = row[:8]
        rejected, late_conversions, late_oldest_at, before_late_counts = row[8:12]
        values = [int(v) for v in row[12:]]
        build = found.setdefault(
            str(invocation_id), BuildCoverage(str(invocation_id), built_at, as_of, {})
        )
        build.events[str(name)] = EventCoverage(
            event_name=str(name),
            is_sample=bool(is_sample),
            conversions_in_window=int(window),
            sendable=int(sendable),
            rejected=int(rejected),
            rejected_by_reason={
                c.removeprefix(_REASON_PREFIX): v
                for c, v in zip(reasons, values[: len(reasons)], strict=True)
            },
            identifiers={
                c.removeprefix(_IDENTIFIER_PREFIX): v
                for c, v in zip(identifiers, values[len(reasons) :], strict=True)
            },
            late_conversions=int(late_conversions),
            late_oldest_at=late_oldest_at,
            export_newest_at=newest_at,
            before_late_counts=bool(before_late_counts),
        )
    return CoverageHistory(
        builds=list(found.values()),
        reasons=tuple(c.removeprefix(_REASON_PREFIX) for c in reasons),
        identifiers=tuple(c.removeprefix(_IDENTIFIER_PREFIX) for c in identifiers),
        complete=len(found) < int(builds),
    )


def describe_event(event: EventCoverage) -> list[str]:
    """Two or three lines for ``sender status``: counts, identifiers, rejections by reason."""
    lines = [
        f"{event.event_name}: {event.conversions_in_window:,} in window,"
        f" {event.sendable:,} sendable, {event.rejected:,} rejected"
        + (" (the bundled sample)" if event.is_sample else "")
    ]
    if event.identifiers:
        lines.append(
            "  "
            + ", ".join(
                f"{name} {n:,} ({percent(event.share(name))})"
                for name, n in event.identifiers.items()
            )
        )
    reasons = {r: n for r, n in event.rejected_by_reason.items() if n}
    if reasons:
        lines.append("  rejected: " + ", ".join(f"{r} {n:,}" for r, n in reasons.items()))
    if event.late_conversions:
        lines.append(
            f"  late: {event.late_conversions:,} reached the export after every window (the"
            f" oldest at {utc_text(event.late_oldest_at)}), never sent: catch up"
            " (docs/operations.md, Catch-up after an outage)"
        )
    return lines


def percent(value: float | None) -> str:
    """A share as a rounded percentage; "-" when there was nothing to share."""
    if value is None:
        return "-"
    if 0 < value < 0.01:
        return "<1%"
    return f"{value:.0%}"

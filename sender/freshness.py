"""Whether the KARTE export is fresh enough to build from: ``dbt source freshness``'s results
(sources.json) read per table, and the cases that are not a stopped export.

- A quiet window: no conversion in the export at all, its page views fresh (or none either).
- A quiet spell: a table's newest row is older than its limit, but its files were written
  within it: the export runs and the site had nothing new (up to ``QUIET_SPELL_MAX_HOURS``),
  unless newer rows came since the last run that were already too old then (``arrived_late``).
- Times ahead: the newest ``sync_date`` more than ``FUTURE_TOLERANCE_HOURS`` in the future,
  Japan time written without its offset.

What ``sender run`` says and which exit code it gives for each: ``ScheduledRun.check_freshness``.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

from sender.dbt_artifacts import read_results
from sender.run_history import ExportCheck

# The longest quiet spell (no new row in an export whose files are still written): beyond it the
# export's query or the site's tag has stopped, not the shop.
QUIET_SPELL_MAX_HOURS = 72

# How far the newest page view may trail the newest conversion: each conversion fires on a page
# view the same export holds, minutes apart at most.
PAGE_VIEWS_BEHIND_HOURS = 1.0

# How far in the future an export's newest sync_date may be (clocks differ by minutes): beyond
# it, times were written without their offset, such as Japan time read as UTC, 9 h ahead.
FUTURE_TOLERANCE_HOURS = 1.0


@dataclass(frozen=True)
class Freshness:
    table: str
    status: str  # pass, warn, error, runtime error
    age_hours: float | None
    limit_hours: float | None
    # when dbt measured the age (Unix time): what the run's other ages of the export are taken
    # from, so that one conversion is not 0.1 h old in one line and 0.2 h in the next
    checked_at: float | None = None

    @property
    def has_no_time(self) -> bool:
        """No row at all (the freshness query's null: dbt reports an age beyond a century)."""
        return self.age_hours is None or self.age_hours > 24 * 365 * 100

    @property
    def has_unreadable_times(self) -> bool:
        """Rows, but none whose sync_date parses: the query gives the Unix epoch."""
        if self.age_hours is None or self.has_no_time:
            return False
        return abs(self.age_hours * 3600 - time.time()) < 2 * 86400

    def describe(self) -> str:
        if self.has_unreadable_times:
            return (
                f"KARTE export table {self.table} has rows but no readable sync_date: its format"
                " changed? (ISO 8601 with an offset, or epoch digits: docs/input-contract.md)"
            )
        if self.has_no_time:
            return f"KARTE export table {self.table} has no row with a readable sync_date"
        limit = f" (the limit is {self.limit_hours:g} h)" if self.limit_hours else ""
        return (
            f"KARTE export table {self.table} is stale: its newest sync_date is"
            f" {self.age_hours:.1f} h old{limit}"
        )

    @property
    def is_ahead(self) -> bool:
        return self.age_hours is not None and self.age_hours < -FUTURE_TOLERANCE_HOURS

    def describe_ahead(self) -> str:
        return (
            f"KARTE export table {self.table} has sync_dates up to {-(self.age_hours or 0):.1f} h"
            " in the future: a time without an offset is read as UTC, so Japan time (a BigQuery"
            " DATETIME) shows 9 h ahead; set dbt var karte_export_utc_offset: '+09:00', or export"
            " sync_date as a TIMESTAMP or with its offset (+09:00); with the var set already, some"
            " Parquet parts store sync_date with a time zone and others without: write them alike"
        )


def quiet_window(results: list[Freshness]) -> list[Freshness]:
    """The results to excuse when conversions has no row with a time and page views are fresh
    or have none either (the bundled Datahub queries export the page views of converters only):
    a site without a conversion in the export's window, not a stopped export. A stopped export
    keeps its last rows, which age; a configured conversion type without rows is alerted on."""
    by_table = {r.table: r for r in results}
    conversions, page_views = by_table.get("conversions"), by_table.get("page_views")
    if conversions is None or page_views is None:
        return []
    if not (conversions.status == "error" and conversions.has_no_time):
        return []
    if page_views.status == "pass":
        return [conversions]
    if page_views.status == "error" and page_views.has_no_time:
        return [conversions, page_views]
    return []


def written_hours_ago(export_dir: Path, table: str, now: float | None = None) -> float | None:
    """Hours since the newest file of ``table`` in the export folder was written (its mtime:
    one file, its parts, or a folder of them); None when there is none to read."""
    newest: float | None = None
    try:
        for entry in export_dir.iterdir():
            if not entry.name.startswith(table):
                continue
            files = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
            for file in files:
                written = file.stat().st_mtime
                newest = written if newest is None else max(newest, written)
    except OSError:
        return None
    if newest is None:
        return None
    return ((time.time() if now is None else now) - newest) / 3600


def read_freshness(path: Path, since: float) -> list[Freshness]:
    """The per-table results of the `dbt source freshness` that wrote ``path`` after ``since``."""
    found = []
    for result in read_results(path, since):
        criteria = result.get("criteria") or {}
        key = "error_after" if result.get("status") == "error" else "warn_after"
        limit = (criteria.get(key) or {}).get("count")
        age = result.get("max_loaded_at_time_ago_in_s")
        found.append(
            Freshness(
                table=str(result.get("unique_id", "?")).rsplit(".", 1)[-1],
                status=str(result.get("status")),
                age_hours=age / 3600 if isinstance(age, int | float) else None,
                limit_hours=float(limit) if isinstance(limit, int | float) else None,
                checked_at=_unix_time(result.get("snapshotted_at")),
            )
        )
    return found


def _unix_time(text: object) -> float | None:
    """An ISO 8601 time of sources.json (with its offset) as Unix time; None if it is not one."""
    if not isinstance(text, str):
        return None
    try:
        at = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at.timestamp() if at.tzinfo is not None else None


def find_quiet_spell(
    results: list[Freshness], export_dir: Path | None
) -> list[tuple[Freshness, float]]:
    """The stale results of tables whose files were written within their limit: the export
    runs, the site had nothing new to put in it (a small shop's night; the bundled Datahub
    queries export the page views of converters only). An export that stopped stops
    writing its files too. Each with the hours since its files were written. Without the
    export folder (the dbt vars name it), none."""
    if export_dir is None:
        return []
    excused = []
    for result in results:
        if result.status != "error" or result.has_no_time or result.has_unreadable_times:
            continue
        if result.age_hours is None or result.is_ahead or not result.limit_hours:
            continue
        written = written_hours_ago(export_dir, result.table)
        if written is not None and written <= result.limit_hours:
            excused.append((result, written))
    return excused


def page_views_behind(results: list[Freshness], result: Freshness) -> str | None:
    """Why ``result``, a stale page_views, may be no quiet spell: the conversions table, each
    conversion on a page view of the same export, is newer by more than PAGE_VIEWS_BEHIND_HOURS
    (the page views' query or export stopped; new conversions go without IP, user agent or click
    id). Said, not a stop: the table may hold other events (add-to-cart rows) beside page views
    of converters only, as a quiet night of a healthy site. None otherwise."""
    if result.table != "page_views" or result.age_hours is None:
        return None
    conversions = next((r for r in results if r.table == "conversions"), None)
    if conversions is None or conversions.age_hours is None or conversions.has_no_time:
        return None
    if result.age_hours - conversions.age_hours <= PAGE_VIEWS_BEHIND_HOURS:
        return None
    return (
        f"; conversions are {conversions.age_hours:.1f} h old: if those rows are conversions (not"
        " other events the table holds), the page views stopped while they went on (the"
        " page_views query or its export broke), and each conversion's IP address, user agent"
        " and click id come from its page view"
    )


# Rows newer than the last check's newest by at least this much (the run log keeps ages to a
# tenth of an hour) are new rows, not the same row read again.
NEW_ROWS_HOURS = 0.25


def arrived_late(result: Freshness, previous: ExportCheck | None, now: float) -> str | None:
    """Why ``result``, a stale table whose files were written within its limit (a quiet spell,
    at first sight), is no quiet spell: rows newer than the last check's newest came since, yet
    they were older than the table's limit at that check, which did not have them. An export
    that delivers its rows hours late, or writes its times with a wrong offset (UTC written as
    +09:00 reads 9 h early, every hour): either way the events would go out as hours old. None
    when there is no earlier check, or nothing new came, or what came could
    have come in time (runs hours apart)."""
    if previous is None or not result.limit_hours:
        return None
    before = previous.ages.get(result.table)
    if before is None or result.age_hours is None or result.has_no_time:
        return None
    newest = now - result.age_hours * 3600
    newest_before = previous.at - before * 3600
    late_by = (previous.at - newest) / 3600  # how old that row was when the check missed it
    if newest - newest_before < NEW_ROWS_HOURS * 3600 or late_by <= result.limit_hours:
        return None
    return (
        f"{result.describe()}, though newer rows came since the last run's check"
        f" {(now - previous.at) / 3600:.1f} h ago, {late_by:.1f} h old already then: the export"
        f" delivers its rows over {result.limit_hours:g} h late, or writes its times with a wrong"
        " offset (UTC written as +09:00, or var karte_export_utc_offset set for times in UTC,"
        " reads 9 h early); compare a row's sync_date with when it happened"
        " (docs/troubleshooting.md); an export late by design:"
        " raise karte_freshness_error_hours"
    )


# The words of the warning below, which the alerts count runs in a row by (sender.alerts).
PAGE_VIEWS_TRAIL = "newer than the newest page view"


@dataclass(frozen=True)
class WithoutPageView:
    """The conversions of a build, sent or rejected, that carry no page view and are over
    PAGE_VIEWS_BEHIND_HOURS newer than the export's newest page view: how many, and the newest's
    LINE event name and Unix time, and the newest page view's."""

    count: int
    newest_name: str
    newest_at: float
    page_view_at: float


def page_views_trail(found: WithoutPageView | None, now: float) -> str | None:
    """The warning for ``found`` (None: none). Each conversion fires on a page view the same
    export holds, and is sent with what its page view carries when it is built: one built
    before its page view came goes without IP address, user agent, web fields and the click id
    of that visit, for good. A conversion whose page view is there, however much older (a
    single-page app's purchase), is not counted."""
    if found is None or not found.count:
        return None
    gap = (found.newest_at - found.page_view_at) / 3600
    many = f"{found.count:,} conversions carry" if found.count > 1 else "1 conversion carries"
    age = (now - found.newest_at) / 3600
    return (
        f"{many} no page view, the newest ({found.newest_name}, {age:.1f} h old)"
        f" {gap:.1f} h {PAGE_VIEWS_TRAIL}: the page_views export runs behind the"
        " conversions' or has stopped, and a conversion sent before its page view comes goes"
        " without IP address, user agent and click id; export page_views as often as"
        " conversions, and no later"
    )


# The words of the warning below, which the alerts count runs in a row by (sender.alerts).
PAGE_VIEWS_UNMATCHED = "name no page view of the export"
# The fewest such conversions, and their least share, that say the two tables' pv_ids differ
# (some conversions lack their page view when the page views reach less far back than the
# window, as a long catch-up's does: not nearly all of them).
MIN_UNMATCHED = 5
UNMATCHED_SHARE = 0.9


@dataclass(frozen=True)
class UnmatchedPageViews:
    """The conversions of a build with a pv_id, no newer than the export's newest page view
    (page_views_trail counts the newer ones): how many, and how many name no page view."""

    named: int
    unmatched: int


def pv_ids_differ(found: UnmatchedPageViews | None) -> str | None:
    """The warning when nearly every conversion names a page view the export does not hold,
    though its page views reach past them (None: not so). The two tables join on pv_id: one
    query changed how it writes it (an id of another kind, another case), and every conversion
    goes without IP address, user agent, web fields and the click id of its visit, for good,
    with nothing else to say so at a site too small for the share alerts."""
    if found is None or found.unmatched < MIN_UNMATCHED:
        return None
    if found.unmatched < UNMATCHED_SHARE * found.named:
        return None
    return (
        f"{found.unmatched:,} of the build's {found.named:,} conversions with a pv_id"
        f" {PAGE_VIEWS_UNMATCHED}, though the page views reach past them: the conversions and"
        " page_views exports write pv_id differently (one query changed), and those conversions"
        " go without IP address, user agent and click id; compare a conversion's pv_id with its"
        " page view's in the two exports"
    )

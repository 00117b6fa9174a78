"""Alerts read from the identifier coverage (line_capi_coverage), build after build.

Each function takes the builds ``read_coverage`` returned, oldest first, and the alert settings,
and returns its findings, one line each, about the latest build: a share of an identifier that
fell below its trailing average or its level a week before, or was never there; a configured
conversion type with no conversion, or with most of them rejected, for several builds in a row; a
share of conversions sendable that fell; conversions that reached the export after every window
had passed them. sender/alerts.py calls them after a build's first push and sends the message.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sender.alert_settings import AlertSettings
from sender.coverage import CoverageHistory, EventCoverage, percent
from sender.window_gap import catch_up_advice, hours_back

# Earlier builds a trailing average needs before a fall below it means something.
MIN_BASELINE_BUILDS = 3


def _comparable(
    history: CoverageHistory,
    at: int,
    name: str,
    s: AlertSettings,
    size: Callable[[EventCoverage], int],
) -> tuple[EventCoverage, list[EventCoverage]] | None:
    """Event name ``name`` in build ``at`` and in the earlier builds of its trailing average, all
    of at least ``min_sendable`` by ``size`` and of one ``is_sample``, when there are enough of
    them to compare; else None."""
    build = history.builds[at].events.get(name)
    if build is None or size(build) < s.min_sendable:
        return None
    earlier = [
        b.events[name]
        for b in history.builds[max(0, at - s.share_builds) : at]
        if name in b.events
        and size(b.events[name]) >= s.min_sendable
        and b.events[name].is_sample == build.is_sample
    ]
    return (build, earlier) if len(earlier) >= MIN_BASELINE_BUILDS else None


def _baseline(history: CoverageHistory, at: int, event: str, identifier: str, s: AlertSettings):
    """(share, sendable, count, mean, builds) of build ``at`` against the trailing average of the
    earlier builds, when both are large enough to compare; else None."""
    found = _comparable(history, at, event, s, lambda e: e.sendable)
    if found is None:
        return None
    build, earlier = found
    mean = sum(e.share(identifier) or 0.0 for e in earlier) / len(earlier)
    if mean < s.min_share:
        return None
    count = build.identifiers.get(identifier, 0)
    return count / build.sendable, build.sendable, count, mean, len(earlier)


def _fell(history: CoverageHistory, s: AlertSettings, at: int, event: str, identifier: str):
    """_baseline's figures when build ``at``'s share is below (1 - share_drop) x the trailing
    average; else None."""
    found = _baseline(history, at, event, identifier, s)
    if found is None or found[0] >= (1 - s.share_drop) * found[3]:
        return None
    return found


def share_drop_findings(history: CoverageHistory, settings: AlertSettings) -> list[str]:
    """Identifiers whose share in the latest build fell below (1 - share_drop) x their trailing
    average, and had not in the build before (one message per fall, not one per build)."""

    def fell(at: int, event: str, identifier: str):
        return _fell(history, settings, at, event, identifier)

    latest = len(history.builds) - 1
    findings = []
    for event in history.builds[-1].events if history.builds else ():
        for identifier in history.identifiers:
            found = fell(latest, event, identifier)
            if found is None or (latest > 0 and fell(latest - 1, event, identifier)):
                continue
            value, sendable, count, mean, builds = found
            findings.append(
                f"{identifier} share of {event} fell to {percent(value)} ({count:,} of"
                f" {sendable:,} sendable) from an average of {percent(mean)} over the previous"
                f" {builds} builds"
            )
    return findings


# A slow fade (a frozen user master: new buyers without an email) slides the trailing average
# down with it, so share_drop_findings never sees it: the latest build is also compared with a
# day of builds a week before it. Builds are hourly in the recipes: the history read holds them.
FADE_WINDOW = (dt.timedelta(days=8), dt.timedelta(days=6))
FADE_HISTORY_BUILDS = 8 * 24 + 2


def fade_findings(history: CoverageHistory, settings: AlertSettings) -> list[str]:
    """Identifiers whose share in the latest build is below (1 - share_drop) x their average
    over the builds 6 to 8 days before it (at least MIN_BASELINE_BUILDS of them with
    min_sendable sendable events, of the latest's is_sample, averaging at least min_share), and
    was not in the build before: once per fall. A fall the trailing average sees is
    share_drop_findings' (not said twice)."""

    def faded(at: int, name: str, identifier: str):
        build = history.builds[at]
        event = build.events.get(name)
        if build.as_of is None or event is None or event.sendable < settings.min_sendable:
            return None
        oldest, newest = (build.as_of - ago for ago in FADE_WINDOW)
        before = [
            b.events[name]
            for b in history.builds[:at]
            if b.as_of is not None
            and oldest <= b.as_of <= newest
            and name in b.events
            and b.events[name].sendable >= settings.min_sendable
            and b.events[name].is_sample == event.is_sample
        ]
        if len(before) < MIN_BASELINE_BUILDS:
            return None
        mean = sum(e.share(identifier) or 0.0 for e in before) / len(before)
        value = event.share(identifier) or 0.0
        if mean < settings.min_share or value >= (1 - settings.share_drop) * mean:
            return None
        return value, mean

    latest = len(history.builds) - 1
    findings = []
    for name in history.builds[-1].events if history.builds else ():
        for identifier in history.identifiers:
            found = faded(latest, name, identifier)
            if found is None or _fell(history, settings, latest, name, identifier):
                continue
            if latest > 0 and faded(latest - 1, name, identifier):
                continue
            value, mean = found
            findings.append(
                f"{identifier} share of {name} is {percent(value)}, down from {percent(mean)} a"
                " week ago: a slow fall the last day's average slid down with (a user master or"
                " LINE login export that stopped updating, a tag removed from some pages?)"
            )
    return findings


def _streak(
    history: CoverageHistory, name: str, ends: Callable[[EventCoverage], int]
) -> list[EventCoverage]:
    """``name`` in the latest builds, newest first, back to the first build that ``ends`` the
    streak (a true count), is not configured for it or differs from the latest in ``is_sample``."""
    latest = history.builds[-1].events[name]
    streak = []
    for build in reversed(history.builds):
        earlier = build.events.get(name)
        if earlier is None or earlier.is_sample != latest.is_sample or ends(earlier):
            break
        streak.append(earlier)
    return streak


def empty_event_findings(history: CoverageHistory, settings: AlertSettings) -> list[str]:
    """LINE event names the latest build is configured for whose window held no conversion (sent
    or rejected) in each of the last ``empty_builds`` builds: once per streak, at the build that
    makes it that long. A streak starts when the name is first configured, so a misspelt KARTE
    event name is reported after that many builds."""
    findings = []
    latest = history.builds[-1]
    for name, event in latest.events.items():
        streak = len(_streak(history, name, lambda e: e.conversions_in_window))
        if streak != settings.empty_builds:
            continue
        newest = None  # hours since the export's newest conversion of the name, if it has one
        if latest.as_of is not None and event.export_newest_at is not None:
            newest = (latest.as_of - event.export_newest_at).total_seconds() / 3600
        if newest is not None and newest >= STALLED_EXPORT_HOURS:
            findings.append(
                f"no conversions of {name} in {streak} builds in a row; the export's newest is"
                f" {newest:.0f} h old: has the site stopped recording it, or the export adding"
                " rows (its query, or the site's tag)? Its files are still written, or the run"
                " would have stopped as stale (docs/karte-datahub.md)"
            )
        else:
            findings.append(
                f"no conversions of {name} in {streak} builds in a row: is its KARTE event name"
                " (var karte_conversion_event or karte_conversion_events) spelt as in the export,"
                " and does the site still record it?"
            )
    return findings


# A conversion type whose newest conversion in the export is this old, while the export's files
# are written (else the run stops as stale): the export holds the name, so it is not misspelt; the
# site stopped recording it, or the export stopped adding rows.
STALLED_EXPORT_HOURS = 24

# The fewest rejected conversions in a window that can make a rejected streak: one anonymous
# order of a quiet conversion type, rejected hour after hour while it stays in the window, is not
# an export that broke.
MIN_REJECTED = 5


def _mostly_rejected(event: EventCoverage, settings: AlertSettings) -> bool:
    return (
        event.rejected >= MIN_REJECTED
        and event.rejected >= settings.rejected_share * event.conversions_in_window
    )


def rejected_event_findings(history: CoverageHistory, settings: AlertSettings) -> list[str]:
    """LINE event names the latest build is configured for whose window held at least
    MIN_REJECTED rejected conversions, at least ``rejected_share`` of them all, in each of the last
    ``empty_builds`` builds from the first that held conversions: once per streak, at the build
    that makes it that long, with the reasons of the latest window that held any. Empty windows
    before the first such build are empty_event_findings' streak, empty ones after it continue
    this one: the two never report a name at one build, and conversions rejected once a misspelt
    name is corrected are still reported."""
    findings = []
    for name in history.builds[-1].events:
        streak = _streak(
            history, name, lambda e: e.conversions_in_window and not _mostly_rejected(e, settings)
        )
        held = [at for at, event in enumerate(streak) if event.conversions_in_window]
        # newest first: the streak runs from its oldest build that held conversions
        if not held or held[-1] + 1 != settings.empty_builds:
            continue
        last = streak[held[0]]
        window = "the window" if held[0] == 0 else "the last window that held any"
        reasons = [(reason, n) for reason, n in last.rejected_by_reason.items() if n]
        reasons.sort(key=lambda item: item[1], reverse=True)  # a tie in the table's order
        top = [f"{reason} {n:,}" for reason, n in reasons[:3]]
        if others := sum(n for _, n in reasons[3:]):
            top.append(f"others {others:,}")
        if last.sendable:
            said = (
                f"most conversions of {name} rejected in {settings.empty_builds} builds in a row:"
                f" {last.rejected:,} of {last.conversions_in_window:,} in {window}"
            )
        else:
            said = (
                f"no sendable conversions of {name} in {settings.empty_builds} builds in a row: all"
                f" {last.conversions_in_window:,} in {window} were rejected"
            )
        findings.append(
            said
            + (f" ({', '.join(top)})" if top else "")
            + ": see line_capi_rejected (docs/troubleshooting.md)"
        )
    return findings


# Identifiers a working export gives nearly every sendable event, so that none at all, from the
# first build on, is a set-up left undone rather than a site's choice: every KARTE page view has
# an IP address and user agent, the LINE Tag's cookie is there once the tag that sends it to KARTE
# is live, and a shop's buyers leave an email. (Phone numbers, LINE user ids and click ids are a
# site's or its campaigns' to have or not.) A share that falls is share_drop_findings'.
WATCHED_FROM_THE_START = {
    "ip_and_user_agent": "the page views' ip_address and user_agent are empty, or no conversion"
    " finds its page view (pv_id): check the page_views export (docs/karte-datahub.md)",
    "browser_id": "no page view carries the LINE Tag's cookie (lt_cid): is the tag that sends it"
    " to KARTE live? (docs/karte-datahub.md, 1. What the site must capture)",
    "email": "no buyer's user master row gives an email (or none joins on user_id): check the"
    " user_master export (docs/karte-datahub.md)",
}


def absent_identifier_findings(history: CoverageHistory, settings: AlertSettings) -> list[str]:
    """Watched identifiers that no sendable event of a LINE event name carried in any build of
    the history, once ``empty_builds`` of its builds had at least ``min_sendable`` sendable
    events: once, at the build that makes them that many (a share never there does not fall, so
    share_drop_findings never sees it). Builds with fewer sendable events do not count, nor do
    those of a version before this alert (0.1.0: a database upgraded is told at its third build
    since). Only while the history holds every build of the database since that version: the
    first builds of a site, not a site busy again after a quiet spell longer than the history
    read."""
    findings = []
    upgraded = any(e.before_late_counts for b in history.builds for e in b.events.values())
    whole = history.complete or upgraded
    latest = history.builds[-1] if history.builds and whole else None
    for name, event in latest.events.items() if latest else ():
        if event.sendable < settings.min_sendable:
            continue
        same = [
            b.events[name]
            for b in history.builds
            if name in b.events
            and b.events[name].is_sample == event.is_sample
            and not b.events[name].before_late_counts
        ]
        counted = [e for e in same if e.sendable >= settings.min_sendable]
        if len(counted) != settings.empty_builds:
            continue
        for identifier, advice in WATCHED_FROM_THE_START.items():
            if identifier not in history.identifiers or any(
                e.identifiers.get(identifier, 0) for e in same
            ):
                continue
            findings.append(
                f"{identifier} in none of the {event.sendable:,} sendable {name} events, nor in"
                f" any of the last {len(same)} builds: {advice}"
            )
    return findings


def sendable_drop_findings(history: CoverageHistory, settings: AlertSettings) -> list[str]:
    """LINE event names whose share of conversions that could be sent fell below (1 -
    share_drop) x its trailing average (builds with at least min_sendable conversions in the
    window), with the reasons of the latest window: an export that broke for part of its rows
    (an order id written as 1234.0) loses orders without nearly all being rejected. Once per
    fall, as share_drop_findings."""

    def fell(at: int, name: str):
        found = _comparable(history, at, name, settings, lambda e: e.conversions_in_window)
        if found is None or found[0].rejected < MIN_REJECTED:
            return None
        event, earlier = found
        mean = sum(e.sendable / e.conversions_in_window for e in earlier) / len(earlier)
        value = event.sendable / event.conversions_in_window
        if value >= (1 - settings.share_drop) * mean:
            return None
        return event, value, mean, len(earlier)

    latest = len(history.builds) - 1
    findings = []
    for name in history.builds[-1].events if history.builds else ():
        found = fell(latest, name)
        if found is None or (latest > 0 and fell(latest - 1, name)):
            continue
        event, value, mean, builds = found
        reasons = sorted(
            ((reason, n) for reason, n in event.rejected_by_reason.items() if n),
            key=lambda item: item[1],
            reverse=True,
        )
        top = ", ".join(f"{reason} {n:,}" for reason, n in reasons[:3])
        findings.append(
            f"sendable share of {name} fell to {percent(value)} ({event.sendable:,} of"
            f" {event.conversions_in_window:,} conversions in the window) from an average of"
            f" {percent(mean)} over the previous {builds} builds; rejected"
            + (f" as {top}" if top else f" {event.rejected:,}")
            + ": see line_capi_rejected (docs/troubleshooting.md)"
        )
    return findings


def late_conversion_findings(history: CoverageHistory) -> list[str]:
    """The latest build's conversions that no build could send: they reached the export after
    every window that would have held them (line_capi_coverage.late_conversions), with the
    catch-up that sends them. Once: the next build's export has read them."""
    latest = history.builds[-1]
    findings = []
    for name, event in latest.events.items():
        if not event.late_conversions or event.late_oldest_at is None or latest.as_of is None:
            continue
        count = event.late_conversions
        findings.append(
            f"{count:,} conversion{'' if count == 1 else 's'} of {name} reached the export only"
            " after the window of every build had passed their time (the oldest at"
            f" {event.late_oldest_at:%Y-%m-%d %H:%M UTC}): no build sent them; the export had"
            " added no row for longer than lookback_hours (its query, its schedule or the"
            " site's tag stopped, then caught up); "
            + catch_up_advice(hours_back(latest.as_of, event.late_oldest_at))
        )
    return findings


def builds_to_read(settings: AlertSettings) -> int:
    """How many of the latest builds ``coverage_findings`` needs (read_coverage's ``builds``)."""
    return max(settings.share_builds, settings.empty_builds, FADE_HISTORY_BUILDS) + 2


def coverage_findings(history: CoverageHistory, settings: AlertSettings) -> list[str]:
    """Every finding the coverage history holds about its latest build."""
    return [
        *empty_event_findings(history, settings),
        *rejected_event_findings(history, settings),
        *share_drop_findings(history, settings),
        *fade_findings(history, settings),
        *absent_identifier_findings(history, settings),
        *sendable_drop_findings(history, settings),
        *late_conversion_findings(history),
    ]

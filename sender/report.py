"""``sender report``: one self-contained HTML page about the last builds and runs.

Identifier shares per build (a chart per LINE event name), rejections by reason, and the sends
of each run per destination. Inline CSS and SVG only: no script, nothing fetched, so the page
opens offline and can be attached to an email. It holds counts, event names, dates and
destinations (endpoint and tag id), never personal data or the token; every text is escaped.
"""

# ruff: noqa: S608 - SQL is built from this package's constant table names; values are bound.

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb

from sender.coverage import (
    COVERAGE_TABLE,
    NO_COVERAGE,
    BuildCoverage,
    CoverageHistory,
    percent,
    read_coverage,
    utc_text,
)
from sender.database import (
    ACCEPTED,
    BATCHES_TABLE,
    DESTINATIONS_TABLE,
    EXPIRED,
    REJECTED_BY_API,
    RUNS_TABLE,
    table_exists,
)
from sender.file_modes import write_private_text
from sender.settings import ConfigError

DEFAULT_BUILDS = 48

# Okabe-Ito colours (told apart by most colour-blind readers); each series also has its own
# marker and dash pattern, and is labelled at its end, so colour is never the only cue.
_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
_MARKERS = ("circle", "square", "triangle", "diamond", "cross", "plus", "triangle-down")
_DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4")
# run outcomes: (label, colour, SVG pattern id or None for solid)
_SEND_PARTS = (
    ("accepted", "#009E73", None),
    ("rejected by LINE", "#D55E00", "hatch"),
    ("expired", "#E69F00", "dots"),
    ("left pending", "#56B4E9", "cross"),
)

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans JP',sans-serif;
margin:2em auto;max-width:980px;padding:0 1em;color:#111;line-height:1.45}
h1{font-size:1.5em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ccc}
h3{font-size:1.05em;margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0 1.2em;font-size:.9em}
th,td{border:1px solid #bbb;padding:.2em .5em;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f2f2f2}
figure{margin:1em 0}figcaption{font-weight:600;margin-bottom:.3em}
svg{max-width:100%;height:auto;font-size:11px}.note{color:#444;font-size:.9em}
"""


def esc(value: object) -> str:
    """Any text for HTML or SVG, attributes included."""
    return html.escape(str(value), quote=True)


# -- data ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSends:
    started_at: dt.datetime
    outcome: str | None
    exit_code: int | None
    accepted: int
    rejected: int
    expired: int
    left_pending: int

    def parts(self) -> tuple[int, int, int, int]:
        return (self.accepted, self.rejected, self.expired, self.left_pending)


def read_runs(con: duckdb.DuckDBPyConnection, per_destination: int) -> dict[tuple[str, str], list]:
    """The last runs (not --test) of each destination (endpoint, tag id), oldest first, the
    destinations in the order they were first used. A run that never finished (killed) has no
    counts of its own: what it recorded in the ledger stands for them."""
    if not (table_exists(con, RUNS_TABLE) and table_exists(con, DESTINATIONS_TABLE)):
        return {}
    rows = con.execute(
        f"""
        with run as (
            select *, row_number() over (
                partition by destination_id order by started_at desc
            ) as newest
            from {RUNS_TABLE}
            where not is_test
        ),

        recorded as (
            select
                run_id,
                sum(events) filter (where status = '{ACCEPTED}') as accepted,
                sum(events) filter (where status = '{REJECTED_BY_API}') as rejected,
                sum(events) filter (where status = '{EXPIRED}') as expired
            from {BATCHES_TABLE}
            where run_id in (select run_id from run where newest <= ? and finished_at is null)
            group by run_id
        )

        select destination.endpoint, destination.tag_id, run.started_at, run.outcome,
            run.exit_code, coalesce(run.accepted, recorded.accepted, 0),
            coalesce(run.rejected, recorded.rejected, 0),
            coalesce(run.expired, recorded.expired, 0), coalesce(run.left_pending, 0)
        from run
        inner join {DESTINATIONS_TABLE} as destination
            on run.destination_id = destination.destination_id
        left join recorded on run.run_id = recorded.run_id
        where run.newest <= ?
        order by destination.destination_id, run.started_at
        """,
        [per_destination, per_destination],
    ).fetchall()
    runs: dict[tuple[str, str], list[RunSends]] = {}
    for endpoint, tag_id, *rest in rows:
        started, outcome, code, *counts = rest
        runs.setdefault((str(endpoint), str(tag_id)), []).append(
            RunSends(started, outcome, code, *(int(n) for n in counts))
        )
    return runs


# -- SVG -----------------------------------------------------------------------------------------
def _marker(shape: str, x: float, y: float, colour: str, note: str = "") -> str:
    """A point's marker; ``note`` is its tooltip."""
    r = 3.5
    tip = f"<title>{esc(note)}</title>" if note else ""
    filled = f'fill="{colour}"'
    stroked = f'fill="none" stroke="{colour}" stroke-width="2"'
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" {filled}>{tip}</circle>'
    if shape == "square":
        return (
            f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r}" height="{2 * r}" {filled}>'
            f"{tip}</rect>"
        )
    if shape in ("triangle", "triangle-down"):
        d = -1 if shape == "triangle" else 1
        points = f"{x:.1f},{y + d * r:.1f} {x - r:.1f},{y - d * r:.1f} {x + r:.1f},{y - d * r:.1f}"
        return f'<polygon points="{points}" {filled}>{tip}</polygon>'
    if shape == "diamond":
        points = f"{x:.1f},{y - r:.1f} {x + r:.1f},{y:.1f} {x:.1f},{y + r:.1f} {x - r:.1f},{y:.1f}"
        return f'<polygon points="{points}" {filled}>{tip}</polygon>'
    if shape == "cross":
        a, b, c, e = x - r, y - r, x + r, y + r
        d = f"M{a:.1f} {b:.1f}L{c:.1f} {e:.1f}M{a:.1f} {e:.1f}L{c:.1f} {b:.1f}"
        return f'<path d="{d}" {stroked}>{tip}</path>'
    d = f"M{x - r:.1f} {y:.1f}H{x + r:.1f}M{x:.1f} {y - r:.1f}V{y + r:.1f}"
    return f'<path d="{d}" {stroked}>{tip}</path>'


def _nice_max(value: float) -> int:
    """A round axis maximum at or above ``value`` whose four ticks are whole numbers: four times
    1, 2 or 5 times a power of ten (or 2.5 from 10 on)."""
    needed = max(1.0, value / 4)
    power = 1
    while True:
        for step in (1, 2, 2.5, 5):
            tick = step * power
            if tick >= needed and tick == int(tick):
                return int(4 * tick)
        power *= 10


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[float | None]  # one per x position; None: no value there
    notes: Sequence[str]  # the tooltip of each point


@dataclass(frozen=True)
class Frame:
    """A chart's plot area and axes: y from 0 to ``y_max``, one x position per label."""

    x_labels: Sequence[str]
    y_max: float
    y_format: Callable[[float], str]
    bars: bool = False  # x positions in the middle of n equal slots, not from edge to edge
    legend: str = ""  # SVG above the plot (see _legend)
    width: int = 800
    height: int = 250
    left: int = 56
    right: int = 196
    top: int = 14
    bottom: int = 46

    def x(self, i: int) -> float:
        span = self.width - self.left - self.right
        n = len(self.x_labels)
        if self.bars:
            return self.left + span * (i + 0.5) / n
        return self.left + (span / 2 if n == 1 else span * i / (n - 1))

    def y(self, value: float) -> float:
        span = self.height - self.top - self.bottom
        return self.top + span * (1 - value / self.y_max)

    def axes(self, x_title: str) -> list[str]:
        out = []
        for k in range(5):
            value = self.y_max * k / 4
            y = self.y(value)
            out.append(
                f'<line x1="{self.left}" x2="{self.width - self.right}" y1="{y:.1f}"'
                f' y2="{y:.1f}" stroke="#ddd"/>'
                f'<text x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                f"{esc(self.y_format(value))}</text>"
            )
        bottom = self.height - self.bottom
        out.append(
            f'<line x1="{self.left}" x2="{self.left}" y1="{self.top}" y2="{bottom}"'
            f' stroke="#333"/><line x1="{self.left}" x2="{self.width - self.right}"'
            f' y1="{bottom}" y2="{bottom}" stroke="#333"/>'
        )
        n = len(self.x_labels)
        ticks = sorted({round(k * (n - 1) / 4) for k in range(5)}) if n > 1 else [0]
        for i in ticks:
            edge = n > 1 and not self.bars
            anchor = "start" if edge and i == 0 else "end" if edge and i == n - 1 else "middle"
            out.append(
                f'<line x1="{self.x(i):.1f}" x2="{self.x(i):.1f}" y1="{bottom}"'
                f' y2="{bottom + 4}" stroke="#333"/><text x="{self.x(i):.1f}" y="{bottom + 16}"'
                f' text-anchor="{anchor}">{esc(self.x_labels[i])}</text>'
            )
        out.append(
            f'<text x="{(self.left + self.width - self.right) / 2:.0f}" y="{self.height - 6}"'
            f' text-anchor="middle">{esc(x_title)}</text>'
        )
        return out


def _svg(frame: Frame, title: str, body: list[str], defs: str = "") -> str:
    return (
        f'<svg role="img" viewBox="0 0 {frame.width}'
        f' {frame.height}" width="{frame.width}" height="{frame.height}"'
        f' aria-label="{esc(title)}"><title>{esc(title)}</title>{defs}{"".join(body)}</svg>'
    )


def _legend(frame: Frame, items: Sequence[tuple[str, Callable[[float, float], str]]]) -> Frame:
    """Legend items (a label and its key, drawn at x, y) in rows above the plot; the frame grows
    to make room for them. Returns the new frame; the SVG is in its ``legend``."""
    row_height, x, rows = 16, frame.left, [[]]
    for label, key in items:
        width = 22 + 6.4 * len(label)
        if rows[-1] and x + width > frame.width:
            rows.append([])
            x = frame.left
        rows[-1].append((x, label, key))
        x += width + 14
    parts = []
    for r, row in enumerate(rows):
        y = 12 + r * row_height
        for x, label, key in row:
            parts.append(f'{key(x + 6, y - 4)}<text x="{x + 16}" y="{y}">{esc(label)}</text>')
    grow = row_height * len(rows) + 6
    return replace(frame, top=frame.top + grow, height=frame.height + grow, legend="".join(parts))


def line_chart(frame: Frame, series: Sequence[Series], *, title: str, x_title: str) -> str:
    """Lines with markers under a legend, each line labelled at its last point too; gaps where
    a value is missing."""

    def style(k: int) -> tuple[str, str]:
        return _COLOURS[k % len(_COLOURS)], _MARKERS[k % len(_MARKERS)]

    frame = _legend(
        frame,
        [
            (s.label, lambda x, y, k=k: _marker(style(k)[1], x, y, style(k)[0]))
            for k, s in enumerate(series)
        ],
    )
    body = [frame.legend, *frame.axes(x_title)]
    labels = []
    for k, s in enumerate(series):
        colour, shape = style(k)
        dash = _DASHES[k % len(_DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        points = [(i, v) for i, v in enumerate(s.values) if v is not None]
        segment: list[str] = []
        previous = None
        for i, v in [*points, (None, None)]:
            if i is None or (previous is not None and i != previous + 1):
                if len(segment) > 1:
                    body.append(
                        f'<polyline points="{" ".join(segment)}" fill="none" stroke="{colour}"'
                        f' stroke-width="1.8"{dash_attr}/>'
                    )
                segment = []
            if i is not None:
                segment.append(f"{frame.x(i):.1f},{frame.y(v):.1f}")
                previous = i
        for i, v in points:
            body.append(_marker(shape, frame.x(i), frame.y(v), colour, f"{s.label}: {s.notes[i]}"))
        if points:
            i, v = points[-1]
            labels.append([frame.y(v), f"{s.label} {frame.y_format(v)}", colour, shape])
    # end labels in the right margin, pushed apart so that none overlaps another
    labels.sort(key=lambda item: item[0])
    for k in range(1, len(labels)):
        labels[k][0] = max(labels[k][0], labels[k - 1][0] + 12)
    x = frame.width - frame.right + 10
    for y, text, colour, shape in labels:
        body.append(
            _marker(shape, x, y - 3.5, colour) + f'<text x="{x + 8}" y="{y:.1f}" fill="{colour}">'
            f"{esc(text)}</text>"
        )
    return _svg(frame, title, body)


_PATTERNS = (
    '<defs><pattern id="hatch-uid" width="6" height="6" patternUnits="userSpaceOnUse"'
    ' patternTransform="rotate(45)"><rect width="6" height="6" fill="#D55E00"/>'
    '<line x1="0" y1="0" x2="0" y2="6" stroke="#fff" stroke-width="2"/></pattern>'
    '<pattern id="dots-uid" width="5" height="5" patternUnits="userSpaceOnUse">'
    '<rect width="5" height="5" fill="#E69F00"/><circle cx="2.5" cy="2.5" r="1.2" fill="#fff"/>'
    '</pattern><pattern id="cross-uid" width="6" height="6" patternUnits="userSpaceOnUse">'
    '<rect width="6" height="6" fill="#56B4E9"/><path d="M0 0L6 6M6 0L0 6" stroke="#fff"'
    ' stroke-width="1"/></pattern></defs>'
)


def bar_chart(frame: Frame, runs: Sequence[RunSends], *, title: str, uid: int) -> str:
    """Stacked bars per run (accepted, rejected by LINE, expired, left pending) under a legend,
    each part with its own fill pattern; ``uid`` keeps the pattern ids of a page apart."""

    def fill(colour: str, pattern: str | None) -> str:
        return f"url(#{pattern}-{uid})" if pattern else colour

    def swatch(colour: str, pattern: str | None) -> Callable[[float, float], str]:
        return lambda x, y: (
            f'<rect x="{x - 6}" y="{y - 6}" width="12" height="12"'
            f' fill="{fill(colour, pattern)}" stroke="#333"/>'
        )

    frame = _legend(frame, [(label, swatch(c, p)) for label, c, p in _SEND_PARTS])
    body = [frame.legend, *frame.axes("run (UTC start)")]
    span = frame.width - frame.left - frame.right
    width = max(2.0, min(24.0, span / max(1, len(runs)) * 0.7))
    for i, run in enumerate(runs):
        base = 0
        note = ", ".join(
            f"{label} {n:,}" for (label, _, _), n in zip(_SEND_PARTS, run.parts(), strict=True)
        )
        for (_, colour, pattern), n in zip(_SEND_PARTS, run.parts(), strict=True):
            if n:
                top, bottom = frame.y(base + n), frame.y(base)
                body.append(
                    f'<rect x="{frame.x(i) - width / 2:.1f}" y="{top:.1f}" width="{width:.1f}"'
                    f' height="{max(0.5, bottom - top):.1f}" fill="{fill(colour, pattern)}"'
                    ' stroke="#333"'
                    f' stroke-width="0.4"><title>{esc(_seconds(run.started_at))}: {esc(note)}'
                    "</title></rect>"
                )
            base += n
    return _svg(frame, title, body, _PATTERNS.replace('-uid"', f'-{uid}"'))


# -- the page ------------------------------------------------------------------------------------
def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _seconds(value: dt.datetime) -> str:
    return utc_text(value.replace(microsecond=0)) or ""


def _short(value: dt.datetime | None) -> str:
    # with the year: the coverage history spans 400 days, so 12-31 and 01-01 recur
    return value.strftime("%Y-%m-%d %H:%M") if value else "?"


def _table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _build_label(build: BuildCoverage) -> str:
    return f"build {utc_text(build.built_at)}"


def _shares_section(history: CoverageHistory) -> list[str]:
    out = [
        "<h2>Identifier shares</h2>",
        '<p class="note">Per build: the share of sendable conversions that carry each user'
        " identifier. A share that falls to a fraction of its usual level after a site release"
        " (a click id parameter dropped from the landing URLs) is what to look for.</p>",
    ]
    builds = history.builds
    frame = Frame([_short(b.built_at) for b in builds], 1.0, percent)
    for name in history.event_names:
        events = [b.events.get(name) for b in builds]
        series = []
        rows = []
        for identifier in history.identifiers:
            values = [e.share(identifier) if e else None for e in events]
            notes = [
                f"{percent(v)} ({e.identifiers.get(identifier, 0):,} of {e.sendable:,}),"
                f" {_build_label(b)}"
                if e and v is not None
                else ""
                for e, v, b in zip(events, values, builds, strict=True)
            ]
            series.append(Series(identifier, values, notes))
            known = [v for v in values if v is not None]
            latest = events[-1]
            rows.append(
                [
                    identifier,
                    f"{latest.identifiers.get(identifier, 0):,}" if latest else "-",
                    percent(latest.share(identifier)) if latest else "-",
                    percent(sum(known) / len(known)) if known else "-",
                    percent(min(known)) if known else "-",
                ]
            )
        title = f"{name}: identifier shares over {_count(len(builds), 'build')}"
        chart = line_chart(frame, series, title=title, x_title="build (UTC)")
        out.append(f"<figure><figcaption>{esc(title)}</figcaption>{chart}</figure>")
        out.append(
            _table(["identifier", "latest count", "latest share", "average", "lowest"], rows)
        )
    return out


def _rejections_section(history: CoverageHistory) -> list[str]:
    latest = history.latest
    out = ["<h2>Rejections by reason</h2>"]
    if latest is None:
        return out
    out.append(f"<h3>Latest build ({esc(utc_text(latest.built_at))})</h3>")
    out.append(
        _table(
            ["event name", "in window", "sendable", "rejected", *history.reasons],
            [
                [
                    e.event_name,
                    f"{e.conversions_in_window:,}",
                    f"{e.sendable:,}",
                    f"{e.rejected:,}",
                    *(f"{e.rejected_by_reason.get(r, 0):,}" for r in history.reasons),
                ]
                for e in latest.events.values()
            ],
        )
    )
    out.append(
        f"<h3>Over the last {_count(len(history.builds), 'build')}</h3>"
        '<p class="note">Reasons with no rejection in these builds are left out.</p>'
    )
    builds = history.builds
    for name in history.event_names:
        events = [b.events.get(name) for b in builds]
        peak = max(
            (e.rejected_by_reason.get(r, 0) for e in events if e for r in history.reasons),
            default=0,
        )
        frame = Frame([_short(b.built_at) for b in builds], _nice_max(peak), lambda v: f"{v:,.0f}")
        seen = [
            r for r in history.reasons if any(e and e.rejected_by_reason.get(r) for e in events)
        ]
        title = f"{name}: rejected conversions by reason"
        if not seen:
            out.append(f"<p>{esc(name)}: no conversion rejected in these builds.</p>")
            continue
        series = [
            Series(
                reason,
                [e.rejected_by_reason.get(reason, 0) if e else None for e in events],
                [
                    f"{e.rejected_by_reason.get(reason, 0):,}, {_build_label(b)}" if e else ""
                    for e, b in zip(events, builds, strict=True)
                ],
            )
            for reason in seen
        ]
        chart = line_chart(frame, series, title=title, x_title="build (UTC)")
        out.append(f"<figure><figcaption>{esc(title)}</figcaption>{chart}</figure>")
    return out


def _sends_section(runs: dict[tuple[str, str], list[RunSends]], limit: int) -> list[str]:
    out = [
        "<h2>Sends per run</h2>",
        f'<p class="note">The last {limit} runs of <code>sender push</code> at each destination'
        " (connection checks with <code>--test</code> left out).</p>",
    ]
    if not runs:
        out.append("<p>Nothing sent yet.</p>")
        return out
    for uid, ((endpoint, tag_id), rows) in enumerate(runs.items()):
        peak = max((sum(r.parts()) for r in rows), default=0)
        frame = Frame(
            [_short(r.started_at) for r in rows],
            _nice_max(peak),
            lambda v: f"{v:,.0f}",
            bars=True,
            right=24,
        )
        title = f"{endpoint}, LINE Tag {tag_id}"
        out.append(f"<h3>{esc(title)}</h3>")
        out.append(
            f"<figure>{bar_chart(frame, rows, title=f'Sends per run: {title}', uid=uid)}</figure>"
        )
        out.append(
            _table(
                ["started (UTC)", "outcome", "exit", *(p[0] for p in _SEND_PARTS)],
                [
                    [
                        _seconds(r.started_at),
                        r.outcome or "never finished",
                        "" if r.exit_code is None else r.exit_code,
                        *(f"{n:,}" for n in r.parts()),
                    ]
                    for r in reversed(rows)
                ],
            )
        )
    return out


def render(con: duckdb.DuckDBPyConnection, *, builds: int = DEFAULT_BUILDS) -> str:
    """The whole page, from the database."""
    history = read_coverage(con, builds=builds)
    runs = read_runs(con, builds)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    parts = [
        _PAGE_START,
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>line-capi: coverage and sends</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>line-capi: coverage and sends</h1>",
        f'<p class="note">Written {esc(utc_text(now.replace(microsecond=0)))} by'
        " <code>sender report</code>. Counts only: no personal data.</p>",
    ]
    if history is None or history.latest is None:
        parts.append(f"<h2>Identifier shares</h2><p>{esc(NO_COVERAGE.capitalize())}.</p>")
    else:
        latest = history.latest
        sample = " (the bundled sample)" if latest.is_sample else ""
        parts.append(
            f"<p>{_count(len(history.builds), 'build')} in <code>{esc(COVERAGE_TABLE)}</code>,"
            f" the latest built {esc(utc_text(latest.built_at))} for conversions up to"
            f" {esc(utc_text(latest.as_of))}{esc(sample)}.</p>"
        )
        parts.extend(_shares_section(history))
        parts.extend(_rejections_section(history))
    parts.extend(_sends_section(runs, builds))
    parts.append("</body></html>\n")
    return "\n".join(parts)


_PAGE_START = "<!doctype html>"


def _refuse_to_replace(con: duckdb.DuckDBPyConnection, output: Path) -> None:
    """A report replaces an earlier report only: ``-o`` naming the database (its ledger gone), the
    run log or an export file would lose what no report gives back."""
    (database,) = con.execute(
        "select path from duckdb_databases() where database_name = current_database()"
    ).fetchone()
    if database and output.exists() and output.resolve() == Path(database).resolve():
        raise ConfigError(f"--output {output} is the database: name the HTML file to write")
    if not output.is_file() or output.parts[1:2] in (("dev",), ("proc",)):
        return  # none yet, or a device, a pipe or a descriptor (-o /dev/stdout): never read
    try:
        with output.open("rb") as existing:
            start = existing.read(len(_PAGE_START))
    except OSError:
        return  # cannot be read: writing it says why
    if start and start.decode("ascii", "replace").lower() != _PAGE_START:
        raise ConfigError(
            f"--output {output} exists and is not a report: name a new HTML file (a report"
            " replaces only an earlier report)"
        )


def write_report(
    con: duckdb.DuckDBPyConnection, output: Path, *, builds: int = DEFAULT_BUILDS
) -> int:
    """Render the page into ``output`` (replaced, readable by its owner only); its size in bytes.
    A file that cannot be written is a ConfigError (a bad --output)."""
    if str(output) == ".":  # -o "" (an unset $OUT in a script) is Path(".")
        raise ConfigError("--output is empty or '.': name the HTML file to write")
    if output.name == ".." or output.is_dir():
        raise ConfigError(f"--output {output} is a folder: name the HTML file to write")
    _refuse_to_replace(con, output)
    page = render(con, builds=builds)
    try:
        write_private_text(output, page)
    except OSError as exc:
        raise ConfigError(f"cannot write {output}: {exc.strerror}") from None
    return len(page.encode())

"""The benchmark: one command, one table, every figure measured in the same run.

    python bench/run.py                       # sizes 100k,1M, a 30M-key ledger (about 15 min)
    python bench/run.py --quick               # a 10k smoke run (about a minute)
    python bench/run.py --sizes 100k --ledger-keys 3M

For each size N (conversion rows; page views 10 N): generate a synthetic KARTE export
(bench/generate.py, reused when bench/out/data-N exists for the same N), then, each in its own
process so that its wall time, CPU time and peak memory are its own, each ``--repeat`` times
(3 by default; the median counts):

- ``dbt seed`` (untimed: loads the seed, parses the project once), then ``dbt run`` (the models
  only) on a fresh DuckDB file;
- the hourly build as ``sender run`` runs it, ``dbt build --exclude-resource-type unit_test``
  (models and data tests), on the database the previous build left, as the hourly job finds it;
- the SQL floor (bench/floor.py): one statement over the same four Parquet files;
- ``sender push`` (ledger on, empty at start) of the payload rows to a local 202 sink
  (bench/sink.py) on a fresh copy of the database, and the transport floor
  (bench/transport_floor.py): the same payload texts, read, joined by Arrow and posted by a bare
  loop on one requests.Session; both rates are read at the sink;
- ``sender push`` again, on a copy whose ledger holds ``--ledger-keys`` keys of earlier runs
  (bench/prefill_ledger.py), against the push with the empty ledger.

Peak memory is the peak RSS of the measured process (os.wait4's ru_maxrss; dbt, DuckDB and the
sender each run in one process). CPU seconds are user + system time of the process and its
children: unlike wall time they barely move when other jobs share the cores, so both are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from sender.scheduled_run import BUILD_ARGS  # the hourly job's dbt build

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402 - bench/ is not a package
import sink as sink_module  # noqa: E402

BIN = Path(sys.executable).parent
DBT = str(BIN / "dbt")
SENDER = str(BIN / "sender")
TAG_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


@dataclass
class Measure:
    """One measured process: wall seconds, CPU seconds, peak RSS in MiB, its output; and, for a
    process that posts to the sink, what the sink saw."""

    wall: float
    cpu: float
    peak_mib: float
    returncode: int
    stdout: str = ""
    stderr: str = ""
    sink_seconds: float = 0.0
    sink_bytes: int = 0


def measure(
    command: list[str],
    *,
    env: dict | None = None,
    cwd: Path = ROOT,
    log: Path | None = None,
    sink: sink_module.Sink | None = None,
) -> Measure:
    """Run a command to completion; its own rusage through os.wait4 (no sampling, no psutil)."""
    log = log or Path(os.devnull)
    out_path = log.with_suffix(".out") if log != Path(os.devnull) else None
    err_path = log.with_suffix(".err") if log != Path(os.devnull) else None
    out = open(out_path, "w+") if out_path else subprocess.DEVNULL  # noqa: SIM115
    err = open(err_path, "w+") if err_path else subprocess.DEVNULL  # noqa: SIM115
    if sink is not None:
        sink.stats.reset()
    start = time.perf_counter()
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=out,
        stderr=err,
        stdin=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    texts = []
    for handle in (out, err):
        if handle is subprocess.DEVNULL:
            texts.append("")
        else:
            handle.seek(0)
            texts.append(handle.read())
            handle.close()
    result = Measure(
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        proc.returncode,
        texts[0],
        texts[1],
    )
    if sink is not None and sink.stats.first is not None:
        result.sink_seconds = sink.stats.last - sink.stats.first
        result.sink_bytes = sink.stats.bytes
    return result


def must(m: Measure, what: str) -> Measure:
    if m.returncode != 0:
        tail = "\n".join((m.stdout + m.stderr).strip().splitlines()[-25:])
        raise SystemExit(f"{what} failed (exit {m.returncode}):\n{tail}")
    return m


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * factor)


def label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def median_of(items: list, key):
    """The item with the median key (the lower middle one for an even count)."""
    ordered = sorted(items, key=key)
    return ordered[(len(ordered) - 1) // 2]


@dataclass
class Runs:
    """The --repeat runs of one measured command; ``key`` picks the median run."""

    runs: list = field(default_factory=list)

    def add(self, m: Measure, **extra) -> None:
        self.runs.append((m, extra))

    def median(self, key) -> tuple[Measure, dict]:
        return median_of(self.runs, key=lambda run: key(*run))

    def values(self, key) -> list[float]:
        return [key(m, extra) for m, extra in self.runs]

    def __bool__(self) -> bool:
        return bool(self.runs)


@dataclass
class SizeResult:
    n: int
    generate_s: float = 0.0
    generated: bool = False
    conversions_in_window: int = 0
    payload_rows: int = 0
    dbt_run: Runs = field(default_factory=Runs)
    hourly_build: Runs = field(default_factory=Runs)
    floor: Runs = field(default_factory=Runs)
    sender: Runs = field(default_factory=Runs)
    transport: Runs = field(default_factory=Runs)
    ledger_sender: Runs = field(default_factory=Runs)
    ledger_keys: int = 0
    prefill_s: float = 0.0


def export_for(
    workdir: Path, n: int, as_of: str | None, regenerate: bool
) -> tuple[Path, str, float, bool]:
    """bench/out/data-N: reused when it was made for the same N (and --as-of, when given)."""
    directory = workdir / f"data-{n}"
    meta_path = directory / "meta.json"
    if not regenerate and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("conversions") == n and (as_of is None or meta.get("as_of") == as_of):
            return directory, meta["as_of"], meta["seconds"], False
    as_of = as_of or generate.default_as_of()
    # in a process of its own, as the ledger prefill: a measured process's ru_maxrss counts this
    # one's memory at the time it was forked, and generating 1M rows takes hundreds of MiB
    m = must(
        measure(
            [
                sys.executable,
                str(HERE / "generate.py"),
                str(directory),
                "-n",
                str(n),
                "--as-of",
                as_of,
            ],
            log=workdir / f"generate-{n}",
        ),
        "generate export",
    )
    seconds = m.wall
    meta_path.write_text(json.dumps({"conversions": n, "as_of": as_of, "seconds": seconds}))
    return directory, as_of, seconds, True


def dbt_command(
    verb: str, run_dir: Path, database: Path, export_dir: Path, as_of: str, *extra: str
) -> tuple[list[str], dict]:
    profiles = run_dir / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "profiles.example.yml", profiles / "profiles.yml")
    command = [
        DBT,
        verb,
        "--project-dir",
        str(ROOT),
        "--profiles-dir",
        str(profiles),
        "--target-path",
        str(run_dir / "target"),
        "--log-path",
        str(run_dir / "logs"),
        "--vars",
        json.dumps({"karte_export_dir": str(export_dir), "as_of": as_of}),
        *extra,
    ]
    env = {
        "LINE_CAPI_DUCKDB": str(database),
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
    }
    return command, env


def model_timings(run_dir: Path) -> dict[str, float]:
    """Seconds per model, and "(elapsed)": dbt's own time from the first model to the last."""
    results = json.loads((run_dir / "target" / "run_results.json").read_text())
    timings = {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results["results"]}
    timings["(elapsed)"] = results["elapsed_time"]
    (run_dir / "dbt-run-timings.json").write_text(json.dumps(timings, indent=1))
    return timings


def copy_synced(source: Path, target: Path) -> None:
    """Copy a database file and flush it to disk, so that the measured process does not pay
    for writing the copy back (its first fsync of the file would)."""
    shutil.copy(source, target)
    with open(target, "rb+") as handle:
        os.fsync(handle.fileno())


def remove_database(path: Path) -> None:
    for leftover in (path, Path(str(path) + ".wal")):
        leftover.unlink(missing_ok=True)


def bench_size(n: int, args: argparse.Namespace, sink: sink_module.Sink, say) -> SizeResult:
    result = SizeResult(n)
    export_dir, as_of, result.generate_s, result.generated = export_for(
        args.workdir, n, args.as_of, args.regenerate
    )
    say(
        f"[{label(n)}] export in {export_dir} ({'generated' if result.generated else 'reused'}:"
        f" {result.generate_s:.1f} s, as_of {as_of})"
    )
    run_dir = args.workdir / f"run-{n}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    database = run_dir / "line_capi.duckdb"

    if not args.no_dbt:
        for _ in range(args.repeat):
            remove_database(database)
            # Untimed: loads the seed and parses the project once, so the timed commands below
            # use dbt's partial parsing as an hourly job with a kept target/ folder does.
            command, env = dbt_command("seed", run_dir, database, export_dir, as_of)
            must(measure(command, env=env, log=run_dir / "dbt-seed"), "dbt seed")
            command, env = dbt_command("run", run_dir, database, export_dir, as_of)
            run = must(measure(command, env=env, log=run_dir / "dbt-run"), "dbt run")
            result.dbt_run.add(run, timings=model_timings(run_dir))
            say(f"[{label(n)}] dbt run {run.wall:.1f} s")
        if not args.no_build:
            # the hourly job: each build replaces the tables the previous one left
            for _ in range(args.repeat):
                command, env = dbt_command(
                    *BUILD_ARGS[:1], run_dir, database, export_dir, as_of, *BUILD_ARGS[1:]
                )
                build = must(measure(command, env=env, log=run_dir / "dbt-build"), "dbt build")
                result.hourly_build.add(build)
                say(f"[{label(n)}] hourly dbt build {build.wall:.1f} s")
        with duckdb.connect(str(database), read_only=True) as con:
            count = "select count(*) from "
            result.payload_rows = con.execute(count + "line_capi_payload").fetchone()[0]
            rejected = con.execute(count + "line_capi_rejected").fetchone()[0]
            result.conversions_in_window = result.payload_rows + rejected

    if not args.no_floor:
        floor_database = run_dir / "floor.duckdb"
        for _ in range(args.repeat):
            floor = must(
                measure(
                    [sys.executable, str(HERE / "floor.py"), str(export_dir), str(floor_database)],
                    log=run_dir / "floor",
                ),
                "floor",
            )
            seconds = json.loads(floor.stdout)["seconds"]
            result.floor.add(floor, seconds=seconds)
            say(f"[{label(n)}] floor {seconds:.1f} s")

    if not args.no_sender and not args.no_dbt:
        bench_sender(result, run_dir, database, args, sink, say)
    for leftover in run_dir.glob("*.duckdb*"):
        if not args.keep:
            leftover.unlink()
    return result


def sender_env(database: Path, endpoint: str) -> dict:
    return {
        "LINE_TAG_ID": TAG_ID,
        "LINE_ACCESS_TOKEN": "bench-token",
        "LINE_CHANNEL_ID": "1234567890",
        "LINE_CAPI_DUCKDB": str(database),
        "LINE_CAPI_ENDPOINT": endpoint,
    }


def push(
    template: Path, copy: Path, endpoint: str, args: argparse.Namespace, sink, log: Path
) -> tuple[Measure, dict]:
    """``sender push`` on a fresh copy of ``template``: its measure and its JSON summary."""
    remove_database(copy)
    copy_synced(template, copy)
    command = [
        SENDER,
        "push",
        "--json",
        "--quiet",
        "--batch-size",
        str(args.batch_size),
        "--concurrency",
        str(args.concurrency),
    ]
    m = must(measure(command, env=sender_env(copy, endpoint), log=log, sink=sink), "sender push")
    try:
        summary = json.loads(m.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        summary = {}
    return m, summary


def bench_sender(
    result: SizeResult,
    run_dir: Path,
    database: Path,
    args: argparse.Namespace,
    sink: sink_module.Sink,
    say,
) -> None:
    """The pushes and the transport floor, taking turns in each round, so that a change of the
    machine's load falls on all of them alike."""
    n = result.n
    endpoint = f"http://127.0.0.1:{sink.port}"
    copy = run_dir / "sender.duckdb"
    template = run_dir / "ledger.duckdb"
    if args.ledger_keys:
        remove_database(template)
        copy_synced(database, template)
        # in a process of its own: a measured process's ru_maxrss counts this one's memory at
        # the time it was forked, so this one must stay small
        filled = must(
            measure(
                [
                    sys.executable,
                    str(HERE / "prefill_ledger.py"),
                    str(template),
                    endpoint,
                    TAG_ID,
                    "--keys",
                    str(args.ledger_keys),
                ],
                log=run_dir / "prefill",
            ),
            "ledger prefill",
        )
        filled = json.loads(filled.stdout)
        result.ledger_keys, result.prefill_s = args.ledger_keys, filled["seconds"]
        say(f"[{label(n)}] ledger of {label(args.ledger_keys)} keys in {filled['seconds']:.1f} s")
    for _ in range(args.repeat):
        m, summary = push(database, copy, endpoint, args, sink, run_dir / "sender")
        result.sender.add(m, summary=summary)
        say(
            f"[{label(n)}] sender push {m.wall:.1f} s (at the sink {m.sink_seconds:.2f} s),"
            f" peak {m.peak_mib:.0f} MiB"
        )
        floor = must(
            measure(
                [
                    sys.executable,
                    str(HERE / "transport_floor.py"),
                    str(database),
                    f"{endpoint}/v1/{TAG_ID}/events",
                    "--batch-size",
                    str(args.batch_size),
                ],
                log=run_dir / "transport",
                sink=sink,
            ),
            "transport floor",
        )
        result.transport.add(floor, out=json.loads(floor.stdout))
        say(f"[{label(n)}] transport floor at the sink {floor.sink_seconds:.2f} s")
        if args.ledger_keys:
            m, summary = push(template, copy, endpoint, args, sink, run_dir / "sender-ledger")
            result.ledger_sender.add(m, summary=summary)
            say(f"[{label(n)}] sender push, full ledger {m.wall:.1f} s, peak {m.peak_mib:.0f} MiB")
    remove_database(template)
    remove_database(copy)


# -- the table -------------------------------------------------------------------------------
def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def listed(values: list[float], unit: str = "", digits: int = 1) -> str:
    if len(values) < 2:
        return ""
    return f"; median of {len(values)}: " + ", ".join(f"{v:.{digits}f}{unit}" for v in values)


def peaks_note(peaks: list[float]) -> str:
    return "; peak MiB " + ", ".join(f"{p:.0f}" for p in peaks) if len(peaks) > 1 else ""


def accepted(summary: dict) -> int:
    return int(summary.get("accepted", 0))


def sink_rate(m: Measure, events: int) -> float:
    return events / m.sink_seconds if m.sink_seconds else 0.0


def sender_rows(r: SizeResult, args, row, size: str) -> None:
    """The sender's rows: push with an empty ledger, the transport floor, the full ledger."""
    push_m, push_x = r.sender.median(lambda m, x: -sink_rate(m, accepted(x["summary"])))
    events = accepted(push_x["summary"])
    push_rate = sink_rate(push_m, events)
    peaks = r.sender.values(lambda m, x: m.peak_mib)
    peak = median_of(peaks, key=lambda p: p)
    wall_m, wall_x = r.sender.median(lambda m, x: m.wall)
    row(
        size,
        f"`sender push` ({events:,} events, empty ledger)",
        f"{wall_m.wall:.1f}",
        f"{wall_m.cpu:.1f}",
        f"{peak:.0f}",
        f"{push_rate:,.0f} ev/s at the sink",
        f"{push_m.sink_bytes / push_m.sink_seconds / 1e6:.0f} MB/s at the sink, first request to"
        f" last answer ({push_m.sink_seconds:.2f} s); whole process {events / wall_m.wall:,.0f}"
        f" ev/s; batch {args.batch_size}, concurrency {args.concurrency}"
        + listed(r.sender.values(lambda m, x: sink_rate(m, accepted(x["summary"])) / 1e3), "k")
        + peaks_note(peaks),
    )
    if r.transport:
        floor_m, floor_x = r.transport.median(lambda m, x: -sink_rate(m, x["out"]["events"]))
        floor_rate = sink_rate(floor_m, floor_x["out"]["events"])
        row(
            size,
            "transport floor (read, join, post on one session)",
            f"{floor_m.wall:.1f}",
            f"{floor_m.cpu:.1f}",
            "",
            f"{floor_rate:,.0f} ev/s at the sink",
            f"{floor_m.sink_bytes / floor_m.sink_seconds / 1e6:.0f} MB/s at the sink"
            f" ({floor_m.sink_seconds:.2f} s); {floor_x['out']['requests']} requests"
            + listed(r.transport.values(lambda m, x: sink_rate(m, x["out"]["events"]) / 1e3), "k"),
        )
        row(
            size,
            "**sender / transport floor** (at the sink)",
            ratio(push_rate, floor_rate),
            "",
            "",
            "",
            "target >= 0.8 at 1M; each the median of its runs",
        )
    if r.ledger_sender:
        full_m, full_x = r.ledger_sender.median(lambda m, x: m.wall)
        full_events = accepted(full_x["summary"])
        full_peaks = r.ledger_sender.values(lambda m, x: m.peak_mib)
        full_peak = median_of(full_peaks, key=lambda p: p)
        row(
            size,
            f"`sender push` ({full_events:,} events, ledger of {label(r.ledger_keys)} keys)",
            f"{full_m.wall:.1f}",
            f"{full_m.cpu:.1f}",
            f"{full_peak:.0f}",
            f"{full_events / full_m.wall:,.0f} ev/s",
            f"whole process; ledger filled in {r.prefill_s:.0f} s (bench/prefill_ledger.py)"
            + listed(r.ledger_sender.values(lambda m, x: m.wall), " s")
            + peaks_note(full_peaks),
        )
        row(
            size,
            f"**ledger of {label(r.ledger_keys)} keys / empty ledger**",
            ratio(full_events / full_m.wall, events / wall_m.wall),
            "",
            ratio(full_peak, peak),
            "",
            "events/s of the whole process (target >= 0.9); peak memory (target <= 1.2)",
        )


def render(results: list[SizeResult], args: argparse.Namespace, alone: dict | None) -> str:
    lines: list[str] = []

    def row(*cells: str) -> None:
        lines.append("| " + " | ".join(cells) + " |")

    load = os.getloadavg()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines.append(
        f"machine: {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, duckdb {duckdb.__version__}; load average at the "
        f"end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min); bench/run.py itself"
        f" peaked at {own:.0f} MiB (a measured process's peak includes it)"
    )
    if alone:
        lines.append("")
        lines.append(
            f"the sink alone (`python bench/sink.py --alone`: prebuilt requests from raw sockets):"
            f" {alone['mb_per_s_1']:,.0f} MB/s on 1 connection, {alone['mb_per_s_4']:,.0f} MB/s"
            " on 4"
        )
    lines.append("")
    row("size (conversions / page views)", "what", "wall s", "CPU s", "peak MiB", "rate", "notes")
    row(*["---"] * 7)
    for r in results:
        size = f"{label(r.n)} / {label(r.n * 10)}"
        row(
            size,
            "generate export (Parquet)",
            f"{r.generate_s:.1f}",
            "",
            "",
            "",
            "reused from an earlier run" if not r.generated else "",
        )
        floor_m = floor_s = None
        if r.floor:
            floor_m, floor_x = r.floor.median(lambda m, x: x["seconds"])
            floor_s = floor_x["seconds"]
        if r.dbt_run:
            m, x = r.dbt_run.median(lambda m, x: m.wall)
            inside = x["timings"]["(elapsed)"]
            row(
                size,
                "`dbt run` (models)",
                f"{m.wall:.1f}",
                f"{m.cpu:.1f}",
                f"{m.peak_mib:.0f}",
                f"{r.n / m.wall:,.0f} rows/s",
                f"{r.conversions_in_window:,} conversions in window, {r.payload_rows:,} payloads;"
                f" dbt's own timer {inside:.1f} s" + listed(r.dbt_run.values(lambda m, x: m.wall)),
            )
        if r.hourly_build:
            m, _ = r.hourly_build.median(lambda m, x: m.wall)
            row(
                size,
                "hourly build: `dbt build --exclude-resource-type unit_test`",
                f"{m.wall:.1f}",
                f"{m.cpu:.1f}",
                f"{m.peak_mib:.0f}",
                f"{r.n / m.wall:,.0f} rows/s",
                "models and data tests, the whole process, on the database the previous build"
                " left" + listed(r.hourly_build.values(lambda m, x: m.wall)),
            )
        if floor_m is not None:
            row(
                size,
                "SQL floor (one statement)",
                f"{floor_s:.1f}",
                f"{floor_m.cpu:.1f}",
                f"{floor_m.peak_mib:.0f}",
                f"{r.n / floor_s:,.0f} rows/s",
                f"process {floor_m.wall:.1f} s" + listed(r.floor.values(lambda m, x: x["seconds"])),
            )
        if r.hourly_build and floor_m is not None:
            m, _ = r.hourly_build.median(lambda m, x: m.wall)
            row(
                size,
                "**hourly build / floor**",
                ratio(m.wall, floor_s),
                ratio(m.cpu, floor_m.cpu),
                "",
                "",
                "target <= 3.5 at 1M",
            )
        if r.dbt_run and floor_m is not None:
            m, x = r.dbt_run.median(lambda m, x: m.wall)
            row(
                size,
                "`dbt run` / floor",
                ratio(m.wall, floor_s),
                ratio(m.cpu, floor_m.cpu),
                "",
                "",
                f"the models alone; dbt's own timer / floor: "
                f"{ratio(x['timings']['(elapsed)'], floor_s)}",
            )
        if r.sender:
            sender_rows(r, args, row, size)
    if len(results) >= 2:
        small, big = results[0], results[-1]
        scale = f"{label(big.n)}/{label(small.n)}"
        if small.dbt_run and big.dbt_run:
            big_m, _ = big.dbt_run.median(lambda m, x: m.wall)
            small_m, _ = small.dbt_run.median(lambda m, x: m.wall)
            row(
                scale,
                "**dbt run growth**",
                ratio(big_m.wall, small_m.wall),
                ratio(big_m.cpu, small_m.cpu),
                ratio(big_m.peak_mib, small_m.peak_mib),
                "",
                f"linear = {big.n / small.n:.0f}; target <= {1.2 * big.n / small.n:.0f}",
            )
        if small.floor and big.floor:
            big_m, big_x = big.floor.median(lambda m, x: x["seconds"])
            small_m, small_x = small.floor.median(lambda m, x: x["seconds"])
            row(
                scale,
                "floor growth",
                ratio(big_x["seconds"], small_x["seconds"]),
                ratio(big_m.cpu, small_m.cpu),
                "",
                "",
                "",
            )
        if small.sender and big.sender:
            row(
                scale,
                "**sender peak memory**",
                "",
                "",
                ratio(
                    median_of(big.sender.values(lambda m, x: m.peak_mib), key=lambda p: p),
                    median_of(small.sender.values(lambda m, x: m.peak_mib), key=lambda p: p),
                ),
                "",
                "flat = 1; target <= 1.2",
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="100k,1M", help="conversion counts, smallest first (default 100k,1M)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: --sizes 10k --ledger-keys 300k"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=HERE / "out",
        help="exports, databases and logs (default bench/out, git-ignored)",
    )
    parser.add_argument("--as-of", default=None, help="fix the generated exports' as_of")
    parser.add_argument("--regenerate", action="store_true", help="never reuse an export")
    parser.add_argument("--no-dbt", action="store_true", help="skip dbt (and the sender)")
    parser.add_argument("--no-build", action="store_true", help="skip the hourly dbt build")
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs of each measured command per size; the median counts"
        " (default 3, 1 with --quick)",
    )
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--no-sender", action="store_true")
    parser.add_argument(
        "--ledger-keys",
        default="30M",
        help="keys of earlier runs in the ledger of the second push (default 30M; 0: no such push)",
    )
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the databases in --workdir")
    parser.add_argument(
        "--markdown", type=Path, default=None, help="also write the table to this file"
    )
    args = parser.parse_args(argv)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.ledger_keys = parse_size("300k" if args.quick else args.ledger_keys)
    sizes = [10_000] if args.quick else [parse_size(s) for s in args.sizes.split(",") if s]
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    alone = None
    if not args.no_sender:
        alone = sink_module.alone(1_000_000_000 if not args.quick else 200_000_000, 3_700_000)
        say(
            f"sink alone: {alone['mb_per_s_1']:,.0f} MB/s (1 connection), "
            f"{alone['mb_per_s_4']:,.0f} MB/s (4)"
        )
    with sink_module.Sink() as sink:
        results = [bench_size(n, args, sink, say) for n in sizes]
    table = render(results, args, alone)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

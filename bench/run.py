"""The benchmark of issue 4: one command, one table, every figure measured in the same run.

    python bench/run.py                       # sizes 100k,1M (about 6-8 minutes on 2 cores)
    python bench/run.py --quick               # a 10k smoke run (well under a minute)
    python bench/run.py --sizes 10k,100k --no-sender

For each size N (conversion rows; page views 10 N): generate a synthetic KARTE export
(bench/generate.py, reused when bench/out/data-N exists for the same N), then, each in its own
process so that its wall time, CPU time and peak memory are its own:

- ``dbt seed`` (untimed: loads the seed, parses the project once), ``dbt run`` (the models
  only) on a fresh DuckDB file (--repeat times, 3 by default: the median run counts), then
  ``dbt test --exclude test_type:unit`` (the data tests: contract, hashes, payload patterns,
  accounting), then
  ``dbt build`` (seed, models, unit and data tests: the hourly job) on another fresh file;
- the SQL floor (bench/floor.py): one statement over the same four Parquet files (--repeat
  times; the median counts);
- ``sender push`` (ledger on) of the payload rows to a local 202 sink (bench/sink.py), on a copy
  of the database, and the transport floor (bench/transport_floor.py): the same bytes posted in
  the same batches by a bare loop on one requests.Session (each --repeat times; the medians
  count, peak memory included).

Peak memory is the peak RSS of the measured process (os.wait4's ru_maxrss: the largest process
of its tree; dbt, DuckDB and the sender each run in one process). CPU seconds are user + system
time of the process and its children: unlike wall time they barely move when other jobs share
the two cores, so both are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402 - bench/ is not a package

BIN = Path(sys.executable).parent
DBT = str(BIN / "dbt")
SENDER = str(BIN / "sender")
TAG_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


@dataclass
class Measure:
    """One measured process: wall seconds, CPU seconds, peak RSS in MiB, its stdout."""

    wall: float
    cpu: float
    peak_mib: float
    returncode: int
    stdout: str = ""
    stderr: str = ""


def measure(
    command: list[str], *, env: dict | None = None, cwd: Path = ROOT, log: Path | None = None
) -> Measure:
    """Run a command to completion; its own rusage through os.wait4 (no sampling, no psutil)."""
    log = log or Path(os.devnull)
    out_path = log.with_suffix(".out") if log != Path(os.devnull) else None
    err_path = log.with_suffix(".err") if log != Path(os.devnull) else None
    out = open(out_path, "w+") if out_path else subprocess.DEVNULL  # noqa: SIM115
    err = open(err_path, "w+") if err_path else subprocess.DEVNULL  # noqa: SIM115
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
    return Measure(
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        proc.returncode,
        texts[0],
        texts[1],
    )


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


@dataclass
class SizeResult:
    n: int
    generate_s: float = 0.0
    generated: bool = False
    conversions_in_window: int = 0
    payload_rows: int = 0
    dbt_run: Measure | None = None
    dbt_test: Measure | None = None
    dbt_build: Measure | None = None
    dbt_model_s: dict = field(default_factory=dict)
    dbt_run_walls: list = field(default_factory=list)
    floor: Measure | None = None
    floor_statement_s: float = 0.0
    floor_walls: list = field(default_factory=list)
    sender: Measure | None = None
    sender_peak_mib: float = 0.0
    sender_peaks: list = field(default_factory=list)
    sender_walls: list = field(default_factory=list)
    transport_walls: list = field(default_factory=list)
    sender_summary: dict = field(default_factory=dict)
    sender_bytes: int = 0
    transport: Measure | None = None
    transport_result: dict = field(default_factory=dict)


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
    seconds = generate.generate(directory, n, as_of)["total"]
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


def repeated(command: list[str], log: Path, times: int, what: str) -> list[tuple[Measure, dict]]:
    """Run a script that prints one JSON object, `times` times: [(its measure, its JSON)]."""
    runs = []
    for _ in range(times):
        run = must(measure(command, log=log), what)
        runs.append((run, json.loads(run.stdout)))
    return runs


def median_of(items: list, key):
    """The item with the median key (the lower middle one for an even count)."""
    ordered = sorted(items, key=key)
    return ordered[(len(ordered) - 1) // 2]


def model_timings(run_dir: Path) -> dict[str, float]:
    """Seconds per model, and "(elapsed)": dbt's own time from the first model to the last."""
    results = json.loads((run_dir / "target" / "run_results.json").read_text())
    timings = {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results["results"]}
    timings["(elapsed)"] = results["elapsed_time"]
    (run_dir / "dbt-run-timings.json").write_text(json.dumps(timings, indent=1))
    return timings


def bench_size(n: int, args: argparse.Namespace, say) -> SizeResult:
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
        # Untimed: loads the seed and parses the project once, so the timed commands below use
        # dbt's partial parsing as an hourly job with a kept target/ folder does.
        # --repeat runs, each on a fresh database file; the run with the median wall time counts.
        runs = []
        for _ in range(args.repeat):
            for path in (database, Path(str(database) + ".wal")):
                path.unlink(missing_ok=True)
            command, env = dbt_command("seed", run_dir, database, export_dir, as_of)
            must(measure(command, env=env, log=run_dir / "dbt-seed"), "dbt seed")
            command, env = dbt_command("run", run_dir, database, export_dir, as_of)
            run = must(measure(command, env=env, log=run_dir / "dbt-run"), "dbt run")
            runs.append((run, model_timings(run_dir)))
            say(f"[{label(n)}] dbt run {run.wall:.1f} s")
        result.dbt_run, result.dbt_model_s = median_of(runs, key=lambda r: r[0].wall)
        result.dbt_run_walls = [r.wall for r, _ in runs]
        if not args.no_tests:
            command, env = dbt_command(
                "test", run_dir, database, export_dir, as_of, "--exclude", "test_type:unit"
            )
            result.dbt_test = must(measure(command, env=env, log=run_dir / "dbt-test"), "dbt test")
            say(f"[{label(n)}] dbt test {result.dbt_test.wall:.1f} s")
        if not args.no_build:
            build_database = run_dir / "build.duckdb"
            command, env = dbt_command("build", run_dir, build_database, export_dir, as_of)
            result.dbt_build = must(
                measure(command, env=env, log=run_dir / "dbt-build"), "dbt build"
            )
            say(f"[{label(n)}] dbt build {result.dbt_build.wall:.1f} s")
        with duckdb.connect(str(database), read_only=True) as con:
            count = "select count(*) from "
            result.payload_rows = con.execute(count + "line_capi_payload").fetchone()[0]
            rejected = con.execute(count + "line_capi_rejected").fetchone()[0]
            result.conversions_in_window = result.payload_rows + rejected

    if not args.no_floor:
        floor_database = run_dir / "floor.duckdb"
        floors = repeated(
            [sys.executable, str(HERE / "floor.py"), str(export_dir), str(floor_database)],
            run_dir / "floor",
            args.repeat,
            "floor",
        )
        for _, out in floors:
            say(f"[{label(n)}] floor {out['seconds']:.1f} s")
        floors = [(floor, out["seconds"]) for floor, out in floors]
        result.floor, result.floor_statement_s = median_of(floors, key=lambda f: f[1])
        result.floor_walls = [seconds for _, seconds in floors]

    if not args.no_sender and not args.no_dbt:
        bench_sender(result, run_dir, database, args, say)
    for leftover in run_dir.glob("*.duckdb*"):
        if not args.keep:
            leftover.unlink()
    return result


def start_sink() -> tuple[subprocess.Popen, int]:
    sink = subprocess.Popen(
        [sys.executable, str(HERE / "sink.py"), "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    line = sink.stdout.readline().split()
    if len(line) != 2 or line[0] != "PORT":
        sink.kill()
        raise SystemExit("the sink did not start")
    return sink, int(line[1])


def sink_stats(port: int) -> dict:
    import requests

    return requests.get(f"http://127.0.0.1:{port}/stats", timeout=10).json()


def bench_sender(
    result: SizeResult, run_dir: Path, database: Path, args: argparse.Namespace, say
) -> None:
    sink, port = start_sink()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        copy = run_dir / "sender.duckdb"
        env = {
            "LINE_TAG_ID": TAG_ID,
            "LINE_ACCESS_TOKEN": "bench-token",
            "LINE_CHANNEL_ID": "1234567890",
            "LINE_CAPI_DUCKDB": str(copy),
            "LINE_CAPI_ENDPOINT": endpoint,
        }
        n = result.n
        # --repeat pushes, each from a fresh copy (empty ledger): the median wall time and the
        # median peak memory count (the peak moves by ~10% from run to run at 100k).
        pushes = []
        for _ in range(args.repeat):
            for path in (copy, Path(str(copy) + ".wal")):
                path.unlink(missing_ok=True)
            shutil.copy(database, copy)
            before = sink_stats(port)
            sender = measure(
                [
                    SENDER,
                    "push",
                    "--json",
                    "--quiet",
                    "--batch-size",
                    str(args.batch_size),
                    "--concurrency",
                    str(args.concurrency),
                ],
                env=env,
                log=run_dir / "sender",
            )
            must(sender, "sender push")
            sent = sink_stats(port)["bytes"] - before["bytes"]
            try:
                summary = json.loads(sender.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                summary = {}
            pushes.append((sender, summary, sent))
            say(f"[{label(n)}] sender push {sender.wall:.1f} s, peak {sender.peak_mib:.0f} MiB")
        result.sender, result.sender_summary, result.sender_bytes = median_of(
            pushes, key=lambda p: p[0].wall
        )
        result.sender_peaks = [p[0].peak_mib for p in pushes]
        result.sender_peak_mib = median_of(result.sender_peaks, key=lambda m: m)
        result.sender_walls = [p[0].wall for p in pushes]
        transports = repeated(
            [
                sys.executable,
                str(HERE / "transport_floor.py"),
                str(database),
                f"{endpoint}/v1/{TAG_ID}/events",
                "--batch-size",
                str(args.batch_size),
            ],
            run_dir / "transport",
            args.repeat,
            "transport floor",
        )
        for _, out in transports:
            say(f"[{label(n)}] transport floor {out['seconds']:.1f} s")
        result.transport, result.transport_result = median_of(
            transports, key=lambda t: t[1]["seconds"]
        )
        result.transport_walls = [t[1]["seconds"] for t in transports]
    finally:
        sink.terminate()
        try:
            sink.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sink.kill()


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def repeats(walls: list[float]) -> str:
    if len(walls) < 2:
        return ""
    return f"; median of {len(walls)} runs: " + ", ".join(f"{w:.1f}" for w in walls)


def render(results: list[SizeResult], args: argparse.Namespace) -> str:
    lines: list[str] = []

    def row(*cells: str) -> None:
        lines.append("| " + " | ".join(cells) + " |")

    load = os.getloadavg()
    lines.append(
        f"machine: {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, duckdb {duckdb.__version__}; load average at the "
        f"end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min)"
    )
    lines.append("")
    row("size (conversions / page views)", "what", "wall s", "CPU s", "peak MiB", "rows/s", "notes")
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
        if r.dbt_run:
            m = r.dbt_run
            inside = r.dbt_model_s["(elapsed)"]
            row(
                size,
                "`dbt run` (models)",
                f"{m.wall:.1f}",
                f"{m.cpu:.1f}",
                f"{m.peak_mib:.0f}",
                f"{r.n / m.wall:,.0f}",
                f"{r.conversions_in_window:,} conversions in window, {r.payload_rows:,} payloads;"
                f" dbt's own timer {inside:.1f} s" + repeats(r.dbt_run_walls),
            )
        if r.dbt_test:
            m = r.dbt_test
            row(
                size,
                "`dbt test --exclude test_type:unit`",
                f"{m.wall:.1f}",
                f"{m.cpu:.1f}",
                f"{m.peak_mib:.0f}",
                "",
                "data tests on the built tables",
            )
        if r.dbt_build:
            m = r.dbt_build
            row(
                size,
                "`dbt build` (seed, models, unit and data tests)",
                f"{m.wall:.1f}",
                f"{m.cpu:.1f}",
                f"{m.peak_mib:.0f}",
                f"{r.n / m.wall:,.0f}",
                "the hourly job, on a fresh database file",
            )
        if r.floor:
            m = r.floor
            row(
                size,
                "SQL floor (one statement)",
                f"{r.floor_statement_s:.1f}",
                f"{m.cpu:.1f}",
                f"{m.peak_mib:.0f}",
                f"{r.n / r.floor_statement_s:,.0f}",
                f"process {m.wall:.1f} s" + repeats(r.floor_walls),
            )
        if r.dbt_run and r.floor:
            models_only = ratio(r.dbt_model_s["(elapsed)"], r.floor_statement_s)
            row(
                size,
                "**`dbt run` / floor**",
                ratio(r.dbt_run.wall, r.floor_statement_s),
                ratio(r.dbt_run.cpu, r.floor.cpu),
                "",
                "",
                f"target <= 5 at 1M; dbt's own timer / floor: {models_only}",
            )
        if r.dbt_build and r.floor:
            row(
                size,
                "`dbt build` / floor",
                ratio(r.dbt_build.wall, r.floor_statement_s),
                ratio(r.dbt_build.cpu, r.floor.cpu),
                "",
                "",
                "models and every test, for reference",
            )
        if r.sender:
            m = r.sender
            events = r.sender_summary.get("accepted", 0)
            row(
                size,
                f"`sender push` ({events:,} events)",
                f"{m.wall:.1f}",
                f"{m.cpu:.1f}",
                f"{r.sender_peak_mib:.0f}",
                f"{events / m.wall:,.0f} ev/s",
                f"{r.sender_bytes / m.wall / 1e6:.1f} MB/s; batch {args.batch_size}, "
                f"concurrency {args.concurrency}, ledger on; own timer "
                f"{r.sender_summary.get('elapsed_s', 0):.1f} s"
                + repeats(r.sender_walls)
                + (
                    "; peak MiB: " + ", ".join(f"{p:.0f}" for p in r.sender_peaks)
                    if len(r.sender_peaks) > 1
                    else ""
                ),
            )
        if r.transport:
            t = r.transport_result
            row(
                size,
                "transport floor (one requests.Session)",
                f"{t['seconds']:.1f}",
                f"{r.transport.cpu:.1f}",
                "",
                f"{t['events'] / t['seconds']:,.0f} ev/s",
                f"{t['bytes'] / t['seconds'] / 1e6:.1f} MB/s; {t['requests']} requests of "
                f"{args.batch_size}" + repeats(r.transport_walls),
            )
        if r.sender and r.transport:
            sender_rate = r.sender_summary.get("accepted", 0) / r.sender.wall
            floor_rate = r.transport_result["events"] / r.transport_result["seconds"]
            row(
                size,
                "**sender / transport floor** (events/s)",
                ratio(sender_rate, floor_rate),
                "",
                "",
                "",
                "target >= 0.8 at 1M pending events",
            )
    if len(results) >= 2:
        small, big = results[0], results[-1]
        scale = f"{label(big.n)}/{label(small.n)}"
        if small.dbt_run and big.dbt_run:
            row(
                scale,
                "**dbt run growth**",
                ratio(big.dbt_run.wall, small.dbt_run.wall),
                ratio(big.dbt_run.cpu, small.dbt_run.cpu),
                ratio(big.dbt_run.peak_mib, small.dbt_run.peak_mib),
                "",
                f"linear = {big.n / small.n:.0f}; target <= {1.2 * big.n / small.n:.0f}",
            )
        if small.floor and big.floor:
            row(
                scale,
                "floor growth",
                ratio(big.floor_statement_s, small.floor_statement_s),
                ratio(big.floor.cpu, small.floor.cpu),
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
                ratio(big.sender_peak_mib, small.sender_peak_mib),
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
    parser.add_argument("--quick", action="store_true", help="a smoke run: --sizes 10k")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=HERE / "out",
        help="exports, databases and logs (default bench/out, git-ignored)",
    )
    parser.add_argument("--as-of", default=None, help="fix the generated exports' as_of")
    parser.add_argument("--regenerate", action="store_true", help="never reuse an export")
    parser.add_argument("--no-dbt", action="store_true", help="skip dbt (and the sender)")
    parser.add_argument("--no-tests", action="store_true", help="skip the dbt data tests")
    parser.add_argument("--no-build", action="store_true", help="skip the timed dbt build")
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs of dbt run, the floor, the sender and the transport floor per size;"
        " the median counts (default 3, 1 with --quick)",
    )
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--no-sender", action="store_true")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the databases in --workdir")
    parser.add_argument(
        "--markdown", type=Path, default=None, help="also write the table to this file"
    )
    args = parser.parse_args(argv)
    args.repeat = args.repeat or (1 if args.quick else 3)
    sizes = [10_000] if args.quick else [parse_size(s) for s in args.sizes.split(",") if s]
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    results = [bench_size(n, args, say) for n in sizes]
    table = render(results, args)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

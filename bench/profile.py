"""Where a dbt run spends its time: each model's compiled SQL timed alone, the time DuckDB takes
to plan it, and its costliest operators from DuckDB's EXPLAIN ANALYZE.

    python bench/run.py --sizes 1M --keep --no-sender      # leaves bench/out/run-1000000
    python bench/profile.py bench/out/run-1000000 [--model int_conversions_joined] [--top 12]

Each model's ``target/compiled`` SQL is run under EXPLAIN ANALYZE against the database that run
built (read-only, so the views it reads resolve to the same inputs): the time is what the model
costs with its upstream views expanded into it, as a dbt table model built on views pays it.
Planning is a fixed cost of every build, whatever the export's size: a chain of CTEs whose
macros name their input several times once took DuckDB 1.5 s to plan (`int_users_hashed`,
CHANGELOG.md), on 81 rows as on a million.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import duckdb


def compiled_models(run_dir: Path) -> dict[str, Path]:
    root = run_dir / "target" / "compiled"
    return {
        p.stem: p
        for p in sorted(root.rglob("models/**/*.sql"))
        if not p.parent.name.endswith(".yml")
    }


def operators(node: dict, depth: int = 0, out: list | None = None) -> list:
    out = [] if out is None else out
    name = node.get("operator_name") or node.get("name") or node.get("type", "")
    timing = node.get("operator_timing", node.get("timing", 0.0)) or 0.0
    rows = node.get("operator_cardinality", node.get("intermediate_rows", 0)) or 0
    extra = node.get("extra_info", {})
    if isinstance(extra, dict):
        detail = "; ".join(
            f"{k}={v}" for k, v in extra.items() if k not in ("Estimated Cardinality",)
        )
    else:
        detail = str(extra)
    out.append((timing, rows, depth, name.strip(), detail.replace("\n", " ")[:220]))
    for child in node.get("children", []):
        operators(child, depth + 1, out)
    return out


def planning_seconds(con: duckdb.DuckDBPyConnection, sql: str) -> float:
    """EXPLAIN without ANALYZE: DuckDB binds, optimises and plans the statement, runs nothing."""
    start = time.perf_counter()
    con.execute(f"explain {sql}").fetchall()
    return time.perf_counter() - start


def profile(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[float, list]:
    start = time.perf_counter()
    rows = con.execute(f"explain (analyze, format json) {sql}").fetchall()
    seconds = time.perf_counter() - start
    tree = json.loads(rows[0][1])
    if isinstance(tree, dict) and "operator" in tree:  # DuckDB 2: {"io": ..., "operator": [...]}
        tree = {"children": tree["operator"]}
    return seconds, operators(tree if isinstance(tree, dict) else {"children": tree})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument(
        "--database", type=Path, default=None, help="default RUN_DIR/line_capi.duckdb"
    )
    parser.add_argument("--model", action="append", default=None, help="only these models")
    parser.add_argument("--top", type=int, default=10, help="operators shown per model")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    database = args.database or args.run_dir / "line_capi.duckdb"
    con = duckdb.connect(str(database), read_only=True)
    con.execute("set enable_progress_bar = false")
    if args.threads:
        con.execute(f"set threads = {args.threads}")
    models = compiled_models(args.run_dir)
    for name, path in models.items():
        if args.model and name not in args.model:
            continue
        sql = path.read_text()
        planning = planning_seconds(con, sql)
        seconds, ops = profile(con, sql)
        print(
            f"\n## {name}: {seconds:.2f} s (explain analyze), planning {planning:.2f} s", flush=True
        )
        for timing, card, _depth, op, detail in sorted(ops, reverse=True)[: args.top]:
            print(f"  {timing:7.3f} s  {card:>11,} rows  {op:<22} {detail}")
    con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

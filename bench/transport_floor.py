"""The transport floor: a bare loop that posts the sender's bytes with one ``requests.Session``.

Reads ``line_capi_payload`` in table order (as the sender does), makes the same request bodies
(``[p1,p2,...]``, ``batch_size`` events each) before the clock starts, then posts them one after
the other on one kept-alive session. No ledger, no retries, no concurrency: what the wire and the
HTTP client alone cost. ``sender push`` events/s divided by this loop's is "sender / floor".

    python bench/transport_floor.py DATABASE_FILE URL [--batch-size 5000]
    # prints {"seconds": s, "events": n, "bytes": n, "requests": n}
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import requests


def bodies(database: str, batch_size: int) -> list[tuple[int, bytes]]:
    con = duckdb.connect(database, read_only=True)
    payload = con.sql("select payload from line_capi_payload").to_arrow_table()
    con.close()
    column = payload.column("payload").combine_chunks()
    out = []
    for start in range(0, len(column), batch_size):
        chunk = column.slice(start, batch_size)
        offsets = pa.array([0, len(chunk)], pa.int32())
        joined = pc.binary_join(pa.ListArray.from_arrays(offsets, chunk), ",")[0]
        out.append((len(chunk), b"[" + joined.as_buffer().to_pybytes() + b"]"))
    return out


def post_all(url: str, prepared: list[tuple[int, bytes]]) -> dict:
    session = requests.Session()
    session.trust_env = False
    headers = {"Content-Type": "application/json", "X-Line-TagAccessToken": "bench"}
    events = sent_bytes = 0
    start = time.perf_counter()
    for count, body in prepared:
        response = session.post(url, data=body, headers=headers, timeout=60)
        response.content  # noqa: B018 - drain, so the connection is reused
        if response.status_code != 202:
            raise SystemExit(f"sink answered {response.status_code}")
        events += count
        sent_bytes += len(body)
    seconds = time.perf_counter() - start
    session.close()
    return {"seconds": seconds, "events": events, "bytes": sent_bytes, "requests": len(prepared)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database")
    parser.add_argument("url")
    parser.add_argument("--batch-size", type=int, default=5000)
    args = parser.parse_args(argv)
    print(json.dumps(post_all(args.url, bodies(args.database, args.batch_size))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

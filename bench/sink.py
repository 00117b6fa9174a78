"""A minimal HTTP sink for the sender benchmark, built to be faster than any client it measures.

Every POST is read to its ``Content-Length`` straight into one preallocated buffer per connection
(``recv_into``, nothing parsed, checked or kept) and answered ``202`` with one ``send`` on HTTP/1.1
keep-alive connections (TCP_NODELAY: no Nagle delay between a response's parts). One thread per
connection; the threads wait in ``recv_into`` without the GIL, so several clients are served in
parallel.

    python bench/sink.py [--port 0]     # prints "PORT <n>" on stdout once listening
    python bench/sink.py --alone        # the sink's own ceiling: see below; prints JSON

It counts requests and body bytes, and times them: ``first`` is when the first request of the
measurement began to arrive, ``last`` when the last answer was sent (``time.perf_counter`` of
this process). ``GET /stats`` returns ``{"requests", "bytes", "first", "last"}``; ``GET /reset``
zeroes them. A client's rate "at the sink" is its events / (last - first): what arrived, from the
first byte to the last answer, without its own start-up and shutdown.

``--alone`` starts the sink and posts prebuilt requests to it from raw sockets (one ``sendall``
of headers and body per request, no HTTP library) over 1 and 4 connections: the rate the sink
itself reaches on this machine. A client measured near that rate is measuring the sink.

The process stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time

# Large enough that a request of a few MB arrives in a few reads.
_BUFFER_BYTES = 8 << 20
_SOCKET_BUFFER_BYTES = 4 << 20
_ACCEPTED = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
)


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.first: float | None = None
        self.last: float | None = None

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "bytes": self.bytes,
            "first": self.first,
            "last": self.last,
        }


def _serve(conn: socket.socket, stats: Stats) -> None:
    """One connection: requests one after the other until the client closes it."""
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER_BYTES)
    buffer = bytearray(_BUFFER_BYTES)
    view = memoryview(buffer)
    filled = 0  # bytes in buffer not consumed yet
    with conn:
        while True:
            # the head: read until the blank line
            while (end := buffer.find(b"\r\n\r\n", 0, filled)) < 0:
                if filled == len(buffer):
                    return  # a head this large is not a client of ours
                n = conn.recv_into(view[filled:])
                if n == 0:
                    return
                filled += n
            started = time.perf_counter()
            head = bytes(view[:end]).decode("latin-1")
            body_start = end + 4
            method, path = head.split(" ", 2)[:2]
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            # the body: what came with the head, then straight into the buffer, discarded
            have = min(filled - body_start, length)
            remaining = length - have
            leftover = filled - body_start - have
            while remaining > 0:
                n = conn.recv_into(view[: min(remaining, len(buffer))])
                if n == 0:
                    return
                remaining -= n
            if leftover:  # the start of a pipelined next request: keep it
                view[:leftover] = view[body_start + have : body_start + have + leftover]
            filled = leftover
            if method == "POST":
                conn.sendall(_ACCEPTED)
                with stats.lock:
                    stats.requests += 1
                    stats.bytes += length
                    if stats.first is None:
                        stats.first = started
                    stats.last = time.perf_counter()
            else:
                with stats.lock:
                    if path.startswith("/reset"):
                        stats.reset()
                    body = json.dumps(stats.as_dict()).encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )


class Sink:
    """The sink in background threads of this process (``with Sink() as sink: sink.port``)."""

    def __init__(self, port: int = 0) -> None:
        self.stats = Stats()
        self._listener = socket.create_server(("127.0.0.1", port), backlog=64)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Sink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=_serve, args=(conn, self.stats), daemon=True).start()

    def serve_forever(self) -> None:
        self._thread.start()
        self._thread.join()

    def close(self) -> None:
        try:  # wakes the accepting thread (a plain close does not, on Linux)
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()


def _blast(port: int, request: bytes, count: int, results: list) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        answer = bytearray(4096)
        for _ in range(count):
            conn.sendall(request)
            got = 0
            while got < len(_ACCEPTED):
                got += conn.recv_into(memoryview(answer)[got:])
    results.append(count)


def alone(total_bytes: int, body_bytes: int) -> dict:
    """The sink's own rate: prebuilt requests from raw sockets, over 1 and 4 connections."""
    body = b"[" + b"x" * (body_bytes - 2) + b"]"
    request = (
        b"POST /v1/bench/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    out = {"body_bytes": len(body)}
    with Sink() as sink:
        for connections in (1, 4):
            per_connection = max(1, total_bytes // len(body) // connections)
            sink.stats.reset()
            results: list = []
            threads = [
                threading.Thread(target=_blast, args=(sink.port, request, per_connection, results))
                for _ in range(connections)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            s = sink.stats
            out[f"mb_per_s_{connections}"] = round(s.bytes / (s.last - s.first) / 1e6, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--alone", action="store_true", help="measure the sink alone, print JSON")
    parser.add_argument("--mb", type=int, default=2000, help="--alone: MB posted per measurement")
    parser.add_argument("--body-mb", type=float, default=3.7, help="--alone: MB per request")
    args = parser.parse_args(argv)
    if args.alone:
        print(json.dumps(alone(args.mb * 1_000_000, int(args.body_mb * 1_000_000))))
        return 0
    sink = Sink(args.port)
    signal.signal(signal.SIGTERM, lambda *_: sink.close())
    print(f"PORT {sink.port}", flush=True)
    try:
        sink.serve_forever()
    except KeyboardInterrupt:
        pass
    sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

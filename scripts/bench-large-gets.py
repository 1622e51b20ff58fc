#!/usr/bin/env python3
"""bench-large-gets.py — does one client's huge multi-get stall the others? The proxy against memcached.

Two clients each send `get` of KEYS keys (100,000 by default, all present, 10-byte values) again
and again, each in its own process, and read every reply; a third client sends `get small` every
2 ms and measures each reply's latency for --duration seconds. The same load runs against a lone
`memcached -t 1` (the peer, measured in the same run) and against `flotilla cache-proxy
--threads 1 --replicas 1` in front of two `memcached -t 1`. Prints the third client's p50, p99
and max, and how many large gets each side answered, for --rounds rounds.

Usage: scripts/bench-large-gets.py [--rounds 3] [--duration 6] [--keys 100000]
Environment: FLOTILLA_BIN (default: .build-release/release/flotilla; build it with
scripts/build-release.sh).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Tests" / "python"))
os.environ.setdefault("FLOTILLA_BIN", str(REPO / ".build-release" / "release" / "flotilla"))

from proxy_support import CacheProxy, Memcached, Shards  # noqa: E402


def read_reply(sock: socket.socket) -> bytes:
    received = b""
    while not received.endswith(b"END\r\n"):
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed")
        received += chunk
    return received


def large_gets(address: tuple[str, int], request: bytes, done) -> None:
    with socket.create_connection(address, timeout=60) as sock:
        while True:
            sock.sendall(request)
            read_reply(sock)
            with done.get_lock():
                done.value += 1


def measure(address: tuple[str, int], client, keys: list[str], seconds: float) -> tuple[list[float], int]:
    for start in range(0, len(keys), 1000):
        client.set_many({key: b"x" * 10 for key in keys[start:start + 1000]})
    client.set("small", b"ok")
    request = ("get " + " ".join(keys) + "\r\n").encode()
    done = multiprocessing.Value("i", 0)
    workers = [multiprocessing.Process(target=large_gets, args=(address, request, done), daemon=True)
               for _ in range(2)]
    latencies: list[float] = []
    with socket.create_connection(address, timeout=30) as third:
        for worker in workers:
            worker.start()
        try:
            deadline = time.monotonic() + 60
            while done.value == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                started = time.monotonic()
                third.sendall(b"get small\r\n")
                read_reply(third)
                latencies.append(time.monotonic() - started)
                time.sleep(0.002)
        finally:
            for worker in workers:
                worker.terminate()
                worker.join(5)
    return latencies, done.value


def summary(name: str, latencies: list[float], large: int) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"{name:<28} third client: {len(ordered):5d} gets  p50 {statistics.median(ordered) * 1000:7.2f} ms  "
            f"p99 {p99 * 1000:7.2f} ms  max {ordered[-1] * 1000:7.1f} ms   large gets answered: {large}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--keys", type=int, default=100_000)
    args = parser.parse_args()
    if args.rounds < 1 or args.duration <= 0 or args.keys < 1:
        parser.error("--rounds, --duration and --keys must be positive")
    if not os.access(os.environ["FLOTILLA_BIN"], os.X_OK):
        parser.error(f"no flotilla binary at {os.environ['FLOTILLA_BIN']} (run scripts/build-release.sh)")
    keys = [f"k{i}" for i in range(args.keys)]
    print(f"two clients each asking for {args.keys:,} keys per get, a third asking for one; "
          f"{args.duration:g} s per side per round")
    for round_number in range(1, args.rounds + 1):
        with Memcached() as lone:
            latencies, large = measure(("127.0.0.1", lone.port), lone.client(), keys, args.duration)
            print(f"round {round_number}  " + summary("memcached -t 1", latencies, large))
        with Shards(2) as shards, CacheProxy(shards, "--replicas", "1", threads=1) as proxy:
            latencies, large = measure(proxy.data, proxy.client(), keys, args.duration)
            print(f"round {round_number}  " + summary("cache-proxy --threads 1", latencies, large))
    return 0


if __name__ == "__main__":
    sys.exit(main())

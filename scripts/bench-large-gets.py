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
import os
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Tests" / "python"))
os.environ.setdefault("FLOTILLA_BIN", str(REPO / ".build-release" / "release" / "flotilla"))

from proxy_support import CacheProxy, Memcached, Shards, third_client_latencies  # noqa: E402


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
            latencies, large = third_client_latencies(("127.0.0.1", lone.port), lone.client(), keys, args.duration)
            print(f"round {round_number}  " + summary("memcached -t 1", latencies, large))
        with Shards(2) as shards, CacheProxy(shards, "--replicas", "1", threads=1) as proxy:
            latencies, large = third_client_latencies(proxy.data, proxy.client(), keys, args.duration)
            print(f"round {round_number}  " + summary("cache-proxy --threads 1", latencies, large))
    return 0


if __name__ == "__main__":
    sys.exit(main())

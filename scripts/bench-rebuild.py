#!/usr/bin/env python3
"""bench-rebuild.py — how long a restarted shard's rebuild takes, and what it costs live traffic.

Three memcached shards (`memcached -t 1 -m 64`, or `flotilla cache --threads 1` with
--shards flotilla) behind `flotilla cache-proxy --replicas 2`, filled with KEYS keys of 100-byte
values. One client reads a random key and writes another, back to back, measuring each
request's latency: for --baseline seconds before (the peer figure, measured in the same run),
then while the third shard is killed, restarted empty on its port and rebuilt from the two
others at --rebuild-rate (until the proxy logs `shard rebuilt`), then for --baseline seconds
after. Prints the rebuild's keys and time, and the client's p50/p99/max and misses in each
phase (a miss of a key that was written is a lost read: there must be none), for each rate.

Usage: scripts/bench-rebuild.py [--keys 100000] [--rates 20000,100000] [--shards memcached|flotilla]
Environment: FLOTILLA_BIN (default: .build-release/release/flotilla; build it with
scripts/build-release.sh).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Tests" / "python"))
os.environ.setdefault("FLOTILLA_BIN", str(REPO / ".build-release" / "release" / "flotilla"))

from proxy_support import CacheProxy, CacheShards, Shards  # noqa: E402


class Load(threading.Thread):
    """One client: get a random key, set another, record each latency and each miss by phase."""

    def __init__(self, client, keys: list[str]):
        super().__init__(daemon=True)
        self.client, self.keys = client, keys
        self.phase = "before"
        self.latencies: dict[str, list[float]] = {}
        self.misses: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        rng = random.Random(7)
        value = b"v" * 100
        while not self.stopped.is_set():
            phase = self.phase
            key = self.keys[rng.randrange(len(self.keys))]
            start = time.perf_counter()
            try:
                found = self.client.get(key)
                self.client.set(self.keys[rng.randrange(len(self.keys))], value)
            except Exception:  # noqa: BLE001 - counted, the load goes on
                self.errors[phase] = self.errors.get(phase, 0) + 1
                continue
            self.latencies.setdefault(phase, []).append((time.perf_counter() - start) / 2)
            if found is None:
                self.misses[phase] = self.misses.get(phase, 0) + 1


def row(load: Load, phase: str) -> str:
    samples = sorted(load.latencies.get(phase, [0.0]))
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return (f"{phase:<7} {len(samples):7d} req  p50 {statistics.median(samples) * 1e3:6.3f} ms  "
            f"p99 {p99 * 1e3:6.3f} ms  max {samples[-1] * 1e3:7.2f} ms  misses {load.misses.get(phase, 0)}  "
            f"errors {load.errors.get(phase, 0)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--rates", default="20000,100000")
    parser.add_argument("--baseline", type=float, default=4.0)
    parser.add_argument("--shards", choices=["memcached", "flotilla"], default="memcached")
    args = parser.parse_args()
    if not os.access(os.environ["FLOTILLA_BIN"], os.X_OK):
        parser.error(f"no flotilla binary at {os.environ['FLOTILLA_BIN']} (run scripts/build-release.sh)")
    keys = [f"key:{i}" for i in range(args.keys)]
    for rate in [int(text) for text in args.rates.split(",")]:
        if args.shards == "memcached":
            shards = Shards(3)
            spec, restart, third = shards.spec, lambda: (shards[2].kill(), shards[2].start()), shards[2].address
        else:
            shards = CacheShards(3)
            spec, restart, third = shards.spec, lambda: shards.restart(2), shards.address(2)
        with shards, CacheProxy(spec, "--replicas", "2", "--rebuild-rate", str(rate)) as proxy:
            filler = proxy.client(timeout=10)
            for start in range(0, len(keys), 1000):
                filler.set_many({key: b"v" * 100 for key in keys[start:start + 1000]}, noreply=False)
            load = Load(proxy.client(timeout=5), keys)
            load.start()
            time.sleep(args.baseline)
            load.phase = "during"
            restarted = time.monotonic()
            restart()
            rebuilt = proxy.wait_for_log("shard rebuilt", lambda e: e.get("shard") == third, timeout=600)
            elapsed = time.monotonic() - restarted
            load.phase = "after"
            time.sleep(args.baseline)
            load.stopped.set()
            load.join(10)
            copied = rebuilt.get("keys-copied") if rebuilt else "none (no 'shard rebuilt' in 600 s)"
            print(f"--rebuild-rate {rate}: {args.keys:,} keys, {args.shards} shards: {copied} keys copied, "
                  f"rebuild {rebuilt.get('took') if rebuilt else '-'} (restart to rebuilt {elapsed:.2f} s)")
            for phase in ("before", "during", "after"):
                print("  " + row(load, phase))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""bench-memory.py — memory per item and idle RSS of `flotilla cache` against memcached, in one run.

Starts `memcached -t THREADS -m MEMORY` and `flotilla cache --threads THREADS --memory MEMORY` on
loopback (each alone while it is measured), reads each one's idle RSS, stores the same ITEMS
items (keys `key:00000000`…, VALUE-byte values, `set … noreply` in batches of 1,000, then `mn` to
wait for the last), checks with `stats` that every item is held, and reads RSS again. Prints each
server's idle RSS, its growth, the growth per item, and the ratios flotilla/memcached (issue 15
asks for at most 1.2 per item and an idle RSS half of the 33 MiB measured before it).

Usage: scripts/bench-memory.py [--items 1000000] [--value 100] [--threads 2] [--memory-mib 1024]
Environment: FLOTILLA_BIN (default: .build-release/release/flotilla; build it with
scripts/build-release.sh).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Tests" / "python"))
os.environ.setdefault("FLOTILLA_BIN", str(REPO / ".build-release" / "release" / "flotilla"))

from flotilla_server import free_port  # noqa: E402


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def read_until(sock: socket.socket, end: bytes) -> bytes:
    data = b""
    while not data.endswith(end):
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"connection closed after {data[-200:]!r}")
        data += chunk
    return data


def measure(command: list[str], port: int, items: int, value_size: int) -> tuple[int, int]:
    """Idle RSS and RSS growth for ITEMS items, of the server `command` listening on `port`."""
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command[0]} did not start: {server.stderr.read().decode()[-500:]}")
                time.sleep(0.1)
        time.sleep(1)  # settle: the process's start-up is behind it
        idle = rss_bytes(server.pid)
        value = b"v" * value_size
        for start in range(0, items, 1000):
            sock.sendall(b"".join(b"set key:%08d 0 0 %d noreply\r\n%s\r\n" % (index, value_size, value)
                                  for index in range(start, min(items, start + 1000))))
        sock.sendall(b"mn\r\n")
        read_until(sock, b"MN\r\n")
        sock.sendall(b"stats\r\n")
        stats = read_until(sock, b"END\r\n").decode()
        held = int(stats.split("STAT curr_items ")[1].split("\r\n")[0])
        if held != items:
            raise RuntimeError(f"{command[0]} holds {held} of {items} items: raise --memory-mib")
        time.sleep(0.5)
        return idle, rss_bytes(server.pid) - idle
    finally:
        server.terminate()
        server.wait(20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--value", type=int, default=100, help="value bytes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-mib", type=int, default=1024)
    args = parser.parse_args()
    memcached = shutil.which("memcached")
    if memcached is None:
        parser.error("memcached not found (scripts/install-test-deps.sh installs it)")
    flotilla = os.environ["FLOTILLA_BIN"]
    if not os.access(flotilla, os.X_OK):
        parser.error(f"no flotilla binary at {flotilla} (run scripts/build-release.sh)")
    port = free_port()
    as_root = ["-u", "root"] if os.geteuid() == 0 else []
    sides = {
        "memcached": [memcached, *as_root, "-U", "0", "-l", "127.0.0.1", "-p", str(port),
                      "-t", str(args.threads), "-m", str(args.memory_mib)],
        "flotilla": [flotilla, "cache", "--listen", f"127.0.0.1:{port}", "--admin", "127.0.0.1:0",
                     "--threads", str(args.threads), "--memory", f"{args.memory_mib}MiB", "--log-level", "error"],
    }
    figures = {name: measure(command, port, args.items, args.value) for name, command in sides.items()}
    print(f"{args.items:,} items of {args.value}-byte values, {args.threads} threads, {args.memory_mib} MiB")
    print(f"{'server':<10} {'idle RSS':>10} {'growth':>12} {'per item':>9}")
    for name, (idle, growth) in figures.items():
        print(f"{name:<10} {idle / 2**20:>6.1f} MiB {growth / 2**20:>8.1f} MiB {growth / args.items:>7.0f} B")
    (mc_idle, mc_growth), (fl_idle, fl_growth) = figures["memcached"], figures["flotilla"]
    print(f"{'ratio':<10} {fl_idle / mc_idle:>10.2f} {fl_growth / mc_growth:>12.2f} {fl_growth / mc_growth:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

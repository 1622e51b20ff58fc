"""Fuzz soak: hostile input against `flotilla cache` and `flotilla cache-proxy` for a bounded time.

Four threads send commands of the text and meta protocols with bytes flipped, lengths huge,
negative or wrong, tokens missing or doubled, at random boundaries and with pauses between the
pieces, and sometimes hang up mid-request. Throughout, a sentinel client sets and reads back its
own key, the process must stay alive, and its resident memory must stay under a bound.

The soak lasts FLOTILLA_SOAK_SECONDS (default 8 s per role, as in CI); set it higher for a
longer run, and FLOTILLA_SOAK_SEED to replay one:

    FLOTILLA_SOAK_SECONDS=600 .build-venv/bin/python -m pytest Tests/python/test_fuzz_soak.py -s
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time

from pymemcache.client.base import Client

from flotilla_server import FlotillaProcess
from proxy_support import Memcached, require_memcached

SECONDS = float(os.environ.get("FLOTILLA_SOAK_SECONDS", "8"))
SEED = int(os.environ.get("FLOTILLA_SOAK_SEED", str(random.SystemRandom().randrange(1 << 32))))
MiB = 1 << 20
# Growth over the idle process allowed: --memory (32 MiB) and --request-memory (16 MiB) as
# configured below, plus read and reply buffers in flight and what malloc keeps.
RSS_BOUND = 32 * MiB + 16 * MiB + 96 * MiB

KEYS = [b"k", b"key", b"counter", b"caf\xc3\xa9", b"a" * 250, b"a" * 251, b"k:1", b""]
VALID = [
    b"set {k} 0 0 5\r\nhello\r\n",
    b"add {k} 1 100 3\r\nabc\r\n",
    b"replace {k} 0 0 1\r\nx\r\n",
    b"append {k} 0 0 2\r\nzz\r\n",
    b"prepend {k} 0 0 2\r\naa\r\n",
    b"cas {k} 0 0 2 1\r\nxx\r\n",
    b"get {k} {k} k\r\n",
    b"gets {k}\r\n",
    b"gat 10 {k}\r\n",
    b"incr {k} 7\r\n",
    b"decr {k} 18446744073709551615\r\n",
    b"delete {k}\r\n",
    b"touch {k} 100\r\n",
    b"mg {k} v f t c k s\r\n",
    b"ms {k} 4 T0 F5\r\nabcd\r\n",
    b"md {k} q\r\n",
    b"ma {k} N0 J13 D2\r\n",
    b"mn\r\n",
    b"me {k}\r\n",
    b"stats\r\n",
    b"stats slabs\r\n",
    b"version\r\n",
    b"verbosity 1\r\n",
    b"set {k} 0 0 1000000\r\n",
    b"set {k} 0 0 -1\r\nx\r\n",
    b"set {k} 0 0 99999999999999999999\r\nx\r\n",
    b"get " + b"x " * 600 + b"\r\n",
    b"ms {k} 999999999999\r\n",
    b"quit\r\n",
]


def fuzzed(rng: random.Random) -> bytes:
    """One command, perhaps mutated: bytes flipped, inserted or dropped, a token doubled."""
    data = rng.choice(VALID).replace(b"{k}", rng.choice(KEYS))
    for _ in range(rng.choice([0, 0, 1, 2, 5])):
        if not data:
            break
        position = rng.randrange(len(data))
        action = rng.randrange(4)
        if action == 0:
            data = data[:position] + bytes([rng.randrange(256)]) + data[position + 1:]
        elif action == 1:
            data = data[:position] + data[position + 1:]
        elif action == 2:
            data = data[:position] + rng.choice([b" ", b"\r\n", b"\n", b"\x00", b"-1", b"4294967296"]) + data[position:]
        else:
            data = data[:position] + data[position:] * 2
    return data


def hostile_client(address: tuple[str, int], rng: random.Random, stop: threading.Event, sent: list[int]) -> None:
    while not stop.is_set():
        try:
            with socket.create_connection(address, timeout=1) as sock:
                sock.settimeout(0.002)
                for _ in range(rng.randrange(1, 40)):
                    payload = b"".join(fuzzed(rng) for _ in range(rng.randrange(1, 8)))
                    sent[0] += len(payload)
                    # Split at random boundaries, sometimes with a pause between the pieces.
                    while payload and not stop.is_set():
                        cut = rng.randrange(1, len(payload) + 1)
                        sock.sendall(payload[:cut])
                        payload = payload[cut:]
                        if rng.random() < 0.1:
                            time.sleep(0.005)
                    try:
                        while sock.recv(1 << 16):
                            pass
                    except (socket.timeout, BlockingIOError):
                        pass
                    if rng.random() < 0.05:
                        break  # hang up, perhaps mid-request
        except (ConnectionError, socket.timeout, OSError):
            continue


def soak(server: FlotillaProcess, label: str) -> None:
    baseline = server.rss_bytes()
    stop = threading.Event()
    sent = [[0] for _ in range(4)]
    threads = [threading.Thread(target=hostile_client, args=(server.data, random.Random(SEED + index), stop, sent[index]))
               for index in range(4)]
    for thread in threads:
        thread.start()
    sentinel = Client(server.data, connect_timeout=5, timeout=5, default_noreply=False)
    checks = 0
    peak = 0
    try:
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            value = b"sentinel-%d" % checks
            assert sentinel.set("soak:sentinel", value) is True, f"{label}: sentinel set failed (seed {SEED})"
            assert sentinel.get("soak:sentinel") == value, f"{label}: sentinel read back wrong (seed {SEED})"
            assert server.proc.poll() is None, f"{label}: the process exited (seed {SEED})"
            peak = max(peak, server.rss_bytes() - baseline)
            assert peak <= RSS_BOUND, f"{label}: grew by {peak >> 20} MiB (seed {SEED})"
            checks += 1
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    total = sum(count[0] for count in sent)
    print(f"[soak] {label}: {SECONDS:g} s, seed {SEED}, {total / MiB:.1f} MiB of fuzzed input, "
          f"{checks} sentinel checks, peak RSS +{peak >> 20} MiB")
    assert total > 0
    assert checks >= SECONDS  # about five a second; at least one a second on a busy machine


def test_fuzzed_input_soak_against_the_cache() -> None:
    with FlotillaProcess(["cache", "--memory", "32MiB", "--request-memory", "16MiB", "--threads", "2"]) as server:
        soak(server, "cache")
        assert server.terminate() == 0


def test_fuzzed_input_soak_against_the_proxy() -> None:
    require_memcached()
    with Memcached() as first, Memcached() as second, FlotillaProcess(
        ["cache-proxy", "--shards", f"{first.address},{second.address}", "--replicas", "2",
         "--request-memory", "16MiB", "--threads", "2"]
    ) as proxy:
        soak(proxy, "cache-proxy")
        assert proxy.terminate() == 0


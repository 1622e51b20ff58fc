"""Memory stays bounded by --memory: after writing 4x --memory, accounted bytes stay within the
limit (older items are evicted) and the process's resident memory grows by at most 1.5x --memory."""

from __future__ import annotations

import time

import pytest
from pymemcache.client.base import Client

from flotilla_server import FlotillaProcess

MEMORY = 32 * 1024 * 1024
# RSS may grow over its idle baseline by at most this much: the accounted bytes (<= MEMORY) plus
# what the per-item overhead estimate misses and what malloc keeps in its free lists.
RSS_GROWTH_BOUND = MEMORY * 3 // 2


@pytest.mark.parametrize("value_size", [100, 1_000, 30_000])
def test_writing_four_times_the_limit_stays_within_it(value_size: int) -> None:
    with FlotillaProcess(["cache", "--memory", "32MiB", "--threads", "2"]) as server:
        baseline = server.rss_bytes()
        client = Client(server.data, timeout=10)
        value = b"v" * value_size
        written = 0
        index = 0
        while written < 4 * MEMORY:
            client.set_many({f"key-{index + j}": value for j in range(100)}, noreply=True)
            index += 100
            written += 100 * value_size
        stats = client.stats()
        growth = server.rss_bytes() - baseline
        assert stats[b"limit_maxbytes"] == MEMORY
        assert 0 < stats[b"bytes"] <= MEMORY
        assert stats[b"evictions"] > 0
        # The newest item is still there, the oldest were evicted.
        assert client.get(f"key-{index - 1}") == value
        assert client.get("key-0") is None
        assert growth <= RSS_GROWTH_BOUND, f"RSS grew by {growth >> 20} MiB for a {MEMORY >> 20} MiB limit"
        assert server.terminate() == 0


def test_mixed_sizes_up_to_a_megabyte_stay_within_the_bound() -> None:
    """Values from 100 B to 1 MB (log-uniform, a fixed seed), four times --memory written: the
    allocator's fragmentation must not take RSS past the bound either (issue 15's bad input)."""
    import random

    rng = random.Random(15)
    with FlotillaProcess(["cache", "--memory", "32MiB", "--threads", "2"]) as server:
        baseline = server.rss_bytes()
        client = Client(server.data, timeout=10)
        written = 0
        index = 0
        while written < 4 * MEMORY:
            size = int(10 ** rng.uniform(2, 6))
            client.set(f"mixed-{index}", b"m" * size, noreply=True)
            index += 1
            written += size
        stats = client.stats()
        growth = server.rss_bytes() - baseline
        assert 0 < stats[b"bytes"] <= MEMORY
        assert stats[b"evictions"] > 0
        assert growth <= RSS_GROWTH_BOUND, f"RSS grew by {growth >> 20} MiB for a {MEMORY >> 20} MiB limit"
        assert server.terminate() == 0


# Half-received requests are held to --request-memory across all connections (issue 13): 150
# clients each send 900 kB of a 1 MB value and stop. Before, each held its 900 kB (135 MB in
# all, 1.1 GB with 1,000 clients); now the clients past the budget are refused and closed.
REQUEST_MEMORY = 16 * 1024 * 1024
PARTIAL_CLIENTS = 150
PARTIAL_BYTES = 900_000
# Growth over the idle process allowed: the budget, plus the read buffers of the reads in
# progress and what malloc keeps.
REQUEST_RSS_BOUND = REQUEST_MEMORY + 32 * 1024 * 1024


def _partial_sets_hold_within_the_budget(server) -> None:
    import socket

    baseline = server.rss_bytes()
    header = "set held-{} 0 0 1000000\r\n"
    clients = []
    refused = 0
    try:
        for index in range(PARTIAL_CLIENTS):
            sock = socket.create_connection(server.data, timeout=5)
            sock.sendall(header.format(index).encode() + b"h" * PARTIAL_BYTES)
            clients.append(sock)
        time.sleep(0.5)
        growth = server.rss_bytes() - baseline
        for sock in clients:
            sock.settimeout(0.2)
            try:
                if sock.recv(100).startswith(b"SERVER_ERROR out of memory reading request"):
                    refused += 1
            except (socket.timeout, ConnectionResetError):
                pass
        assert growth <= REQUEST_RSS_BOUND, (
            f"{PARTIAL_CLIENTS} half-sent values grew the process by {growth >> 20} MiB "
            f"(--request-memory {REQUEST_MEMORY >> 20} MiB, bound {REQUEST_RSS_BOUND >> 20} MiB)")
        assert refused >= PARTIAL_CLIENTS - (REQUEST_MEMORY // PARTIAL_BYTES) - 2, f"only {refused} refused"
        # Operators see the refusals and what is held on /metrics.
        status, _, body = server.get("/metrics")
        metrics = dict(line.rsplit(" ", 1) for line in body.decode().splitlines()
                       if line.startswith("flotilla_request_memory_"))
        assert status == 200 and float(metrics["flotilla_request_memory_refused_total"]) >= refused
        assert float(metrics["flotilla_request_memory_limit_bytes"]) == REQUEST_MEMORY
        # Everyone else is served, large values included.
        client = Client(server.data, timeout=10)
        assert client.set("after", b"a" * 500_000) is True
        assert client.get("after") == b"a" * 500_000
    finally:
        for sock in clients:
            sock.close()


def test_half_received_requests_are_held_to_the_request_memory_budget() -> None:
    with FlotillaProcess(["cache", "--memory", "32MiB", "--request-memory", "16MiB", "--threads", "2"]) as server:
        _partial_sets_hold_within_the_budget(server)
        assert server.terminate() == 0


def test_half_received_requests_through_the_proxy_are_held_to_the_budget() -> None:
    from proxy_support import Memcached

    with Memcached() as shard, FlotillaProcess(["cache-proxy", "--shards", shard.address, "--replicas", "1",
                                                "--request-memory", "16MiB", "--threads", "2"]) as proxy:
        _partial_sets_hold_within_the_budget(proxy)
        assert proxy.terminate() == 0

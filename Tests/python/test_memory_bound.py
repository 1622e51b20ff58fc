"""Memory stays bounded by --memory: after writing 4x --memory, accounted bytes stay within the
limit (older items are evicted) and the process's resident memory grows by at most 1.5x --memory."""

from __future__ import annotations

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

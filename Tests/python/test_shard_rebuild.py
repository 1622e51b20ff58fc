"""A shard that restarts empty is rebuilt from its peers, so that a second failure loses nothing.

With `--replicas 2`, every key is on two shards. A shard killed and restarted comes back empty:
before the proxy rebuilt it, each of its keys had one copy left, and a second failure lost the
keys of that copy (1,070 of 3,000 acknowledged keys in issue 13). The proxy now finds the
restart on its probes (a new pid, or an uptime shorter than expected), keeps the shard out of
reads, copies every key of its replica sets back from its peers (listed with
`lru_crawler metadump`), and only then lets it serve.

Run (after scripts/install-test-deps.sh and a debug build):

    .build-venv/bin/python -m pytest Tests/python/test_shard_rebuild.py -q -s
"""

from __future__ import annotations

import json
import os
import subprocess
import time

from pymemcache.client.base import Client

from flotilla_server import flotilla_binary
from proxy_support import CacheProxy, CacheShards, Shards


ABANDONED = "shard rebuild abandoned: the keys whose other copy a failing peer holds keep one copy"
STOPPED_ON_A_PEER = "shard rebuild stopped on a peer: it is listed again from the beginning"


def write_once(client: Client, keys: list[str]) -> None:
    """Stores each key once, acknowledged (quorum of 2: both replicas)."""
    for start in range(0, len(keys), 500):
        failed = client.set_many({key: f"value-of-{key}" for key in keys[start:start + 500]}, noreply=False)
        assert not failed, f"{len(failed)} writes not acknowledged, e.g. {failed[:3]}"


def read_all(client: Client, keys: list[str]) -> dict:
    found: dict = {}
    for start in range(0, len(keys), 100):
        found.update(client.get_many(keys[start:start + 100]))
    return found


def verify(spec: str, keys: list[str], tmp_path) -> subprocess.CompletedProcess:
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("\n".join(keys) + "\n")
    command = [flotilla_binary(), "cache-proxy", "verify", "--shards", spec, "--replicas", "2",
               "--keys-file", str(keys_file)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def shard_state(proxy: CacheProxy, address: str) -> dict:
    status, _, body = proxy.get("/v1/shards")
    assert status == 200
    return next(shard for shard in json.loads(body)["shards"] if shard["address"] == address)


def test_restarted_memcached_shard_is_rebuilt_and_a_second_failure_loses_nothing(tmp_path):
    """Issue 13's run: 3,000 write-once keys, 3 memcached shards, kill -9 and restart shard 3
    with no traffic, then kill shard 1: every acknowledged key is still read back."""
    with Shards(3) as shards, CacheProxy(shards, "--replicas", "2", "--shard-timeout", "500ms") as proxy:
        client = proxy.client(timeout=5)
        keys = [f"once:{i}" for i in range(3_000)]
        write_once(client, keys)
        placement = shards.placement(keys)
        on_third = sum(1 for held in placement.values() if 2 in held)
        assert on_third > 1_000, f"only {on_third} keys on shard 3"
        time.sleep(1.5)  # the proxy has seen each shard's process at least once

        shards[2].kill()
        shards[2].start()  # same port, empty, and no client traffic at all
        rebuilt = proxy.wait_for_log("shard rebuilt", lambda e: e.get("shard") == shards[2].address, timeout=30)
        assert rebuilt is not None, "no 'shard rebuilt' within 30 s of the restart:\n" + "\n".join(proxy.log[-15:])
        restarted = proxy.log_entries("shard restarted: rebuilding it from its peers before it serves reads")
        assert restarted, "the restart was not reported"
        print(f"\n[rebuild] memcached shard: {rebuilt.get('keys-copied')} keys copied in {rebuilt.get('took')}")
        assert int(rebuilt["keys-copied"]) >= on_third
        state = shard_state(proxy, shards[2].address)
        assert state["state"] == "up" and state["rebuild"]["restarts"] == 1 and state["rebuild"]["completed"] == 1
        assert not state["rebuild"]["needed"] and not state["rebuild"]["running"]

        report = verify(shards.spec, keys, tmp_path)
        assert report.returncode == 0, report.stdout + report.stderr
        assert "held by some only 0" in report.stdout and "consistent        3000" in report.stdout, report.stdout

        shards[0].kill()  # the second failure
        found = read_all(client, keys)
        lost = [key for key in keys if found.get(key) != f"value-of-{key}".encode()]
        assert not lost, f"{len(lost)} of {len(keys)} acknowledged keys lost after the second failure, e.g. {lost[:5]}"
        client.close()


def test_a_dead_peer_does_not_stop_the_rebuild_from_the_others():
    """A peer killed just before the restart: its listing fails and is tried again a second
    later, after the live peer's keys were copied; once the proxy's probes mark it down it is
    skipped (or after five tries the rebuild is abandoned), and the restarted shard serves."""
    with Shards(3) as shards, CacheProxy(shards, "--replicas", "2") as proxy:
        client = proxy.client(timeout=5)
        keys = [f"peer:{i}" for i in range(1_500)]
        write_once(client, keys)
        placement = shards.placement(keys)
        from_live_peer = [key for key, held in placement.items() if held == {1, 2}]
        assert len(from_live_peer) > 200, f"only {len(from_live_peer)} keys on shards 2 and 3"
        time.sleep(1.5)

        shards[0].kill()
        shards[2].kill()
        shards[2].start()
        up = proxy.wait_for_log("shard up", lambda e: e.get("shard") == shards[2].address, timeout=30)
        assert up is not None, "the restarted shard does not serve again:\n" + "\n".join(proxy.log[-15:])
        stopped = [e for e in proxy.log_entries(STOPPED_ON_A_PEER) if e.get("peer") == shards[0].address]
        assert stopped, "the dead peer's listing did not fail"
        ended = proxy.log_entries("shard rebuilt") + proxy.log_entries(ABANDONED)
        assert ended, "the rebuild neither finished nor was abandoned"
        state = shard_state(proxy, shards[2].address)
        assert state["state"] == "up" and not state["rebuild"]["needed"] and state["rebuild"]["failures"] >= 1
        held = shards[2].values(from_live_peer)
        assert len(held) == len(from_live_peer), f"{len(held)} of {len(from_live_peer)} keys of the live peer copied"
        client.close()


def test_restarted_flotilla_cache_shard_is_rebuilt_from_100k_keys(tmp_path):
    """The same with `flotilla cache` shards (their own `lru_crawler metadump`) and 100,000 keys;
    prints how long the rebuild took at the default --rebuild-rate (20,000 keys/s)."""
    count = int(os.environ.get("FLOTILLA_REBUILD_KEYS", "100000"))
    # A debug build on two busy cores answers a pipelined batch slowly while it also lists 100,000
    # keys: the deadline is the build's, not what is tested here.
    with CacheShards(3) as shards, CacheProxy(shards.spec, "--replicas", "2", "--shard-timeout", "2s") as proxy:
        client = proxy.client(timeout=10)
        keys = [f"k{i}" for i in range(count)]
        write_once(client, keys)
        time.sleep(1.5)

        shards.restart(2)
        rebuilt = proxy.wait_for_log("shard rebuilt", lambda e: e.get("shard") == shards.address(2), timeout=120)
        assert rebuilt is not None, "no 'shard rebuilt' within 120 s:\n" + "\n".join(proxy.log[-15:])
        state = shard_state(proxy, shards.address(2))
        copied = int(rebuilt["keys-copied"])
        print(f"\n[rebuild] flotilla cache shard: {copied} of {count} keys copied in {rebuilt.get('took')}, "
              f"{state['rebuild']['keysScanned']} listed by its peers")
        # About two thirds of the keys have the third shard as one of their two replicas.
        assert count * 0.55 < copied < count * 0.8, copied

        report = verify(shards.spec, keys, tmp_path)
        assert report.returncode == 0, report.stdout + report.stderr
        assert "held by some only 0" in report.stdout, report.stdout

        shards.kill(0)
        found = read_all(client, keys)
        lost = [key for key in keys if found.get(key) != f"value-of-{key}".encode()]
        assert not lost, f"{len(lost)} of {count} keys lost after the second failure, e.g. {lost[:5]}"
        client.close()

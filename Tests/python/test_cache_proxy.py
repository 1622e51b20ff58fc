"""`flotilla cache-proxy` in front of real memcached shards, driven by pymemcache and raw sockets.

Run (after scripts/install-test-deps.sh and a debug build):

    .build-venv/bin/python -m pytest Tests/python/test_cache_proxy.py -q

Every test starts its own memcached shards (`memcached -U 0 -t 1 -m 64` on free loopback ports)
and its own proxy (FLOTILLA_BIN, default <repo>/.build/debug/flotilla), and asks the shards
directly to see where keys really are. Protocol answers are compared with a lone memcached.
The shard-failure test prints its measured error rate and lost writes (shown without -s).
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter

import pytest
from pymemcache.exceptions import MemcacheClientError

from flotilla_server import REPO, require_peer
from proxy_support import (CacheProxy, CacheShards, Memcached, Raw, Shards, first_difference, free_port,
                           require_memcached, third_client_latencies, wait_for)

FLOTILLA_BIN = os.environ.get("FLOTILLA_BIN") or str(REPO / ".build" / "debug" / "flotilla")
MiB = 1 << 20


@pytest.fixture
def shards():
    require_memcached()
    with Shards(4) as s:
        yield s


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def set_all(client, items: dict[str, str]) -> None:
    for key, value in items.items():
        assert client.set(key, value) is True, key


# --------------------------------------------------------------------------------------------
# 1. Placement
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("replicas,distribution", [(2, "ring"), (3, "ring"), (2, "ketama")])
def test_each_key_lives_on_exactly_n_shards(shards, replicas, distribution):
    with CacheProxy(shards, "--replicas", str(replicas), "--distribution", distribution) as proxy:
        client = proxy.client()
        items = {f"place:{i}": f"value-{i}" for i in range(200)}
        set_all(client, items)

        where = shards.placement(items)
        copies = Counter(len(held) for held in where.values())
        assert copies == {replicas: 200}, f"copies per key (count: keys): {dict(copies)}"
        per_shard = Counter(index for held in where.values() for index in held)
        if distribution == "ring":
            # (ketama hashes keys with twemproxy's 32-bit fnv1a_64, which clusters keys this alike)
            assert all(per_shard[i] > 0 for i in range(4)), f"keys per shard: {dict(per_shard)}"
        for index, shard in enumerate(shards):
            mine = [key for key, held in where.items() if index in held]
            assert shard.values(mine) == {key: items[key].encode() for key in mine}

        assert client.get_many(list(items)) == {key: value.encode() for key, value in items.items()}
        for key in list(items)[:50]:
            assert client.get(key) == items[key].encode()
        stats = proxy.stats()
        assert stats["shards"] == "4" and stats["shards_down"] == "0" and stats["replicas"] == str(replicas)
        for shard in shards:
            assert stats[f"shard:{shard.address}:state"] == "up"
        client.close()


# --------------------------------------------------------------------------------------------
# 2. The protocol through the proxy, compared with a lone memcached
# --------------------------------------------------------------------------------------------


def protocol_scenario(address: tuple[str, int], make_client) -> list:
    """Runs the same commands on a server and returns what it observed (no CAS uniques)."""
    seen: list = []
    c = make_client()
    note = seen.append

    note(("set", c.set("p:a", "alpha")))
    note(("get", c.get("p:a")))
    note(("get-miss", c.get("p:none")))

    many = {f"p:m{i}": f"mv{i}" for i in range(40)}
    for key, value in many.items():
        c.set(key, value)
    wanted = [f"p:m{i}" if i % 4 else f"p:x{i}" for i in range(40)]
    note(("get_many", sorted(c.get_many(wanted).items())))

    value, unique = c.gets("p:a")
    note(("gets", value, isinstance(unique, bytes) and unique.isdigit()))
    note(("cas-ok", c.cas("p:a", "beta", unique)))
    note(("cas-stale", c.cas("p:a", "gamma", unique)))
    note(("cas-missing", c.cas("p:none", "x", b"1")))
    note(("after-cas", c.get("p:a")))
    _, fresh = c.gets("p:a")
    note(("cas-fresh", fresh != unique, c.cas("p:a", "delta", fresh), c.get("p:a")))

    note(("add-existing", c.add("p:a", "no")))
    note(("add-new", c.add("p:b", "bee")))
    note(("replace-missing", c.replace("p:none", "x")))
    note(("replace", c.replace("p:b", "BEE"), c.get("p:b")))
    note(("append-missing", c.append("p:none", "x")))
    note(("append", c.append("p:b", ">>"), c.prepend("p:b", "<<"), c.get("p:b")))

    c.set("p:n", "10")
    note(("incr", c.incr("p:n", 5), c.decr("p:n", 20), c.incr("p:n", 7), c.get("p:n")))
    note(("incr-missing", c.incr("p:none", 1), c.decr("p:none", 1)))
    try:
        note(("incr-text", c.incr("p:a", 1)))
    except MemcacheClientError as error:
        note(("incr-text", "client error", str(error)))

    note(("delete", c.delete("p:b"), c.delete("p:b"), c.get("p:b")))
    note(("touch", c.touch("p:a", 100), c.touch("p:none", 100), c.get("p:a")))
    note(("noreply", c.set("p:q", "quiet", noreply=True), c.get("p:q")))
    note(("noreply-delete", c.delete("p:q", noreply=True), c.get("p:q")))
    note(("version", c.version().startswith(b"1.")))

    # Exact bytes, one connection, pipelined: multi-get order (with a repeated key), noreply, meta.
    keys = " ".join(["p:m1", "p:x0", "p:m2", "p:m3", "p:m1", "p:m5", "p:m39", "p:m6"])
    with Raw(address) as raw:
        for request in [
            f"get {keys}\r\n".encode(),
            b"set p:r 7 0 3 noreply\r\nraw\r\nget p:r\r\n",
            b"ms p:meta 2 T0 F5\r\nhi\r\n",
            b"mg p:meta v f\r\n",
            b"mg p:meta s v k Oabc\r\n",
            b"mg p:gone v\r\n",
            b"mg p:gone v q\r\n",
            b"ms p:meta2 3 q\r\nabc\r\nmg p:meta2 v q\r\n",
            b"ms p:cnt 1\r\n5\r\nma p:cnt v\r\nma p:cnt MD D2 v\r\n",
            b"ma p:gone\r\n",
            b"md p:meta q\r\nmg p:meta v\r\nmd p:meta q\r\nmd p:meta\r\n",
            b"mn\r\n",
        ]:
            note(("raw", request, raw.ask(request)))

    note(("flush_all", c.flush_all(), c.get("p:a"), c.get_many(["p:m1", "p:m2"])))
    c.close()
    return seen


def test_protocol_through_the_proxy_matches_memcached(shards):
    with Memcached() as lone:
        expected = protocol_scenario(("127.0.0.1", lone.port), lone.client)
    with CacheProxy(shards) as proxy:
        got = protocol_scenario(proxy.data, proxy.client)
        for want, have in zip(expected, got):
            assert have == want, f"{want[0]}: memcached {want[1:]!r}, proxy {have[1:]!r}"
        assert len(got) == len(expected)

        client = proxy.client()
        version = client.version()
        assert version.startswith(b"1.6") and b"flotilla-proxy" in version
        client.close()


def test_cas_copies_the_new_value_to_every_replica(shards):
    with CacheProxy(shards, "--replicas", "3") as proxy:
        client = proxy.client()
        keys = [f"cas:{i}" for i in range(20)]
        set_all(client, {key: "old" for key in keys})
        for key in keys:
            value, unique = client.gets(key)
            assert value == b"old"
            assert client.cas(key, "new", unique) is True
        placement = shards.placement(keys)
        assert all(len(held) == 3 for held in placement.values())

        def replicas_agree() -> bool:
            return all(shards[i].values([key]).get(key) == b"new" for key, held in placement.items() for i in held)

        assert wait_for(replicas_agree, timeout=3), "a replica kept the value from before the cas"
        client.close()


# --------------------------------------------------------------------------------------------
# 3. A shard killed under load (acceptance test)
# --------------------------------------------------------------------------------------------


def test_shard_killed_under_load_loses_no_acknowledged_write(shards, capsys):
    run_for, kill_at, settle = 6.0, 2.0, 1.0
    victim = shards[1]
    args = ["--replicas", "2", "--consistency", "quorum", "--failure-limit", "3", "--shard-timeout", "200ms"]
    with CacheProxy(shards, *args) as proxy:
        lock = threading.Lock()
        stop = threading.Event()
        acked: dict[str, int] = {}  # key -> latest acknowledged version
        acked_keys: list[str] = []
        # (start time, operation, ok, detail)
        events: list[tuple[float, str, bool, str]] = []

        def writer() -> None:
            rng = random.Random(1)
            client = proxy.client(timeout=2)
            version = 0
            while not stop.is_set():
                version += 1
                with lock:
                    key = rng.choice(acked_keys) if acked_keys and rng.random() < 0.3 else f"load:{version}"
                started = time.monotonic()
                detail = ""
                try:
                    ok = client.set(key, str(version)) is True
                except Exception as error:  # noqa: BLE001 - every failure counts
                    ok, detail = False, f"{type(error).__name__}: {error}"
                with lock:
                    if ok:
                        if key not in acked:
                            acked_keys.append(key)
                        acked[key] = max(acked.get(key, 0), version)
                    events.append((started, "set", ok, detail))
            client.close()

        def reader() -> None:
            rng = random.Random(2)
            client = proxy.client(timeout=2)
            while not stop.is_set():
                with lock:
                    if not acked_keys:
                        key = None
                    else:
                        key = rng.choice(acked_keys)
                        floor = acked[key]
                if key is None:
                    time.sleep(0.001)
                    continue
                started = time.monotonic()
                detail = ""
                try:
                    value = client.get(key)
                    if value is None:
                        ok, detail = False, "miss"
                    elif int(value) < floor:
                        ok, detail = False, f"stale: {int(value)} < {floor}"
                    else:
                        ok = True
                except Exception as error:  # noqa: BLE001
                    ok, detail = False, f"{type(error).__name__}: {error}"
                with lock:
                    events.append((started, "get", ok, detail))
            client.close()

        threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
        begin = time.monotonic()
        for thread in threads:
            thread.start()
        try:
            time.sleep(kill_at)
            killed = time.monotonic()
            victim.kill()
            down = proxy.wait_for_log("shard down", lambda e: e.get("shard") == victim.address, timeout=3)
            detected = time.monotonic() - killed
            time.sleep(max(0.0, begin + run_for - time.monotonic()))
        finally:
            stop.set()
            for thread in threads:
                thread.join(10)
        assert not any(thread.is_alive() for thread in threads), "a load thread hung"

        with lock:
            window = [e for e in events if e[0] >= killed + settle]
            before = [e for e in events if e[0] < killed]
            final = dict(acked)
        errors = [e for e in window if not e[2]]
        rate = len(errors) / max(1, len(window))

        # Every acknowledged write reads back with its latest acknowledged value (or a newer one).
        client = proxy.client(timeout=5)
        keys = list(final)
        found: dict[str, bytes] = {}
        for start in range(0, len(keys), 100):
            found.update(client.get_many(keys[start:start + 100]))
        client.close()
        lost = [key for key in keys if key not in found]
        stale = [(key, int(found[key]), final[key]) for key in keys if key in found and int(found[key]) < final[key]]

        report = (
            f"\n[shard-kill] ops before kill={len(before)} (errors {sum(not e[2] for e in before)}), "
            f"ops from kill+{settle:.0f}s={len(window)}, errors={len(errors)}, error rate={rate:.4%}; "
            f"acknowledged keys={len(keys)}, lost={len(lost)}, stale={len(stale)}; "
            f"shard down detected after {detected * 1000:.0f} ms"
        )
        with capsys.disabled():
            print(report)
            for event in [e for e in events if not e[2]][:8]:
                print(f"[shard-kill]   error at kill{event[0] - killed:+.3f}s {event[1]}: {event[3]}")

        assert down is not None, "no 'shard down' log line for the killed shard"
        assert len(window) >= 500, f"too little load to measure: {len(window)} ops"
        assert rate <= 0.001, report + f"; first errors: {errors[:5]}"
        assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"
        assert not stale, f"{len(stale)} stale values (key, read, acknowledged), e.g. {stale[:5]}"
        stats = proxy.stats()
        assert stats["shards_down"] == "1" and stats[f"shard:{victim.address}:state"] == "down"


# --------------------------------------------------------------------------------------------
# 4. A shard comes back: hints are replayed
# --------------------------------------------------------------------------------------------


def test_returning_shard_gets_the_writes_it_missed(shards):
    victim_index = 0
    victim = shards[victim_index]
    args = ["--replicas", "2", "--failure-limit", "3", "--shard-timeout", "200ms"]
    with CacheProxy(shards, *args) as proxy:
        client = proxy.client(timeout=3)
        before = {f"back:{i}": "v1" for i in range(900)}  # about 600 on shard 0: 300 rewritten, the rest not
        set_all(client, before)
        placement = shards.placement(before)
        homed = [key for key, held in placement.items() if victim_index in held][:300]
        assert len(homed) >= 100, f"only {len(homed)} of 900 keys live on shard 0"

        victim.kill()

        def marked_down() -> bool:
            try:
                client.set(homed[0], "v1")  # requests find the dead shard
            except Exception:  # noqa: BLE001 - failures before it is marked down are expected
                pass
            return proxy.stats()["shards_down"] == "1"

        assert wait_for(marked_down, timeout=5, step=0.05), "the killed shard was never marked down"

        during = {key: "v2" for key in homed}
        set_all(client, during)
        hints = int(proxy.stats()[f"shard:{victim.address}:pending_hints"])
        assert hints >= len(during), f"{hints} hints for {len(during)} writes"

        victim.start()  # same port, empty
        restarted = time.monotonic()
        up = proxy.wait_for_log("shard up", lambda e: e.get("shard") == victim.address, timeout=5)
        assert up is not None, "no 'shard up' log line within 5 s of the restart:\n" + "\n".join(proxy.log[-10:])
        replayed = int(up.get("hints-replayed", "0"))
        assert replayed > 0, f"shard up without replaying hints: {up}"
        print(f"shard up after {time.monotonic() - restarted:.2f}s, hints replayed: {replayed}")

        held = victim.values(during)
        missing = [key for key in during if key not in held]
        wrong = [key for key, value in held.items() if value != b"v2"]
        assert not missing and not wrong, f"restarted shard lacks {len(missing)} and has {len(wrong)} wrong values"
        # It came back empty (a new process): the keys written before it went down were rebuilt
        # from their other replicas before it served again, not only the hinted ones.
        untouched = [key for key, shards_of_key in placement.items() if victim_index in shards_of_key
                     and key not in during]
        assert untouched, "every key of shard 0 was rewritten while it was down"
        rebuilt = victim.values(untouched)
        assert len(rebuilt) == len(untouched) and set(rebuilt.values()) == {b"v1"}, \
            f"restarted shard holds {len(rebuilt)} of its {len(untouched)} keys written before it went down"

        stats = proxy.stats()
        assert stats["shards_down"] == "0" and stats[f"shard:{victim.address}:state"] == "up"
        expected = {**{key: b"v1" for key in before}, **{key: b"v2" for key in during}}
        got: dict = {}
        keys = list(expected)
        for start in range(0, len(keys), 100):
            got.update(client.get_many(keys[start:start + 100]))
        assert got == expected, f"{sum(got.get(k) != v for k, v in expected.items())} keys read wrong after return"
        client.close()


# --------------------------------------------------------------------------------------------
# 5. A slow (stopped) shard holds up only its own keys
# --------------------------------------------------------------------------------------------


def test_stopped_shard_does_not_slow_other_keys(shards):
    timeout = 0.3
    victim_index = 2
    victim = shards[victim_index]
    args = ["--replicas", "2", "--failure-limit", "3", "--shard-timeout", "300ms"]
    with CacheProxy(shards, *args) as proxy:
        setup = proxy.client()
        items = {f"slow:{i}": f"v{i}" for i in range(300)}
        set_all(setup, items)
        setup.close()
        placement = shards.placement(items)
        clear = [key for key, held in placement.items() if victim_index not in held]
        touched = [key for key, held in placement.items() if victim_index in held]
        assert clear and touched

        stop = threading.Event()
        clear_latency: list[float] = []
        clear_errors: list[str] = []
        # (latency, operation, ok, detail, start)
        touched_results: list[tuple[float, str, bool, str, float]] = []

        def drive_clear() -> None:
            client = proxy.client(timeout=5)
            i = 0
            while not stop.is_set():
                key = clear[i % len(clear)]
                started = time.monotonic()
                try:
                    if i % 2:
                        ok = client.set(key, items[key]) is True
                    else:
                        ok = client.get(key) == items[key].encode()
                    if not ok:
                        clear_errors.append(f"{key}: wrong answer")
                except Exception as error:  # noqa: BLE001
                    clear_errors.append(f"{key}: {type(error).__name__}: {error}")
                clear_latency.append(time.monotonic() - started)
                i += 1
            client.close()

        def drive_touched() -> None:
            client = proxy.client(timeout=5)
            i = 0
            while not stop.is_set():
                key = touched[i % len(touched)]
                started = time.monotonic()
                operation = "set" if i % 2 else "get"
                detail = ""
                try:
                    if operation == "set":
                        ok = client.set(key, items[key]) is True
                    else:
                        ok = client.get(key) == items[key].encode()
                except Exception as error:  # noqa: BLE001 - a write may fail before the shard is down
                    ok, detail = False, f"{type(error).__name__}: {error}"
                touched_results.append((time.monotonic() - started, operation, ok, detail, started))
                i += 1
            client.close()

        victim.pause()
        try:
            threads = [threading.Thread(target=drive_clear), threading.Thread(target=drive_touched)]
            begin = time.monotonic()
            for thread in threads:
                thread.start()
            down = proxy.wait_for_log("shard down", lambda e: e.get("shard") == victim.address, timeout=3)
            down_at = time.monotonic()
            time.sleep(max(0.0, begin + 3.0 - time.monotonic()))
            stop.set()
            for thread in threads:
                thread.join(10)
            assert not any(thread.is_alive() for thread in threads), "a client hung on the stopped shard"
        finally:
            victim.resume()

        p99 = percentile(clear_latency, 0.99)
        print(f"keys clear of the stopped shard: {len(clear_latency)} ops, p99 {p99 * 1000:.1f} ms; "
              f"keys on it: {len(touched_results)} ops, max {max(r[0] for r in touched_results) * 1000:.0f} ms")
        assert len(clear_latency) >= 50
        assert not clear_errors, clear_errors[:5]
        assert p99 < timeout, f"p99 {p99 * 1000:.1f} ms for keys clear of the stopped shard"

        bound = timeout * 3 + 0.6  # three attempts (two retries), the expiry tick, and slack
        slowest = max(touched_results)
        assert slowest[0] < bound, f"a request for a key on the stopped shard took {slowest[0]:.2f}s: {slowest}"
        bad_reads = [r for r in touched_results if r[1] == "get" and not r[2]]
        assert not bad_reads, f"reads did not fall back to the live replica: {bad_reads[:5]}"
        assert down is not None, "the stopped shard was never marked down"
        late = [r for r in touched_results if r[4] > down_at + 0.05]
        assert late and all(r[2] for r in late), f"requests still fail after the shard is down: {late[:5]}"


# --------------------------------------------------------------------------------------------
# 6. --consistency one: a stopped replica does not hold writes up
# --------------------------------------------------------------------------------------------


def test_consistency_one_acknowledges_with_a_replica_stopped(shards):
    victim_index = 3
    victim = shards[victim_index]
    args = ["--replicas", "2", "--consistency", "one", "--shard-timeout", "1s", "--failure-limit", "3"]
    with CacheProxy(shards, *args) as proxy:
        client = proxy.client(timeout=5)
        probe = {f"one:{i}": "v1" for i in range(200)}
        set_all(client, probe)
        touched = [key for key, held in shards.placement(probe).items() if victim_index in held][:60]
        assert touched

        victim.pause()
        try:
            latencies = []
            for key in touched:
                started = time.monotonic()
                assert client.set(key, "v2") is True, key
                latencies.append(time.monotonic() - started)
            assert max(latencies) < 1.0, f"slowest set {max(latencies):.3f}s with --consistency one"
            print(f"consistency one, replica stopped: {len(latencies)} sets, max {max(latencies) * 1000:.1f} ms")
            for key in touched:
                assert client.get(key) == b"v2", key
        finally:
            victim.resume()
        client.close()


# --------------------------------------------------------------------------------------------
# 7. Bad input, and a shard that is unreachable from the start
# --------------------------------------------------------------------------------------------

BAD_INPUT = [
    b"bogus\r\n",
    b"\r\n",
    b"GET k\r\n",
    b"get\r\n",
    b"set k 0 0\r\n",
    b"set k 0 0 abc\r\n",
    b"set k 0 0 -1\r\n",
    b"get " + b"k" * 251 + b"\r\n",
    b"incr k abc\r\n",
    b"set k 0 0 3\r\nabcdef\r\n",
    b"set big 0 0 " + str(MiB + 1000).encode() + b"\r\n" + b"x" * (MiB + 1000) + b"\r\n",
    b"get big\r\n",
    b"set k 0 0 2\r\nok\r\nget k\r\n",
]


def test_bad_input_gets_memcached_answers_and_the_connection_goes_on(shards):
    with Memcached() as lone, Raw(("127.0.0.1", lone.port)) as raw:
        expected = [raw.ask(request) for request in BAD_INPUT]
    assert b"SERVER_ERROR object too large for cache\r\n" in expected
    with CacheProxy(shards) as proxy, Raw(proxy.data) as raw:
        for request, want in zip(BAD_INPUT, expected):
            assert raw.ask(request) == want, f"request {request[:40]!r}"
        assert raw.ask(b"version\r\n").startswith(b"VERSION ")


# A client that asks for large values and never reads its replies: 400 gets of 40 keys of 500 kB
# each, 8 GB of replies. The proxy must stop asking the shards for it once its replies wait
# unsent, as memcached stops serving it, and keep serving everyone else. Before issue 13 the
# proxy's memory grew by gigabytes, for as long as the client stayed.
NON_READER_VALUE = 500_000
NON_READER_KEYS = 40
NON_READER_GETS = 400
# Growth over the idle proxy allowed while the client stays: one request's reply (20 MB) is
# started, and it is held about five times on its way (the shards' read buffers, the merged hits,
# the client's outbound buffer, each grown by doubling): about 100 MiB at its peak, then about
# 20 MiB while it waits unsent. All 400 requests' replies would be 8 GB.
NON_READER_RSS_BOUND = 160 * MiB


def test_a_client_that_does_not_read_its_replies_does_not_grow_the_proxy(shards):
    with CacheProxy(shards, "--replicas", "1", threads=1) as proxy:
        client = proxy.client()
        keys = [f"big:{i}" for i in range(NON_READER_KEYS)]
        value = b"v" * NON_READER_VALUE
        for key in keys:
            assert client.set(key, value) is True, key
        assert client.set("small", b"ok") is True
        baseline = proxy.rss_bytes()

        hostile = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        hostile.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hostile.settimeout(5)
        hostile.connect(proxy.data)
        request = ("get " + " ".join(keys) + "\r\n").encode()
        hostile.setblocking(False)
        pending = request * NON_READER_GETS
        sent = 0
        peak = 0
        served = 0
        deadline = time.monotonic() + 4.0
        try:
            while time.monotonic() < deadline:
                if sent < len(pending):
                    try:
                        sent += hostile.send(pending[sent:])
                    except BlockingIOError:
                        pass
                # Everyone else is still served, one request at a time.
                assert client.get("small") == b"ok"
                served += 1
                peak = max(peak, proxy.rss_bytes() - baseline)
                time.sleep(0.01)
            assert peak <= NON_READER_RSS_BOUND, (
                f"the proxy grew by {peak / MiB:.0f} MiB for a client that does not read "
                f"(bound {NON_READER_RSS_BOUND / MiB:.0f} MiB)")
            assert served > 50
        finally:
            hostile.close()
        # Once it is gone, the proxy still answers, and the large values too.
        assert client.get_many(keys[:3]) == {key: value for key in keys[:3]}
        assert proxy.proc.poll() is None
        assert proxy.terminate() == 0


def test_a_client_that_reads_late_gets_every_reply_in_order(shards):
    # The same pause as above, then the client reads: the proxy resumes where it stopped.
    with CacheProxy(shards, "--replicas", "1", threads=1) as proxy:
        client = proxy.client()
        keys = [f"late:{i}" for i in range(40)]
        values = {key: (key.encode() * 20_000)[:100_000] for key in keys}
        for key, value in values.items():
            assert client.set(key, value) is True, key
        gets = 30
        request = ("get " + " ".join(keys) + "\r\n").encode()
        with Raw(proxy.data, timeout=20) as late:
            late.send(request * gets)
            time.sleep(1.0)  # the proxy stops once its replies wait unsent
            expected = b"".join(b"VALUE %s 0 %d\r\n%s\r\n" % (key.encode(), len(value), value)
                                for key, value in values.items()) + b"END\r\n"
            for index in range(gets):
                difference = first_difference(late.read_until(b"END\r\n", limit=8 << 20), expected)
                assert difference is None, f"reply {index}: {difference}; proxy log: {proxy.log[-5:]}"
        assert client.get("late:0") == values["late:0"]
        assert proxy.terminate() == 0


# Two clients each asking for 100,000 keys in one get, again and again, and a third asking for
# one key: the proxy serves the third between the slices of the large gets. Compared with what a
# lone memcached -t 1 gives the third client under the same load (it serves each large get in
# one piece: about 180 ms here); before issue 13 the proxy spent seconds per large get, timed its
# shards out and marked them down.
LARGE_GET_KEYS = 100_000


def test_large_multigets_do_not_stall_other_clients(shards):
    keys = [f"k{i}" for i in range(LARGE_GET_KEYS)]
    with Memcached() as lone:
        alone, alone_gets = third_client_latencies(("127.0.0.1", lone.port), lone.client(), keys, 3.0)
    with CacheProxy(shards, "--replicas", "1", threads=1) as proxy:
        proxied, proxied_gets = third_client_latencies(proxy.data, proxy.client(), keys, 3.0)
        assert proxy.proc.poll() is None
        assert not proxy.log_entries("shard down"), "a large get timed a shard out"
    memcached_p90, proxy_p90 = percentile(alone, 0.9), percentile(proxied, 0.9)
    print(f"[large-gets] third client p90 / p99: memcached -t 1 {memcached_p90 * 1000:.1f} / "
          f"{percentile(alone, 0.99) * 1000:.1f} ms ({len(alone)} gets, {alone_gets} large), proxy --threads 1 "
          f"{proxy_p90 * 1000:.1f} / {percentile(proxied, 0.99) * 1000:.1f} ms ({len(proxied)} gets, "
          f"{proxied_gets} large)")
    assert proxied_gets >= 2
    # p90, not p99: with a few samples a second the p99 is the one or two slowest, and in a debug
    # build decoding a 100,000-key request line alone can take a few hundred ms (release: ~1 ms;
    # docs/benchmarks.md has the release build's p99). The debug build's p90 is about a third of
    # memcached's here; at most memcached's leaves room for a busy machine.
    assert proxy_p90 <= memcached_p90, (
        f"the third client's p90 through the proxy, {proxy_p90 * 1000:.1f} ms, is over memcached's, "
        f"{memcached_p90 * 1000:.1f} ms")


def test_a_get_with_a_too_long_key_does_not_disturb_the_shard_connection(shards):
    # Found by the fuzz soak: memcached answers a get with a key over 250 bytes with CLIENT_ERROR
    # and drops the replies it had stacked for the same read, here a set's STORED from the same
    # write: the proxy's shared shard connection was then one reply out of step, the next
    # client got another's reply, and the shard was marked down.
    too_long = b"a" * 251
    with CacheProxy(shards, "--replicas", "2", "--failure-limit", "1", threads=1) as proxy:
        with Raw(proxy.data) as raw:
            assert raw.ask(b"set counter 0 0 5\r\nhello\r\nget " + too_long + b" k\r\n") == (
                b"STORED\r\nCLIENT_ERROR bad command line format\r\n")
        client = proxy.client()
        for index in range(20):
            assert client.set(f"after:{index}", b"v") is True
            assert client.get(f"after:{index}") == b"v"
        assert client.get("counter") == b"hello"
        assert not proxy.log_entries("shard down")


def read_to_end(address: tuple[str, int], request: bytes, timeout: float = 10.0) -> bytes:
    """Sends `request` in one write and returns every byte the server sends until it closes."""
    with Raw(address, timeout=timeout) as raw:
        raw.send(request)
        received = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = raw.sock.recv(65536)
            if not chunk:
                return received
            received += chunk
        raise AssertionError(f"still open after {timeout} s; got {len(received)} bytes")


def test_pipelined_burst_is_answered_in_order_before_quit_closes(shards):
    # One write holding hundreds of requests: the proxy spreads them over 4 shards, gathers each
    # shard read's replies per client and writes them in order; `quit` closes only after them.
    rng = random.Random(7)
    parts = []
    for index in range(300):
        key = f"burst:{index}"
        value = b"v" * rng.randrange(1, 3000)
        parts.append(b"set %s 0 0 %d\r\n%s\r\n" % (key.encode(), len(value), value))
    for _ in range(600):
        parts.append(b"get burst:%d\r\n" % rng.randrange(0, 320))
        if rng.random() < 0.05:
            parts.append(b"bogus\r\n")
        if rng.random() < 0.05:
            keys = b" ".join(b"burst:%d" % rng.randrange(0, 320) for _ in range(5))
            parts.append(b"get " + keys + b"\r\n")
    parts.append(b"quit\r\n")
    request = b"".join(parts)
    with Memcached() as lone:
        expected = read_to_end(("127.0.0.1", lone.port), request)
    assert expected.count(b"STORED\r\n") == 300
    with CacheProxy(shards) as proxy:
        assert read_to_end(proxy.data, request) == expected


def test_unreachable_shard_at_start_is_marked_down_and_bypassed(shards):
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    spec = ",".join([shards[0].address, shards[1].address, dead, shards[2].address])
    with CacheProxy(spec, "--replicas", "2", "--failure-limit", "3", "--shard-timeout", "200ms") as proxy:
        client = proxy.client(timeout=3)
        items = {f"dead:{i}": f"v{i}" for i in range(200)}
        deadline = time.monotonic() + 5
        while proxy.stats()["shards_down"] != "1" and time.monotonic() < deadline:
            for key in list(items)[:20]:
                try:
                    client.set(key, items[key])
                except Exception:  # noqa: BLE001 - before the shard is marked down
                    pass
        assert proxy.stats()[f"shard:{dead}:state"] == "down"
        assert proxy.wait_for_log("shard down", lambda e: e.get("shard") == dead, timeout=1)

        set_all(client, items)
        assert client.get_many(list(items)) == {key: value.encode() for key, value in items.items()}
        for key in list(items)[:50]:
            assert client.get(key) == items[key].encode()
        # The live shards hold two copies of every key between them.
        where = shards.placement(items)
        assert all(len(held) == 2 for held in where.values())
        client.close()


def test_two_names_for_one_shard_are_refused(shards):
    port = shards[0].port
    result = subprocess.run([FLOTILLA_BIN, "cache-proxy", "--shards", f"127.0.0.1:{port},localhost:{port}",
                             "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0, result.stderr
    assert f"127.0.0.1:{port} and localhost:{port} are the same server" in result.stderr, result.stderr


def test_route_without_a_key_is_400_with_a_reason(shards):
    with CacheProxy(shards) as proxy:
        status, _, body = proxy.get("/v1/route")
        assert status == 400 and b"give the key" in body, (status, body)


def test_readiness_follows_the_shards_from_the_start():
    """Shards that do not exist are down before any client asks (the proxy probes them at start)
    and the proxy is not ready; it becomes ready when a shard answers, and unready again when
    every shard is gone."""
    ports = [free_port(), free_port()]
    spec = ",".join(f"127.0.0.1:{port}" for port in ports)
    with CacheProxy(spec, "--replicas", "2", "--shard-timeout", "200ms") as proxy:
        def readyz() -> int:
            return proxy.get("/readyz")[0]

        assert wait_for(lambda: proxy.stats()["shards_down"] == "2", timeout=5), proxy.stats()
        assert readyz() == 503, "ready with no shard at all"
        with Memcached(port=ports[1]) as shard:
            assert wait_for(lambda: readyz() == 200, timeout=10), "not ready once a shard answers"
            assert proxy.stats()[f"shard:{shard.address}:state"] == "up"
            assert proxy.client().set("k", "v") is True
            shard.kill()
            assert wait_for(lambda: readyz() == 503, timeout=10), "still ready with every shard gone"
        downs = [e.get("shard") for e in proxy.log_entries("shard down")]
        assert sorted(downs) == sorted([f"127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[1]}",
                                        f"127.0.0.1:{ports[1]}"]), f"shard down logged {downs}"
        assert proxy.log_entries("not ready: every shard is down"), "the readiness change was not logged"


# --------------------------------------------------------------------------------------------
# 8. Command-line errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shards_arg,extra,needles",
    [
        ("", [], ["--shards", "no shards"]),
        ("127.0.0.1", [], ["--shards", "127.0.0.1", "port"]),
        ("127.0.0.1:11211,127.0.0.1:11212,127.0.0.1:11213", ["--replicas", "5"], ["--replicas", "5"]),
    ],
)
def test_bad_command_line_exits_2_naming_the_problem(shards_arg, extra, needles):
    command = [FLOTILLA_BIN, "cache-proxy", "--shards", shards_arg, *extra,
               "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2, f"exit {result.returncode}; stderr: {result.stderr}"
    for needle in needles:
        assert needle in result.stderr, f"{needle!r} not in: {result.stderr}"


def test_memcdump_through_the_proxy_lists_each_key_once():
    """libmemcached's `memcdump` against the proxy lists the keys of every shard, each once though
    every key is on two of them (over `flotilla cache` shards, which list every item)."""
    memcdump = require_peer(shutil.which("memcdump"),
                            "memcdump is not installed; install libmemcached-tools (scripts/install-test-deps.sh)")
    with CacheShards(3, memory="64MiB") as shards, CacheProxy(shards.spec, "--replicas", "2") as proxy:
        client = proxy.client()
        keys = [f"dump:{i}" for i in range(300)]
        set_all(client, {key: "x" for key in keys})
        dumped = subprocess.run([memcdump, f"--servers={proxy.data[0]}:{proxy.data[1]}"], capture_output=True,
                                text=True, timeout=30)
        assert dumped.returncode == 0, dumped.stderr
        listed = dumped.stdout.split()
        assert sorted(listed) == sorted(keys), f"{len(listed)} keys listed, {len(set(listed))} distinct, of 300"
        with Raw(proxy.data) as raw:
            assert raw.ask(b"stats cachedump 1\r\n") == b"CLIENT_ERROR bad command line\r\n"
            assert raw.ask(b"stats cachedump 99 0\r\n") == b"CLIENT_ERROR Illegal slab id\r\n"
            assert raw.ask(b"stats cachedump 2 0\r\n") == b"END\r\n"
        client.close()


def test_verify_reports_replicas_that_disagree(shards, tmp_path):
    """`cache-proxy verify` asks every replica of a key sample directly: 0 when they agree, 1 and
    the keys when one replica holds another value or misses a key the others hold."""
    with CacheProxy(shards, "--replicas", "2") as proxy:
        client = proxy.client()
        items = {f"verify:{i}": f"v{i}" for i in range(200)}
        set_all(client, items)
        keys_file = tmp_path / "keys.txt"
        keys_file.write_text("\n".join(items) + "\n")
        command = [FLOTILLA_BIN, "cache-proxy", "verify", "--shards", shards.spec, "--replicas", "2",
                   "--keys-file", str(keys_file), "--key", "verify:absent"]
        agree = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert agree.returncode == 0, agree.stdout + agree.stderr
        assert "consistent        200" in agree.stdout and "held by none      1" in agree.stdout

        placement = shards.placement(items)
        changed, dropped = "verify:3", "verify:4"
        shards[min(placement[changed])].client().set(changed, "tampered")
        shards[min(placement[dropped])].client().delete(dropped)
        differ = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert differ.returncode == 1, differ.stdout + differ.stderr
        assert "values differ     1" in differ.stdout and changed in differ.stdout
        assert "held by some only 1" in differ.stdout and dropped in differ.stdout
        client.close()


# --------------------------------------------------------------------------------------------
# 9. Replicas after repeated outages: no acknowledged write is read back older
# (last in the file: with -x, a failure here does not hide the tests above)
# --------------------------------------------------------------------------------------------


def _until_down(proxy, shard, poke, timeout: float = 5.0) -> None:
    """Sends requests that reach `shard` (poke) until the proxy reports it down."""

    def down() -> bool:
        try:
            poke()
        except Exception:  # noqa: BLE001 - failures before it is marked down are expected
            pass
        return proxy.stats()[f"shard:{shard.address}:state"] == "down"

    assert wait_for(down, timeout=timeout, step=0.05), f"{shard.address} was never marked down"


def test_hint_of_a_failed_write_does_not_overwrite_a_later_acknowledged_one(shards):
    """A write that failed on a live but unanswering replica must not come back later, after a
    newer write was acknowledged, and overwrite it on that replica."""
    victim_index = 0
    victim = shards[victim_index]
    args = ["--replicas", "2", "--failure-limit", "10", "--shard-timeout", "200ms"]
    with CacheProxy(shards, *args) as proxy:
        client = proxy.client(timeout=5)
        probe = {f"hint:{i}": "v0" for i in range(100)}
        set_all(client, probe)
        homed = [key for key, held in shards.placement(probe).items() if victim_index in held]
        key, other = homed[0], homed[1]

        victim.pause()
        try:
            # Three timed-out attempts: below --failure-limit, so the shard stays up.
            with pytest.raises(Exception):
                client.set(key, "v1")
        finally:
            victim.resume()
        assert proxy.stats()[f"shard:{victim.address}:state"] == "up"
        assert wait_for(lambda: client.set(key, "v2") is True, timeout=3), "write after resume failed"
        assert victim.values([key]) == {key: b"v2"}

        victim.kill()
        _until_down(proxy, victim, lambda: client.set(other, "x"))
        victim.start()
        assert proxy.wait_for_log("shard up", lambda e: e.get("shard") == victim.address, timeout=5)

        held = victim.values([key]).get(key)
        assert held in (None, b"v2"), (
            f"the returned shard holds {held!r} for {key}: the hint of the failed write 'v1' was replayed "
            "over the acknowledged 'v2'"
        )
        reads = Counter(client.get(key) for _ in range(20))
        assert set(reads) == {b"v2"}, f"reads through the proxy after an acknowledged 'v2': {dict(reads)}"
        client.close()


def test_fallback_copies_do_not_resurface_as_stale_values(shards):
    """Keys written while their shard was down went to a fallback shard; after the shard came back
    and the keys were written again, a second outage must not serve the fallback's old copies."""
    victim_index = 0
    victim = shards[victim_index]
    args = ["--replicas", "2", "--failure-limit", "3", "--shard-timeout", "200ms"]
    with CacheProxy(shards, *args) as proxy:
        client = proxy.client(timeout=5)
        probe = {f"again:{i}": "v1" for i in range(200)}
        set_all(client, probe)
        homed = [key for key, held in shards.placement(probe).items() if victim_index in held][:40]
        assert len(homed) >= 10

        victim.kill()
        _until_down(proxy, victim, lambda: client.set(homed[0], "v1"))
        set_all(client, {key: "v2" for key in homed})  # to the fallback shards
        victim.start()
        assert proxy.wait_for_log("shard up", lambda e: e.get("shard") == victim.address, timeout=5)
        set_all(client, {key: "v3" for key in homed})  # acknowledged by the home replicas

        victim.kill()
        _until_down(proxy, victim, lambda: client.set(homed[0], "v3"))
        reads = Counter()
        for key in homed:
            for _ in range(4):
                reads[client.get(key)] += 1
        assert set(reads) == {b"v3"}, f"reads after acknowledged 'v3' writes, during a second outage: {dict(reads)}"
        client.close()


def test_writes_during_hint_replay_reach_the_returning_shard(shards):
    """Writes that arrive while a returning shard's hints are being replayed must reach it too:
    once it serves again it must not hold an older value than the one acknowledged."""
    victim_index = 0
    victim = shards[victim_index]
    args = ["--replicas", "2", "--failure-limit", "3", "--shard-timeout", "200ms"]
    with CacheProxy(shards, *args) as proxy:
        client = proxy.client(timeout=5)
        probe = {f"replay:{i}": "0" for i in range(400)}
        set_all(client, probe)
        homed = [key for key, held in shards.placement(probe).items() if victim_index in held]

        victim.kill()
        _until_down(proxy, victim, lambda: client.set(homed[0], "0"))
        # Many hints, so that replaying them takes a while.
        for round_ in range(1, 6):
            set_all(client, {key: str(round_) for key in homed})

        acked: dict[str, int] = {}
        stop = threading.Event()

        def writer() -> None:
            own = proxy.client(timeout=5)
            version = 100
            while not stop.is_set():
                for key in homed:
                    version += 1
                    try:
                        if own.set(key, str(version)) is True:
                            acked[key] = version
                    except Exception:  # noqa: BLE001 - only acknowledged writes are checked
                        pass
                    if stop.is_set():
                        break
            own.close()

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            time.sleep(0.3)
            victim.start()
            up = proxy.wait_for_log("shard up", lambda e: e.get("shard") == victim.address, timeout=5)
        finally:
            stop.set()
            thread.join(10)
        assert up is not None, "no 'shard up' after the restart"

        held = victim.values(acked)
        behind = {key: (int(held[key]), acked[key]) for key in acked if key in held and int(held[key]) < acked[key]}
        pending = proxy.stats()[f"shard:{victim.address}:pending_hints"]
        sample = list(behind)[:50]
        stale_reads = sum(int(client.get(key)) < acked[key] for key in sample for _ in range(2))
        assert not behind, (
            f"{len(behind)} keys on the returned shard are older than their acknowledged value "
            f"(held, acknowledged), e.g. {list(behind.items())[:3]}; hints still pending: {pending}; "
            f"{stale_reads} of {2 * len(sample)} proxy reads of those keys returned the older value"
        )
        client.close()

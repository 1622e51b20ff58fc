"""`flotilla cache` driven by the real pymemcache client, the way users' Python code drives memcached.

Run (after scripts/install-test-deps.sh and a debug build):

    .build-venv/bin/python -m pytest Tests/python -q

The server under test is FLOTILLA_BIN (default <repo>/.build/debug/flotilla), started as

    flotilla cache --memory 64MiB --max-item-size 1MiB --listen 127.0.0.1:0 --admin 127.0.0.1:0 \
                   --log-format json --ready-file PATH

and its ports are read from its ready file (`flotilla_server.FlotillaProcess`).

FLOTILLA_TEST_PEER=memcached runs the same memcached-protocol tests against the real memcached
(`memcached -m 64 -I 1m -U 0`), which is how these tests were checked: a test that passes
there and fails against flotilla points at a server bug. The admin/log tests skip in that mode.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from pymemcache import serde
from pymemcache.client.base import Client, PooledClient
from pymemcache.client.hash import HashClient

from flotilla_server import FlotillaProcess, require_peer
from pymemcache.exceptions import (
    MemcacheClientError,
    MemcacheIllegalInputError,
    MemcacheServerError,
)

PEER = os.environ.get("FLOTILLA_TEST_PEER", "flotilla")
MiB = 1024 * 1024
MAX_ITEM_SIZE = 1 * MiB
MEMORY = 64 * MiB
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
# Written in values only: it must never show up in the server's log (logs carry no payloads).
PAYLOAD_MARKER = "payload-marker-" + uuid.uuid4().hex

needs_flotilla = pytest.mark.skipif(PEER != "flotilla", reason="flotilla-only (admin listener / logs)")


# --------------------------------------------------------------------------------------------
# The server under test
# --------------------------------------------------------------------------------------------


class Server:
    def __init__(self, proc: subprocess.Popen, host: str, port: int, admin_port: int | None, log: list[str]):
        self.proc = proc
        self.host = host
        self.port = port
        self.admin_port = admin_port
        self.log = log  # stderr lines, appended by the drain thread

    @property
    def addr(self) -> tuple[str, int]:
        return (self.host, self.port)

    def admin_url(self, path: str) -> str:
        return f"http://{self.host}:{self.admin_port}{path}"


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _start_flotilla() -> Server:
    try:
        process = FlotillaProcess(["cache", "--memory", "64MiB", "--max-item-size", "1MiB"])
    except RuntimeError as error:
        pytest.fail(f"flotilla cache did not start within {STARTUP_TIMEOUT}s: {error}")
    host, port = process.data
    return Server(process.proc, host, port, process.addresses["admin"][1], process.log)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_memcached() -> Server:
    port = _free_port()
    cmd = ["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64", "-I", "1m", "-t", "2"]
    if os.geteuid() == 0:
        cmd += ["-u", "nobody"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log: list[str] = []

    def drain() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            log.append(raw.decode("utf-8", "replace").rstrip("\n"))

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"memcached exited with {proc.returncode}: {log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return Server(proc, "127.0.0.1", port, None, log)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail("memcached did not start")


@pytest.fixture(scope="module")
def server():
    srv = _start_memcached() if PEER == "memcached" else _start_flotilla()
    try:
        yield srv
    finally:
        proc = srv.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                pytest.fail(f"server did not exit within {STOP_TIMEOUT}s of SIGTERM (killed)")
        tail = "\n".join(srv.log[-20:])
        assert proc.returncode == 0, f"server exited with {proc.returncode} after SIGTERM; stderr tail:\n{tail}"


def _client(server: Server, **kw) -> Client:
    kw.setdefault("serde", serde.pickle_serde)
    kw.setdefault("connect_timeout", 5)
    kw.setdefault("timeout", 10)
    kw.setdefault("default_noreply", False)
    return Client(server.addr, **kw)


@pytest.fixture
def mc(server):
    c = _client(server)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def raw(server):
    """A client without serde: values are bytes, flags are the caller's."""
    c = Client(server.addr, connect_timeout=5, timeout=10, default_noreply=False)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def k():
    """Unique key factory, so tests don't see each other's data."""
    prefix = "t" + uuid.uuid4().hex[:12]
    return lambda name="k": f"{prefix}:{name}"


class Conn:
    """A plain socket for the few checks pymemcache cannot express (same-connection behaviour)."""

    def __init__(self, server: Server):
        self.sock = socket.create_connection(server.addr, timeout=10)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_until(self, token: bytes, limit: int = 4 * MiB) -> bytes:
        while token not in self.buf:
            if len(self.buf) > limit:
                raise AssertionError(f"no {token!r} in {len(self.buf)} bytes")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed; got {self.buf!r}")
            self.buf += chunk
        i = self.buf.index(token) + len(token)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def line(self) -> bytes:
        return self.read_until(b"\r\n")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def conn(server):
    c = Conn(server)
    try:
        yield c
    finally:
        c.close()


# --------------------------------------------------------------------------------------------
# Storage commands
# --------------------------------------------------------------------------------------------


def test_set_get_python_values(mc, k):
    values = {
        "str": "hello " + PAYLOAD_MARKER,
        "unicode_value": "naïve ☃ 日本語",
        "int": 42,
        "negative": -7,
        "bigint": 2**70,
        "float": 3.25,
        "list": [1, "two", 3.0],
        "dict": {"a": 1, "b": [2, 3]},
        "tuple": (1, 2),
        "none_in_list": [None],
        "bytes": b"raw\x00bytes",
        "empty_bytes": b"",
        "empty_str": "",
    }
    for name, value in values.items():
        assert mc.set(k(name), value) is True, name
    for name, value in values.items():
        assert mc.get(k(name)) == value, name


def test_get_missing_and_default(mc, k):
    assert mc.get(k("nope")) is None
    assert mc.get(k("nope"), default="dflt") == "dflt"


def test_set_overwrites(mc, k):
    assert mc.set(k(), "one")
    assert mc.set(k(), "two")
    assert mc.get(k()) == "two"


def test_get_many_and_set_many(mc, k):
    data = {k(f"m{i}"): f"value-{i}" for i in range(50)}
    assert mc.set_many(data) == []
    wanted = list(data) + [k("missing-a"), k("missing-b")]
    got = mc.get_many(wanted)
    assert got == data
    assert mc.get_many([]) == {}


def test_get_many_large_multiget(mc, k):
    data = {k(f"big{i}"): os.urandom(1000) for i in range(200)}
    assert mc.set_many(data) == []
    assert mc.get_many(list(data)) == data


def test_add(mc, k):
    assert mc.add(k(), "first") is True
    assert mc.add(k(), "second") is False
    assert mc.get(k()) == "first"


def test_replace(mc, k):
    assert mc.replace(k(), "x") is False
    assert mc.get(k()) is None
    mc.set(k(), "old")
    assert mc.replace(k(), "new") is True
    assert mc.get(k()) == "new"


def test_append_prepend(raw, k):
    assert raw.append(k(), b"zzz") is False
    assert raw.prepend(k(), b"zzz") is False
    assert raw.get(k()) is None
    assert raw.set(k(), b"middle")
    assert raw.append(k(), b">>") is True
    assert raw.prepend(k(), b"<<") is True
    assert raw.get(k()) == b"<<middle>>"


def test_append_keeps_flags(raw, k):
    assert raw.set(k(), b"abc", flags=77)
    assert raw.append(k(), b"def")
    value, _cas = raw.gets(k())
    assert value == b"abcdef"
    # pymemcache without serde drops flags; ask the server directly
    resp = raw.raw_command(f"get {k()}", "END\r\n")
    assert resp.split(b"\r\n")[0] == f"VALUE {k()} 77 6".encode()


def test_flags_full_32_bits(raw, k):
    assert raw.set(k(), b"v", flags=4294967295)
    resp = raw.raw_command(f"get {k()}", "END\r\n")
    assert resp.split(b"\r\n")[0] == f"VALUE {k()} 4294967295 1".encode()


def test_delete_and_delete_many(mc, k):
    assert mc.delete(k()) is False
    mc.set(k(), 1)
    assert mc.delete(k()) is True
    assert mc.get(k()) is None
    keys = [k(f"d{i}") for i in range(10)]
    mc.set_many({key: key for key in keys})
    assert mc.delete_many(keys + [k("never-set")]) is True
    assert mc.get_many(keys) == {}


def test_dict_interface(mc, k):
    mc[k()] = "via setitem"
    assert mc[k()] == "via setitem"
    del mc[k()]
    with pytest.raises(KeyError):
        mc[k()]


# --------------------------------------------------------------------------------------------
# CAS
# --------------------------------------------------------------------------------------------


def test_gets_and_cas(mc, k):
    assert mc.gets(k()) == (None, None)
    assert mc.cas(k(), "v", b"12345") is None  # NOT_FOUND
    mc.set(k(), "v1")
    value, cas1 = mc.gets(k())
    assert value == "v1"
    assert cas1 is not None and int(cas1) > 0
    assert mc.cas(k(), "v2", cas1) is True
    assert mc.get(k()) == "v2"
    assert mc.cas(k(), "v3", cas1) is False  # EXISTS: cas moved on
    assert mc.get(k()) == "v2"
    value, cas2 = mc.gets(k())
    assert value == "v2" and cas2 != cas1


def test_cas_unique_changes_on_every_write(raw, k):
    raw.set(k(), b"a")
    seen = {raw.gets(k())[1]}
    raw.set(k(), b"a")
    seen.add(raw.gets(k())[1])
    raw.append(k(), b"b")
    seen.add(raw.gets(k())[1])
    raw.touch(k(), 100)
    after_touch = raw.gets(k())[1]
    assert len(seen) == 3
    assert after_touch in seen  # touch does not change the value


def test_cas_race_has_one_winner(server, k):
    a, b = _client(server), _client(server)
    try:
        a.set(k(), "start")
        _, cas_a = a.gets(k())
        _, cas_b = b.gets(k())
        assert cas_a == cas_b
        assert a.cas(k(), "a wins", cas_a) is True
        assert b.cas(k(), "b loses", cas_b) is False
        assert b.get(k()) == "a wins"
    finally:
        a.close()
        b.close()


def test_gat_and_gats_on_the_wire(conn, k):
    key = k().encode()
    conn.send(b"set " + key + b" 3 100 2\r\nhi\r\ngat 1000 " + key + b"\r\n")
    assert conn.line() == b"STORED\r\n"
    assert conn.read_until(b"END\r\n") == b"VALUE " + key + b" 3 2\r\nhi\r\nEND\r\n"
    conn.send(b"gats 1000 " + key + b" nope\r\n")
    header = conn.line()
    parts = header.split()
    assert parts[:4] == [b"VALUE", key, b"3", b"2"] and len(parts) == 5 and int(parts[4]) > 0, header
    assert conn.read_until(b"END\r\n") == b"hi\r\nEND\r\n"
    conn.send(b"gat -1 " + key + b"\r\nget " + key + b"\r\n")  # returns the item, then expires it
    assert conn.read_until(b"END\r\n") == b"VALUE " + key + b" 3 2\r\nhi\r\nEND\r\n"
    assert conn.line() == b"END\r\n"


def test_gets_many(mc, k):
    mc.set(k("a"), "A")
    mc.set(k("b"), "B")
    got = mc.gets_many([k("a"), k("b"), k("c")])
    assert set(got) == {k("a"), k("b")}
    assert got[k("a")][0] == "A" and got[k("b")][0] == "B"
    assert got[k("a")][1] != got[k("b")][1]


# --------------------------------------------------------------------------------------------
# incr / decr
# --------------------------------------------------------------------------------------------


def test_incr_decr(mc, k):
    assert mc.incr(k(), 1) is None  # NOT_FOUND
    assert mc.decr(k(), 1) is None
    mc.set(k(), 10)
    assert mc.incr(k(), 5) == 15
    assert mc.get(k()) == 15  # int flags survive incr
    assert mc.decr(k(), 3) == 12
    assert mc.decr(k(), 100) == 0  # decr saturates at 0
    assert mc.incr(k(), 0) == 0


def test_incr_wraps_at_64_bits(raw, k):
    raw.set(k(), str(2**64 - 1).encode())
    assert raw.incr(k(), 1) == 0
    raw.set(k(), str(2**64 - 2).encode())
    assert raw.incr(k(), 1) == 2**64 - 1


def test_incr_grows_and_decr_shrinks_length(raw, k):
    raw.set(k(), b"99")
    assert raw.incr(k(), 1) == 100
    assert raw.get(k()) == b"100"
    assert raw.decr(k(), 91) == 9
    # memcached may space-pad a shortened number in place
    assert raw.get(k()).rstrip(b" ") == b"9"


def test_incr_on_number_beyond_64_bits_is_refused(raw, k):
    raw.set(k(), str(2**64).encode())
    with pytest.raises(MemcacheClientError):
        raw.incr(k(), 1)


def test_incr_invalid_delta_on_the_wire(conn, k):
    key = k().encode()
    conn.send(b"set " + key + b" 0 0 1\r\n5\r\nincr " + key + b" abc\r\nincr " + key + b" 2\r\n")
    assert conn.line() == b"STORED\r\n"
    assert conn.line().startswith(b"CLIENT_ERROR")
    assert conn.line() == b"7\r\n"


def test_incr_is_atomic_across_connections(server, k):
    c0 = _client(server)
    c0.set(k(), b"0")
    c0.close()

    def work(_: int) -> None:
        c = _client(server)
        try:
            for _ in range(100):
                assert c.incr(k(), 1) is not None
        finally:
            c.close()

    with ThreadPoolExecutor(8) as ex:
        list(ex.map(work, range(8)))
    c1 = _client(server)
    try:
        assert int(c1.get(k())) == 800
    finally:
        c1.close()


def test_incr_non_numeric(raw, k):
    raw.set(k(), b"not a number")
    with pytest.raises(MemcacheClientError):
        raw.incr(k(), 1)
    assert raw.get(k()) == b"not a number"  # still usable (pymemcache reconnects)


# --------------------------------------------------------------------------------------------
# touch and expiry (no sleeping except one ~2 s check)
# --------------------------------------------------------------------------------------------


def test_touch(mc, k):
    assert mc.touch(k(), 100) is False
    mc.set(k(), "v")
    assert mc.touch(k(), 100) is True
    assert mc.get(k()) == "v"
    assert mc.touch(k(), -1) is True  # negative: expire now
    assert mc.get(k()) is None


def test_negative_ttl_is_expired_at_once(mc, k):
    assert mc.set(k(), "v", expire=-1) is True
    assert mc.get(k()) is None
    assert mc.add(k(), "again") is True  # an expired item does not block add


def test_ttl_over_30_days_is_absolute_time(mc, k):
    now = int(time.time())
    mc.set(k("past"), "v", expire=now - 60)  # absolute, already in the past
    mc.set(k("future"), "v", expire=now + 3600)  # absolute, an hour ahead
    mc.set(k("30d"), "v", expire=30 * 24 * 3600)  # exactly 30 days: still relative
    mc.set(k("nearly-epoch"), "v", expire=30 * 24 * 3600 + 1)  # absolute 1970: past
    assert mc.get(k("past")) is None
    assert mc.get(k("future")) == "v"
    assert mc.get(k("30d")) == "v"
    assert mc.get(k("nearly-epoch")) is None


def test_short_ttl_expires(mc, k):
    # Like memcached's, the server clock may tick in whole seconds: a TTL of N s lives for
    # between N-1 and N s. So TTL 2 is surely alive at once and surely gone 2.1 s later.
    mc.set(k("short"), "v", expire=2)
    mc.set(k("long"), "v", expire=100)
    mc.set(k("extended"), "v", expire=2)
    assert mc.touch(k("extended"), 100) is True
    mc.set(k("shortened"), "v", expire=100)
    assert mc.touch(k("shortened"), 2) is True
    assert mc.get(k("short")) == "v"
    assert mc.get(k("shortened")) == "v"
    time.sleep(2.1)  # the only sleep in this module
    assert mc.get(k("short")) is None
    assert mc.get(k("shortened")) is None
    assert mc.get(k("long")) == "v"
    assert mc.get(k("extended")) == "v"


# --------------------------------------------------------------------------------------------
# noreply
# --------------------------------------------------------------------------------------------


def test_noreply_variants(server, k):
    # pymemcache's own default is noreply for storage commands
    c = _client(server, default_noreply=True)
    try:
        assert c.set(k(), "v0") is True
        assert c.add(k(), "ignored") is True  # noreply: always True
        assert c.replace(k(), "v1") is True
        c.set(k("raw"), b"mid")
        assert c.append(k("raw"), b">") is True
        assert c.prepend(k("raw"), b"<") is True
        c.set(k("n"), 5)
        assert c.incr(k("n"), 10, noreply=True) is None
        assert c.decr(k("n"), 3, noreply=True) is None
        assert c.touch(k(), 100) is True
        assert c.set_many({k("m1"): 1, k("m2"): 2}) == []
        assert c.delete(k("m1")) is True
        assert c.delete_many([k("m2")]) is True
        value, cas = c.gets(k())
        assert c.cas(k(), "v2", cas) is True
        # If the server had answered any noreply command, this reply would be out of step.
        assert c.version()
        assert c.get(k()) == "v2"
        assert c.get(k("raw")) == b"<mid>"
        assert c.get(k("n")) == 12
        assert c.get_many([k("m1"), k("m2")]) == {}
    finally:
        c.close()


def test_flush_all_noreply(server, k):
    c = _client(server, default_noreply=True)
    try:
        c.set(k(), "v")
        assert c.flush_all() is True
        assert c.get(k()) is None
        assert c.version()
    finally:
        c.close()


# --------------------------------------------------------------------------------------------
# flush_all, version, stats
# --------------------------------------------------------------------------------------------


def test_flush_all(mc, k):
    mc.set_many({k("a"): 1, k("b"): 2})
    assert mc.flush_all() is True
    assert mc.get_many([k("a"), k("b")]) == {}
    # items written right after the flush (same second) are visible
    assert mc.set(k("a"), 3) is True
    assert mc.add(k("b"), 4) is True
    assert mc.get_many([k("a"), k("b")]) == {k("a"): 3, k("b"): 4}


def test_version(mc):
    v = mc.version()
    assert isinstance(v, bytes) and v.strip() and b" " not in v.strip()


def test_stats_general(mc, k):
    before = mc.stats()
    for key in (b"pid", b"uptime", b"time", b"version", b"curr_connections", b"total_connections",
                b"cmd_get", b"cmd_set", b"get_hits", b"get_misses", b"curr_items", b"total_items",
                b"bytes", b"limit_maxbytes", b"threads", b"evictions"):
        assert key in before, f"stats lacks {key!r}"
    assert before[b"limit_maxbytes"] == MEMORY
    assert before[b"version"] == mc.version()
    assert abs(before[b"time"] - time.time()) < 5
    mc.set(k("a"), "1")
    mc.set(k("b"), "2")
    mc.get(k("a"))
    mc.get(k("b"))
    mc.get(k("a"))
    mc.get(k("x"))
    mc.get(k("y"))
    after = mc.stats()
    assert after[b"cmd_set"] - before[b"cmd_set"] == 2
    assert after[b"cmd_get"] - before[b"cmd_get"] == 5
    assert after[b"get_hits"] - before[b"get_hits"] == 3
    assert after[b"get_misses"] - before[b"get_misses"] == 2
    assert after[b"curr_connections"] >= 1
    assert after[b"total_items"] - before[b"total_items"] == 2


def test_stats_settings(mc):
    s = mc.stats("settings")
    assert s[b"maxbytes"] == MEMORY
    assert s[b"item_size_max"] == MAX_ITEM_SIZE


# --------------------------------------------------------------------------------------------
# values: binary, empty, large, too large
# --------------------------------------------------------------------------------------------


def test_binary_values(raw, k):
    every_byte = bytes(range(256)) * 16
    tricky = b"VALUE x 0 3\r\nEND\r\n\r\n\x00\xff"
    assert raw.set(k("all"), every_byte)
    assert raw.set(k("tricky"), tricky)
    assert raw.set(k("empty"), b"")
    assert raw.get(k("all")) == every_byte
    assert raw.get(k("tricky")) == tricky
    assert raw.get(k("empty")) == b""
    assert raw.get_many([k("tricky"), k("empty")]) == {k("tricky"): tricky, k("empty"): b""}


def test_large_value_near_limit(raw, k):
    value = os.urandom(MAX_ITEM_SIZE - 1024)
    assert raw.set(k(), value) is True
    assert raw.get(k()) == value


def test_value_over_limit_is_refused(raw, k):
    raw.set(k("other"), b"still here")
    with pytest.raises(MemcacheServerError) as exc:
        raw.set(k(), os.urandom(MAX_ITEM_SIZE + 1))
    assert b"object too large for cache" in exc.value.args[0]
    assert raw.get(k()) is None
    assert raw.get(k("other")) == b"still here"


def test_append_beyond_max_item_size_is_not_stored(raw, k):
    value = os.urandom(MAX_ITEM_SIZE - 1024)
    assert raw.set(k(), value)
    assert raw.append(k(), b"y" * 4096) is False  # memcached 1.6 answers NOT_STORED
    assert raw.get(k()) == value


def test_too_large_set_drops_the_old_value(raw, k):
    # memcached 1.6 unlinks the old item when a replacement is refused, so no stale value survives
    raw.set(k(), b"old")
    with pytest.raises(MemcacheServerError):
        raw.set(k(), os.urandom(MAX_ITEM_SIZE + 1))
    assert raw.get(k()) is None


def test_too_large_value_is_swallowed_on_the_same_connection(conn, k):
    key = k().encode()
    body = b"x" * (MAX_ITEM_SIZE + 1)
    conn.send(b"set " + key + b" 0 0 %d\r\n" % len(body) + body + b"\r\nget " + key + b"\r\nversion\r\n")
    assert conn.line() == b"SERVER_ERROR object too large for cache\r\n"
    assert conn.line() == b"END\r\n"
    assert conn.line().startswith(b"VERSION ")


# --------------------------------------------------------------------------------------------
# keys
# --------------------------------------------------------------------------------------------


def test_large_multiget_response(raw, k):
    # ~6 MiB in one reply: exercises the server's output back-pressure
    data = {k(f"L{i}"): os.urandom(600 * 1024) for i in range(10)}
    assert raw.set_many(data) == []
    assert raw.get_many(list(data)) == data


def test_memory_bound_evicts_least_recently_used(raw, k):
    # write ~96 MiB through a 64 MiB cache, reading one early key often so it stays recent
    value = os.urandom(100 * 1024)
    before = raw.stats()
    raw.set(k("hot"), b"hot")
    for i in range(960):
        assert raw.set(k(f"fill{i}"), value) is True
        if i % 20 == 0:
            assert raw.get(k("hot")) == b"hot", f"hot key evicted after {i} fills"
    after = raw.stats()
    assert after[b"evictions"] > before[b"evictions"]
    assert raw.get(k("hot")) == b"hot"
    assert raw.get(k("fill959")) == value
    assert raw.get(k("fill0")) is None
    assert after[b"bytes"] <= MEMORY


def test_many_connections(server):
    socks = []
    try:
        for _ in range(200):
            socks.append(socket.create_connection(server.addr, timeout=10))
        for s in socks:
            s.sendall(b"version\r\n")
        for s in socks:
            buf = b""
            while not buf.endswith(b"\r\n"):
                chunk = s.recv(100)
                assert chunk, "connection closed"
                buf += chunk
            assert buf.startswith(b"VERSION ")
    finally:
        for s in socks:
            s.close()


def test_key_rules_pymemcache(server, mc, k):
    with pytest.raises(MemcacheIllegalInputError):
        mc.set("ключ", "v")  # non-ASCII refused by default
    with pytest.raises(MemcacheIllegalInputError):
        mc.get("has space")
    with pytest.raises(MemcacheIllegalInputError):
        mc.set("x" * 251, "v")
    longest = k() + "y" * (250 - len(k()))
    assert len(longest) == 250
    assert mc.set(longest, "v") is True
    assert mc.get(longest) == "v"
    # allow_unicode_keys sends UTF-8 bytes, which memcached accepts as a key
    u = _client(server, allow_unicode_keys=True)
    try:
        key = k() + ":ключ☃"
        assert u.set(key, "unicode key") is True
        assert u.get(key) == "unicode key"
        assert u.get_many([key]) == {key: "unicode key"}
    finally:
        u.close()


def test_key_too_long_on_the_wire(conn):
    conn.send(b"get " + b"k" * 251 + b"\r\n")
    assert conn.line().startswith(b"CLIENT_ERROR")
    conn.send(b"version\r\n")
    assert conn.line().startswith(b"VERSION ")


def test_unknown_command_then_keeps_serving(conn):
    conn.send(b"bogus_command foo\r\n")
    assert conn.line() == b"ERROR\r\n"
    conn.send(b"version\r\n")
    assert conn.line().startswith(b"VERSION ")


def test_pipelined_commands(conn, k):
    key = k().encode()
    conn.send(b"set " + key + b" 5 0 3\r\nabc\r\nget " + key + b"\r\nincr " + key + b" 1\r\ndelete " + key
              + b"\r\nget " + key + b"\r\n")
    assert conn.line() == b"STORED\r\n"
    assert conn.read_until(b"END\r\n") == b"VALUE " + key + b" 5 3\r\nabc\r\nEND\r\n"
    assert conn.line().startswith(b"CLIENT_ERROR")
    assert conn.line() == b"DELETED\r\n"
    assert conn.line() == b"END\r\n"


# --------------------------------------------------------------------------------------------
# other pymemcache clients
# --------------------------------------------------------------------------------------------


def test_pooled_client_concurrent(server, k):
    pool = PooledClient(server.addr, serde=serde.pickle_serde, max_pool_size=8, connect_timeout=5,
                        timeout=10, default_noreply=False)

    def work(worker: int) -> int:
        ok = 0
        for i in range(100):
            key = k(f"w{worker}-{i % 10}")
            assert pool.set(key, {"w": worker, "i": i}) is True
            assert pool.get(key) == {"w": worker, "i": i}
            ok += 1
        assert pool.incr(k("counter"), 1) is not None
        return ok

    try:
        pool.set(k("counter"), 0)
        with ThreadPoolExecutor(8) as ex:
            assert sum(ex.map(work, range(8))) == 800
        assert pool.get(k("counter")) == 8
    finally:
        pool.close()


def test_hash_client(server, k):
    hc = HashClient([server.addr], serde=serde.pickle_serde, connect_timeout=5, timeout=10,
                    use_pooling=True, default_noreply=False)
    try:
        data = {k(f"h{i}"): i for i in range(20)}
        assert hc.set_many(data) == []
        assert hc.get_many(list(data)) == data
        assert hc.add(k("h0"), "x") is False
        assert hc.incr(k("h1"), 41) == 42
        assert hc.delete_many(list(data)) is True
        assert hc.get(k("h0")) is None
    finally:
        hc.close()


def test_quit_then_reuse(mc, k):
    mc.set(k(), "v")
    mc.quit()
    assert mc.get(k()) == "v"  # reconnects


# --------------------------------------------------------------------------------------------
# admin listener and logs (flotilla only)
# --------------------------------------------------------------------------------------------


def _http_get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode("utf-8", "replace")


@needs_flotilla
def test_admin_health_and_ready(server):
    status, _, body = _http_get(server.admin_url("/healthz"))
    assert status == 200
    assert json.loads(body)["status"] in ("alive", "ready"), body  # Sources/FlotillaAdminAPI/openapi.yaml
    status, _, body = _http_get(server.admin_url("/readyz"))
    assert status == 200
    assert json.loads(body)["status"] == "ready", body


@needs_flotilla
def test_admin_metrics(server, mc, k):
    mc.set(k(), "v")
    mc.get(k())
    status, ctype, body = _http_get(server.admin_url("/metrics"))
    assert status == 200
    assert ctype.startswith("text/plain"), ctype
    assert any(line.startswith("# TYPE") for line in body.splitlines()), body[:500]


@needs_flotilla
def test_admin_status(server, mc, k):
    mc.set(k(), "v")
    mc.get(k())
    mc.get(k("missing"))
    deadline = time.monotonic() + 2
    while True:
        status, ctype, body = _http_get(server.admin_url("/v1/status"))
        assert status == 200
        doc = json.loads(body)
        ops = {op.get("name"): op for op in doc.get("operations", [])}
        if (ops.get("get", {}).get("count", 0) > 0 and ops.get("set", {}).get("count", 0) > 0) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert "json" in ctype, ctype
    assert doc["role"] == "cache"
    assert isinstance(doc["version"], str) and doc["version"]
    assert isinstance(doc["uptimeSeconds"], (int, float)) and doc["uptimeSeconds"] >= 0
    assert doc.get("state") == "ready", doc.get("state")
    assert isinstance(doc["settings"], dict)
    assert all(isinstance(v, str) for v in doc["settings"].values()), doc["settings"]
    assert isinstance(doc["operations"], list) and doc["operations"]
    for op in doc["operations"]:
        for field in ("name", "count", "errors", "successRatio", "ratePerSecond", "latencyMicroseconds"):
            assert field in op, (field, op)
        assert isinstance(op["count"], int) and isinstance(op["errors"], int), op
        assert 0 <= op["errors"] <= op["count"], op
        assert isinstance(op["latencyMicroseconds"], dict), op
        for q in ("p50", "p95", "p99", "p999", "max"):
            assert isinstance(op["latencyMicroseconds"].get(q), (int, float)), (q, op)
    assert ops["get"]["count"] > 0, ops.get("get")
    assert ops["set"]["count"] > 0, ops.get("set")


@needs_flotilla
def test_admin_unknown_path_is_404(server):
    assert _http_get(server.admin_url("/no-such-endpoint"))[0] == 404


@needs_flotilla
def test_log_is_json_lines_without_payloads(server, mc, k):
    mc.set(k(), PAYLOAD_MARKER)
    assert mc.get(k()) == PAYLOAD_MARKER
    lines = list(server.log)
    assert lines, "no log lines"
    for line in lines:
        obj = json.loads(line)
        assert isinstance(obj, dict), line
        assert PAYLOAD_MARKER not in line, f"payload in log: {line}"


def test_memcdump_lists_the_keys(server, raw, k):
    """libmemcached's `memcdump` (libmemcached-tools) lists keys with `stats cachedump <class> 0`
    over every slab class: each key stored, once (memcached: those in its hot LRU segment)."""
    memcdump = require_peer(shutil.which("memcdump"),
                            "memcdump is not installed; install libmemcached-tools (scripts/install-test-deps.sh)")
    keys = [k(f"dump{i}") for i in range(50)]
    for key in keys:
        raw.set(key, b"x")
    dumped = subprocess.run([memcdump, f"--servers={server.host}:{server.port}"], capture_output=True, text=True,
                            timeout=30)
    assert dumped.returncode == 0, dumped.stderr
    listed = dumped.stdout.split()
    found = sum(key in listed for key in keys)
    assert all(listed.count(key) <= 1 for key in keys), "a key listed twice"
    # memcached walks only the hot segment of each class's LRU (41 of 50 here); flotilla lists all.
    assert found == 50 if PEER == "flotilla" else found > 0, f"{found} of 50 keys listed"

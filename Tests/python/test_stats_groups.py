"""`stats` groups of `flotilla cache` and `flotilla cache-proxy` against memcached's, key by key (issue 15).

Tools read these groups: Prometheus' memcached exporter scrapes `stats settings`, `stats items` and
`stats slabs`; memcached's own test programs wait for `END` after `stats slabs`. For each group
both servers get the same items, and the names of what they answer, in order, must be the same
(values differ: flotilla has no slabs, and reports its one LRU as memcached's class 1). Where the
answer is deterministic (`stats detail`, `stats reset`, an unknown group) the bytes must be equal.
"""

from __future__ import annotations

import re

import pytest

from flotilla_server import FlotillaProcess
from proxy_support import CacheProxy, Memcached, Raw, Shards

SETUP = b"set a 0 0 3\r\nabc\r\nset user:1 0 0 1\r\nx\r\nget a\r\n"
TERMINATORS = (b"END\r\n", b"RESET\r\n", b"OK\r\n", b"ERROR\r\n")


@pytest.fixture(scope="module")
def servers():
    memcached = Memcached()
    with FlotillaProcess(["cache"]) as cache:
        yield {"memcached": ("127.0.0.1", memcached.port), "flotilla": cache.data}
    memcached.kill()


def ask(address: tuple[str, int], *requests: bytes) -> list[bytes]:
    """Sends SETUP, then each request on the same connection; returns each request's answer."""
    with Raw(address) as raw:
        raw.send(SETUP)
        raw.read_until(b"END\r\n")
        answers = []
        for request in requests:
            raw.send(request)
            answer = b""
            while True:
                line = raw.read_until(b"\r\n")
                answer += line
                if line in TERMINATORS or line.startswith((b"CLIENT_ERROR", b"SERVER_ERROR")):
                    break
            answers.append(answer)
        return answers


def names(answer: bytes) -> list[str]:
    """The statistic names of a `STAT name value` block, connection ids masked (`N:addr` → `#:addr`)."""
    lines = answer.decode().split("\r\n")
    assert lines[-2:] == ["END", ""], answer
    return [re.sub(r"^\d+:", "#:", line.split(" ")[1]) for line in lines[:-2]]


@pytest.mark.parametrize("group", ["settings", "items", "slabs", "sizes", "conns", "items 1", "slabs x"])
def test_a_group_names_what_memcached_names_in_its_order(servers, group):
    request = f"stats {group}\r\n".encode()
    expected = names(ask(servers["memcached"], request)[0])
    actual = names(ask(servers["flotilla"], request)[0])
    assert expected, f"memcached answered no statistic to stats {group}"
    assert actual == expected


def test_detail_counts_by_prefix_as_memcached_does(servers):
    """Text commands count, meta commands do not (as memcached 1.6 counts them)."""
    # Each request, and what its answer ends with.
    steps = [(b"stats detail on\r\n", b"\r\n"),
             (b"set user:2 0 0 1\r\ny\r\nget user:2 user:3 nodelimiter\r\ndelete user:2\r\nmg user:9 v\r\n"
              b"ms user:4 1\r\nz\r\nmd user:4\r\nmn\r\n", b"MN\r\n"),
             (b"stats detail dump\r\n", b"END\r\n"), (b"stats detail off\r\n", b"\r\n"),
             (b"get user:2\r\n", b"END\r\n"), (b"stats detail dump\r\n", b"END\r\n"),
             (b"stats detail\r\nstats detail bogus\r\nversion\r\n", b"VERSION ")]
    answers = {}
    for name, address in servers.items():
        with Raw(address) as raw:
            raw.send(b"stats reset\r\n" + SETUP)
            assert raw.read_until(b"\r\n") == b"RESET\r\n"
            raw.read_until(b"END\r\n")
            answers[name] = []
            for request, end in steps:
                raw.send(request)
                answers[name].append(raw.read_until(end))
    assert answers["memcached"][0] == b"OK\r\n"
    assert answers["flotilla"] == answers["memcached"]
    assert answers["flotilla"][2] == b"PREFIX user get 2 hit 1 set 1 del 1\r\nEND\r\n"


def test_reset_zeroes_the_counters_and_keeps_the_items(servers):
    for address in servers.values():
        with Raw(address) as raw:
            raw.send(SETUP + b"stats reset\r\n")
            raw.read_until(b"RESET\r\n")
            raw.send(b"stats\r\n")
            general = raw.read_until(b"END\r\n").decode()
            for counter in ("cmd_get", "get_hits", "cmd_set", "total_items", "evictions"):
                assert f"STAT {counter} 0\r\n" in general, (address, counter)
            raw.send(b"get a\r\n")
            assert raw.read_until(b"END\r\n") == b"VALUE a 0 3\r\nabc\r\nEND\r\n"


@pytest.mark.parametrize("group", ["noreply", "bogus", "detail x y"])
def test_an_unknown_group_gets_memcached_s_answer(servers, group):
    request = f"stats {group}\r\n".encode()
    assert ask(servers["flotilla"], request) == ask(servers["memcached"], request)


@pytest.fixture(scope="module")
def proxied():
    """Two memcached shards behind `flotilla cache-proxy --replicas 1`, and a lone memcached to
    compare names with."""
    with Shards(2) as shards, CacheProxy(shards, "--replicas", "1") as proxy, Memcached() as lone:
        yield proxy.data, ("127.0.0.1", lone.port)


def test_the_proxy_answers_an_unknown_group_as_memcached_does(proxied):
    proxy, memcached = proxied
    for group in (b"noreply", b"bogus", b"detail x"):
        request = b"stats " + group + b"\r\n"
        assert ask(proxy, request) == ask(memcached, request), group


def test_the_proxy_adds_up_its_shards_groups(proxied):
    proxy, memcached = proxied
    keys = [f"user:{index}" for index in range(40)]
    with Raw(proxy) as raw:
        raw.send(b"stats reset\r\n")
        assert raw.read_until(b"\r\n") == b"RESET\r\n"
        raw.send(b"stats detail on\r\n")
        assert raw.read_until(b"\r\n") == b"OK\r\n"
        raw.send(b"".join(f"set {key} 0 0 1\r\nx\r\n".encode() for key in keys))
        for _ in keys:
            assert raw.read_until(b"\r\n") == b"STORED\r\n"
        raw.send(b"get user:1 user:2 nokey\r\n")
        raw.read_until(b"END\r\n")
    settings, items, slabs, sizes, conns, dump, off = ask(
        proxy, b"stats settings\r\n", b"stats items\r\n", b"stats slabs\r\n", b"stats sizes\r\n",
        b"stats conns\r\n", b"stats detail dump\r\n", b"stats detail off\r\n")
    for answer, request in ((settings, b"stats settings\r\n"), (items, b"stats items\r\n"),
                            (slabs, b"stats slabs\r\n"), (sizes, b"stats sizes\r\n")):
        assert names(answer) == names(ask(memcached, request)[0]), request
    # 40 keys of SETUP's size class over two shards (and SETUP's own `a` and `user:1` on one).
    assert b"STAT items:1:number 41\r\n" in items, items
    assert b"STAT maxbytes 134217728\r\n" in settings, settings
    assert b"STAT 0:state conn_listening\r\n" in conns, conns
    # SETUP (sent by `ask`, after detail was turned on) stored user:1 once more.
    assert dump == b"PREFIX user get 2 hit 2 set 41 del 0\r\nEND\r\n", dump
    assert off == b"OK\r\n"

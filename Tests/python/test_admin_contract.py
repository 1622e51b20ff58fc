"""The admin listener's live answers checked against its contracts: Sources/FlotillaAdminAPI/openapi.yaml for
the paths every role serves, and a role's own document for its own paths (Sources/FlotillaProxyAPI/openapi.yaml)."""

from __future__ import annotations

import json
import socket
import time

import pytest

from contract import Contract
from flotilla_server import REPO, FlotillaProcess

CONTRACT = Contract(REPO / "Sources" / "FlotillaAdminAPI" / "openapi.yaml")
validate = CONTRACT.validate
PROXY_CONTRACT = Contract(REPO / "Sources" / "FlotillaProxyAPI" / "openapi.yaml")


def validate_problem(body: bytes) -> None:
    CONTRACT.validate_schema("Problem", json.loads(body))


@pytest.fixture(scope="module")
def cache():
    with FlotillaProcess(["cache", "--memory", "16MiB", "--slo", "p99<50ms,success>=99%"]) as server:
        yield server
        assert server.terminate() == 0


def drive_traffic(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"set k 0 0 1\r\nx\r\nget k\r\nget nope\r\nbogus\r\n")
        expected = b"STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\nEND\r\nERROR\r\n"
        received = b""
        while len(received) < len(expected):
            received += sock.recv(4096)
        assert received == expected


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/v1/status"])
def test_every_path_answers_as_declared(cache: FlotillaProcess, path: str) -> None:
    drive_traffic(cache.data)
    status, headers, body = cache.get(path)
    assert status == 200
    validate(path, status, body, headers["Content-Type"])


def test_status_reports_operations_and_the_slo(cache: FlotillaProcess) -> None:
    drive_traffic(cache.data)
    status, _, body = cache.get("/v1/status")
    report = json.loads(body)
    assert report["role"] == "cache"
    assert report["state"] == "ready"
    assert report["settings"]["memory"] == "16MiB"
    operations = {op["name"]: op for op in report["operations"]}
    assert operations["get"]["count"] >= 2
    assert operations["set"]["count"] >= 1
    assert operations["unknown"]["errors"] >= 1
    assert 0 < operations["get"]["latencyMicroseconds"]["p50"] <= operations["get"]["latencyMicroseconds"]["p99"]
    assert report["slo"]["spec"] == "p99<50ms,success>=99%"
    assert [o["objective"] for o in report["slo"]["objectives"]] == ["p99<50ms", "success>=99%"]


def test_status_and_the_ready_file_report_the_bound_listeners(cache: FlotillaProcess) -> None:
    with open(cache.ready_file) as file:
        ready = json.load(file)
    assert ready["role"] == "cache"
    assert ready["pid"] == cache.proc.pid
    report = json.loads(cache.get("/v1/status")[2])
    assert report["listeners"] == ready["listeners"]
    assert report["listeners"]["data"] == "%s:%d" % cache.data
    assert report["listeners"]["admin"] == "%s:%d" % cache.addresses["admin"]
    # The settings are the role's own configuration, encoded: every flag, the common ones included.
    assert report["settings"]["listen"] == "127.0.0.1:0"
    assert {"admin", "threads", "drain-timeout", "max-item-size", "max-connections", "request-memory",
            "ready-file"} <= set(report["settings"])


def test_a_listener_that_cannot_bind_ends_the_role_without_a_ready_file(tmp_path) -> None:
    """A data port already taken: the role says so and exits 1 at once, and no ready file appears
    (the supervisor waiting on it sees the process end instead)."""
    import subprocess

    from flotilla_server import flotilla_binary

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ready = tmp_path / "ready.json"
        result = subprocess.run(
            [flotilla_binary(), "cache", "--listen", f"127.0.0.1:{port}", "--admin", "127.0.0.1:0",
             "--ready-file", str(ready)],
            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1, result.stderr
    assert f"--listen 127.0.0.1:{port}: cannot listen: address already in use" in result.stderr, result.stderr
    assert not ready.exists()


def test_the_ready_file_goes_with_the_process() -> None:
    with FlotillaProcess(["cache", "--memory", "16MiB"]) as server:
        path = server.ready_file
        assert json.load(open(path))["listeners"]["data"] == "%s:%d" % server.data
        assert server.terminate() == 0
    with pytest.raises(FileNotFoundError):
        open(path)


def test_metrics_are_prometheus_text(cache: FlotillaProcess) -> None:
    drive_traffic(cache.data)
    status, headers, body = cache.get("/metrics")
    text = body.decode()
    assert headers["Content-Type"].startswith("text/plain")
    assert "# TYPE flotilla_requests_total counter" in text
    assert 'flotilla_requests_total{operation="get"}' in text
    assert "flotilla_cache_limit_bytes 16777216" in text


def test_unknown_path_is_404(cache: FlotillaProcess) -> None:
    status, _, _ = cache.get("/nope")
    assert status == 404


def test_roles_without_shards_answer_404_on_the_shard_paths(cache: FlotillaProcess) -> None:
    for path, query in (("/v1/shards", ""), ("/v1/route", "?key=k")):
        status, headers, body = cache.get(path + query)
        assert status == 404
        assert headers["Content-Type"].startswith("application/json")
        validate_problem(body)
        assert json.loads(body)["error"] == f"the cache role serves no {path}"


def test_the_proxy_reports_its_shards_and_routes_as_declared() -> None:
    from proxy_support import Memcached

    shards = [Memcached(), Memcached()]
    try:
        addresses = ",".join(shard.address for shard in shards)
        with FlotillaProcess(["cache-proxy", "--shards", addresses, "--replicas", "2"]) as proxy:
            drive_traffic(proxy.data)
            status, headers, body = proxy.get("/v1/shards")
            assert status == 200
            PROXY_CONTRACT.validate("/v1/shards", status, body, headers["Content-Type"])
            listed = json.loads(body)["shards"]
            settings = json.loads(proxy.get("/v1/status")[2])["settings"]
            assert settings["shards"] == addresses and settings["max-connections"] == "1024"
            assert settings["drain-timeout"] == "10s" and settings["distribution"] == "ring"
            assert settings["request-memory"] == "64MiB"
            assert [entry["address"] for entry in listed] == [shard.address for shard in shards]
            assert all(entry["state"] == "up" and entry["requests"] > 0 for entry in listed)

            # The rates come from the once-a-second sampling of the request totals.
            deadline = time.monotonic() + 10
            while True:
                shards_now = json.loads(proxy.get("/v1/shards")[2])["shards"]
                shard_rates = [entry["ratePerSecond"] for entry in shards_now]
                operations = json.loads(proxy.get("/v1/status")[2])["operations"]
                get_rate = next(op["ratePerSecond"] for op in operations if op["name"] == "get")
                if all(rate > 0 for rate in shard_rates) and get_rate > 0:
                    break
                assert time.monotonic() < deadline, f"no rates after 10 s: shards {shard_rates}, get {get_rate}"
                time.sleep(0.2)

            status, headers, body = proxy.get("/v1/route?key=photo:42")
            assert status == 200
            PROXY_CONTRACT.validate("/v1/route", status, body, headers["Content-Type"])
            route = json.loads(body)
            assert route["key"] == "photo:42"
            assert sorted(route["shards"]) == sorted(shard.address for shard in shards)

            status, headers, body = proxy.get("/v1/route?key=")
            assert status == 400
            PROXY_CONTRACT.validate("/v1/route", status, body, headers["Content-Type"])
            assert proxy.terminate() == 0
    finally:
        for shard in shards:
            shard.kill()

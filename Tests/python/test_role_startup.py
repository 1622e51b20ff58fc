"""Every role's start and stop as an operator sees them: the default admin ports let a cache, a
proxy and an elect sidecar start side by side on one host; a port clash names the flag and the
address; a SIGTERM drain never makes SwiftNIO complain about a shut-down event loop (issue 14)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import struct
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from flotilla_server import FlotillaProcess, flotilla_binary, free_port, require_peer, wait_for

DEFAULT_ADMIN = {"cache": 11311, "cache-proxy": 22322, "elect": 12379}
NIO_SHUTDOWN_COMPLAINT = "Cannot schedule tasks on an EventLoop that has already shut down"


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def role_args(role: str, tmp_path) -> list[str]:
    if role == "cache":
        return ["cache", "--listen", "127.0.0.1:0"]
    if role == "cache-proxy":
        return ["cache-proxy", "--listen", "127.0.0.1:0", "--shards", "127.0.0.1:1"]
    return ["elect", "--coordinator", f"file:{tmp_path}/leader.lock", "--name", "startup", "--", "sleep", "60"]


def test_three_roles_with_their_default_admin_ports_start_side_by_side(tmp_path):
    busy = [port for port in DEFAULT_ADMIN.values() if not port_is_free(port)]
    assert not busy, f"default admin ports {busy} are taken on this host: stop what holds them"
    processes = []
    try:
        for role in DEFAULT_ADMIN:
            processes.append(subprocess.Popen([flotilla_binary(), *role_args(role, tmp_path)],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        for role, port in DEFAULT_ADMIN.items():
            def answers() -> bool:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return True
                except OSError:
                    return False
            assert wait_for(answers, timeout=20), f"{role}: nothing on its default admin port {port}"
        assert all(process.poll() is None for process in processes)
    finally:
        for process in processes:
            process.terminate()
            process.wait(20)


@pytest.mark.parametrize("flag", ["--admin", "--listen"])
def test_a_port_clash_names_the_flag_and_the_address(flag):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        other = "--listen" if flag == "--admin" else "--admin"
        result = subprocess.run([flotilla_binary(), "cache", flag, address, other, "127.0.0.1:0"],
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if "rror" in line]
    assert errors == [f"Error: {flag} {address}: cannot listen: address already in use"], result.stderr


def test_a_duration_of_zero_reads_0s_in_errors():
    result = subprocess.run([flotilla_binary(), "elect", "--name", "x", "--coordinator", "file:/tmp/x.lock",
                             "--ttl", "0s", "--", "true"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "got 0s" in result.stderr, result.stderr


def test_defaults_are_printed_once_in_help():
    for command in (["cache"], ["cache-proxy"], ["bench"], ["elect"], ["plan", "shards"], ["plan", "queue"],
                    ["cache-proxy", "verify"]):
        text = " ".join(subprocess.run([flotilla_binary(), *command, "--help"], capture_output=True, text=True,
                                       timeout=30).stdout.split())
        twice = re.findall(r"\(default: [^)]*\)\.? \(default: [^)]*\)", text)
        assert not twice, f"{command}: a default printed twice: {twice}"


def test_cache_proxy_verify_help_is_its_own():
    result = subprocess.run([flotilla_binary(), "cache-proxy", "verify", "--help"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0 and "Is the data the same in every store?" in result.stdout, result.stdout[:300]


@pytest.mark.parametrize("role", ["cache", "cache-proxy"])
def test_a_binary_protocol_client_gets_unknown_command_at_once(role):
    """memcached's binary protocol (magic 0x80) is answered in kind, "unknown command", and the
    connection closes at once, instead of a binary client waiting for its timeout."""
    args = ["cache"] if role == "cache" else ["cache-proxy", "--shards", "127.0.0.1:1"]
    with FlotillaProcess(args) as process:
        with socket.create_connection(process.data, timeout=5) as client:
            # A binary get of key "k": magic, opcode 0x00, key length 1, opaque 0xCAFE.
            client.sendall(struct.pack(">BBHBBHIIQ", 0x80, 0x00, 1, 0, 0, 0, 1, 0xCAFE, 0) + b"k")
            started = time.monotonic()
            reply = b""
            while chunk := client.recv(4096):
                reply += chunk
            assert time.monotonic() - started < 2, "the connection stayed open"
    magic, opcode, key_length, _, _, status, body_length, opaque, _ = struct.unpack(">BBHBBHIIQ", reply[:24])
    assert (magic, opcode, status, opaque) == (0x81, 0x00, 0x0081, 0xCAFE), reply
    assert reply[24:] == b"Unknown command" and body_length == 15


@pytest.mark.parametrize("role", list(DEFAULT_ADMIN))
def test_sigterm_drains_without_a_shut_down_event_loop(role, tmp_path):
    """Five drains per role: SwiftNIO's complaint about a task scheduled on a shut-down loop showed
    in about one in five before the shutdown order was fixed."""
    for attempt in range(5):
        if role == "elect":
            process = FlotillaProcess(["elect", "--coordinator", f"file:{tmp_path}/leader.lock", "--name", "drain"],
                                      listen=False, listeners=("admin",), trailing=["--", "sleep", "60"])
        else:
            process = FlotillaProcess(role_args(role, tmp_path)[:1] + role_args(role, tmp_path)[3:])
        with process:
            time.sleep(0.3)
            status = process.terminate(timeout=20)
            assert status == 0, f"{role}: exit {status}: {process.log[-5:]}"
        time.sleep(0.1)  # the drain thread reads the last lines
        complaints = [line for line in process.log if NIO_SHUTDOWN_COMPLAINT in line]
        assert not complaints, f"{role}, attempt {attempt + 1}: {complaints}"


def test_json_logs_carry_the_zone_numbers_and_end_in_json():
    """--log-format json: timestamps in UTC with their zone, numbers as JSON numbers, and the
    error that ends the process as a JSON line too (not a plain-text `Error:` line)."""
    with FlotillaProcess(["cache"]) as process:
        assert process.terminate() == 0
    lines = [json.loads(line) for line in process.log if line.startswith("{")]
    assert lines and all(line["ts"].endswith("Z") for line in lines), lines[:2]
    draining = next(line for line in lines if line["message"] == "draining")
    assert draining["connections.open"] == 0, draining
    result = subprocess.run([flotilla_binary(), "cache", "--memory", "1KB", "--log-format", "json"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    last = json.loads(result.stderr.strip().splitlines()[-1])
    assert last["level"] == "error" and last["message"].startswith("--memory: must be at least"), result.stderr


@pytest.mark.parametrize("arguments, message", [
    (["cache-proxy", "--shards", "127.0.0.1:1", "--replicas", "-1"], "--replicas: must be from 1"),
    (["plan", "shards", "--data", "1GB", "--cache-per-node", "1GB", "--rps", "-5", "--rps-per-node", "1"],
     "--rps: must be above 0"),
])
def test_a_negative_number_gets_the_options_own_check(arguments, message):
    """Not ArgumentParser's "Missing value": `-1` is the option's value, and its check answers."""
    result = subprocess.run([flotilla_binary(), *arguments], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and message in result.stderr, result.stderr


PROMTOOL_MISSING = "promtool is not installed; install Debian's prometheus package (scripts/install-test-deps.sh)"


def role_process(role: str, tmp_path) -> FlotillaProcess:
    if role == "elect":
        return FlotillaProcess(["elect", "--coordinator", f"file:{tmp_path}/leader.lock", "--name", "metrics"],
                               listen=False, listeners=("admin",), trailing=["--", "sleep", "60"])
    return FlotillaProcess(role_args(role, tmp_path)[:1] + role_args(role, tmp_path)[3:])


@pytest.mark.parametrize("role", list(DEFAULT_ADMIN))
def test_metrics_pass_promtool(role, tmp_path):
    """Every family on /metrics has HELP and TYPE and a conventional name, as Prometheus' own
    checker reads them."""
    promtool = require_peer(shutil.which("promtool"), PROMTOOL_MISSING)
    with role_process(role, tmp_path) as process:
        if role != "elect":
            with socket.create_connection(process.data, timeout=5) as client:
                client.sendall(b"set k 0 0 1\r\nx\r\nget k\r\n")  # a few operations to export
                time.sleep(0.3)
        status, _, body = process.get("/metrics")
        assert status == 200
        checked = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
        assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()
        text = body.decode()
        if role == "cache":
            assert "flotilla_cache_get_hits_total 1" in text, text
        for family in ("flotilla_build_info", "process_resident_memory_bytes", "process_cpu_seconds_total"):
            assert f"# TYPE {family} " in text, family
        if role != "elect":
            assert "# TYPE flotilla_request_duration_seconds histogram" in text, text
            assert 'flotilla_request_duration_seconds_count{operation="get"} 1' in text, text
            assert 'flotilla_request_duration_seconds_bucket{operation="get",le="+Inf"} 1' in text, text
        families = {line.split()[2] for line in body.decode().splitlines() if line.startswith("# TYPE ")}
        helped = {line.split()[2] for line in body.decode().splitlines() if line.startswith("# HELP ")}
        assert families and families == helped, families ^ helped


def test_a_real_prometheus_scrapes_a_cache_and_a_proxy(tmp_path):
    """Debian's Prometheus server scrapes a cache and a proxy in front of it: both targets up,
    and their families queryable."""
    prometheus = require_peer(shutil.which("prometheus"), PROMTOOL_MISSING)
    with FlotillaProcess(["cache"]) as cache, \
            FlotillaProcess(["cache-proxy", "--shards", f"127.0.0.1:{cache.data[1]}", "--replicas", "1"]) as proxy:
        with socket.create_connection(proxy.data, timeout=5) as client:
            client.sendall(b"set k 0 0 1\r\nx\r\nget k\r\n")
            time.sleep(0.3)
        targets = [f"127.0.0.1:{cache.addresses['admin'][1]}", f"127.0.0.1:{proxy.addresses['admin'][1]}"]
        config = tmp_path / "prometheus.yml"
        config.write_text("global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: flotilla\n"
                          f"    static_configs: [{{targets: {json.dumps(targets)}}}]\n")
        web = f"127.0.0.1:{free_port()}"
        server = subprocess.Popen([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path}/data",
                                   f"--web.listen-address={web}"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        try:
            def query(expression: str) -> list:
                url = f"http://{web}/api/v1/query?query={urllib.parse.quote(expression)}"
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        return json.loads(response.read())["data"]["result"]
                except OSError:
                    return []

            def both_up() -> bool:
                return sorted(r["metric"]["instance"] for r in query("up == 1")) == sorted(targets)

            assert wait_for(both_up, timeout=30, step=0.5), f"targets not up: {query('up')}"
            assert wait_for(lambda: len(query('flotilla_requests_total{operation="get"}')) == 2, timeout=10)
            assert [r["value"][1] for r in query("flotilla_proxy_shard_up")] == ["1"]
            assert query("flotilla_build_info")
            # Latency is a histogram: the p99 of both instances' gets together is a finite time.
            quantile = query('histogram_quantile(0.99, sum by (le) (flotilla_request_duration_seconds_bucket'
                             '{operation="get"}))')
            assert len(quantile) == 1 and 0 < float(quantile[0]["value"][1]) < 10, quantile
        finally:
            server.terminate()
            server.wait(20)

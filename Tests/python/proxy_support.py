"""Real memcached shards and a real `flotilla cache-proxy` in front of them, for the proxy tests.

memcached cannot bind port 0 and report it, so each shard gets a free loopback port found by
binding one briefly (retried if another process takes it first). Shards can be killed, stopped
(SIGSTOP: a slow shard that still accepts connections), resumed and restarted on the same port.

Under CI (CI=true) a missing memcached fails the tests; elsewhere they are skipped with an
install hint, as the Swift integration tests do.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from typing import Callable, Iterable

import pytest
from pymemcache.client.base import Client

from flotilla_server import FlotillaProcess, free_port, require_peer, wait_for  # noqa: F401 (re-exported)

MEMCACHED_MISSING = (
    "memcached is not installed; install it (`scripts/install-test-deps.sh` or `apt-get install memcached`) "
    "or set MEMCACHED_BIN"
)


def memcached_path() -> str | None:
    candidates = [os.environ.get("MEMCACHED_BIN"), shutil.which("memcached"),
                  "/usr/bin/memcached", "/usr/local/bin/memcached"]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def require_memcached() -> str:
    """The memcached binary; a failure under CI, a skip elsewhere, when it is missing."""
    return require_peer(memcached_path(), MEMCACHED_MISSING)


class Memcached:
    """One memcached shard on 127.0.0.1 (`-U 0 -t 1 -m 64`)."""

    def __init__(self, port: int | None = None):
        self.path = require_memcached()
        self.proc: subprocess.Popen | None = None
        self.stopped = False
        if port is not None:
            self.port = port
            self.start()
            return
        failures = []
        for _ in range(5):
            self.port = free_port()
            try:
                self.start()
                return
            except RuntimeError as error:
                failures.append(str(error))
        raise RuntimeError("memcached did not start: " + "; ".join(failures))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 5.0) -> None:
        """(Re)starts memcached on its port and waits until it accepts connections."""
        command = [self.path, "-U", "0", "-l", "127.0.0.1", "-p", str(self.port), "-t", "1", "-m", "64"]
        if os.geteuid() == 0:
            command += ["-u", "root"]
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.stopped = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode("utf-8", "replace") if self.proc.stderr else ""
                raise RuntimeError(f"port {self.port}: exit {self.proc.returncode}: {err.strip()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"port {self.port}: not accepting after {timeout}s")

    def kill(self) -> None:
        """SIGKILL: the shard vanishes (connections reset, new ones refused)."""
        if self.proc is not None and self.proc.poll() is None:
            if self.stopped:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(5)
        self.stopped = False

    def pause(self) -> None:
        """SIGSTOP: the shard hangs; the kernel still accepts connections for it."""
        assert self.proc is not None and self.proc.poll() is None
        self.proc.send_signal(signal.SIGSTOP)
        self.stopped = True

    def resume(self) -> None:
        if self.proc is not None and self.proc.poll() is None and self.stopped:
            self.proc.send_signal(signal.SIGCONT)
        self.stopped = False

    def client(self, timeout: float = 2.0) -> Client:
        return Client(("127.0.0.1", self.port), connect_timeout=timeout, timeout=timeout, default_noreply=False)

    def values(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The keys this shard holds and their values, asked directly (not through the proxy)."""
        keys = list(keys)
        found: dict[str, bytes] = {}
        client = self.client()
        try:
            for start in range(0, len(keys), 100):
                found.update(client.get_many(keys[start:start + 100]))
        finally:
            client.close()
        return found

    def __enter__(self) -> "Memcached":
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


class Shards:
    """`count` memcached shards, all stopped (resumed first if paused) on exit."""

    def __init__(self, count: int):
        self.shards: list[Memcached] = []
        try:
            for _ in range(count):
                self.shards.append(Memcached())
        except BaseException:
            self.close()
            raise

    def __getitem__(self, index: int) -> Memcached:
        return self.shards[index]

    def __len__(self) -> int:
        return len(self.shards)

    def __iter__(self):
        return iter(self.shards)

    @property
    def spec(self) -> str:
        return ",".join(s.address for s in self.shards)

    def placement(self, keys: Iterable[str]) -> dict[str, set[int]]:
        """For each key, the indices of the shards that hold it (asked directly)."""
        keys = list(keys)
        where: dict[str, set[int]] = {key: set() for key in keys}
        for index, shard in enumerate(self.shards):
            for key in shard.values(keys):
                where[key].add(index)
        return where

    def close(self) -> None:
        for shard in self.shards:
            shard.kill()

    def __enter__(self) -> "Shards":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CacheShards:
    """`flotilla cache` shards on fixed loopback ports, so that one restarts on its own port."""

    def __init__(self, count: int, memory: str = "256MiB"):
        self.memory = memory
        self.processes = [self._start(0) for _ in range(count)]
        self.ports = [process.data[1] for process in self.processes]

    def _start(self, port: int) -> FlotillaProcess:
        return FlotillaProcess(["cache", "--listen", f"127.0.0.1:{port}", "--memory", self.memory,
                                "--threads", "1"], listen=False)

    @property
    def spec(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def address(self, index: int) -> str:
        return f"127.0.0.1:{self.ports[index]}"

    def kill(self, index: int) -> None:
        self.processes[index].proc.kill()
        self.processes[index].proc.wait(5)

    def restart(self, index: int) -> None:
        self.kill(index)
        self.processes[index] = self._start(self.ports[index])

    def __enter__(self) -> "CacheShards":
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.__exit__()


class CacheProxy(FlotillaProcess):
    """A running `flotilla cache-proxy` over `shards` (a `Shards` or a HOST:PORT,… string)."""

    def __init__(self, shards: "Shards | str", *args: str, threads: int = 2):
        spec = shards.spec if isinstance(shards, Shards) else shards
        super().__init__(["cache-proxy", "--shards", spec, "--threads", str(threads), *args])

    def client(self, timeout: float = 5.0, **kw) -> Client:
        kw.setdefault("default_noreply", False)
        return Client(self.data, connect_timeout=timeout, timeout=timeout, **kw)

    def stats(self) -> dict[str, str]:
        client = self.client()
        try:
            return {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else str(v)
                    for k, v in client.stats().items()}
        finally:
            client.close()

    def log_entries(self, message: str) -> list[dict]:
        entries = []
        for line in list(self.log):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("message") == message:
                entries.append(entry)
        return entries

    def wait_for_log(self, message: str, predicate: Callable[[dict], bool] = lambda _: True,
                     timeout: float = 5.0) -> dict | None:
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.log_entries(message):
                if predicate(entry):
                    return entry
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)


class Raw:
    """A plain socket to a memcached-protocol server, for exact bytes."""

    def __init__(self, address: tuple[str, int], timeout: float = 5.0):
        self.sock = socket.create_connection(address, timeout=timeout)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_until(self, token: bytes, limit: int = 4 << 20) -> bytes:
        while token not in self.buffer:
            if len(self.buffer) > limit:
                raise AssertionError(f"no {token!r} in {len(self.buffer)} bytes")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed; got {self.buffer!r}")
            self.buffer += chunk
        end = self.buffer.index(token) + len(token)
        out, self.buffer = self.buffer[:end], self.buffer[end:]
        return out

    def ask(self, request: bytes) -> bytes:
        """Sends `request` then `mn`, and returns every byte answered before the `MN`."""
        self.send(request + b"mn\r\n")
        return self.read_until(b"MN\r\n")[:-4]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Raw":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def first_difference(got: bytes, expected: bytes) -> str | None:
    """None when equal; else where two long replies part, briefly. pytest's own diff of two
    megabyte-long byte strings is quadratic and would run for hours."""
    if got == expected:
        return None
    at = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
    return (f"{len(got)} bytes against {len(expected)} expected, first difference at byte {at}: "
            f"got {got[max(0, at - 40):at + 80]!r}, expected {expected[max(0, at - 40):at + 80]!r}")


def large_gets(address: tuple[str, int], request: bytes, done) -> None:
    """Sends `request` (a large get) again and again and reads each reply to its END, counting
    answered replies in `done` (a multiprocessing.Value): the load of a client asking for many
    keys at a time, run in its own process."""
    with socket.create_connection(address, timeout=60) as sock:
        while True:
            sock.sendall(request)
            received = b""
            while not received.endswith(b"END\r\n"):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    return
                received += chunk
            with done.get_lock():
                done.value += 1


def third_client_latencies(address: tuple[str, int], client: Client, keys: list[str],
                           seconds: float) -> tuple[list[float], int]:
    """Sets `keys` (10-byte values) and `small` through `client`, then runs two processes asking
    for all of `keys` in one get, again and again, and a third client asking for `small` every
    2 ms for `seconds` once the first large get is answered. Returns the third client's
    latencies and how many large gets were answered meanwhile."""
    import multiprocessing

    for start in range(0, len(keys), 1000):
        client.set_many({key: b"x" * 10 for key in keys[start:start + 1000]})
    assert client.set("small", b"ok") is True
    request = ("get " + " ".join(keys) + "\r\n").encode()
    done = multiprocessing.Value("i", 0)
    workers = [multiprocessing.Process(target=large_gets, args=(address, request, done), daemon=True)
               for _ in range(2)]
    latencies: list[float] = []
    with Raw(address, timeout=30) as third:
        for worker in workers:
            worker.start()
        try:
            wait_for(lambda: done.value > 0, timeout=60)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                started = time.monotonic()
                third.send(b"get small\r\n")
                assert third.read_until(b"END\r\n") == b"VALUE small 0 2\r\nok\r\nEND\r\n"
                latencies.append(time.monotonic() - started)
                time.sleep(0.002)
        finally:
            for worker in workers:
                worker.terminate()
                worker.join(5)
    return latencies, done.value

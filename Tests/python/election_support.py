"""Candidates of `flotilla elect`, a real etcd, and the history their leaders' children write.

Every candidate runs `tests/python/leader_child.py` as its command: while it leads, the child
appends `start`, then a `beat` every 5 ms, to a shared history file, each line carrying its
fencing token, its candidate id, its pid and the time. Each child's interval is [start, last
beat]; SIGKILL through the parent-death signal ends it as surely as SIGTERM.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from flotilla_server import FlotillaProcess, flotilla_binary, free_port, require_peer, wait_for  # noqa: F401

CHILD = Path(__file__).with_name("leader_child.py")
ETCD_MISSING = "etcd is not installed; install it (`scripts/install-test-deps.sh` or `apt-get install etcd-server`)"


def require_etcd() -> str:
    """The etcd binary; a failure under CI, a skip elsewhere, when it is missing."""
    return require_peer(os.environ.get("ETCD_BIN") or shutil.which("etcd") or "/usr/bin/etcd", ETCD_MISSING)


class Etcd:
    """A one-member etcd cluster on loopback ports, with a temporary data directory."""

    def __init__(self, client_port: int | None = None):
        self.binary = require_etcd()
        self.client_port = client_port or free_port()
        self.peer_port = free_port()
        self.directory = tempfile.mkdtemp(prefix="flotilla-etcd-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"etcd://127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 20.0) -> "Etcd":
        client = f"http://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        self.proc = subprocess.Popen(
            [self.binary, "--name", "t", "--data-dir", self.directory + "/data",
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"t={peer}", "--log-level", "error"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(self.directory + "/log", "wb"))

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{client}/health", timeout=1) as response:
                    return json.loads(response.read()).get("health") == "true"
            except (OSError, ValueError):
                return False

        if not wait_for(healthy, timeout=timeout, step=0.1):
            self.stop()
            raise RuntimeError("etcd did not become healthy: " + Path(self.directory + "/log").read_text()[-2000:])
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "Etcd":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class Candidate:
    """One `flotilla elect` process with the leader child as its command (or none: sidecar)."""

    def __init__(self, name: str, coordinator: str, ident: str, history: str | None, *extra: str,
                 ttl: str = "2s", sidecar: bool = False):
        self.ident = ident
        arguments = ["elect", "--name", name, "--coordinator", coordinator, "--id", ident, "--ttl", ttl, *extra]
        if sidecar:
            arguments += ["--http", "127.0.0.1:0"]
        trailing = ["--", sys.executable, str(CHILD), history] if history is not None else []
        try:
            self.process = FlotillaProcess(arguments, listen=False, trailing=trailing,
                                           listeners=("admin", "data") if sidecar else ("admin",))
        except RuntimeError as error:
            raise RuntimeError(f"candidate {ident} did not start: {error}") from None
        self.proc = self.process.proc
        self.log: list[dict] = self.process.entries
        self.raw: list[str] = self.process.log
        self.addresses = self.process.addresses

    @property
    def pid(self) -> int:
        return self.proc.pid

    def messages(self, message: str) -> list[dict]:
        return [entry for entry in list(self.log) if entry.get("message") == message]

    def leads(self) -> bool:
        return len(self.messages("leading")) > len(self.messages("command stopped")) + len(
            self.messages("command exited"))

    def get(self, listener: str, path: str) -> tuple[int, bytes, str]:
        host, port = self.addresses[listener]
        try:
            with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as response:
                return response.status, response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as error:
            return error.code, error.read(), error.headers.get("Content-Type", "")

    def signal(self, number: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, number)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def terminate(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


@dataclass
class Interval:
    token: int
    ident: str
    pid: int
    start: float
    end: float


def read_history(path: str) -> list[Interval]:
    """The children's intervals, by start time."""
    intervals: dict[tuple[int, int], Interval] = {}
    if not os.path.exists(path):
        return []
    with open(path) as history:
        for line in history:
            parts = line.split()
            if len(parts) != 5:
                continue  # a line cut by a kill
            kind, token, ident, pid, stamp = parts[0], int(parts[1]), parts[2], int(parts[3]), int(parts[4]) / 1e9
            key = (token, pid)
            if kind == "start":
                intervals[key] = Interval(token, ident, pid, stamp, stamp)
            elif key in intervals:
                intervals[key].end = max(intervals[key].end, stamp)
    return sorted(intervals.values(), key=lambda interval: interval.start)


def current_leader(path: str, after: float = 0.0) -> Interval | None:
    """The interval that started last, after `after`, if any."""
    started = [interval for interval in read_history(path) if interval.start > after]
    return started[-1] if started else None


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie counts as gone: its parent died and init has yet to reap it.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True
    return False


def now() -> float:
    return time.time()

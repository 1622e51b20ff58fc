"""Start and stop `flotilla` roles for the Python tests, on loopback ports chosen by the kernel.

Every role is started here: it binds port 0 and writes the ports it was given to its ready file
(`--ready-file`) once all its listeners are bound; its JSON log lines on stderr are kept for the
tests that read them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 20.0


def flotilla_binary() -> str:
    binary = os.environ.get("FLOTILLA_BIN") or str(REPO / ".build" / "debug" / "flotilla")
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"flotilla binary not found: {binary} (run `swift build` or set FLOTILLA_BIN)")
    return binary


class FlotillaProcess:
    """A running `flotilla` role, its listeners and the stderr lines it wrote so far.

    `listen` adds `--listen 127.0.0.1:0` (roles with a data listener); `listeners` are the names
    the ready file must hold before the role counts as started."""

    def __init__(self, args: list[str], listen: bool = True, listeners: tuple[str, ...] = ("data", "admin"),
                 trailing: list[str] | None = None):
        # The ready file lives in a directory of its own, removed when this object goes (or the
        # interpreter exits), however the process ended: a killed role cannot remove it itself.
        directory = tempfile.mkdtemp(prefix="flotilla-ready-")
        weakref.finalize(self, shutil.rmtree, directory, True)
        self.ready_file = os.path.join(directory, "ready.json")
        command = [flotilla_binary(), *args]
        if listen:
            command += ["--listen", "127.0.0.1:0"]
        command += ["--admin", "127.0.0.1:0", "--log-format", "json", "--ready-file", self.ready_file]
        command += trailing or []
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.log: list[str] = []
        self.entries: list[dict] = []
        self.addresses: dict[str, tuple[str, int]] = {}

        def drain() -> None:
            assert self.proc.stderr is not None
            for raw in self.proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.log.append(line)
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    self.entries.append(entry)

        threading.Thread(target=drain, daemon=True).start()
        if not wait_for(lambda: self._read_ready_file(listeners) or self.proc.poll() is not None, STARTUP_TIMEOUT) \
                or not self.addresses:
            self.proc.kill()
            self.proc.wait(5)
            raise RuntimeError("flotilla did not write its ready file; stderr:\n" + "\n".join(self.log[-20:]))

    def _read_ready_file(self, wanted: tuple[str, ...]) -> bool:
        try:
            with open(self.ready_file) as file:
                listeners = json.load(file)["listeners"]
        except (OSError, ValueError, KeyError):
            return False
        if not all(name in listeners for name in wanted):
            return False
        for name, address in listeners.items():
            host, _, port = address.rpartition(":")
            self.addresses[name] = (host.strip("[]"), int(port))
        return True

    @property
    def data(self) -> tuple[str, int]:
        return self.addresses["data"]

    def admin_url(self, path: str) -> str:
        host, port = self.addresses["admin"]
        return f"http://{host}:{port}{path}"

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
        """GET on the admin listener: (status, headers, body), 4xx/5xx included."""
        try:
            with urllib.request.urlopen(self.admin_url(path), timeout=timeout) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait; SIGKILL if it does not exit in time. Returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise
        return self.proc.returncode

    def __enter__(self) -> "FlotillaProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float = 5.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


def require_peer(path: str | None, missing: str) -> str:
    """A peer's binary; when it is missing, a failure under CI and a skip elsewhere (saying how to install it)."""
    if path is None or not os.access(path, os.X_OK):
        import pytest

        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    return path

"""`flotilla elect` with three real candidates, on both coordinators: a file lock and a real etcd.

Every candidate's command is leader_child.py, which writes its interval (token, start, beats) to
a shared history file: handovers are measured from it, and no two intervals may overlap.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from contract import Contract
from election_support import (Candidate, Etcd, current_leader, flotilla_binary, now, process_gone,
                              read_history, require_etcd)
from flotilla_server import free_port, wait_for

SIDECAR = Contract(Path(__file__).resolve().parents[2] / "Sources" / "FlotillaElectionAPI" / "openapi.yaml")
TTL = "2s"
TTL_SECONDS = 2.0


@pytest.fixture(params=["file", "etcd"])
def backend(request, tmp_path):
    """(coordinator URL, failover bound after a crash in seconds)."""
    if request.param == "file":
        yield f"file:{tmp_path}/election.lock", 0.2
    else:
        with Etcd() as etcd:
            yield etcd.url, TTL_SECONDS + 1.0


def start_three(coordinator: str, history: str, name: str = "job") -> list[Candidate]:
    return [Candidate(name, coordinator, f"c{i}", history, ttl=TTL) for i in range(3)]


def wait_for_leader(candidates: list[Candidate], history: str, after: float = 0.0, timeout: float = 10.0):
    """The candidate whose child started last after `after`, and that child's interval."""
    assert wait_for(lambda: current_leader(history, after) is not None, timeout=timeout), \
        "no leader's child started; logs:\n" + "\n".join(line for c in candidates for line in c.raw[-5:])
    interval = current_leader(history, after)
    leader = next(c for c in candidates if c.ident == interval.ident)
    return leader, interval


def assert_no_overlap(history: str) -> list:
    intervals = read_history(history)
    for earlier, later in zip(intervals, intervals[1:]):
        assert later.token > earlier.token, f"token went from {earlier.token} to {later.token}"
        assert later.start > earlier.end, (
            f"leader {later.ident} (token {later.token}) started {earlier.end - later.start:.4f} s before "
            f"{earlier.ident} (token {earlier.token}) stopped")
    return intervals


def close_all(candidates: list[Candidate]) -> None:
    for candidate in candidates:
        candidate.kill()


def test_a_killed_leader_is_replaced_and_its_child_dies(backend, tmp_path):
    coordinator, bound = backend
    history = str(tmp_path / "history")
    candidates = start_three(coordinator, history)
    try:
        leader, first = wait_for_leader(candidates, history)
        time.sleep(0.3)
        killed_at = now()
        leader.signal(signal.SIGKILL)
        successor, second = wait_for_leader(candidates, history, after=killed_at, timeout=bound + 5)
        failover = second.start - killed_at
        print(f"\n{coordinator.split(':')[0]}: failover after kill -9 in {failover * 1000:.0f} ms")
        assert failover < bound, f"failover took {failover:.3f} s, bound {bound} s"
        assert successor is not leader
        assert second.token > first.token
        assert wait_for(lambda: process_gone(first.pid), timeout=1.0), "the dead leader's child outlived it"
        assert_no_overlap(history)
    finally:
        close_all(candidates)


def test_sigterm_hands_over_at_once_and_a_finished_command_ends_elect(backend, tmp_path):
    coordinator, _ = backend
    history = str(tmp_path / "history")
    candidates = start_three(coordinator, history)
    try:
        leader, first = wait_for_leader(candidates, history)
        stopped_at = now()
        assert leader.terminate() == 0
        _, second = wait_for_leader(candidates, history, after=stopped_at)
        handover = second.start - stopped_at
        print(f"\n{coordinator.split(':')[0]}: handover after SIGTERM in {handover * 1000:.0f} ms")
        # Well under 100 ms in elect itself; the bound leaves room for the child's start on a busy machine.
        assert handover < 0.5
        assert process_gone(first.pid)
        assert_no_overlap(history)
    finally:
        close_all(candidates)


def test_the_command_exit_status_is_elects(backend, tmp_path):
    coordinator, _ = backend
    result = subprocess.run(
        [flotilla_binary(), "elect", "--name", "once", "--coordinator", coordinator, "--ttl", TTL,
         "--admin", "127.0.0.1:0", "--", "sh", "-c", 'test -n "$FLOTILLA_LEADER_TOKEN" && exit 7'],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert result.returncode == 7, result.stderr.decode()[-2000:]


def test_a_paused_leader_steps_down_when_it_resumes(backend, tmp_path):
    coordinator, bound = backend
    history = str(tmp_path / "history")
    candidates = start_three(coordinator, history)
    try:
        leader, first = wait_for_leader(candidates, history)
        paused_at = now()
        leader.signal(signal.SIGSTOP)
        if coordinator.startswith("file:"):
            # A file lock has no lease: the paused process keeps it, and nobody else leads.
            time.sleep(TTL_SECONDS * 1.5)
            assert current_leader(history, after=paused_at) is None
        else:
            _, second = wait_for_leader(candidates, history, after=paused_at, timeout=TTL_SECONDS + 5)
            assert second.token > first.token
            assert second.start - paused_at < bound + 0.5
        resumed_at = now()
        leader.signal(signal.SIGCONT)
        # Its lease clock ran out while it was stopped: it stops its child at its first tick.
        assert wait_for(lambda: process_gone(first.pid), timeout=3.0), "the resumed leader kept its child"
        assert wait_for(lambda: leader.messages("stepping down: leadership can no longer be proven"), timeout=2.0), \
            "no step-down logged"
        print(f"\nold child gone {now() - resumed_at:.3f} s after SIGCONT")
        if coordinator.startswith("file:"):
            _, second = wait_for_leader(candidates, history, after=resumed_at, timeout=5)
            assert second.token > first.token
        # Every later term has a higher token than the paused one: a fenced resource rejects it.
        later = [interval for interval in read_history(history) if interval.start > first.start]
        assert later and all(interval.token > first.token for interval in later)
    finally:
        for candidate in candidates:
            candidate.signal(signal.SIGCONT)
        close_all(candidates)


def test_twenty_handovers_never_overlap(backend, tmp_path):
    coordinator, bound = backend
    history = str(tmp_path / "history")
    candidates = start_three(coordinator, history)
    handovers = 0
    try:
        after = 0.0
        for round_ in range(20):
            leader, interval = wait_for_leader(candidates, history, after=after, timeout=bound + 10)
            time.sleep(0.05)
            after = now()
            # Mostly graceful; every fifth a crash (a crash on etcd costs a whole TTL).
            if round_ % 5 == 4:
                leader.signal(signal.SIGKILL)
                leader.proc.wait(5)
            else:
                assert leader.terminate() == 0
            index = candidates.index(leader)
            candidates[index] = Candidate("job", coordinator, f"r{round_}", history, ttl=TTL)
            handovers += 1
        wait_for_leader(candidates, history, after=after, timeout=bound + 10)
        intervals = assert_no_overlap(history)
        assert len(intervals) >= 21
        assert handovers == 20
    finally:
        close_all(candidates)


def checked(candidate: Candidate, path: str) -> tuple[int, bytes, str]:
    """A sidecar answer, validated against the sidecar's OpenAPI contract."""
    status, body, content_type = candidate.get("data", path)
    SIDECAR.validate(path, status, body, content_type)
    return status, body, content_type


def test_sidecar_answers_who_leads(backend, tmp_path):
    coordinator, _ = backend
    first = Candidate("side", coordinator, "s1", None, ttl=TTL, sidecar=True)
    assert wait_for(lambda: first.get("data", "/leader/me")[0] == 200, timeout=10)
    second = Candidate("side", coordinator, "s2", None, ttl=TTL, sidecar=True)
    try:
        for candidate in (first, second):
            for path in ("/leader", "/leader/me"):
                checked(candidate, path)
        status, body, _ = first.get("data", "/leader/me")
        leader = json.loads(body)
        assert leader["id"] == "s1" and leader["me"] is True and leader["election"] == "side"
        assert leader["token"] >= 1
        status, body, content_type = second.get("data", "/leader/me")
        assert status == 409 and content_type.startswith("application/problem+json")
        status, body, _ = second.get("data", "/leader")
        assert status == 200 and json.loads(body)["id"] == "s1" and json.loads(body)["me"] is False
        assert wait_for(lambda: second.get("admin", "/readyz")[0] == 200, timeout=5)
        assert first.terminate() == 0
        assert wait_for(lambda: second.get("data", "/leader/me")[0] == 200, timeout=5)
        assert json.loads(second.get("data", "/leader")[1])["token"] > leader["token"]
    finally:
        first.kill()
        second.kill()


def test_unreachable_etcd_at_start_is_retried_until_it_answers(tmp_path):
    require_etcd()
    port = free_port()
    history = str(tmp_path / "history")
    candidate = Candidate("job", f"etcd://127.0.0.1:{port}", "early", history, ttl=TTL, sidecar=True)
    try:
        assert wait_for(lambda: len(candidate.messages("coordinator unreachable; campaigning again after a delay")) >= 3,
                        timeout=10)
        warnings = candidate.messages("coordinator unreachable; campaigning again after a delay")
        assert f"127.0.0.1:{port}" in warnings[0]["coordinator"]
        assert candidate.get("admin", "/readyz")[0] == 503
        assert checked(candidate, "/leader/me")[0] == 409
        assert checked(candidate, "/leader")[0] == 503
        assert read_history(history) == []
        with Etcd(client_port=port):
            assert wait_for(lambda: candidate.get("data", "/leader/me")[0] == 200, timeout=15)
            assert wait_for(lambda: current_leader(history) is not None, timeout=5)
            # Readiness follows the coordinator within a poll or two.
            assert wait_for(lambda: candidate.get("admin", "/readyz")[0] == 200, timeout=5)
    finally:
        candidate.kill()


@pytest.mark.parametrize("url, message", [
    ("etcd://", "etcd"),
    ("etcd://127.0.0.1", "port"),
    ("etcd://127.0.0.1:99999", "port"),
    ("zookeeper://127.0.0.1:2181", "zookeeper"),
    ("file:", "file"),
    ("127.0.0.1:2379", "etcd://"),
    ("file:/missing/dir/x.lock", "no directory /missing/dir"),
])
def test_a_malformed_coordinator_exits_2_with_a_clear_message(url, message):
    result = subprocess.run([flotilla_binary(), "elect", "--name", "x", "--coordinator", url, "--", "true"],
                            stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert result.returncode == 2
    error = result.stderr.decode()
    assert "--coordinator" in error and message in error, error


@pytest.mark.parametrize("arguments, message", [
    (["--name", "x", "--coordinator", "file:/tmp/x.lock"], "give a command"),
    (["--name", "", "--coordinator", "file:/tmp/x.lock", "--", "true"], "--name"),
    (["--name", "x", "--coordinator", "file:/tmp/x.lock", "--ttl", "500ms", "--", "true"], "--ttl"),
    (["--name", "x", "--coordinator", "file:/tmp/x.lock", "--ttl", "2s", "--grace", "5s", "--", "true"], "--grace"),
    (["--name", "x", "--coordinator", "file:/tmp/x.lock", "--id", "", "--", "true"], "--id"),
    (["--name", "x", "--coordinator", "file:/tmp/x.lock", "--http", "nowhere", "--", "true"], "HOST:PORT"),
])
def test_bad_flags_exit_2_and_say_which(arguments, message):
    result = subprocess.run([flotilla_binary(), "elect", *arguments], stdin=subprocess.DEVNULL,
                            capture_output=True, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr.decode(), result.stderr.decode()


def test_a_command_that_cannot_start_ends_elect_with_127(tmp_path):
    result = subprocess.run(
        [flotilla_binary(), "elect", "--name", "x", "--coordinator", f"file:{tmp_path}/x.lock", "--admin",
         "127.0.0.1:0", "--", "/nonexistent/flotilla-command"],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert result.returncode == 127
    assert "cannot start the command" in result.stderr.decode()

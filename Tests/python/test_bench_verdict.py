"""`flotilla bench` against a target that dies mid-run: every request that was due and did not
succeed is a failure, in the open loop (not sent in time) and in the closed loop (a connection's
time without a connection, at the rate it had), so the verdict cannot be "met" (issue 14).

Run (after a debug build): .build-venv/bin/python -m pytest Tests/python/test_bench_verdict.py -q
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from flotilla_server import FlotillaProcess, flotilla_binary


def bench_while_killing(args: list[str], kill_after: float) -> tuple[int, dict, str]:
    """Runs `flotilla bench` against a fresh `flotilla cache` killed `kill_after` seconds in."""
    with FlotillaProcess(["cache", "--memory", "64MiB"]) as cache:
        host, port = cache.data
        command = [flotilla_binary(), "bench", f"memcache://{host}:{port}", "--keys", "1000", "--connections", "4",
                   "--json", "--quiet", *args]
        bench = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(kill_after)
        cache.proc.kill()
        cache.proc.wait(5)
        out, err = bench.communicate(timeout=60)
    report = json.loads(out) if out.strip() else {}
    return bench.returncode, report, err


@pytest.mark.parametrize("loop,extra,owed", [
    ("closed", [], "unavailable"),
    ("open", ["--rate", "2000/s"], "not_sent"),
])
def test_a_target_killed_mid_run_misses_the_slo(loop, extra, owed):
    status, report, err = bench_while_killing(
        ["--duration", "4s", "--warmup", "0s", "--slo", "success>=99.9%", *extra], kill_after=1.5)
    assert status == 1, f"{loop} loop: exit {status}; {err}"
    errors = report["errors"]
    assert errors.get(owed, 0) > 0, f"{loop} loop: no {owed!r} failures in {errors}"
    # About 2.5 of 4 seconds without a target: well under half the requests succeeded.
    assert report["success_percent"] < 60, f"{loop} loop: success {report['success_percent']} % with the target dead"
    assert report["slo"]["met"] is False


def test_no_request_succeeding_exits_1_without_an_slo():
    status, report, err = bench_while_killing(["--duration", "2s", "--warmup", "1s"], kill_after=0.5)
    assert status == 1, f"exit {status}; {err}"
    assert report["success_percent"] == 0
    assert "no request succeeded" in err

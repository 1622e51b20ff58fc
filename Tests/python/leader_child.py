"""The command the election tests run while a candidate leads: it appends `start`, then a `beat`
every 5 ms, to the history file given as its argument, until it is stopped."""

import os
import sys
import time

token = os.environ["FLOTILLA_LEADER_TOKEN"]
ident = os.environ["FLOTILLA_LEADER_ID"]
assert os.environ["FLOTILLA_ELECTION"]
descriptor = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def record(kind: str) -> None:
    os.write(descriptor, f"{kind} {token} {ident} {os.getpid()} {time.time_ns()}\n".encode())


record("start")
while True:
    time.sleep(0.005)
    record("beat")

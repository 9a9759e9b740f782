# SPDX-License-Identifier: MIT
"""Waiting for events, never for time: a condition polled up to a generous deadline (a
loaded CI machine, sanitized builds), and threads seen asleep in /proc."""
import os
import time

WAIT_S = 30  # how long to wait for what comes at once on an idle machine


def wait_until(cond, what, timeout=WAIT_S):
    """Poll cond() until it is true; fail saying what was awaited after timeout s."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.001)  # poll interval


def thread_state(tid, pid="self"):
    """The state letter (R, S, D, ...) of thread tid of process pid; None if it is gone."""
    try:
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rindex(")") + 2]


def all_asleep(pid):
    """Are all threads of process pid asleep (state S) at once?"""
    tids = os.listdir(f"/proc/{pid}/task")
    return bool(tids) and all(thread_state(t, pid) == "S" for t in tids)


def wait_asleep(pid, what, timeout=WAIT_S):
    """Wait until every thread of process pid is asleep at once."""
    wait_until(lambda: all_asleep(pid), what, timeout)

# SPDX-License-Identifier: MIT
"""Waiting for events, never for time: a condition polled up to a generous deadline (a
loaded CI machine, sanitized builds), and threads seen asleep (or in epoll) in /proc."""
import os
import platform
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


# epoll_wait, epoll_pwait, epoll_pwait2 (aarch64 has only the last two)
_EPOLL_SYSCALLS = {"x86_64": {232, 281, 441}, "aarch64": {22, 441}}


def in_epoll(pid):
    """Is the main thread of process pid blocked in epoll (an asyncio loop with nothing to
    do)? Its wait channel says so, or (where that is hidden) its system call number."""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            if "epoll" in f.read():
                return True
        with open(f"/proc/{pid}/syscall") as f:
            nr = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return nr in _EPOLL_SYSCALLS.get(platform.machine(), ())

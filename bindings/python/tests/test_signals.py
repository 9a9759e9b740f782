# SPDX-License-Identifier: MIT
"""Ctrl-C: SIGINT to a process blocked in recv (or in a publish waiting for space, or in
an asyncio wait) ends it with KeyboardInterrupt within a second."""
import os
import signal
import subprocess
import sys
import time

import pytest

import shmbus
from waits import WAIT_S, all_asleep, in_epoll, wait_until

CHILD = r"""
import asyncio, sys
import shmbus
bus = shmbus.Bus(sys.argv[1])
what = sys.argv[2]
sub = bus.subscriber("t")
pub = bus.publisher("t")
try:
    if what == "recv":
        print("ready", flush=True); sub.recv()
    elif what == "recv_timeout":
        print("ready", flush=True); sub.recv(timeout=3600)
    elif what == "recv_batch":
        print("ready", flush=True); sub.recv_batch()
    elif what == "iterate":
        print("ready", flush=True)
        for m in sub: pass
    elif what == "publish":
        try:
            while True: pub.publish(bytes(1000), timeout=0)
        except shmbus.Timeout:
            pass
        print("ready", flush=True); pub.publish(bytes(1000))
    elif what == "asyncio":
        async def main():
            print("ready", flush=True)
            await sub.recv_async()
        asyncio.run(main())
    elif what == "asyncio_batch":
        async def main():
            print("ready", flush=True)
            await sub.recv_batch_async()
        asyncio.run(main())
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(42)
print("returned", flush=True)
"""


@pytest.mark.parametrize("what", ["recv", "recv_timeout", "recv_batch", "iterate", "publish",
                                  "asyncio", "asyncio_batch"])
def test_sigint_interrupts(bus, what):
    bus.create_topic("t", capacity=1 << 16)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(shmbus.__file__))
    p = subprocess.Popen([sys.executable, "-c", CHILD, bus.name, what], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        # well into the wait: past the spin, asleep on the futex (all its threads); with
        # asyncio, the loop blocked in epoll: CPython's asyncio.run() sets no signal
        # wakeup fd, so a SIGINT that lands as the loop goes to sleep is not seen until
        # something else wakes it (on a loaded machine, a window of a whole preemption)
        loop = what.startswith("asyncio")
        wait_until(lambda: all_asleep(p.pid) and (not loop or in_epoll(p.pid)),
                   f"the child blocked in {what}")
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=WAIT_S)
        took = time.monotonic() - t0
        out, err = p.communicate()
    finally:
        p.kill()
        p.wait()
    assert rc == 42 and "KeyboardInterrupt" in out, (rc, out, err)
    assert took < 1.0, took

# SPDX-License-Identifier: MIT
"""The GIL is released while a call waits: other Python threads keep running while one
thread is blocked in recv or in a publish that waits for space."""
import threading
import time

import shmbus
from waits import WAIT_S, thread_state, wait_until


def progress_while(blocked_call, release):
    """Run blocked_call in a thread; count what the main thread gets done in 0.3 s while
    that thread is asleep (in the call, or on its way to it waiting for the GIL: then it
    enters the call within the GIL's switch interval)."""
    t = threading.Thread(target=blocked_call)
    t.start()
    wait_until(lambda: thread_state(t.native_id) == "S", "the blocked call asleep")
    n = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.3:  # the time the count is measured over
        n += 1
    release()
    t.join(WAIT_S)
    assert not t.is_alive()
    return n


def test_recv_wait_releases_the_gil(bus, topic):
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        got = []
        n = progress_while(lambda: got.append(sub.recv(timeout=WAIT_S).bytes()),
                           lambda: pub.publish(b"go"))
        assert got == [b"go"]
        assert n > 10_000, n  # with the GIL held the loop would not have run at all


def test_recv_batch_wait_releases_the_gil(bus, topic):
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        got = []
        n = progress_while(
            lambda: got.extend(m.bytes() for m in sub.recv_batch(8, timeout=WAIT_S)),
            lambda: pub.publish_batch([b"go", b"on"]))
        assert got == [b"go", b"on"]
        assert n > 10_000, n


def test_publish_wait_releases_the_gil(bus):
    bus.create_topic("small", capacity=4096, max_message=512)
    with bus.publisher("small") as pub, bus.subscriber("small") as sub:
        try:
            while True:
                pub.publish(bytes(100), timeout=0)
        except shmbus.Timeout:
            pass

        def drain():
            sub.recv(timeout=1)
            sub.recv(timeout=1)

        n = progress_while(lambda: pub.publish(bytes(100), timeout=WAIT_S), drain)
        assert n > 10_000, n


def test_large_copy_releases_the_gil(bus):
    """A 1 MiB Message.bytes() runs without the GIL: another thread's counter moves."""
    bus.create_topic("big", capacity=8 << 20, max_message=1 << 20)
    with bus.publisher("big") as pub, bus.subscriber("big") as sub:
        stop = False
        count = 0

        def spin():
            nonlocal count
            while not stop:
                count += 1

        t = threading.Thread(target=spin)
        t.start()
        try:
            blob = bytes(1 << 20)
            for _ in range(50):
                pub.publish(blob)
                m = sub.recv(timeout=1)
                assert len(m.bytes()) == 1 << 20
        finally:
            stop = True
            t.join()
        assert count > 0

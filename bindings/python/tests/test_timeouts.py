# SPDX-License-Identifier: MIT
"""Timeouts are kept: recv and publish give up after about the time asked, not before,
and not much after; a timeout of 0 only looks."""
import threading
import time

import pytest

import shmbus
from waits import WAIT_S, wait_until


def timed(fn):
    t0 = time.monotonic()
    try:
        fn()
    except shmbus.Timeout:
        return time.monotonic() - t0
    raise AssertionError("no Timeout")


def test_recv_timeout(bus, topic):
    with bus.subscriber(topic) as sub:
        assert timed(lambda: sub.recv(timeout=0)) < 0.05
        for t in (0.001, 0.12, 0.3):
            took = timed(lambda: sub.recv(timeout=t))
            assert t * 0.9 <= took < t + 0.25, (t, took)


def test_recv_waits_for_a_late_message(bus, topic):
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        timer = threading.Timer(0.2, pub.publish, args=(b"late",))
        t0 = time.monotonic()  # before the timer starts: it fires 0.2 s after t0 or later
        timer.start()
        m = sub.recv(timeout=5)
        took = time.monotonic() - t0
        timer.join()
        assert m.bytes() == b"late" and 0.15 < took < 1.5


def test_publish_timeout_on_full_block_topic(bus):
    bus.create_topic("small", capacity=4096, max_message=512)
    with bus.publisher("small") as pub, bus.subscriber("small") as sub:
        n = 0
        with pytest.raises(shmbus.Timeout):
            while True:
                pub.publish(bytes(100), timeout=0)
                n += 1
        assert 20 < n < 4096 // 100
        took = timed(lambda: pub.publish(bytes(100), timeout=0.15))
        assert 0.13 <= took < 0.5
        took = timed(lambda: pub.reserve(100, timeout=0.1))
        assert 0.09 <= took < 0.5
        took = timed(lambda: pub.publish_batch([bytes(100)] * 3, timeout=0.1))
        assert 0.09 <= took < 0.5
        # reading frees space (a received message is held until the next recv)
        assert [sub.recv(timeout=0).seq for _ in range(2)] == [0, 1]
        pub.publish(bytes(100), timeout=1)
        # a batch that only partly fits returns how many went out
        for _ in range(n - 1):
            sub.recv(timeout=1)
        assert 0 < pub.publish_batch([bytes(100)] * (2 * n), timeout=0.05) < 2 * n


def test_publisher_unblocks_when_space_frees(bus):
    bus.create_topic("small", capacity=4096, max_message=512)
    with bus.publisher("small") as pub, bus.subscriber("small") as sub:
        with pytest.raises(shmbus.Timeout):
            while True:
                pub.publish(bytes(100), timeout=0)
        waits = bus.topic_stats("small")["backpressure_waits"]
        freeing = []

        def drain():
            # once the publisher waits for space (it counts one more wait)
            wait_until(lambda: bus.topic_stats("small")["backpressure_waits"] > waits,
                       "the publisher waiting for space")
            sub.recv(timeout=1)
            freeing.append(time.monotonic())
            sub.recv(timeout=1)  # lets the first go: the first space freed

        t = threading.Thread(target=drain)
        t.start()
        pub.publish(bytes(100))  # no timeout: waits for the reader
        done = time.monotonic()
        t.join(WAIT_S)
        assert not t.is_alive()
        # not before the reader freed space, and at once after
        assert freeing and freeing[0] < done < freeing[0] + 2, (freeing, done)


def test_daemon_ping_without_daemon(bus):
    with pytest.raises(shmbus.NotFound) as e:
        bus.daemon_ping(timeout=0.1)
    assert "no daemon" in str(e.value)


def test_spin_setting(bus, topic):
    with bus.subscriber(topic) as sub:
        assert sub.spin_us == 20
        sub.spin_us = 0  # sleep at once
        assert sub.spin_us == 0
        assert 0.09 <= timed(lambda: sub.recv(timeout=0.1)) < 0.4
        sub.spin_us = 500
        assert 0.09 <= timed(lambda: sub.recv(timeout=0.1)) < 0.4
        with pytest.raises(ValueError):
            sub.spin_us = 10_000_000
    with pytest.raises(ValueError):
        sub.spin_us = 5  # closed

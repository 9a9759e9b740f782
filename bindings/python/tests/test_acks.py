# SPDX-License-Identifier: MIT
"""Acknowledging group members (docs/acks.md): subscriber(..., ack=True), sub.ack(msg),
sub.nack(msg, delay_ms), msg.deliveries, shmbus.Stale, the group's options and counters in
groups(), dead letters (their header readable with struct), and the same from asyncio,
where a task may ack while the subscriber's next recv_async() waits."""
import asyncio
import errno
import struct
import time

import pytest

import shmbus
from waits import WAIT_S, wait_until

# shmbus_dead_letter_t: topic[128], group[48], seq, timestamp_ns, deliveries, reason
DEAD = struct.Struct("=128s48sQQII")
NACK, TIMEOUT, CRASH = 1, 2, 3


def dead_letter(msg):
    """(topic, group, seq, deliveries, reason, payload) of a dead-letter message."""
    topic, group, seq, _ts, deliveries, reason = DEAD.unpack_from(msg.data)
    return (topic.rstrip(b"\0").decode(), group.rstrip(b"\0").decode(), seq, deliveries,
            reason, bytes(msg.data[DEAD.size:]))


@pytest.fixture
def jobs(bus):
    bus.create_topic("jobs", capacity=1 << 16)
    return "jobs"


def group(bus, topic, name="w"):
    return next(g for g in bus.groups(topic) if g["name"] == name)


def test_ack_nack_deliveries(bus, jobs):
    with bus.publisher(jobs) as pub, \
            bus.subscriber(jobs, "w", ack=True) as w, bus.subscriber(jobs) as fan:
        pub.publish(b"m0", type=5)
        m = w.recv(timeout=WAIT_S)
        assert (bytes(m), m.type, m.seq, m.deliveries) == (b"m0", 5, 0, 1)
        assert fan.recv(timeout=WAIT_S).deliveries == 1  # not acknowledging: always 1
        assert group(bus, jobs)["pending"] == 1
        w.ack(m)
        assert group(bus, jobs)["pending"] == 0
        with pytest.raises(shmbus.Stale) as e:
            w.ack(m)
        assert e.value.errno == errno.ESTALE and isinstance(e.value, shmbus.Error)
        assert "seq 0" in str(e.value)
        with pytest.raises(shmbus.Stale):
            w.nack(m)

        # nack: the same message again, deliveries 2, before anything newer
        pub.publish(b"m1")
        m = w.recv(timeout=WAIT_S)
        w.nack(m)
        pub.publish(b"m2")
        m = w.recv(timeout=WAIT_S)
        assert (bytes(m), m.deliveries) == (b"m1", 2)
        w.ack(m)
        m = w.recv(timeout=WAIT_S)
        assert (bytes(m), m.deliveries) == (b"m2", 1)
        # acked after its data is gone (the next recv released it): still fine
        pub.publish(b"m3")
        m3 = w.recv(timeout=WAIT_S)
        assert not m.valid
        w.ack(m)
        w.ack(m3)
        g = group(bus, jobs)
        assert (g["pending"], g["redelivered"], g["dead_lettered"]) == (0, 1, 0)
        assert (g["max_deliver"], g["ack_wait_ms"], g["dead_letter"]) == (5, 30000, "jobs.dead")


def test_nack_delay(bus, jobs):
    with bus.publisher(jobs) as pub, bus.subscriber(jobs, "w", ack=True) as w:
        pub.publish(b"x")
        m = w.recv(timeout=WAIT_S)
        t0 = time.monotonic()
        w.nack(m, delay_ms=150)
        m = w.recv(timeout=WAIT_S)
        assert time.monotonic() - t0 >= 0.15
        assert m.deliveries == 2
        w.ack(m)


def test_dead_letter(bus, jobs):
    with bus.publisher(jobs) as pub, \
            bus.subscriber(jobs, "w", ack=True, max_deliver=2) as w:
        pub.publish(b"poison", type=9)
        for d in (1, 2):
            m = w.recv(timeout=WAIT_S)
            assert (bytes(m), m.deliveries) == (b"poison", d)
            w.nack(m)
        with pytest.raises(shmbus.Timeout):
            w.recv(timeout=0.1)  # given up on: not delivered a third time
        g = group(bus, jobs)
        assert (g["pending"], g["redelivered"], g["dead_lettered"]) == (0, 1, 1)
        with bus.subscriber("jobs.dead", from_earliest=True) as dl:
            d = dl.recv(timeout=WAIT_S)
            assert d.type == 9 and len(d) == DEAD.size + 6
            assert dead_letter(d) == ("jobs", "w", 0, 2, NACK, b"poison")
            with pytest.raises(shmbus.Timeout):
                dl.recv(timeout=0)


def test_dead_letter_elsewhere_or_none(bus, jobs):
    bus.create_topic("graveyard", capacity=1 << 16)
    with bus.publisher(jobs) as pub, \
            bus.subscriber(jobs, "a", ack=True, max_deliver=1, dead_letter="graveyard") as a, \
            bus.subscriber(jobs, "b", ack=True, max_deliver=1, dead_letter="") as b, \
            bus.subscriber("graveyard") as grave:
        pub.publish(b"z")
        a.nack(a.recv(timeout=WAIT_S))
        b.nack(b.recv(timeout=WAIT_S))
        for s in (a, b):
            with pytest.raises(shmbus.Timeout):
                s.recv(timeout=0.1)
        assert dead_letter(grave.recv(timeout=WAIT_S))[:2] == ("jobs", "a")
        ga, gb = group(bus, jobs, "a"), group(bus, jobs, "b")
        assert (ga["dead_letter"], ga["dead_lettered"]) == ("graveyard", 1)
        assert (gb["dead_letter"], gb["dead_lettered"]) == (None, 1)
        assert "jobs.dead" not in bus.topics()


def test_ack_wait_and_close_hand_back(bus, jobs):
    with bus.publisher(jobs) as pub, \
            bus.subscriber(jobs, "w", ack=True, ack_wait_ms=200, max_deliver=9) as a, \
            bus.subscriber(jobs, "w", ack=True) as b:
        pub.publish(b"slow")
        late = a.recv(timeout=WAIT_S)
        wait_until(lambda: group(bus, jobs)["oldest_pending_ms"] >= 50, "an age")
        m = b.recv(timeout=WAIT_S)  # after a's 200 ms
        assert (bytes(m), m.deliveries) == (b"slow", 2)
        with pytest.raises(shmbus.Stale):
            a.ack(late)  # too late: b has it
        b.ack(m)
        # a member that closes hands its pending messages back
        pub.publish_batch([b"p1", b"p2"])
        got = [a.recv(timeout=WAIT_S), a.recv(timeout=WAIT_S)]
        assert [g.seq for g in got] == [1, 2]
        assert group(bus, jobs)["pending"] == 2
        a.close()
        with pytest.raises(ValueError):
            a.ack(got[0])  # closed
        again = [b.recv(timeout=WAIT_S) for _ in range(2)]
        assert sorted((g.seq, g.deliveries) for g in again) == [(1, 2), (2, 2)]
        for g in again:
            b.ack(g)
        assert group(bus, jobs)["pending"] == 0


def test_recv_batch_acks_each(bus, jobs):
    with bus.publisher(jobs) as pub, bus.subscriber(jobs, "w", ack=True) as w:
        pub.publish_batch([b"b%d" % i for i in range(5)])
        got = []
        while len(got) < 5:
            batch = w.recv_batch(8, timeout=WAIT_S)
            got += [(bytes(m), m.deliveries) for m in batch]
            for m in batch:
                w.ack(m)
        assert got == [(b"b%d" % i, 1) for i in range(5)]
        assert group(bus, jobs)["pending"] == 0


def test_options_and_errors(bus, jobs):
    assert bus.create_topic("few", capacity=1 << 16, max_pending=4) is True
    assert bus.topic_info("few")["max_pending"] == 4
    assert bus.topic_info(jobs)["max_pending"] == 256
    with bus.subscriber(jobs, "plain") as plain, bus.publisher(jobs) as pub:
        pub.publish(b"x")
        m = plain.recv(timeout=WAIT_S)
        with pytest.raises(shmbus.Error) as e:
            plain.ack(m)  # not an acknowledging member
        assert e.value.errno == errno.EINVAL and not isinstance(e.value, shmbus.Stale)
        with pytest.raises(TypeError):
            plain.ack(b"x")
    with pytest.raises(ValueError, match="group"):
        bus.subscriber(jobs, ack=True)
    with pytest.raises(ValueError, match="group"):
        bus.subscriber(jobs, max_deliver=3)
    with pytest.raises(OverflowError, match="max_deliver"):
        bus.subscriber(jobs, "w", ack=True, max_deliver=2**32)
    with pytest.raises(OverflowError, match="ack_wait_ms"):
        bus.subscriber(jobs, "w", ack=True, ack_wait_ms=-1)
    with pytest.raises(ValueError):
        bus.subscriber(jobs, "w", ack=True, dead_letter="a\0b")
    with pytest.raises(TypeError):
        bus.subscriber(jobs, "w", ack=True, dead_letter=b"x")
    # the library's checks: Error (EINVAL), and no group is made
    for kw in ({"max_deliver": 70000}, {"dead_letter": "bad..name"}):
        with pytest.raises(shmbus.Error) as e:
            bus.subscriber(jobs, "w", ack=True, **kw)
        assert e.value.errno == errno.EINVAL
    with pytest.raises(shmbus.Error, match="max_pending"):
        bus.subscriber("few", "w", ack=True, max_pending=5)
    assert bus.groups("few") == []
    with bus.subscriber("few", "w", ack=True, max_pending=2) as w, \
            bus.publisher("few") as pub:
        pub.publish_batch([b"1", b"2", b"3"])
        held = [w.recv(timeout=WAIT_S), w.recv(timeout=WAIT_S)]
        with pytest.raises(shmbus.Timeout):
            w.recv(timeout=0.05)  # at the group's limit
        w.ack(held[0])
        assert bytes(w.recv(timeout=WAIT_S)) == b"3"
        with pytest.raises(OverflowError, match="delay_ms"):
            w.nack(held[1], delay_ms=2**32)
        w.nack(held[1], delay_ms=2**32 - 1)  # the most: not delivered again in this test


def test_asyncio_ack_while_waiting(bus, jobs, async_wait):
    """An asyncio worker acks and nacks while the consumer's next recv_async() waits (on
    the fd, or in the helper thread); redelivered messages come through async for with
    their deliveries."""
    n = 200

    async def main():
        with bus.publisher(jobs) as pub, bus.subscriber(jobs, "w", ack=True) as sub:
            todo = asyncio.Queue()
            seen = {}

            async def consumer():
                async for msg in sub:
                    seen.setdefault(msg.seq, []).append(msg.deliveries)
                    await todo.put(msg)

            async def worker():
                while True:
                    msg = await todo.get()
                    await asyncio.sleep(0)  # the consumer is waiting again meanwhile
                    if msg.seq % 10 == 0 and msg.deliveries == 1:
                        sub.nack(msg)
                    else:
                        sub.ack(msg)

            tasks = [asyncio.create_task(consumer()), asyncio.create_task(worker())]
            for i in range(n):
                pub.publish(b"%d" % i)
                if i % 20 == 0:
                    await asyncio.sleep(0.001)  # so that the consumer has to wait too
            deadline = time.monotonic() + WAIT_S
            while len(seen) < n or sum(map(len, seen.values())) < n + n // 10 or \
                    group(bus, jobs)["pending"]:
                assert time.monotonic() < deadline, "not all acked"
                await asyncio.sleep(0.001)  # poll interval
            sub.close()  # ends async for
            await asyncio.gather(tasks[0])
            tasks[1].cancel()
            return seen

    seen = asyncio.run(asyncio.wait_for(main(), 2 * WAIT_S))
    assert sorted(seen) == list(range(n))
    assert all(seen[s] == ([1, 2] if s % 10 == 0 else [1]) for s in seen)
    g = group(bus, jobs)
    assert (g["pending"], g["redelivered"], g["dead_lettered"]) == (0, n // 10, 0)


def test_asyncio_recv_async_redelivery(bus, jobs, async_wait):
    async def main():
        with bus.publisher(jobs) as pub, \
                bus.subscriber(jobs, "w", ack=True, max_deliver=2) as sub:
            fut = sub.recv_async(timeout=WAIT_S)
            await asyncio.sleep(0.01)  # the fd (or the helper thread) waits
            pub.publish(b"a")
            m = await fut
            assert m.deliveries == 1
            sub.nack(m, delay_ms=20)
            m = await sub.recv_async(timeout=WAIT_S)
            assert (bytes(m), m.deliveries) == (b"a", 2)
            sub.nack(m)
            with pytest.raises(shmbus.Timeout):
                await sub.recv_async(timeout=0.1)
            with pytest.raises(shmbus.Stale):
                sub.ack(m)
            with bus.subscriber("jobs.dead", from_earliest=True) as dl:
                d = await dl.recv_async(timeout=WAIT_S)
                assert dead_letter(d) == ("jobs", "w", 0, 2, NACK, b"a")

    asyncio.run(asyncio.wait_for(main(), 2 * WAIT_S))

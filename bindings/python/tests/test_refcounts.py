# SPDX-License-Identifier: MIT
"""No reference or memory leaks over 100k messages: the published objects' reference
counts do not move, and receiving (with .data, .bytes(), the attributes) leaves the
number of live objects and the traced memory where they were."""
import array
import gc
import sys
import tracemalloc

import pytest

import shmbus

N = 100_000


def test_publish_keeps_refcounts(bus, topic):
    np = pytest.importorskip("numpy")
    objs = [b"x" * 64, bytearray(64), memoryview(b"y" * 64), array.array("B", bytes(64)),
            np.zeros(8)]
    with bus.publisher(topic) as pub:  # no reader: the ring just wraps
        for x in objs:
            before = sys.getrefcount(x)
            for _ in range(N // len(objs)):
                pub.publish(x)
            assert sys.getrefcount(x) == before, type(x)
        batch = [objs[0], objs[1]]
        before = [sys.getrefcount(x) for x in batch], sys.getrefcount(batch)
        for _ in range(2000):
            pub.publish_batch(batch)
        assert ([sys.getrefcount(x) for x in batch], sys.getrefcount(batch)) == before
        for _ in range(2000):
            with pub.reserve(16) as buf:
                buf[:4] = b"abcd"
        with pytest.raises(shmbus.TooBig):
            pub.publish(bytes(pub.max_message + 1))
        before = sys.getrefcount(pub)
        for _ in range(1000):
            try:
                pub.publish(objs[0], timeout=-1)
            except ValueError:
                pass
        assert sys.getrefcount(pub) == before


def test_receive_leaks_nothing(bus, topic):
    payload = bytes(range(64))
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        def run(n):
            total = 0
            for i in range(n):
                pub.publish(payload, type=i & 7)
                m = sub.recv(timeout=1)
                d = m.data
                total += len(d) + d[1] + len(m.bytes()) + m.type + (m.seq & 1) + m.lost
                total += m.timestamp & 1
            return total

        run(1000)  # warm up caches, free lists, interned names
        gc.collect()
        objects = len(gc.get_objects())
        sub_refs = sys.getrefcount(sub)
        payload_refs = sys.getrefcount(payload)
        tracemalloc.start()
        try:
            t0 = tracemalloc.take_snapshot()
            run(N)
            gc.collect()
            t1 = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        grown = sum(s.size_diff for s in t1.compare_to(t0, "filename"))
        assert grown < 64 << 10, grown
        assert len(gc.get_objects()) - objects < 50
        assert sys.getrefcount(sub) == sub_refs
        assert sys.getrefcount(payload) == payload_refs


def test_recv_many_and_timeouts_leak_nothing(bus, topic):
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        def run(n):
            for _ in range(n):
                pub.publish_batch([b"a" * 32] * 10)
                assert len(sub.recv_many(10)) == 10
            for _ in range(n // 10):
                try:
                    sub.recv(timeout=0)
                except shmbus.Timeout:
                    pass

        run(500)
        gc.collect()
        objects = len(gc.get_objects())
        tracemalloc.start()
        try:
            t0 = tracemalloc.take_snapshot()
            run(N // 10)
            gc.collect()
            t1 = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        grown = sum(s.size_diff for s in t1.compare_to(t0, "filename"))
        assert grown < 64 << 10, grown
        assert len(gc.get_objects()) - objects < 50


def test_recv_batch_leaks_nothing(bus, topic):
    payload = bytes(range(64))
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        def run(n):
            total = 0
            for i in range(n):
                pub.publish_batch([payload] * 10)
                for m in sub.recv_batch(10 if i & 1 else 64, timeout=1):
                    d = m.data
                    total += len(d) + d[1] + len(m.bytes()) + m.type + m.seq + m.lost
            for _ in range(n // 10):
                try:
                    sub.recv_batch(timeout=0)
                except shmbus.Timeout:
                    pass
            return total

        run(500)
        gc.collect()
        objects = len(gc.get_objects())
        sub_refs = sys.getrefcount(sub)
        payload_refs = sys.getrefcount(payload)
        tracemalloc.start()
        try:
            t0 = tracemalloc.take_snapshot()
            run(N // 10)
            gc.collect()
            t1 = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        grown = sum(s.size_diff for s in t1.compare_to(t0, "filename"))
        assert grown < 64 << 10, grown
        assert len(gc.get_objects()) - objects < 50
        assert sys.getrefcount(sub) == sub_refs
        assert sys.getrefcount(payload) == payload_refs


def test_async_batches_and_cancels_leak_nothing(bus, topic, helper_thread):
    import asyncio

    from waits import wait_until

    async def run(pub, sub, n):
        for i in range(n):
            if i % 10 == 0:
                # the helper takes a batch for a future cancelled before it is delivered
                # (the loop blocked meanwhile): it is stashed and handed out piecemeal
                before = sub.received
                fut = sub.recv_batch_async(4)
                pub.publish_batch([b"late"] * 6)
                wait_until(lambda: sub.received > before, "the helper taking the batch")
                fut.cancel()
                assert len(sub.recv_batch(3, timeout=5)) == 3
                assert len(await sub.recv_batch_async(10, timeout=5)) == 1
                assert sub.recv_many(10, timeout=0) == [b"late"] * 2
            else:
                pub.publish_batch([b"now"] * 3)
                got = await sub.recv_batch_async(timeout=5)
                assert [m.bytes() for m in got] == [b"now"] * 3

    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        asyncio.run(run(pub, sub, 200))
        gc.collect()
        objects = len(gc.get_objects())
        sub_refs = sys.getrefcount(sub)
        asyncio.run(run(pub, sub, 3000))
        gc.collect()
        assert len(gc.get_objects()) - objects < 100
        assert sys.getrefcount(sub) == sub_refs


def test_async_receive_leaks_nothing(bus, topic):
    import asyncio

    async def run(pub, sub, n):
        for i in range(n):
            if i % 100 == 0:
                # now and then the helper thread has to wait for it
                asyncio.get_running_loop().call_later(0.001, pub.publish, b"late")
            else:
                pub.publish(b"now")
            m = await sub.recv_async(timeout=5)
            assert len(m.data) in (3, 4)

    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        asyncio.run(run(pub, sub, 500))
        gc.collect()
        objects = len(gc.get_objects())
        sub_refs = sys.getrefcount(sub)
        asyncio.run(run(pub, sub, 10_000))
        gc.collect()
        assert len(gc.get_objects()) - objects < 100
        assert sys.getrefcount(sub) == sub_refs

# SPDX-License-Identifier: MIT
"""asyncio: `async for` and recv_async(). The loop is never blocked and never spins while
a subscriber waits (the loop waits on the subscriber's fd, or, where there is none, a
helper thread waits: every test runs both ways); cancelling loses no message; closing ends
`async for`."""
import asyncio
import threading
import time

import pytest

import shmbus
from waits import WAIT_S

pytestmark = pytest.mark.usefixtures("async_wait")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 2 * WAIT_S))


async def until(cond, what):
    """Let the loop run until cond() is true; fail saying what after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not cond():
        assert time.monotonic() < deadline, f"{what}: not within {WAIT_S} s"
        await asyncio.sleep(0.001)  # poll interval


def test_two_tasks_publish_and_consume(bus, topic):
    n = 3000

    async def main():
        with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
            async def producer():
                for i in range(n):
                    pub.publish(i.to_bytes(4, "little") * 16, type=i & 0xFF)
                    if i % 50 == 0:
                        await asyncio.sleep(0.001)  # so the consumer has to wait too

            async def consumer():
                got = []
                async for msg in sub:
                    v = int.from_bytes(msg.data[:4], "little")
                    assert msg.data == v.to_bytes(4, "little") * 16
                    assert msg.type == v & 0xFF and msg.seq == v
                    got.append(v)
                    if len(got) == n:
                        break
                return got

            got, _ = await asyncio.gather(consumer(), producer())
            assert got == list(range(n))

    run(main())


def test_loop_stays_free_while_waiting(bus, topic):
    async def main():
        with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)  # a tick: they keep coming if the loop is free
                    ticks += 1

            t = asyncio.create_task(ticker())
            timer = threading.Timer(0.4, pub.publish, args=(b"late",))
            timer.start()
            cpu0 = time.process_time()
            msg = await sub.recv_async()
            cpu = time.process_time() - cpu0
            timer.join()
            t.cancel()
            assert msg.bytes() == b"late"
            assert ticks >= 15, ticks  # the loop ran the ticker all along
            assert cpu < 0.2, cpu  # and nobody spun meanwhile

    run(main())


def test_timeout_and_cancel_lose_nothing(bus, topic):
    async def main():
        with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
            with pytest.raises(shmbus.Timeout) as e:
                await sub.recv_async(timeout=0.1)
            assert "no message within the timeout" in str(e.value)
            with pytest.raises(shmbus.Timeout):
                await sub.recv_async(timeout=0)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(sub.recv_async(), 0.05)
            # a message arriving for the cancelled future goes to the next recv_async
            pub.publish(b"one")
            # lets time pass: the helper may take it meanwhile, or stop (either way, no loss)
            await asyncio.sleep(0.15)
            assert (await sub.recv_async(timeout=WAIT_S)).bytes() == b"one"
            # ... or to a synchronous recv
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(sub.recv_async(), 0.05)
            pub.publish(b"two")
            await asyncio.sleep(0.15)  # likewise
            assert sub.recv(timeout=WAIT_S).bytes() == b"two"
            # a cancelled future replaced right away: the new one gets the message
            fut = sub.recv_async()
            fut.cancel()
            fut2 = sub.recv_async()
            pub.publish(b"three")
            assert (await asyncio.wait_for(fut2, WAIT_S)).bytes() == b"three"
            with pytest.raises(shmbus.Timeout):
                sub.recv(timeout=0)

    run(main())


def test_misuse_is_refused(bus, topic):
    async def main():
        with bus.subscriber(topic) as sub:
            fut = sub.recv_async()
            with pytest.raises(RuntimeError):
                sub.recv_async()
            with pytest.raises(RuntimeError):
                sub.recv(timeout=0)
            fut.cancel()

    run(main())
    with bus.subscriber(topic) as sub:
        with pytest.raises(RuntimeError):
            sub.recv_async()  # no running loop


def test_close_ends_async_for(bus, topic):
    async def main():
        with bus.publisher(topic) as pub:
            sub = bus.subscriber(topic)
            got = []

            async def consume():
                async for msg in sub:
                    got.append(msg.bytes())

            task = asyncio.create_task(consume())
            for i in range(5):
                pub.publish(bytes([i]))
                await until(lambda: len(got) == i + 1, f"message {i} in async for")
            # consume() got everything: it waits in its next __anext__, which close() ends
            sub.close()
            await asyncio.wait_for(task, WAIT_S)
            assert got == [bytes([i]) for i in range(5)]
            with pytest.raises(ValueError):
                await sub.recv_async()
            assert bus.topic_stats(topic)["readers"] == 0

    run(main())


def test_a_ready_stream_still_yields(bus, topic):
    async def main():
        with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
            for i in range(2000):
                pub.publish(i.to_bytes(4, "little"))
            turns = 0

            async def other():
                nonlocal turns
                while True:
                    turns += 1
                    await asyncio.sleep(0)

            t = asyncio.create_task(other())
            await asyncio.sleep(0)
            n = 0
            async for msg in sub:
                assert int.from_bytes(msg.data, "little") == n
                n += 1
                if n == 2000:
                    break
            t.cancel()
            assert turns >= 2000 // 32 - 2, turns

    run(main())


def test_data_lifetime_in_async_for(bus, topic):
    async def main():
        with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
            pub.publish(b"a")
            pub.publish(b"b")
            m1 = await sub.recv_async()
            d1 = m1.data
            m2 = await sub.recv_async()
            with pytest.raises(ValueError):
                d1[0]
            assert m2.data == b"b"

    run(main())


def test_a_stale_timeout_does_not_reach_the_next_future(bus, topic):
    async def main():
        with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
            fut = sub.recv_async(timeout=0.05)
            time.sleep(0.2)  # blocks the loop: the helper's Timeout waits in its queue
            fut.cancel()
            fut2 = sub.recv_async()
            pub.publish(b"fresh")
            assert (await asyncio.wait_for(fut2, WAIT_S)).bytes() == b"fresh"

    run(main())

# SPDX-License-Identifier: MIT
"""Subscriber.recv_batch() and recv_batch_async(): up to max_messages full Messages per
call (shmbus_recv_batch()), in order. Every message of a batch lives as one recv()'s
message does: until the next recv of any kind or close, a buffer kept of any of them
makes that recv refuse (BufferError) without consuming anything, and on a block topic
the whole batch holds its ring space until then. Cancelling an asyncio batch loses
nothing."""
import asyncio
import errno
import threading
import time

import pytest

import shmbus
from waits import WAIT_S, thread_state, wait_until


def payload(i):
    """Message i's payload: its number, then a length that varies (0 to 99 more bytes)."""
    return i.to_bytes(4, "little") + bytes([i & 0xFF]) * (i * 7 % 100)


def check(msg, i, type=None):
    """msg is message i as published by publish_all() (publish_batch(): type 0)."""
    type = i & 0xFFFF if type is None else type
    assert (msg.seq, msg.type, msg.lost, msg.valid) == (i, type, 0, True)
    assert msg.data == payload(i) and msg.bytes() == payload(i) and len(msg) == len(payload(i))
    assert bytes(memoryview(msg)) == payload(i)
    assert abs(msg.timestamp - time.time_ns()) < 3600 * 10**9


def publish_all(pub, first, n):
    for i in range(first, first + n):
        pub.publish(payload(i), type=i & 0xFFFF)


def test_batches_in_order_with_everything(bus, topic):
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        publish_all(pub, 0, 300)
        sizes, seen = [], 0
        while seen < 300:
            batch = sub.recv_batch(64, timeout=WAIT_S)
            assert isinstance(batch, list) and 1 <= len(batch) <= 64
            for j, msg in enumerate(batch):
                assert isinstance(msg, shmbus.Message)
                check(msg, seen + j)
            # every message of the batch stays valid while the others are read
            assert all(m.valid for m in batch)
            sizes.append(len(batch))
            seen += len(batch)
        # all of them were there: full batches, the last one the rest
        assert sizes == [64, 64, 64, 64, 44]
        assert sub.received == 300 and sub.lost == 0
        with pytest.raises(shmbus.Timeout):
            sub.recv_batch(timeout=0)


def test_max_messages_bounds(bus, topic):
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        publish_all(pub, 0, 100)
        assert [m.seq for m in sub.recv_batch(1)] == [0]
        assert [m.seq for m in sub.recv_batch(max_messages=3)] == [1, 2, 3]
        assert [m.seq for m in sub.recv_batch()] == list(range(4, 68))  # 64 by default
        for bad in (0, -1):
            with pytest.raises(ValueError, match="max_messages"):
                sub.recv_batch(bad)
        with pytest.raises(TypeError):
            sub.recv_batch(2.5)
        # refused arguments consumed nothing; more asked than there is: what is there
        assert [m.seq for m in sub.recv_batch(1000)] == list(range(68, 100))
        # the other receives mix in, in order
        publish_all(pub, 100, 10)
        assert sub.recv().seq == 100
        assert [m.seq for m in sub.recv_batch(2)] == [101, 102]
        assert sub.recv_many(3) == [payload(i) for i in (103, 104, 105)]
        assert next(iter(sub)).seq == 106
        assert [m.seq for m in sub.recv_batch(10**9)] == [107, 108, 109]


def test_timeout(bus, topic):
    with bus.subscriber(topic) as sub:
        t0 = time.monotonic()
        with pytest.raises(shmbus.Timeout, match="recv_batch on 't': no message within 0 ms"):
            sub.recv_batch(timeout=0)
        with pytest.raises(shmbus.Timeout) as e:
            sub.recv_batch(8, timeout=0.15)
        took = time.monotonic() - t0
        assert e.value.errno == errno.EAGAIN and 0.13 <= took < WAIT_S, took


def test_waits_for_the_first_then_takes_what_is_there(bus, topic):
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        main = threading.get_native_id()

        def late():
            # once the main thread sleeps in recv_batch: five messages in one claim
            wait_until(lambda: thread_state(main) == "S", "recv_batch asleep")
            pub.publish_batch([payload(i) for i in range(5)])

        t = threading.Thread(target=late)
        t.start()
        batch = sub.recv_batch(64, timeout=WAIT_S)
        t.join()
        # the claim is seen whole: the first message wakes the reader, the rest are there
        assert [m.bytes() for m in batch] == [payload(i) for i in range(5)]


def test_a_batch_holds_its_ring_space(bus):
    bus.create_topic("small", capacity=4096, max_message=512)
    with bus.publisher("small") as pub, bus.subscriber("small") as sub:
        n = 0
        with pytest.raises(shmbus.Timeout):
            while True:
                pub.publish(bytes([n]) * 100, timeout=0)
                n += 1
        assert n > 20
        batch = sub.recv_batch(1000, timeout=0)
        assert len(batch) == n
        # the whole batch is held, not only its last message: nothing can be published
        # over it, and every message reads what was published
        with pytest.raises(shmbus.Timeout):
            pub.publish(b"x" * 100, timeout=0)
        assert [m.bytes() for m in batch] == [bytes([i]) * 100 for i in range(n)]
        # the next recv (here one that finds nothing) lets the batch go: the space is free
        with pytest.raises(shmbus.Timeout):
            sub.recv(timeout=0)
        assert not any(m.valid for m in batch)
        for i in range(n):
            pub.publish(bytes([i]) * 100, timeout=0)


def test_recv_many_frees_the_space_at_once(bus):
    bus.create_topic("small", capacity=4096, max_message=512)
    with bus.publisher("small") as pub, bus.subscriber("small") as sub:
        n = 0
        with pytest.raises(shmbus.Timeout):
            while True:
                pub.publish(bytes([n]) * 100, timeout=0)
                n += 1
        # exactly what is there: the call never looks past the last one
        assert sub.recv_many(n, timeout=0) == [bytes([i]) * 100 for i in range(n)]
        # copies: the ring keeps nothing of them (not even the last), all of it is free
        for i in range(n):
            pub.publish(bytes([i]) * 100, timeout=0)
        assert sub.recv_many(1000, timeout=0) == [bytes([i]) * 100 for i in range(n)]


RECVS = {
    "recv": lambda sub: [sub.recv(timeout=0)],
    "recv_batch": lambda sub: sub.recv_batch(timeout=0),
    "recv_many": lambda sub: sub.recv_many(10, timeout=0),
    "next": lambda sub: [next(iter(sub))],
}


@pytest.mark.parametrize("how", RECVS)
def test_views_of_a_batch_die_at_the_next_recv(bus, topic, how):
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        publish_all(pub, 0, 10)
        batch = sub.recv_batch(5)
        views = [m.data for m in batch]  # the .data memoryviews only: no other buffer
        assert views[3] == payload(3)
        RECVS[how](sub)
        for m, v in zip(batch, views):
            assert not m.valid and "gone" in repr(m)
            with pytest.raises(ValueError):
                v[0]
            with pytest.raises(ValueError):
                bytes(v)
            with pytest.raises(ValueError):
                m.data
            with pytest.raises(ValueError):
                m.bytes()
            with pytest.raises(BufferError):
                memoryview(m)
        assert [(m.seq, len(m)) for m in batch] == [(i, len(payload(i))) for i in range(5)]


@pytest.mark.parametrize("how", RECVS)
@pytest.mark.parametrize("kept", [0, 3, 4])  # the first, one in the middle, the last
def test_a_buffer_kept_of_any_batch_message_makes_recv_refuse(bus, topic, how, kept):
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        publish_all(pub, 0, 10)
        batch = sub.recv_batch(5)
        d = batch[kept].data
        part = d[1:]  # a slice shares the ring memory
        with pytest.raises(BufferError, match=f"message seq {kept}: 1 buffer"):
            RECVS[how](sub)
        # nothing consumed, every message of the batch still valid and unchanged
        assert all(m.valid for m in batch)
        assert part == payload(kept)[1:]
        for i, m in enumerate(batch):
            check(m, i)
        with pytest.raises(ValueError):
            d[0]  # .data's own view was released on the way, as recv() does
        with pytest.raises(BufferError):
            RECVS[how](sub)  # still refused while the slice lives
        part.release()
        first = RECVS[how](sub)[0]
        assert (first if isinstance(first, bytes) else first.bytes()) == payload(5)
        assert not any(m.valid for m in batch)


def test_a_message_kept_as_a_buffer_makes_recv_refuse(bus, topic):
    np = pytest.importorskip("numpy")
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        publish_all(pub, 0, 6)
        batch = sub.recv_batch(3)
        a = np.asarray(batch[2])  # the message is a buffer itself
        with pytest.raises(BufferError, match="message seq 2"):
            sub.recv_batch(3)
        assert bytes(a) == payload(2)
        del a
        assert [m.seq for m in sub.recv_batch(3)] == [3, 4, 5]


def test_close_with_a_kept_slice_of_a_batch(bus, topic):
    with bus.publisher(topic) as pub:
        sub = bus.subscriber(topic)
        publish_all(pub, 0, 4)
        batch = sub.recv_batch(4)
        tail = batch[2].data[4:]
        view = batch[1].data
        sub.close()
        assert not any(m.valid for m in batch)
        with pytest.raises(ValueError):
            view[0]
        # the C close waits for the slice: it still reads the same, whole message
        assert tail == payload(2)[4:]
        assert bus.topic_stats(topic)["readers"] == 1
        del tail
        assert bus.topic_stats(topic)["readers"] == 0


def test_group_members_batching_share_everything_once(bus, topic):
    n = 2000
    with bus.publisher(topic) as pub, \
            bus.subscriber(topic, group="g") as a, bus.subscriber(topic, group="g") as b:
        publish_all(pub, 0, n)
        got = {a: [], b: []}
        turn = [a, b]
        while len(got[a]) + len(got[b]) < n:
            # each member's batch stays alive (and right) while the other one takes its own
            batches = []
            for member in turn:
                try:
                    batches.append(member.recv_batch(16, timeout=0))
                except shmbus.Timeout:
                    batches.append([])
            assert any(batches), "both members found nothing before all were taken"
            for member, batch in zip(turn, batches):
                for m in batch:
                    check(m, m.seq)
                    got[member].append(m.seq)
            turn.reverse()
        assert got[a] and got[b]
        assert got[a] == sorted(got[a]) and got[b] == sorted(got[b])
        assert not set(got[a]) & set(got[b])
        assert sorted(got[a] + got[b]) == list(range(n))
        for member in (a, b):
            with pytest.raises(shmbus.Timeout):
                member.recv_batch(timeout=0)


def test_overwrite_topic_gives_batches_of_one(bus):
    bus.create_topic("ow", capacity=1 << 16, policy="overwrite")
    with bus.publisher("ow") as pub, bus.subscriber("ow") as sub:
        publish_all(pub, 0, 20)
        for i in range(20):
            batch = sub.recv_batch(64, timeout=0)
            assert len(batch) == 1
            check(batch[0], i)
        with pytest.raises(shmbus.Timeout):
            sub.recv_batch(timeout=0)


# ---- asyncio ------------------------------------------------------------------------------

def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 2 * WAIT_S))


def test_async_batches_in_order(bus, topic):
    async def main():
        with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
            publish_all(pub, 0, 100)
            first = await sub.recv_batch_async(30)
            assert [m.seq for m in first] == list(range(30))
            assert all(m.valid for m in first)
            rest = await sub.recv_batch_async()
            assert not any(m.valid for m in first)
            for i, m in enumerate(rest):
                check(m, 30 + i)
            assert len(rest) == 64
            assert [m.seq for m in await sub.recv_batch_async(64)] == list(range(94, 100))
            seen = 100
            # waited for: the helper thread takes what came, as a batch
            while seen < 200:
                fut = sub.recv_batch_async(max_messages=50, timeout=WAIT_S)
                if seen == 100:
                    publish_all(pub, 100, 100)
                batch = await fut
                for i, m in enumerate(batch):
                    check(m, seen + i)
                assert 1 <= len(batch) <= 50
                seen += len(batch)
            with pytest.raises(shmbus.Timeout, match="recv_batch_async"):
                await sub.recv_batch_async(timeout=0)
            t0 = time.monotonic()
            with pytest.raises(shmbus.Timeout, match="recv_batch_async"):
                await sub.recv_batch_async(timeout=0.1)
            assert time.monotonic() - t0 >= 0.09
            with pytest.raises(ValueError):
                sub.recv_batch_async(0)

    run(main())


def cancel_after_the_helper_took(sub, fut, received):
    """Cancel fut once the helper thread has received a batch for it, before the loop
    delivers it (the loop is blocked meanwhile: the delivery waits in its queue). Only
    with the helper thread (the fixture helper_thread): waiting on the fd, nothing is
    received while the loop is blocked."""
    wait_until(lambda: sub.received > received, "the helper receiving a batch")
    fut.cancel()


def test_async_cancel_loses_no_message_of_a_batch(bus, topic, helper_thread):
    async def main():
        with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
            fut = sub.recv_batch_async(8)
            await asyncio.sleep(0)
            pub.publish_batch([payload(i) for i in range(20)])  # one claim: 8 at once
            cancel_after_the_helper_took(sub, fut, 0)
            assert sub.received == 8
            # the cancelled batch goes to the next receives of any kind, in order; each
            # lets go of those before it, as a recv does
            m0 = sub.recv(timeout=0)
            check(m0, 0, type=0)
            part = m0.data[1:]
            with pytest.raises(BufferError, match="message seq 0"):
                sub.recv_batch(3, timeout=0)  # nothing taken
            part.release()
            b1 = sub.recv_batch(3, timeout=0)
            assert [m.seq for m in b1] == [1, 2, 3] and not m0.valid
            m4 = await sub.recv_async(timeout=0)
            assert m4.seq == 4 and not any(m.valid for m in b1)
            b5 = await sub.recv_batch_async(100, timeout=0)
            assert [m.seq for m in b5] == [5, 6, 7]  # the rest of the stash only
            for i, m in enumerate(b5):
                check(m, 5 + i, type=0)
            # then the ring again
            assert sub.recv_many(100, timeout=0) == [payload(i) for i in range(8, 20)]
            assert sub.received == 20

            # cancelled before anything came: the next batch gets everything
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(sub.recv_batch_async(), 0.05)
            publish_all(pub, 20, 5)
            got = []
            while len(got) < 5:
                got += [m.seq for m in await sub.recv_batch_async(timeout=WAIT_S)]
            assert got == list(range(20, 25))

    run(main())


def test_async_cancelled_batch_and_other_kinds_of_future(bus, topic, helper_thread):
    async def main():
        with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
            # a recv_async() taking the place of a cancelled recv_batch_async() whose
            # batch is on its way gets one message; the rest stays for the next receives
            fut = sub.recv_batch_async(10)
            await asyncio.sleep(0)
            pub.publish_batch([payload(i) for i in range(6)])
            cancel_after_the_helper_took(sub, fut, 0)
            fut2 = sub.recv_async()
            m = await asyncio.wait_for(fut2, WAIT_S)
            assert isinstance(m, shmbus.Message)
            check(m, 0, type=0)
            assert sub.received == 6
            assert [x.seq for x in sub.recv_batch(10, timeout=0)] == [1, 2, 3, 4, 5]
            # a recv_batch_async() in the place of a cancelled recv_async() gets a list
            fut = sub.recv_async()
            await asyncio.sleep(0)
            pub.publish(payload(6), type=6)
            cancel_after_the_helper_took(sub, fut, 6)
            fut2 = sub.recv_batch_async(10)
            batch = await asyncio.wait_for(fut2, WAIT_S)
            assert isinstance(batch, list) and [x.seq for x in batch] == [6]
            # the same while the helper still waits: whatever it brings, nothing is lost
            fut = sub.recv_batch_async(10)
            fut.cancel()
            fut2 = sub.recv_async()
            pub.publish_batch([payload(i) for i in range(3)])
            assert (await asyncio.wait_for(fut2, WAIT_S)).seq == 7
            assert [x.seq for x in sub.recv_batch(10, timeout=0)] == [8, 9]
            # a smaller batch replacing a larger one: the rest is stashed, in order
            fut = sub.recv_batch_async(10)
            await asyncio.sleep(0)
            pub.publish_batch([payload(i) for i in range(10, 15)])
            cancel_after_the_helper_took(sub, fut, 10)
            fut2 = sub.recv_batch_async(2)
            assert [x.seq for x in await asyncio.wait_for(fut2, WAIT_S)] == [10, 11]
            got = []
            async for x in sub:
                got.append(x.seq)
                if x.seq == 14:
                    break
            assert got == [12, 13, 14]
            with pytest.raises(shmbus.Timeout):
                sub.recv(timeout=0)

    run(main())


def test_close_ends_a_pending_async_batch(bus, topic):
    async def main():
        sub = bus.subscriber(topic)
        fut = sub.recv_batch_async()
        await asyncio.sleep(0)
        sub.close()
        with pytest.raises(ValueError):
            await asyncio.wait_for(fut, WAIT_S)
        assert bus.topic_stats(topic)["readers"] == 0

    run(main())

# SPDX-License-Identifier: MIT
"""Sinks (Bus.sink()): one reader over many topics by name or pattern, topics created later
joined and removed ones left, a filter, groups and acks through a sink, iteration and
`async for`; msg.topic; the fds of subscribers and sinks in an event loop or a selector,
with no helper thread. Every wait is for an event (a receive with a timeout, a pipe, a
future), never a fixed sleep."""
import asyncio
import io
import os
import selectors
import subprocess
import sys
import threading
import traceback

import pytest

import shmbus
from waits import WAIT_S, thread_state, wait_until


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 2 * WAIT_S))


def mk(bus, *names):
    for n in names:
        bus.create_topic(n, capacity=1 << 16)


def pub1(bus, topic, data, type=0):
    with bus.publisher(topic) as p:
        p.publish(data, type=type)


def helpers():
    """The asyncio helper threads alive (none while waiting on fds)."""
    return [t for t in threading.enumerate() if t.name.startswith("shmbus-recv")]


# ---- patterns and topics ----------------------------------------------------------------


def test_patterns_name_topics_now_and_later(bus):
    mk(bus, "o.eu", "o.us", "other")
    with bus.sink("o.*") as k:
        assert k.topics() == ["o.eu", "o.us"]
        assert k.group is None and k.filter is None and not k.closed
        pub1(bus, "o.eu", b"e1", type=1)
        pub1(bus, "other", b"x")
        pub1(bus, "o.us", b"u1", type=2)
        pub1(bus, "o.eu", b"e2", type=3)
        by_topic = {}
        for _ in range(3):
            m = k.recv(timeout=WAIT_S)
            assert isinstance(m.topic, str)
            by_topic.setdefault(m.topic, []).append((m.bytes(), m.type))
        # per topic in order; across topics any order
        assert by_topic == {"o.eu": [(b"e1", 1), (b"e2", 3)], "o.us": [(b"u1", 2)]}
        with pytest.raises(shmbus.Timeout, match="on the sink"):
            k.recv(timeout=0)

        # a name that does not exist yet, and a topic created later that a pattern matches:
        # joined when created (the receive waits for it, woken by the sink's fd)
        assert k.add("late") == 0
        mk(bus, "o.jp", "late")
        pub1(bus, "o.jp", b"jp")
        m = k.recv(timeout=WAIT_S)
        assert (m.topic, m.bytes()) == ("o.jp", b"jp")
        pub1(bus, "late", b"l")
        m = k.recv(timeout=WAIT_S)
        assert (m.topic, m.bytes(), m.seq) == ("late", b"l", 0)
        assert k.topics() == ["late", "o.eu", "o.jp", "o.us"]

        # a topic removed is left (the next receive reads the event)
        bus.remove_topic("o.jp")
        with pytest.raises(shmbus.Timeout):
            k.recv(timeout=0)
        assert k.topics() == ["late", "o.eu", "o.us"]

        with pytest.raises(shmbus.Exists):
            k.add("o.*")
        with pytest.raises(shmbus.Error) as e:
            k.add("o..x")
        assert e.value.errno == 22
        k.remove("o.*")
        with pytest.raises(shmbus.NotFound):
            k.remove("o.*")
        assert k.topics() == ["late"]
        pub1(bus, "o.eu", b"not read")
        with pytest.raises(shmbus.Timeout):
            k.recv(timeout=0)
        assert k.add(">") == 4  # "late" (read already, once), "o.eu", "o.us", "other"
        assert k.topics() == ["late", "o.eu", "o.us", "other"]
    assert k.closed
    for t in ("o.eu", "o.us", "late", "other"):
        assert bus.topic_stats(t)["readers"] == 0


def test_patterns_argument(bus):
    mk(bus, "a.b", "a.c", "d")
    with bus.sink(["a.b", "d"]) as k:
        assert k.topics() == ["a.b", "d"]
    with bus.sink(p for p in ("a.>",)) as k:
        assert k.topics() == ["a.b", "a.c"]
    with bus.sink([]) as k:
        assert k.topics() == []
        assert k.add("d") == 1
    with pytest.raises(TypeError, match="iterable of str"):
        bus.sink(b"a.b")
    with pytest.raises(TypeError, match="iterable of str"):
        bus.sink(3)
    with pytest.raises(TypeError, match="pattern must be a str"):
        bus.sink(["a.b", 3])
    with pytest.raises(ValueError, match="NUL"):
        bus.sink("a\0b")
    with pytest.raises(shmbus.Error):
        bus.sink(["a.b", "a..b"])  # the sink made for it is closed again
    with pytest.raises(shmbus.Exists):
        bus.sink(["a.b", "a.b"])
    with pytest.raises(TypeError, match="callable"):
        bus.sink("a.b", filter=3)
    with pytest.raises(ValueError, match="group"):
        bus.sink("a.b", ack=True)
    with pytest.raises(ValueError, match="group"):
        bus.sink("a.b", max_deliver=3)
    assert bus.topic_stats("a.b")["readers"] == 0


def test_from_earliest_and_topics_created_later(bus):
    mk(bus, "e.old")
    pub1(bus, "e.old", b"before")
    with bus.sink("e.>") as k, bus.sink("e.>", from_earliest=True) as early:
        assert early.recv(timeout=WAIT_S).bytes() == b"before"
        with pytest.raises(shmbus.Timeout):
            k.recv(timeout=0)
        # a topic created later is read from its first message, by both
        mk(bus, "e.new")
        pub1(bus, "e.new", b"first")
        pub1(bus, "e.new", b"second")
        for s in (k, early):
            assert [s.recv(timeout=WAIT_S).bytes() for _ in range(2)] == [b"first", b"second"]


def test_data_lifetime_and_add_lets_go(bus):
    mk(bus, "d.a", "d.b")
    with bus.sink("d.*") as k:
        pub1(bus, "d.a", b"one")
        pub1(bus, "d.a", b"two")
        m1 = k.recv(timeout=WAIT_S)
        d1 = m1.data
        assert d1 == b"one" and m1.valid
        part = d1[1:]
        with pytest.raises(BufferError, match="seq 0"):
            k.recv(timeout=0)  # nothing consumed
        part.release()
        m2 = k.recv(timeout=WAIT_S)
        assert m2.bytes() == b"two" and not m1.valid
        with pytest.raises(ValueError):
            d1[0]
        # add() may leave topics: it lets go of the message last received
        assert k.add("d.b") == 1
        assert not m2.valid and m2.topic == "d.a" and m2.seq == 1
        assert k.received == 2 and k.lost == 0


def test_fairness_between_topics(bus):
    mk(bus, "f.busy", "f.quiet")
    with bus.sink("f.*") as k:
        with bus.publisher("f.busy") as p:
            p.publish_batch([b"b"] * 200)
        pub1(bus, "f.quiet", b"q")
        order = [k.recv(timeout=WAIT_S).topic for _ in range(201)]
        assert order.index("f.quiet") <= 16, order.index("f.quiet")


def test_msg_topic_on_subscribers(bus, topic):
    with bus.publisher(topic) as p, bus.subscriber(topic) as s:
        p.publish(b"a")
        p.publish(b"b")
        assert s.recv(timeout=WAIT_S).topic == topic
        assert [m.topic for m in s.recv_batch(10, timeout=WAIT_S)] == [topic]
        p.publish(b"c")

        async def main():
            return await s.recv_async(timeout=WAIT_S)

        m = run(main())
        assert m.topic == topic and f"topic='{topic}'" in repr(m)


# ---- the filter -----------------------------------------------------------------------------


def test_filter_sees_each_message_and_rejects(bus):
    mk(bus, "j.a", "j.b")
    seen = []

    def keep(topic, type, data):
        assert isinstance(data, memoryview) and data.readonly
        seen.append((topic, type, bytes(data)))
        return type % 2 == 0 and data[:1] != b"-"

    with bus.sink("j.*", filter=keep) as k:
        assert k.filter is keep
        with bus.publisher("j.a") as pa, bus.publisher("j.b") as pb:
            for i in range(10):
                (pa if i % 3 else pb).publish(b"%d" % i, type=i)
            pa.publish(b"-", type=20)
            pa.publish(b"end", type=22)
        got = [(m.topic, m.bytes()) for m in (k.recv(timeout=WAIT_S) for _ in range(6))]
        assert sorted(d for _, d in got) == [b"0", b"2", b"4", b"6", b"8", b"end"]
        assert [d for t, d in got if t == "j.b"] == [b"0", b"6"]
        with pytest.raises(shmbus.Timeout):
            k.recv(timeout=0)
        assert len(seen) == 12
        assert k.received == 6
        assert {t for t, _, _ in seen} == {"j.a", "j.b"}
        # what it rejected is consumed: nothing is left for the sink's readers
        assert all(r["lag_msgs"] == 0 for t in ("j.a", "j.b") for r in bus.readers(t))


def test_filter_in_a_blocking_receive_takes_the_gil(bus):
    """The library calls the filter inside a receive that released the GIL: it runs (in
    the receiving thread), other threads run meanwhile, and the receive returns what it
    kept."""
    mk(bus, "g.a")
    calls = []

    def keep(topic, type, data):
        calls.append(threading.get_ident())
        return type == 1

    ticks = 0
    stop = threading.Event()

    def ticker():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            stop.wait(0.001)  # a tick

    with bus.sink("g.a", filter=keep) as k, bus.publisher("g.a") as p:
        t = threading.Thread(target=ticker)
        t.start()
        pubber = threading.Thread(
            target=lambda: (wait_until(lambda: ticks > 50, "ticks while recv waits"),
                            p.publish(b"no", type=0), p.publish(b"yes", type=1)))
        pubber.start()
        m = k.recv(timeout=WAIT_S)
        pubber.join()
        stop.set()
        t.join()
        assert m.bytes() == b"yes"
        assert calls == [threading.get_ident()] * 2


def test_filter_that_raises(bus):
    mk(bus, "r.a")

    def keep(topic, type, data):
        if type == 7:
            raise KeyError("boom")
        return "yes"  # any true value keeps it

    with bus.sink("r.a", filter=keep) as k, bus.publisher("r.a") as p:
        p.publish(b"1", type=1)
        p.publish(b"bad", type=7)
        p.publish(b"3", type=8)
        assert k.recv(timeout=WAIT_S).bytes() == b"1"
        with pytest.raises(KeyError, match="boom") as e:
            k.recv(timeout=WAIT_S)
        # the traceback reaches into the filter
        assert any(f.name == "keep" for f in traceback.extract_tb(e.value.__traceback__))
        # the message it raised on is consumed (a fan-out sink), the next one comes
        m = k.recv(timeout=WAIT_S)
        assert (m.bytes(), m.seq) == (b"3", 2)
        with pytest.raises(shmbus.Timeout):
            k.recv(timeout=0)
        # also from iteration
        p.publish(b"bad", type=7)
        p.publish(b"5", type=5)
        with pytest.raises(KeyError):
            next(k)
        assert next(k).bytes() == b"5"


def test_filter_result_without_truth_value(bus):
    mk(bus, "r.b")

    class Bad:
        def __bool__(self):
            raise ValueError("no truth")

    with bus.sink("r.b", filter=lambda t, ty, d: Bad()) as k:
        pub1(bus, "r.b", b"x")
        with pytest.raises(ValueError, match="no truth"):
            k.recv(timeout=WAIT_S)


def test_filter_may_not_keep_the_payload(bus):
    mk(bus, "r.c")
    kept = []

    def keep(topic, type, data):
        if type == 1:
            kept.append(data)  # the memoryview itself: released after the call
        else:
            kept.append(data[1:])  # a slice of it outlives the release: refused
        return True

    with bus.sink("r.c", filter=keep) as k, bus.publisher("r.c") as p:
        p.publish(b"abc", type=1)
        assert k.recv(timeout=WAIT_S).bytes() == b"abc"
        with pytest.raises(ValueError):
            bytes(kept[0])
        p.publish(b"abc", type=2)
        with pytest.raises(BufferError, match="filter kept a buffer"):
            k.recv(timeout=WAIT_S)
        kept[1].release()


def test_what_the_filter_may_do(bus):
    mk(bus, "w.a")
    errors = []
    k = bus.sink("w.a")

    def flt(topic, type, data):
        for op in (lambda: k.recv(timeout=0), k.topics, lambda: k.add("w.b"), k.fileno):
            try:
                op()
            except RuntimeError as e:
                errors.append(str(e))
        if type == 9:
            k.close()
        return True

    k.close()
    k = bus.sink("w.a", filter=flt)
    with bus.publisher("w.a") as p:
        p.publish(b"1", type=1)
        assert k.recv(timeout=WAIT_S).bytes() == b"1"
        assert len(errors) == 4 and all("filter runs" in e for e in errors)
        # closing from the filter: the receive ends with the sink closed
        p.publish(b"9", type=9)
        with pytest.raises(ValueError, match="closed"):
            k.recv(timeout=WAIT_S)
        assert k.closed
        assert bus.topic_stats("w.a")["readers"] == 0


# ---- groups and acks ---------------------------------------------------------------------


def test_group_sinks_share_each_message(bus):
    mk(bus, "q.a", "q.b")
    n = 200
    with bus.sink("q.*", group="g") as k1, bus.sink("q.*", group="g") as k2, \
            bus.subscriber("q.a", "g") as plain:
        assert k1.group == "g"
        with bus.publisher("q.a") as pa, bus.publisher("q.b") as pb:
            for i in range(n):
                (pa if i % 2 else pb).publish(b"%d" % i)
        # all published already: the members take turns until none gets any more
        got, counts = [], {}
        readers = [k1, k2, plain]
        progressed = True
        while progressed:
            progressed = False
            for r in readers:
                try:
                    m = r.recv(timeout=0)
                except shmbus.Timeout:
                    continue
                got.append((m.topic, m.bytes()))
                counts[id(r)] = counts.get(id(r), 0) + 1
                progressed = True
        assert len(counts) == 3  # each member got some
        assert sorted(got) == sorted(("q.a" if i % 2 else "q.b", b"%d" % i) for i in range(n))
        for r in readers:
            with pytest.raises(shmbus.Timeout):
                r.recv(timeout=0)


def group(bus, topic):
    (g,) = bus.groups(topic)
    return g


def test_acks_through_a_sink(bus):
    mk(bus, "k.a", "k.b")

    def flt(topic, type, data):
        if type == 3:
            raise RuntimeError("filter failed")
        return type != 2

    with bus.sink("k.*", group="w", ack=True, max_deliver=2, dead_letter="",
                  filter=flt) as k:
        with bus.publisher("k.a") as pa, bus.publisher("k.b") as pb:
            pa.publish(b"a1", type=1)
            pb.publish(b"rejected", type=2)
        m1 = k.recv(timeout=WAIT_S)
        assert (m1.topic, m1.bytes(), m1.deliveries) == ("k.a", b"a1", 1)
        with pytest.raises(shmbus.Timeout):
            k.recv(timeout=0)
        # rejected by the filter: acked, not pending
        assert group(bus, "k.b")["pending"] == 0
        assert group(bus, "k.a")["pending"] == 1
        k.nack(m1)
        m1b = k.recv(timeout=WAIT_S)
        assert (m1b.bytes(), m1b.deliveries) == (b"a1", 2)
        k.ack(m1b)
        with pytest.raises(shmbus.Stale):
            k.ack(m1b)
        assert group(bus, "k.a")["pending"] == 0

        # the filter raises: the message is nacked (redelivered), the receive raises
        pub1(bus, "k.b", b"x", type=3)
        with pytest.raises(RuntimeError, match="filter failed"):
            k.recv(timeout=WAIT_S)
        with pytest.raises(RuntimeError, match="filter failed"):
            k.recv(timeout=WAIT_S)  # its second delivery: then max_deliver is reached
        with pytest.raises(shmbus.Timeout):
            k.recv(timeout=0)
        g = group(bus, "k.b")
        assert (g["pending"], g["redelivered"], g["dead_lettered"]) == (0, 1, 1)

        with bus.sink("k.a") as fan:
            pub1(bus, "k.a", b"f")
            m = fan.recv(timeout=WAIT_S)
            with pytest.raises(shmbus.Error) as e:
                fan.ack(m)
            assert e.value.errno == 22
            with pytest.raises(ValueError, match="did not come from this sink"):
                k.ack(m)
            k.ack(k.recv(timeout=WAIT_S))
        with pytest.raises(TypeError):
            k.ack(b"x")
        with pytest.raises(OverflowError):
            k.nack(m1b, delay_ms=-1)


def test_ack_from_another_thread_while_receiving(bus):
    """An ack from another thread waits for the receive's current slice (the library's
    sink table may change under a receive), then goes through."""
    mk(bus, "t.a")
    with bus.sink("t.a", group="w", ack=True) as k, bus.publisher("t.a") as p:
        p.publish(b"1")
        m = k.recv(timeout=WAIT_S)
        result = []
        main = threading.get_native_id()

        def acker():
            wait_until(lambda: thread_state(main) == "S", "the receive asleep")
            k.ack(m)
            result.append(group(bus, "t.a")["pending"])
            p.publish(b"2")

        t = threading.Thread(target=acker)
        t.start()
        m2 = k.recv(timeout=WAIT_S)  # asleep until the acker publishes
        t.join()
        assert m2.bytes() == b"2" and result == [0]
        k.ack(m2)


# ---- iteration, and asyncio ------------------------------------------------------------------


def test_iteration_until_closed(bus):
    mk(bus, "i.a", "i.b")
    k = bus.sink("i.*")
    got = []

    def publisher():
        with bus.publisher("i.a") as pa, bus.publisher("i.b") as pb:
            for i in range(100):
                (pa if i % 2 else pb).publish(b"%d" % i)

    t = threading.Thread(target=publisher)
    t.start()
    for msg in k:
        got.append(int(msg.bytes()))
        if len(got) == 100:
            k.close()
    t.join()
    assert sorted(got) == list(range(100))
    assert [g for g in got if g % 2] == list(range(1, 100, 2))  # in order per topic
    assert list(k) == []


def test_async_for_over_a_sink_with_no_thread(bus):
    """async for over a sink: the loop waits on the sink's fd (no helper thread), a
    publisher thread publishes to topics that exist and to one created while the loop
    waits; the loop stays free meanwhile."""
    mk(bus, "as.a", "as.b")
    n = 600
    threads0, helpers0 = threading.active_count(), set(helpers())

    async def main():
        with bus.sink("as.>") as k:
            turns = threading.Semaphore(0)
            created = threading.Event()

            def publisher():
                with bus.publisher("as.a") as pa, bus.publisher("as.b") as pb:
                    for i in range(n):
                        (pa if i % 2 else pb).publish(b"%d" % i)
                        if i % 100 == 99:
                            # the consumer catches up, then waits on the fd for the next
                            assert turns.acquire(timeout=WAIT_S)
                mk(bus, "as.new")
                created.set()
                pub1(bus, "as.new", b"new")

            got = []
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.001)  # ticks while the consumer waits
                    ticks += 1

            tk = asyncio.create_task(ticker())
            t = threading.Thread(target=publisher)
            t.start()
            async for msg in k:
                assert set(helpers()) <= helpers0
                got.append((msg.topic, msg.bytes()))
                if len(got) % 100 == 0 and len(got) <= n:
                    turns.release()
                if msg.topic == "as.new":
                    break
            t.join()
            tk.cancel()
            assert created.is_set()
            assert sorted(got[:n]) == sorted(("as.a" if i % 2 else "as.b", b"%d" % i)
                                             for i in range(n))
            assert got[n:] == [("as.new", b"new")]
            assert ticks > 0
            assert threading.active_count() <= threads0  # the publisher has ended

    run(main())
    assert set(helpers()) <= helpers0


def test_async_sink_timeout_cancel_and_close(bus):
    mk(bus, "ac.a")
    helpers0 = set(helpers())

    async def main():
        with bus.publisher("ac.a") as p:
            k = bus.sink("ac.a")
            with pytest.raises(shmbus.Timeout, match="on the sink"):
                await k.recv_async(timeout=0)
            with pytest.raises(shmbus.Timeout, match="no message within the timeout"):
                await k.recv_async(timeout=0.05)
            # a cancelled wait loses nothing
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(k.recv_async(), 0.05)
            p.publish(b"one")
            assert (await k.recv_async(timeout=WAIT_S)).bytes() == b"one"
            fut = k.recv_async()
            with pytest.raises(RuntimeError, match="already pending"):
                k.recv_async()
            with pytest.raises(RuntimeError, match="pending"):
                k.recv(timeout=0)
            fut.cancel()
            p.publish(b"two")
            assert k.recv(timeout=WAIT_S).bytes() == b"two"
            # close() ends a pending async for
            got = []

            async def consume():
                async for msg in k:
                    got.append(msg.bytes())

            task = asyncio.create_task(consume())
            p.publish(b"three")
            while not got:
                await asyncio.sleep(0.001)  # poll interval
            k.close()
            await asyncio.wait_for(task, WAIT_S)
            assert got == [b"three"]
            with pytest.raises(ValueError):
                await k.recv_async()
            assert bus.topic_stats("ac.a")["readers"] == 0
            assert set(helpers()) <= helpers0

    run(main())


def test_close_from_another_thread_while_the_loop_waits(bus):
    """close() in another thread than the loop's: the loop is asked to take the fd off and
    the pending future ends (ValueError); the reader slot is freed."""
    mk(bus, "ct.a")

    async def main():
        k = bus.sink("ct.a")
        fut = k.recv_async()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, k.close)
        with pytest.raises(ValueError, match="closed"):
            await asyncio.wait_for(fut, WAIT_S)
        while bus.topic_stats("ct.a")["readers"]:
            await asyncio.sleep(0.001)  # poll interval: the loop takes the fd off

    run(main())


def test_async_sink_in_the_helper_thread(bus, helper_thread):
    """Where there is no fd (the helper thread stands in), a sink works the same."""
    mk(bus, "h.a")

    helpers0 = set(helpers())

    seen = []

    def flt(topic, type, data):
        seen.append(threading.current_thread().name)
        return type != 5

    async def main():
        with bus.sink("h.a", filter=flt) as k, bus.publisher("h.a") as p:
            fut = k.recv_async(timeout=WAIT_S)
            assert set(helpers()) - helpers0
            await asyncio.sleep(0)
            p.publish(b"filtered", type=5)
            p.publish(b"x")
            assert (await fut).bytes() == b"x"
            # the filter ran in the helper thread, which took the GIL for it
            assert len(seen) == 2 and all(n.startswith("shmbus-recv") for n in seen)
            with pytest.raises(shmbus.Timeout):
                await k.recv_async(timeout=0.05)

    run(main())
    wait_until(lambda: set(helpers()) <= helpers0, "the helper thread ending")


def test_a_future_of_a_closed_loop_is_given_up(bus):
    """A future left pending when its loop closed can never be awaited: it does not keep
    the reader from receiving, synchronously or in another loop, nor from closing, and
    nothing complains about the closed loop."""
    mk(bus, "cl.a")
    unraisable = []
    old_hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        with bus.sink("cl.a") as k, bus.subscriber("cl.a") as s, \
                bus.publisher("cl.a") as p:
            left = []

            async def leave():
                left.extend([k.recv_async(), s.recv_async(timeout=WAIT_S)])

            asyncio.run(leave())
            p.publish(b"sync")
            assert k.recv(timeout=WAIT_S).bytes() == b"sync"
            assert s.recv(timeout=WAIT_S).bytes() == b"sync"
            asyncio.run(leave())

            async def again():
                p.publish(b"async")
                return [(await r.recv_async(timeout=WAIT_S)).bytes() for r in (k, s)]

            assert asyncio.run(again()) == [b"async", b"async"]
            asyncio.run(leave())
        assert bus.topic_stats("cl.a")["readers"] == 0
        assert not any(f.done() for f in left)
    finally:
        sys.unraisablehook = old_hook
    assert unraisable == []


def test_sink_receives_leak_nothing(bus):
    import gc

    mk(bus, "lk.a", "lk.b")

    def flt(topic, type, data):
        if type == 2:
            raise KeyError(topic)
        return type != 1

    async def run_async(k, pa, pb, n):
        loop = asyncio.get_running_loop()
        for i in range(n):
            if i % 10 == 0:
                loop.call_soon(pb.publish, b"late")  # waits on the fd
            else:
                pa.publish(b"no", type=1)
                pa.publish(b"now")
            m = await k.recv_async(timeout=WAIT_S)
            assert m.topic in ("lk.a", "lk.b")
            if i % 50 == 0:
                pb.publish(b"raise", type=2)
                with pytest.raises(KeyError):
                    await k.recv_async(timeout=WAIT_S)

    def run_sync(k, pa, n):
        for i in range(n):
            pa.publish(b"no", type=1)
            pa.publish(b"now")
            assert k.recv(timeout=WAIT_S).data == b"now"

    with bus.sink(["lk.a", "lk.b"], filter=flt) as k, bus.publisher("lk.a") as pa, \
            bus.publisher("lk.b") as pb:
        asyncio.run(run_async(k, pa, pb, 200))
        run_sync(k, pa, 200)
        gc.collect()
        objects = len(gc.get_objects())
        refs = sys.getrefcount(k), sys.getrefcount(flt)
        asyncio.run(run_async(k, pa, pb, 3000))
        run_sync(k, pa, 5000)
        gc.collect()
        assert len(gc.get_objects()) - objects < 100
        assert (sys.getrefcount(k), sys.getrefcount(flt)) == refs


def test_async_filter_that_raises(bus):
    mk(bus, "af.a")

    def flt(topic, type, data):
        if type:
            raise LookupError("no")
        return True

    async def main():
        with bus.sink("af.a", filter=flt) as k, bus.publisher("af.a") as p:
            fut = k.recv_async(timeout=WAIT_S)
            await asyncio.sleep(0)
            p.publish(b"bad", type=1)
            with pytest.raises(LookupError):
                await fut
            p.publish(b"good")
            assert (await k.recv_async(timeout=WAIT_S)).bytes() == b"good"

    run(main())


def test_subscriber_async_waits_without_a_thread(bus, topic):
    threads0, helpers0 = threading.active_count(), set(helpers())

    async def main():
        with bus.publisher(topic) as p, bus.subscriber(topic) as s:
            loop = asyncio.get_running_loop()
            for i in range(20):
                loop.call_soon(p.publish, b"%d" % i)
                assert (await s.recv_async(timeout=WAIT_S)).bytes() == b"%d" % i
                assert threading.active_count() <= threads0
            loop.call_soon(p.publish_batch, [b"a", b"b"])
            assert [m.bytes() for m in await s.recv_batch_async(10, timeout=WAIT_S)] in (
                [b"a", b"b"], [b"a"])

    run(main())
    assert set(helpers()) <= helpers0


# ---- fds in an event loop and a selector ------------------------------------------------------

PUBLISHER = """
import sys, shmbus
bus = shmbus.Bus(sys.argv[1])
with bus.publisher(sys.argv[2]) as p:
    for line in sys.stdin:
        p.publish(line.strip().encode())
        print("sent", flush=True)
"""


def test_add_reader_on_a_subscribers_fileno(bus, topic):
    """loop.add_reader(sub.fileno(), ...) with the publisher in another process: each
    message wakes the loop through the fd; the reader drains with timeout=0 until Timeout
    (which arms the fd again). The loop never blocks meanwhile."""
    n = 50
    child = subprocess.Popen([sys.executable, "-c", PUBLISHER, bus.name, topic],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        async def main():
            with bus.subscriber(topic) as s:
                fd = s.fileno()
                assert fd == s.fileno() and fd >= 0
                loop = asyncio.get_running_loop()
                got = []
                arrived = asyncio.Event()
                wakeups = 0

                def readable():
                    nonlocal wakeups
                    wakeups += 1
                    while True:
                        try:
                            m = s.recv(timeout=0)
                        except shmbus.Timeout:
                            break
                        got.append(m.bytes())
                        arrived.set()

                loop.add_reader(fd, readable)
                try:
                    for i in range(n):
                        arrived.clear()
                        child.stdin.write(f"m{i}\n")
                        child.stdin.flush()
                        while len(got) <= i:
                            await asyncio.wait_for(arrived.wait(), WAIT_S)
                            arrived.clear()
                finally:
                    loop.remove_reader(fd)
                assert got == [f"m{i}".encode() for i in range(n)]
                assert wakeups >= n

        run(main())
    finally:
        child.stdin.close()
        child.wait(WAIT_S)
    assert child.returncode == 0


def test_selector_on_a_sinks_fileno(bus):
    """A sink's fd in a selector, with a publisher thread; a topic created later wakes it."""
    mk(bus, "sel.a")
    with bus.sink("sel.>") as k, selectors.DefaultSelector() as sel:
        fd = k.fileno()
        sel.register(fd, selectors.EVENT_READ)
        go = threading.Event()

        def publisher():
            go.wait(WAIT_S)
            pub1(bus, "sel.a", b"a")
            mk(bus, "sel.b")
            pub1(bus, "sel.b", b"b")

        t = threading.Thread(target=publisher)
        t.start()
        go.set()
        got = []
        while len(got) < 2:
            assert sel.select(WAIT_S), "the sink's fd did not become readable"
            while True:
                try:
                    got.append(k.recv(timeout=0).bytes())
                except shmbus.Timeout:
                    break
        t.join()
        assert got == [b"a", b"b"]
        sel.unregister(fd)


def test_unsupported_is_an_unsupported_operation():
    assert issubclass(shmbus.Unsupported, io.UnsupportedOperation)
    assert issubclass(shmbus.Unsupported, OSError) and issubclass(shmbus.Unsupported, shmbus.Error)


def test_fileno_of_closed_readers(bus, topic):
    mk(bus, "fc.a")
    s = bus.subscriber(topic)
    k = bus.sink("fc.a")
    s.close()
    k.close()
    with pytest.raises(ValueError):
        s.fileno()
    with pytest.raises(ValueError):
        k.fileno()


def test_the_async_sink_example(bus):
    """examples/async_sink.py: a topic created after it started is read, with its name; the
    filtered type never printed."""
    example = os.path.join(os.path.dirname(__file__), "..", "examples", "async_sink.py")
    mk(bus, "ex.a")
    env = dict(os.environ, SHMBUS_BUS=bus.name, PYTHONPATH=os.path.dirname(shmbus.__file__))
    child = subprocess.Popen([sys.executable, example, "--count", "2", "--skip", "9", "ex.>"],
                             env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "reading ex.a"
        pub1(bus, "ex.a", b"skipped", type=9)
        mk(bus, "ex.b")
        pub1(bus, "ex.b", b"hello", type=1)
        pub1(bus, "ex.a", b"world", type=2)
        out, _ = child.communicate(timeout=WAIT_S)
        lines = sorted(out.splitlines())
        assert lines == ["ex.a seq=1 type=2 len=5 b'world'", "ex.b seq=0 type=1 len=5 b'hello'"]
        assert child.returncode == 0
    finally:
        child.kill()
        child.wait()

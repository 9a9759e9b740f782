# SPDX-License-Identifier: MIT
"""Round trips: every size class, every kind of bytes-like input, batches, groups,
from_earliest, and the overwrite policy's loss accounting."""
import array
import os
import random
import time

import pytest

import shmbus

SIZES = [0, 1, 64, 4096, 65536, 1 << 20]


@pytest.fixture
def big(bus):
    """A topic that takes 1 MiB messages."""
    bus.create_topic("big", capacity=8 << 20, max_message=1 << 20)
    return "big"


def payload(rng, n):
    return rng.randbytes(n)


@pytest.mark.parametrize("size", SIZES)
def test_every_size_class(bus, big, size):
    seed = random.randrange(1 << 30)
    print("seed", seed)
    rng = random.Random(seed)
    with bus.publisher(big) as pub, bus.subscriber(big) as sub:
        sent = [payload(rng, size) for _ in range(3)]
        before = time.time_ns()
        for i, p in enumerate(sent):
            pub.publish(p, type=i + 7)
        after = time.time_ns()
        for i, p in enumerate(sent):
            m = sub.recv(timeout=5)
            assert len(m) == size
            assert m.data.nbytes == size
            assert m.data.readonly
            assert m.data == p
            assert m.bytes() == p
            assert bytes(m) == p
            assert m.type == i + 7
            assert m.seq == i
            assert m.lost == 0
            # the TSC-based stamp is within a few microseconds of the wall clock
            assert before - 10_000_000 <= m.timestamp <= after + 10_000_000
        with pytest.raises(shmbus.Timeout):
            sub.recv(timeout=0)


def test_bytes_like_inputs(bus, topic):
    np = pytest.importorskip("numpy")
    inputs = [
        b"bytes",
        bytearray(b"bytearray"),
        memoryview(b"0123456789")[2:7],
        array.array("i", [1, 2, 3]),
        np.arange(10, dtype=np.float64),
        np.arange(12, dtype=np.uint16).reshape(3, 4),
    ]
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        for x in inputs:
            pub.publish(x)
        for x in inputs:
            got = sub.recv(timeout=1).bytes()
            want = x.tobytes() if hasattr(x, "tobytes") else bytes(x)
            assert got == want
        # numpy reads the payload zero-copy too (and the message refuses to be let go
        # while the array is alive: see test_lifetime.py)
        pub.publish(np.arange(4, dtype=np.int32))
        m = sub.recv(timeout=1)
        a = np.asarray(m.data).view(np.int32)
        assert a.tolist() == [0, 1, 2, 3]
        del a
        # not contiguous: refused, nothing published
        with pytest.raises((BufferError, ValueError)):
            pub.publish(np.arange(10)[::2])
        with pytest.raises(TypeError):
            pub.publish("a str is not bytes")
        with pytest.raises(shmbus.Timeout):
            sub.recv(timeout=0)


def test_data_is_read_only(bus, topic):
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        pub.publish(b"abc")
        m = sub.recv(timeout=1)
        with pytest.raises(TypeError):
            m.data[0] = 1
        view = memoryview(m)  # the message is a buffer itself, read-only too
        assert view.readonly and view == b"abc"
        with pytest.raises(TypeError):
            view[0] = 1
        del view
        assert m.data.tobytes() == b"abc"


def test_batch(bus, big):
    rng = random.Random(1)
    msgs = [rng.randbytes(rng.choice(SIZES[:4])) for _ in range(300)]
    with bus.publisher(big) as pub, bus.subscriber(big) as sub:
        assert pub.publish_batch(msgs, type=3) == len(msgs)
        assert pub.publish_batch([]) == 0
        for i, want in enumerate(msgs):
            m = sub.recv(timeout=1)
            assert (m.seq, m.type, m.bytes()) == (i, 3, want)
        assert pub.publish_batch([bytearray(b"x"), memoryview(b"yz")]) == 2
        assert sub.recv_many(10, timeout=1) == [b"x", b"yz"]
        with pytest.raises(shmbus.TooBig):
            pub.publish_batch([b"ok", bytes((1 << 20) + 1)])
        with pytest.raises(shmbus.Timeout):
            sub.recv_many(5, timeout=0)


def test_recv_many_then_recv(bus, topic):
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        for i in range(10):
            pub.publish(bytes([i]))
        assert sub.recv_many(4) == [bytes([i]) for i in range(4)]
        assert sub.recv(timeout=1).bytes() == bytes([4])
        assert sub.recv_many(100) == [bytes([i]) for i in range(5, 10)]
        assert sub.received == 10


def test_group_shares_messages(bus, topic):
    with bus.publisher(topic) as pub, bus.subscriber(topic, "workers") as a, \
            bus.subscriber(topic, group="workers") as b, bus.subscriber(topic) as fan:
        assert a.group == "workers" and fan.group is None
        for i in range(100):
            pub.publish(i.to_bytes(4, "little"))
        got = []
        for s in (a, b) * 100:
            try:
                got.append(int.from_bytes(s.recv(timeout=0).data, "little"))
            except shmbus.Timeout:
                pass
        assert sorted(got) == list(range(100))
        assert [int.from_bytes(fan.recv(timeout=1).data, "little") for _ in range(100)] == \
            list(range(100))
        groups = bus.groups(topic)
        assert [(g["name"], g["members"]) for g in groups] == [("workers", 2)]


def test_from_earliest(bus, topic):
    with bus.publisher(topic) as pub:
        for i in range(5):
            pub.publish(bytes([i]))
        with bus.subscriber(topic) as late, bus.subscriber(topic, from_earliest=True) as early, \
                bus.subscriber(topic, None, True) as early2:
            for s in (early, early2):
                assert [s.recv(timeout=1).bytes() for _ in range(5)] == \
                    [bytes([i]) for i in range(5)]
            with pytest.raises(shmbus.Timeout):
                late.recv(timeout=0)


def test_overwrite_counts_losses(bus):
    bus.create_topic("ow", capacity=1 << 16, policy="overwrite")
    with bus.publisher("ow") as pub, bus.subscriber("ow") as sub:
        assert pub.policy == sub.policy == "overwrite"
        n = 5000  # far more than a 64 KiB ring holds
        for i in range(n):
            pub.publish(i.to_bytes(8, "little") * 8, timeout=0)
        seen = lost = 0
        last = -1
        while True:
            try:
                m = sub.recv(timeout=0)
            except shmbus.Timeout:
                break
            v = int.from_bytes(m.data[:8], "little")
            assert v > last and m.seq == v
            assert m.lost == v - last - 1
            last = v
            seen += 1
            lost += m.lost
        assert last == n - 1
        assert seen + lost == n
        assert lost > 0 and sub.lost == lost


def test_large_messages_from_threads(bus, big):
    """Large copies run without the GIL: two publishers in threads, one subscriber."""
    import threading

    per = 40
    blobs = [os.urandom(256 << 10) for _ in range(2)]

    def run(k):
        with bus.publisher(big) as pub:
            for _ in range(per):
                pub.publish(blobs[k], type=k)

    with bus.subscriber(big) as sub:
        ts = [threading.Thread(target=run, args=(k,)) for k in range(2)]
        for t in ts:
            t.start()
        counts = [0, 0]
        for _ in range(2 * per):
            m = sub.recv(timeout=10)
            assert m.data == blobs[m.type]
            counts[m.type] += 1
        for t in ts:
            t.join()
        assert counts == [per, per]

# SPDX-License-Identifier: MIT
"""A message's data lives until the subscriber's next recv or close: after that, using
it raises; it never shows other bytes and never crashes. A buffer of it kept across recv
makes recv refuse (BufferError) without consuming anything."""
import gc
import weakref

import pytest

import shmbus


def test_data_dies_at_next_recv(bus, topic):
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        pub.publish(b"first")
        pub.publish(b"second")
        m1 = sub.recv(timeout=1)
        d1 = m1.data
        assert d1 == b"first" and m1.valid
        m2 = sub.recv(timeout=1)
        assert not m1.valid and m2.valid
        with pytest.raises(ValueError):
            d1[0]
        with pytest.raises(ValueError):
            bytes(d1)
        with pytest.raises(ValueError):
            d1.tobytes()
        with pytest.raises(ValueError):
            m1.data
        with pytest.raises(ValueError):
            m1.bytes()
        with pytest.raises(BufferError):
            memoryview(m1)
        # the plain attributes stay
        assert (m1.seq, len(m1), m1.type) == (0, 5, 0)
        assert "gone" in repr(m1)
        assert m2.data == b"second"


def test_data_dies_at_failed_recv(bus, topic):
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        pub.publish(b"only")
        m = sub.recv(timeout=1)
        d = m.data
        with pytest.raises(shmbus.Timeout):
            sub.recv(timeout=0.01)
        with pytest.raises(ValueError):
            d[0]


def test_data_dies_at_close(bus, topic):
    with bus.publisher(topic) as pub:
        sub = bus.subscriber(topic)
        pub.publish(b"x" * 100)
        m = sub.recv(timeout=1)
        d = m.data
        sub.close()
        with pytest.raises(ValueError):
            d[0]
        with pytest.raises(ValueError):
            m.data
        assert bus.topic_stats(topic)["readers"] == 0


@pytest.mark.parametrize("policy", ["block", "overwrite"])
def test_kept_slice_makes_recv_refuse(bus, policy):
    bus.create_topic("k", capacity=1 << 16, policy=policy)
    with bus.publisher("k") as pub, bus.subscriber("k") as sub:
        for i in range(3):
            pub.publish(bytes([i]) * 8)
        m = sub.recv(timeout=1)
        d = m.data
        head = d[:4]  # a slice shares the ring memory
        also = memoryview(d)
        with pytest.raises(BufferError, match="still alive"):
            sub.recv(timeout=1)
        assert m.valid and head == b"\0" * 4  # nothing consumed, the data unchanged
        with pytest.raises(ValueError):
            d[0]  # .data's own view was released on the way
        assert m.data[0] == 0  # ... and a fresh one can be taken
        head.release()
        with pytest.raises(BufferError):
            sub.recv(timeout=1)
        del also
        m2 = sub.recv(timeout=1)
        assert (m2.seq, m2.bytes()) == (1, b"\1" * 8)
        with pytest.raises(ValueError):
            head[0]


def test_numpy_asarray_is_tracked(bus, topic):
    np = pytest.importorskip("numpy")
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        pub.publish(np.arange(8, dtype=np.int64))
        pub.publish(np.arange(8, dtype=np.int64) * 2)
        m = sub.recv(timeout=1)
        a = np.asarray(m.data).view(np.int64)
        b = np.asarray(m)  # the message is a buffer too
        with pytest.raises(BufferError):
            sub.recv(timeout=1)
        assert a.sum() == 28 and len(b) == 64
        del a, b
        assert np.frombuffer(sub.recv(timeout=1).bytes(), dtype=np.int64).sum() == 56


def test_close_with_kept_slice_keeps_memory(bus, topic):
    with bus.publisher(topic) as pub:
        sub = bus.subscriber(topic)
        pub.publish(b"keep me")
        m = sub.recv(timeout=1)
        tail = m.data[5:]
        sub.close()
        # the C close waits for the slice: it still reads the same, whole message
        assert tail == b"me"
        assert bus.topic_stats(topic)["readers"] == 1
        del tail
        assert bus.topic_stats(topic)["readers"] == 0
        with pytest.raises(ValueError):
            sub.recv()


def test_dropped_subscriber_is_collected(bus, topic):
    with bus.publisher(topic) as pub:
        sub = bus.subscriber(topic)
        pub.publish(b"cycle")
        m = sub.recv(timeout=1)
        d = m.data  # subscriber -> view -> message -> subscriber
        ref = weakref.ref(sub)
        del sub, m, d
        gc.collect()
        assert ref() is None
        assert bus.topic_stats(topic)["readers"] == 0


def test_bytes_copy_outlives(bus, topic):
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        pub.publish(b"a" * 70000 if pub.max_message >= 70000 else b"a" * 1000)
        pub.publish(b"b")
        m = sub.recv(timeout=1)
        copy = m.bytes()
        sub.recv(timeout=1)
        assert set(copy) == {ord("a")}

# SPDX-License-Identifier: MIT
"""Publisher.reserve(): zero-copy writes into the ring, commit on exit, abort on an
exception, and a memoryview that is dead once the reservation is over."""
import pytest

import shmbus
from maps import address, mapped_file


def test_commit_on_exit_is_zero_copy(bus, topic):
    pytest.importorskip("numpy")
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        with pub.reserve(64, type=5) as buf:
            assert isinstance(buf, memoryview) and not buf.readonly and len(buf) == 64
            # the view is the ring itself: inside the mapping of the topic's file
            assert mapped_file(address(buf)).endswith("/t.topic")
            buf[:] = bytes(range(64))
        m = sub.recv(timeout=1)
        assert (m.type, m.bytes()) == (5, bytes(range(64)))
        # and so is the received message's data (block policy: no copy on recv either)
        assert mapped_file(address(m.data)).endswith("/t.topic")
        with pytest.raises(ValueError):
            buf[0]  # released when the reservation ended
        with pytest.raises(ValueError):
            buf[0] = 1


def test_abort_on_exception(bus, topic):
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        with pytest.raises(RuntimeError, match="boom"):
            with pub.reserve(16) as buf:
                buf[:4] = b"half"
                raise RuntimeError("boom")
        with pytest.raises(ValueError):
            buf[0] = 1
        with pytest.raises(shmbus.Timeout):
            sub.recv(timeout=0)  # readers skip the aborted space
        assert bus.topic_stats(topic)["aborted"] == 1
        pub.publish(b"after")
        assert sub.recv(timeout=1).bytes() == b"after"


def test_explicit_commit_abort_and_state(bus, topic):
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        r = pub.reserve(3)
        assert r.state == "open" and len(r) == 3
        r.buffer[:] = b"abc"
        with pytest.raises(shmbus.Error) as e:
            pub.publish(b"x")  # one reservation at a time
        assert e.value.errno == 16  # EBUSY
        r.commit(type=9)
        assert r.state == "committed"
        with pytest.raises(ValueError):
            r.commit()
        with pytest.raises(ValueError):
            r.buffer
        with pytest.raises(BufferError):
            memoryview(r)
        m = sub.recv(timeout=1)
        assert (m.type, m.bytes()) == (9, b"abc")
        r = pub.reserve(3)
        r.abort()
        assert r.state == "aborted"
        with pytest.raises(ValueError):
            with r:  # no buffer of a finished reservation
                pass
        assert r.__exit__(None, None, None) is False  # exiting one does nothing
        # a reservation dropped without commit is aborted
        pub.reserve(8)
        pub.publish(b"next")
        assert sub.recv(timeout=1).bytes() == b"next"


def test_a_kept_slice_blocks_the_commit(bus, topic):
    np = pytest.importorskip("numpy")
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        r = pub.reserve(8)
        with pytest.raises(BufferError, match="stays open"):
            with r as buf:
                head = buf[:4]  # a second view of the ring space, kept past the block
                head[:] = b"head"
                buf[4:] = b"tail"
        assert r.state == "open"
        with pytest.raises(shmbus.Timeout):
            sub.recv(timeout=0)  # nothing published while a view could still write
        head.release()
        r.commit()
        assert sub.recv(timeout=1).bytes() == b"headtail"
        # numpy's asarray keeps the buffer too
        r = pub.reserve(4)
        arr = np.asarray(r.buffer)
        arr[:] = 7
        with pytest.raises(BufferError):
            r.commit()
        del arr
        r.commit()
        assert sub.recv(timeout=1).bytes() == bytes([7] * 4)


def test_reserve_errors(bus, topic):
    with bus.publisher(topic) as pub:
        with pytest.raises(shmbus.TooBig):
            pub.reserve(pub.max_message + 1)
        with pytest.raises(ValueError):
            pub.reserve(-1)
        pub.reserve(0).commit()


def test_close_with_open_reservation(bus, topic):
    with bus.subscriber(topic) as sub:
        pub = bus.publisher(topic)
        r = pub.reserve(4)
        view = r.buffer
        pub.close()  # aborts it
        assert r.state == "aborted"
        with pytest.raises(ValueError):
            view[0] = 1
        with pytest.raises(ValueError):
            r.commit()
        pub2 = bus.publisher(topic)
        pub2.publish(b"ok")
        assert sub.recv(timeout=1).bytes() == b"ok"
        pub2.close()


def test_close_waits_for_a_kept_view(bus, topic):
    with bus.subscriber(topic) as sub:
        pub = bus.publisher(topic)
        r = pub.reserve(4)
        view = r.buffer[1:]  # a slice outlives the publisher's close
        pub.close()
        view[:] = b"xyz"  # still the reserved space: harmless, nobody reads it
        assert bus.topic_stats(topic)["publishers"] == 1
        del view
        assert r.state == "aborted"
        assert bus.topic_stats(topic)["publishers"] == 0
        with pytest.raises(shmbus.Timeout):
            sub.recv(timeout=0)

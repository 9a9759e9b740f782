# SPDX-License-Identifier: MIT
"""`for msg in sub`: every message in order; closing the subscriber ends the loop."""
import shmbus


def test_for_loop(bus, topic):
    with bus.publisher(topic) as pub, bus.subscriber(topic) as sub:
        for i in range(1000):
            pub.publish(i.to_bytes(4, "little"), type=i % 7)
        got = []
        for msg in sub:
            assert msg.type == len(got) % 7
            got.append(int.from_bytes(msg.data, "little"))
            if len(got) == 1000:
                break
        assert got == list(range(1000))
        assert iter(sub) is sub


def test_close_ends_iteration(bus, topic):
    with bus.publisher(topic) as pub:
        sub = bus.subscriber(topic)
        for i in range(10):
            pub.publish(bytes([i]))
        n = 0
        for msg in sub:
            n += 1
            if n == 3:
                sub.close()
        assert n == 3


def test_next_and_group_iteration(bus, topic):
    with bus.publisher(topic) as pub, bus.subscriber(topic, "g") as member:
        pub.publish(b"one")
        pub.publish(b"two")
        assert next(member).bytes() == b"one"
        assert next(member).bytes() == b"two"
        assert bus.readers(topic)[0]["group"] == "g"
        assert isinstance(member, shmbus.Subscriber)

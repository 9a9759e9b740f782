# SPDX-License-Identifier: MIT
"""Arguments passed to C are checked, never wrapped or cut short (issue 14, point 6).

An int that does not fit its C field raises OverflowError (negative or too wide) naming the
argument, and nothing is created, opened or changed; a value that fits but means nothing
keeps its ValueError or the library's Error. A name with a NUL character raises ValueError
instead of standing for the name before the NUL.
"""
import errno

import pytest

import shmbus

# (keyword, value, the C field's bound in the message)
TOPIC_INTS = [
    ("capacity", 2**70, "beyond 64 bits"),  # was 'K': masked to 0, i.e. the 1 MiB default
    ("capacity", 2**64 + (1 << 16), "beyond 64 bits"),  # masked to a valid 64 KiB
    ("capacity", -1, ">= 0, not -1"),
    ("max_message", 2**32 + 100, "at most 4294967295, not 4294967396"),  # was 100
    ("max_message", -1, ">= 0, not -1"),
    ("max_readers", 2**40, "at most 4294967295"),  # was 0: the default 64
    ("max_readers", 2**32 + 8, "at most 4294967295"),  # was 8
    ("max_readers", -1, ">= 0, not -1"),
    ("max_publishers", 2**32 + 1, "at most 4294967295"),  # was 1
    ("max_groups", 2**32 + 2, "at most 4294967295"),  # was 2
]


@pytest.mark.parametrize("key,value,says", TOPIC_INTS)
def test_create_topic_ints_not_wrapped(bus, key, value, says):
    with pytest.raises(OverflowError, match=key) as e:
        bus.create_topic("t", **{key: value})
    assert says in str(e.value)
    assert "t" not in bus.topics()  # nothing was created with a wrapped value


def test_create_topic_ints_in_range(bus):
    """The widest values that fit go on to the library, which judges what they mean."""
    with pytest.raises(shmbus.Error) as e:
        bus.create_topic("t", capacity=2**64 - 1)
    assert e.value.errno == errno.EINVAL and "capacity" in str(e.value)
    with pytest.raises(shmbus.Error) as e:
        bus.create_topic("t", max_readers=2**32 - 1)
    assert e.value.errno == errno.EINVAL and "max_readers" in str(e.value)
    assert bus.create_topic("t", capacity=1 << 16, max_message=100, max_readers=8,
                            max_publishers=2, max_groups=3) is True
    info = bus.topic_info("t")
    assert (info["capacity"], info["max_message"], info["max_readers"],
            info["max_publishers"], info["max_groups"]) == (1 << 16, 100, 8, 2, 3)
    with pytest.raises(TypeError, match="capacity"):
        bus.create_topic("u", capacity=1.5)


NUL_NAMES = ["a\0b", "a\0", "\0"]


@pytest.mark.parametrize("name", NUL_NAMES)
def test_topic_names_with_nul(bus, name):
    """Each topic entry point, with a topic 'a' there that the name would otherwise
    stand for."""
    bus.create_topic("a", capacity=1 << 16)
    for call in (bus.publisher, bus.subscriber, bus.topic_info, bus.topic_stats,
                 bus.readers, bus.groups, bus.remove_topic, bus.create_topic,
                 lambda n: bus.subscriber(n, group="g")):
        with pytest.raises(ValueError, match="NUL"):
            call(name)
    assert bus.topics() == ["a"]  # remove_topic("a\0b") did not remove 'a'
    assert bus.groups("a") == []  # nor did the subscriber make a group


def test_group_name_with_nul(bus):
    bus.create_topic("a", capacity=1 << 16)
    with pytest.raises(ValueError, match="group"):
        bus.subscriber("a", group="g\0h")  # was a member of group 'g'
    assert bus.groups("a") == [] and bus.readers("a") == []
    with bus.subscriber("a", group="g") as s:  # a plain name still works
        assert s.group == "g"


def test_bus_and_policy_with_nul(bus, bus_name):
    with pytest.raises(ValueError, match="bus name"):
        shmbus.Bus(bus_name + "\0x")
    with pytest.raises(ValueError, match="policy"):
        bus.create_topic("t", policy="block\0x")
    with pytest.raises(TypeError, match="policy"):
        bus.create_topic("t", policy=1)
    assert "t" not in bus.topics()


@pytest.fixture
def pub_sub(bus):
    bus.create_topic("t", capacity=1 << 16)
    with bus.publisher("t") as pub, bus.subscriber("t") as sub:
        yield pub, sub


@pytest.mark.parametrize("value,says", [(-1, ">= 0, not -1"), (2**32, "at most 4294967295"),
                                        (2**64, "beyond 64 bits"), (-2**70, ">= 0")])
def test_type_out_of_range(pub_sub, value, says):
    pub, sub = pub_sub
    calls = [lambda: pub.publish(b"x", type=value),
             lambda: pub.publish_batch([b"x"], type=value),
             lambda: pub.reserve(1, type=value)]
    for call in calls:
        with pytest.raises(OverflowError, match="type") as e:
            call()
        assert says in str(e.value)
    r = pub.reserve(1)
    with pytest.raises(OverflowError, match="type"):
        r.commit(type=value)
    assert r.state == "open"
    r.abort()
    with pytest.raises(shmbus.Timeout):
        sub.recv(timeout=0)  # nothing went out
    pub.publish(b"x", type=2**32 - 1)
    assert sub.recv(timeout=1).type == 2**32 - 1
    with pytest.raises(TypeError, match="type"):
        pub.publish(b"x", type=1.0)


def test_reserve_size_out_of_range(pub_sub):
    pub, _ = pub_sub
    with pytest.raises(OverflowError, match="size"):
        pub.reserve(2**64)
    with pytest.raises(ValueError, match="size"):
        pub.reserve(-2**70)
    with pytest.raises(TypeError, match="size"):
        pub.reserve(1.0)
    with pytest.raises(shmbus.TooBig):
        pub.reserve(2**32 + 1)  # fits size_t: the library says it is too big
    pub.reserve(1).abort()


def test_max_messages_out_of_range(pub_sub):
    pub, sub = pub_sub
    pub.publish(b"x")
    for call in (sub.recv_batch, sub.recv_many):
        with pytest.raises(OverflowError, match="max_messages"):
            call(2**64, timeout=0)
        with pytest.raises(ValueError, match="max_messages"):
            call(-2**64, timeout=0)
    assert [m.bytes() for m in sub.recv_batch(2**40, timeout=1)] == [b"x"]  # capped, fine


def test_spin_us_out_of_range(pub_sub):
    _, sub = pub_sub
    sub.spin_us = 7
    with pytest.raises(OverflowError, match="spin_us"):
        sub.spin_us = -1
    with pytest.raises(OverflowError, match="spin_us"):
        sub.spin_us = 2**64
    with pytest.raises(ValueError, match="spin_us"):
        sub.spin_us = 2**33  # fits; more than a second of spinning
    with pytest.raises(TypeError, match="spin_us"):
        sub.spin_us = 1.5
    assert sub.spin_us == 7


def test_timeout_out_of_range(bus, pub_sub):
    _, sub = pub_sub
    for call in (sub.recv, sub.recv_async, bus.daemon_ping,
                 lambda t: sub.recv_batch(1, timeout=t), lambda t: sub.recv_many(1, timeout=t)):
        with pytest.raises(OverflowError, match="timeout"):
            call(2**1100)  # no double holds it
        with pytest.raises(TypeError, match="timeout"):
            call("1")

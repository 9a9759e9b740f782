# SPDX-License-Identifier: MIT
"""Each exception class, raised by a real failure, with the library's message and .errno;
closed objects; context managers."""
import errno
import os
import subprocess
import sys

import pytest

import shmbus


def test_hierarchy():
    for cls in (shmbus.Timeout, shmbus.Exists, shmbus.NotFound, shmbus.TooBig,
                shmbus.AccessDenied):
        assert issubclass(cls, shmbus.Error)
    assert issubclass(shmbus.Timeout, TimeoutError)
    assert issubclass(shmbus.NotFound, FileNotFoundError)
    assert issubclass(shmbus.Exists, FileExistsError)
    assert issubclass(shmbus.AccessDenied, PermissionError)
    assert issubclass(shmbus.Error, Exception) and not issubclass(shmbus.Error, OSError)


def test_timeout(bus, topic):
    with bus.subscriber(topic) as sub:
        with pytest.raises(shmbus.Timeout) as e:
            sub.recv(timeout=0.01)
        assert e.value.errno == errno.EAGAIN
        assert "recv on 't'" in str(e.value)
        assert isinstance(e.value, TimeoutError)


def test_exists(bus, topic):
    with pytest.raises(shmbus.Exists) as e:
        bus.create_topic(topic, capacity=1 << 16)
    assert e.value.errno == errno.EEXIST
    assert "exists with other options" in str(e.value)  # the library's words
    assert bus.create_topic(topic, capacity=1 << 20) is False  # same options: fine


def test_not_found(bus):
    with pytest.raises(shmbus.NotFound) as e:
        bus.publisher("nope")
    assert e.value.errno == errno.ENOENT
    assert "topic 'nope' does not exist" in str(e.value)
    with pytest.raises(FileNotFoundError):
        bus.subscriber("nope.either")
    with pytest.raises(shmbus.NotFound):
        bus.remove_topic("nope")
    with pytest.raises(shmbus.NotFound):
        bus.topic_stats("nope")


def test_too_big(bus, topic):
    with bus.publisher(topic) as pub:
        with pytest.raises(shmbus.TooBig) as e:
            pub.publish(bytes(pub.max_message + 1))
        assert e.value.errno == errno.EMSGSIZE
        assert f"max_message of {pub.max_message} bytes" in str(e.value)
        pub.publish(bytes(pub.max_message))


def test_bad_names_and_options(bus, topic):
    with pytest.raises(shmbus.Error) as e:
        bus.create_topic("bad name!")
    assert e.value.errno == errno.EINVAL and "bad name!" in str(e.value)
    with pytest.raises(shmbus.Error) as e:
        bus.create_topic("x", capacity=1000)  # not a power of two
    assert e.value.errno == errno.EINVAL
    with pytest.raises(shmbus.Error) as e:
        bus.create_topic("$sys.mine")
    assert e.value.errno == errno.EINVAL
    with pytest.raises(ValueError):
        bus.create_topic("x", policy="sometimes")
    with pytest.raises(shmbus.Error) as e:
        bus.subscriber(topic, group="bad group")
    assert e.value.errno == errno.EINVAL
    with pytest.raises(shmbus.Error):
        shmbus.Bus("no/slashes")
    with pytest.raises(ValueError):
        bus.subscriber(topic).recv(timeout=-1)
    with pytest.raises(OverflowError):
        bus.publisher(topic).publish(b"", type=1 << 32)


ACCESS_CHILD = r"""
import os, sys
sys.path.insert(0, os.environ["PYTHONPATH_MODULE"])
os.setgid(65534); os.setuid(65534)  # nobody: the bus directory is 0770 root
import shmbus
try:
    shmbus.Bus(sys.argv[1]).publisher("t")
except shmbus.AccessDenied as e:
    print("AccessDenied", e.errno, e)
    sys.exit(0)
except Exception as e:
    print("other", type(e), e)
sys.exit(1)
"""


def test_access_denied(bus, topic):
    if os.geteuid() == 0:
        # root passes every permission check: try as nobody in a child
        env = dict(os.environ, PYTHONPATH_MODULE=os.path.dirname(shmbus.__file__))
        r = subprocess.run([sys.executable, "-c", ACCESS_CHILD, bus.name], env=env,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.startswith("AccessDenied 13 ")
    else:
        path = os.path.join(bus.path, "t.topic")
        os.chmod(path, 0)
        try:
            with pytest.raises(shmbus.AccessDenied) as e:
                bus.publisher(topic)
            assert e.value.errno in (errno.EACCES, errno.EPERM)
        finally:
            os.chmod(path, 0o660)


def test_closed_objects(bus_name, topic):
    b = shmbus.Bus(bus_name)
    pub = b.publisher(topic)
    sub = b.subscriber(topic)
    b.close()
    b.close()
    assert b.closed
    with pytest.raises(ValueError):
        b.publisher(topic)
    with pytest.raises(ValueError):
        b.topics()
    # handles opened before stay usable until closed themselves
    pub.publish(b"still")
    assert sub.recv(timeout=1).bytes() == b"still"
    pub.close()
    pub.close()
    sub.close()
    sub.close()
    assert pub.closed and sub.closed
    for call in (lambda: pub.publish(b"x"), lambda: pub.reserve(1),
                 lambda: pub.publish_batch([b"x"]), lambda: sub.recv(timeout=0),
                 lambda: sub.recv_many(1), lambda: sub.recv_batch(timeout=0),
                 lambda: sub.recv_batch_async(), lambda: pub.__enter__(), lambda: sub.__enter__(),
                 lambda: b.__enter__()):
        with pytest.raises(ValueError, match="closed"):
            call()
    assert list(sub) == []  # iteration just ends
    assert "closed" in repr(pub) and "closed" in repr(sub) and "closed" in repr(b)


def test_context_managers(bus_name, topic):
    with shmbus.Bus(bus_name) as b:
        with b.publisher(topic) as pub, b.subscriber(topic) as sub:
            pub.publish(b"cm")
            assert sub.recv(timeout=1).bytes() == b"cm"
        assert pub.closed and sub.closed
        assert b.topic_stats(topic)["readers"] == 0
        assert b.topic_stats(topic)["publishers"] == 0
    assert b.closed


def test_bus_attributes(bus, topic):
    assert bus.path == os.path.join(os.environ["SHMBUS_DIR"], bus.name)
    assert bus.supervised is False
    os.environ["SHMBUS_BUS"] = bus.name
    try:
        with shmbus.Bus() as b:
            assert b.name == bus.name and b.topics() == ["t"]
    finally:
        del os.environ["SHMBUS_BUS"]

# SPDX-License-Identifier: MIT
"""Processes talking through a topic: Python to Python (the example scripts and
multiprocessing), Python to the C example programs and back, every message checked."""
import multiprocessing
import os
import subprocess
import sys

import pytest

import shmbus
from payload import TYPE_DATA, check, fill
from waits import WAIT_S, wait_until

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")
C_PUBLISHER = os.environ.get("SHMBUS_EXAMPLE_PUBLISHER")
C_SUBSCRIBER = os.environ.get("SHMBUS_EXAMPLE_SUBSCRIBER")
needs_c = pytest.mark.skipif(not (C_PUBLISHER and C_SUBSCRIBER),
                             reason="run through meson test (passes the example programs)")


def child_env(bus):
    return dict(os.environ, SHMBUS_BUS=bus.name,
                PYTHONPATH=os.path.dirname(shmbus.__file__))


def wait_readers(bus, topic, n):
    def enough():
        try:
            return bus.topic_stats(topic)["readers"] >= n
        except shmbus.NotFound:
            return False

    wait_until(enough, f"{n} readers on {topic}")


def publish_checked(bus, topic, count, size, publisher_id):
    with bus.publisher(topic) as pub:
        for i in range(count):
            pub.publish(fill(size, publisher_id, i), type=TYPE_DATA)


def receive_checked(sub, count, publisher_id, timeout=WAIT_S):
    for i in range(count):
        m = sub.recv(timeout=timeout)
        assert m.type == TYPE_DATA
        assert check(m.data) == (publisher_id, i)


def test_python_to_python_scripts(bus):
    n = 5000
    bus.create_topic("pp", capacity=1 << 20)
    sub = subprocess.Popen([sys.executable, os.path.join(EXAMPLES, "subscriber.py"),
                            "--timeout", str(WAIT_S), "pp", str(n)], env=child_env(bus),
                           stdout=subprocess.PIPE, text=True)
    try:
        assert sub.stdout.readline().strip() == "ready"
        pub = subprocess.run([sys.executable, os.path.join(EXAMPLES, "publisher.py"),
                              "--id", "3", "pp", str(n), "100"], env=child_env(bus),
                             capture_output=True, text=True, timeout=60)
        assert pub.returncode == 0, pub.stderr
        out, _ = sub.communicate(timeout=60)
        assert sub.returncode == 0, out
        assert f"received={n} errors=0 publishers=1" in out
    finally:
        sub.kill()
        sub.wait()


def mp_publisher(bus_name, topic, count, size):
    with shmbus.Bus(bus_name) as bus:
        wait_readers(bus, topic, 1)
        publish_checked(bus, topic, count, size, 11)


def test_python_to_python_multiprocessing(bus):
    n = 20000
    bus.create_topic("mp", capacity=1 << 16)  # small: the publisher waits for us
    ctx = multiprocessing.get_context("spawn")
    with bus.subscriber("mp") as sub:
        p = ctx.Process(target=mp_publisher, args=(bus.name, "mp", n, 200))
        p.start()
        try:
            receive_checked(sub, n, 11)
        finally:
            p.join(WAIT_S)
        assert p.exitcode == 0


@needs_c
@pytest.mark.parametrize("size", [16, 64, 4096])
def test_python_publisher_c_subscriber(bus, size):
    n = 20000
    c = subprocess.Popen([C_SUBSCRIBER, "cs", str(n)], env=child_env(bus),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_readers(bus, "cs", 1)
        publish_checked(bus, "cs", n, size, 5)
        out, _ = c.communicate(timeout=60)
    finally:
        c.kill()
        c.wait()
    assert c.returncode == 0, out
    assert f"received={n} lost=0 errors=0 publishers=1" in out


@needs_c
@pytest.mark.parametrize("batch", [1, 16])
def test_c_publisher_python_subscriber(bus, batch):
    n = 20000
    bus.create_topic("cp", capacity=1 << 20)  # the C defaults: the C side finds it alike
    with bus.subscriber("cp") as sub:
        c = subprocess.Popen([C_PUBLISHER, "--id", "9", "--batch", str(batch), "cp", str(n),
                              "100"], env=child_env(bus), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        try:
            receive_checked(sub, n, 9)
            out, _ = c.communicate(timeout=60)
        finally:
            c.kill()
            c.wait()
        assert c.returncode == 0, out
        with pytest.raises(shmbus.Timeout):
            sub.recv(timeout=0)

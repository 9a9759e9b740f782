# SPDX-License-Identifier: MIT
"""The bus and its topics as the shared counters and the daemon describe them:
topics(), topic_info(), topic_stats(), readers(), groups(), stats(), supervised,
daemon_ping() (with a real shmbusd when meson passes its path)."""
import os
import signal
import subprocess
import time

import pytest

import shmbus
from waits import WAIT_S


def test_topics_and_info(bus):
    assert bus.topics() == []
    assert bus.create_topic("b.two", capacity=1 << 16, policy="overwrite", max_message=1000,
                            max_readers=8, max_publishers=4, max_groups=2) is True
    assert bus.create_topic("a.one") is True
    assert bus.topics() == ["a.one", "b.two"]
    assert bus.topic_info("b.two") == {
        "capacity": 1 << 16, "max_message": 1000, "policy": "overwrite", "max_readers": 8,
        "max_publishers": 4, "max_groups": 2, "max_pending": 256, "system": False}
    bus.remove_topic("a.one")
    assert bus.topics() == ["b.two"]


def test_stats_readers_groups(bus, topic):
    with bus.publisher(topic) as pub, bus.subscriber(topic) as fan, \
            bus.subscriber(topic, "g") as member:
        for i in range(10):
            pub.publish(b"12345678")
        for _ in range(4):
            fan.recv(timeout=1)
        member.recv(timeout=1)
        st = bus.topic_stats(topic)
        assert (st["published"], st["bytes"], st["readers"], st["publishers"]) == (10, 80, 2, 1)
        assert st["next_seq"] == 10
        readers = bus.readers(topic)
        assert [r["group"] for r in readers] == [None, "g"]
        assert all(r["pid"] == os.getpid() for r in readers)
        assert readers[0]["consumed"] == 4 and readers[0]["lag_msgs"] == 6
        groups = bus.groups(topic)
        assert len(groups) == 1
        g = groups[0]
        assert (g["name"], g["members"], g["lag_msgs"], g["lost"]) == ("g", 1, 9, 0)
        s = bus.stats()
        assert s["topics"] == 1 and s["published"] >= 0 and s["daemon_running"] is False


def test_many_readers_listed(bus):
    bus.create_topic("wide", capacity=1 << 16, max_readers=200)
    subs = [bus.subscriber("wide") for _ in range(100)]  # more than one call's room
    try:
        assert len(bus.readers("wide")) == 100
    finally:
        for s in subs:
            s.close()
    assert bus.readers("wide") == []


DAEMON = os.environ.get("SHMBUS_DAEMON")


@pytest.mark.skipif(not DAEMON, reason="run through meson test (passes shmbusd's path)")
def test_with_a_daemon(bus_name, tmp_path):
    root = os.environ["SHMBUS_DIR"]
    cfg = tmp_path / "shmbusd.conf"
    cfg.write_text(f"[bus]\nname = {bus_name}\ndir = {root}\n\n[topic orders]\n"
                   "capacity = 64K\n")
    log = open(tmp_path / "daemon.log", "w")
    d = subprocess.Popen([DAEMON, "--foreground", "--config", str(cfg)], stdout=log,
                         stderr=subprocess.STDOUT)
    try:
        with shmbus.Bus(bus_name) as probe:
            deadline = time.monotonic() + WAIT_S
            while True:
                try:
                    info = probe.daemon_ping(timeout=0.2)
                    break
                except (shmbus.NotFound, shmbus.Error):
                    assert d.poll() is None, (tmp_path / "daemon.log").read_text()
                    assert time.monotonic() < deadline, "shmbusd did not answer"
                    time.sleep(0.02)  # poll interval
            assert info["pid"] == d.pid
            assert isinstance(info["version"], str) and info["uptime_ms"] >= 0
        with shmbus.Bus(bus_name) as bus:
            assert bus.supervised is True
            info = bus.daemon_ping(timeout=2)
            assert info["clients"] >= 1
            st = bus.stats()
            assert st["daemon_pid"] == d.pid and st["daemon_running"] is True
            assert "orders" in bus.topics() and "$sys.log" in bus.topics()
            with bus.publisher("orders") as pub, bus.subscriber("orders") as sub:
                pub.publish(b"supervised")
                assert sub.recv(timeout=1).bytes() == b"supervised"
    finally:
        d.send_signal(signal.SIGTERM)
        d.wait(10)
        log.close()

# SPDX-License-Identifier: MIT
"""Fixtures of the bindings suite.

The whole session runs in a private bus root (SHMBUS_DIR) under /dev/shm, removed at the
end; each test gets a bus of its own in it, so tests cannot see each other's topics.
Child processes inherit SHMBUS_DIR. Run by `meson test --suite bindings`, which points
PYTHONPATH at the built module and passes the example programs' paths.
"""
import os
import shutil
import tempfile
import uuid

import pytest

import shmbus


@pytest.fixture(scope="session", autouse=True)
def shmbus_dir():
    d = tempfile.mkdtemp(prefix="shmbus-py-", dir="/dev/shm")
    old = os.environ.get("SHMBUS_DIR")
    os.environ["SHMBUS_DIR"] = d
    os.environ.pop("SHMBUS_BUS", None)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
        if old is None:
            os.environ.pop("SHMBUS_DIR", None)
        else:
            os.environ["SHMBUS_DIR"] = old


@pytest.fixture
def bus_name():
    return "py-" + uuid.uuid4().hex[:12]


@pytest.fixture
def bus(bus_name):
    with shmbus.Bus(bus_name) as b:
        yield b


@pytest.fixture
def topic(bus):
    """A 1 MiB block topic named 't' on the test's bus."""
    bus.create_topic("t", capacity=1 << 20)
    return "t"


@pytest.fixture
def helper_thread():
    """asyncio waits in a helper thread per reader, as where the kernel gives no fd (no
    io_uring futex wait), instead of on the reader's fd in the event loop."""
    old = shmbus._async_use_fd(False)
    try:
        yield
    finally:
        shmbus._async_use_fd(old)


@pytest.fixture(params=["fd", "thread"])
def async_wait(request):
    """Run the test in both ways asyncio waits: on the fd, and in a helper thread."""
    old = shmbus._async_use_fd(request.param == "fd")
    try:
        yield request.param
    finally:
        shmbus._async_use_fd(old)

# SPDX-License-Identifier: MIT
"""The payload format of the C example programs (examples/common.h), in Python.

struct ex_payload { uint32_t publisher; uint32_t size; uint64_t counter; } followed by
byte i = (publisher * 131 + counter * 7 + i) mod 256 for i from 16 to size - 1; type 1.
"""
import struct

HEADER = struct.Struct("<IIQ")
TYPE_DATA = 1


def fill(size, publisher, counter):
    base = (publisher * 131 + counter * 7) & 0xFF
    head = HEADER.pack(publisher, size, counter)
    # bytes(range(256)) rotated by base, repeated: byte i is (base + i) mod 256
    ring = bytes(range(256))
    ring = ring[base:] + ring[:base]
    body = (ring * (size // 256 + 2))[HEADER.size : size]
    return head + body


def check(data):
    """Return (publisher, counter) of a well-formed payload, else raise AssertionError."""
    data = bytes(data)
    assert len(data) >= HEADER.size, f"payload of {len(data)} bytes is too short"
    publisher, size, counter = HEADER.unpack_from(data)
    assert size == len(data), f"size field {size}, payload {len(data)}"
    assert data == fill(size, publisher, counter), f"pattern of counter {counter} damaged"
    return publisher, counter

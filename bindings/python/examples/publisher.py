#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""publisher.py: publish COUNT messages of SIZE bytes to TOPIC (creating it if needed).

Each message carries this publisher's id and counter and a pattern derived from both, the
format of the C examples (examples/common.h), so examples/subscriber (C) or subscriber.py
can check every byte. The bus is $SHMBUS_BUS (default "default") under $SHMBUS_DIR.

    publisher.py [--id N] [--batch N] [--wait-readers N] TOPIC COUNT SIZE
"""
import argparse
import struct
import sys
import time

import shmbus

HEADER = struct.Struct("<IIQ")  # publisher id, payload size, counter
TYPE_DATA = 1


def fill(size: int, publisher: int, counter: int) -> bytes:
    """The payload of message `counter`: byte i (after the header) is
    (publisher * 131 + counter * 7 + i) mod 256."""
    base = (publisher * 131 + counter * 7) & 0xFF
    ring = bytes(range(256))
    ring = ring[base:] + ring[:base]
    return HEADER.pack(publisher, size, counter) + (ring * (size // 256 + 2))[HEADER.size:size]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("topic")
    ap.add_argument("count", type=int)
    ap.add_argument("size", type=int)
    ap.add_argument("--id", type=int, default=1, help="publisher id written in each message")
    ap.add_argument("--batch", type=int, default=1, help="messages per publish_batch() call")
    ap.add_argument("--wait-readers", type=int, default=0,
                    help="first wait (up to 10 s) until the topic has this many readers")
    ap.add_argument("--capacity", type=int, default=1 << 20,
                    help="ring size if the topic is created")
    args = ap.parse_args()
    if args.size < HEADER.size:
        ap.error(f"size must be at least {HEADER.size}")

    with shmbus.Bus() as bus:
        bus.create_topic(args.topic, capacity=args.capacity)  # no-op if it exists alike
        with bus.publisher(args.topic) as pub:
            deadline = time.monotonic() + 10
            while bus.topic_stats(args.topic)["readers"] < args.wait_readers:
                if time.monotonic() > deadline:
                    sys.exit(f"publisher.py: fewer than {args.wait_readers} readers after 10 s")
                time.sleep(0.001)
            t0 = time.perf_counter()
            sent = 0
            while sent < args.count:
                n = min(args.batch, args.count - sent)
                if n == 1:
                    # zero-copy: build the message in place, in the ring
                    with pub.reserve(args.size, type=TYPE_DATA) as buf:
                        buf[:] = fill(args.size, args.id, sent)
                else:
                    msgs = [fill(args.size, args.id, sent + i) for i in range(n)]
                    n = pub.publish_batch(msgs, type=TYPE_DATA)
                sent += n
            secs = max(time.perf_counter() - t0, 1e-9)
    print(f"pub {args.id}: sent={sent} size={args.size} in {secs:.3f} s: "
          f"{sent / secs / 1e6:.3f} M msg/s")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""subscriber.py: read COUNT messages from TOPIC (creating it if needed) and check each.

Checks the payload format of the C examples (see publisher.py): every message whole, and
each publisher's counter rising by exactly one (a fan-out reader sees every message; with
--group, a member sees a rising share). Exits 1 if anything was wrong or missing.

    subscriber.py [--group NAME] [--timeout S] TOPIC COUNT
"""
import argparse
import struct
import sys
import time

import shmbus

HEADER = struct.Struct("<IIQ")
TYPE_DATA = 1


def expected(size: int, publisher: int, counter: int) -> bytes:
    base = (publisher * 131 + counter * 7) & 0xFF
    ring = bytes(range(256))
    ring = ring[base:] + ring[:base]
    return HEADER.pack(publisher, size, counter) + (ring * (size // 256 + 2))[HEADER.size:size]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("topic")
    ap.add_argument("count", type=int)
    ap.add_argument("--group", help="join this group (each message goes to one member)")
    ap.add_argument("--timeout", type=float, default=10.0,
                    help="fail if no message comes for this many seconds")
    ap.add_argument("--capacity", type=int, default=1 << 20,
                    help="ring size if the topic is created")
    args = ap.parse_args()

    errors = 0
    nxt: dict[int, int] = {}  # publisher id -> counter expected next
    with shmbus.Bus() as bus:
        bus.create_topic(args.topic, capacity=args.capacity)
        with bus.subscriber(args.topic, args.group) as sub:
            print("ready", flush=True)
            t0 = None
            for received in range(args.count):
                try:
                    msg = sub.recv(timeout=args.timeout)
                except shmbus.Timeout:
                    sys.exit(f"subscriber.py: timed out after {received} of {args.count}")
                if t0 is None:
                    t0 = time.perf_counter()
                data = msg.data  # a view into the ring, valid until the next recv
                publisher, size, counter = HEADER.unpack_from(data)
                want = nxt.get(publisher, 0)
                ok = (msg.type == TYPE_DATA and size == len(data)
                      and data == expected(size, publisher, counter)
                      and (counter == want if args.group is None else counter >= want))
                if not ok:
                    errors += 1
                    if errors <= 5:
                        print(f"bad message seq {msg.seq}: publisher {publisher} counter "
                              f"{counter} (expected {want})", file=sys.stderr)
                nxt[publisher] = counter + 1
            secs = max(time.perf_counter() - (t0 or 0), 1e-9)
    print(f"sub: received={args.count} errors={errors} publishers={len(nxt)} in "
          f"{secs:.3f} s: {args.count / secs / 1e6:.3f} M msg/s")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()

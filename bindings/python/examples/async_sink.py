#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""async_sink.py: read every topic PATTERN names (now, and as they are created) with
asyncio, printing a line per message with its topic; messages of type SKIP are filtered
out before they reach the loop.

    async_sink.py [--count N] [--skip TYPE] PATTERN...

Patterns are topic names or use '*' for one token and a last '>' for the rest:
async_sink.py 'orders.>' reads orders.eu, orders.eu.fr... Try it with: publisher.py
orders.eu 5 64 (or the shmbus tool: shmbus pub orders.eu hello).
"""
import argparse
import asyncio

import shmbus


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("patterns", nargs="+")
    ap.add_argument("--count", type=int, default=0, help="stop after this many (0: never)")
    ap.add_argument("--skip", type=int, default=None, help="a message type to filter out")
    args = ap.parse_args()
    skip: int | None = args.skip

    def keep(topic: str, type: int, data: memoryview) -> bool:
        return type != skip

    with shmbus.Bus() as bus, bus.sink(args.patterns, filter=keep) as sink:
        print(f"reading {', '.join(sink.topics()) or '(no topic yet)'}", flush=True)
        n = 0
        async for msg in sink:  # the loop waits on the sink's fd: no thread
            print(f"{msg.topic} seq={msg.seq} type={msg.type} len={len(msg)} "
                  f"{msg.data[:32].tobytes()!r}", flush=True)
            n += 1
            if n == args.count:
                break


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass

#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""async_subscriber.py: read TOPIC with asyncio, printing a line per message, while another
task prints a heartbeat to show that the event loop stays free while it waits.

    async_subscriber.py [--count N] TOPIC

Try it with: publisher.py TOPIC 5 64 (or the shmbus tool: shmbus pub TOPIC hello).
"""
import argparse
import asyncio

import shmbus


async def heartbeat() -> None:
    while True:
        await asyncio.sleep(1)
        print("(the loop is alive)", flush=True)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("topic")
    ap.add_argument("--count", type=int, default=0, help="stop after this many (0: never)")
    args = ap.parse_args()
    beat = asyncio.create_task(heartbeat())
    with shmbus.Bus() as bus:
        bus.create_topic(args.topic)
        with bus.subscriber(args.topic) as sub:
            n = 0
            async for msg in sub:  # the loop waits on the subscriber's fd, never blocks
                print(f"seq={msg.seq} type={msg.type} len={len(msg)} "
                      f"{msg.data[:32].tobytes()!r}", flush=True)
                n += 1
                if n == args.count:
                    break
    beat.cancel()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass

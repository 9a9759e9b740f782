#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench.py: shmbus from Python against the usual ways two Python processes talk.

    bench.py [--quick] [--runs N] [--seconds S] [--case NAME ...] [--json FILE] [--strict]

One producer process and one consumer process (pinned to different CPUs when there are
two), 64 B and 64 KiB messages, through:

  shmbus         Publisher.publish() / Subscriber.recv(), one message per call; the
                 consumer takes msg.data (a zero-copy view) and its length
  shmbus_copy    the same, but the consumer copies each payload out with msg.bytes()
                 (what the other peers hand their consumer: a bytes object)
  shmbus_batch   publish_batch() / recv_many() (copies) of 64 messages (64 B) or 4 (64 KiB:
                 at most 256 KiB a call), for reference
  mp_queue       multiprocessing.Queue(maxsize=1024): put() / get()
  mp_pipe        multiprocessing.Pipe(duplex=False): send_bytes() / recv_bytes()
  shm_lock       a ring of slots in multiprocessing.shared_memory, every access under a
                 multiprocessing.Lock, both sides polling
  redis          redis-py RPUSH / BLPOP on a redis-server this script starts on 127.0.0.1
                 (a free port) and stops; "absent" when redis-server or redis-py is missing

Each run lasts --seconds on the producer's side, then an end marker; the consumer's rate is
(messages - 1) / (last - first arrival). The cases are interleaved: every round runs each
case once, after one warm-up round, so that peers share the machine's state; the table shows
each case's median and spread (min .. max) over the rounds.

Targets, on the one-message-per-call `shmbus` case at 64 B: at least 1 M msg/s, and at least
20x mp_queue (the median of the per-round ratios). The share of the CPUs that other
processes used during each round is measured (/proc/stat less our own processes) and
printed; the targets are given over all rounds (what --strict judges) and, when some rounds
were disturbed, over the quiet ones too.

Also prints where the time of one publish and one recv goes, measured in one process (best
of three passes), and one JSON object per case and target, to stdout (`json: ` lines) and
to --json FILE.
"""
import argparse
import json
import multiprocessing
import os
import resource
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import shmbus

SIZES = [64, 64 << 10]
ALL_CASES = ["shmbus", "shmbus_copy", "shmbus_batch", "mp_queue", "mp_pipe", "shm_lock",
             "redis"]
BATCH = 64  # messages per publish_batch() / recv_many() call ...
BATCH_BYTES = 256 << 10  # ... but not more bytes than this: a claim of a large part of the
#                          ring makes the publisher wait for the reader to free all of it
now = time.perf_counter


def batch_len(size):
    return max(1, min(BATCH, BATCH_BYTES // max(size, 1)))


def pin(cpu):
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        os.sched_setaffinity(0, {cpus[cpu % len(cpus)]})


# ---- the peers: a producer and a consumer function each ------------------------------------
#
# produce(env, payload, seconds) sends payload until `seconds` passed, then an end marker,
# and returns how many it sent. consume(env) returns (count, first, last) with the
# perf_counter times of the first and last message. env is what setup() made.


def shmbus_setup(size):
    bus_name = "bench%d" % os.getpid()
    with shmbus.Bus(bus_name) as bus:
        bus.create_topic("bench", capacity=(8 << 20) if size > 4096 else (1 << 20),
                         max_message=max(size, 4096))
    return {"bus": bus_name, "size": size}


def shmbus_produce(env, payload, seconds, ready):
    with shmbus.Bus(env["bus"]) as bus, bus.publisher("bench") as pub:
        ready.wait()
        publish = pub.publish
        n = 0
        end = now() + seconds
        while True:
            for _ in range(1024):
                publish(payload)
            n += 1024
            if now() >= end:
                break
        publish(b"", type=1)
        return n


def shmbus_consume(env, ready, copy=False):
    with shmbus.Bus(env["bus"]) as bus, bus.subscriber("bench") as sub:
        ready.set()
        recv = sub.recv
        m = recv()
        first = now()
        n = 0
        if copy:
            while not m.type:
                m.bytes()
                n += 1
                m = recv()
        else:
            while not m.type:
                len(m.data)
                n += 1
                m = recv()
        return n, first, now()


def shmbus_copy_consume(env, ready):
    return shmbus_consume(env, ready, copy=True)


shmbus_copy_setup = shmbus_batch_setup = shmbus_setup
shmbus_copy_produce = shmbus_produce


def shmbus_batch_produce(env, payload, seconds, ready):
    with shmbus.Bus(env["bus"]) as bus, bus.publisher("bench") as pub:
        ready.wait()
        batch = [payload] * batch_len(len(payload))
        n = 0
        end = now() + seconds
        while now() < end:
            for _ in range(16):
                n += pub.publish_batch(batch)
        pub.publish(b"", type=1)
        return n


def shmbus_batch_consume(env, ready):
    k = batch_len(env["size"])
    with shmbus.Bus(env["bus"]) as bus, bus.subscriber("bench") as sub:
        ready.set()
        got = sub.recv_many(k)
        first = now()
        n = 0
        while True:
            # the end marker is the only empty payload
            if not got[-1]:
                n += len(got) - 1
                break
            n += len(got)
            got = sub.recv_many(k)
        return n, first, now()


def mp_queue_setup(size):
    return {"q": multiprocessing.Queue(maxsize=1024)}


def mp_queue_produce(env, payload, seconds, ready):
    ready.wait()
    put = env["q"].put
    n = 0
    end = now() + seconds
    while now() < end:
        for _ in range(64):
            put(payload)
        n += 64
    put(None)
    return n


def mp_queue_consume(env, ready):
    get = env["q"].get
    ready.set()
    m = get()
    first = now()
    n = 0
    while m is not None:
        n += 1
        m = get()
    return n, first, now()


def mp_pipe_setup(size):
    r, w = multiprocessing.Pipe(duplex=False)
    return {"r": r, "w": w}


def mp_pipe_produce(env, payload, seconds, ready):
    ready.wait()
    send = env["w"].send_bytes
    n = 0
    end = now() + seconds
    while now() < end:
        for _ in range(64):
            send(payload)
        n += 64
    send(b"")
    return n


def mp_pipe_consume(env, ready):
    recv = env["r"].recv_bytes
    ready.set()
    m = recv()
    first = now()
    n = 0
    while m:
        n += 1
        m = recv()
    return n, first, now()


SLOT_HDR = struct.Struct("<q")  # payload length, -1 = end
RING_HDR = struct.Struct("<QQ")  # head (next to write), tail (next to read)


def shm_lock_setup(size):
    from multiprocessing import shared_memory

    slots = 1024 if size <= 4096 else 64
    shm = shared_memory.SharedMemory(create=True,
                                     size=RING_HDR.size + slots * (SLOT_HDR.size + size))
    shm.buf[:RING_HDR.size] = RING_HDR.pack(0, 0)
    return {"shm": shm, "slots": slots, "size": size,
            "lock": multiprocessing.Lock()}


def shm_lock_produce(env, payload, seconds, ready):
    # (forked: the mapping, the lock and the resource tracker's entry are the parent's)
    buf, lock, slots = env["shm"].buf, env["lock"], env["slots"]
    stride = SLOT_HDR.size + env["size"]
    ready.wait()

    def put(data, length):
        while True:
            with lock:
                head, tail = RING_HDR.unpack_from(buf)
                if head - tail < slots:
                    off = RING_HDR.size + (head % slots) * stride
                    SLOT_HDR.pack_into(buf, off, length)
                    if length > 0:
                        buf[off + SLOT_HDR.size:off + SLOT_HDR.size + length] = data
                    RING_HDR.pack_into(buf, 0, head + 1, tail)
                    return

    n = 0
    plen = len(payload)
    end = now() + seconds
    while now() < end:
        for _ in range(64):
            put(payload, plen)
        n += 64
    put(b"", -1)
    del buf
    return n


def shm_lock_consume(env, ready):
    # (forked: the mapping, the lock and the resource tracker's entry are the parent's)
    buf, lock, slots = env["shm"].buf, env["lock"], env["slots"]
    stride = SLOT_HDR.size + env["size"]
    ready.set()
    n = 0
    first = None
    while True:
        with lock:
            head, tail = RING_HDR.unpack_from(buf)
            if head == tail:
                continue
            off = RING_HDR.size + (tail % slots) * stride
            (length,) = SLOT_HDR.unpack_from(buf, off)
            if length >= 0:
                bytes(buf[off + SLOT_HDR.size:off + SLOT_HDR.size + length])
            RING_HDR.pack_into(buf, 0, head, tail + 1)
        if length < 0:
            break
        if first is None:
            first = now()
        n += 1
    last = now()
    del buf
    return n, first, last


class Redis:
    """A redis-server of our own on 127.0.0.1, on a free port, without persistence."""

    def __init__(self):
        self.proc = None
        self.dir = None
        self.absent = None
        exe = shutil.which("redis-server")
        try:
            import redis  # noqa: F401
        except ImportError:
            self.absent = "redis-py (python3-redis) is not installed"
            return
        if not exe:
            self.absent = "redis-server is not installed"
            return
        self.dir = tempfile.mkdtemp(prefix="shmbus-bench-redis-")
        for _ in range(5):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
            self.proc = subprocess.Popen(
                [exe, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                 "--appendonly", "no", "--dir", self.dir, "--logfile", ""],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._wait_up():
                return
            self.stop()
        self.absent = "redis-server did not start"

    def _wait_up(self):
        import redis

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                redis.Redis(port=self.port).ping()
                return True
            except redis.exceptions.ConnectionError:
                time.sleep(0.02)
        return False

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


REDIS = None
REDIS_MAX_BACKLOG = 1000


def redis_setup(size):
    import redis

    key = "bench:%d:%d" % (os.getpid(), time.monotonic_ns())
    redis.Redis(port=REDIS.port).delete(key)
    return {"port": REDIS.port, "key": key}


def redis_produce(env, payload, seconds, ready):
    import redis

    r = redis.Redis(port=env["port"])
    key = env["key"]
    ready.wait()
    n = 0
    end = now() + seconds
    while now() < end:
        for _ in range(64):
            if r.rpush(key, payload) > REDIS_MAX_BACKLOG:
                while r.llen(key) > REDIS_MAX_BACKLOG // 2:
                    pass
        n += 64
    r.rpush(key, b"")
    return n


def redis_consume(env, ready):
    import redis

    r = redis.Redis(port=env["port"])
    key = env["key"]
    ready.set()
    m = r.blpop(key)[1]
    first = now()
    n = 0
    while m:
        n += 1
        m = r.blpop(key)[1]
    last = now()
    r.delete(key)
    return n, first, last


# ---- running a case ------------------------------------------------------------------------

def _child(fn, args, cpu, conn):
    pin(cpu)
    try:
        conn.send(("ok", fn(*args)))
    except BaseException as e:  # report, never hang the parent
        conn.send(("error", "%s: %s" % (type(e).__name__, e)))
    conn.close()


def run_case(name, size, seconds):
    """One run: returns messages per second at the consumer."""
    g = globals()
    env = g[name + "_setup"](size)
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    pr, pw = ctx.Pipe(duplex=False)
    cr, cw = ctx.Pipe(duplex=False)
    consumer = ctx.Process(target=_child, args=(g[name + "_consume"], (env, ready), 1, cw))
    producer = ctx.Process(target=_child,
                           args=(g[name + "_produce"], (env, payload, seconds, ready), 0, pw))
    consumer.start()
    producer.start()
    try:
        if not pr.poll(seconds + 60) or not cr.poll(60):
            raise RuntimeError(f"{name} {size} B: a side did not finish")
        ps, sent = pr.recv()
        cs, got = cr.recv()
    finally:
        for p in (producer, consumer):
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
        if "shm" in env:
            env["shm"].close()
            env["shm"].unlink()
        if "bus" in env:
            with shmbus.Bus(env["bus"]) as bus:
                path = bus.path
            shutil.rmtree(path, ignore_errors=True)
    if ps != "ok" or cs != "ok":
        raise RuntimeError(f"{name} {size} B: producer {sent}, consumer {got}")
    n, first, last = got
    if n != sent:
        raise RuntimeError(f"{name} {size} B: sent {sent}, received {n}")
    return (n - 1) / max(last - first, 1e-9)


# ---- where the time goes ---------------------------------------------------------------------

def profile(n=200_000):
    """ns per iteration of the pieces of a publish + recv, in one process (no peer)."""
    out = {}
    bus_name = "benchprof%d" % os.getpid()
    with shmbus.Bus(bus_name) as bus:
        bus.create_topic("alone", capacity=1 << 22)  # no reader: publish never waits
        bus.create_topic("pair", capacity=1 << 22)
        payload = bytes(64)
        with bus.publisher("alone") as lone, bus.publisher("pair") as pub, \
                bus.subscriber("pair") as sub:
            publish, recv = pub.publish, sub.recv

            def loop():
                for _ in range(n):
                    pass

            def pub_only():
                p = lone.publish
                for _ in range(n):
                    p(payload)

            def pub_recv():
                for _ in range(n):
                    publish(payload)
                    recv()

            def pub_recv_data():
                for _ in range(n):
                    publish(payload)
                    len(recv().data)

            def pub_recv_bytes():
                for _ in range(n):
                    publish(payload)
                    recv().bytes()

            def recv_many():
                for _ in range(n // BATCH):
                    pub.publish_batch([payload] * BATCH)
                    sub.recv_many(BATCH)

            for rep in range(4):  # the first pass warms up; the least disturbed is kept
                for label, fn in [("python loop", loop),
                                  ("publish", pub_only),
                                  ("publish + recv", pub_recv),
                                  ("publish + recv + len(msg.data)", pub_recv_data),
                                  ("publish + recv + msg.bytes()", pub_recv_bytes),
                                  ("publish_batch + recv_many, per msg", recv_many)]:
                    t0 = now()
                    fn()
                    ns = (now() - t0) / n * 1e9
                    if rep:
                        out[label] = min(out.get(label, ns), ns)
        path = bus.path
    shutil.rmtree(path, ignore_errors=True)
    return out


# ---- how busy the rest of the machine was ----------------------------------------------------

HZ = os.sysconf("SC_CLK_TCK")


def machine_busy():
    """CPU seconds all processes of the machine have used so far (from /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / HZ


def own_busy():
    """CPU seconds this benchmark used so far: itself, its finished children, redis."""
    t = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        t += ru.ru_utime + ru.ru_stime
    if REDIS and REDIS.proc:
        try:
            with open(f"/proc/{REDIS.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            t += (int(fields[11]) + int(fields[12])) / HZ
        except OSError:
            pass
    return t


class ForeignLoad:
    """The share of the machine's CPUs that other processes used during a stretch."""

    def __enter__(self):
        self.t0, self.m0, self.o0 = time.monotonic(), machine_busy(), own_busy()
        return self

    def __exit__(self, *exc):
        wall = time.monotonic() - self.t0
        other = (machine_busy() - self.m0) - (own_busy() - self.o0)
        self.share = max(0.0, other / (wall * os.cpu_count()))


QUIET = 0.10  # a round is quiet if other processes used less than this share of the CPUs


# ---- main ----------------------------------------------------------------------------------

def human(v):
    if v >= 1e6:
        return "%.2f M" % (v / 1e6)
    if v >= 1e3:
        return "%.1f k" % (v / 1e3)
    return "%.0f" % v


def size_name(size):
    return "%d KiB" % (size >> 10) if size >= 1024 else "%d B" % size


def main():
    global REDIS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short runs (well under a minute)")
    ap.add_argument("--runs", type=int, help="rounds after the warm-up (default 5, quick 3)")
    ap.add_argument("--seconds", type=float,
                    help="producer time per run (default 1.0, quick 0.25)")
    ap.add_argument("--case", action="append", choices=ALL_CASES, help="only these cases")
    ap.add_argument("--json", help="also write the JSON objects to this file")
    ap.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = ap.parse_args()
    runs = args.runs or (3 if args.quick else 5)
    seconds = args.seconds or (0.25 if args.quick else 1.0)
    cases = args.case or ALL_CASES

    own_dir = None
    if not os.environ.get("SHMBUS_DIR"):
        own_dir = os.environ["SHMBUS_DIR"] = tempfile.mkdtemp(prefix="shmbus-bench-",
                                                              dir="/dev/shm")
    t_start = time.monotonic()
    absent = {}
    if "redis" in cases:
        REDIS = Redis()
        if REDIS.absent:
            absent["redis"] = REDIS.absent
    live = [c for c in cases if c not in absent]
    rates = {(c, s): [] for c in live for s in SIZES}
    foreign = []  # per round: the share of the CPUs other processes used
    print(f"bench.py: {len(live)} cases x {len(SIZES)} sizes, 1 warm-up + {runs} rounds of "
          f"{seconds} s; python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"shmbus {shmbus.__version__}", flush=True)
    try:
        for rnd in range(runs + 1):
            with ForeignLoad() as load:
                for size in SIZES:
                    for c in live:
                        r = run_case(c, size, seconds)
                        if rnd > 0:
                            rates[(c, size)].append(r)
            if rnd > 0:
                foreign.append(load.share)
            print(f"  round {rnd}/{runs} done" + (" (warm-up)" if rnd == 0 else "") +
                  f"; other processes used {load.share:.0%} of the CPUs meanwhile",
                  flush=True)
        prof = profile(50_000 if args.quick else 200_000)
    finally:
        if REDIS:
            REDIS.stop()
        if own_dir:
            shutil.rmtree(own_dir, ignore_errors=True)

    records = []
    print()
    print(f"{'case':<14} {'size':>7} {'msgs/s median':>14} {'spread (min .. max)':>22} "
          f"{'MB/s':>8} {'vs mp_queue':>12}")
    for size in SIZES:
        q = rates.get(("mp_queue", size))
        for c in cases:
            if c in absent:
                print(f"{c:<14} {size_name(size):>7} {'absent':>14}   ({absent[c]})")
                records.append({"case": c, "size": size, "absent": absent[c]})
                continue
            v = rates[(c, size)]
            med = statistics.median(v)
            ratio = (statistics.median([a / b for a, b in zip(v, q)]) if q else None)
            print(f"{c:<14} {size_name(size):>7} {human(med):>14} "
                  f"{human(min(v)) + ' .. ' + human(max(v)):>22} "
                  f"{med * size / 1e6:>8.0f} "
                  f"{('%.1fx' % ratio) if ratio else '-':>12}")
            records.append({"case": c, "size": size, "msgs_per_s_median": med,
                            "msgs_per_s_min": min(v), "msgs_per_s_max": max(v),
                            "runs": v, "ratio_vs_mp_queue": ratio})
        print()

    print("where the time goes (one process, 64 B, ns per iteration, best of 3):")
    for k, v in prof.items():
        print(f"  {k:<34} {v:7.0f}")
    records.append({"profile_ns": prof})
    print()

    quiet = [i for i, f in enumerate(foreign) if f < QUIET]
    print("other processes' share of the CPUs, round by round: " +
          ", ".join("%.0f%%" % (f * 100) for f in foreign) +
          f" ({len(quiet)} of {len(foreign)} rounds quiet, under {QUIET:.0%})")
    records.append({"foreign_cpu_share": foreign})
    missed = []
    targets = []
    one = rates.get(("shmbus", 64))
    q = rates.get(("mp_queue", 64))
    for label, rounds in [("all rounds", range(len(foreign))), ("quiet rounds", quiet)]:
        if not one or not rounds or (label == "quiet rounds" and len(quiet) == len(foreign)):
            continue
        sel = [one[i] for i in rounds]
        med = statistics.median(sel)
        targets.append((f"shmbus 64 B >= 1 M msg/s, one message per call ({label})", med,
                        1e6, "%s msg/s" % human(med), label))
        if q:
            ratio = statistics.median([one[i] / q[i] for i in rounds])
            targets.append((f"shmbus 64 B >= 20x mp_queue ({label})", ratio, 20.0,
                            "%.1fx" % ratio, label))
    for what, got, want, shown, label in targets:
        ok = got >= want
        print(f"target {what}: {shown}: {'MET' if ok else 'MISSED'}")
        records.append({"target": what, "value": got, "goal": want, "met": ok})
        if not ok and label == "all rounds":
            missed.append(what)
    print(f"bench.py: {time.monotonic() - t_start:.0f} s")
    for r in records:
        print("json: " + json.dumps(r))
    if args.json:
        with open(args.json, "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
    if args.strict and missed:
        sys.exit(1)


if __name__ == "__main__":
    main()

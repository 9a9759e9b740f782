#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Real WebSocket peers for the bridge tests (python3-websockets from Debian, run with
/usr/bin/python3), and raw-socket clients that break the protocol on purpose.

  ws_peer.py server PORT OUT [--ack]     a server a mirror connects to: writes one line
                                         per message to OUT ("conn" per connection), and
                                         with --ack sends {"topic","ack"} back
  ws_peer.py sub URL N OUT               subscribe, print "ready", write N messages to OUT
  ws_peer.py pub URL TAG N               publish N binary messages payload(TAG, i)
  ws_peer.py slow URL                    subscribe, print "ready", read nothing until
                                         SIGUSR1, then read until closed; print
                                         "closed CODE COUNT"
  ws_peer.py raw PORT CASE               one protocol violation; prints what came back
  ws_peer.py badserver PORT              a server that answers each connection wrongly, in
                                         turn: 200, a wrong accept key, 10 KiB of headers,
                                         then a good 101 followed by a garbage frame; it
                                         takes the next connection after a SIGUSR1

Lines in OUT: "TOPIC SEQ LOST OK" where OK says whether the payload is payload(tag, seq)
(tag from the topic: see TAGS), so the C side checks order and contents.

No peer sleeps for another process: each waits for what it needs (a reply, the peer closing,
a signal from the test), at most DEADLINE seconds, which the test's own deadline exceeds.
"""
import asyncio
import base64
import json
import os
import signal
import socket
import struct
import sys
import time

import websockets

M64 = (1 << 64) - 1
TAGS = {"ws.a": 1, "ws.b": 2, "cmd.x": 3, "ws.big": 4, "wsm.a": 5, "wsm.b": 6, "wsb.t": 7}
DEADLINE = 30.0  # seconds; BT_DEADLINE_MS in bridge_helpers.h is longer


def rand(state):
    """splitmix64, as t_rand() in tests/lib/test.h: returns (value, new state)."""
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31), state


def payload(tag, seq):
    """bt_payload() of tests/bridge/bridge_helpers.h."""
    n = 8 + (seq * 7 + tag) % 120
    out = bytearray(struct.pack("<Q", seq))
    s = (seq * 0x9E3779B97F4A7C15 + tag) & M64
    for _ in range(8, n):
        v, s = rand(s)
        out.append(v >> 56)
    return bytes(out)


def big_payload(seq):
    """The messages of wsbig.t in ws_mirror.c: 32 KiB, seq then its low byte repeated."""
    return struct.pack("<Q", seq) + bytes([seq & 0xFF]) * (32768 - 8)


def line_for(msg, topic_hint=None):
    if isinstance(msg, str):
        e = json.loads(msg)
        data = base64.b64decode(e["data"])
        tag = TAGS.get(e["topic"], 0)
        return "%s %d %d %d" % (e["topic"], e["seq"], e.get("lost", 0),
                                int(data == payload(tag, e["seq"])))
    seq = struct.unpack("<Q", msg[:8])[0] if len(msg) >= 8 else -1
    if topic_hint == "wsbig.t":
        return "%s %d 0 %d" % (topic_hint, seq, int(msg == big_payload(seq)))
    tag = TAGS.get(topic_hint, 0)
    return "%s %d 0 %d" % (topic_hint or "-", seq, int(msg == payload(tag, seq)))


async def server(port, out, ack, binary_topic):
    f = open(out, "a", buffering=1)

    async def handler(ws, path=None):
        f.write("conn\n")
        async for msg in ws:
            f.write(line_for(msg, binary_topic) + "\n")
            if ack and isinstance(msg, str):
                e = json.loads(msg)
                await ws.send(json.dumps({"topic": e["topic"], "ack": e["seq"]}))

    async with websockets.serve(handler, "127.0.0.1", port, max_size=None):
        print("ready", flush=True)
        await asyncio.Future()


async def sub(url, n, out):
    with open(out, "w") as f:
        async with websockets.connect(url, max_size=None, open_timeout=DEADLINE) as ws:
            print("ready", flush=True)
            for _ in range(n):
                msg = await asyncio.wait_for(ws.recv(), DEADLINE)
                f.write(line_for(msg) + "\n")


async def pub(url, tag, n):
    async with websockets.connect(url, open_timeout=DEADLINE) as ws:
        for i in range(n):
            await ws.send(payload(tag, i))
        # A fragmented message (three frames) goes in as one.
        await ws.send([b"frag", b"ment", b"ed"])
        await ws.send("text é")
    print("sent", n + 2, flush=True)


async def slow(url):
    go = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, go.set)
    async with websockets.connect(url, max_size=None, max_queue=1, read_limit=4096,
                                  ping_interval=None, open_timeout=DEADLINE) as ws:
        # Read nothing: the kernel buffers fill, then the bridge's queue, then the topic
        # laps the subscription. The test says when that has happened.
        ws.transport.pause_reading()
        print("ready", flush=True)
        await asyncio.wait_for(go.wait(), 2 * DEADLINE)
        ws.transport.resume_reading()
        count = 0
        try:
            while True:
                await asyncio.wait_for(ws.recv(), DEADLINE)
                count += 1
        except websockets.ConnectionClosed as e:
            print("closed %s %d" % (e.code, count), flush=True)
            return
    print("closed none %d" % count, flush=True)


# ---- raw clients: protocol violations -------------------------------------------------

KEY = base64.b64encode(os.urandom(16)).decode()


def request(path="/topics/ws.a", extra="", version="13", key=None, method="GET"):
    key = KEY if key is None else key
    return ("%s %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: %s\r\n%s\r\n"
            % (method, path, key, version, extra)).encode()


def frame(opcode, data, fin=True, mask=True):
    b0 = (0x80 if fin else 0) | opcode
    n = len(data)
    if n < 126:
        hdr = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return hdr + data
    m = os.urandom(4)
    return hdr + m + bytes(c ^ m[i % 4] for i, c in enumerate(data))


def read_until(s, done, limit=1 << 20):
    """Read until done(what came so far) is true, the peer closes or resets, or DEADLINE."""
    end = time.monotonic() + DEADLINE
    buf = b""
    try:
        while len(buf) < limit and not done(buf):
            s.settimeout(max(0.01, end - time.monotonic()))
            d = s.recv(65536)
            if not d:
                break
            buf += d
    except (socket.timeout, ConnectionResetError):
        pass
    return buf


def status_line(buf):
    return b"\r\n" in buf


def head_done(buf):
    return b"\r\n\r\n" in buf


def frames(buf):
    """The complete frames the server sent after its 101 response: [(opcode, payload)]."""
    i = buf.find(b"\r\n\r\n")
    b = buf[i + 4:] if i >= 0 else b""
    out = []
    while len(b) >= 2:
        op = b[0] & 0x0F
        n = b[1] & 0x7F
        off = 2
        if n == 126:
            if len(b) < 4:
                break
            n = struct.unpack("!H", b[2:4])[0]
            off = 4
        elif n == 127:
            if len(b) < 10:
                break
            n = struct.unpack("!Q", b[2:10])[0]
            off = 10
        if len(b) < off + n:
            break
        out.append((op, b[off:off + n]))
        b = b[off + n:]
    return out


def close_code(buf):
    """The close frame's code in what the server sent after its 101 response."""
    for op, data in frames(buf):
        if op == 8:
            return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
    return None


def raw(port, case):
    s = socket.create_connection(("127.0.0.1", port))
    if case == "oversize":
        # 9 KiB of headers and no blank line yet: past max_header (8 KiB).
        s.sendall(b"GET /topics/ws.a HTTP/1.1\r\nHost: x\r\n" +
                  b"".join(b"X-Pad-%d: " % i + b"b" * 3000 + b"\r\n" for i in range(3)))
        out = read_until(s, status_line)
        print(out.split(b"\r\n")[0].decode())
    elif case == "longline":
        s.sendall(b"GET /topics/ws.a HTTP/1.1\r\nX-Long: " + b"e" * 5000 + b"\r\n\r\n")
        print(read_until(s, status_line).split(b"\r\n")[0].decode())
    elif case in ("version", "nokey", "post", "path", "notws", "forbidden", "nohost"):
        req = {"version": request(version="8"),
               "nokey": request(key="short"),
               "post": request(method="POST"),
               "path": request(path="/elsewhere"),
               "notws": b"GET /topics/ws.a HTTP/1.1\r\nHost: x\r\n\r\n",
               "forbidden": request(path="/publish/ws.a"),
               "nohost": request().replace(b"Host: x\r\n", b"")}[case]
        s.sendall(req)
        print(read_until(s, status_line).split(b"\r\n")[0].decode())
    elif case == "slowloris":
        s.sendall(b"GET /topics/ws.a HTTP/1.1\r\nHost: x\r\n")
        t0 = time.time()
        out = read_until(s, status_line)
        print("%s after %.1f s" % (out.split(b"\r\n")[0].decode(), time.time() - t0))
    elif case in ("garbage", "unmasked", "badutf8", "badopcode", "toobig", "subpub"):
        path = "/publish/cmd.x" if case in ("badutf8", "toobig") else "/topics/ws.a"
        s.sendall(request(path=path))
        # Frames once the 101 came: the server reads them as frames from then on.
        head = read_until(s, head_done)
        data = {"garbage": bytes([0x8F, 0xFF]) + os.urandom(64),
                "unmasked": frame(2, b"hello", mask=False),
                "badutf8": frame(1, b"\xc3\x28 invalid"),
                "badopcode": frame(3, b"reserved opcode"),
                "toobig": frame(2, b"x" * 70000),
                "subpub": frame(2, b"not for publishing here")}[case]
        s.sendall(data)
        rest = read_until(s, lambda b: close_code(head + b) is not None)
        print("close", close_code(head + rest))
    elif case == "ping":
        s.sendall(request())
        head = read_until(s, head_done)
        s.sendall(frame(9, b"are you there"))
        rest = read_until(s, lambda b: len(frames(head + b)) > 0)
        got = frames(head + rest)
        print("pong" if got and got[0] == (0xA, b"are you there") else
              "no pong: %r" % (got[:2] or (head + rest)[-40:]))
    s.close()


def badserver(port):
    # SIGUSR1 from the test: it has seen the last failure; answer the next connection.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(8)
    print("ready", flush=True)
    for case in ("status", "accept", "oversize", "frames"):
        c, _ = ls.accept()
        req = read_until(c, head_done)
        key = [l.split(b":", 1)[1].strip() for l in req.split(b"\r\n")
               if l.lower().startswith(b"sec-websocket-key:")]
        import hashlib
        acc = base64.b64encode(hashlib.sha1(key[0] + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                               .digest()) if key else b""
        if case == "status":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        elif case == "accept":
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n")
        elif case == "oversize":
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\n" +
                      b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 1000) for i in range(10)))
        else:
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n" +
                      bytes([0x8F, 0xFF]) + os.urandom(32))
        read_until(c, lambda b: False)  # until the mirror gives up on it
        c.close()
        # One failure at a time: the test reads each one's reason in the mirror's counters.
        if signal.sigtimedwait({signal.SIGUSR1}, 2 * DEADLINE) is None:
            sys.exit("badserver: no SIGUSR1 after case " + case)
    print("done", flush=True)


def main():
    mode = sys.argv[1]
    if mode == "server":
        binary_topic = os.environ.get("WS_BINARY_TOPIC")
        asyncio.run(server(int(sys.argv[2]), sys.argv[3], "--ack" in sys.argv, binary_topic))
    elif mode == "sub":
        asyncio.run(sub(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    elif mode == "pub":
        asyncio.run(pub(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    elif mode == "slow":
        asyncio.run(slow(sys.argv[2]))
    elif mode == "raw":
        raw(int(sys.argv[2]), sys.argv[3])
    elif mode == "badserver":
        badserver(int(sys.argv[2]))
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()

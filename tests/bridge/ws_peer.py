#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Real WebSocket peers for the bridge tests (python3-websockets from Debian, run with
/usr/bin/python3), and raw-socket clients that break the protocol on purpose.

  ws_peer.py server PORT OUT [--ack]     a server a mirror connects to: writes one line
                                         per message to OUT ("conn" per connection), and
                                         with --ack sends {"topic","ack"} back
  ws_peer.py sub URL N OUT               subscribe, print "ready", write N messages to OUT
  ws_peer.py pub URL TAG N               publish N binary messages payload(TAG, i)
  ws_peer.py slow URL SECONDS            subscribe, read nothing for SECONDS, then read until
                                         closed; print "closed CODE COUNT"
  ws_peer.py raw PORT CASE               one protocol violation; prints what came back
  ws_peer.py badserver PORT              a server that answers each connection wrongly, in
                                         turn: 200, a wrong accept key, 10 KiB of headers,
                                         then a good 101 followed by a garbage frame

Lines in OUT: "TOPIC SEQ LOST OK" where OK says whether the payload is payload(tag, seq)
(tag from the topic: see TAGS), so the C side checks order and contents.
"""
import asyncio
import base64
import json
import os
import socket
import struct
import sys
import time

import websockets

M64 = (1 << 64) - 1
TAGS = {"ws.a": 1, "ws.b": 2, "cmd.x": 3, "ws.big": 4, "wsm.a": 5, "wsm.b": 6, "wsb.t": 7}


def rand(state):
    """splitmix64, as t_rand() in tests/helpers.h: returns (value, new state)."""
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


def line_for(msg, topic_hint=None):
    if isinstance(msg, str):
        e = json.loads(msg)
        data = base64.b64decode(e["data"])
        tag = TAGS.get(e["topic"], 0)
        return "%s %d %d %d" % (e["topic"], e["seq"], e.get("lost", 0),
                                int(data == payload(tag, e["seq"])))
    seq = struct.unpack("<Q", msg[:8])[0] if len(msg) >= 8 else -1
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
        async with websockets.connect(url, max_size=None) as ws:
            print("ready", flush=True)
            for _ in range(n):
                msg = await asyncio.wait_for(ws.recv(), 20)
                f.write(line_for(msg) + "\n")


async def pub(url, tag, n):
    async with websockets.connect(url) as ws:
        for i in range(n):
            await ws.send(payload(tag, i))
        # A fragmented message (three frames) goes in as one.
        await ws.send([b"frag", b"ment", b"ed"])
        await ws.send("text é")
    print("sent", n + 2, flush=True)


async def slow(url, seconds):
    async with websockets.connect(url, max_size=None, max_queue=1, read_limit=4096,
                                  ping_interval=None) as ws:
        print("ready", flush=True)
        # Read nothing: the kernel buffers fill, then the bridge's queue.
        ws.transport.pause_reading()
        await asyncio.sleep(seconds)
        ws.transport.resume_reading()
        count = 0
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
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


def read_all(s, limit=1 << 20, timeout=3.0):
    s.settimeout(timeout)
    buf = b""
    try:
        while len(buf) < limit:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    except (socket.timeout, ConnectionResetError):
        pass
    return buf


def close_code(buf):
    """The close frame's code in what the server sent after its 101 response."""
    i = buf.find(b"\r\n\r\n")
    b = buf[i + 4:] if i >= 0 else b""
    while len(b) >= 2:
        op = b[0] & 0x0F
        n = b[1] & 0x7F
        off = 2
        if n == 126:
            n = struct.unpack("!H", b[2:4])[0]
            off = 4
        elif n == 127:
            n = struct.unpack("!Q", b[2:10])[0]
            off = 10
        if op == 8:
            return struct.unpack("!H", b[off:off + 2])[0] if n >= 2 else 1005
        b = b[off + n:]
    return None


def raw(port, case):
    s = socket.create_connection(("127.0.0.1", port))
    if case == "oversize":
        # 9 KiB of headers and no blank line yet: past max_header (8 KiB).
        s.sendall(b"GET /topics/ws.a HTTP/1.1\r\nHost: x\r\n" +
                  b"".join(b"X-Pad-%d: " % i + b"b" * 3000 + b"\r\n" for i in range(3)))
        out = read_all(s)
        print(out.split(b"\r\n")[0].decode())
    elif case == "longline":
        s.sendall(b"GET /topics/ws.a HTTP/1.1\r\nX-Long: " + b"e" * 5000 + b"\r\n\r\n")
        print(read_all(s).split(b"\r\n")[0].decode())
    elif case in ("version", "nokey", "post", "path", "notws", "forbidden", "nohost"):
        req = {"version": request(version="8"),
               "nokey": request(key="short"),
               "post": request(method="POST"),
               "path": request(path="/elsewhere"),
               "notws": b"GET /topics/ws.a HTTP/1.1\r\nHost: x\r\n\r\n",
               "forbidden": request(path="/publish/ws.a"),
               "nohost": request().replace(b"Host: x\r\n", b"")}[case]
        s.sendall(req)
        print(read_all(s).split(b"\r\n")[0].decode())
    elif case == "slowloris":
        s.sendall(b"GET /topics/ws.a HTTP/1.1\r\nHost: x\r\n")
        t0 = time.time()
        out = read_all(s, timeout=10)
        print("%s after %.1f s" % (out.split(b"\r\n")[0].decode(), time.time() - t0))
    elif case in ("garbage", "unmasked", "badutf8", "badopcode", "toobig", "subpub"):
        path = "/publish/cmd.x" if case in ("badutf8", "toobig") else "/topics/ws.a"
        s.sendall(request(path=path))
        time.sleep(0.1)
        data = {"garbage": bytes([0x8F, 0xFF]) + os.urandom(64),
                "unmasked": frame(2, b"hello", mask=False),
                "badutf8": frame(1, b"\xc3\x28 invalid"),
                "badopcode": frame(3, b"reserved opcode"),
                "toobig": frame(2, b"x" * 70000),
                "subpub": frame(2, b"not for publishing here")}[case]
        s.sendall(data)
        print("close", close_code(read_all(s)))
    elif case == "ping":
        s.sendall(request())
        time.sleep(0.1)
        s.sendall(frame(9, b"are you there"))
        buf = read_all(s, timeout=1.0)
        i = buf.find(b"\r\n\r\n")
        b = buf[i + 4:]
        print("pong" if len(b) >= 2 and b[0] == 0x8A and b[2:2 + (b[1] & 0x7F)] ==
              b"are you there" else "no pong: %r" % b[:40])
    s.close()


def badserver(port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(8)
    print("ready", flush=True)
    for case in ("status", "accept", "oversize", "frames"):
        c, _ = ls.accept()
        req = b""
        c.settimeout(5)
        while b"\r\n\r\n" not in req:
            d = c.recv(4096)
            if not d:
                break
            req += d
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
        read_all(c, timeout=3)
        c.close()
        time.sleep(0.3)  # one failure at a time, long enough to be seen
    print("done", flush=True)
    time.sleep(30)


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
        asyncio.run(slow(sys.argv[2], float(sys.argv[3])))
    elif mode == "raw":
        raw(int(sys.argv[2]), sys.argv[3])
    elif mode == "badserver":
        badserver(int(sys.argv[2]))
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()

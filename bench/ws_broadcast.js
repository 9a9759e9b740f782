// SPDX-License-Identifier: MIT
//
// The bridge benchmark's peer: a broadcast server written the usual way with node's `ws`
// package. When CLIENTS clients are connected it sends COUNT binary messages of SIZE bytes
// to each of them, as fast as the sockets take them (it waits for 'drain' when a client's
// buffer passes 1 MiB, as a server that must not grow without bound does).
//   node ws_broadcast.js NODE_MODULES_DIR PORT CLIENTS COUNT SIZE
'use strict';
const path = require('path');
const [modules, port, clients, count, size] = process.argv.slice(2);
const { WebSocketServer } = require(path.join(modules, 'node_modules', 'ws'));

const want = Number(clients), total = Number(count);
const payload = Buffer.alloc(Number(size), 'x');
const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(port), perMessageDeflate: false });

function congested() {
  for (const c of wss.clients)
    if (c.bufferedAmount > (1 << 20))
      return c;
  return null;
}

async function broadcast() {
  for (let i = 0; i < total; i++) {
    for (const c of wss.clients)
      c.send(payload, { binary: true });
    if ((i & 63) === 63) {
      let c;
      while ((c = congested()))
        await new Promise((r) => c._socket.once('drain', r));
    }
  }
}

wss.on('listening', () => console.log('ready'));
wss.on('connection', () => {
  if (wss.clients.size === want)
    broadcast().catch((e) => { console.error(e); process.exit(1); });
});

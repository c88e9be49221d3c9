#!/usr/bin/env node
// A target for the benchmark, in its own process: `node bench/server.js reference|core <port>`.
// Prints "ready <port>" once listening.
'use strict';
const net = require('node:net');

const [kind, portText] = process.argv.slice(2);
const port = Number(portText);

if (kind === 'reference') {
  // The machine's limit for this load: answers every chunk with None, parses nothing.
  const NONE = Buffer.from('None');
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => {});
    socket.on('data', () => socket.write(NONE));
  });
  server.listen(port, '127.0.0.1', () => console.log(`ready ${port}`));
} else if (kind === 'core') {
  const { TcpmqBroker } = require('../dist');
  const broker = new TcpmqBroker({ host: '0.0.0.0', port, maxConnections: 20000, offlineAfter: 30, idleTimeout: 120 });
  broker.on('state', (status) => {
    if (status.state === 'listening') console.log(`ready ${status.port}`);
    if (status.state === 'error') console.error(status.error);
  });
  broker.start();
} else {
  console.error('usage: server.js reference|core <port>');
  process.exit(2);
}
process.on('SIGTERM', () => process.exit(0));

#!/usr/bin/env node
// `npm run simulate`: simulated ESP8266 sensors that speak TCPMQ exactly as the
// field client does: every interval `[id, want, "60x"]` as one send, one recv,
// `None` replies counted, "device X offline" printed after 8 in a row.
// Some of them drop off now and then and come back, so offline alerts fire.
//
//   npm run simulate -- [--devices 3] [--host 127.0.0.1] [--port 9999] [--interval 2]
//                       [--droppers 1] [--online 40] [--offline 40] [--quiet]
'use strict';
const net = require('node:net');
const { parseArgs } = require('node:util');

const { values: options } = parseArgs({
  options: {
    devices: { type: 'string', default: '3' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '9999' },
    interval: { type: 'string', default: '2' },
    droppers: { type: 'string', default: '1' },
    online: { type: 'string', default: '40' },
    offline: { type: 'string', default: '40' },
    quiet: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (options.help) {
  console.log(`Simulated ESP8266 TCPMQ sensors.

  --devices N     how many boards (ids 1..N; each reads the next one's mailbox)   [3]
  --host H        broker address                                                  [127.0.0.1]
  --port P        broker port                                                     [9999]
  --interval S    seconds between reports                                         [2]
  --droppers K    how many boards (the last K) go silent now and then             [1]
  --online S      seconds a dropper stays online before it drops off              [40]
  --offline S     seconds a dropper stays silent before it comes back             [40]
  --quiet         print only offline / back online / connection changes`);
  process.exit(0);
}

const count = positive('devices');
const interval = positive('interval') * 1000;
const droppers = Math.min(count, Math.max(0, Number(options.droppers) || 0));
const onlineMs = positive('online') * 1000;
const offlineMs = positive('offline') * 1000;
const port = positive('port');
/** The field client's threshold: this many `None` replies in a row means the peer is offline. */
const OFFLINE_AFTER_NONES = 8;

function positive(name) {
  const value = Number(options[name]);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`simulate: --${name} must be a positive number (got ${options[name]})`);
    process.exit(2);
  }
  return value;
}

const boards = [];

class Board {
  constructor(id, want, drops) {
    this.id = id;
    this.want = want;
    this.drops = drops;
    this.nones = 0;
    this.socket = undefined;
    this.timer = undefined;
    this.silentUntil = 0;
    this.nextDrop = drops ? Date.now() + onlineMs : Infinity;
    this.waiting = false;
  }

  connect() {
    const socket = net.connect({ host: options.host, port });
    this.socket = socket;
    socket.setTimeout(8000); // as the field client's settimeout(8)
    socket.on('connect', () => say(`device ${this.id} connected to ${options.host}:${port}`));
    socket.on('data', (reply) => this.onReply(reply.toString('utf8')));
    socket.on('timeout', () => socket.destroy(new Error('no reply within 8 s')));
    socket.on('error', (err) => say(`device ${this.id}: ${err.message}`));
    socket.on('close', () => {
      this.socket = undefined;
      this.waiting = false;
    });
  }

  tick() {
    const now = Date.now();
    if (now >= this.nextDrop) {
      say(`device ${this.id} drops off for ${offlineMs / 1000} s`);
      this.socket?.destroy();
      this.silentUntil = now + offlineMs;
      this.nextDrop = this.silentUntil + onlineMs;
    }
    if (now < this.silentUntil) return;
    if (!this.socket) {
      if (this.silentUntil) say(`device ${this.id} is back`);
      this.silentUntil = 0;
      this.connect();
    }
    if (this.waiting || this.socket.connecting) return;
    this.waiting = true;
    // '60%d' % random.getrandbits(3), as the ESP8266 sensor sends it: a str, no newline.
    this.socket.write(JSON.stringify([this.id, this.want, `60${Math.floor(Math.random() * 8)}`]));
  }

  onReply(reply) {
    this.waiting = false;
    if (reply === 'None' || reply === 'null') {
      this.nones++;
      if (this.nones === OFFLINE_AFTER_NONES + 1) say(`device ${this.id}: device ${this.want} offline`);
      return;
    }
    if (this.nones > OFFLINE_AFTER_NONES) say(`device ${this.id}: device ${this.want} back online`);
    this.nones = 0;
    if (!options.quiet) console.log(`device ${this.id} read device ${this.want}: ${reply}`);
  }
}

function say(line) {
  console.log(line);
}

for (let id = 1; id <= count; id++) {
  const board = new Board(id, (id % count) + 1, id > count - droppers);
  boards.push(board);
  board.connect();
}
const timer = setInterval(() => boards.forEach((board) => board.tick()), interval);
console.log(`${count} simulated boards reporting to ${options.host}:${port} every ${interval / 1000} s (Ctrl-C stops)`);

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    clearInterval(timer);
    for (const board of boards) board.socket?.destroy();
    process.exit(0);
  });
}

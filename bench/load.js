// The load generator, in its own process (forked by bench/run.js): lockstep
// devices that each send `[id, id+1, "p<seq>"]`, wait for the reply, repeat.
'use strict';
const net = require('node:net');
const { performance } = require('node:perf_hooks');

/** Latency histogram: 10 µs buckets up to 2 s. */
class Histogram {
  constructor() {
    this.buckets = new Uint32Array(200001);
    this.count = 0;
  }
  record(ms) {
    this.buckets[Math.min(this.buckets.length - 1, Math.round(ms * 100))]++;
    this.count++;
  }
  percentile(p) {
    const target = Math.ceil((this.count * p) / 100);
    let seen = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      seen += this.buckets[i];
      if (seen >= target) return i / 100;
    }
    return NaN;
  }
}

/** Distinct loopback source addresses (127.0.x.y) so that many connections never run out of ports. */
function sourceAddress(n) {
  return `127.0.${1 + Math.floor(n / 250)}.${1 + (n % 250)}`;
}

function connectOne(port, n, spreadSources) {
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port };
    if (spreadSources) options.localAddress = sourceAddress(n);
    const socket = net.connect(options, () => {
      socket.off('error', reject);
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Opens `count` connections, `batch` at a time (the server's accept backlog is finite). */
async function connectAll(port, count, spreadSources, batch = 200) {
  const sockets = [];
  for (let start = 0; start < count; start += batch) {
    const wave = [];
    for (let n = start; n < Math.min(count, start + batch); n++) wave.push(connectOne(port, n, spreadSources));
    sockets.push(...(await Promise.all(wave)));
  }
  for (const socket of sockets) socket.on('error', () => {});
  return sockets;
}

/** A reply slower than this is kept with its time, so that the bench can tell when it happened. */
const SLOW_MS = 20;

const NONE = -1;
const NOT_A_VALUE = -2;

/**
 * The sequence number in a reply `p<digits>`, NONE for `None`, NOT_A_VALUE for
 * anything else. Reads every byte whatever the reply, so the generator does the
 * same work against every target.
 */
function replySeq(chunk) {
  let seq = 0;
  let digits = true;
  for (let i = 1; i < chunk.length; i++) {
    const digit = chunk[i] - 48;
    if (digit < 0 || digit > 9) digits = false;
    else seq = seq * 10 + digit;
  }
  if (chunk[0] === 0x70 && digits && chunk.length > 1) return seq;
  return chunk.length === 4 && chunk[0] === 0x4e && chunk[1] === 0x6f && chunk[2] === 0x6e && chunk[3] === 0x65
    ? NONE
    : NOT_A_VALUE;
}

function makeDevices(sockets) {
  const count = sockets.length;
  return sockets.map((socket, i) => ({
    socket,
    id: i + 1,
    want: ((i + 1) % count) + 1,
    seq: 0,
    /** The newest of this device's values the broker has certainly stored. */
    storedSeq: 0,
    /** The peer's storedSeq when this device sent: the oldest value a correct reply can hold. */
    oldestValid: 0,
    sentAt: 0,
  }));
}

/**
 * Devices in lockstep on `sockets` until stop(). While `measuring`, each reply
 * is timed and checked: a reply that is not one of the values the peer wrote
 * while the request was in flight (or `None` once the peer's first value was
 * stored) counts as an error. A connection the server closes counts as dropped.
 */
class Lockstep {
  constructor(sockets) {
    this.sockets = sockets;
    this.devices = makeDevices(sockets);
    this.histogram = new Histogram();
    this.measuring = false;
    this.running = true;
    this.requests = 0;
    this.errors = 0;
    this.firstError = undefined;
    this.dropped = 0;
    this.longestWait = 0;
    /** Replies that took over SLOW_MS: when the request went (ms since the epoch) and how long it waited. */
    this.slow = [];
    for (const device of this.devices) {
      device.socket.on('data', (chunk) => this.replied(device, chunk));
      device.socket.on('close', () => this.running && this.dropped++);
    }
    for (const device of this.devices) this.send(device);
  }

  send(device) {
    device.seq++;
    device.oldestValid = this.devices[device.want - 1].storedSeq;
    device.sentAt = performance.now();
    device.socket.write(`[${device.id},${device.want},"p${device.seq}"]`);
  }

  replied(device, chunk) {
    const now = performance.now();
    device.storedSeq = device.seq;
    if (this.measuring) {
      const wait = now - device.sentAt;
      this.histogram.record(wait);
      if (wait > this.longestWait) this.longestWait = wait;
      if (wait > SLOW_MS) this.slow.push({ sentAt: Date.now() - wait, wait });
      this.requests++;
      const seq = replySeq(chunk);
      const peer = this.devices[device.want - 1];
      const valid = seq === NONE ? device.oldestValid === 0 : seq >= device.oldestValid && seq <= peer.seq;
      if (!valid) {
        this.errors++;
        this.firstError ??= `device ${device.id} read "${chunk.toString('latin1')}" from device ${peer.id} (expected p${device.oldestValid}..p${peer.seq})`;
      }
    }
    if (this.running) this.send(device);
  }

  async stop() {
    this.measuring = false;
    this.running = false;
    await sleep(50);
    for (const socket of this.sockets) socket.destroy();
  }
}

/** Runs lockstep for warmupMs, then measures for measureMs. */
async function lockstep({ port, connections, warmupMs, measureMs, spreadSources }) {
  const run = new Lockstep(await connectAll(port, connections, spreadSources));
  await sleep(warmupMs);
  run.measuring = true;
  const started = performance.now();
  await sleep(measureMs);
  const seconds = (performance.now() - started) / 1000;
  await run.stop();
  return {
    connections,
    requestsPerSecond: Math.round(run.requests / seconds),
    p50: run.histogram.percentile(50),
    p99: run.histogram.percentile(99),
    errors: run.errors,
    firstError: run.firstError,
  };
}

/** Lockstep measured from now until lockstepStop (the bench deploys meanwhile). */
let ongoing;
async function lockstepStart({ port, connections }) {
  ongoing = new Lockstep(await connectAll(port, connections, false));
  ongoing.measuring = true;
  await sleep(200);
  return { connected: connections, dropped: ongoing.dropped };
}

async function lockstepStop() {
  const run = ongoing;
  ongoing = undefined;
  await run.stop();
  const { requests, errors, firstError, dropped, longestWait, slow } = run;
  return { requests, errors, firstError, dropped, longestWait, slow, p99: run.histogram.percentile(99) };
}

/** The scale run's phase one: many devices connect and each is answered once. */
let parked = [];
async function connectDevices({ port, count }) {
  const sockets = await connectAll(port, count, true);
  parked = makeDevices(sockets);
  let answered = 0;
  await Promise.all(
    parked.map(
      (device) =>
        new Promise((resolve) => {
          const timer = setTimeout(resolve, 20000);
          device.socket.once('data', () => {
            answered++;
            clearTimeout(timer);
            resolve();
          });
          device.socket.write(`[${device.id},${device.want},"hello"]`);
        }),
    ),
  );
  return { connected: sockets.length, answered };
}

/**
 * Phase two: `count` of the parked devices report every `everyMs`, spread
 * evenly, until stop(); every reply is timed. `stamp`: the news is its send
 * time (`t<ms since the epoch>`), for a flow elsewhere to measure how long it
 * took to arrive.
 */
class Reporting {
  constructor({ count, everyMs, stamp }) {
    this.reporters = parked.slice(0, count);
    this.histogram = new Histogram();
    this.sent = 0;
    this.answered = 0;
    this.longestWait = 0;
    this.timers = [];
    for (const [n, device] of this.reporters.entries()) {
      device.socket.removeAllListeners('data');
      device.socket.on('data', () => {
        this.answered++;
        const wait = performance.now() - device.sentAt;
        this.histogram.record(wait);
        if (wait > this.longestWait) this.longestWait = wait;
      });
      const tick = () => {
        this.sent++;
        device.sentAt = performance.now();
        device.socket.write(
          stamp ? `[${device.id},${device.want},"t${Date.now()}"]` : `[${device.id},${device.want},"60${n % 8}"]`,
        );
      };
      this.timers.push(
        setTimeout(
          () => {
            tick();
            this.timers.push(setInterval(tick, everyMs));
          },
          (n * everyMs) / count,
        ),
      );
    }
  }

  async stop() {
    for (const timer of this.timers) clearInterval(timer);
    await sleep(200);
    // A connection the server closed meanwhile (none was closed before: a closed one cannot report).
    const dropped = this.reporters.filter((device) => device.socket.destroyed).length;
    const { sent, answered, longestWait } = this;
    return {
      sent,
      answered,
      dropped,
      longestWait,
      p50: this.histogram.percentile(50),
      p99: this.histogram.percentile(99),
    };
  }
}

/** Reports for `seconds`, then the figures. */
async function report({ count, everyMs, seconds, stamp }) {
  const run = new Reporting({ count, everyMs, stamp });
  await sleep(seconds * 1000);
  return run.stop();
}

/** Reports from now until reportStop (the bench restarts something meanwhile). */
let reporting;
function reportStart(options) {
  reporting = new Reporting(options);
  return {};
}

function reportStop() {
  const run = reporting;
  reporting = undefined;
  return run.stop();
}

/** One connection sends `count` new ids (`payloadBytes` of news each) as fast as the broker takes them. */
async function junkIds({ port, count, payloadBytes }) {
  const [socket] = await connectAll(port, 1, false);
  let received = 0;
  socket.on('data', (chunk) => (received += chunk.length));
  const payload = 'j'.repeat(payloadBytes);
  const started = performance.now();
  const batch = 1000;
  for (let first = 0; first < count; first += batch) {
    let frames = '';
    for (let n = first; n < Math.min(count, first + batch); n++) frames += `["junk-${n}","junk-${n}","${payload}"]`;
    socket.write(frames);
    // Let the broker answer the batch before the next (a client that reads).
    const until = received + batch;
    for (let wait = 0; received < until && wait < 200; wait++) await sleep(5);
  }
  const seconds = (performance.now() - started) / 1000;
  await sleep(200);
  socket.destroy();
  return { count, seconds, received };
}

function closeAll() {
  for (const device of parked) device.socket.destroy();
  parked = [];
  return {};
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const commands = {
  lockstep,
  lockstepStart,
  lockstepStop,
  connectDevices,
  report,
  reportStart,
  reportStop,
  junkIds,
  closeAll,
};
process.on('message', async ({ command, options }) => {
  try {
    process.send({ ok: true, result: await commands[command](options) });
  } catch (err) {
    process.send({ ok: false, error: err.stack || String(err) });
  }
});

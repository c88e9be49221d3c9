'use strict';
// Test support: a device that speaks TCPMQ over a real socket, and small waits.
const assert = require('node:assert/strict');
const asyncHooks = require('node:async_hooks');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { waitFor, sleep } = require('../tools/wait');
const { freePort } = require('../tools/free-port');

/** Where this package's runtime code lives once built: dist/. */
const OWN_CODE = new RegExp(`[\\/]${path.basename(path.join(__dirname, '..'))}[\\/]dist[\\/]`);

/**
 * Timers created by this package's own code that are still alive: `alive()`
 * lists their creation stacks so far; `stop()` stops tracking and lists them.
 * (Node-RED, mocha and the tests keep timers of their own; those are not counted.)
 */
function trackOwnTimers() {
  const live = new Map();
  const hook = asyncHooks.createHook({
    init(id, type) {
      if (type !== 'Timeout') return;
      const stack = new Error().stack;
      if (OWN_CODE.test(stack)) live.set(id, stack);
    },
    destroy(id) {
      live.delete(id);
    },
  });
  hook.enable();
  return {
    alive() {
      return [...live.values()];
    },
    stop() {
      hook.disable();
      return [...live.values()];
    },
  };
}

/** Counts of the runtime's open servers, sockets and timers, by kind. */
function openResources() {
  const counts = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

/** Servers and sockets open now beyond those of openResources() `before` (empty once they have closed). */
function leftOpen(before) {
  const after = openResources();
  return ['TCPServerWrap', 'TCPSocketWrap']
    .filter((kind) => (after[kind] ?? 0) > (before[kind] ?? 0))
    .map((kind) => `${kind}: ${before[kind] ?? 0} before, ${after[kind] ?? 0} after`);
}

/**
 * Waits until the servers and sockets opened since openResources() gave `before`
 * have closed and `timers` (trackOwnTimers()) has none alive.
 */
function allClosed(before, timers) {
  return waitFor(
    () => leftOpen(before).length === 0 && timers.alive().length === 0,
    () =>
      `sockets, servers and timers to close (${[...leftOpen(before), `${timers.alive().length} timers`].join('; ')})`,
  );
}

/**
 * Proves that something does NOT happen: resolves after `ms` if `happened()` stayed false all along, and
 * rejects, naming `what` (or `what()`, saying what came), as soon as it is true. The one bounded quiet period a test may use for an absence
 * (counted with the fixed waits).
 */
async function quietFor(ms, what, happened) {
  const came = await waitFor(happened, 'nothing', ms).then(
    () => true,
    (err) => (/^timed out/.test(err.message) ? false : Promise.reject(err)),
  );
  if (came) throw new Error(`expected no ${typeof what === 'function' ? what() : what} for ${ms} ms, and it came`);
}

/**
 * The pace of a simulated board that reports on a clock (`await every(200)` between two reports): pacing,
 * not waiting for anything (counted with the fixed waits).
 */
const every = (ms) => sleep(ms);

/**
 * Skips the suite of mocha context `suite` because `tool` is missing, saying
 * so; under CI=true a missing tool is a failure instead, never a silent pass.
 */
function skipWithout(suite, tool, hint = '') {
  const message = `${tool} is missing${hint ? `; ${hint}` : ''}`;
  if (process.env.CI === 'true' || process.env.CI === '1')
    throw new Error(`${message} (CI=true: a suite may not skip)`);
  console.log(`      (skipped: ${message})`);
  suite.skip();
}

/**
 * A field device: one TCP connection, `request()` writes bytes and returns the
 * first chunk that comes back (as a device's single recv() would).
 */
class Device {
  static connect(port, host = '127.0.0.1') {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host }, () => {
        socket.off('error', reject);
        resolve(new Device(socket));
      });
      socket.once('error', reject);
    });
  }

  constructor(socket) {
    this.socket = socket;
    this.chunks = [];
    this.waiting = undefined;
    this.closed = false;
    this.error = undefined;
    socket.on('data', (chunk) => {
      if (this.waiting) {
        const { resolve } = this.waiting;
        this.waiting = undefined;
        resolve(chunk);
      } else this.chunks.push(chunk);
    });
    socket.on('error', (err) => {
      this.error = err;
    });
    socket.on('close', () => {
      this.closed = true;
      if (this.waiting) this.waiting.reject(new Error('connection closed before a reply came'));
      this.waiting = undefined;
    });
  }

  /** The next chunk the broker sends, or a rejection after `ms`. */
  nextChunk(ms = 3000) {
    if (this.chunks.length > 0) return Promise.resolve(this.chunks.shift());
    if (this.closed) return Promise.reject(new Error('connection is closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        reject(new Error(`no reply within ${ms} ms`));
      }, ms);
      this.waiting = {
        resolve: (chunk) => {
          clearTimeout(timer);
          resolve(chunk);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
    });
  }

  /** Collects chunks until `length` bytes have come (replies may share a TCP read). */
  async readBytes(length, ms = 3000) {
    const chunks = [];
    let got = 0;
    while (got < length) {
      const chunk = await this.nextChunk(ms);
      chunks.push(chunk);
      got += chunk.length;
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  send(data) {
    this.socket.write(data);
  }

  /** Resolves once everything sent so far has been handed to the kernel (a later send is a later TCP segment). */
  flushed() {
    return new Promise((resolve) => this.socket.write('', () => resolve()));
  }

  /** Sends `data` (a str, as MicroPython's send() allows) and returns the reply's text. */
  async request(data, ms) {
    this.send(data);
    return (await this.nextChunk(ms)).toString('utf8');
  }

  /** Resolves true if the broker closes the connection within `ms`. */
  closedWithin(ms) {
    if (this.closed) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  close() {
    this.socket.destroy();
  }
}

/** The protocol's test vectors (docs/PROTOCOL.md, test vectors): frames, then the replies in each dialect. */
const TEST_VECTORS = [
  { name: 'a device reads its own mailbox back', before: [], send: '[1,1,"26.5"]', text: ['26.5'], json: ['"26.5"'] },
  {
    name: 'a device reads another device',
    before: ['[1,1,"26.5"]'],
    send: '[-1,1,"605"]',
    text: ['26.5'],
    json: ['"26.5"'],
  },
  { name: 'an empty mailbox', before: [], send: '[2,9,"x"]', text: ['None'], json: ['null'] },
  {
    name: 'a string id and a JSON payload',
    before: [],
    send: '["1",1,{"t":21}]',
    text: ['{"t":21}'],
    json: ['{"t":21}'],
  },
  { name: 'non-ASCII text', before: [], send: '[3,3,"温度"]', text: ['温度'], json: ['"温度"'] },
  { name: 'two frames in one read', before: [], send: '[1,1,"a"][1,1,"b"]', text: ['a', 'b'], json: ['"a"', '"b"'] },
  { name: 'brackets inside a string', before: [], send: '[1,1,"a]["]', text: ['a]['], json: ['"a]["'] },
];

/** Frames that are not requests: no reply, mailboxes unchanged. */
const NOT_REQUESTS = [
  { name: 'wrong arity', send: '[1,2]' },
  { name: 'an object', send: '{"from":1}' },
  { name: 'plain text', send: 'hello\n' },
];

/**
 * The wire contract as mocha tests, in both dialects, against any broker:
 * `target.start(format)` runs one with that reply format (in the test's own
 * hooks) and resolves with `{ connect(), readMailbox(id) }` (readMailbox may
 * answer with a promise: a broker in another process is asked over TCP).
 */
function vectorSuite(target) {
  for (const format of ['text', 'json']) {
    describe(`test vectors, ${format} replies`, function () {
      for (const vector of TEST_VECTORS) {
        it(vector.name, async function () {
          const broker = await target.start(format);
          const device = await broker.connect();
          for (const frame of vector.before) await device.request(frame);
          device.send(vector.send);
          const expected = vector[format].join('');
          assert.equal(await device.readBytes(Buffer.byteLength(expected)), expected);
        });
      }

      for (const vector of NOT_REQUESTS) {
        it(`gives no reply to ${vector.name} and changes no mailbox`, async function () {
          const broker = await target.start(format);
          const device = await broker.connect();
          await device.request('[1,1,"before"]');
          device.send(vector.send);
          // The next reply is the valid frame's: nothing came for the bad one.
          assert.equal(await device.request('[2,1,"x"]'), format === 'text' ? 'before' : '"before"');
          assert.equal(await broker.readMailbox('1'), 'before');
        });
      }
    });
  }
}

/**
 * The hooks of a test that runs core brokers (no Node-RED): `start(options)`
 * starts one on a free loopback port and waits until it listens; `connect()`
 * opens a device on it. After each test: devices closed, brokers stopped.
 */
function coreBrokerFixture() {
  const { TcpmqBroker } = require('../dist/broker/broker');
  const fixture = {
    broker: undefined,
    brokers: [],
    devices: [],
    async start(options = {}) {
      const broker = new TcpmqBroker({ host: '127.0.0.1', port: await freePort(), ...options });
      fixture.brokers.push(broker);
      fixture.broker = broker;
      broker.start();
      await waitFor(() => broker.status.state === 'listening', 'the broker to listen');
      return broker;
    },
    async connect(port = fixture.broker.status.port) {
      const device = await Device.connect(port);
      fixture.devices.push(device);
      return device;
    },
  };
  afterEach(async function () {
    for (const device of fixture.devices.splice(0)) device.close();
    await Promise.all(fixture.brokers.splice(0).map((broker) => broker.stop()));
    fixture.broker = undefined;
  });
  return fixture;
}

const EXAMPLES = path.join(__dirname, '..', 'examples');

/** The example flows of the Import menu, as paths relative to examples/ (`micropython/esp8266-board.json`). */
function exampleFiles() {
  // package.json files are MicroPython's mip manifests (examples/micropython), not flows.
  return fs
    .readdirSync(EXAMPLES, { encoding: 'utf8', recursive: true })
    .filter((file) => file.endsWith('.json') && path.basename(file) !== 'package.json');
}

/**
 * An example flow pointed at this machine: every tcpmq-broker on `port`, and a
 * client-mode one (which points at an ESP32 hotspot) at 127.0.0.1.
 */
function exampleFlow(file, port) {
  const flow = JSON.parse(fs.readFileSync(path.join(EXAMPLES, file), 'utf8'));
  for (const node of flow) {
    if (node.type !== 'tcpmq-broker') continue;
    node.port = port;
    if (node.mode === 'client') node.host = '127.0.0.1';
  }
  return flow;
}

module.exports = {
  Device,
  skipWithout,
  vectorSuite,
  coreBrokerFixture,
  freePort,
  waitFor,
  quietFor,
  every,
  sleep,
  trackOwnTimers,
  openResources,
  allClosed,
  exampleFiles,
  exampleFlow,
  TEST_VECTORS,
  NOT_REQUESTS,
};

'use strict';
// Seeded fuzzing of the frame reader and of a real broker over TCP, with a
// fixed seed and a small budget (a few seconds in all). bench/fuzz.js runs the
// same generators (test/robustness/fuzz-kit.js) with any seed for longer.
//
// The resynchronisation rule tested over TCP (docs/PROTOCOL.md, frames and ids and what is not a request, as
// src/protocol/frame-reader.ts implements them), once a connection has started
// with a frame (it speaks TCPMQ, not plain text):
//   - a frame is answered when the reader is between frames as its `[` comes;
//   - garbage leaves the reader between frames, however TCP cuts it, when it
//     has no `[` or `{` (so no bracket is left open) and ends with a newline
//     (which ends stray bytes, and any string a `"` opened: a control byte
//     cannot be inside a JSON string); or when it has no `[`, `{` or `"` at all
//     (stray bytes then end where the next frame's `[` starts);
//   - garbage that leaves a `[` or `{` open outside a string swallows what
//     follows until the brackets balance or the frame passes maxFrameBytes and
//     the connection is closed: no frame after it is guaranteed an answer (a
//     newline inside a frame is legal JSON whitespace, so it cannot resync).
// Such connections ("chaos") are only checked for not harming the broker or
// the other connections.
const assert = require('node:assert/strict');
const { Device, coreBrokerFixture, waitFor } = require('../support');
const kit = require('./fuzz-kit');

/** The fixed seed of this file's cases: change it to explore, or use bench/fuzz.js. */
const SEED = 20240611;

/** Fails the test if anything reaches process 'uncaughtException' while it runs. */
function guardUncaught() {
  const seen = [];
  const guard = (err) => seen.push(err);
  beforeEach(function () {
    seen.length = 0;
    process.on('uncaughtException', guard);
  });
  afterEach(function () {
    process.off('uncaughtException', guard);
  });
  return () => assert.deepEqual(seen.map(String), [], 'an exception escaped the broker');
}

describe('robustness: fuzzing (fixed seed)', function () {
  this.timeout(20000);

  describe('frame reader', function () {
    it('valid frames cut in two and in three at every byte boundary come out identical and in order', function () {
      const { cases } = kit.runProperty('valid-every-boundary', SEED, 150);
      assert.equal(cases, 150);
    });

    it('valid frames, some exactly at maxFrameBytes, cut at random boundaries come out identical and in order', function () {
      kit.runProperty('valid-random-cuts', SEED + 1, 120);
    });

    it('random bytes, deep nesting, huge strings, invalid UTF-8, unbalanced brackets, NUL bytes and mangled frames never make push throw nor the reader hold more than maxFrameBytes', function () {
      const { cases, bytes } = kit.runProperty('hostile-input', SEED + 2, 500);
      console.log(`      fuzz: ${cases} hostile streams, ${(bytes / 1e6).toFixed(1)} MB fed at random boundaries`);
    });

    it('after garbage that leaves no bracket open, every valid frame comes out, in order, however the stream is cut', function () {
      kit.runProperty('resync-after-garbage', SEED + 3, 500);
    });

    it('10,000 open brackets, one byte per read, are held within maxFrameBytes and never throw', function () {
      const deep = Buffer.from('['.repeat(10000));
      const { events, reader } = kit.feed(
        [...deep].map((byte) => Buffer.from([byte])),
        65536,
      );
      assert.deepEqual(events, []);
      assert.equal(reader.bufferedBytes, 10000);
      assert.ok(reader.heldCapacity <= 2 * 10000, `held buffer of ${reader.heldCapacity} bytes`);
      // ...and closed: one frame (not a request, the parser's business), nothing held.
      const closed = kit.feed([deep, Buffer.from(']'.repeat(10000))], 65536);
      assert.deepEqual(
        closed.events.map((e) => [e.kind, e.bytes.length]),
        [['frame', 20000]],
      );
      assert.equal(closed.reader.bufferedBytes, 0);
    });

    it('a frame of exactly maxFrameBytes is read, one byte more closes, whether it comes whole or a byte at a time', function () {
      const max = 65536;
      for (const oneByteReads of [false, true]) {
        const cut = (bytes) => (oneByteReads ? [...bytes].map((byte) => Buffer.from([byte])) : [bytes]);
        const atLimit = kit.feed(cut(kit.frameOfSize(max)), max);
        assert.deepEqual(
          atLimit.events.map((e) => [e.kind, e.bytes.length]),
          [['frame', max]],
        );
        const over = kit.feed(cut(Buffer.concat([kit.frameOfSize(max + 1), kit.frameOfSize(20)])), max);
        assert.deepEqual(over.events, [{ kind: 'oversize', size: max + 1 }]);
        assert.equal(over.reader.bufferedBytes, 0);
      }
    });

    // Found by this fuzzing (fixed in src/protocol/frame-reader.ts): a run of stray
    // bytes that reached the end of a read ended there, so a `"` or `{` at the
    // start of the next read opened a frame that swallowed the valid frames after it.
    it('the frames read do not depend on where TCP cuts stray bytes', function () {
      const reads = (...chunks) =>
        kit.requestFrameTexts(
          kit.feed(
            chunks.map((c) => Buffer.from(c)),
            65536,
          ).events,
        );
      assert.deepEqual(reads('[1,1,"a"]xx{\n[1,1,"b"]'), ['[1,1,"a"]', '[1,1,"b"]']);
      assert.deepEqual(reads('[1,1,"a"]xx', '{\n[1,1,"b"]'), ['[1,1,"a"]', '[1,1,"b"]']);
      assert.deepEqual(reads('[1,1,"a"]xx"[1,1,"b"]'), ['[1,1,"a"]', '[1,1,"b"]']);
      assert.deepEqual(reads('[1,1,"a"]xx', '"[1,1,"b"]'), ['[1,1,"a"]', '[1,1,"b"]']);
      kit.runProperty('segmentation-invariance', SEED + 4, 500);
    });
  });

  describe('broker over TCP', function () {
    const assertNoUncaught = guardUncaught();
    let broker;
    let devices;

    const fixture = coreBrokerFixture();

    async function startBroker(options = {}) {
      broker = await fixture.start(options);
      return broker.status.port;
    }

    beforeEach(function () {
      devices = [];
    });

    afterEach(async function () {
      for (const device of devices) device.close();
      if (broker) await broker.stop();
      broker = undefined;
    });

    it('answers every frame after rule-following garbage, in order, while chaos connections send anything and lockstep devices keep being served', async function () {
      this.timeout(15000);
      const WAVES = 8;
      const port = await startBroker();
      const warnings = [];
      broker.on('warning', (message) => warnings.push(message));
      let done = false;
      let lockstepReplies = 0;
      const lockstep = [0, 1, 2, 3].map((i) =>
        kit.lockstepDevice(port, `lock-${i}`, () => done, { onReply: () => lockstepReplies++ }),
      );
      for (const p of lockstep) p.catch(() => {}); // awaited below; a failure must not be an unhandled rejection meanwhile
      const started = Date.now();
      let fuzzFrames = 0;
      let fuzzBytes = 0;
      let chaosBytes = 0;
      try {
        // Waves of 8 rule-following and 4 chaos connections at once.
        for (let wave = 0; wave < WAVES; wave++) {
          const fuzz = [];
          for (let i = 0; i < 8; i++) {
            const n = wave * 8 + i;
            fuzz.push(
              kit.fuzzConnection(port, kit.caseSeed(SEED, 1000 + n), n % 2 ? `fz-${n}` : 10000 + n, { frames: 15 }),
            );
          }
          const chaos = [];
          for (let i = 0; i < 4; i++)
            chaos.push(kit.chaosConnection(port, kit.caseSeed(SEED, 2000 + wave * 4 + i), 65536));
          for (const result of await Promise.all(fuzz)) {
            fuzzFrames += result.frames;
            fuzzBytes += result.bytes;
          }
          for (const result of await Promise.all(chaos)) chaosBytes += result.bytes;
        }
      } finally {
        done = true;
      }
      const counts = await Promise.all(lockstep);
      const seconds = (Date.now() - started) / 1000;
      console.log(
        `      fuzz over TCP: ${WAVES * 8} connections, ${fuzzFrames} frames answered exactly (${fuzzBytes} bytes with garbage), ` +
          `${WAVES * 4} chaos connections (${chaosBytes} bytes), ${lockstepReplies} lockstep replies in ${seconds.toFixed(1)} s, ` +
          `${broker.counters.protocolErrors} protocol errors, ${broker.counters.oversize} oversize`,
      );
      for (const count of counts) assert.ok(count >= 5, `a lockstep device got only ${count} replies`);
      assert.ok(broker.counters.protocolErrors > 0, 'the garbage was seen as protocol errors');
      // A warning is an internal error: none may come from what clients send.
      assert.deepEqual(warnings, []);
      await waitFor(() => broker.connectionCount === 0, 'every connection to be forgotten');
      assertNoUncaught();
    });

    // The same over a real socket: the reply to "a" shows that the read with `xx` is done; `{` starts the next.
    it('answers a frame after stray bytes and a newline however TCP cut the stray bytes', async function () {
      const port = await startBroker();
      const device = await Device.connect(port);
      devices.push(device);
      assert.equal(await device.request('[1,1,"a"]xx'), 'a');
      assert.equal(await device.request('{\n[1,1,"b"]', 1000), 'b');
    });

    // Found by this fuzzing (fixed: parseRequest refuses payloads nested deeper
    // than MAX_PAYLOAD_DEPTH, wentOffline cannot throw): a request whose payload
    // was nested 10,000 deep (a 20 KB frame, under maxFrameBytes) was stored;
    // structuredClone (from ~3,500 levels) and JSON.stringify (from ~4,500) then
    // threw: the offline event threw from the sweep timer (an uncaught exception
    // that ends Node-RED), every device reading that mailbox was dropped, and
    // deviceTable(), readMailbox() and snapshot() threw. Whether such a frame
    // is refused or served, none of that may happen.
    it('a payload nested 10,000 deep throws nothing from a timer and drops no device, whether refused or served', async function () {
      const port = await startBroker({ offlineAfter: 0.3 });
      const warnings = [];
      broker.on('warning', (message) => warnings.push(message));
      const sender = await Device.connect(port);
      const reader = await Device.connect(port);
      devices.push(sender, reader);
      // Answered with None (served) or not at all (a protocol error); the probe after it is answered either way.
      sender.send('[1,2,' + '['.repeat(10000) + ']'.repeat(10000) + ']');
      sender.send('[3,3,"probe"]');
      let got = '';
      while (!got.endsWith('probe')) got += (await sender.nextChunk()).toString();
      assert.match(got, /^(None)?probe$/);
      reader.send('[2,1,"x"]'); // mailbox 1: the deep payload if it was served, else None
      assert.ok((await reader.nextChunk(1000)).length > 0);
      assert.doesNotThrow(() => broker.deviceTable());
      assert.doesNotThrow(() => broker.readMailbox(1));
      if (typeof broker.snapshot === 'function') assert.doesNotThrow(() => broker.snapshot());
      // Device 1 (if it was served) goes offline with the others: the sweep timer must not throw.
      await waitFor(() => broker.onlineCount === 0, 'every device to go offline', 3000);
      assertNoUncaught();
      assert.equal(reader.closed, false, 'the reader was dropped');
      assert.equal(sender.closed, false, 'the sender was dropped (the stream could be resynchronised)');
      assert.equal(await reader.request('[2,2,"still here"]'), 'still here');
      assert.deepEqual(warnings, []);
    });

    it('50 connections each holding an unfinished ~60 KB frame (its last 256 bytes one per write) stay within maxFrameBytes each', async function () {
      this.timeout(15000);
      const maxFrameBytes = 65536;
      const port = await startBroker({ maxFrameBytes });
      const BODY = 60 * 1024;
      const TRICKLE = 256;
      const sockets = await Promise.all(Array.from({ length: 50 }, () => kit.connect(port)));
      const replies = sockets.map(() => []);
      sockets.forEach((socket, i) => {
        socket.on('error', () => {});
        socket.on('data', (chunk) => replies[i].push(chunk));
      });
      const prefixes = sockets.map((_, i) => `[${i},${i},"`);
      const before = process.memoryUsage();
      // All but the last TRICKLE bytes in 1 KB writes...
      sockets.forEach((socket, i) => {
        const head = Buffer.from(prefixes[i] + 'x'.repeat(BODY - TRICKLE));
        for (let at = 0; at < head.length; at += 1024) socket.write(head.subarray(at, at + 1024));
      });
      // ...then one byte per write, a round over all connections between event-loop turns.
      await waitFor(() => broker.connectionCount === 50, '50 connections');
      const connections = [...broker.connections.values()];
      let reads = 0;
      for (const connection of connections) connection.socket.on('data', () => reads++);
      const started = Date.now();
      for (let round = 0; round < TRICKLE; round++) {
        for (const socket of sockets) socket.write('x');
        await new Promise((resolve) => setImmediate(resolve));
      }
      const trickleMs = Date.now() - started;
      const expected = (i) => Buffer.byteLength(prefixes[i]) + BODY;
      const index = new Map(sockets.map((socket, i) => [socket.localPort, i]));
      await waitFor(
        () => connections.every((c) => c.reader.bufferedBytes === expected(index.get(c.remotePort))),
        'every connection to hold its whole unfinished frame',
      );
      const during = process.memoryUsage();
      let held = 0;
      for (const connection of connections) {
        assert.ok(connection.reader.bufferedBytes <= maxFrameBytes);
        assert.ok(
          connection.reader.heldCapacity <= maxFrameBytes,
          `held buffer of ${connection.reader.heldCapacity} bytes`,
        );
        held += connection.reader.heldCapacity;
      }
      // Generous bound: the held buffers (at most 50 x 64 KiB = 3.2 MiB) plus
      // socket and write buffers in flight, well under 16 MiB. A buffer per read
      // (256 reads x 50 connections) or unbounded growth would exceed it.
      const grown = during.arrayBuffers - before.arrayBuffers;
      console.log(
        `      memory: 50 unfinished frames of ${expected(0)} bytes held in ${(held / 1048576).toFixed(2)} MiB of reader buffers; ` +
          `Buffer memory grew ${(grown / 1048576).toFixed(2)} MiB (rss ${((during.rss - before.rss) / 1048576).toFixed(1)} MiB); ` +
          `${50 * TRICKLE} one-byte writes in ${trickleMs} ms, read by the broker in ${reads} reads`,
      );
      assert.ok(held <= 50 * maxFrameBytes);
      assert.ok(grown < 16 * 1048576, `Buffer memory grew by ${grown} bytes`);
      // The frames were held intact: finishing them gets each its 60 KiB reply, and frees the buffers.
      for (const socket of sockets) socket.write('"]');
      await waitFor(() => replies.every((r) => Buffer.concat(r).length === BODY), 'every reply', 10000);
      for (const r of replies) assert.equal(Buffer.concat(r).toString(), 'x'.repeat(BODY));
      for (const connection of connections) {
        assert.equal(connection.reader.bufferedBytes, 0);
        assert.equal(connection.reader.heldCapacity, 0);
      }
      for (const socket of sockets) socket.destroy();
      assertNoUncaught();
    });
  });
});

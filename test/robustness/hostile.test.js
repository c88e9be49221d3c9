'use strict';
// Hostile clients against a real broker (core, over TCP on 127.0.0.1): slow
// loris, a client that never reads, a connection flood, half-open and reset
// connections. Each test checks that the hostile client is contained and that
// well-behaved devices keep being served meanwhile; figures are printed.
const assert = require('node:assert/strict');
const net = require('node:net');
const { Device, coreBrokerFixture, every, waitFor } = require('../support');
const kit = require('./fuzz-kit');

/** Replies a client leaves unread beyond this get it dropped (MAX_UNREAD_REPLY_BYTES in src/broker/broker.ts). */
const MAX_UNREAD_REPLY_BYTES = 1024 * 1024;

/** A raw socket that records what it receives and how it ends. */
function rawClient(port) {
  return new Promise((resolve) => {
    const client = { socket: undefined, data: [], ended: false, closed: false, error: undefined, connected: false };
    const socket = net.connect({ port, host: '127.0.0.1' }, () => {
      client.connected = true;
      resolve(client);
    });
    client.socket = socket;
    socket.on('data', (chunk) => client.data.push(chunk));
    socket.on('end', () => {
      client.ended = true;
    });
    socket.on('error', (err) => {
      client.error = err;
    });
    socket.on('close', () => {
      client.closed = true;
      resolve(client); // a connection refused before 'connect' still resolves
    });
  });
}

const text = (client) => Buffer.concat(client.data).toString('utf8');
const mib = (bytes) => `${bytes >= 0 ? '+' : '-'}${(Math.abs(bytes) / 1048576).toFixed(1)} MiB`;

describe('robustness: hostile clients', function () {
  this.timeout(20000);
  let broker;
  let devices;
  let sockets;
  let uncaught;
  const guard = (err) => uncaught.push(err);

  const fixture = coreBrokerFixture();

  async function startBroker(options = {}) {
    broker = await fixture.start(options);
    return broker.status.port;
  }

  async function device(port) {
    const d = await Device.connect(port);
    devices.push(d);
    return d;
  }

  function assertNoUncaught() {
    assert.deepEqual(uncaught.map(String), [], 'an exception escaped the broker');
  }

  beforeEach(function () {
    devices = [];
    sockets = [];
    uncaught = [];
    process.on('uncaughtException', guard);
  });

  afterEach(async function () {
    process.off('uncaughtException', guard);
    for (const d of devices) d.close();
    for (const socket of sockets) socket.destroy();
    if (broker) await broker.stop();
    broker = undefined;
  });

  it('a slow-loris client (one byte every 200 ms) neither slows well-behaved devices nor loses its own frame', async function () {
    this.timeout(15000);
    const port = await startBroker();
    // One loris whose frame completes (13 bytes: ~2.6 s), and 20 more that only ever trickle an unfinished frame.
    const loris = await device(port);
    const trickling = await Promise.all(Array.from({ length: 20 }, () => device(port)));
    const frame = '[7,7,"loris"]';
    const UNFINISHED = '[8,8,"' + 'x'.repeat(frame.length);
    const lorisReply = loris.nextChunk(6000).then(String);
    let done = false;
    const perSecond = [];
    let maxLatency = 0;
    const started = performance.now();
    const lockstep = [0, 1, 2, 3].map((i) =>
      kit.lockstepDevice(port, `good-${i}`, () => done, {
        onReply(latency) {
          const second = Math.floor((performance.now() - started) / 1000);
          perSecond[second] = (perSecond[second] ?? 0) + 1;
          maxLatency = Math.max(maxLatency, latency);
        },
      }),
    );
    for (const p of lockstep) p.catch(() => {}); // awaited below; a failure must not be an unhandled rejection meanwhile
    try {
      for (let i = 0; i < frame.length; i++) {
        loris.send(frame[i]);
        for (const t of trickling) t.send(UNFINISHED[i]);
        await every(200);
      }
      assert.equal(await lorisReply, 'loris', 'the slow frame, once whole, is answered');
    } finally {
      done = true;
    }
    const counts = await Promise.all(lockstep);
    const seconds = (performance.now() - started) / 1000;
    const whole = perSecond.slice(0, Math.floor(seconds)).map((n) => n ?? 0);
    const total = counts.reduce((a, b) => a + b, 0);
    console.log(
      `      slow-loris: 21 loris connections at 1 byte/200 ms for ${seconds.toFixed(1)} s; 4 lockstep devices got ${total} replies ` +
        `(${Math.round(total / seconds)}/s; slowest whole second ${Math.min(...whole)}/s; max latency ${maxLatency.toFixed(1)} ms)`,
    );
    // Generous floor for a slow CI machine: loopback lockstep does thousands per second.
    assert.ok(whole.length >= 2, `${whole.length} whole seconds measured`);
    for (const [second, n] of whole.entries()) assert.ok(n >= 100, `only ${n} replies in second ${second}`);
    assert.ok(maxLatency < 500, `a reply took ${maxLatency} ms`);
    // The trickling ones are still open and hold their unfinished frames.
    for (const t of trickling) assert.equal(t.closed, false);
    await waitFor(() => broker.connectionCount === 1 + 20, 'only the loris connections left');
    assertNoUncaught();
  });

  it('drops a client that never reads its large replies before ~1 MiB is queued for it, and keeps serving others', async function () {
    this.timeout(15000);
    const port = await startBroker();
    const REPLY = 16 * 1024;
    broker.writeMailbox('big', 'x'.repeat(REPLY));
    const rejected = [];
    broker.on('rejected', (event) => rejected.push(event));
    let done = false;
    const lockstep = [0, 1].map((i) => kit.lockstepDevice(port, `reader-${i}`, () => done));
    for (const p of lockstep) p.catch(() => {}); // awaited below
    const hog = await kit.connect(port);
    sockets.push(hog);
    hog.pause(); // never reads: replies pile up in the kernel, then in the broker's socket
    hog.on('error', () => {});
    await waitFor(() => broker.connectionCount === 3, 'the hog and the two readers');
    const hogPort = hog.localPort; // (a destroyed socket has none)
    const hogConnection = [...broker.connections.values()].find((c) => c.remotePort === hogPort);
    const before = process.memoryUsage();
    const started = Date.now();
    let requests = 0;
    let maxQueued = 0;
    const batch = Buffer.from('[66,"big","r"]'.repeat(16));
    try {
      // 16 requests (256 KiB of replies) per millisecond or so, until the broker drops the hog (at most 10 s).
      while (!rejected.some((e) => e.kind === 'backlog') && !hog.destroyed && Date.now() - started < 10000) {
        hog.write(batch);
        requests += 16;
        // One turn of the event loop: the broker reads the batch and writes its replies before the next.
        await new Promise((resolve) => setImmediate(resolve));
        if (!hogConnection.socket.destroyed) maxQueued = Math.max(maxQueued, hogConnection.socket.writableLength);
      }
    } finally {
      // The readers go on a little after the drop: at least 300 ms in all.
      setTimeout(() => (done = true), Math.max(0, 300 - (Date.now() - started)));
    }
    const dropMs = Date.now() - started;
    const peak = process.memoryUsage();
    const served = await Promise.all(lockstep);
    const backlog = rejected.filter((e) => e.kind === 'backlog');
    assert.equal(backlog.length, 1, `backlog rejections: ${JSON.stringify(rejected)}`);
    assert.equal(backlog[0].remotePort, hogPort);
    const unread = Number(/(\d+) bytes unread/.exec(backlog[0].reason)?.[1]);
    console.log(
      `      backlog: the non-reading client was dropped after ${dropMs} ms and ${requests} requests sent ` +
        `(${hogConnection.bytesOut} reply bytes written, ${unread} unread in the broker at the drop, at most ${maxQueued} queued between batches); ` +
        `Buffer memory ${mib(peak.arrayBuffers - before.arrayBuffers)}, rss ${mib(peak.rss - before.rss)}; ` +
        `2 readers served ${served.join(' and ')} replies meanwhile`,
    );
    // Bounded: what the broker queues for it stops one reply past the limit.
    assert.ok(unread > MAX_UNREAD_REPLY_BYTES && unread <= MAX_UNREAD_REPLY_BYTES + REPLY, `${unread} bytes unread`);
    assert.ok(maxQueued <= MAX_UNREAD_REPLY_BYTES, `${maxQueued} bytes queued between batches`);
    await waitFor(() => broker.connectionCount === 0, 'the hog (and the finished readers) to be gone');
    for (const n of served) assert.ok(n >= 10, `a reader got only ${n} replies while the hog flooded`);
    const after = await device(port);
    assert.equal(await after.request('[5,"big","x"]'), 'x'.repeat(REPLY));
    assertNoUncaught();
  });

  it('refuses 180 of 200 simultaneous connections at maxConnections 20: closes and counts them; the 20 accepted work', async function () {
    const port = await startBroker({ maxConnections: 20 });
    const refusals = [];
    broker.on('rejected', (event) => refusals.push(event.kind));
    const clients = await Promise.all(Array.from({ length: 200 }, () => rawClient(port)));
    for (const c of clients) sockets.push(c.socket);
    await waitFor(() => broker.counters.refused === 180, '180 refusals');
    await waitFor(() => clients.filter((c) => c.closed).length === 180, 'the 180 refused to be closed');
    assert.equal(broker.connectionCount, 20);
    assert.deepEqual(refusals, Array(180).fill('refused'));
    const accepted = clients.filter((c) => !c.closed);
    assert.equal(accepted.length, 20);
    await Promise.all(
      accepted.map(async (c, i) => {
        c.socket.write(`["flood-${i}","flood-${i}","ok-${i}"]`);
        await waitFor(() => text(c) === `ok-${i}`, `accepted client ${i} to be served`);
      }),
    );
    // Freed places are given again: close 5, and 5 new clients are served.
    for (const c of accepted.slice(0, 5)) c.socket.destroy();
    await waitFor(() => broker.connectionCount === 15, '15 connections');
    const again = await Promise.all(Array.from({ length: 5 }, () => device(port)));
    for (const [i, d] of again.entries()) assert.equal(await d.request(`[${i},${i},"again"]`), 'again');
    assert.equal(broker.connectionCount, 20);
    assert.equal(broker.counters.refused, 180);
    console.log(
      `      flood: 200 connections at once, ${broker.counters.refused} refused and closed, 20 served, 5 freed places reused`,
    );
    assertNoUncaught();
  });

  // Half-close: TCP lets a client end its sending side (FIN) and still read.
  // The broker reads every frame that came before the FIN and writes their
  // replies in the same turn, before Node (allowHalfOpen false) ends the
  // broker's side once those writes are flushed. So the client gets every
  // reply for its complete frames, in order, then the broker closes; a frame
  // cut off by the FIN gets none (it never became a frame).
  it('a client that half-closes after its frames still gets every reply, then the broker closes and forgets it', async function () {
    const port = await startBroker();
    const other = await device(port);
    assert.equal(await other.request('[9,9,"before"]'), 'before');
    const half = await rawClient(port);
    sockets.push(half.socket);
    await waitFor(() => broker.connectionCount === 2, 'two connections');
    half.socket.end('[1,1,"half"] [2,2,"-"]\n[3,3,"open"][4,4,"cut off');
    await waitFor(() => half.closed, 'the broker to close the half-closed connection');
    assert.equal(text(half), 'half-open');
    assert.equal(half.ended, true, 'the broker ended its side cleanly (FIN)');
    assert.equal(half.error, undefined);
    await waitFor(() => broker.connectionCount === 1, 'the connection count back to 1');
    assert.equal(broker.readMailbox(4), undefined, 'the cut-off frame was not read');
    assert.equal(await other.request('[9,9,"after"]'), 'after');
    assertNoUncaught();
  });

  it('clients that reset in the middle of a frame are forgotten: the connection count returns and others are served', async function () {
    const port = await startBroker();
    const disconnects = [];
    broker.on('disconnect', (info) => disconnects.push(info.connectionId));
    const other = await device(port);
    assert.equal(await other.request('[9,9,"before"]'), 'before');
    const resetters = await Promise.all(Array.from({ length: 10 }, () => kit.connect(port)));
    for (const socket of resetters) {
      socket.on('error', () => {});
      sockets.push(socket);
      socket.write('[8,8,"' + 'x'.repeat(1000));
    }
    await waitFor(
      () => [...broker.connections.values()].filter((c) => c.reader.bufferedBytes === 1006).length === 10,
      'ten unfinished frames held',
    );
    const reset = typeof net.Socket.prototype.resetAndDestroy === 'function';
    for (const socket of resetters) {
      if (reset) socket.resetAndDestroy();
      else socket.destroy();
    }
    await waitFor(() => broker.connectionCount === 1, 'the connection count back to 1');
    assert.equal(disconnects.length, 10);
    assert.equal(broker.readMailbox(8), undefined, 'no half frame was read');
    assert.equal(await other.request('[9,9,"after"]'), 'after');
    console.log(
      `      reset: 10 clients ${reset ? 'reset (RST)' : 'destroyed'} mid-frame, all forgotten, others served`,
    );
    assertNoUncaught();
  });
});

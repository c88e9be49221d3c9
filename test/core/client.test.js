'use strict';
// The device role (docs/PROTOCOL.md, client mode): TcpmqClient against this project's broker,
// against a broker written like the field's ESP32 one, and against tiny test servers.
const assert = require('node:assert/strict');
const net = require('node:net');
const { TcpmqBroker, TcpmqClient, wireId, canonicalId } = require('../../dist');
const { Device, allClosed, freePort, openResources, quietFor, waitFor, trackOwnTimers } = require('../support');

/** @typedef {import('../../dist').ClientReply} ClientReply */
/** @typedef {import('../../dist').ClientStatus} ClientStatus */

/**
 * A TCP server on a free loopback port; `shutdown()` closes it and every connection.
 *
 * @param {(socket: net.Socket) => void} onSocket
 */
async function listen(onSocket) {
  const port = await freePort();
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    onSocket(socket);
  });
  /** @type {() => Promise<void>} */
  const shutdown = () =>
    new Promise((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
  const listening = Object.assign(server, { port, shutdown });
  await /** @type {Promise<void>} */ (new Promise((resolve) => server.listen(port, '127.0.0.1', resolve)));
  return listening;
}

/**
 * A server that records every chunk it receives (one string per chunk) and
 * answers each with what `answer(text, index)` returns: a string, a list of
 * [delayMs, text] writes, or undefined for no reply.
 *
 * @param {(text: string, index: number) => string | [number, string][] | undefined} answer
 */
async function testServer(answer) {
  /** @type {string[]} */
  const chunks = [];
  let connectionsMade = 0;
  const server = await listen((socket) => {
    connectionsMade++;
    socket.on('data', (chunk) => {
      const text = chunk.toString('utf8');
      const reply = answer(text, chunks.length);
      chunks.push(text);
      if (typeof reply === 'string') socket.write(reply);
      else if (Array.isArray(reply)) {
        for (const [delay, bytes] of reply) setTimeout(() => socket.destroyed || socket.write(bytes), delay);
      }
    });
  });
  const recorder = Object.assign(server, { chunks });
  Object.defineProperty(recorder, 'connectionsMade', { get: () => connectionsMade });
  // The getter just defined: how many connections the server has accepted so far.
  return /** @type {typeof recorder & { readonly connectionsMade: number }} */ (recorder);
}

/** Python's truthiness, for the ESP32 broker's `if s_data:`. */
function truthy(value) {
  if (value === null || value === undefined || value === false || value === 0 || value === '') return false;
  if (Array.isArray(value) || Buffer.isBuffer(value)) return value.length > 0;
  if (typeof value === 'object') return Object.keys(value).length > 0;
  return true;
}

/**
 * The field's ESP32 broker (reference/device-clients.md), in JavaScript: each
 * chunk read is parsed whole with JSON.parse (anything else is dropped
 * silently), `store[frame[0]] = frame[2]` keyed by the JSON value itself (a Map:
 * 1 and "1" are different keys), and the reply is `store.get(frame[1])` sent
 * raw, or `None` when it is falsy. A value that is neither text nor bytes makes
 * MicroPython's send() raise, which the broker swallows: no reply.
 */
async function esp32Broker() {
  const store = new Map();
  const server = await listen((socket) => {
    socket.on('data', (chunk) => {
      let frame;
      try {
        frame = JSON.parse(chunk.toString('utf8'));
        store.set(frame[0], frame[2]);
      } catch {
        return;
      }
      const value = store.get(frame[1]);
      if (!truthy(value)) socket.write('None');
      else if (typeof value === 'string' || Buffer.isBuffer(value)) socket.write(value);
    });
  });
  return Object.assign(server, {
    store,
    /** Every ~50 s the ESP32 broker sets every value to b'None': silent devices then read as None. */
    reset: () => {
      for (const key of store.keys()) store.set(key, Buffer.from('None'));
    },
  });
}

describe('wireId: ids typed as text, on the wire', function () {
  /** @type {[string, number][]} */
  const numbers = [
    ['1', 1],
    ['-1', -1],
    ['2.5', 2.5],
    ['0', 0],
    ['-0.25', -0.25],
    ['123456', 123456],
    ['1e+21', 1e21],
  ];
  const strings = [
    '01',
    '1.0',
    '+1',
    '-0',
    '1e3',
    '.5',
    '5.',
    ' 1',
    '1 ',
    '',
    'abc',
    'cmd',
    '0x10',
    'Infinity',
    'NaN',
    '12345678901234567890',
    '1,2',
    '温度',
  ];

  it('sends exactly the JSON text of a number as a number', function () {
    for (const [id, value] of numbers) assert.equal(wireId(id), value, `wireId(${JSON.stringify(id)})`);
  });

  it('sends anything else, including other spellings of numbers, as a string', function () {
    for (const id of strings) assert.equal(wireId(id), id, `wireId(${JSON.stringify(id)})`);
  });

  it("names the same mailbox on this project's broker as the text did", function () {
    for (const id of [...numbers.map(([text]) => text), ...strings]) {
      assert.equal(canonicalId(wireId(id)), id, `canonicalId(wireId(${JSON.stringify(id)}))`);
    }
  });
});

describe('TcpmqClient, the device role', function () {
  this.timeout(5000);
  let clients;
  let cleanups;

  beforeEach(function () {
    clients = [];
    cleanups = [];
  });

  afterEach(async function () {
    await Promise.all(clients.map((client) => client.stop()));
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  async function startBroker(options = {}) {
    const broker = new TcpmqBroker({ host: '127.0.0.1', port: await freePort(), ...options });
    broker.start();
    cleanups.push(() => broker.stop());
    await waitFor(() => broker.status.state === 'listening', 'the broker to listen');
    return broker;
  }

  async function server(answer) {
    const s = await testServer(answer);
    cleanups.push(() => s.shutdown());
    return s;
  }

  /**
   * A started client with quick test timings, and a log of what it emitted.
   *
   * @param {import('../../dist').ClientSettings} options
   */
  function startClient(options) {
    const client = Object.assign(
      new TcpmqClient({
        host: '127.0.0.1',
        pollInterval: 0.05,
        timeout: 1,
        retryMin: 0.05,
        retryMax: 0.2,
        ...options,
      }),
      {
        log: {
          /** @type {ClientStatus[]} */
          states: [],
          /** @type {ClientReply[]} */
          replies: [],
          /** @type {['online' | 'offline', string][]} */
          changes: [],
          /** @type {string[]} */
          warnings: [],
        },
      },
    );
    client.on('state', (s) => client.log.states.push(s));
    client.on('reply', (r) => client.log.replies.push(r));
    client.on('online', ({ id }) => client.log.changes.push(['online', id]));
    client.on('offline', ({ id }) => client.log.changes.push(['offline', id]));
    client.on('warning', (w) => client.log.warnings.push(w));
    clients.push(client);
    client.start();
    return client;
  }

  const lastReply = (client, id) => client.log.replies.filter((r) => r.id === id).at(-1);

  for (const format of /** @type {const} */ (['text', 'json'])) {
    describe(`against this project's broker, ${format} replies`, function () {
      it('publishes its payload in its own mailbox, and reads that mailbox when it watches nothing', async function () {
        const broker = await startBroker({ replyFormat: format });
        const wants = [];
        broker.on('request', (r) => wants.push([r.from, r.want]));
        const client = startClient({ port: broker.status.port, clientId: '3', replyFormat: format });
        await waitFor(() => wants.length >= 1, 'a request');
        // Before setPayload(): nothing, as every reader sees it.
        assert.equal(broker.readMailbox('3'), format === 'json' ? null : '');
        const reader = await Device.connect(broker.status.port);
        cleanups.push(() => reader.close());
        assert.equal(await reader.request('[9,3,"r"]'), format === 'json' ? 'null' : 'None');

        client.setPayload('26.5');
        await waitFor(() => broker.readMailbox('3') === '26.5', 'the string payload');
        assert.equal(await reader.request('[9,3,"r"]'), format === 'json' ? '"26.5"' : '26.5');
        client.setPayload({ t: 21 });
        await waitFor(
          () => /** @type {{ t?: number } | undefined} */ (broker.readMailbox('3'))?.t === 21,
          'the object payload',
        );
        client.setPayload(Buffer.from('温度'));
        await waitFor(() => broker.readMailbox('3') === '温度', 'the Buffer payload, as its UTF-8 text');
        client.setPayload(undefined);
        await waitFor(() => broker.readMailbox('3') === (format === 'json' ? null : ''), 'nothing again');

        assert.deepEqual(
          [...new Set(wants.filter(([from]) => from === '3').map(([, want]) => want))],
          ['3'],
          'it asks for its own mailbox',
        );
        assert.deepEqual(client.log.replies, [], 'its own mailbox read back is not a reply');
        assert.deepEqual(client.log.changes, []);
        assert.equal(client.status.state, 'connected');
      });

      it('emits the replies of watched ids written by devices and by the flow', async function () {
        const broker = await startBroker({ replyFormat: format });
        const device = await Device.connect(broker.status.port);
        cleanups.push(() => device.close());
        await device.request('[1,1,"26.5"]');
        broker.writeMailbox('cmd', { led: 'on' });
        const client = startClient({
          port: broker.status.port,
          clientId: 'pc',
          watch: ['1', 'cmd'],
          replyFormat: format,
        });
        await waitFor(() => lastReply(client, '1') && lastReply(client, 'cmd'), 'replies for both ids');

        const one = lastReply(client, '1');
        assert.equal(one.payload, '26.5');
        assert.ok(Buffer.isBuffer(one.raw));
        assert.equal(one.raw.toString(), format === 'json' ? '"26.5"' : '26.5');
        const cmd = lastReply(client, 'cmd');
        assert.deepEqual(cmd.payload, format === 'json' ? { led: 'on' } : '{"led":"on"}');
        assert.equal(cmd.raw.toString(), '{"led":"on"}');
        assert.deepEqual(client.log.changes.slice(0, 2), [
          ['online', '1'],
          ['online', 'cmd'],
        ]);

        // A new value from the device comes through on a later poll.
        await device.request('[1,1,"27.0"]');
        await waitFor(() => lastReply(client, '1').payload === '27.0', 'the new value');
      });

      it('rotates want over the watched ids, one request per poll interval', async function () {
        const broker = await startBroker({ replyFormat: format });
        const requests = [];
        broker.on('request', (r) => requests.push({ want: r.want, at: Date.now() }));
        startClient({ port: broker.status.port, clientId: '5', watch: ['1', '2', '3'], replyFormat: format });
        await waitFor(() => requests.length >= 7, 'seven requests');
        assert.deepEqual(
          requests.slice(0, 6).map((r) => r.want),
          ['1', '2', '3', '1', '2', '3'],
        );
        const spent = requests[6].at - requests[0].at;
        assert.ok(spent >= 6 * 45, `7 requests 50 ms apart took ${spent} ms`);
      });

      it('goes offline after offlineAfterNones empty replies, online again at the next real reply', async function () {
        const broker = await startBroker({ replyFormat: format });
        const client = startClient({
          port: broker.status.port,
          clientId: '5',
          watch: ['7'],
          offlineAfterNones: 3,
          replyFormat: format,
        });
        let emptyAtOffline;
        client.once('offline', () => (emptyAtOffline = client.counters.emptyReplies));
        await waitFor(() => client.log.changes.length === 1, 'offline');
        assert.deepEqual(client.log.changes, [['offline', '7']]);
        assert.equal(emptyAtOffline, 3, 'offline at the third None in a row');
        assert.deepEqual(client.watchState(), [{ id: '7', online: false, nones: 3 }]);

        broker.writeMailbox('7', 'back');
        await waitFor(() => client.log.changes.length === 2, 'online again');
        assert.deepEqual(client.log.changes[1], ['online', '7']);
        assert.equal(lastReply(client, '7').payload, 'back');
        assert.deepEqual(client.watchState(), [{ id: '7', online: true, nones: 0 }]);

        broker.clearMailbox('7');
        await waitFor(() => client.log.changes.length === 3, 'offline again');
        assert.deepEqual(client.log.changes[2], ['offline', '7']);
        // Five more polls, each answered None: still the one offline.
        const empty = client.counters.emptyReplies;
        await waitFor(() => client.counters.emptyReplies >= empty + 5, 'five more None replies');
        assert.equal(client.log.changes.length, 3, 'offline is reported once, not at every None');
        assert.equal(
          client.log.replies.filter((r) => r.payload === null || r.payload === 'None').length,
          0,
          'empty replies are not replies',
        );
      });
    });
  }

  it('sends numeric-looking ids as JSON numbers and others as strings, one frame per write', async function () {
    const recorder = await server(() => 'None');
    const client = startClient({ port: recorder.port, clientId: '-1', watch: ['1', '01', 'cmd', '2.5', '1.0'] });
    client.setPayload('26.5');
    await waitFor(() => recorder.chunks.length >= 6, 'six requests');
    assert.deepEqual(recorder.chunks.slice(0, 6), [
      '[-1,1,"26.5"]',
      '[-1,"01","26.5"]',
      '[-1,"cmd","26.5"]',
      '[-1,2.5,"26.5"]',
      '[-1,"1.0","26.5"]',
      '[-1,1,"26.5"]',
    ]);
    client.setPayload({ t: 21 });
    await waitFor(() => recorder.chunks.at(-1).endsWith('{"t":21}]'), 'the object payload');
    assert.match(recorder.chunks.at(-1), /^\[-1,(1|"01"|"cmd"|2\.5|"1\.0"),\{"t":21\}\]$/);
  });

  it('takes the watch list as a comma-separated string too, without duplicates or empty ids', async function () {
    const recorder = await server(() => 'None');
    const client = startClient({ port: recorder.port, clientId: 'pc', watch: ' 1, cmd,,1 ,2 ' });
    assert.deepEqual(client.options.watch, ['1', 'cmd', '2']);
    assert.deepEqual(new TcpmqClient({ watch: ['a', 'a', '', 'b'] }).options.watch, ['a', 'b']);
    await waitFor(() => recorder.chunks.length >= 4, 'four requests');
    assert.deepEqual(recorder.chunks.slice(0, 4), ['["pc",1,""]', '["pc","cmd",""]', '["pc",2,""]', '["pc",1,""]']);
  });

  it('takes a reply split over two reads as one reply, and never takes late bytes as the next reply', async function () {
    const recorder = await server((text, index) => {
      if (index === 0)
        return [
          [0, 'ab'],
          [5, 'cd'],
        ];
      if (index === 1)
        return [
          [0, 'ef'],
          [100, 'LATE'],
        ];
      return 'gh';
    });
    const client = startClient({ port: recorder.port, clientId: '1', watch: ['2'], pollInterval: 0.3 });
    await waitFor(() => client.log.replies.length >= 3, 'three replies');
    assert.deepEqual(
      client.log.replies.slice(0, 3).map((r) => r.payload),
      ['abcd', 'ef', 'gh'],
    );
    assert.equal(client.counters.strayBytes, 4);
    assert.match(client.log.warnings.join('\n'), /4 bytes .* no request waiting/);
  });

  it('json replies: null and None are nothing; text that is not JSON is passed on, with one warning', async function () {
    const answers = ['None', 'null', '"x"', 'not json', '{"a":[1]}', 'not json either'];
    const recorder = await server((text, index) => answers[index] ?? 'null');
    const client = startClient({
      port: recorder.port,
      clientId: '1',
      watch: ['2'],
      replyFormat: 'json',
      offlineAfterNones: 10,
    });
    await waitFor(() => client.log.replies.length >= 4, 'four replies');
    assert.deepEqual(
      client.log.replies.map((r) => r.payload),
      ['x', 'not json', { a: [1] }, 'not json either'],
    );
    assert.equal(client.log.warnings.length, 1, client.log.warnings.join('\n'));
    assert.match(client.log.warnings[0], /not JSON/);
  });

  it('reconnects with a doubling backoff after the broker stops, and publishes to the broker that comes back', async function () {
    let broker = await startBroker();
    const port = broker.status.port;
    const client = startClient({ port, clientId: '4', retryMin: 0.05, retryMax: 0.2 });
    client.setPayload('one');
    await waitFor(() => broker.readMailbox('4') === 'one', 'the first broker to get the payload');
    await broker.stop();
    await waitFor(() => client.log.states.filter((s) => s.state === 'error').length >= 4, 'four failed attempts');
    const errors = client.log.states.filter((s) => s.state === 'error');
    assert.deepEqual(
      errors.slice(0, 4).map((s) => s.retryIn),
      [50, 100, 200, 200],
    );
    assert.ok(
      errors.slice(1, 4).every((s) => s.code === 'ECONNREFUSED' && s.error.includes(`127.0.0.1:${port}`)),
      JSON.stringify(errors),
    );
    const afterFirstError = client.log.states.slice(client.log.states.indexOf(errors[0]) + 1).map((s) => s.state);
    assert.deepEqual(afterFirstError.slice(0, 4), ['connecting', 'error', 'connecting', 'error']);

    broker = await startBroker({ port });
    client.setPayload('two');
    await waitFor(() => broker.readMailbox('4') === 'two', 'the new broker on the same port to get the payload');
    assert.equal(client.status.state, 'connected');

    // A working connection resets the backoff.
    const seen = client.log.states.length;
    await broker.stop();
    await waitFor(() => client.log.states.slice(seen).some((s) => s.state === 'error'), 'the next failure');
    assert.equal(client.log.states.slice(seen).find((s) => s.state === 'error').retryIn, 50);
    assert.ok(client.counters.connections >= 2);
  });

  it('closes and reconnects when a broker does not reply within timeout', async function () {
    const silent = await server(() => undefined);
    const client = startClient({ port: silent.port, clientId: '1', watch: ['2'], timeout: 0.2, retryMin: 0.05 });
    await waitFor(() => silent.connectionsMade >= 2, 'a second connection');
    const timeout = client.log.states.find((s) => s.state === 'error');
    assert.equal(timeout.code, 'ETIMEDOUT');
    assert.match(timeout.error, /no reply from 127\.0\.0\.1:\d+ within 0\.2 s \(asked for "2"\)/);
    assert.ok(client.counters.timeouts >= 1);
  });

  it("reports a refused connection as a state, never as an 'error' event", async function () {
    const port = await freePort();
    const client = new TcpmqClient({ host: '127.0.0.1', port, clientId: '1', retryMin: 0.05 });
    clients.push(client);
    const states = [];
    client.on('state', (s) => states.push(s));
    client.start(); // no 'error' listener: an 'error' event would throw
    await waitFor(() => states.filter((s) => s.state === 'error').length >= 2, 'two refusals');
    const refused = states.find((s) => s.state === 'error');
    assert.equal(refused.code, 'ECONNREFUSED');
    assert.match(refused.error, new RegExp(`127\\.0\\.0\\.1:${port} refused the connection`));
  });

  it('reports an empty client id, and a port that is not a TCP port, without crashing', async function () {
    const noId = startClient({ port: 9, clientId: '' });
    assert.equal(noId.status.state, 'error');
    assert.equal(noId.status.code, 'EINVAL');
    assert.match(noId.status.error, /client id is empty/);
    const badPort = startClient({ port: 70000, clientId: '1' });
    await waitFor(() => badPort.status.state === 'error', 'the bad port');
    assert.match(badPort.status.error, /70000 is not a TCP port/);
  });

  it('keeps polling when listeners throw', async function () {
    const broker = await startBroker();
    broker.writeMailbox('2', 'x');
    const client = startClient({ port: broker.status.port, clientId: '1', watch: ['2'] });
    client.on('reply', () => {
      throw new Error('a broken flow');
    });
    client.on('state', () => {
      throw new Error('a broken status handler');
    });
    await waitFor(() => client.log.replies.length >= 3, 'three replies');
    assert.match(client.log.warnings.join('\n'), /a 'reply' listener failed: a broken flow/);
  });

  describe("against a broker written like the field's ESP32 one", function () {
    it('uses number keys for numeric ids, exchanges news with a field device, sees None as offline', async function () {
      const esp = await esp32Broker();
      cleanups.push(() => esp.shutdown());
      const client = startClient({ port: esp.port, clientId: '1', watch: ['-1'], offlineAfterNones: 3 });
      client.setPayload('26.5');
      await waitFor(() => esp.store.get(1) === '26.5', 'the payload stored under the number 1');
      assert.equal(esp.store.has('1'), false, 'not under the string "1"');

      // The field's ESP8266: json.dumps([-1, 1, '605']) with one send(), then recv(20).
      const sensor = await Device.connect(esp.port);
      cleanups.push(() => sensor.close());
      assert.equal(await sensor.request('[-1, 1, "605"]'), '26.5');
      await waitFor(() => lastReply(client, '-1'), "the sensor's news");
      assert.deepEqual(
        {
          id: lastReply(client, '-1').id,
          payload: lastReply(client, '-1').payload,
          raw: lastReply(client, '-1').raw.toString(),
        },
        { id: '-1', payload: '605', raw: '605' },
      );
      assert.deepEqual(client.log.changes, [['online', '-1']]);

      // The broker's periodic reset: a silent sensor reads as None, then as offline.
      esp.reset();
      await waitFor(() => client.log.changes.length === 2, 'offline');
      assert.deepEqual(client.log.changes[1], ['offline', '-1']);
      assert.equal(await sensor.request('[-1, 1, "606"]'), '26.5');
      await waitFor(() => client.log.changes.length === 3, 'online again');
      assert.deepEqual(client.log.changes[2], ['online', '-1']);
      assert.equal(lastReply(client, '-1').payload, '606');
    });

    it('with string ids and nothing set yet: its mailbox reads None to field devices', async function () {
      const esp = await esp32Broker();
      cleanups.push(() => esp.shutdown());
      const client = startClient({ port: esp.port, clientId: 'pc', watch: ['sensor'] });
      await waitFor(() => esp.store.has('pc'), 'the first request');
      const sensor = await Device.connect(esp.port);
      cleanups.push(() => sensor.close());
      assert.equal(await sensor.request('["sensor", "pc", "on"]'), 'None');
      await waitFor(() => lastReply(client, 'sensor'), "the sensor's news");
      assert.equal(lastReply(client, 'sensor').payload, 'on');
      assert.equal(client.status.state, 'connected', 'every request got a reply');
    });
  });

  describe('stop()', function () {
    it('leaves no socket or timer behind, whether polling, waiting for a reply, connecting or retrying', async function () {
      const before = openResources();
      const timers = trackOwnTimers();
      const broker = await startBroker();
      const silent = await server(() => undefined);
      const closedPort = await freePort();

      const polling = startClient({ port: broker.status.port, clientId: '1', watch: ['2'] });
      const waiting = startClient({ port: silent.port, clientId: '1', timeout: 5 });
      const retrying = startClient({ host: '127.0.0.1', port: closedPort, clientId: '1', retryMin: 5 });
      await waitFor(() => polling.counters.requests >= 3, 'polling');
      await waitFor(() => silent.chunks.length >= 1, 'a request waiting for its reply');
      await waitFor(() => retrying.status.state === 'error', 'a retry pending');
      const connecting = startClient({ port: broker.status.port, clientId: '1' });
      const never = new TcpmqClient({ port: broker.status.port, clientId: '1' });

      await Promise.all([polling.stop(), waiting.stop(), retrying.stop(), connecting.stop(), never.stop()]);
      for (const client of [polling, waiting, retrying, connecting]) {
        assert.equal(client.status.state, 'stopped');
        assert.equal(client.log.states.at(-1).state, 'stopped');
      }
      await waitFor(() => broker.connectionCount === 0, 'the broker to see the connections close', 1000);
      const requests = broker.counters.requests;
      await quietFor(150, 'request after stop()', () => broker.counters.requests !== requests);

      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
      await allClosed(before, timers);
      const after = openResources();
      // (Timers are counted by trackOwnTimers(): mocha keeps timers of its own.)
      for (const kind of ['TCPServerWrap', 'TCPSocketWrap']) {
        assert.ok(
          (after[kind] ?? 0) <= (before[kind] ?? 0),
          `${kind}: ${before[kind] ?? 0} before, ${after[kind] ?? 0} after`,
        );
      }
      assert.deepEqual(timers.stop(), [], 'timers of ours still alive');
    });

    it('can start again after stop()', async function () {
      const broker = await startBroker();
      const client = startClient({ port: broker.status.port, clientId: '1' });
      client.setPayload('a');
      await waitFor(() => broker.readMailbox('1') === 'a', 'first run');
      await client.stop();
      client.setPayload('b');
      client.start();
      await waitFor(() => broker.readMailbox('1') === 'b', 'second run');
    });
  });
});

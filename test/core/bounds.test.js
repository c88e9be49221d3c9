'use strict';
// What one misbehaving client cannot do: grow the device table without end, slow the
// broker for good devices after it has gone, forge log lines, or make two ids one.
const assert = require('node:assert/strict');
const { Devices } = require('../../dist/store/devices');
const { TcpmqClient, canonicalId, parseRequest, printable, wireId } = require('../../dist');
const { coreBrokerFixture, waitFor } = require('../support');

/** @typedef {import('../../dist').Request} Request */
/** @typedef {import('../../dist').NotARequest} NotARequest */

// parseRequest() of a frame's text, read as the request (or the refusal) the test expects: the other kind lacks
// the field the test reads, so the assertion on it fails.
const request = (/** @type {string} */ text) => /** @type {Request} */ (parseRequest(Buffer.from(text)));
const refusal = (/** @type {string} */ text) => /** @type {NotARequest} */ (parseRequest(Buffer.from(text)));

const sender = { remoteAddress: '127.0.0.1', remotePort: 1, connectionId: 1 };

describe('the device table is bounded (maxDevices)', function () {
  it('makes room for a new id by evicting the device offline longest, never an online one', function () {
    const offline = [];
    const devices = new Devices(1000, (device) => offline.push(device.id), 3);
    devices.heard('a', sender, 1, 0);
    devices.heard('b', sender, 1, 10);
    devices.heard('c', sender, 1, 20);
    devices.sweep(1015); // a and b go offline, a first
    assert.deepEqual(offline, ['a', 'b']);
    assert.equal(devices.admits('d'), true);
    devices.heard('d', sender, 1, 1016);
    assert.deepEqual(
      devices.table().map((d) => d.id),
      ['b', 'c', 'd'],
      'a, offline longest, made room',
    );
    devices.heard('e', sender, 1, 1017);
    assert.deepEqual(
      devices
        .table()
        .map((d) => d.id)
        .sort(),
      ['c', 'd', 'e'],
    );
    assert.equal(devices.admits('f'), false, 'every record is online: no room');
    assert.equal(devices.admits('c'), true, 'a known id is always admitted');
    assert.deepEqual(devices.takeChanges().removed.sort(), ['a', 'b']);
  });

  it('sweeps devices in the order they were last heard: a device heard again is not swept early', function () {
    const offline = [];
    const devices = new Devices(1000, (device) => offline.push(device.id));
    for (let n = 0; n < 50000; n++) devices.heard(`junk${n}`, sender, 'x', n / 100);
    devices.heard('junk0', sender, 'x', 600);
    assert.equal(devices.sweep(1250), 25000, 'those last heard at 250 ms or before');
    assert.equal(offline[0], 'junk1');
    assert.ok(!offline.includes('junk0'), 'heard again at 600 ms');
    assert.equal(devices.sweep(1250), 0, 'nothing more is due');
    assert.equal(devices.sweep(1600), 25000);
    assert.equal(devices.online, 0);
    assert.equal(devices.size, 50000);
  });
});

describe('a broker under a flood of junk ids', function () {
  const fixture = coreBrokerFixture();

  it('keeps at most maxDevices records, answers new ids at capacity, and serves known devices all along', async function () {
    const broker = await fixture.start({ maxDevices: 100, offlineAfter: 0.3 });
    const rejected = [];
    broker.on('rejected', (event) => rejected.push(event));
    const good = await fixture.connect();
    assert.equal(await good.request('[1,1,"good"]'), 'good');
    const junk = await fixture.connect();
    let frames = '';
    for (let n = 0; n < 500; n++) frames += `["junk${n}","junk${n}","x"]`;
    junk.send(frames);
    await junk.readBytes(500 * 'None'.length - 99 * 3, 5000);
    assert.equal(broker.deviceTable().length, 100, 'the table is full, no more');
    assert.equal(broker.counters.capacityRefused, 401);
    assert.equal(rejected.filter((e) => e.kind === 'capacity').length, 401);
    assert.match(rejected.find((e) => e.kind === 'capacity').reason, /maxDevices/);
    assert.equal(await good.request('[1,1,"still good"]'), 'still good', 'a known device is served at capacity');
    // Once the junk has gone silent, new ids take its place.
    await waitFor(() => broker.onlineCount === 0, 'the junk (and device 1) offline', 3000);
    assert.equal(await good.request('[1,1,"good again"]'), 'good again');
    assert.equal(await good.request('[2,1,"x"]'), 'good again');
    assert.equal(broker.deviceTable().length, 100);
    assert.ok(broker.devices.get('2'), 'a new id is recorded once there is an offline record to drop');
  });

  it('never drops mailboxes written by flows, and does not count them', async function () {
    const broker = await fixture.start({ maxDevices: 2, offlineAfter: 0.1 });
    for (let n = 0; n < 10; n++) broker.writeMailbox(`cmd${n}`, `flow ${n}`);
    const device = await fixture.connect();
    for (let n = 0; n < 6; n++) {
      await device.request(`["d${n}","cmd${n}","x"]`);
      await waitFor(() => broker.onlineCount === 0, `device d${n} to go offline`);
    }
    assert.ok(broker.deviceTable().length <= 2);
    for (let n = 0; n < 10; n++) assert.equal(broker.readMailbox(`cmd${n}`), `flow ${n}`);
  });
});

describe('ids are short names', function () {
  it('refuses an id longer than 128 bytes as a protocol error, by either parser', function () {
    const long = 'x'.repeat(129);
    assert.match(refusal(`["${long}",1,"x"]`).reason, /at most 128 bytes/);
    assert.match(refusal(`[1,"${long}",{"t":1}]`).reason, /at most 128 bytes/);
    assert.match(refusal(`["${'温'.repeat(43)}",1,"x"]`).reason, /at most 128 bytes/, '129 bytes of UTF-8');
    assert.equal(request(`["${'x'.repeat(128)}",1,"x"]`).from.length, 128);
  });
});

describe('integer ids keep every digit', function () {
  const ids = [
    '9007199254740991',
    '9007199254740992',
    '9007199254740993',
    '12345678901234567890',
    '12345678901234567891',
    '-12345678901234567891',
  ];

  it('names each 64-bit id by its own digits, through both parsers', function () {
    for (const id of ids) {
      assert.equal(request(`[${id},${id},"x"]`).from, id, `fast path, ${id}`);
      assert.equal(request(`[${id}, ${id}, {"t": 1}]`).want, id, `JSON.parse path, ${id}`);
      assert.equal(request(`[ ${id} ,"s\\"x", [1]]`).from, id, `odd spacing, ${id}`);
    }
    for (const [text, id] of [
      ['1', '1'],
      ['1.0', '1'],
      ['1e0', '1'],
      ['-0', '0'],
      ['2.5', '2.5'],
    ]) {
      assert.equal(request(`[${text},1,{"a":1}]`).from, id, `${text} is id ${id}`);
    }
    assert.equal(canonicalId(12), '12');
  });

  describe('over TCP', function () {
    const fixture = coreBrokerFixture();
    const [a, b] = ['12345678901234567890', '12345678901234567891'];

    it('keeps two ids a double cannot tell apart in two mailboxes, with exact ids in events and allowDevices', async function () {
      const broker = await fixture.start({ allowDevices: `${a}, -1` });
      const requests = [];
      broker.on('request', (event) => requests.push(event.from));
      const rejected = [];
      broker.on('rejected', (event) => rejected.push(event));
      const first = await fixture.connect();
      assert.equal(await first.request(`[${a},${a},"from a"]`), 'from a');
      const reader = await fixture.connect();
      assert.equal(await reader.request(`[-1,${a},"x"]`), 'from a');
      assert.equal(await reader.request(`[-1,${b},"x"]`), 'None', 'b is another mailbox');
      broker.writeMailbox(b, 'for b');
      assert.equal(await reader.request(`[-1,${b},"x"]`), 'for b');
      assert.equal(broker.readMailbox(a), 'from a');
      assert.deepEqual(requests, [a, '-1', '-1', '-1']);
      const second = await fixture.connect();
      second.send(`[${b},${b},"from b"]`);
      assert.equal(await second.closedWithin(1000), true, 'b is not in allowDevices');
      assert.equal(rejected[0].deviceId, b);
      const restored = new (require('../../dist').TcpmqBroker)();
      restored.restore(JSON.parse(JSON.stringify(broker.snapshot())));
      assert.equal(restored.readMailbox(a), 'from a', 'persist keeps the exact id');
      assert.equal(restored.readMailbox(b), 'for b');
    });

    it('sends a 20-digit id as a JSON number from client mode, every digit', async function () {
      const received = [];
      const net = require('node:net');
      const server = net.createServer((socket) => {
        socket.on('error', () => {});
        socket.on('data', (chunk) => {
          received.push(chunk.toString());
          socket.write('None');
        });
      });
      await /** @type {Promise<void>} */ (new Promise((resolve) => server.listen(0, '127.0.0.1', resolve)));
      const client = new TcpmqClient({
        host: '127.0.0.1',
        port: /** @type {import('node:net').AddressInfo} */ (server.address()).port,
        clientId: a,
        watch: b,
        pollInterval: 0.05,
      });
      try {
        client.start();
        await waitFor(() => received.length > 0, 'a request');
        assert.equal(received[0], `[${a},${b},""]`);
        assert.equal(wireId(a), a, 'no double holds it: wireId() gives the text, the frame the digits');
      } finally {
        await client.stop();
        await new Promise((resolve) => server.close(resolve));
      }
    });
  });
});

describe('printable: device text in a log line', function () {
  it('escapes newlines, other controls, separators and bidirectional overrides, and cuts long text', function () {
    assert.equal(printable('a\nb'), '"a\\nb"');
    assert.equal(printable('\u0085\u2028\u202e\u001b'), '"\\u0085\\u2028\\u202e\\u001b"');
    assert.doesNotMatch(printable('x\r\n[error] forged'), /[\r\n]/);
    assert.match(printable('y'.repeat(1000)), /^"y{64}"\.\.\. \(1000 characters\)$/);
  });
});

'use strict';
// New settings on a running broker or client (what a deploy hands to the node's
// next instance): open connections, mailboxes, devices and counters carry on.
const assert = require('node:assert/strict');
const { TcpmqBroker, TcpmqClient } = require('../../dist');
const { Device, coreBrokerFixture, freePort, waitFor, trackOwnTimers } = require('../support');

describe('configure(): a running broker takes new settings', function () {
  const fixture = coreBrokerFixture();
  let broker;

  async function startBroker(options = {}) {
    broker = await fixture.start(options);
    return broker;
  }

  const connect = (port) => fixture.connect(port);

  /** Settings as the node passes them: every option, the changed ones from `changes`. */
  const settings = (changes = {}) => ({ ...broker.options, ...changes });

  // Tests that make a broker of their own leave it here.
  afterEach(async function () {
    if (broker) await broker.stop();
    broker = undefined;
  });

  it('keeps the listener, connections, mailboxes, devices, counters and numbering when only live settings change', async function () {
    await startBroker({ offlineAfter: 30 });
    const device = await connect();
    assert.equal(await device.request('[1,1,"26.5"]'), '26.5');
    broker.writeMailbox('cmd', 'led on');
    const online = [];
    broker.on('online', (record) => online.push(record.id));
    broker.configure(
      settings({ offlineAfter: 20, idleTimeout: 30, maxConnections: 50, maxFrameBytes: 4096, allowDevices: '1, 2' }),
    );
    assert.equal(broker.status.state, 'listening');
    assert.equal(await device.request('[1,"cmd","26.6"]'), 'led on');
    assert.equal(device.closed, false);
    assert.equal(broker.counters.connections, 1);
    assert.equal(broker.counters.requests, 2);
    assert.deepEqual(online, [], 'no second online for a device that never left');
    const second = await connect();
    await second.request('[2,1,"x"]');
    assert.deepEqual(
      broker.connectionTable().map((c) => c.connectionId),
      [1, 2],
    );
    assert.equal(broker.options.maxConnections, 50);
  });

  it('answers in the new reply dialect at once, mailbox replies encoded before included', async function () {
    await startBroker({ replyFormat: 'text' });
    const device = await connect();
    broker.writeMailbox('cmd', 'led on');
    assert.equal(await device.request('[1,"cmd","x"]'), 'led on');
    assert.equal(await device.request('[1,9,"x"]'), 'None');
    broker.configure(settings({ replyFormat: 'json' }));
    assert.equal(await device.request('[1,"cmd","x"]'), '"led on"');
    assert.equal(await device.request('[1,9,"x"]'), 'null');
  });

  it('closes the connections a new allowDevices or allowFrom no longer admits, and says so', async function () {
    await startBroker();
    const keep = await connect();
    const drop = await connect();
    await keep.request('[1,1,"a"]');
    await drop.request('[2,2,"b"]');
    const rejected = [];
    broker.on('rejected', (event) => rejected.push(event));
    broker.configure(settings({ allowDevices: '1' }));
    assert.equal(await drop.closedWithin(1000), true, 'device 2 is refused now');
    assert.equal(await keep.request('[1,1,"still here"]'), 'still here');
    assert.deepEqual(
      rejected.map((e) => [e.kind, e.deviceId]),
      [['unknown-device', '2']],
    );
    assert.equal(broker.counters.closedBySettings, 1);

    broker.configure(settings({ allowFrom: '10.0.0.0/8' }));
    assert.equal(await keep.closedWithin(1000), true, 'loopback is not in 10.0.0.0/8');
    assert.equal(rejected.at(-1).kind, 'forbidden');
    assert.equal(broker.counters.closedBySettings, 2);
  });

  it('marks devices offline at the new offlineAfter', async function () {
    await startBroker({ offlineAfter: 30 });
    const device = await connect();
    await device.request('[1,1,"a"]');
    const offline = [];
    broker.on('offline', (record) => offline.push(record.id));
    broker.configure(settings({ offlineAfter: 0.2 }));
    await waitFor(() => offline.length === 1, 'device 1 offline after 0.2 s', 2000);
    assert.equal(broker.readMailbox(1), undefined, "a silent device's news expires");
  });

  it('moves to a new port: the new listener first, then the old one and its connections close; state moves', async function () {
    await startBroker();
    const oldPort = broker.status.port;
    const device = await connect();
    await device.request('[1,1,"26.5"]');
    broker.writeMailbox('cmd', 'led on');
    const states = [];
    broker.on('state', (status) => states.push(`${status.state}:${status.port}`));
    const newPort = await freePort();
    broker.configure(settings({ port: newPort }));
    await waitFor(() => broker.status.state === 'listening' && broker.status.port === newPort, 'the new port');
    assert.equal(await device.closedWithin(1000), true, "the old listener's connections close");
    await assert.rejects(Device.connect(oldPort), /ECONNREFUSED/);
    const moved = await connect(newPort);
    assert.equal(await moved.request('[2,"cmd","x"]'), 'led on');
    assert.equal(await moved.request('[2,1,"x"]'), '26.5', "device 1's news moved (it is still online)");
    assert.equal(broker.deviceTable().length, 2);
    assert.equal(broker.counters.connections, 2);
    assert.deepEqual(
      broker.connectionTable().map((c) => c.connectionId),
      [2],
      'numbering goes on',
    );
    assert.deepEqual(states, [`starting:${newPort}`, `listening:${newPort}`]);
  });

  it('rebinds the same port for a new host, never reporting the port as taken by itself', async function () {
    broker = new TcpmqBroker({ host: '0.0.0.0', port: await freePort() });
    broker.start();
    await waitFor(() => broker.status.state === 'listening', 'the broker to listen');
    const port = broker.status.port;
    const device = await connect(port);
    await device.request('[1,1,"a"]');
    const states = [];
    broker.on('state', (status) => states.push(status.state));
    broker.configure(settings({ host: '127.0.0.1' }));
    await waitFor(
      () => broker.status.state === 'listening' && broker.status.host === '127.0.0.1',
      'listening on 127.0.0.1',
    );
    assert.ok(!states.includes('error'), `states: ${states.join(', ')}`);
    const again = await connect(port);
    assert.equal(await again.request('[2,1,"x"]'), 'a');
  });

  it('leaves no listener, socket or timer behind after moves and stop()', async function () {
    const timers = trackOwnTimers();
    await startBroker();
    for (let round = 0; round < 3; round++) {
      broker.configure(settings({ port: await freePort(), idleTimeout: 10 + round, offlineAfter: 5 + round }));
      await waitFor(() => broker.status.state === 'listening', 'listening after the move');
    }
    const port = broker.status.port;
    await broker.stop();
    broker = undefined;
    await waitFor(
      () => timers.alive().length === 0,
      () => `our timers to end (${timers.alive().length} alive)`,
    );
    assert.deepEqual(timers.stop(), [], 'timers of ours still alive');
    await assert.rejects(Device.connect(port), /ECONNREFUSED/);
  });

  it('takes settings before start() and binds with them', async function () {
    broker = new TcpmqBroker({ host: '127.0.0.1', port: await freePort() });
    const port = await freePort();
    broker.configure(settings({ port, replyFormat: 'json' }));
    broker.start();
    await waitFor(() => broker.status.state === 'listening', 'the broker to listen');
    assert.equal(broker.status.port, port);
    const device = await connect(port);
    assert.equal(await device.request('[1,1,"x"]'), '"x"');
  });
});

describe('configure(): a running client takes new settings', function () {
  let broker;
  let client;

  beforeEach(async function () {
    broker = new TcpmqBroker({ host: '127.0.0.1', port: await freePort() });
    broker.start();
    await waitFor(() => broker.status.state === 'listening', 'the broker to listen');
  });

  afterEach(async function () {
    if (client) await client.stop();
    await broker.stop();
  });

  it('keeps its connection and watched states; the next requests use the new watch list and interval', async function () {
    broker.writeMailbox('a', 'A');
    broker.writeMailbox('b', 'B');
    client = new TcpmqClient({
      host: '127.0.0.1',
      port: broker.status.port,
      clientId: 'nr',
      watch: 'a',
      pollInterval: 0.05,
    });
    const replies = [];
    client.on('reply', (reply) => replies.push(reply.id));
    client.start();
    await waitFor(() => replies.includes('a'), 'a read');
    client.configure({ ...client.options, watch: 'a, b', pollInterval: 0.02 });
    await waitFor(() => replies.includes('b'), 'b read after the change');
    assert.equal(broker.counters.connections, 1, 'one connection throughout');
    assert.equal(client.counters.connections, 1);
    assert.deepEqual(
      client.watchState().map((w) => [w.id, w.online]),
      [
        ['a', true],
        ['b', true],
      ],
    );
  });

  it('connects to a new port at once when the port changes', async function () {
    const other = new TcpmqBroker({ host: '127.0.0.1', port: await freePort() });
    other.start();
    await waitFor(() => other.status.state === 'listening', 'the second broker to listen');
    try {
      client = new TcpmqClient({ host: '127.0.0.1', port: broker.status.port, clientId: 'nr', pollInterval: 0.05 });
      client.start();
      await waitFor(() => broker.counters.requests > 0, 'a request to the first broker');
      client.configure({ ...client.options, port: other.status.port });
      await waitFor(() => other.counters.requests > 0, 'a request to the second broker', 2000);
      assert.equal(client.status.port, other.status.port);
      await waitFor(() => broker.connectionCount === 0, 'the first connection closed');
    } finally {
      await client.stop();
      client = undefined;
      await other.stop();
    }
  });

  it('starts once it is given an id, having been stopped by an empty one', async function () {
    client = new TcpmqClient({ host: '127.0.0.1', port: broker.status.port, clientId: '' });
    client.start();
    assert.equal(client.status.code, 'EINVAL');
    client.configure({ ...client.options, clientId: 'nr' });
    await waitFor(() => client.status.state === 'connected', 'connected with an id');
  });
});

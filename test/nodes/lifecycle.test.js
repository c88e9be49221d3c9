'use strict';
// Deploys, redeploys and closes: the running broker is handed from one node instance to the next;
// no EADDRINUSE, no lost device connection or mailbox, nothing left open.
const assert = require('node:assert/strict');
const { Device, allClosed, freePort, openResources, waitFor, trackOwnTimers } = require('../support');
const { helper, brokerConfig, deploy, listening, messagesOf, nodeRedFixture } = require('./flow');

describe('deploying and closing tcpmq flows', function () {
  const fixture = nodeRedFixture();
  let port;
  // The port fixture picked for this test (its beforeEach runs first).
  beforeEach(() => (port = fixture.port));

  const flow = (inSettings = {}) => [
    brokerConfig(port, { offlineAfter: 5 }),
    { id: 'in', type: 'tcpmq-in', broker: 'broker', ...inSettings, wires: [['sink']] },
    { id: 'sink', type: 'helper' },
  ];

  const connect = () => fixture.connect();

  it('redeploys twice on the same port and leaves no socket, server or timer open', async function () {
    const before = openResources();
    const timers = trackOwnTimers();
    for (let round = 0; round < 3; round++) {
      await deploy(flow());
      const device = await connect();
      assert.equal(await device.request(`[1,1,"round ${round}"]`), `round ${round}`);
      await helper.unload();
      assert.equal(await device.closedWithin(1000), true, 'closing the flow closes device connections');
    }
    await allClosed(before, timers);
    const after = openResources();
    for (const kind of ['TCPServerWrap', 'TCPSocketWrap']) {
      assert.ok(
        (after[kind] ?? 0) <= (before[kind] ?? 0),
        `${kind}: ${before[kind] ?? 0} before, ${after[kind] ?? 0} after`,
      );
    }
    assert.deepEqual(timers.stop(), [], 'timers of ours still alive');
    await deploy(flow());
  });

  it('keeps device connections through a modified-nodes deploy, with no duplicated messages', async function () {
    await deploy(flow());
    const device = await connect();
    assert.equal(await device.request('[1,1,"before"]'), 'before');
    await helper.setFlows(flow({ name: 'renamed' }), 'nodes');
    const received = messagesOf('sink');
    assert.equal(device.closed, false, 'the device connection survives');
    assert.equal(await device.request('[1,1,"after"]'), 'after');
    assert.equal(await device.request('[1,1,"next"]'), 'next');
    // A duplicate of "after" would reach the flow before "next" does.
    await waitFor(() => received.some((m) => m.payload === 'next'), 'the second message');
    assert.deepEqual(
      received.map((m) => m.payload),
      ['after', 'next'],
    );
  });

  it('keeps every device connection, mailbox and device record through full deploys', async function () {
    const fullFlow = (brokerSettings = {}) => [
      brokerConfig(port, { offlineAfter: 5, ...brokerSettings }),
      { id: 'in', type: 'tcpmq-in', broker: 'broker', wires: [['sink']] },
      { id: 'out', type: 'tcpmq-out', broker: 'broker', device: 'cmd', wires: [] },
      { id: 'status', type: 'tcpmq-status', broker: 'broker', wires: [['events']] },
      { id: 'sink', type: 'helper' },
      { id: 'events', type: 'helper' },
    ];
    await deploy(fullFlow());
    let events = messagesOf('events');
    const device = await connect();
    assert.equal(await device.request('[1,1,"a"]'), 'a');
    helper.getNode('out').receive({ payload: 'led on' });
    await waitFor(() => helper.getNode('broker').broker.readMailbox('cmd') === 'led on', 'the flow to write cmd');
    await waitFor(() => events.length === 1, 'device 1 online');
    const onlineEvents = [...events];
    for (let round = 0; round < 5; round++) {
      await helper.setFlows(fullFlow({ name: `round ${round}` }), 'full');
      events = messagesOf('events');
      const received = messagesOf('sink');
      assert.equal(
        await device.request(`[1,"cmd","r${round}"]`),
        'led on',
        `round ${round}: the flow's mailbox survives`,
      );
      assert.equal(await device.request(`[2,1,"r${round}"]`), `r${round}`, `round ${round}: device 1's news survives`);
      // Online events are sent before the request's message: they have come by now.
      await waitFor(() => received.length === 2, `round ${round}: both requests reach the flow`);
      onlineEvents.push(...events.filter((m) => m.payload !== 'online' || m.topic !== '2'));
    }
    assert.equal(device.closed, false, 'the connection was never closed');
    const broker = helper.getNode('broker').broker;
    assert.equal(broker.counters.connections, 1, 'one connection in all');
    assert.deepEqual(
      broker.deviceTable().map((d) => [d.id, d.messages, d.online]),
      [
        ['1', 6, true],
        ['2', 5, true],
      ],
    );
    assert.deepEqual(
      onlineEvents.map((m) => `${m.topic} ${m.payload}`),
      ['1 online'],
      'device 1 came online once',
    );
    const errors = helper.log().args.filter(([entry]) => entry.level === helper.log().ERROR);
    assert.deepEqual(
      errors.map(([entry]) => entry.msg),
      [],
    );
  });

  it('applies changed settings to the running broker: reply dialect at once, a refused device closed and reported', async function () {
    const settingsFlow = (brokerSettings) => [
      brokerConfig(port, brokerSettings),
      { id: 'status', type: 'tcpmq-status', broker: 'broker', wires: [['events']] },
      { id: 'events', type: 'helper' },
    ];
    await deploy(settingsFlow({}));
    const one = await connect();
    const two = await connect();
    assert.equal(await one.request('[1,1,"a"]'), 'a');
    assert.equal(await two.request('[2,9,"b"]'), 'None');
    await helper.setFlows(settingsFlow({ replyFormat: 'json', allowDevices: '1' }), 'full');
    const events = messagesOf('events');
    assert.equal(await two.closedWithin(1000), true, 'device 2 is not in allowDevices any more');
    assert.equal(await one.request('[1,1,"a"]'), '"a"', 'json replies on the same connection');
    await waitFor(() => events.some((m) => m.payload === 'error'), 'an error message on tcpmq-status');
    const error = events.find((m) => m.payload === 'error');
    assert.deepEqual([error.kind, error.topic], ['unknown-device', '2']);
    assert.match(error.error, /no longer in allowDevices/);
    assert.equal(one.closed, false);
  });

  it('frees the port at once when a deploy deletes the broker', async function () {
    await deploy(flow());
    const device = await connect();
    await device.request('[1,1,"a"]');
    await helper.setFlows([{ id: 'other', type: 'helper' }], 'full');
    assert.equal(await device.closedWithin(1000), true, 'the deleted broker closes its connections');
    await waitFor(
      async () => {
        try {
          (await Device.connect(port)).close();
          return false;
        } catch {
          return true;
        }
      },
      'the port to be free',
      1000,
    );
  });

  it('stops a broker no new instance takes over once the flows have started (its tab disabled)', async function () {
    const onTab = (disabled) => [
      { id: 'tab', type: 'tab', label: 'hall', disabled },
      { ...brokerConfig(port), z: 'tab' },
      { id: 'in', type: 'tcpmq-in', z: 'tab', broker: 'broker', wires: [[]] },
    ];
    await deploy(onTab(false));
    const device = await connect();
    await device.request('[1,1,"a"]');
    await helper.setFlows(onTab(true), 'full');
    assert.equal(await device.closedWithin(1000), true, 'nobody took the broker over: it stopped');
    await assert.rejects(Device.connect(port), /ECONNREFUSED/);
  });

  it('redeploys 20 times while devices keep sending: no EADDRINUSE, no duplicates, nothing left open', async function () {
    this.timeout(60000);
    const before = openResources();
    const timers = trackOwnTimers();
    await deploy(flow());
    let replies = 0;
    let wrong = 0;
    let sending = true;
    // Two devices that, like the published ESP8266 client, stop for good if their connection closes.
    const talk = async (id) => {
      const device = await Device.connect(port);
      try {
        for (let n = 0; sending; n++) {
          if ((await device.request(`[${id},${id},"${id}-${n}"]`, 2000)) !== `${id}-${n}`) wrong++;
          replies++;
        }
      } finally {
        device.close();
      }
    };
    const talkers = [talk(1), talk(2)];
    for (let round = 0; round < 20; round++) {
      const type = round % 2 === 0 ? 'full' : 'nodes';
      await helper.setFlows(flow({ name: `round ${round}` }), type);
      await listening();
      const received = messagesOf('sink');
      const repliesBefore = replies;
      await waitFor(() => replies >= repliesBefore + 4, `replies after redeploy ${round}`);
      // Each request is one message: as many messages as requests made since, never twice as many.
      const counted = received.length;
      assert.ok(
        counted <= replies - repliesBefore + 2,
        `round ${round}: ${counted} messages for ${replies - repliesBefore} replies`,
      );
    }
    sending = false;
    await Promise.all(talkers); // a dropped connection rejects here
    assert.equal(wrong, 0, 'wrong replies');
    assert.equal(helper.getNode('broker').broker.counters.connections, 2, 'two connections in all: none was dropped');
    const errors = helper.log().args.filter(([entry]) => entry.level === helper.log().ERROR);
    assert.deepEqual(
      errors.map(([entry]) => entry.msg),
      [],
    );
    await helper.unload();
    await allClosed(before, timers);
    const after = openResources();
    const ownTimers = timers.stop();
    console.log(
      `      open before: ${JSON.stringify(before)}; after 20 redeploys and unload: ${JSON.stringify(after)}; timers of ours alive: ${ownTimers.length}`,
    );
    for (const kind of ['TCPServerWrap', 'TCPSocketWrap']) {
      assert.ok(
        (after[kind] ?? 0) <= (before[kind] ?? 0),
        `${kind}: ${before[kind] ?? 0} before, ${after[kind] ?? 0} after`,
      );
    }
    assert.deepEqual(ownTimers, [], 'timers of ours still alive');
    await deploy(flow());
  });

  it('moves to a new port when the broker port changes, mailboxes and devices with it', async function () {
    await deploy(flow());
    const before = await connect();
    await before.request('[1,1,"26.5"]');
    helper.getNode('broker').broker.writeMailbox('cmd', 'led on');
    const oldPort = port;
    port = fixture.port = await freePort();
    await helper.setFlows(flow(), 'full');
    await listening();
    assert.equal(helper.getNode('broker').broker.status.port, port);
    assert.equal(await before.closedWithin(1000), true, 'connections to the old port close');
    const device = await connect();
    assert.equal(await device.request('[2,"cmd","x"]'), 'led on');
    assert.equal(await device.request('[2,1,"x"]'), '26.5');
    assert.equal(await device.request('[1,1,"moved"]'), 'moved');
    await assert.rejects(Device.connect(oldPort), /ECONNREFUSED/);
    assert.equal(helper.getNode('broker').broker.counters.connections, 2);
  });
});

'use strict';
// tcpmq-broker in mode `fleet` in a real Node-RED (node-red-node-test-helper), attached through an mqtt-broker
// node to an MQTT broker in memory where gateway hall-a shares its boards (test/nodes/fleet-bus.js): the rules of
// docs/PROTOCOL.md, sharing, as the user nodes see them. With mosquitto and tcpmq-gateway: test/e2e/fleet-*.
const assert = require('node:assert/strict');
const { coreBrokerFixture, waitFor } = require('../support');
const { helper, NODES, messagesOf, nodeRedFixture } = require('./flow');
const { mqttBrokerNode, fleetFixture } = require('./fleet-bus');

describe('tcpmq-broker in fleet mode, on an MQTT broker node', function () {
  nodeRedFixture();
  const cores = coreBrokerFixture();
  const fleet = fleetFixture(cores);

  /** Node-RED attached to the fleet as `node-red-a`, with every user node of the broker (no node id may be
   * a value of another node's property: Node-RED would take it for a config node). */
  const flow = (broker = {}) => [
    { id: 'tab', type: 'tab', label: 'fleet' },
    { id: 'mq', type: 'mqtt-broker', name: 'in memory' },
    {
      id: 'broker',
      type: 'tcpmq-broker',
      mode: 'fleet',
      share: 'mq',
      shareTopic: 'tcpmq',
      name: 'node-red-a',
      ...broker,
    },
    { id: 'in', type: 'tcpmq-in', z: 'tab', broker: 'broker', device: '', wires: [['received']] },
    { id: 'status', type: 'tcpmq-status', z: 'tab', broker: 'broker', device: '', wires: [['statuses']] },
    { id: 'out', type: 'tcpmq-out', z: 'tab', broker: 'broker', device: '', ttl: 0, wires: [] },
    { id: 'sender', type: 'tcpmq-out', z: 'tab', broker: 'broker', device: '', action: 'send', wires: [] },
    { id: 'closer', type: 'tcpmq-out', z: 'tab', broker: 'broker', device: '', action: 'close', wires: [] },
    { id: 'catcher', type: 'catch', z: 'tab', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'received', type: 'helper', z: 'tab' },
    { id: 'statuses', type: 'helper', z: 'tab' },
    { id: 'caught', type: 'helper', z: 'tab' },
  ];

  /** Deploys `flow` and waits until the broker's user nodes show the MQTT connection up (a green dot). */
  async function deployFleet(nodes = flow()) {
    await helper.load([...NODES, mqttBrokerNode(fleet.bus)], nodes);
    const inNode = helper.getNode('in');
    await waitFor(
      () => inNode.status.lastCall?.args[0].fill === 'green',
      () => `a green dot on tcpmq in, not ${JSON.stringify(inNode.status.lastCall?.args[0])}`,
    );
  }

  /** What went out on the bus on `topic`, in order. */
  const publishedOn = (topic) => fleet.bus.published.filter((m) => m.topic === topic);

  /** The device table that tcpmq status answers an input with. */
  async function deviceTable() {
    const tables = messagesOf('statuses');
    helper.getNode('status').receive({ payload: 'table' });
    await waitFor(() => tables.some((m) => Array.isArray(m.payload)), 'the device table from tcpmq status');
    return tables.find((m) => Array.isArray(m.payload)).payload;
  }

  it("sends a remote gateway's report to tcpmq in, and never the retained one it found", async function () {
    const hallA = await fleet.gateway('hall-a');
    const board = await hallA.connect();
    assert.equal(await board.request('[1,1,"before Node-RED"]'), 'before Node-RED');
    await waitFor(() => fleet.bus.retained.has('tcpmq/mailbox/1'), "board 1's retained mailbox on the bus");
    await deployFleet();
    const received = messagesOf('received');
    // The retained report is state: the device table has it (so it has been taken in), no flow message.
    await waitFor(
      async () => (await deviceTable()).some((row) => row.id === '1'),
      'board 1 in the device table of tcpmq status',
    );
    assert.equal(await board.request('[1,1,"news"]'), 'news');
    await waitFor(() => received.length > 0, "the board's report at tcpmq in");
    assert.deepEqual(
      received.map((m) => [m.topic, m.payload, m.gateway]),
      [['1', 'news', 'hall-a']],
      'one flow message, the report made after the deploy, from gateway hall-a',
    );
  });

  it('writes a mailbox through <prefix>/mailbox/<id>/set (with /<ttl> for msg.ttl), never the retained topic', async function () {
    const hallA = await fleet.gateway('hall-a');
    const board = await hallA.connect();
    await deployFleet();
    helper.getNode('out').receive({ topic: 'cmd', payload: 'led on' });
    await waitFor(() => publishedOn('tcpmq/mailbox/cmd/set').length === 1, 'a write on tcpmq/mailbox/cmd/set');
    helper.getNode('out').receive({ topic: 'cmd', payload: { led: 'blink' }, ttl: 30 });
    await waitFor(() => publishedOn('tcpmq/mailbox/cmd/set/30').length === 1, 'a write on tcpmq/mailbox/cmd/set/30');
    assert.deepEqual(
      [...publishedOn('tcpmq/mailbox/cmd/set'), ...publishedOn('tcpmq/mailbox/cmd/set/30')],
      [
        { topic: 'tcpmq/mailbox/cmd/set', payload: '"led on"', retain: false },
        { topic: 'tcpmq/mailbox/cmd/set/30', payload: '{"led":"blink"}', retain: false },
      ],
    );
    // The owner, hall-a, takes the writes and publishes them as its own: its boards read them.
    await waitFor(
      async () => (await board.request('[1,"cmd","x"]')) === '{"led":"blink"}',
      'a board on hall-a to read the second write',
    );
    const retained = publishedOn('tcpmq/mailbox/cmd').map((m) => JSON.parse(m.payload).gateway);
    assert.ok(retained.length >= 1, 'hall-a published mailbox cmd');
    assert.deepEqual(
      [...new Set(retained)],
      ['hall-a'],
      'tcpmq/mailbox/cmd published by its owner alone, never by Node-RED',
    );
  });

  it("sends bytes to a board and closes its connection through its gateway's command topics", async function () {
    const hallA = await fleet.gateway('hall-a');
    const board = await hallA.connect();
    await deployFleet();
    const received = messagesOf('received');
    await board.request('[7,7,"here"]');
    // tcpmq in's message names the gateway: from then on, Node-RED knows where board 7 is.
    await waitFor(() => received.some((m) => m.topic === '7' && m.gateway === 'hall-a'), 'board 7 heard from hall-a');
    helper.getNode('sender').receive({ topic: '7', payload: 'ping\n' });
    assert.equal((await board.nextChunk()).toString(), 'ping\n', 'the bytes at the board');
    assert.deepEqual(
      publishedOn('tcpmq/gateway/hall-a/send').map((m) => JSON.parse(m.payload)),
      [{ device: '7', data: 'ping\n' }],
    );
    helper.getNode('sender').receive({ topic: 'elsewhere', gateway: 'hall-b', connectionId: 3, payload: 'x' });
    await waitFor(() => publishedOn('tcpmq/gateway/hall-b/send').length === 1, 'a send on hall-b, as msg.gateway says');
    assert.deepEqual(JSON.parse(publishedOn('tcpmq/gateway/hall-b/send')[0].payload), { connectionId: 3, data: 'x' });
    helper.getNode('closer').receive({ topic: '7' });
    assert.equal(await board.closedWithin(3000), true, "hall-a closes board 7's connection");
    assert.deepEqual(
      publishedOn('tcpmq/gateway/hall-a/close').map((m) => JSON.parse(m.payload)),
      [{ device: '7' }],
    );
  });

  it("lists the fleet's devices with their gateway, and reports them online and offline", async function () {
    const hallA = await fleet.gateway('hall-a', { offlineAfter: 0.3 });
    await deployFleet();
    const statuses = messagesOf('statuses');
    const board = await hallA.connect();
    await board.request('[4,4,"21.5"]');
    await waitFor(() => statuses.some((m) => m.payload === 'online'), 'board 4 online at tcpmq status');
    const rows = await deviceTable();
    assert.deepEqual(
      rows.map((row) => [row.id, row.online, row.gateway]),
      [['4', true, 'hall-a']],
    );
    // Silent past hall-a's offlineAfter (0.3 s): hall-a says offline, and so does tcpmq status.
    await waitFor(() => statuses.some((m) => m.payload === 'offline'), 'board 4 offline at tcpmq status');
    assert.deepEqual(
      statuses
        .filter((m) => m.payload === 'online' || m.payload === 'offline')
        .map((m) => [m.topic, m.payload, m.gateway]),
      [
        ['4', 'online', 'hall-a'],
        ['4', 'offline', 'hall-a'],
      ],
    );
  });

  it("takes a gateway's boards offline at once when its will says it is gone", async function () {
    const hallA = await fleet.gateway('hall-a', { offlineAfter: 60 });
    await deployFleet();
    const statuses = messagesOf('statuses');
    await (await hallA.connect()).request('[5,5,"on"]');
    await waitFor(() => statuses.some((m) => m.payload === 'online'), 'board 5 online at tcpmq status');
    fleet.bus.publish('tcpmq/gateway/hall-a', JSON.stringify({ online: false }), true);
    await waitFor(
      () => statuses.some((m) => m.payload === 'offline'),
      'board 5 offline at once (offlineAfter is 60 s)',
    );
    assert.deepEqual((await deviceTable()).find((row) => row.id === '5')?.online, false);
  });

  it('shows a yellow ring while the MQTT connection is down, and the green dot again once it is back', async function () {
    await fleet.gateway('hall-a');
    await deployFleet();
    const inNode = helper.getNode('in');
    helper.getNode('mq').setConnected(false);
    await waitFor(() => inNode.status.lastCall?.args[0].fill === 'yellow', 'a yellow ring on tcpmq in');
    // The catalogue's key: the test helper loads no message catalogues.
    assert.equal(inNode.status.lastCall.args[0].text, 'tcpmq-broker.status.fleetDown');
    helper.getNode('mq').setConnected(true);
    await waitFor(() => inNode.status.lastCall?.args[0].fill === 'green', 'the green dot again');
  });

  it('gives a Catch node an error when send has no gateway to go to, and sends nothing', async function () {
    await fleet.gateway('hall-a');
    await deployFleet();
    const caught = messagesOf('caught');
    helper.getNode('sender').receive({ topic: 'nobody', payload: 'x' });
    await waitFor(() => caught.length === 1, 'the error at the Catch node');
    assert.match(caught[0].error.message, /errors\.no-gateway/);
    assert.equal(caught[0].error.source.id, 'sender');
    assert.deepEqual(
      fleet.bus.published.filter((m) => m.topic.endsWith('/send')),
      [],
      'nothing sent',
    );
  });
});

'use strict';
// A deploy that switches a tcpmq-broker's mode (server, fleet, client; README, "What a deploy, a settings
// change and a restart do"): the old role stops (its port freed, its boards' connections closed, its MQTT
// subscriptions gone), the new one runs, and the user nodes of the broker follow it.
const assert = require('node:assert/strict');
const { Device, coreBrokerFixture, freePort, waitFor } = require('../support');
const { helper, NODES, brokerConfig, messagesOf, nodeRedFixture } = require('./flow');
const { mqttBrokerNode, fleetFixture } = require('./fleet-bus');

describe("switching a tcpmq-broker's mode with a deploy", function () {
  const fixture = nodeRedFixture();
  const cores = coreBrokerFixture();
  const fleet = fleetFixture(cores);
  let port;
  beforeEach(() => (port = fixture.port));

  const server = () => brokerConfig(port, { mode: 'server' });
  const fleetMode = () => ({ id: 'broker', type: 'tcpmq-broker', mode: 'fleet', share: 'mq', shareTopic: 'tcpmq' });
  const client = (hostPort) => ({
    id: 'broker',
    type: 'tcpmq-broker',
    mode: 'client',
    host: '127.0.0.1',
    port: hostPort,
    clientId: '100',
    watch: '1',
    pollInterval: 0.05,
  });
  /** The broker node `broker` with the same user nodes whatever its mode. */
  const flow = (broker) => [
    { id: 'mq', type: 'mqtt-broker', name: 'in memory' },
    broker,
    { id: 'in', type: 'tcpmq-in', broker: 'broker', device: '', wires: [['received']] },
    { id: 'status', type: 'tcpmq-status', broker: 'broker', device: '', wires: [['statuses']] },
    { id: 'received', type: 'helper' },
    { id: 'statuses', type: 'helper' },
  ];

  /** Deploys (full) `broker` in the flow and waits for tcpmq in's green dot: the new role runs. */
  async function deployAs(broker, first = false) {
    if (first) await helper.load([...NODES, mqttBrokerNode(fleet.bus)], flow(broker));
    else await helper.setFlows(flow(broker), 'full');
    const inNode = helper.getNode('in');
    await waitFor(
      () => inNode.status.lastCall?.args[0].fill === 'green',
      () => `tcpmq in's green dot in mode ${broker.mode}, not ${JSON.stringify(inNode.status.lastCall?.args[0])}`,
    );
  }

  /** Subscriptions on the MQTT bus right now. */
  const subscriptions = () => fleet.bus.subscriptions.length;

  it('server to fleet and back: the port freed and listened on again, the user nodes following each role', async function () {
    const hallA = await fleet.gateway('hall-a');
    const gatewayOnly = subscriptions();
    const onHallA = await hallA.connect();
    await deployAs(server(), true);
    let received = messagesOf('received');
    const local = await fixture.connect();
    await local.request('[1,1,"served here"]');
    await waitFor(() => received.length === 1, "the local board's report at tcpmq in");
    assert.deepEqual([received[0].topic, received[0].payload], ['1', 'served here']);

    await deployAs(fleetMode());
    received = messagesOf('received');
    assert.equal(await local.closedWithin(2000), true, 'the server-mode broker closed its board');
    await assert.rejects(Device.connect(port), /ECONNREFUSED/, `port ${port} freed in fleet mode`);
    assert.ok(subscriptions() > gatewayOnly, 'fleet mode subscribed on the MQTT broker');
    await onHallA.request('[2,2,"from hall-a"]');
    await waitFor(() => received.length === 1, "hall-a's report at tcpmq in, in fleet mode");
    assert.deepEqual([received[0].topic, received[0].payload, received[0].gateway], ['2', 'from hall-a', 'hall-a']);

    await deployAs(server());
    received = messagesOf('received');
    assert.equal(subscriptions(), gatewayOnly, "back in server mode: Node-RED's MQTT subscriptions are gone");
    const again = await fixture.connect();
    assert.equal(await again.request('[3,3,"served again"]'), 'served again', `port ${port} served again`);
    await waitFor(() => received.length === 1, "the new board's report at tcpmq in");
    assert.deepEqual([received[0].topic, received[0].payload], ['3', 'served again']);
  });

  it('server to client and back: the port freed, then the client joined to the host and its news at tcpmq in, then gone from the host', async function () {
    const host = await cores.start();
    await deployAs(server(), true);
    const local = await fixture.connect();
    await local.request('[1,1,"served here"]');

    await deployAs(client(host.status.port));
    const received = messagesOf('received');
    assert.equal(await local.closedWithin(2000), true, 'the server-mode broker closed its board');
    await assert.rejects(Device.connect(port), /ECONNREFUSED/, `port ${port} freed in client mode`);
    host.writeMailbox(1, 'on the host');
    await waitFor(
      () => received.some((m) => m.topic === '1' && m.payload === 'on the host'),
      'watched id 1, read from the host broker, at tcpmq in',
    );

    // And back: the client leaves the host, the port is served again.
    assert.equal(host.connectionCount, 1, "the client's connection on the host");
    await deployAs(server());
    await waitFor(() => host.connectionCount === 0, "the client's connection to the host closed");
    const again = await fixture.connect();
    assert.equal(await again.request('[5,5,"served again"]'), 'served again', `port ${port} served again`);
  });

  it('fleet to a new port in server mode: listens there, and the fleet mode left the MQTT broker', async function () {
    await fleet.gateway('hall-a');
    const gatewayOnly = subscriptions();
    await deployAs(fleetMode(), true);
    const other = await freePort();
    await deployAs(brokerConfig(other, { mode: 'server' }));
    assert.equal(subscriptions(), gatewayOnly, "Node-RED's MQTT subscriptions are gone");
    const board = await Device.connect(other);
    try {
      assert.equal(await board.request('[1,1,"x"]'), 'x');
    } finally {
      board.close();
    }
  });
});

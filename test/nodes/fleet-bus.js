'use strict';
// A fleet in memory for the node tests: Node-RED's mqtt-broker config node stood in for by one on the MQTT
// broker in memory of the core tests (test/core/mqtt-bus.js), and gateways that share their boards there as
// tcpmq-gateway does (a core broker and its Fleet). The real thing, with mosquitto, is in test/e2e/.
const { Fleet } = require('../../dist/fleet/fleet');
const { Bus } = require('../core/mqtt-bus');
const { waitFor } = require('../support');

const CONNECTED = { fill: 'green', shape: 'dot', text: 'node-red:common.status.connected' };
const DISCONNECTED = { fill: 'red', shape: 'ring', text: 'node-red:common.status.disconnected' };

/**
 * A node type `mqtt-broker` on `bus`, as far as tcpmq uses Node-RED's (@node-red/nodes 10-mqtt.js):
 * `register` (a user gets the connection's status at once, and at every change), `deregister`,
 * `subscribe` (retained messages flagged in the packet), `unsubscribe`, `publish`, `connected`.
 * `node.setConnected(false)` is a lost connection: its users see a red ring and nothing it publishes gets out.
 */
function mqttBrokerNode(bus) {
  return function (RED) {
    function MqttBrokerNode(config) {
      RED.nodes.createNode(this, config);
      const node = /** @type {any} */ (this);
      const transport = bus.transport();
      const users = new Map();
      const filters = new Set();
      node.connected = true;
      node.register = (user) => {
        users.set(user.id, user);
        user.status(node.connected ? CONNECTED : DISCONNECTED);
      };
      node.deregister = (user, done) => {
        users.delete(user.id);
        done();
      };
      node.subscribe = (filter, options, callback) => {
        filters.add(filter);
        transport.subscribe(filter, (topic, payload, retained) =>
          callback(topic, payload, { retain: retained === true }),
        );
      };
      node.unsubscribe = (filter) => {
        filters.delete(filter);
        transport.unsubscribe(filter);
      };
      node.publish = (msg, done) => {
        if (node.connected) transport.publish(msg.topic, msg.payload, msg.retain);
        done?.();
      };
      node.setConnected = (connected) => {
        node.connected = connected;
        for (const user of users.values()) user.status(connected ? CONNECTED : DISCONNECTED);
      };
      node.on('close', (done) => {
        for (const filter of filters) transport.unsubscribe(filter);
        done();
      });
    }
    RED.nodes.registerType('mqtt-broker', MqttBrokerNode);
  };
}

/**
 * The hooks of a test with gateways on a bus: `fleet.bus` is new for each test; `fleet.gateway(name)` starts a
 * core broker (with `cores`, a coreBrokerFixture()) sharing as gateway `name`, and resolves once it is in step
 * with the bus: `{ broker, fleet, connect() }`. After each test the gateways leave the bus.
 */
function fleetFixture(cores) {
  const fixture = {
    bus: new Bus(),
    fleets: [],
    async gateway(name, options = {}) {
      const broker = await cores.start({ offlineAfter: 5, ...options });
      const fleet = new Fleet(broker, {
        prefix: 'tcpmq',
        gateway: name,
        haDiscovery: false,
        minIntervalMs: 0,
        announce: { model: 'tcpmq-gateway', startedAt: Date.now() },
      });
      fleet.attach(fixture.bus.transport());
      fleet.setConnected(true);
      fixture.fleets.push(fleet);
      await waitFor(() => fleet.inStep, `gateway ${name} in step with the MQTT broker`);
      return { broker, fleet, connect: () => cores.connect(broker.status.port) };
    },
  };
  beforeEach(() => {
    fixture.bus = new Bus();
  });
  afterEach(() => {
    for (const fleet of fixture.fleets.splice(0)) fleet.detach();
  });
  return fixture;
}

module.exports = { mqttBrokerNode, fleetFixture };

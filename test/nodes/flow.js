'use strict';
// Loads this package's nodes into a real Node-RED runtime (node-red-node-test-helper):
// Node-RED 4 by default, or the package TCPMQ_NODE_RED names (`node-red-3`: Node-RED 3.1).
const helper = require('node-red-node-test-helper');
const { Device, freePort, waitFor } = require('../support');

const runtime = process.env.TCPMQ_NODE_RED || 'node-red';
helper.init(require.resolve(runtime));
console.log(`      (node tests on ${runtime} ${require(`${runtime}/package.json`).version})`);

const path = require('node:path');
/** One of Node-RED's own nodes, from the runtime under test. */
const coreNode = (file) =>
  require(require.resolve(`@node-red/nodes/core/${file}`, { paths: [path.dirname(require.resolve(runtime))] }));

const NODES = [
  require('../../dist/nodes/tcpmq-broker.js'),
  require('../../dist/nodes/tcpmq-in.js'),
  require('../../dist/nodes/tcpmq-out.js'),
  require('../../dist/nodes/tcpmq-status.js'),
  coreNode('network/05-tls.js'),
  coreNode('function/15-change.js'),
];

/** A broker config node listening on loopback at `port`. */
function brokerConfig(port, settings = {}) {
  return { id: 'broker', type: 'tcpmq-broker', host: '127.0.0.1', port, replyFormat: 'text', ...settings };
}

/** A broker with `settings`, a tcpmq-in into helper `received` and a tcpmq-status into helper `statuses`. */
function brokerInStatusFlow(port, settings) {
  return [
    brokerConfig(port, settings),
    { id: 'in', type: 'tcpmq-in', broker: 'broker', wires: [['received']] },
    { id: 'status', type: 'tcpmq-status', broker: 'broker', wires: [['statuses']] },
    { id: 'received', type: 'helper' },
    { id: 'statuses', type: 'helper' },
  ];
}

/** Deploys `flow` and waits until its broker listens. */
async function deploy(flow) {
  await helper.load(NODES, flow);
  await listening();
}

async function listening(id = 'broker') {
  await waitFor(() => helper.getNode(id)?.broker.status.state === 'listening', `broker ${id} to listen`);
}

/** Collects the messages that reach helper node `id`. */
function messagesOf(id) {
  const messages = [];
  helper.getNode(id).on('input', (msg) => messages.push(msg));
  return messages;
}

/**
 * The hooks every node test needs: a free port and a started helper server
 * before each test; after it, its devices closed, the flow unloaded (closing
 * every broker) and the server stopped. `connect()` opens a device on the port.
 */
function nodeRedFixture() {
  const fixture = {
    port: 0,
    devices: [],
    async connect() {
      const device = await Device.connect(fixture.port);
      fixture.devices.push(device);
      return device;
    },
  };
  beforeEach(async function () {
    fixture.port = await freePort();
    fixture.devices = [];
    await new Promise((resolve) => helper.startServer(resolve));
  });
  afterEach(async function () {
    for (const device of fixture.devices) device.close();
    await helper.unload();
    await new Promise((resolve) => helper.stopServer(resolve));
  });
  return fixture;
}

module.exports = { helper, NODES, brokerConfig, brokerInStatusFlow, deploy, listening, messagesOf, nodeRedFixture };

'use strict';
// tcpmq-broker in client mode: Node-RED joins a broker hosted elsewhere as one more device.
const assert = require('node:assert/strict');
const net = require('node:net');
const { TcpmqBroker } = require('../../dist');
const { Device, waitFor } = require('../support');
const { helper, messagesOf, nodeRedFixture } = require('./flow');

/**
 * A broker in the style of the field's ESP32 one: mailboxes keyed by the JSON
 * value (so 1 and "1" differ), replies sent raw (a string as its text), `None`
 * for unknown ids, each chunk parsed whole.
 */
function fieldBroker() {
  const store = new Map();
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      try {
        const [from, want, news] = JSON.parse(chunk.toString());
        store.set(JSON.stringify(from), news);
        const value = store.get(JSON.stringify(want));
        socket.write(value === undefined ? 'None' : typeof value === 'string' ? value : JSON.stringify(value));
      } catch {
        // The ESP32 broker drops what it cannot parse.
      }
    });
  });
  return { server, store };
}

describe('tcpmq-broker in client mode', function () {
  const fixture = nodeRedFixture();
  let port;
  // The port fixture picked for this test (its beforeEach runs first).
  beforeEach(() => (port = fixture.port));

  const clientFlow = (settings = {}) => [
    {
      id: 'remote',
      type: 'tcpmq-broker',
      mode: 'client',
      host: '127.0.0.1',
      port,
      clientId: '100',
      watch: '1, 2',
      pollInterval: 0.05,
      offlineAfterNones: 8,
      replyFormat: 'text',
      ...settings,
    },
    { id: 'in', type: 'tcpmq-in', broker: 'remote', wires: [['news']] },
    { id: 'status', type: 'tcpmq-status', broker: 'remote', wires: [['statuses']] },
    { id: 'out', type: 'tcpmq-out', broker: 'remote', device: '', wires: [] },
    { id: 'news', type: 'helper' },
    { id: 'statuses', type: 'helper' },
  ];

  describe("against this project's broker", function () {
    let broker;

    beforeEach(async function () {
      broker = new TcpmqBroker({ host: '127.0.0.1', port });
      broker.start();
      await waitFor(() => broker.status.state === 'listening', 'the remote broker');
    });

    afterEach(async function () {
      await broker.stop();
    });

    it('reads the watched ids, publishes its own news, and reports online, offline and connected', async function () {
      await helper.load(require('./flow').NODES, clientFlow());
      const news = messagesOf('news');
      const statuses = messagesOf('statuses');
      broker.writeMailbox(1, '26.5');
      await waitFor(() => news.some((m) => m.topic === '1'), 'news of device 1');
      assert.equal(news.find((m) => m.topic === '1').payload, 26.5);
      assert.ok(!news.some((m) => m.topic === '2'), 'None replies send nothing');
      helper.getNode('out').receive({ payload: 'hello from Node-RED' });
      await waitFor(() => broker.readMailbox('100') === 'hello from Node-RED', 'its own news on the remote broker');
      await waitFor(
        () => statuses.some((m) => m.topic === '2' && m.payload === 'offline'),
        'id 2 offline after 8 None replies',
      );
      assert.deepEqual(statuses.find((m) => m.payload === 'connected').topic, `127.0.0.1:${port}`);
      assert.ok(statuses.some((m) => m.topic === '1' && m.payload === 'online'));
      const inNode = helper.getNode('in');
      await waitFor(() => inNode.status.lastCall?.args[0].fill === 'green', 'a green dot');
      const warnings = helper
        .log()
        .args.filter(([entry]) => entry.level === helper.log().WARN)
        .map(([entry]) => String(entry.msg));
      assert.deepEqual(
        warnings.filter((text) => /listener failed/.test(text)),
        [],
        'no listener failed',
      );
    });

    it('keeps its connection and polling through full deploys, with no repeated online or connected', async function () {
      await helper.load(require('./flow').NODES, clientFlow());
      broker.writeMailbox(1, '26.5');
      let statuses = messagesOf('statuses');
      await waitFor(() => statuses.some((m) => m.topic === '1' && m.payload === 'online'), 'id 1 online');
      const reported = [...statuses];
      for (let round = 0; round < 5; round++) {
        await helper.setFlows(clientFlow({ name: `round ${round}`, pollInterval: 0.04 + round / 100 }), 'full');
        statuses = messagesOf('statuses');
        const news = messagesOf('news');
        broker.writeMailbox(1, `r${round}`);
        await waitFor(() => news.some((m) => m.payload === `r${round}`), `round ${round}: news of id 1`);
        reported.push(...statuses.filter((m) => m.payload !== 'offline'));
      }
      assert.equal(broker.counters.connections, 1, 'one connection to the remote broker in all');
      assert.equal(helper.getNode('remote').client.counters.connections, 1);
      assert.deepEqual(reported.map((m) => `${m.topic} ${m.payload}`).sort(), [
        '1 online',
        `127.0.0.1:${port} connected`,
      ]);
    });

    it('reports the remote broker disconnected and carries on once it is back', async function () {
      await helper.load(require('./flow').NODES, clientFlow());
      const statuses = messagesOf('statuses');
      const news = messagesOf('news');
      await waitFor(() => statuses.some((m) => m.payload === 'connected'), 'connected');
      await broker.stop();
      await waitFor(() => statuses.some((m) => m.payload === 'disconnected'), 'disconnected');
      broker = new TcpmqBroker({ host: '127.0.0.1', port });
      broker.start();
      broker.writeMailbox(2, 'back');
      await waitFor(() => news.some((m) => m.topic === '2' && m.payload === 'back'), 'news after reconnecting', 8000);
      assert.equal(statuses.filter((m) => m.payload === 'connected').length, 2);
    });

    it('answers an input with the watched ids and refuses to send to connections', async function () {
      await helper.load(require('./flow').NODES, [
        ...clientFlow(),
        { id: 'tab', type: 'tab', label: 'client' },
        { id: 'sender', type: 'tcpmq-out', z: 'tab', broker: 'remote', action: 'send', device: '1', wires: [] },
        { id: 'catcher', type: 'catch', z: 'tab', scope: null, uncaught: false, wires: [['caught']] },
        { id: 'caught', type: 'helper', z: 'tab' },
      ]);
      const statuses = messagesOf('statuses');
      const caught = messagesOf('caught');
      broker.writeMailbox(1, 'x');
      await waitFor(() => helper.getNode('remote').client.watchState()[0].online === true, 'id 1 online');
      helper.getNode('status').receive({ topic: 'table' });
      await waitFor(() => statuses.some((m) => m.topic === 'table'), 'the table');
      const table = statuses.find((m) => m.topic === 'table');
      assert.deepEqual(
        table.payload.map((w) => [w.id, w.online]),
        [
          ['1', true],
          ['2', table.payload[1].online],
        ],
      );
      helper.getNode('sender').receive({ payload: 'x' });
      await waitFor(() => caught.length === 1, 'the catch node');
      assert.match(caught[0].error.message, /client-action/);
    });
  });

  it('logs at most 20 warnings a minute when the remote broker sends junk and drops it, reconnections included', async function () {
    // A remote broker that answers every request with stray bytes and drops the connection every 200 ms.
    const sockets = new Set();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
      socket.on('data', () => socket.write('None\u0000junk\u0001'.repeat(4)));
      const junk = setInterval(() => socket.write('\u0002stray'), 20);
      setTimeout(() => socket.destroy(), 200);
      socket.on('close', () => clearInterval(junk));
    });
    await /** @type {Promise<void>} */ (new Promise((resolve) => server.listen(port, '127.0.0.1', resolve)));
    try {
      await helper.load(require('./flow').NODES, clientFlow({ pollInterval: 0.05 }));
      const warnings = () =>
        helper
          .log()
          .args.filter(([entry]) => entry.level === helper.log().WARN && entry.id === 'remote')
          .map(([entry]) => String(entry.msg));
      await waitFor(
        () => warnings().length >= 20,
        () => `20 warnings (${warnings().length})`,
        5000,
      );
      // Reconnections go on for 3 s more: still 20 lines this minute.
      const until = Date.now() + 3000;
      await waitFor(() => Date.now() > until, 'three more seconds of junk', 4000);
      assert.equal(warnings().length, 20, warnings().join('\n'));
    } finally {
      for (const socket of sockets) socket.destroy();
      server.close();
    }
  });

  it("joins a broker in the style of the field's ESP32 one", async function () {
    const { server, store } = fieldBroker();
    await /** @type {Promise<void>} */ (new Promise((resolve) => server.listen(port, '127.0.0.1', resolve)));
    try {
      await helper.load(require('./flow').NODES, clientFlow({ watch: '1' }));
      const news = messagesOf('news');
      helper.getNode('out').receive({ payload: '42' });
      // A field device 1 reports 605 and reads Node-RED's mailbox 100.
      const device = await Device.connect(port);
      fixture.devices.push(device);
      await device.request('[1,100,"605"]');
      await waitFor(() => news.some((m) => m.payload === 605), 'the field device news', 5000);
      await waitFor(() => store.get('100') === '42', 'its own news stored under the number 100');
      assert.equal(await device.request('[1,100,"606"]'), '42');
    } finally {
      server.close();
    }
  });
});

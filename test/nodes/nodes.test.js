'use strict';
// What each node does in a flow: messages, statuses, errors, offline alerts.
const assert = require('node:assert/strict');
const { waitFor } = require('../support');
const { helper, brokerConfig, deploy, messagesOf, nodeRedFixture } = require('./flow');

describe('tcpmq nodes in a flow', function () {
  const fixture = nodeRedFixture();
  let port;
  // The port fixture picked for this test (its beforeEach runs first).
  beforeEach(() => (port = fixture.port));

  const connect = () => fixture.connect();

  describe('tcpmq-in', function () {
    it('sends one message per request with topic, payload, want and address', async function () {
      await deploy([
        brokerConfig(port),
        { id: 'in', type: 'tcpmq-in', broker: 'broker', wires: [['sink']] },
        { id: 'sink', type: 'helper' },
      ]);
      const received = messagesOf('sink');
      const device = await connect();
      await device.request('[-1,1,"605"]');
      await device.request('[-1,1,{"t":21}]');
      await waitFor(() => received.length === 2, 'two messages');
      const [first, second] = received;
      assert.equal(first.topic, '-1');
      assert.equal(first.payload, 605, 'numeric text becomes a number for a gauge');
      assert.equal(first.want, '1');
      assert.equal(first.remoteAddress, '127.0.0.1');
      assert.equal(first.remotePort, device.socket.localPort);
      assert.deepEqual(second.payload, { t: 21 });
    });

    it('keeps text payloads as text when numbers is off, and non-decimal text always', async function () {
      await deploy([
        brokerConfig(port),
        { id: 'in', type: 'tcpmq-in', broker: 'broker', numbers: false, wires: [['sink']] },
        { id: 'in2', type: 'tcpmq-in', broker: 'broker', wires: [['sink2']] },
        { id: 'sink', type: 'helper' },
        { id: 'sink2', type: 'helper' },
      ]);
      const plain = messagesOf('sink');
      const converted = messagesOf('sink2');
      const device = await connect();
      for (const news of ['26.545', '1e3', '0x10', '', ' 5']) await device.request(JSON.stringify([1, 1, news]));
      await waitFor(() => plain.length === 5 && converted.length === 5, 'five messages each');
      assert.deepEqual(
        plain.map((m) => m.payload),
        ['26.545', '1e3', '0x10', '', ' 5'],
      );
      assert.deepEqual(
        converted.map((m) => m.payload),
        [26.545, '1e3', '0x10', '', ' 5'],
      );
    });

    it('sends only the listed devices when device is set', async function () {
      await deploy([
        brokerConfig(port),
        { id: 'in', type: 'tcpmq-in', broker: 'broker', device: '1, kitchen', wires: [['sink']] },
        { id: 'sink', type: 'helper' },
      ]);
      const received = messagesOf('sink');
      const device = await connect();
      for (const frame of ['[1,1,"a"]', '[2,1,"b"]', '["kitchen",1,"c"]', '[-1,1,"d"]']) await device.request(frame);
      await waitFor(() => received.length >= 2, 'two messages');
      assert.deepEqual(
        received.map((m) => m.topic),
        ['1', 'kitchen'],
      );
    });

    it('sends plain text as a raw message', async function () {
      await deploy([
        brokerConfig(port),
        { id: 'in', type: 'tcpmq-in', broker: 'broker', wires: [['sink']] },
        { id: 'sink', type: 'helper' },
      ]);
      const received = messagesOf('sink');
      const board = await connect();
      board.send('Hello 01Studio!');
      await waitFor(() => received.length === 1, 'a raw message');
      assert.equal(received[0].raw, true);
      assert.equal(received[0].payload, 'Hello 01Studio!');
      assert.equal(received[0].topic, `127.0.0.1:${board.socket.localPort}`);
    });

    it('shows a green dot once the broker listens', async function () {
      await deploy([brokerConfig(port), { id: 'in', type: 'tcpmq-in', broker: 'broker', wires: [[]] }]);
      const inNode = helper.getNode('in');
      await waitFor(() => inNode.status.lastCall?.args[0].fill === 'green', 'a green status');
      assert.equal(inNode.status.lastCall.args[0].shape, 'dot');
    });
  });

  describe('tcpmq-out', function () {
    const flow = (out = {}) => [
      { id: 'tab', type: 'tab', label: 'catch errors' },
      brokerConfig(port),
      { id: 'out', type: 'tcpmq-out', z: 'tab', broker: 'broker', device: '', ...out, wires: [] },
      { id: 'catcher', type: 'catch', z: 'tab', scope: null, uncaught: false, wires: [['caught']] },
      { id: 'caught', type: 'helper', z: 'tab' },
    ];
    /** What mailbox `id` holds in the running broker. */
    const mailbox = (id) => helper.getNode('broker').broker.readMailbox(id);

    it('writes the mailbox named by msg.topic, a number topic included', async function () {
      await deploy(flow());
      const device = await connect();
      helper.getNode('out').receive({ topic: 1, payload: { led: true } });
      await waitFor(() => mailbox('1') !== undefined, 'the flow to write mailbox 1');
      assert.equal(await device.request('[5,"1","x"]'), '{"led":true}');
    });

    it('writes its configured mailbox whatever msg.topic says', async function () {
      await deploy(flow({ device: 'cmd' }));
      const device = await connect();
      helper.getNode('out').receive({ topic: 'other', payload: 'on' });
      await waitFor(() => mailbox('cmd') === 'on', 'the flow to write mailbox cmd');
      assert.equal(await device.request('[5,"cmd","x"]'), 'on');
      assert.equal(await device.request('[5,"other","x"]'), 'None');
    });

    it('empties the mailbox when the payload is null', async function () {
      await deploy(flow({ device: 'cmd' }));
      const device = await connect();
      helper.getNode('out').receive({ payload: 'on' });
      await waitFor(() => mailbox('cmd') === 'on', 'the flow to write mailbox cmd');
      assert.equal(await device.request('[5,"cmd","x"]'), 'on');
      helper.getNode('out').receive({ payload: null });
      await waitFor(() => mailbox('cmd') === undefined, 'the flow to empty mailbox cmd');
      assert.equal(await device.request('[5,"cmd","x"]'), 'None');
    });

    it('lets a mailbox expire after msg.ttl seconds', async function () {
      await deploy(flow({ device: 'cmd', ttl: 60 }));
      const device = await connect();
      const written = Date.now();
      helper.getNode('out').receive({ payload: 'blink', ttl: 0.2 });
      await waitFor(() => mailbox('cmd') === 'blink', 'the flow to write mailbox cmd');
      assert.equal(await device.request('[5,"cmd","x"]'), 'blink');
      await waitFor(async () => (await device.request('[5,"cmd","x"]')) === 'None', 'the mailbox to expire', 2000);
      const lived = Date.now() - written;
      assert.ok(lived >= 190 && lived < 1000, `it expired after its 0.2 s, not after ${lived} ms`);
    });

    it('keeps a flow-written mailbox while devices go offline', async function () {
      await deploy([brokerConfig(port, { offlineAfter: 0.2 }), ...flow({ device: '7' }).slice(2)]);
      const device = await connect();
      await device.request('[7,7,"device news"]');
      helper.getNode('out').receive({ payload: 'flow news' });
      await waitFor(() => mailbox('7') === 'flow news', 'the flow to write mailbox 7');
      const broker = helper.getNode('broker').broker;
      await waitFor(() => broker.deviceTable().every((d) => !d.online), 'device 7 to go offline', 3000);
      assert.equal(await device.request('[5,7,"x"]'), 'flow news');
    });

    it('reports a message without a mailbox to a catch node', async function () {
      await deploy(flow());
      const caught = messagesOf('caught');
      helper.getNode('out').receive({ payload: 'lost' });
      await waitFor(() => caught.length === 1, 'the catch node to get the error');
      assert.match(caught[0].error.message, /no-target/);
      assert.equal(caught[0].error.source.id, 'out');
    });

    it('reports a circular payload to a catch node', async function () {
      await deploy(flow({ device: 'cmd' }));
      const caught = messagesOf('caught');
      const payload = {};
      payload.self = payload;
      helper.getNode('out').receive({ payload });
      await waitFor(() => caught.length === 1, 'the catch node to get the error');
      assert.match(caught[0].error.message, /circular/i);
    });
  });

  describe('tcpmq-status', function () {
    const flow = (settings = {}) => [
      brokerConfig(port, settings),
      { id: 'status', type: 'tcpmq-status', broker: 'broker', wires: [['sink']] },
      { id: 'sink', type: 'helper' },
    ];

    it('reports online at the first request and offline within offlineAfter + 1 s', async function () {
      await deploy(flow({ offlineAfter: 1 }));
      const received = messagesOf('sink');
      const sensor = await connect();
      const reader = await connect();
      await sensor.request('[1,1,"26.5"]');
      const lastFrame = Date.now();
      await reader.request('[2,1,"r"]');
      await waitFor(() => received.some((m) => m.topic === '2'), 'device 2 online');
      assert.deepEqual(
        received.slice(0, 2).map((m) => [m.topic, m.payload]),
        [
          ['1', 'online'],
          ['2', 'online'],
        ],
      );
      // Device 2 keeps talking; device 1 is silent.
      const keepTalking = setInterval(() => reader.send('[2,2,"r"]'), 200);
      try {
        await waitFor(() => received.some((m) => m.topic === '1' && m.payload === 'offline'), 'device 1 offline', 3000);
      } finally {
        clearInterval(keepTalking);
      }
      const elapsed = Date.now() - lastFrame;
      assert.ok(elapsed >= 1000 && elapsed <= 2000, `offline after ${elapsed} ms`);
      const offline = received.find((m) => m.payload === 'offline');
      assert.equal(offline.device.id, '1');
      assert.equal(offline.device.online, false);
      assert.equal(offline.device.lastValue, '26.5');
      assert.equal(offline.device.messages, 1);
      assert.ok(!received.some((m) => m.topic === '2' && m.payload === 'offline'), 'device 2 stays online');
      const other = await connect();
      assert.equal(await other.request('[3,1,"r"]'), 'None', 'the silent device reads as None');
    });

    it('answers any input with the device table and the counters', async function () {
      await deploy(flow());
      const received = messagesOf('sink');
      const device = await connect();
      await device.request('[1,1,"26.5"]');
      await device.request('[2,1,"x"]');
      device.send('[1,2]');
      await device.request('[2,1,"y"]');
      helper.getNode('status').receive({ topic: 'table' });
      await waitFor(() => received.some((m) => m.topic === 'table'), 'the device table');
      const answer = received.find((m) => m.topic === 'table');
      assert.deepEqual(
        answer.payload.map((d) => [d.id, d.messages, d.online, d.lastValue, d.remoteAddress]),
        [
          ['1', 1, true, '26.5', '127.0.0.1'],
          ['2', 2, true, 'y', '127.0.0.1'],
        ],
      );
      assert.equal(answer.counters.requests, 3);
      assert.equal(answer.counters.protocolErrors, 1);
      assert.equal(answer.counters.openConnections, 1);
    });
  });

  describe('tcpmq-broker', function () {
    it('counts bad input, sends no reply to it, and keeps other connections working', async function () {
      await deploy([
        brokerConfig(port, { maxFrameBytes: 1024 }),
        { id: 'in', type: 'tcpmq-in', broker: 'broker', wires: [['sink']] },
        { id: 'sink', type: 'helper' },
      ]);
      const received = messagesOf('sink');
      const good = await connect();
      const bad = await connect();
      const flooder = await connect();
      await good.request('[1,1,"a"]');
      bad.send('[1,1,"x"');
      bad.send(']');
      await bad.nextChunk();
      bad.send('[1,1,oops][1,2]{"from":1}[[1],1,"x"]');
      bad.send(Buffer.from([0x00, 0xff, 0x13, 0x37]));
      flooder.send('[1,1,"' + 'x'.repeat(5000));
      assert.equal(await flooder.closedWithin(2000), true, 'the oversize sender is closed');
      assert.equal(await good.request('[1,1,"b"]'), 'b');
      assert.equal(await bad.request('[3,1,"c"]'), 'b', 'the bad connection stays open');
      const broker = helper.getNode('broker').broker;
      assert.equal(broker.counters.protocolErrors, 5);
      assert.equal(broker.counters.oversize, 1);
      assert.deepEqual(
        received.map((m) => m.payload),
        ['a', 'x', 'b', 'c'],
      );
      const warnings = helper
        .log()
        .args.filter(([entry]) => entry.level === helper.log().WARN)
        .map(([entry]) => entry.msg);
      assert.ok(
        warnings.some((text) => /protocol-error/.test(text)),
        `warnings logged: ${warnings.join(' | ')}`,
      );
    });

    it('closes idle connections after idleTimeout', async function () {
      await deploy([
        brokerConfig(port, { idleTimeout: 0.3 }),
        { id: 'in', type: 'tcpmq-in', broker: 'broker', wires: [[]] },
      ]);
      const device = await connect();
      await device.request('[1,1,"a"]');
      assert.equal(await device.closedWithin(2000), true);
    });

    it('never closes idle connections when idleTimeout is 0', async function () {
      await deploy([
        brokerConfig(port, { idleTimeout: 0 }),
        { id: 'in', type: 'tcpmq-in', broker: 'broker', wires: [[]] },
      ]);
      const device = await connect();
      await device.request('[1,1,"a"]');
      assert.equal(await device.closedWithin(500), false);
    });

    it('refuses connections beyond maxConnections', async function () {
      await deploy([
        brokerConfig(port, { maxConnections: 3 }),
        { id: 'in', type: 'tcpmq-in', broker: 'broker', wires: [[]] },
      ]);
      const kept = [await connect(), await connect(), await connect()];
      await waitFor(() => helper.getNode('broker').broker.connectionCount === 3, 'three connections');
      const refused = await connect();
      assert.equal(await refused.closedWithin(2000), true);
      for (const device of kept) assert.equal(await device.request('[1,1,"ok"]'), 'ok');
      assert.equal(helper.getNode('broker').broker.counters.refused, 1);
    });

    it('reports a port in use under every user node and keeps retrying', async function () {
      const net = require('node:net');
      const squatter = net.createServer();
      await /** @type {Promise<void>} */ (new Promise((resolve) => squatter.listen(port, '127.0.0.1', resolve)));
      try {
        await helper.load(require('./flow').NODES, [
          brokerConfig(port),
          { id: 'in', type: 'tcpmq-in', broker: 'broker', wires: [[]] },
          { id: 'status', type: 'tcpmq-status', broker: 'broker', wires: [[]] },
        ]);
        for (const id of ['in', 'status']) {
          const node = helper.getNode(id);
          await waitFor(() => node.status.lastCall?.args[0].fill === 'red', `a red status on ${id}`);
          assert.equal(node.status.lastCall.args[0].shape, 'ring');
        }
        const errors = helper
          .log()
          .args.filter(([entry]) => entry.level === helper.log().ERROR)
          .map(([entry]) => entry.msg);
        assert.ok(
          errors.some((text) => /listen/.test(text)),
          `errors logged: ${errors.join(' | ')}`,
        );
      } finally {
        await new Promise((resolve) => squatter.close(resolve));
      }
    });

    it('reports a missing broker on the node instead of failing', async function () {
      await helper.load(require('./flow').NODES, [{ id: 'in', type: 'tcpmq-in', broker: 'nowhere', wires: [[]] }]);
      const status = helper.getNode('in').status.lastCall.args[0];
      assert.equal(status.fill, 'red');
    });
  });
});

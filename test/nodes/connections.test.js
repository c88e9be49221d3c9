'use strict';
// Plain-text boards and writing to a chosen connection: echo servers, network assistants.
const assert = require('node:assert/strict');
const { waitFor } = require('../support');
const { helper, brokerConfig, deploy, messagesOf, nodeRedFixture } = require('./flow');

describe('plain-text boards and tcpmq-out send / close', function () {
  const fixture = nodeRedFixture();
  let port;
  // The port fixture picked for this test (its beforeEach runs first).
  beforeEach(() => (port = fixture.port));

  const connect = () => fixture.connect();

  const withCatch = (nodes) => [
    { id: 'tab', type: 'tab', label: 'connections' },
    brokerConfig(port),
    ...nodes.map((n) => ({ z: 'tab', ...n })),
    { id: 'catcher', type: 'catch', z: 'tab', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', type: 'helper', z: 'tab' },
  ];

  it('is an echo server with two nodes: tcpmq in -> tcpmq out (send)', async function () {
    await deploy(
      withCatch([
        { id: 'in', type: 'tcpmq-in', broker: 'broker', wires: [['echo']] },
        { id: 'echo', type: 'tcpmq-out', broker: 'broker', action: 'send', device: '', wires: [] },
      ]),
    );
    const board = await connect();
    assert.equal(await board.request('Hello Handbit'), 'Hello Handbit');
    assert.equal(await board.request('温度 26.5\n'), '温度 26.5');
  });

  it('answers a K230 board the way it answers itself: "I got:" + text', async function () {
    await deploy(
      withCatch([
        { id: 'in', type: 'tcpmq-in', broker: 'broker', wires: [['prefix']] },
        {
          id: 'prefix',
          type: 'change',
          rules: [{ t: 'set', p: 'payload', pt: 'msg', to: '"I got:" & payload', tot: 'jsonata' }],
          wires: [['reply']],
        },
        { id: 'reply', type: 'tcpmq-out', broker: 'broker', action: 'send', device: '', wires: [] },
      ]),
    );
    const board = await connect();
    assert.equal(await board.request('Hello 01Studio!'), 'I got:Hello 01Studio!');
  });

  it('sends to a device by id and closes its connections; an unknown device goes to the catch node', async function () {
    await deploy(
      withCatch([
        { id: 'sender', type: 'tcpmq-out', broker: 'broker', action: 'send', device: '', wires: [] },
        { id: 'closer', type: 'tcpmq-out', broker: 'broker', action: 'close', device: '', wires: [] },
      ]),
    );
    const caught = messagesOf('caught');
    const device = await connect();
    await device.request('[7,7,"x"]');
    helper.getNode('sender').receive({ topic: 7, payload: { led: 'on' } });
    assert.equal((await device.nextChunk()).toString(), '{"led":"on"}');
    helper.getNode('sender').receive({ topic: 'nobody', payload: 'lost' });
    helper.getNode('sender').receive({ connectionId: 424242, payload: 'lost' });
    await waitFor(() => caught.length === 2, 'two errors at the catch node');
    assert.match(caught[0].error.message, /device nobody has no open connection/);
    assert.match(caught[1].error.message, /connection 424242 is not open/);
    helper.getNode('closer').receive({ topic: '7' });
    assert.equal(await device.closedWithin(1000), true);
  });

  it('passes bytes that are not text on only when binary is ticked', async function () {
    await deploy(
      withCatch([
        { id: 'text', type: 'tcpmq-in', broker: 'broker', wires: [['textOnly']] },
        { id: 'bytes', type: 'tcpmq-in', broker: 'broker', binary: true, wires: [['withBytes']] },
        { id: 'textOnly', type: 'helper' },
        { id: 'withBytes', type: 'helper' },
      ]),
    );
    const textOnly = messagesOf('textOnly');
    const withBytes = messagesOf('withBytes');
    const board = await connect();
    board.send(Buffer.from([0x01, 0x02, 0xff, 0x0a]));
    board.send('text\n');
    await waitFor(() => withBytes.length === 2 && textOnly.length === 1, 'the messages');
    assert.ok(Buffer.isBuffer(withBytes[0].payload));
    assert.deepEqual([...withBytes[0].payload], [0x01, 0x02, 0xff]);
    assert.deepEqual([textOnly[0].payload, withBytes[1].payload], ['text', 'text']);
    assert.equal(textOnly[0].raw, true);
  });

  it('lists every open connection with the device table', async function () {
    await deploy(
      withCatch([
        { id: 'status', type: 'tcpmq-status', broker: 'broker', wires: [['table']] },
        { id: 'table', type: 'helper' },
      ]),
    );
    const answers = messagesOf('table');
    const device = await connect();
    await device.request('[1,1,"a"]');
    const board = await connect();
    board.send('Hello\n');
    await connect();
    const broker = helper.getNode('broker').broker;
    await waitFor(
      () => broker.connectionTable().length === 3 && broker.connectionTable().some((c) => c.kind === 'raw'),
      'three connections, the plain-text one seen as raw',
    );
    helper.getNode('status').receive({ topic: 'list' });
    await waitFor(() => answers.some((m) => m.topic === 'list'), 'the table');
    const { connections } = answers.find((m) => m.topic === 'list');
    assert.deepEqual(
      connections.map((c) => [c.deviceId, c.kind, c.remoteAddress]),
      [
        ['1', 'tcpmq', '127.0.0.1'],
        [undefined, 'raw', '127.0.0.1'],
        [undefined, 'unknown', '127.0.0.1'],
      ],
    );
    assert.equal(connections[1].bytesIn, 6);
  });
});

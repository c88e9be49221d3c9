'use strict';
// The wire contract, through a broker loaded in Node-RED.
const assert = require('node:assert/strict');
const { vectorSuite } = require('../support');
const { helper, brokerConfig, deploy, messagesOf, nodeRedFixture } = require('./flow');

describe('TCPMQ wire contract in Node-RED', function () {
  const fixture = nodeRedFixture();
  let port;
  // The port fixture picked for this test (its beforeEach runs first).
  beforeEach(() => (port = fixture.port));

  const connect = () => fixture.connect();

  vectorSuite({
    async start(format) {
      await deploy([
        brokerConfig(port, { replyFormat: format }),
        { id: 'in', type: 'tcpmq-in', broker: 'broker', wires: [[]] },
      ]);
      return { connect, readMailbox: (id) => helper.getNode('broker').broker.readMailbox(id) };
    },
  });

  it('answers a MicroPython str send in one chunk that fits recv(20)', async function () {
    await deploy([brokerConfig(port), { id: 'status', type: 'tcpmq-status', broker: 'broker', wires: [[]] }]);
    const sensor = await connect();
    const reader = await connect();
    // json.dumps([-1, 1, '60%d' % n]) as the ESP8266 sends it: a str, no newline.
    await sensor.request('[1, 1, "26.545"]');
    const chunk = await (reader.send('[-1, 1, "605"]'), reader.nextChunk());
    assert.equal(chunk.subarray(0, 20).toString(), '26.545');
    assert.equal(chunk.length, 6);
  });

  it('serves 50 devices at once, each its own replies in order', async function () {
    await deploy([
      brokerConfig(port),
      { id: 'in', type: 'tcpmq-in', broker: 'broker', wires: [['sink']] },
      { id: 'sink', type: 'helper' },
    ]);
    const received = messagesOf('sink');
    const fleet = await Promise.all(Array.from({ length: 50 }, () => connect()));
    const rounds = 20;
    await Promise.all(
      fleet.map(async (device, n) => {
        for (let round = 0; round < rounds; round++) {
          const news = `d${n}-r${round}`;
          assert.equal(await device.request(JSON.stringify([n, n, news])), news, `device ${n} round ${round}`);
        }
      }),
    );
    assert.equal(received.length, 50 * rounds);
  });

  it('treats ids 1 and "1" as one mailbox', async function () {
    await deploy([brokerConfig(port), { id: 'status', type: 'tcpmq-status', broker: 'broker', wires: [[]] }]);
    const a = await connect();
    const b = await connect();
    await a.request('["1","2","from string id"]');
    assert.equal(await b.request('[9,1,"x"]'), 'from string id');
    await b.request('[1,9,"from number id"]');
    assert.equal(await a.request('[9,"1","y"]'), 'from number id');
  });

  it('lets a device read mailbox "cmd" written by a flow', async function () {
    await deploy([brokerConfig(port), { id: 'out', type: 'tcpmq-out', broker: 'broker', device: '', wires: [] }]);
    helper.getNode('out').receive({ topic: 'cmd', payload: 'led on' });
    const device = await connect();
    assert.equal(await device.request('[5,"cmd","x"]'), 'led on');
  });
});

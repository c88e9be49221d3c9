'use strict';
// Hostile input through Node-RED: no forged log lines, one warning limit in both
// modes, capacity errors a flow can catch, and 64-bit ids exact from socket to msg.topic.
const assert = require('node:assert/strict');
const net = require('node:net');
const { waitFor } = require('../support');
const { helper, NODES, brokerInStatusFlow, deploy, messagesOf, nodeRedFixture } = require('./flow');

/** Every line the runtime logged at `level` or above, as text. */
function logged(level) {
  const log = helper.log();
  return log.args.filter(([entry]) => entry.level <= log[level]).map(([entry]) => String(entry.msg));
}

describe('hostile input through Node-RED', function () {
  const fixture = nodeRedFixture();
  let port;
  beforeEach(() => (port = fixture.port));

  const flow = (settings) => brokerInStatusFlow(port, settings);

  it('writes a refused id with newlines as one escaped line, and at most 20 log lines a minute', async function () {
    await deploy(flow({ allowDevices: '1' }));
    const statuses = messagesOf('statuses');
    // An id (JSON escapes, under 128 bytes) that would start a forged log line, from 30 devices.
    const forged = '\\r\\n[error] [tcpmq-broker:broker] forged\\u2028';
    for (let n = 0; n < 30; n++) {
      const device = await fixture.connect();
      device.send(`["x${n}${forged}",1,"x"]`);
      assert.equal(await device.closedWithin(1000), true, 'refused: not in allowDevices');
    }
    // The test runtime logs catalogue keys: the line is `tcpmq-broker.log.unknown-device` with the reason below.
    const unknownDeviceLines = () => logged('WARN').filter((text) => /unknown-device/.test(text));
    await waitFor(
      () => unknownDeviceLines().length >= 20 && statuses.filter((m) => m.kind === 'unknown-device').length >= 20,
      '20 log lines and 20 status messages',
    );
    const warnings = unknownDeviceLines();
    assert.equal(warnings.length, 20, `${warnings.length} lines`);
    const reasons = statuses.filter((m) => m.kind === 'unknown-device').map((m) => m.error);
    assert.equal(reasons.length, 20);
    for (const reason of reasons) {
      assert.doesNotMatch(reason, /[\r\n\u2028\u2029]/, 'no line break of the device reaches the reason');
      assert.match(
        reason,
        /^device id "x\d+\\r\\n\[error\] \[tcpmq-broker:broker\] forged\\u2028" not in allowDevices$/,
      );
    }
  });

  it('reports a new id it cannot record as a capacity error, and serves the devices it has', async function () {
    await deploy(flow({ maxDevices: 2 }));
    const statuses = messagesOf('statuses');
    const device = await fixture.connect();
    assert.equal(await device.request('[1,1,"a"]'), 'a');
    assert.equal(await device.request('[2,1,"b"]'), 'a');
    assert.equal(await device.request('[3,1,"c"]'), 'a', 'answered, not recorded');
    await waitFor(() => statuses.some((m) => m.kind === 'capacity'), 'a capacity error');
    const error = statuses.find((m) => m.kind === 'capacity');
    assert.deepEqual([error.payload, error.topic], ['error', '3']);
    assert.equal(helper.getNode('broker').broker.readMailbox(3), undefined);
    assert.equal(await device.request('[1,2,"a2"]'), 'b');
  });

  it('carries a 20-digit id exactly to msg.topic, to allowDevices and to a flow-written mailbox', async function () {
    const id = '12345678901234567891';
    await deploy([
      ...flow({ allowDevices: `${id}, 7` }),
      { id: 'out', type: 'tcpmq-out', broker: 'broker', device: '', wires: [] },
    ]);
    const received = messagesOf('received');
    const device = await fixture.connect();
    assert.equal(await device.request(`[${id},${id},"26.5"]`), '26.5');
    await waitFor(() => received.length === 1, 'the message');
    assert.equal(received[0].topic, id);
    helper.getNode('out').receive({ topic: '12345678901234567890', payload: 'not for 891' });
    helper.getNode('out').receive({ topic: id, payload: 'for 891' });
    const reader = await fixture.connect();
    assert.equal(await reader.request(`[7,${id},"x"]`), 'for 891');
    assert.equal(await reader.request('[7,12345678901234567890,"x"]'), 'not for 891');
  });
});

describe('client mode: a joined broker that sends stray bytes', function () {
  const fixture = nodeRedFixture();

  it('logs at most 20 warnings a minute, however many chunks come', async function () {
    // A remote broker that answers every request and then sends junk nobody asked for.
    const server = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.on('data', () => {
        socket.write('None');
        for (let n = 0; n < 10; n++) setTimeout(() => socket.destroyed || socket.write(`junk ${n}\n`), 30 + n * 30);
      });
    });
    await /** @type {Promise<void>} */ (new Promise((resolve) => server.listen(fixture.port, '127.0.0.1', resolve)));
    try {
      await helper.load(NODES, [
        {
          id: 'remote',
          type: 'tcpmq-broker',
          mode: 'client',
          host: '127.0.0.1',
          port: fixture.port,
          clientId: '100',
          watch: '1',
          pollInterval: 0.4,
          replyFormat: 'text',
        },
        { id: 'in', type: 'tcpmq-in', broker: 'remote', wires: [[]] },
      ]);
      const client = helper.getNode('remote').client;
      await waitFor(() => client.counters.strayBytes > 300, 'stray bytes from the remote broker', 10000);
      const warnings = logged('WARN').filter((text) => /no request waiting/.test(text));
      assert.equal(warnings.length, 20, `${warnings.length} warnings for ${client.counters.strayBytes} stray bytes`);
    } finally {
      await helper.unload();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

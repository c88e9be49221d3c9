'use strict';
// Full deploys through the admin API of a real node-red process, while devices that
// (like the published ESP8266 client) stop for good if their connection closes keep
// exchanging: no connection dropped, every reply right, nothing a device or a flow
// wrote lost, no device reported online twice.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const { Device, every, freePort, waitFor, sleep } = require('../support');
const { linkedUserDir, startNodeRed, stopNodeRed, api, deploy } = require('./node-red-process');

const DEPLOYS = 20;

/**
 * The flows of deploy `round`: a broker on `port`, every request counted by a
 * function node, every online/offline event counted by kind and device, both
 * counts written to mailboxes (`messages`, `events`) that the test reads. Only
 * the first deploy writes the command mailbox `cmd`: later ones must keep it.
 */
function flows(round, port) {
  /** @type {object[]} */
  const flow = [
    { id: 'tab', type: 'tab', label: `deploy ${round}` },
    {
      id: 'broker',
      type: 'tcpmq-broker',
      name: `round ${round}`,
      host: '127.0.0.1',
      port,
      replyFormat: 'text',
      offlineAfter: 30,
      idleTimeout: 60,
      maxConnections: 100,
      maxFrameBytes: 65536,
    },
    { id: 'in', type: 'tcpmq-in', z: 'tab', broker: 'broker', device: '', numbers: false, wires: [['count-messages']] },
    {
      id: 'count-messages',
      type: 'function',
      z: 'tab',
      func: "const n = (global.get('messages') || 0) + 1; global.set('messages', n); return { topic: 'messages', payload: n };",
      wires: [['out']],
    },
    { id: 'status', type: 'tcpmq-status', z: 'tab', broker: 'broker', device: '', wires: [['count-events']] },
    {
      id: 'count-events',
      type: 'function',
      z: 'tab',
      func: "const events = global.get('events') || {}; const key = msg.payload + ' ' + msg.topic; events[key] = (events[key] || 0) + 1; global.set('events', events); return { topic: 'events', payload: JSON.stringify(events) };",
      wires: [['out']],
    },
    { id: 'out', type: 'tcpmq-out', z: 'tab', broker: 'broker', device: '', ttl: 0, wires: [] },
  ];
  if (round === 0) {
    flow.push(
      {
        id: 'command',
        type: 'inject',
        z: 'tab',
        props: [{ p: 'payload' }],
        once: true,
        onceDelay: 0.1,
        repeat: '',
        payload: 'led on',
        payloadType: 'str',
        wires: [['out-cmd']],
      },
      { id: 'out-cmd', type: 'tcpmq-out', z: 'tab', broker: 'broker', device: 'cmd', ttl: 0, wires: [] },
    );
  }
  return flow;
}

/**
 * A device in lockstep, as the ESP8266 client runs: send, wait for the reply
 * (8 s, its socket timeout), pause, again; a closed connection ends it for good.
 * `expect(reply)` says whether a reply is right.
 */
function fieldDevice(port, frame, expect) {
  const device = { requests: 0, wrong: [], dropped: false, longestWait: 0, running: true };
  device.done = (async () => {
    const connection = await Device.connect(port);
    device.connection = connection;
    try {
      for (let n = 0; device.running; n++) {
        const sent = performance.now();
        let reply;
        try {
          reply = await connection.request(frame(n), 8000);
        } catch (err) {
          device.dropped = connection.closed;
          device.error = err.message;
          return;
        }
        device.requests++;
        device.longestWait = Math.max(device.longestWait, performance.now() - sent);
        if (!expect(reply, n)) device.wrong.push(reply);
        await every(5);
      }
    } finally {
      connection.close();
    }
  })();
  return device;
}

describe('full deploys of a real node-red process keep every board connected', function () {
  this.timeout(120000);
  let userDir;
  let port;
  let nodeRed;
  /** Requests made by probes (read()): they count as requests and flow messages too. */
  let probes = 0;

  const brokers = () => api(nodeRed.editorPort, 'GET', '/tcpmq/brokers');

  const flowStarts = () => nodeRed.output.split('Started flows').length;

  /**
   * Deploys round `round` (as the Deploy button does: `full`, or `reload` for
   * "Restart Flows") and waits until its flows have started: the runtime
   * answers a deploy before it starts them.
   */
  async function deployRound(round, onPort = port, type = 'full') {
    const starts = flowStarts();
    await deploy(nodeRed.editorPort, flows(round, onPort), type);
    await waitFor(() => flowStarts() > starts, `round ${round} (${type}) to start`, 10000);
    await waitFor(
      async () => (await brokers())[0]?.status.state === 'listening',
      `round ${round}: the broker to listen`,
    );
  }

  /** What a fresh device reads from mailbox `id`. */
  async function read(id, onPort = port) {
    const probe = await Device.connect(onPort);
    probes++;
    try {
      return await probe.request(`["probe",${JSON.stringify(id)},""]`);
    } finally {
      probe.close();
    }
  }

  before(async function () {
    port = await freePort();
    userDir = linkedUserDir('tcpmq-deploy-');
    nodeRed = await startNodeRed(userDir, { ready: /Started flows/ });
  });

  after(async function () {
    await stopNodeRed(nodeRed);
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  it(`runs devices that never reconnect through ${DEPLOYS} full deploys and restarts of the flows with no drop and every reply right`, async function () {
    await deployRound(0);
    await waitFor(async () => (await read('cmd')) === 'led on', 'the first deploy to write cmd');
    // The ESP8266 sensor of the blog reads device 1; device 1 reads the command mailbox.
    const sensor = fieldDevice(
      port,
      (n) => `[1,"cmd","26.${n}"]`,
      (reply) => reply === 'led on',
    );
    const reader = fieldDevice(
      port,
      (n) => `[-1,1,"60${n % 8}"]`,
      (reply) => /^26\.\d+$/.test(reply),
    );
    await waitFor(() => sensor.requests > 5 && reader.requests > 5, 'both devices exchanging');
    const deployTimes = [];
    for (let round = 1; round <= DEPLOYS; round++) {
      const started = performance.now();
      // Every fifth is "Restart Flows", which reloads the flows from storage.
      await deployRound(round, port, round % 5 === 0 ? 'reload' : 'full');
      deployTimes.push(performance.now() - started);
      const before = sensor.requests + reader.requests;
      await waitFor(
        () => sensor.requests + reader.requests >= before + 4 || sensor.dropped || reader.dropped,
        `round ${round}: exchanges go on`,
      );
    }
    sensor.running = reader.running = false;
    await Promise.all([sensor.done, reader.done]);
    await sleep(200); // the flow counts the last messages
    const events = JSON.parse(await read('events'));
    const messages = Number(await read('messages')); // every request before this read reached the flow or was missed
    const [broker] = await brokers();
    const missed = broker.counters.requests - 1 - messages;
    const unheard = broker.counters.unheardRequests;
    console.log(
      `      ${DEPLOYS} deploys, every fifth a restart of the flows (${Math.round(Math.min(...deployTimes))}-${Math.round(Math.max(...deployTimes))} ms each): ` +
        `${sensor.requests + reader.requests} device requests, longest reply wait ${Math.max(sensor.longestWait, reader.longestWait).toFixed(1)} ms; ` +
        `flow messages missed: ${missed} of ${broker.counters.requests - 1} (${unheard} while no tcpmq-in listened, ${missed - unheard} in flight as the old flow closed)`,
    );
    assert.deepEqual(
      [sensor.dropped, reader.dropped, sensor.error ?? reader.error],
      [false, false, undefined],
      'no device lost its connection',
    );
    assert.deepEqual([...sensor.wrong, ...reader.wrong], [], 'wrong replies');
    assert.equal(
      broker.counters.connections,
      2 + probes,
      'a connection for each device and each probe: no reconnection',
    );
    assert.deepEqual(
      broker.devices.filter((d) => d.id !== 'probe').map((d) => [d.id, d.messages, d.online]),
      [
        ['1', sensor.requests, true],
        ['-1', reader.requests, true],
      ],
      'the device table kept every count',
    );
    assert.deepEqual(
      events,
      { 'online 1': 1, 'online probe': 1, 'online -1': 1 },
      'each device online once, none offline',
    );
    assert.ok(missed >= unheard, `no request reached the flow twice (${missed} missed, ${unheard} unheard)`);
    assert.ok(missed <= DEPLOYS * 2, `flow messages missed: ${missed} in ${DEPLOYS} deploys`);
    assert.equal(await read('cmd'), 'led on', "the flow's command survives every deploy");
    assert.doesNotMatch(nodeRed.output, /\[error\]|EADDRINUSE/);
  });

  it('moves mailboxes and devices to a new port, closing the connections of the old one', async function () {
    const device = await Device.connect(port);
    assert.equal(await device.request('[1,1,"26.9"]'), '26.9');
    const oldPort = port;
    const newPort = await freePort();
    await deployRound(DEPLOYS + 1, newPort);
    assert.equal(await device.closedWithin(2000), true, 'a new port cannot keep the connections of the old one');
    await assert.rejects(Device.connect(oldPort), /ECONNREFUSED/);
    port = newPort;
    assert.equal(await read('cmd'), 'led on');
    assert.equal(await read(1), '26.9');
    const [broker] = await brokers();
    assert.ok(
      broker.devices.some((d) => d.id === '1' && d.online),
      'device 1 still in the table, online',
    );
  });

  it('frees the port at once when a deploy deletes the broker', async function () {
    await deploy(nodeRed.editorPort, [{ id: 'tab', type: 'tab', label: 'empty' }]);
    await waitFor(async () => (await brokers()).length === 0, 'no broker deployed');
    const squatter = net.createServer();
    await /** @type {Promise<void>} */ (
      new Promise((resolve, reject) => {
        squatter.once('error', reject);
        squatter.listen(port, '127.0.0.1', resolve);
      })
    );
    await new Promise((resolve) => squatter.close(resolve));
  });

  it('stops promptly on Ctrl-C with brokers running', async function () {
    await deployRound(DEPLOYS + 2);
    const device = await Device.connect(port);
    await device.request('[1,1,"x"]');
    const started = performance.now();
    assert.equal(await stopNodeRed(nodeRed, 'SIGINT'), 0);
    const took = performance.now() - started;
    assert.ok(took < 3000, `stopping took ${Math.round(took)} ms`);
    assert.equal(await device.closedWithin(1000), true);
  });
});

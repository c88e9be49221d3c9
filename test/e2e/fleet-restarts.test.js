'use strict';
// Boards outlive Node-RED: a tcpmq-gateway owns the boards, a real mosquitto
// carries the fleet, and a spawned node-red attached in fleet mode is restarted
// with SIGTERM and killed with SIGKILL, five times each. Boards that, like the
// published ESP8266 client, die on any closed connection keep exchanging.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Device, every, freePort, waitFor } = require('../support');
const { linkedUserDir, startNodeRed, stopNodeRed } = require('./node-red-process');
const { startGateway, stopGateway } = require('./gateway-process');
const { mqttBrokerNode, needMosquitto, startMosquitto } = require('./mosquitto');

const RESTARTS = 5;
/** The flow must receive reports again within this long after "Started flows". */
const BACK_WITHIN_MS = 2000;

/** Node-RED's flows: the broker in fleet mode, every report echoed into a mailbox, the device table every second. */
function fleetFlows(mqttPort) {
  return [
    { id: 'tab', type: 'tab', label: 'fleet' },
    mqttBrokerNode('mq', mqttPort, 'node-red-fleet'),
    { id: 'broker', type: 'tcpmq-broker', mode: 'fleet', share: 'mq', shareTopic: 'tcpmq', offlineAfter: 5 },
    { id: 'in', type: 'tcpmq-in', z: 'tab', broker: 'broker', device: '', wires: [['echo']] },
    {
      id: 'echo',
      type: 'function',
      z: 'tab',
      // `cmd:<text>` writes mailbox cmd; any other report is echoed to seen-<id>, with what the message carried.
      func: [
        "if (typeof msg.payload === 'string' && msg.payload.startsWith('cmd:'))",
        "  return { topic: 'cmd', payload: msg.payload.slice(4) };",
        "return { topic: 'seen-' + msg.topic, payload: [msg.payload, typeof msg.payload, msg.gateway, msg.want].join('|') };",
      ].join('\n'),
      wires: [['out']],
    },
    { id: 'out', type: 'tcpmq-out', z: 'tab', broker: 'broker', device: '', ttl: 0, wires: [] },
    {
      id: 'tick',
      type: 'inject',
      z: 'tab',
      props: [{ p: 'payload' }],
      repeat: '1',
      once: true,
      onceDelay: 0.1,
      payload: '',
      payloadType: 'date',
      wires: [['status']],
    },
    { id: 'status', type: 'tcpmq-status', z: 'tab', broker: 'broker', device: '', wires: [['table']] },
    {
      id: 'table',
      type: 'function',
      z: 'tab',
      // The boot time of this Node-RED (memory context: new at each start), then the devices online.
      func: [
        'if (!Array.isArray(msg.payload)) return null;',
        "const boot = context.get('boot') || Date.now();",
        "context.set('boot', boot);",
        "const online = msg.payload.filter((d) => d.online).map((d) => d.id + '@' + d.gateway).sort();",
        "return { topic: 'table', payload: boot + ' ' + online.join(',') };",
      ].join('\n'),
      wires: [['out']],
    },
  ];
}

/**
 * A board in lockstep, as the published client: `[id, id, value]` every
 * `everyMs` ms, its own news must come back, and a closed connection is fatal.
 */
function runBoard(device, id, everyMs, makeValue) {
  const board = { id, sent: new Map(), failures: [], requests: 0, longestMs: 0, stopped: false };
  board.done = (async () => {
    for (let k = 0; !board.stopped; k++) {
      const value = makeValue(k);
      const started = Date.now();
      board.sent.set(value, started);
      try {
        const reply = await device.request(`[${id},${id},"${value}"]`, 8000);
        if (reply !== value) board.failures.push(`board ${id}: sent ${value}, got ${reply}`);
      } catch (err) {
        board.failures.push(`board ${id}: ${err.message}`);
        return;
      }
      board.requests++;
      board.longestMs = Math.max(board.longestMs, Date.now() - started);
      await every(everyMs);
    }
  })();
  return board;
}

describe('boards outlive Node-RED: a gateway, mosquitto and node-red in fleet mode', function () {
  this.timeout(240000);
  let dir;
  let mosquitto;
  let gateway;
  let nodeRed;
  let userDir;
  let boardPort;
  const devices = [];
  const boards = [];

  before(async function () {
    needMosquitto(this);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpmq-restarts-'));
    const mqttPort = await freePort();
    mosquitto = await startMosquitto(mqttPort, dir);
    boardPort = await freePort();
    const mqtt = `mqtt://127.0.0.1:${mqttPort}`;
    gateway = await startGateway(
      [
        '--host',
        '127.0.0.1',
        '--port',
        String(boardPort),
        '--mqtt',
        mqtt,
        '--gateway',
        'hall',
        '--offline-after',
        '5',
        '--publish-interval',
        '0',
      ],
      { ready: /MQTT connected/ },
    );
    userDir = linkedUserDir('tcpmq-fleet-mode-', undefined, fleetFlows(mqttPort));
    nodeRed = await startNodeRed(userDir, { ready: /Started flows/ });
  });

  after(async function () {
    for (const board of boards) board.stopped = true;
    await Promise.all(boards.map((board) => board.done));
    for (const device of devices) device.close();
    await stopNodeRed(nodeRed);
    await stopGateway(gateway);
    if (mosquitto && mosquitto.exitCode === null) mosquitto.kill();
    if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function device() {
    const connected = await Device.connect(boardPort);
    devices.push(connected);
    return connected;
  }

  it(`keeps every board through ${RESTARTS} SIGTERM restarts and ${RESTARTS} SIGKILL restarts`, async function () {
    boards.push(runBoard(await device(), 1, 200, (k) => `v${k}`));
    boards.push(runBoard(await device(), 2, 200, (k) => `w${k}`));
    boards.push(runBoard(await device(), 3, 200, (k) => `${k}.5`));
    const probe = await device();
    const read = async (mailbox) => probe.request(`[9,"${mailbox}","p"]`, 8000);

    // Before any restart: the flow hears the boards, and writes a mailbox the boards read.
    await waitFor(async () => (await read('seen-1')).startsWith('v'), "the flow's echo of board 1", 5000);
    assert.equal(await probe.request('[9,"cmd","cmd:led on"]', 8000), 'None');
    await waitFor(async () => (await read('cmd')) === 'led on', 'the mailbox the flow wrote', 5000);
    const [value, type, gatewayName, want] = (await read('seen-3')).split('|');
    assert.deepEqual([type, gatewayName, want], ['number', 'hall', '3'], `msg of a numeric report: ${value}`);

    const backs = [];
    for (let round = 0; round < 2 * RESTARTS; round++) {
      const signal = round < RESTARTS ? 'SIGTERM' : 'SIGKILL';
      await stopNodeRed(nodeRed, signal);
      // The boards go on while Node-RED is down: each reports twice more.
      const counts = boards.map((board) => board.requests);
      await waitFor(() => boards.every((board, n) => board.requests >= counts[n] + 2), 'two reports of each board');
      nodeRed = await startNodeRed(userDir, { ready: /Started flows/ });
      const started = Date.now();
      // A report sent after the start, echoed by the new flow.
      await waitFor(
        async () => {
          const echoed = (await read('seen-1')).split('|')[0];
          return (boards[0].sent.get(echoed) ?? 0) > started;
        },
        `${signal} round ${round}: a new report through the new flow`,
        BACK_WITHIN_MS + 3000,
      );
      backs.push(Date.now() - started);
      assert.equal(await read('cmd'), 'led on', `${signal} round ${round}: the flow's mailbox is still served`);
      await waitFor(
        async () => {
          const [boot, table] = (await read('table')).split(' ');
          return Number(boot) >= started - 5000 && table === '1@hall,2@hall,3@hall,9@hall';
        },
        async () => `${signal} round ${round}: the whole table from tcpmq status (last: ${await read('table')})`,
        5000,
      );
    }
    console.log(`      reports through the flow again ${backs.join(', ')} ms after "Started flows"`);
    for (const board of boards) {
      assert.deepEqual(board.failures, [], `board ${board.id}: every reply correct, no drop`);
      assert.equal(devices[boards.indexOf(board)].closed, false, `board ${board.id}: its connection is open`);
    }
    const longest = Math.max(...boards.map((board) => board.longestMs));
    console.log(`      ${boards.map((b) => b.requests).join(' + ')} requests, the longest reply wait ${longest} ms`);
    assert.ok(Math.max(...backs) <= BACK_WITHIN_MS, `back within ${BACK_WITHIN_MS} ms: ${backs.join(', ')}`);
  });
});

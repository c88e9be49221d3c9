'use strict';
// Two halls, one fleet: two node-red gateways share their boards through a real
// mosquitto (Debian's package, on a free loopback port), and any MQTT client
// (mosquitto_pub, mosquitto_sub) reads and commands them.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { Device, every, freePort, quietFor, waitFor } = require('../support');
const { mqttBrokerNode, needMosquitto, startMosquitto, publish, retained } = require('./mosquitto');
const { WebSocket, linkedUserDir, startNodeRed, stopNodeRed, api } = require('./node-red-process');

const OFFLINE_AFTER = 2;

/** A gateway's flows: a broker sharing through the mosquitto at `mqttPort`, a tcpmq-status for every gateway's devices. */
function gatewayFlows(name, tcpmqPort, mqttPort, extra = []) {
  return [
    { id: 'tab', type: 'tab', label: name },
    mqttBrokerNode('mq', mqttPort, `gateway-${name}`),
    {
      id: 'broker',
      type: 'tcpmq-broker',
      name,
      host: '127.0.0.1',
      port: tcpmqPort,
      replyFormat: 'text',
      offlineAfter: OFFLINE_AFTER,
      idleTimeout: 60,
      maxConnections: 100,
      maxFrameBytes: 65536,
      share: 'mq',
      shareTopic: 'tcpmq',
      gateway: name,
      haDiscovery: true,
    },
    { id: 'in', type: 'tcpmq-in', z: 'tab', broker: 'broker', device: '', numbers: false, remote: true, wires: [[]] },
    ...extra,
  ];
}

describe('two gateways on one mosquitto', function () {
  this.timeout(120000);
  let dir;
  let mqttPort;
  let mosquitto;
  const gateways = {};

  before(async function () {
    needMosquitto(this);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpmq-fleet-'));
    mqttPort = await freePort();
    mosquitto = await startMosquitto(mqttPort, dir);
    for (const name of ['hall-a', 'hall-b']) {
      const tcpmqPort = await freePort();
      // Hall A writes the ids of its own device table and of the whole fleet's into two mailboxes, every second.
      const tables = [
        {
          id: 'tick',
          type: 'inject',
          z: 'tab',
          props: [{ p: 'payload' }],
          repeat: '1',
          once: true,
          onceDelay: 0.5,
          payload: '',
          payloadType: 'date',
          wires: [['own', 'all']],
        },
        {
          id: 'own',
          type: 'tcpmq-status',
          z: 'tab',
          broker: 'broker',
          device: '',
          remote: false,
          wires: [['own-ids']],
        },
        { id: 'all', type: 'tcpmq-status', z: 'tab', broker: 'broker', device: '', remote: true, wires: [['all-ids']] },
        ...['own', 'all'].map((table) => ({
          id: `${table}-ids`,
          type: 'function',
          z: 'tab',
          func: `if (!Array.isArray(msg.payload)) return null; return { topic: '${table}-table', payload: msg.payload.map((d) => d.id + '@' + d.gateway).sort().join(' ') };`,
          wires: [['table-out']],
        })),
        { id: 'table-out', type: 'tcpmq-out', z: 'tab', broker: 'broker', device: '', ttl: 0, wires: [] },
      ];
      const extra =
        name === 'hall-a'
          ? tables
          : name === 'hall-b'
            ? [
                {
                  id: 'cmd',
                  type: 'inject',
                  z: 'tab',
                  props: [{ p: 'payload' }],
                  once: true,
                  onceDelay: 0.5,
                  repeat: '',
                  payload: 'led on',
                  payloadType: 'str',
                  wires: [['out']],
                },
                { id: 'out', type: 'tcpmq-out', z: 'tab', broker: 'broker', device: 'cmd', ttl: 0, wires: [] },
              ]
            : [];
      const userDir = linkedUserDir(`tcpmq-${name}-`, undefined, gatewayFlows(name, tcpmqPort, mqttPort, extra));
      gateways[name] = { userDir, tcpmqPort, nodeRed: await startNodeRed(userDir, { ready: /Started flows/ }) };
    }
    for (const gateway of Object.values(gateways)) {
      await waitFor(
        async () => (await api(gateway.nodeRed.editorPort, 'GET', '/tcpmq/brokers'))[0]?.sharing?.connected === true,
        'sharing connected',
        15000,
      );
    }
  });

  after(async function () {
    for (const gateway of Object.values(gateways)) {
      await stopNodeRed(gateway.nodeRed);
      fs.rmSync(gateway.userDir, { recursive: true, force: true });
    }
    if (mosquitto && mosquitto.exitCode === null) mosquitto.kill();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const on = (name) => Device.connect(gateways[name].tcpmqPort);
  const summary = async (name) => (await api(gateways[name].nodeRed.editorPort, 'GET', '/tcpmq/brokers'))[0];

  it("lets a board on hall A read a board on hall B within a second, and a flow's write on B", async function () {
    const sensor = await on('hall-b');
    const reader = await on('hall-a');
    try {
      assert.equal(await sensor.request('[2,2,"21.5 in hall B"]'), '21.5 in hall B');
      const sent = Date.now();
      await waitFor(async () => (await reader.request('[1,2,"x"]')) === '21.5 in hall B', "B's news on A", 1000);
      console.log(`      hall B -> hall A in ${Date.now() - sent} ms (polled)`);
      await waitFor(
        async () => (await reader.request('[1,"cmd","x"]')) === 'led on',
        "B's flow-written cmd on A",
        3000,
      );
      const a = await summary('hall-a');
      assert.deepEqual(
        a.devices.filter((d) => d.id === '2').map((d) => [d.gateway, d.online]),
        [['hall-b', true]],
        "the table on A lists B's device with its gateway",
      );
      // tcpmq status: its own gateway's devices, or every gateway's with Other gateways ticked.
      await waitFor(
        async () => (await reader.request('[1,"all-table","a news"]')).includes('2@hall-b'),
        "B's device in A's whole-fleet table",
        3000,
      );
      const own = await reader.request('[1,"own-table","a news"]');
      assert.match(own, /1@hall-a/);
      assert.doesNotMatch(own, /hall-b/, `A's own table: ${own}`);
    } finally {
      sensor.close();
      reader.close();
    }
  });

  it('is readable by any MQTT client as retained JSON, and commandable through /set', async function () {
    const mailbox = await retained(mqttPort, 'tcpmq/mailbox/2');
    assert.deepEqual(
      [mailbox.value, mailbox.writer, mailbox.gateway, typeof mailbox.writtenAt],
      ['21.5 in hall B', 'device', 'hall-b', 'number'],
    );
    const device = await retained(mqttPort, 'tcpmq/device/2');
    assert.deepEqual([device.online, device.gateway], [true, 'hall-b']);
    await publish(mqttPort, 'tcpmq/mailbox/fan/set', 'fan off');
    for (const name of ['hall-a', 'hall-b']) {
      const board = await on(name);
      try {
        await waitFor(async () => (await board.request('[3,"fan","x"]')) === 'fan off', `the /set on ${name}`, 3000);
      } finally {
        board.close();
      }
    }
  });

  it('publishes valid Home Assistant discovery for each board', async function () {
    const config = await retained(mqttPort, 'homeassistant/sensor/tcpmq_2/config');
    assert.equal(config.unique_id, 'tcpmq_2');
    assert.equal(config.state_topic, 'tcpmq/mailbox/2');
    assert.deepEqual(
      config.availability.map((a) => a.topic),
      ['tcpmq/device/2', 'tcpmq/gateway/hall-b'],
    );
    assert.match(config.value_template, /value_json\.value/);
    // A Node-RED gateway announces itself too, so that the availability above can say online.
    const state = await retained(mqttPort, 'tcpmq/gateway/hall-b');
    assert.equal(state.online, true);
  });

  it('sends one mailbox message for one report: no gateway sends back what it took in', async function () {
    // Our marker comes back once the listener is subscribed, after what mosquitto held.
    const marker = `tcpmq-test/marker-${process.pid}`;
    const topics = ['-t', 'tcpmq/mailbox/#', '-t', marker];
    const listener = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(mqttPort), ...topics, '-v']);
    let seen = '';
    listener.stdout.on('data', (chunk) => (seen += chunk));
    await waitFor(async () => {
      await publish(mqttPort, marker, 'x');
      return seen.includes(marker);
    }, 'the listener subscribed: our marker back');
    const retainedLines = seen.split('\n').filter(Boolean).length;
    // The report's topic (the flows rewrite their table mailboxes, and boards of the tests before may report).
    const after = () =>
      seen
        .split('\n')
        .filter(Boolean)
        .slice(retainedLines)
        .filter((line) => line.startsWith('tcpmq/mailbox/9 '));
    const sensor = await on('hall-a');
    try {
      await sensor.request('[9,9,"once"]');
      await waitFor(() => after().length >= 1, 'the report on tcpmq/mailbox/9');
      await quietFor(
        1000,
        () => `second mailbox message for one report: ${after().join(' | ')}`,
        () => after().length > 1,
      );
    } finally {
      sensor.close();
      listener.kill();
    }
    const lines = after();
    assert.deepEqual(
      lines.map((line) => line.split(' ')[0]),
      ['tcpmq/mailbox/9'],
      `messages after the report:\n${lines.join('\n')}`,
    );
  });

  it("reads None on A once B's board is silent, also after B's process is killed", async function () {
    const reader = await on('hall-a');
    const sensor = await on('hall-b');
    try {
      await sensor.request('[4,4,"about to die"]');
      await waitFor(async () => (await reader.request('[1,4,"x"]')) === 'about to die', "B's news on A", 2000);
      await stopNodeRed(gateways['hall-b'].nodeRed, 'SIGKILL');
      const killed = Date.now();
      await waitFor(
        async () => (await reader.request('[1,4,"x"]')) === 'None',
        'None on A after offlineAfter',
        (OFFLINE_AFTER + 3) * 1000,
      );
      const after = (Date.now() - killed) / 1000;
      assert.ok(after >= OFFLINE_AFTER - 0.5, `None after ${after} s, not before offlineAfter`);
    } finally {
      reader.close();
      sensor.close();
    }
    gateways['hall-b'].nodeRed = await startNodeRed(gateways['hall-b'].userDir, { ready: /Started flows/ });
    await waitFor(async () => (await summary('hall-b'))?.sharing?.connected === true, 'B sharing again', 15000);
  });

  it('serves boards locally while mosquitto is down, says so, and resyncs when it is back', async function () {
    // The status dots, as the editor gets them over comms.
    const socket = new WebSocket(`ws://127.0.0.1:${gateways['hall-a'].nodeRed.editorPort}/comms`);
    const statuses = [];
    await new Promise((resolve) => socket.once('open', resolve));
    socket.on('message', (data) => {
      for (const message of [].concat(JSON.parse(String(data))))
        if (message.topic === 'status/in') statuses.push(message.data);
    });
    socket.send(JSON.stringify({ subscribe: 'status/#' }));
    mosquitto.kill();
    await mosquitto.exited;
    await waitFor(async () => (await summary('hall-a')).sharing.connected === false, 'A to see MQTT gone', 15000);
    await waitFor(
      () => statuses.some((status) => status.fill === 'yellow' && /sharing disconnected/.test(status.text)),
      'a yellow ring under tcpmq in',
      5000,
    );
    socket.terminate();
    const board = await on('hall-a');
    const reader = await on('hall-b');
    // A board on A keeps reporting, as boards do every few seconds; a flow on A writes a command.
    let reporting = true;
    const reports = (async () => {
      for (let n = 0; reporting; n++) {
        assert.equal(await board.request(`[6,6,"report ${n}"]`), `report ${n}`, 'served while MQTT is down');
        await every(300);
      }
    })();
    try {
      await api(gateways['hall-a'].nodeRed.editorPort, 'POST', '/tcpmq/brokers/broker/mailbox', {
        device: 'pump',
        payload: 'pump on',
      });
      assert.equal(await reader.request('[7,7,"b"]'), 'b', 'B serves its boards too');
      assert.equal(await reader.request('[7,"pump","b"]'), 'None', 'not shared while MQTT is down');
      mosquitto = await startMosquitto(mqttPort, dir);
      await waitFor(
        async () => (await reader.request('[7,"pump","b"]')) === 'pump on',
        "A's command on B after the resync",
        20000,
      );
      await waitFor(
        async () => /^report \d+$/.test(await reader.request('[7,6,"b"]')),
        "A's board on B after the resync",
        5000,
      );
      assert.equal((await summary('hall-a')).sharing.connected, true);
    } finally {
      reporting = false;
      await reports;
      board.close();
      reader.close();
    }
  });
});

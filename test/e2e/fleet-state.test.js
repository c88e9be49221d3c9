'use strict';
// The fleet's state is the truth, as a user deploys it: mosquitto, `tcpmq-gateway
// --persist --ha-discovery` and a Node-RED whose tcpmq-broker is in fleet mode, with
// the field's boards, a flow writing a mailbox, `/set` writers and restarts.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const mqttjs = require('mqtt');
const { Device, every, freePort, waitFor } = require('../support');
const { linkedUserDir, startNodeRed, stopNodeRed } = require('./node-red-process');
const { startGateway, stopGateway } = require('./gateway-process');
const { mqttBrokerNode, needMosquitto, startMosquitto } = require('./mosquitto');
const { processTree, rssKb } = require('../../tools/proc');

/** Node-RED in fleet mode: a flow writing mailbox `cmd` every 2 s, and every report it gets kept for GET /reports. */
function fleetFlows(mqttPort) {
  return [
    { id: 'tab', type: 'tab', label: 'fleet' },
    mqttBrokerNode('mq', mqttPort, 'node-red-fleet-state'),
    { id: 'broker', type: 'tcpmq-broker', mode: 'fleet', share: 'mq', shareTopic: 'tcpmq', offlineAfter: 5 },
    {
      id: 'every2s',
      type: 'inject',
      z: 'tab',
      props: [{ p: 'payload' }],
      repeat: '2',
      once: true,
      onceDelay: 0.5,
      payload: '',
      payloadType: 'date',
      wires: [['count']],
    },
    {
      id: 'count',
      type: 'function',
      z: 'tab',
      func: "const n = (context.get('n') || 0) + 1;\ncontext.set('n', n);\nreturn { topic: 'cmd', payload: 'flow-' + n };",
      wires: [['out']],
    },
    { id: 'out', type: 'tcpmq-out', z: 'tab', broker: 'broker', device: '', ttl: 0, wires: [] },
    { id: 'in', type: 'tcpmq-in', z: 'tab', broker: 'broker', device: '', wires: [['keep']] },
    {
      id: 'keep',
      type: 'function',
      z: 'tab',
      func: "const reports = global.get('reports') || [];\nreports.push([msg.topic, msg.payload]);\nglobal.set('reports', reports);\nreturn null;",
      wires: [],
    },
    { id: 'reportsIn', type: 'http in', z: 'tab', url: '/reports', method: 'get', wires: [['reportsList']] },
    {
      id: 'reportsList',
      type: 'function',
      z: 'tab',
      func: "msg.payload = global.get('reports') || [];\nreturn msg;",
      wires: [['reportsReply']],
    },
    { id: 'reportsReply', type: 'http response', z: 'tab', statusCode: '200', wires: [] },
  ];
}

/** Every message on the fleet's and Home Assistant's topics, as the MQTT broker sends them. */
async function recorder(mqttPort) {
  const client = mqttjs.connect(`mqtt://127.0.0.1:${mqttPort}`, { clientId: `recorder-${process.pid}` });
  const messages = [];
  client.on('message', (topic, payload, packet) =>
    messages.push({ topic, text: payload.toString(), retain: packet.retain, at: Date.now() }),
  );
  await new Promise((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  await client.subscribeAsync(['tcpmq/#', 'homeassistant/#']);
  return { client, messages };
}

/** The resident memory of `pid` and its children (a gateway runs as a holder and a worker), in bytes. */
function rssOf(pid) {
  return processTree(pid).reduce((sum, id) => sum + (rssKb(id) ?? 0) * 1024, 0);
}

describe('the fleet state with mosquitto, tcpmq-gateway and Node-RED in fleet mode', function () {
  this.timeout(180000);
  let dir;
  let mqttPort;
  let mosquitto;
  let record;
  const started = [];
  const devices = [];

  before(async function () {
    needMosquitto(this);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpmq-fleet-state-'));
    mqttPort = await freePort();
    mosquitto = await startMosquitto(mqttPort, dir);
  });
  beforeEach(async function () {
    record = await recorder(mqttPort);
  });
  afterEach(async function () {
    for (const device of devices.splice(0)) device.close();
    for (const child of started.splice(0)) await stopGateway(child, 'SIGKILL');
    await record?.client.endAsync();
    // Each test starts from an empty MQTT broker: its retained messages go with it.
    if (mosquitto) {
      mosquitto.kill();
      await mosquitto.exited;
      mosquitto = await startMosquitto(mqttPort, dir);
    }
  });
  after(async function () {
    if (mosquitto && mosquitto.exitCode === null) mosquitto.kill();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function gateway(boardPort, extra = []) {
    const args = ['--host', '127.0.0.1', '--port', String(boardPort), '--mqtt', `mqtt://127.0.0.1:${mqttPort}`];
    const since = record.messages.length;
    const child = await startGateway([...args, '--gateway', 'hallA', '--offline-after', '5', ...extra], {
      ready: /MQTT connected/,
    });
    started.push(child);
    // In step with the fleet (its state goes out once it has taken in what is retained): its /set subscription is on.
    await waitFor(
      () => record.messages.slice(since).some((m) => m.topic === 'tcpmq/gateway/hallA' && JSON.parse(m.text).online),
      'the gateway to say it is online',
    );
    return child;
  }

  async function nodeRed() {
    const userDir = linkedUserDir('tcpmq-fleet-state-', undefined, fleetFlows(mqttPort));
    const child = await startNodeRed(userDir, { ready: /Started flows/ });
    started.push(child);
    return Object.assign(child, { userDir });
  }

  async function board(port) {
    const device = await Device.connect(port);
    devices.push(device);
    return device;
  }

  it('serves a mailbox that /set and a fleet-mode flow both write: never None, no empty message, every write read', async function () {
    const boardPort = await freePort();
    const persist = path.join(dir, 'hall-a.json');
    await gateway(boardPort, ['--persist', persist, '--ha-discovery', '--publish-interval', '0']);
    const red = await nodeRed();
    const reader = await board(boardPort);
    const reads = [];
    let reading = true;
    const readLoop = (async () => {
      while (reading) {
        reads.push({ value: await reader.request('[77,"cmd","r"]'), at: Date.now() });
        await every(100);
      }
    })();
    await waitFor(() => reads.some((read) => read.value.startsWith('flow-')), 'the flow’s first write read', 10000);
    const sets = [];
    const setter = record.client;
    for (let n = 1; n <= 40; n++) {
      const value = `set-${n}`;
      sets.push(value);
      await setter.publishAsync('tcpmq/mailbox/cmd/set', value, { qos: 1 });
      await every(100 + ((n * 137) % 500)); // 0.1 to 0.6 s apart: some are replaced before a board reads them
    }
    // The owner's latest write is read (the flow may write once more meanwhile: then that one).
    const cmdTopic = () => record.messages.filter((m) => m.topic === 'tcpmq/mailbox/cmd' && m.text);
    await waitFor(
      () => reads.some((read) => read.value === String(JSON.parse(cmdTopic().at(-1).text).value)),
      'the last write read',
    );
    reading = false;
    await readLoop;
    await stopNodeRed(red);
    fs.rmSync(red.userDir, { recursive: true, force: true });

    const firstWrite = reads.findIndex((read) => read.value !== 'None');
    const nones = reads.slice(firstWrite).filter((read) => read.value === 'None').length;
    assert.equal(nones, 0, `None read ${nones} times while the mailbox held a write`);
    const onTopic = record.messages.filter((m) => m.topic === 'tcpmq/mailbox/cmd');
    assert.equal(onTopic.filter((m) => m.text === '').length, 0, 'no empty message on tcpmq/mailbox/cmd');
    assert.ok(
      onTopic.every((m) => JSON.parse(m.text).gateway === 'hallA'),
      'one writer: the gateway that owns cmd',
    );
    // Every write, in the order the owner took them, is read unless the next replaced it within 0.35 s.
    const writes = onTopic.map((m) => JSON.parse(m.text));
    const seen = new Set(reads.map((read) => read.value));
    const unread = writes.filter((write, n) => {
      const next = writes[n + 1];
      return !seen.has(write.value) && !(next && next.writtenAt - write.writtenAt < 350);
    });
    assert.deepEqual(
      unread.map((write) => write.value),
      [],
      'writes never read',
    );
    for (const value of sets)
      assert.ok(
        writes.some((write) => write.value === value),
        `${value} taken by the owner`,
      );
    assert.ok(writes.filter((write) => String(write.value).startsWith('flow-')).length >= 5, 'the flow’s writes');
  });

  it('holds /set to the TCP side’s limits, serving boards throughout, memory bounded', async function () {
    const boardPort = await freePort();
    const gw = await gateway(boardPort, ['--max-frame-bytes', '4096', '--max-devices', '1000']);
    const device = await board(boardPort);
    let serving = true;
    const failures = [];
    let served = 0;
    const serveLoop = (async () => {
      for (let n = 0; serving; n++) {
        const reply = await device.request(`[5,5,"${n}"]`).catch((err) => `failed: ${err.message}`);
        if (reply !== String(n)) failures.push(`sent ${n}, got ${reply}`);
        else served++;
        await every(20);
      }
    })();
    const rssBefore = rssOf(gw.pid);
    const client = record.client;
    await client.publishAsync('tcpmq/mailbox/big/set', 'y'.repeat(5000), { qos: 1 });
    await client.publishAsync('tcpmq/mailbox/huge/set', 'z'.repeat(1024 * 1024), { qos: 1 });
    await client.publishAsync(`tcpmq/mailbox/${'i'.repeat(300)}/set`, 'long id', { qos: 1 });
    for (let n = 0; n < 5000; n++) client.publish(`tcpmq/mailbox/junk${n}/set`, String(n), { qos: 0 });
    await client.publishAsync('tcpmq/mailbox/last/set', 'done', { qos: 1 });
    await waitFor(
      () => /junk4999\/set" refused|more refusals/.test(gw.output) || gw.output.includes('mailboxes held'),
      'the refusals logged',
      20000,
    );
    const afterFlood = served;
    await waitFor(() => served >= afterFlood + 20, 'the board served after the flood', 10000);
    serving = false;
    await serveLoop;
    const rssAfter = rssOf(gw.pid);
    const mailboxTopics = new Set(
      record.messages.filter((m) => /^tcpmq\/mailbox\/[^/]+$/.test(m.topic) && m.text).map((m) => m.topic),
    );
    assert.ok(!mailboxTopics.has('tcpmq/mailbox/big'), 'a reply over maxFrameBytes is refused');
    assert.ok(!mailboxTopics.has('tcpmq/mailbox/huge'), 'a 1 MB value is refused');
    assert.ok(![...mailboxTopics].some((topic) => topic.length > 200), 'an id over 128 bytes is refused');
    assert.ok(mailboxTopics.size <= 1000, `${mailboxTopics.size} mailboxes published with --max-devices 1000`);
    const refusals = gw.output.split('\n').filter((line) => line.includes('refused'));
    assert.ok(refusals.length >= 3 && refusals.length <= 21, `${refusals.length} refusal lines (20 a minute)`);
    assert.match(
      gw.output,
      /"tcpmq\/mailbox\/big\/set" refused: its reply of 5000 bytes is over maxFrameBytes \(4096\)/,
    );
    assert.match(gw.output, /refused: the id is over 128 bytes/);
    assert.deepEqual(failures, [], 'the board served throughout');

    const growth = (rssAfter - rssBefore) / 2 ** 20;
    console.log(
      `      RSS ${(rssBefore / 2 ** 20).toFixed(1)} -> ${(rssAfter / 2 ** 20).toFixed(1)} MB (+${growth.toFixed(1)})`,
    );
    assert.ok(growth < 40, `RSS grew ${growth.toFixed(1)} MB`);
  });

  it('through kill -9, SIGTERM and kill -9 restarts: nothing backwards, no report twice, the command topic kept', async function () {
    const boardPort = await freePort();
    const persist = path.join(dir, 'restarts.json');
    const args = ['--persist', persist, '--ha-discovery', '--publish-interval', '0'];
    let gw = await gateway(boardPort, args);
    const red = await nodeRed();
    let counter = 0;
    let running = true;
    const reporter = (async () => {
      let device;
      while (running) {
        try {
          device ??= await board(boardPort);
          counter++;
          await device.request(`[3,"cmd","${counter}"]`, 3000);
        } catch {
          // The gateway restarts: the board connects again (the package's device library does).
          device?.close();
          device = undefined;
        }
        await every(200);
      }
      device?.close();
    })();
    await waitFor(() => counter > 10, 'reports');
    for (const signal of /** @type {const} */ (['SIGKILL', 'SIGTERM', 'SIGKILL'])) {
      // After a persist save and some more reports: kill -9 loses what came after the save.
      const savedBefore = fs.existsSync(persist) ? fs.statSync(persist).mtimeMs : 0;
      await waitFor(() => fs.existsSync(persist) && fs.statSync(persist).mtimeMs > savedBefore, 'a save', 10000);
      const savedAt = counter;
      await waitFor(() => counter >= savedAt + 3, 'reports after the save');
      await stopGateway(gw, signal);
      started.splice(started.indexOf(gw), 1);
      gw = await gateway(boardPort, args);
    }
    const last = counter;
    await waitFor(() => counter > last + 10, 'reports after the last restart');
    running = false;
    await reporter;
    const reports = await (await fetch(`http://127.0.0.1:${red.editorPort}/reports`)).json();
    await stopNodeRed(red);
    fs.rmSync(red.userDir, { recursive: true, force: true });

    const values = record.messages
      .filter((m) => m.topic === 'tcpmq/mailbox/3' && m.text)
      .map((m) => Number(JSON.parse(m.text).value));
    const backwards = values.filter((value, n) => n > 0 && value < values[n - 1]);
    assert.deepEqual(backwards, [], `tcpmq/mailbox/3 went backwards: ${values.join(' ')}`);
    const flowValues = reports.filter(([topic]) => topic === '3').map(([, payload]) => Number(payload));
    assert.ok(flowValues.length > 20, `${flowValues.length} reports through the flow`);
    const repeated = flowValues.filter((value, n) => n > 0 && value <= flowValues[n - 1]);
    assert.deepEqual(repeated, [], `the flow got an older report or one twice: ${flowValues.join(' ')}`);
    const commandTopics = new Set(
      record.messages
        .filter((m) => m.topic === 'homeassistant/text/tcpmq_3/config' && m.text)
        .map((m) => JSON.parse(m.text).command_topic),
    );
    assert.deepEqual([...commandTopics], ['tcpmq/mailbox/cmd/set'], 'the command topic is the mailbox board 3 reads');
  });
});

'use strict';
// tcpmq-gateway upgraded (SIGUSR2) and its worker killed while boards exchange:
// a copy of the package whose version is bumped on disk before each upgrade, a
// raw board reporting every 0.2 s, the field's published ESP8266 client in a
// real MicroPython (it never reconnects), and a real mosquitto watched for the
// gateway's state and the boards' presence.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const mqtt = require('mqtt');
const { Device, every, freePort, skipWithout, sleep, waitFor } = require('../support');
const { startProcess, stopProcess } = require('../../tools/process');
const { needMosquitto, startMosquitto } = require('./mosquitto');
const { copyPackage, setVersion } = require('./gateway-upgrade-kit');
const { alive, childrenOf } = require('../../tools/proc');

const ROOT = path.join(__dirname, '..', '..');
const MICROPYTHON = process.env.MICROPYTHON || path.join(ROOT, '..', 'shared', 'tools', 'micropython');

/**
 * A board in lockstep, as the device library's boards are: `[id, id, "v<n>"]`
 * every `everyMs`, each reply checked (its own news back) and timed.
 */
function reportingBoard(port, id, everyMs = 200) {
  const board = { sent: 0, wrong: [], waits: [], closed: false, running: true, error: undefined };
  board.done = (async () => {
    const device = await Device.connect(port);
    device.socket.on('close', () => (board.closed = true));
    try {
      while (board.running) {
        const value = `v${++board.sent}`;
        const from = performance.now();
        const reply = await device.request(`[${id},${id},"${value}"]`, 5000);
        board.waits.push({ at: Date.now(), ms: performance.now() - from });
        if (reply !== value) board.wrong.push(`${value} -> ${reply}`);
        await every(everyMs);
      }
    } catch (err) {
      board.error = err;
    } finally {
      device.close();
    }
  })();
  /** The longest reply wait since `since` (ms since the epoch). */
  board.longestSince = (since) => Math.max(0, ...board.waits.filter((w) => w.at >= since).map((w) => w.ms));
  return board;
}

/** The ESP8266 client of the field's blog, as it is but for the address, its pace and a bounded loop. */
function publishedClient(port, rounds) {
  const script = `
import json, random, socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect(socket.getaddrinfo('127.0.0.1', ${port})[0][-1])
s.settimeout(8)
def k(x):
  time.sleep(0.5)
  s.send(json.dumps(x))
  ccc = s.recv(20)
  return ccc
for i in range(${rounds}):
  ccc = k([-1, 1, '60%d' % random.getrandbits(3)])
  print(ccc.decode())
print('end')
`;
  const child = spawn(MICROPYTHON, ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => output };
}

/** Every message on `topics` from now on (retained ones first), parsed. */
async function watch(port, topics) {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: `watch-${process.pid}` });
  const messages = [];
  client.on('message', (topic, payload) => {
    if (payload.length > 0) messages.push({ topic, at: Date.now(), ...JSON.parse(payload.toString('utf8')) });
  });
  await client.subscribeAsync(topics, { qos: 1 });
  return { messages, end: () => client.endAsync() };
}

describe('tcpmq-gateway upgraded and its worker killed, boards on', function () {
  this.timeout(120000);
  let dir;
  let mosquitto;
  let mqttPort;
  const started = [];

  before(async function () {
    needMosquitto(this);
    if (!fs.existsSync(MICROPYTHON)) skipWithout(this, `MicroPython's unix port (${MICROPYTHON})`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpmq-upgrade-'));
    mqttPort = await freePort();
    mosquitto = await startMosquitto(mqttPort, dir);
  });

  afterEach(async function () {
    for (const child of started.splice(0)) {
      const workers = childrenOf(child.pid);
      await stopProcess(child, 'SIGKILL');
      for (const pid of workers) if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  after(async function () {
    if (mosquitto && mosquitto.exitCode === null) {
      mosquitto.kill();
      await mosquitto.exited;
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function gateway(bin, args, ready = /listening on /) {
    const child = await startProcess(process.execPath, [bin, ...args], { ready, name: 'tcpmq-gateway', ms: 15000 });
    started.push(child);
    return child;
  }

  it('keeps every board through three upgrades and two worker crashes, says each new version and never offline', async function () {
    const pkg = copyPackage(ROOT, path.join(dir, 'pkg'));
    const port = await freePort();
    const persist = path.join(dir, 'mailboxes.json');
    const args = ['--host', '127.0.0.1', '--port', String(port), '--mqtt', `mqtt://127.0.0.1:${mqttPort}`];
    args.push('--gateway', 'upgraded', '--persist', persist);
    const watcher = await watch(mqttPort, ['tcpmq/gateway/upgraded', 'tcpmq/device/+']);
    const gw = await gateway(pkg.bin, args, /MQTT connected/);
    const mainPid = gw.pid;
    try {
      // A mailbox written before, through MQTT as any client would, once the gateway is in step with the fleet.
      await waitFor(
        () => watcher.messages.some((m) => m.topic === 'tcpmq/gateway/upgraded' && m.online === true),
        'the gateway to announce itself',
        10000,
      );
      const reader = await Device.connect(port);
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { clientId: `writer-${process.pid}` });
      await client.publishAsync('tcpmq/mailbox/note/set', 'written before');
      await client.endAsync();
      await waitFor(async () => (await reader.request('[9,"note","r"]')) === 'written before', 'the /set', 5000);

      const board = reportingBoard(port, 1);
      await waitFor(() => board.sent > 3, 'the board reporting');
      const esp = publishedClient(port, 48);
      await waitFor(
        () => /^v\d+$/m.test(esp.output()),
        () => `the ESP8266 client exchanging: ${esp.output()}`,
      );

      const versions = [];
      const upgradeWaits = [];
      for (let round = 1; round <= 3; round++) {
        const version = `0.1.${round}-upgrade`;
        setVersion(pkg.root, version);
        const before = childrenOf(mainPid);
        const from = Date.now();
        process.kill(mainPid, 'SIGUSR2');
        await waitFor(
          () => watcher.messages.some((m) => m.topic === 'tcpmq/gateway/upgraded' && m.version === version),
          () => `the state to say version ${version}; output:\n${gw.output.slice(-1500)}`,
          10000,
        );
        versions.push({ version, seconds: (Date.now() - from) / 1000 });
        await waitFor(() => !before.some(alive), 'the old worker to go', 10000);
        const served = board.sent;
        await waitFor(() => board.sent >= served + 5, 'five more replies after the upgrade', 5000);
        upgradeWaits.push(board.longestSince(from - 500));
      }
      const crashWaits = [];
      for (let crash = 1; crash <= 2; crash++) {
        const [worker] = childrenOf(mainPid);
        assert.ok(worker, 'a worker runs');
        const from = Date.now();
        process.kill(worker, 'SIGKILL');
        await waitFor(() => childrenOf(mainPid).some((pid) => pid !== worker), 'a new worker', 5000);
        const sent = board.sent;
        await waitFor(() => board.sent > sent + 5, 'the board served again', 5000);
        crashWaits.push(board.longestSince(from - 500));
      }

      assert.equal(await esp.exited, 0, `the published client ran to its end:\n${esp.output()}`);
      const replies = esp.output().trim().split('\n');
      assert.equal(replies.pop(), 'end');
      assert.equal(replies.length, 48);
      assert.deepEqual(
        replies.filter((reply) => !/^v\d+$/.test(reply)),
        [],
        "every reply of the published client is board 1's news",
      );
      board.running = false;
      await board.done;
      assert.equal(board.error, undefined, `the board: ${board.error}`);
      assert.equal(board.closed, false, 'the board never lost its connection');
      assert.deepEqual(board.wrong, [], 'every reply right');
      assert.equal(await reader.request('[9,"note","r"]'), 'written before', 'the mailbox written before');
      reader.close();
      assert.equal(alive(mainPid), true, 'the main PID never changed');
      console.log(
        `      versions said after ${versions.map((v) => `${v.seconds.toFixed(1)} s`).join(', ')}; ` +
          `longest reply wait around each upgrade ${upgradeWaits.map((ms) => `${ms.toFixed(0)} ms`).join(', ')}, ` +
          `around each crash ${crashWaits.map((ms) => `${ms.toFixed(0)} ms`).join(', ')}`,
      );
      for (const ms of upgradeWaits) assert.ok(ms <= 1000, `reply wait around an upgrade: ${ms.toFixed(0)} ms`);
      for (const ms of crashWaits) assert.ok(ms <= 3000, `reply wait around a crash: ${ms.toFixed(0)} ms`);
      const states = watcher.messages.filter((m) => m.topic === 'tcpmq/gateway/upgraded');
      assert.deepEqual(
        states.filter((m) => m.online !== true).map((m) => m.version),
        [],
        'the gateway never said offline',
      );
      const presence = watcher.messages.filter((m) => m.topic.startsWith('tcpmq/device/'));
      assert.ok(
        presence.some((m) => m.topic === 'tcpmq/device/1'),
        'board 1 announced',
      );
      assert.deepEqual(
        presence.filter((m) => m.online !== true).map((m) => m.topic),
        [],
        'no board ever said offline',
      );

      // SIGTERM: every process gone within 3 s, the state offline; with --persist, the mailboxes come back.
      const workers = childrenOf(mainPid);
      const stopped = Date.now();
      gw.kill('SIGTERM');
      assert.equal(await gw.exited, 0);
      await waitFor(() => !workers.some(alive), 'the worker gone', 3000 - (Date.now() - stopped));
      const last = states.length;
      await waitFor(
        () => watcher.messages.slice(last).some((m) => m.topic === 'tcpmq/gateway/upgraded' && m.online === false),
        'the state offline',
        3000,
      );
      const again = await gateway(pkg.bin, args, /MQTT connected/);
      assert.match(again.output, /persist: restored/);
      const after = await Device.connect(port);
      assert.equal(await after.request('[9,"note","r"]'), 'written before', 'the mailbox is back after a restart');
      after.close();

      // kill -9 of the main PID: no gateway process left within 3 s.
      const orphans = childrenOf(again.pid);
      assert.equal(orphans.length, 1, 'one worker');
      again.kill('SIGKILL');
      await again.exited;
      await waitFor(() => !orphans.some(alive), 'the worker to exit with its holder', 3000);
    } finally {
      await watcher.end();
    }
  });

  it('answers a frame split across an upgrade once and whole, and keeps a plain-text board', async function () {
    const port = await freePort();
    const gw = await gateway(path.join(ROOT, 'bin', 'tcpmq-gateway.js'), [
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
    ]);
    const board = await Device.connect(port);
    assert.equal(await board.request('[5,5,"first"]'), 'first');
    board.send('[5,5,"温度');
    const text = await Device.connect(port);
    text.send('hello ');
    const before = childrenOf(gw.pid);
    await sleep(100); // both halves read by the old worker
    gw.kill('SIGUSR2');
    await waitFor(() => childrenOf(gw.pid).length === 1 && !before.some(alive), 'the upgrade', 10000);
    assert.equal(await board.request('"]'), '温度', 'the two halves, from two workers, make one frame');
    assert.equal(await board.request('[5,5,"next"]'), 'next');
    assert.match(gw.output, /upgraded to version/);
    assert.equal(text.closed, false, 'the plain-text board keeps its connection');
    text.close();
    board.close();
  });
});

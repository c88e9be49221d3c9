'use strict';
// End to end: `npm start`'s script runs a real node-red process with this package
// installed in its user directory; devices and the admin API talk to it over loopback.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { Device, exampleFiles, exampleFlow, freePort, waitFor } = require('../support');

const root = path.join(__dirname, '..', '..');
const START = path.join(root, 'scripts', 'start.js');

/**
 * `npm start`'s script with `args`, carrying `output` (everything it printed) and `exited` (its exit code).
 *
 * @param {string[]} args
 */
function run(args) {
  const child = /** @type {import('../../tools/process').StartedProcess} */ (
    spawn(process.execPath, [START, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  );
  child.output = '';
  child.stdout.on('data', (chunk) => (child.output += chunk));
  child.stderr.on('data', (chunk) => (child.output += chunk));
  child.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  return child;
}

async function api(editorPort, method, route, body, headers = {}) {
  const response = await fetch(`http://127.0.0.1:${editorPort}${route}`, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(response.ok, `${method} ${route}: HTTP ${response.status}`);
  const text = await response.text();
  return text === '' ? undefined : JSON.parse(text);
}

describe('npm start: a real node-red process', function () {
  this.timeout(60000);
  let userDir;
  let editorPort;
  let tcpmqPort;
  let nodeRed;
  const devices = [];

  async function connect() {
    const device = await Device.connect(tcpmqPort);
    devices.push(device);
    return device;
  }

  /** Deploys `flow` through the admin API, as the editor's Deploy button does. */
  async function deployFlow(flow, listens = true) {
    await api(editorPort, 'POST', '/flows', flow, { 'Node-RED-Deployment-Type': 'full' });
    if (!listens) return;
    await waitFor(
      async () => {
        try {
          const probe = await Device.connect(tcpmqPort);
          probe.close();
          return true;
        } catch {
          return false;
        }
      },
      'the broker to listen again',
      10000,
    );
  }

  before(async function () {
    // A user directory that does not exist yet, as on a fresh checkout (`.node-red/`).
    userDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tcpmq-e2e-')), '.node-red');
    editorPort = await freePort();
    tcpmqPort = await freePort();
    nodeRed = run(['--user-dir', userDir, '--port', String(editorPort), '--tcpmq-port', String(tcpmqPort)]);
    await waitFor(
      () => /listening on 0\.0\.0\.0:\d+/.test(nodeRed.output),
      () => `the demo broker to listen; output so far:\n${nodeRed.output}`,
      30000,
    );
  });

  after(async function () {
    for (const device of devices) device.close();
    if (nodeRed && nodeRed.exitCode === null) {
      nodeRed.kill('SIGINT');
      await nodeRed.exited;
    }
    fs.rmSync(path.dirname(userDir), { recursive: true, force: true });
  });

  it('loads the four node types without errors and prints the editor URL', async function () {
    const nodeSets = await api(editorPort, 'GET', '/nodes', undefined, { accept: 'application/json' });
    const ours = nodeSets.filter((set) => set.module === '@tcpmq/node-red-tcpmq');
    assert.deepEqual(ours.map((set) => [set.types[0], set.enabled, set.err ?? 'no error']).sort(), [
      ['tcpmq-broker', true, 'no error'],
      ['tcpmq-in', true, 'no error'],
      ['tcpmq-out', true, 'no error'],
      ['tcpmq-status', true, 'no error'],
    ]);
    assert.match(nodeRed.output, new RegExp(`Node-RED editor: +http://127\\.0\\.0\\.1:${editorPort}/`));
  });

  it('runs the demo: a device reads the command mailbox the flow wrote', async function () {
    const device = await connect();
    await waitFor(async () => (await device.request('[5,"cmd","x"]')) === 'led on', 'the demo command "led on"');
  });

  it('deploys every example from the Import menu without errors', async function () {
    const examples = exampleFiles();
    assert.ok(examples.length >= 1, 'at least one example');
    for (const file of examples) {
      const flow = exampleFlow(file, tcpmqPort);
      const servers = flow.filter((node) => node.type === 'tcpmq-broker' && [undefined, 'server'].includes(node.mode));
      const logged = nodeRed.output.length;
      await deployFlow(flow, servers.length > 0);
      if (servers.length > 0) {
        const device = await connect();
        assert.equal(await device.request('[1,1,"26.5"]'), '26.5', `${file}: a device is served`);
      }
      // A node that fails to start logs it before the flows say they started.
      await waitFor(() => /Started flows/.test(nodeRed.output.slice(logged)), `${file}: "Started flows"`);
      const log = nodeRed.output.slice(logged);
      assert.doesNotMatch(log, /\[error\]|EADDRINUSE/, `${file} logged:\n${log}`);
    }
  });

  it('carries a device report through a flow to another device (in -> change -> out)', async function () {
    await deployFlow([
      { id: 'tab1', type: 'tab', label: 'relay' },
      {
        id: 'b1',
        type: 'tcpmq-broker',
        host: '127.0.0.1',
        port: tcpmqPort,
        replyFormat: 'text',
        offlineAfter: 30,
        idleTimeout: 60,
        maxConnections: 1000,
        maxFrameBytes: 65536,
      },
      { id: 'in1', type: 'tcpmq-in', z: 'tab1', broker: 'b1', device: '1', numbers: true, wires: [['c1']] },
      {
        id: 'c1',
        type: 'change',
        z: 'tab1',
        rules: [{ t: 'set', p: 'topic', pt: 'msg', to: 'relayed', tot: 'str' }],
        wires: [['out1']],
      },
      { id: 'out1', type: 'tcpmq-out', z: 'tab1', broker: 'b1', device: '', ttl: 0, wires: [] },
    ]);
    const sensor = await connect();
    const display = await connect();
    await sensor.request('[1,9,"42.5"]');
    // 42.5 went through the flow as a number: devices read its JSON text.
    await waitFor(async () => (await display.request('[2,"relayed","x"]')) === '42.5', 'the relayed value');
  });

  it('stops cleanly on Ctrl-C and frees the device port', async function () {
    nodeRed.kill('SIGINT');
    assert.equal(await nodeRed.exited, 0);
    const probe = net.createServer();
    await /** @type {Promise<void>} */ (
      new Promise((resolve, reject) => {
        probe.once('error', reject);
        probe.listen(tcpmqPort, resolve);
      })
    );
    await new Promise((resolve) => probe.close(resolve));
  });

  it('says plainly when the device port is taken', async function () {
    const squatter = net.createServer();
    await /** @type {Promise<void>} */ (new Promise((resolve) => squatter.listen(tcpmqPort, resolve)));
    try {
      const second = run(['--user-dir', userDir, '--port', String(editorPort), '--tcpmq-port', String(tcpmqPort)]);
      assert.equal(await second.exited, 1);
      assert.match(second.output, new RegExp(`port ${tcpmqPort} \\(TCPMQ devices\\) is already in use`));
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });
});

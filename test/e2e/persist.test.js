'use strict';
// persist: mailboxes survive a restart of a real node-red process whose context
// store is localfilesystem (SIGTERM, start again, a device reads what was written before).
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { Device, freePort, waitFor } = require('../support');

const root = path.join(__dirname, '..', '..');

describe('persist: mailboxes through a Node-RED restart', function () {
  this.timeout(60000);
  let userDir;
  let tcpmqPort;
  let nodeRed;

  function writeFlows(withCommand) {
    const flows = [
      { id: 'tab', type: 'tab', label: 'persist' },
      { id: 'broker', type: 'tcpmq-broker', host: '127.0.0.1', port: tcpmqPort, replyFormat: 'text', offlineAfter: 30, idleTimeout: 60, maxConnections: 100, maxFrameBytes: 65536, persist: true },
      { id: 'in', type: 'tcpmq-in', z: 'tab', broker: 'broker', device: '', numbers: true, wires: [[]] },
    ];
    if (withCommand) {
      flows.push(
        { id: 'writer', type: 'inject', z: 'tab', props: [{ p: 'payload' }], once: true, onceDelay: 0.1, repeat: '', payload: 'written by the flow', payloadType: 'str', wires: [['out']] },
        { id: 'out', type: 'tcpmq-out', z: 'tab', broker: 'broker', device: 'cmd', ttl: 0, wires: [] },
      );
    }
    fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify(flows));
  }

  async function startNodeRed() {
    const editorPort = await freePort();
    const child = spawn(process.execPath, [require.resolve('node-red/red.js'), '--settings', path.join(userDir, 'settings.js'), '--userDir', userDir, '--port', String(editorPort)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.output = '';
    child.stdout.on('data', (chunk) => (child.output += chunk));
    child.stderr.on('data', (chunk) => (child.output += chunk));
    child.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    await waitFor(() => {
      if (child.exitCode !== null) throw new Error(`node-red exited:\n${child.output}`);
      return /listening on 127\.0\.0\.1:\d+/.test(child.output);
    }, 'the broker to listen', 30000);
    return child;
  }

  async function stopNodeRed() {
    nodeRed.kill('SIGTERM');
    await nodeRed.exited;
  }

  before(async function () {
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpmq-persist-'));
    const link = path.join(userDir, 'node_modules', '@tcpmq', 'node-red-tcpmq');
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync(root, link, 'dir');
    fs.writeFileSync(
      path.join(userDir, 'settings.js'),
      "module.exports = { flowFile: 'flows.json', credentialSecret: false, telemetry: { enabled: false }, contextStorage: { default: { module: 'localfilesystem' } } };\n",
    );
    tcpmqPort = await freePort();
  });

  after(async function () {
    if (nodeRed && nodeRed.exitCode === null) await stopNodeRed();
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  it('serves after a restart what devices and flows wrote before it', async function () {
    writeFlows(true);
    nodeRed = await startNodeRed();
    const sensor = await Device.connect(tcpmqPort);
    assert.equal(await sensor.request('[1,1,"26.5 before the restart"]'), '26.5 before the restart');
    await waitFor(async () => (await sensor.request('[1,"cmd","26.5 before the restart"]')) === 'written by the flow', 'the flow to write mailbox cmd');
    sensor.close();
    await stopNodeRed();
    assert.ok(fs.existsSync(path.join(userDir, 'context')), 'localfilesystem wrote the context to disk');

    writeFlows(false); // the flow no longer writes cmd: what a device reads comes from the saved copy
    nodeRed = await startNodeRed();
    const reader = await Device.connect(tcpmqPort);
    try {
      assert.equal(await reader.request('[2,1,"after"]'), '26.5 before the restart');
      assert.equal(await reader.request('[2,"cmd","after"]'), 'written by the flow');
    } finally {
      reader.close();
    }
  });
});

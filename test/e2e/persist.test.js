'use strict';
// persist: mailboxes survive a restart of a real node-red process (SIGTERM, or a kill -9
// 6 s after the last write), start again, a device reads what was written before.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Device, freePort, waitFor } = require('../support');
const { linkedUserDir, settingsText, startNodeRed, stopNodeRed } = require('./node-red-process');

describe('persist: mailboxes through a Node-RED restart', function () {
  this.timeout(60000);
  let userDir;
  let tcpmqPort;
  let nodeRed;

  function writeFlows(withCommand) {
    /** @type {object[]} */
    const flows = [
      { id: 'tab', type: 'tab', label: 'persist' },
      {
        id: 'broker',
        type: 'tcpmq-broker',
        host: '127.0.0.1',
        port: tcpmqPort,
        replyFormat: 'text',
        offlineAfter: 30,
        idleTimeout: 60,
        maxConnections: 100,
        maxFrameBytes: 65536,
        persist: true,
      },
      { id: 'in', type: 'tcpmq-in', z: 'tab', broker: 'broker', device: '', numbers: true, wires: [[]] },
    ];
    if (withCommand) {
      flows.push(
        {
          id: 'writer',
          type: 'inject',
          z: 'tab',
          props: [{ p: 'payload' }],
          once: true,
          onceDelay: 0.1,
          repeat: '',
          payload: 'written by the flow',
          payloadType: 'str',
          wires: [['out']],
        },
        { id: 'out', type: 'tcpmq-out', z: 'tab', broker: 'broker', device: 'cmd', ttl: 0, wires: [] },
      );
    }
    fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify(flows));
  }

  before(async function () {
    userDir = linkedUserDir(
      'tcpmq-persist-',
      settingsText("contextStorage: { default: { module: 'localfilesystem' } }"),
    );
    tcpmqPort = await freePort();
  });

  after(async function () {
    await stopNodeRed(nodeRed, 'SIGTERM');
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  it('serves after a restart what devices and flows wrote before it', async function () {
    writeFlows(true);
    nodeRed = await startNodeRed(userDir);
    const sensor = await Device.connect(tcpmqPort);
    assert.equal(await sensor.request('[1,1,"26.5 before the restart"]'), '26.5 before the restart');
    await waitFor(
      async () => (await sensor.request('[1,"cmd","26.5 before the restart"]')) === 'written by the flow',
      'the flow to write mailbox cmd',
    );
    sensor.close();
    await stopNodeRed(nodeRed, 'SIGTERM');
    assert.ok(fs.existsSync(path.join(userDir, 'tcpmq', 'broker.json')), 'the snapshot file is in the user directory');

    writeFlows(false); // the flow no longer writes cmd: what a device reads comes from the saved copy
    nodeRed = await startNodeRed(userDir);
    const reader = await Device.connect(tcpmqPort);
    try {
      assert.equal(await reader.request('[2,1,"after"]'), '26.5 before the restart');
      assert.equal(await reader.request('[2,"cmd","after"]'), 'written by the flow');
    } finally {
      reader.close();
    }
  });

  it('keeps what was written 6 s before a kill -9 (saved every 5 s, atomically)', async function () {
    this.timeout(60000);
    await stopNodeRed(nodeRed, 'SIGTERM'); // the one the test before restarted
    writeFlows(true);
    nodeRed = await startNodeRed(userDir);
    const sensor = await Device.connect(tcpmqPort);
    await waitFor(
      async () => (await sensor.request('[1,"cmd","x"]')) === 'written by the flow',
      'the flow to write mailbox cmd',
    );
    assert.equal(await sensor.request('[1,1,"6 s before the kill"]'), '6 s before the kill');
    // Saved within 5 s: in the snapshot file before the kill.
    const snapshot = path.join(userDir, 'tcpmq', 'broker.json');
    await waitFor(
      () => fs.existsSync(snapshot) && fs.readFileSync(snapshot, 'utf8').includes('6 s before the kill'),
      'the report in the snapshot file',
      8000,
    );
    sensor.close();
    assert.equal(await stopNodeRed(nodeRed, 'SIGKILL'), 'SIGKILL');
    const leftovers = fs.readdirSync(path.join(userDir, 'tcpmq')).filter((file) => file.endsWith('.tmp'));
    assert.deepEqual(leftovers, [], 'no half-written snapshot');

    writeFlows(false);
    nodeRed = await startNodeRed(userDir);
    const reader = await Device.connect(tcpmqPort);
    try {
      assert.equal(await reader.request('[2,1,"after"]'), '6 s before the kill');
      assert.equal(await reader.request('[2,"cmd","after"]'), 'written by the flow');
    } finally {
      reader.close();
    }
  });
});

'use strict';
// The sidebar's live updates over Node-RED's comms websocket: nothing is sent while
// no editor says it is open, and then only the rows that changed, not the whole table.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { Device, freePort, quietFor, waitFor } = require('../support');
const { WebSocket, linkedUserDir, startNodeRed, stopNodeRed, api } = require('./node-red-process');

describe('sidebar updates over comms', function () {
  this.timeout(60000);
  let userDir;
  let tcpmqPort;
  let nodeRed;
  let socket;
  const updates = [];

  before(async function () {
    tcpmqPort = await freePort();
    userDir = linkedUserDir('tcpmq-comms-', undefined, [
      { id: 'b1', type: 'tcpmq-broker', host: '127.0.0.1', port: tcpmqPort, replyFormat: 'text', offlineAfter: 30 },
      { id: 'in1', type: 'tcpmq-in', broker: 'b1', wires: [] },
    ]);
    nodeRed = await startNodeRed(userDir);
    socket = new WebSocket(`ws://127.0.0.1:${nodeRed.editorPort}/comms`);
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    socket.on('message', (data) => {
      for (const message of [].concat(JSON.parse(String(data))))
        if (/^tcpmq\//.test(message.topic)) updates.push(message.data);
    });
    socket.send(JSON.stringify({ subscribe: 'tcpmq/broker/#' }));
  });

  after(async function () {
    socket?.terminate();
    await stopNodeRed(nodeRed);
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  it('sends nothing while no editor watches, then only the changed rows', async function () {
    const fleet = await Promise.all(Array.from({ length: 100 }, () => Device.connect(tcpmqPort)));
    try {
      await Promise.all(fleet.map((device, n) => device.request(`[${n},${n},"v${n}"]`)));
      await quietFor(700, 'sidebar update while no editor has said it is open', () => updates.length > 0);
      await api(nodeRed.editorPort, 'POST', '/tcpmq/watch', {});
      await fleet[7].request('[7,7,"changed"]');
      await waitFor(() => updates.at(-1)?.counters.requests === 101, "an update with device 7's request");
      const rows = updates.flatMap((update) => update.devices);
      assert.deepEqual(
        rows.map((row) => [row.id, row.lastValue]),
        [['7', 'changed']],
        'the one row that changed',
      );
      assert.ok(updates.every((update) => update.delta === true));
      // The first may come before device 7's request (an editor just said it is open); the last has it.
      assert.equal(updates.at(-1).counters.requests, 101);
      const [whole] = await api(nodeRed.editorPort, 'GET', '/tcpmq/brokers');
      assert.equal(whole.devices.length, 100, 'the admin API still gives the whole table');
    } finally {
      for (const device of fleet) device.close();
    }
  });
});

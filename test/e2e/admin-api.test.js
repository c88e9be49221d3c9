'use strict';
// The sidebar's admin endpoints behind Node-RED's own permissions (adminAuth on):
// anonymous 401, a read-only user can read but not write (401 too), an admin can write.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Device, freePort } = require('../support');
const { linkedUserDir, settingsText, startNodeRed, stopNodeRed } = require('./node-red-process');
// Node-RED's own bcrypt, to write the password hashes settings.js expects.
const bcrypt = require(
  require.resolve('bcryptjs', { paths: [path.dirname(require.resolve('@node-red/editor-api/package.json'))] }),
);

describe('sidebar admin API with adminAuth', function () {
  this.timeout(60000);
  let userDir;
  let editorPort;
  let tcpmqPort;
  let nodeRed;

  const url = (route) => `http://127.0.0.1:${editorPort}${route}`;

  async function token(username, password, scope = '*') {
    const response = await fetch(url('/auth/token'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope, username, password }),
    });
    assert.equal(response.status, 200, `login as ${username}`);
    return (await response.json()).access_token;
  }

  function call(method, route, accessToken, body) {
    return fetch(url(route), {
      method,
      headers: {
        'content-type': 'application/json',
        ...(accessToken ? { authorization: `Bearer ${accessToken}` } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  before(async function () {
    tcpmqPort = await freePort();
    const users = [
      { username: 'admin', password: bcrypt.hashSync('admin-secret', 8), permissions: '*' },
      { username: 'viewer', password: bcrypt.hashSync('viewer-secret', 8), permissions: 'read' },
    ];
    userDir = linkedUserDir(
      'tcpmq-admin-',
      settingsText(`adminAuth: { type: 'credentials', users: ${JSON.stringify(users)} }`),
      [
        { id: 'b1', type: 'tcpmq-broker', host: '127.0.0.1', port: tcpmqPort, replyFormat: 'text' },
        { id: 'in1', type: 'tcpmq-in', z: '', broker: 'b1', wires: [] },
      ],
    );
    nodeRed = await startNodeRed(userDir);
    editorPort = nodeRed.editorPort;
  });

  after(async function () {
    await stopNodeRed(nodeRed);
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  it('refuses anonymous requests', async function () {
    assert.equal((await call('GET', '/tcpmq/brokers')).status, 401);
    assert.equal(
      (await call('POST', '/tcpmq/brokers/b1/mailbox', undefined, { device: 'cmd', payload: 'x' })).status,
      401,
    );
  });

  it('lets a read-only user list brokers and devices but not write', async function () {
    const device = await Device.connect(tcpmqPort);
    try {
      await device.request('[7,7,"hello"]');
    } finally {
      device.close();
    }
    const viewer = await token('viewer', 'viewer-secret', 'read');
    const response = await call('GET', '/tcpmq/brokers', viewer);
    assert.equal(response.status, 200);
    const [broker] = await response.json();
    assert.equal(broker.id, 'b1');
    assert.equal(broker.status.state, 'listening');
    assert.deepEqual(
      broker.devices.map((d) => [d.id, d.lastValue]),
      [['7', 'hello']],
    );
    // Node-RED answers a permission it does not grant with 401, as it does for no login.
    assert.equal(
      (await call('POST', '/tcpmq/brokers/b1/mailbox', viewer, { device: 'cmd', payload: 'x' })).status,
      401,
    );
    const reader = await Device.connect(tcpmqPort);
    try {
      assert.equal(await reader.request('[9,"cmd","x"]'), 'None', 'the refused write changed nothing');
    } finally {
      reader.close();
    }
  });

  it('lets an admin write a mailbox and send to a connection', async function () {
    const admin = await token('admin', 'admin-secret');
    const written = await call('POST', '/tcpmq/brokers/b1/mailbox', admin, {
      device: 'cmd',
      payload: 'from the sidebar',
    });
    assert.equal(written.status, 200);
    const device = await Device.connect(tcpmqPort);
    try {
      assert.equal(await device.request('[8,"cmd","x"]'), 'from the sidebar');
      const sent = await call('POST', '/tcpmq/brokers/b1/send', admin, { device: '8', text: 'hi' });
      assert.deepEqual(await sent.json(), { sent: 1 });
      assert.equal((await device.nextChunk()).toString(), 'hi');
      const missing = await call('POST', '/tcpmq/brokers/b1/send', admin, { device: 'nobody', text: 'hi' });
      assert.equal(missing.status, 400);
      assert.match((await missing.json()).error, /no open connection/);
      assert.equal(
        (await call('POST', '/tcpmq/brokers/nope/mailbox', admin, { device: 'cmd', payload: 'x' })).status,
        404,
      );
    } finally {
      device.close();
    }
  });
});

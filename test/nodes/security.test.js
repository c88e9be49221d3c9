'use strict';
// Who may talk to the broker: allowFrom, allowDevices, TLS; and errors a flow can see.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const tls = require('node:tls');
const { execFileSync } = require('node:child_process');
const { Device, waitFor } = require('../support');
const { helper, brokerConfig, brokerInStatusFlow, deploy, messagesOf, nodeRedFixture } = require('./flow');

/** A self-signed certificate for 127.0.0.1, made with openssl. */
function makeCertificate(dir, name) {
  const key = path.join(dir, `${name}-key.pem`);
  const cert = path.join(dir, `${name}-cert.pem`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  return { key, cert };
}

/** A TLS device: resolves with the first reply to `frame`, or rejects with the TLS error. */
function tlsRequest(port, frame, options = {}) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options }, () =>
      socket.write(frame),
    );
    socket.once('data', (reply) => {
      resolve(reply.toString());
      socket.destroy();
    });
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed without a reply')));
  });
}

describe('access control and TLS', function () {
  const fixture = nodeRedFixture();
  let port;
  // The port fixture picked for this test (its beforeEach runs first).
  beforeEach(() => (port = fixture.port));

  const connect = () => fixture.connect();

  const flow = (settings) => brokerInStatusFlow(port, settings);

  it('closes connections from addresses outside allowFrom and tells tcpmq-status', async function () {
    await deploy(flow({ allowFrom: '10.0.0.0/8, fd00::/8' }));
    const received = messagesOf('received');
    const statuses = messagesOf('statuses');
    const stranger = await connect();
    stranger.send('[1,1,"sneaky"]');
    assert.equal(await stranger.closedWithin(2000), true);
    await waitFor(() => statuses.length === 1, 'an error message');
    assert.deepEqual(
      [statuses[0].payload, statuses[0].kind, statuses[0].remoteAddress],
      ['error', 'forbidden', '127.0.0.1'],
    );
    assert.match(statuses[0].error, /not in allowFrom/);
    assert.equal(helper.getNode('broker').broker.readMailbox('1'), undefined, 'no mailbox written');
    assert.equal(received.length, 0, 'nothing reached the flow');
    assert.equal(helper.getNode('broker').broker.counters.refused, 1);
  });

  it('serves addresses inside allowFrom (single addresses and ranges, IPv4 and IPv6)', async function () {
    await deploy(flow({ allowFrom: '192.168.4.0/24, 127.0.0.0/8, ::1' }));
    const device = await connect();
    assert.equal(await device.request('[1,1,"welcome"]'), 'welcome');
  });

  it('reports a bad allowFrom entry on every node instead of listening', async function () {
    await helper.load(require('./flow').NODES, flow({ allowFrom: '127.0.0.1, not-an-address' }));
    const inNode = helper.getNode('in');
    await waitFor(() => inNode.status.lastCall?.args[0].fill === 'red', 'a red status');
    assert.match(helper.getNode('broker').broker.status.error, /"not-an-address" is not an IP address/);
    await assert.rejects(Device.connect(port), /ECONNREFUSED/);
  });

  it('refuses ids outside allowDevices before they touch a mailbox', async function () {
    await deploy(flow({ allowDevices: '1, kitchen' }));
    const received = messagesOf('received');
    const statuses = messagesOf('statuses');
    const good = await connect();
    const bad = await connect();
    assert.equal(await good.request('["kitchen",1,"ok"]'), 'None');
    bad.send('[3,1,"intruder"]');
    assert.equal(await bad.closedWithin(2000), true);
    assert.equal(await good.request('[1,3,"still ok"]'), 'None', 'mailbox 3 was never written');
    await waitFor(() => statuses.some((m) => m.payload === 'error'), 'an error message');
    const error = statuses.find((m) => m.payload === 'error');
    assert.deepEqual([error.kind, error.topic], ['unknown-device', '3']);
    assert.deepEqual(
      received.map((m) => m.topic),
      ['kitchen', '1'],
    );
    assert.equal(helper.getNode('broker').broker.counters.unknownDevices, 1);
  });

  it('sends at most 20 error messages a minute to a flow', async function () {
    await deploy(flow({}));
    const statuses = messagesOf('statuses');
    const device = await connect();
    for (let i = 0; i < 30; i++) device.send('[1,2]\n');
    assert.equal(await device.request('[1,1,"ok"]'), 'ok');
    await waitFor(() => statuses.filter((m) => m.payload === 'error').length >= 20, '20 error messages');
    assert.equal(statuses.filter((m) => m.payload === 'error').length, 20);
    assert.equal(helper.getNode('broker').broker.counters.protocolErrors, 30);
  });

  describe('with TLS', function () {
    let dir;
    let server;
    let stranger;

    before(function () {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpmq-tls-'));
      server = makeCertificate(dir, 'broker');
      stranger = makeCertificate(dir, 'stranger');
    });

    after(function () {
      fs.rmSync(dir, { recursive: true, force: true });
    });

    const tlsFlow = (verify) => [
      {
        id: 'tlsconf',
        type: 'tls-config',
        cert: server.cert,
        key: server.key,
        ca: verify ? server.cert : '',
        verifyservercert: verify,
        servername: '',
      },
      ...flow({ usetls: true, tls: 'tlsconf' }),
    ];

    it('serves devices over TLS and turns away plain TCP', async function () {
      await deploy(tlsFlow(false));
      const statuses = messagesOf('statuses');
      assert.equal(await tlsRequest(port, '[1,1,"secret"]'), 'secret');
      const plain = await connect();
      plain.send('[1,1,"in the clear"]');
      assert.equal(await plain.closedWithin(3000), true);
      await waitFor(() => statuses.some((m) => m.kind === 'tls'), 'a TLS error message');
      assert.equal(helper.getNode('broker').broker.readMailbox('1'), 'secret');
    });

    it('reports a key that does not match its certificate instead of crashing', async function () {
      await helper.load(require('./flow').NODES, [
        {
          id: 'tlsconf',
          type: 'tls-config',
          cert: server.cert,
          key: stranger.key,
          ca: '',
          verifyservercert: false,
          servername: '',
        },
        ...flow({ usetls: true, tls: 'tlsconf' }),
      ]);
      const inNode = helper.getNode('in');
      await waitFor(() => inNode.status.lastCall?.args[0].fill === 'red', 'a red status');
      assert.match(helper.getNode('broker').broker.status.error, /TLS settings rejected/);
    });

    it('asks devices for a certificate when the tls-config verifies, and checks it', async function () {
      await deploy(tlsFlow(true));
      const ownCertificate = { cert: fs.readFileSync(server.cert), key: fs.readFileSync(server.key) };
      assert.equal(await tlsRequest(port, '[1,1,"signed"]', ownCertificate), 'signed');
      await assert.rejects(tlsRequest(port, '[2,2,"no certificate"]'));
      const otherCertificate = { cert: fs.readFileSync(stranger.cert), key: fs.readFileSync(stranger.key) };
      await assert.rejects(tlsRequest(port, '[3,3,"wrong certificate"]', otherCertificate));
      assert.equal(helper.getNode('broker').broker.readMailbox('2'), undefined);
      assert.equal(helper.getNode('broker').broker.readMailbox('3'), undefined);
    });
  });

  it('lets a second broker on the same port report the conflict while the first keeps serving', async function () {
    await deploy([
      brokerConfig(port),
      { ...brokerConfig(port), id: 'second' },
      { id: 'in1', type: 'tcpmq-in', broker: 'broker', wires: [[]] },
      { id: 'in2', type: 'tcpmq-in', broker: 'second', wires: [[]] },
    ]);
    const second = helper.getNode('second');
    await waitFor(() => second.broker.status.state === 'error', 'the second broker to report the conflict');
    assert.equal(second.broker.status.code, 'EADDRINUSE');
    const device = await connect();
    assert.equal(await device.request('[1,1,"first"]'), 'first');
  });
});

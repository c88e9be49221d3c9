'use strict';
const assert = require('node:assert/strict');
const { Mailboxes } = require('../../dist/store/mailboxes');
const { Devices } = require('../../dist/store/devices');

const sender = { remoteAddress: '192.168.4.2', remotePort: 50123, connectionId: 7 };

describe('mailboxes', function () {
  it('keeps the last write', function () {
    const mailboxes = new Mailboxes();
    mailboxes.write('1', 'a', 'device', 1000);
    mailboxes.write('1', 'b', 'device', 2000);
    assert.equal(mailboxes.read('1', 3000).value, 'b');
    assert.equal(mailboxes.read('2', 3000), undefined);
  });

  it('reads as empty once a time to live runs out', function () {
    const mailboxes = new Mailboxes();
    mailboxes.write('cmd', 'on', 'flow', 1000, 500);
    assert.equal(mailboxes.read('cmd', 1499).value, 'on');
    assert.equal(mailboxes.read('cmd', 1500), undefined);
  });

  it("expires a silent device's news but not what a flow wrote", function () {
    const mailboxes = new Mailboxes();
    mailboxes.write('1', '26.5', 'device', 1000);
    mailboxes.write('cmd', 'on', 'flow', 1000);
    mailboxes.expireDeviceNews('1');
    mailboxes.expireDeviceNews('cmd');
    assert.equal(mailboxes.read('1', 1000), undefined);
    assert.equal(mailboxes.read('cmd', 1000).value, 'on');
  });
});

describe('device registry', function () {
  it('reports a device coming online once, and counts its messages', function () {
    const devices = new Devices(30000, () => {});
    assert.equal(devices.heard('1', sender, '26.5', 1000).id, '1');
    assert.equal(devices.heard('1', sender, '26.6', 2000), undefined);
    assert.deepEqual(devices.table(), [
      { id: '1', ...sender, firstSeen: 1000, lastSeen: 2000, messages: 2, online: true, lastValue: '26.6' },
    ]);
    assert.equal(devices.online, 1);
  });

  it('sends a device offline after offlineAfter of silence, once, keeping its last value', function () {
    const offline = [];
    const devices = new Devices(30000, (device) => offline.push({ ...device }));
    devices.heard('1', sender, '26.5', 1000);
    devices.heard('2', sender, 'x', 20000);
    assert.equal(devices.sweep(30999), 0);
    assert.equal(devices.sweep(31000), 1);
    assert.equal(devices.sweep(32000), 0);
    assert.deepEqual(
      offline.map((d) => [d.id, d.online, d.lastValue]),
      [['1', false, '26.5']],
    );
    assert.equal(devices.online, 1);
    assert.ok(devices.heard('1', sender, '27', 40000), 'comes back online');
  });
});

'use strict';
// The fleet's state is the truth (docs/PROTOCOL.md, sharing): one writer per retained
// mailbox topic, one order for writes, a restart that reconciles before it publishes,
// and the TCP side's limits on what MQTT brings. In-memory MQTT (mqtt-bus.js); the same
// with mosquitto and spawned processes is test/e2e/fleet-state.test.js.
const assert = require('node:assert/strict');
const { Fleet } = require('../../dist/fleet/fleet');
const { takeSnapshot, restoreSnapshot } = require('../../dist/store/snapshot');
const { coreBrokerFixture, waitFor } = require('../support');
const { Bus } = require('./mqtt-bus');

describe('the fleet state: one writer per mailbox, one order, limits', function () {
  const fixture = coreBrokerFixture();
  let bus;
  const fleets = [];

  async function member(name, options = {}, before = (broker) => undefined) {
    const broker = await fixture.start({ offlineAfter: 5, ...options });
    before(broker);
    const fleet = new Fleet(broker, {
      prefix: 'tcpmq',
      gateway: name,
      haDiscovery: options.haDiscovery === true,
      minIntervalMs: 0,
      attached: options.attached === true,
      announce: options.attached ? undefined : { model: 'test', startedAt: Date.now() },
    });
    const warnings = [];
    fleet.on('warning', (text) => warnings.push(text));
    fleet.attach(bus.transport());
    fleet.setConnected(true);
    fleets.push(fleet);
    await waitFor(() => fleet.inStep, `${name} in step`, 2000);
    return { broker, fleet, warnings, connect: () => fixture.connect(broker.status.port) };
  }

  const published = (topic) => bus.published.filter((m) => m.topic === topic);

  beforeEach(() => {
    bus = new Bus();
  });
  afterEach(() => {
    for (const fleet of fleets.splice(0)) fleet.detach();
  });

  it('lets only the owner take a /set: the least-named gateway online for a new id, then whoever holds it', async function () {
    const b = await member('hall-b');
    const a = await member('hall-a');
    bus.publish('tcpmq/mailbox/cmd/set', 'on');
    await waitFor(() => a.broker.readMailbox('cmd') === 'on' && b.broker.readMailbox('cmd') === 'on', 'cmd on both');
    await bus.idle();
    assert.deepEqual(
      published('tcpmq/mailbox/cmd').map((m) => JSON.parse(m.payload).gateway),
      ['hall-a'],
      'one retained message, by hall-a',
    );
    // hall-a dies (its will says offline): hall-b takes the id's writes, and hall-a's value stays until then.
    a.fleet.detach();
    bus.publish('tcpmq/gateway/hall-a', JSON.stringify({ online: false }), true);
    await bus.idle();
    assert.equal(b.broker.readMailbox('cmd'), 'on');
    bus.publish('tcpmq/mailbox/cmd/set', 'off');
    await waitFor(() => b.broker.readMailbox('cmd') === 'off', 'hall-b takes the write');
    assert.equal(JSON.parse(bus.retained.get('tcpmq/mailbox/cmd')).gateway, 'hall-b');
  });

  it('leaves a new id to a gateway whose state is fresh, takes it from one whose state is stale or gone', async function () {
    const state = (at) => JSON.stringify({ online: true, version: 't', startedAt: 0, at });
    bus.publish('tcpmq/gateway/aaa-fresh', state(Date.now()), true);
    bus.publish('tcpmq/gateway/aab-stale', state(Date.now() - 100_000), true);
    const gw = await member('hall-a');
    bus.publish('tcpmq/mailbox/one/set', '1');
    await bus.idle();
    assert.equal(gw.broker.readMailbox('one'), undefined, 'aaa-fresh owns it');
    bus.publish('tcpmq/gateway/aaa-fresh', JSON.stringify({ online: false }), true);
    bus.publish('tcpmq/mailbox/two/set', '2');
    await waitFor(() => gw.broker.readMailbox('two') === 2, 'hall-a takes it over the stale aab-stale');
  });

  it('never empties a mailbox because another gateway wrote it: no empty retained message but an explicit clear', async function () {
    const a = await member('hall-a');
    const b = await member('hall-b');
    const board = await b.connect();
    const reads = [];
    // A board on B reads cmd every few ms while A (its owner) takes a write every 20 ms; B's flow writes too.
    let stop = false;
    const reader = (async () => {
      while (!stop) reads.push(await board.request('[7,"cmd","x"]'));
    })();
    a.fleet.write('cmd', 'first');
    await waitFor(() => b.broker.readMailbox('cmd') === 'first', 'the first write on B');
    for (let n = 0; n < 20; n++) {
      if (n % 2) bus.publish('tcpmq/mailbox/cmd/set', `set ${n}`);
      else b.fleet.write('cmd', `flow ${n}`);
      const written = n % 2 ? `set ${n}` : `flow ${n}`;
      await waitFor(() => b.broker.readMailbox('cmd') === written, `write ${n} through its owner to B`);
    }
    stop = true;
    await reader;
    assert.ok(!reads.slice(reads.indexOf('first')).includes('None'), 'never None once written');
    assert.equal(published('tcpmq/mailbox/cmd').filter((m) => m.payload === '').length, 0, 'no empty message');
    assert.ok(
      published('tcpmq/mailbox/cmd').every((m) => JSON.parse(m.payload).gateway === 'hall-a'),
      'one writer',
    );
    b.fleet.write('cmd', null);
    await waitFor(
      () => a.broker.readMailbox('cmd') === undefined && b.broker.readMailbox('cmd') === undefined,
      'cleared',
    );
    assert.equal(published('tcpmq/mailbox/cmd').at(-1).payload, '', 'an explicit clear is the empty message');
  });

  it('sends the writes of Node-RED in fleet mode to the owner through /set, with their time to live', async function () {
    const gw = await member('hall-a');
    const attached = await member('node-red', { attached: true });
    attached.fleet.write('cmd', { led: 'on' });
    attached.fleet.write('tmp', 'soon gone', 1);
    await waitFor(() => attached.broker.readMailbox('cmd')?.led === 'on', 'the owner’s write back in fleet mode');
    assert.deepEqual(gw.broker.readMailbox('cmd'), { led: 'on' });
    assert.deepEqual(
      bus.published.filter((m) => m.topic.startsWith('tcpmq/mailbox/') && !m.retain).map((m) => m.topic),
      ['tcpmq/mailbox/cmd/set', 'tcpmq/mailbox/tmp/set/1'],
    );
    const tmp = JSON.parse(bus.retained.get('tcpmq/mailbox/tmp'));
    assert.equal(tmp.expiresAt - tmp.writtenAt, 1000);
    assert.ok(!published('tcpmq/mailbox/cmd').some((m) => JSON.parse(m.payload).gateway === 'node-red'));
  });

  it('after a restart, reconciles before it publishes: a newer retained write wins over what persist kept', async function () {
    const first = await member('hall-a');
    const board = await first.connect();
    await board.request('[1,1,"100009"]');
    const snapshot = takeSnapshot(first.broker.mailboxes, first.broker.devices, Date.now());
    await board.request('[1,1,"100010"]');
    await waitFor(() => JSON.parse(bus.retained.get('tcpmq/mailbox/1') ?? '{}').value === '100010', '100010 retained');
    // Killed: what persist saved is a report older than the retained one.
    fleets.pop().detach();
    const before = published('tcpmq/mailbox/1').length;
    const again = await member('hall-a', {}, (broker) =>
      restoreSnapshot(snapshot, broker.mailboxes, broker.devices, Date.now()),
    );
    await bus.idle();
    assert.equal(again.broker.readMailbox('1'), '100010', 'the newer retained write is served');
    assert.equal(published('tcpmq/mailbox/1').length, before, 'nothing published over it');
  });

  it('never brings back after a restart a mailbox emptied while it was down, but republishes to an MQTT broker that lost everything', async function () {
    const a = await member('hall-a');
    a.fleet.write('cmd', 'on');
    await waitFor(() => bus.retained.has('tcpmq/mailbox/cmd'), 'cmd retained');
    const snapshot = () => takeSnapshot(a.broker.mailboxes, a.broker.devices, Date.now());
    const saved = snapshot();
    assert.equal(saved.mailboxes[0].shared, true, 'persist knows it was published');
    fleets.pop().detach(); // hall-a is down; a /set clear reaches the gateway that owns cmd now
    const b = await member('hall-b');
    bus.publish('tcpmq/gateway/hall-a', JSON.stringify({ online: false }), true);
    bus.publish('tcpmq/mailbox/cmd/set', '');
    await waitFor(() => !bus.retained.has('tcpmq/mailbox/cmd'), 'cleared');
    const restore = (broker) => restoreSnapshot(structuredClone(saved), broker.mailboxes, broker.devices, Date.now());
    const again = await member('hall-a', {}, restore);
    await bus.idle();
    assert.equal(again.broker.readMailbox('cmd'), undefined, 'not served again');
    assert.ok(!bus.retained.has('tcpmq/mailbox/cmd'), 'not published again');
    assert.equal(b.broker.readMailbox('cmd'), undefined);
    // An MQTT broker that lost its retained messages (no persistence): what persist kept goes out again.
    fleets.splice(0).forEach((fleet) => fleet.detach());
    bus = new Bus();
    const fresh = await member('hall-a', {}, restore);
    await waitFor(() => bus.retained.has('tcpmq/mailbox/cmd'), 'republished');
    assert.equal(fresh.broker.readMailbox('cmd'), 'on');
  });

  it('gives a flow each report once and in order, never one the MQTT broker held from before', async function () {
    const gw = await member('hall-a');
    const board = await gw.connect();
    await board.request('[4,4,"before"]');
    await waitFor(() => bus.retained.has('tcpmq/mailbox/4'), 'retained');
    const attached = await member('node-red', { attached: true });
    const news = [];
    attached.fleet.on('news', (event) => news.push(event.payload));
    assert.equal(attached.broker.readMailbox('4'), 'before', 'held, to read');
    await board.request('[4,4,"after"]');
    await waitFor(() => news.length === 1, 'the new report');
    // The gateway restarts and publishes its last write again: the same write, no news.
    bus.publish('tcpmq/mailbox/4', bus.retained.get('tcpmq/mailbox/4'), true);
    await bus.idle();
    assert.deepEqual(news, ['after']);
  });

  it('holds what MQTT brings to the TCP side’s limits: id length, reply size, table size', async function () {
    const gw = await member('hall-a', { maxFrameBytes: 4096, maxDevices: 5 });
    const big = { value: 'z'.repeat(5000), writtenAt: Date.now(), writer: 'flow', gateway: 'hall-b', expiresAt: null };
    bus.publish('tcpmq/mailbox/remote-big', JSON.stringify(big), true);
    bus.publish(`tcpmq/mailbox/${'x'.repeat(129)}/set`, 'long id');
    bus.publish('tcpmq/mailbox/big/set', 'y'.repeat(5000));
    for (let n = 0; n < 8; n++) bus.publish(`tcpmq/mailbox/id${n}/set`, String(n));
    await waitFor(() => gw.warnings.length >= 6, 'a warning for each refusal');
    assert.equal(gw.broker.mailboxes.size, 5, 'maxDevices mailboxes');
    assert.equal(gw.broker.readMailbox('big'), undefined);
    assert.equal(gw.broker.readMailbox('remote-big'), undefined);
    const text = gw.warnings.join('\n');
    assert.match(text, /"tcpmq\/mailbox\/x+"\.\.\. \(147 characters\) refused: the id is over 128 bytes/);
    assert.match(text, /"tcpmq\/mailbox\/big\/set" refused: its reply of 5000 bytes is over maxFrameBytes \(4096\)/);
    assert.match(text, /"tcpmq\/mailbox\/id5\/set" refused: 5 mailboxes held \(maxDevices\)/);
    assert.match(text, /"tcpmq\/mailbox\/remote-big" refused: its reply of 5000 bytes/);
    // Rate-limited: a flood of refusals is 20 lines a minute.
    for (let n = 0; n < 50; n++) bus.publish(`tcpmq/mailbox/flood${n}/set`, 'x');
    await bus.idle();
    assert.ok(gw.warnings.length <= 20, `${gw.warnings.length} warnings`);
  });

  it("keeps a board's Home Assistant command topic, the mailbox it reads, through a restart", async function () {
    const first = await member('hall-A', { haDiscovery: true });
    const board = await first.connect();
    await board.request('[3,"cmd","21.5"]');
    const config = () => JSON.parse(bus.retained.get('homeassistant/text/tcpmq_3/config'));
    await waitFor(() => bus.retained.has('homeassistant/text/tcpmq_3/config'), 'discovery');
    assert.equal(config().command_topic, 'tcpmq/mailbox/cmd/set');
    const gatewayConfig = JSON.parse(bus.retained.get('homeassistant/binary_sensor/tcpmq_gateway_hall_a/config'));
    assert.equal(gatewayConfig.default_entity_id, 'binary_sensor.tcpmq_gateway_hall_a');
    const snapshot = takeSnapshot(first.broker.mailboxes, first.broker.devices, Date.now());
    fleets.pop().detach();
    bus.retained.delete('homeassistant/text/tcpmq_3/config');
    await member('hall-A', { haDiscovery: true }, (broker) =>
      restoreSnapshot(JSON.parse(JSON.stringify(snapshot)), broker.mailboxes, broker.devices, Date.now()),
    );
    await waitFor(() => bus.retained.has('homeassistant/text/tcpmq_3/config'), 'discovery again');
    assert.equal(config().command_topic, 'tcpmq/mailbox/cmd/set');
  });
});

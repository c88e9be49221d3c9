'use strict';
// The fleet's logic with an in-memory MQTT double (the real thing, mosquitto with two
// node-red gateways, is test/e2e/sharing.test.js): two brokers behave as one.
const assert = require('node:assert/strict');
const { Fleet } = require('../../dist/fleet/fleet');
const { topicLevel, idOfLevel } = require('../../dist/fleet/topics');
const { coreBrokerFixture, every, quietFor, waitFor } = require('../support');
const { Bus } = require('./mqtt-bus');

describe('the fleet: gateways on one MQTT broker behave as one broker', function () {
  const fixture = coreBrokerFixture();
  let bus;
  const fleets = [];

  async function gateway(name, options = {}) {
    const broker = await fixture.start({ offlineAfter: 0.5, ...options });
    const fleet = new Fleet(broker, {
      prefix: 'tcpmq',
      gateway: name,
      haDiscovery: options.haDiscovery === true,
      minIntervalMs: 250,
    });
    fleet.attach(bus.transport());
    fleet.setConnected(true);
    fleets.push(fleet);
    return { broker, fleet, connect: () => fixture.connect(broker.status.port) };
  }

  beforeEach(() => {
    bus = new Bus();
  });
  afterEach(() => {
    for (const fleet of fleets.splice(0)) fleet.detach();
  });

  it('lets a board on A read a board on B, and any flow write any mailbox', async function () {
    const a = await gateway('hall-a');
    const b = await gateway('hall-b');
    const onA = await a.connect();
    const onB = await b.connect();
    assert.equal(await onB.request('[2,2,"b news"]'), 'b news');
    await waitFor(async () => (await onA.request('[1,2,"a news"]')) === 'b news', "B's news on A", 1000);
    b.broker.writeMailbox('cmd', { led: 'on' });
    await waitFor(async () => (await onA.request('[1,"cmd","x"]')) === '{"led":"on"}', "B's flow write on A", 1000);
    // A reports again (its news lives offlineAfter, 0.5 s, however long the steps above took).
    await waitFor(
      async () => (await onA.request('[1,1,"a news"]')) && (await onB.request('[2,1,"b news"]')) === 'a news',
      "A's news on B",
      1000,
    );
    const retained = JSON.parse(bus.retained.get('tcpmq/mailbox/2'));
    assert.deepEqual([retained.value, retained.writer, retained.gateway], ['b news', 'device', 'hall-b']);
    assert.equal(retained.expiresAt, retained.writtenAt + 500);
    assert.deepEqual(JSON.parse(bus.retained.get('tcpmq/device/2')).online, true);
  });

  it('never sends back what it took in: one write makes one mailbox message', async function () {
    const a = await gateway('hall-a');
    const b = await gateway('hall-b');
    await waitFor(() => a.fleet.inStep && b.fleet.inStep, 'both gateways in step with the bus');
    const before = bus.published.length;
    a.broker.writeMailbox('cmd', 'on');
    await waitFor(() => b.broker.readMailbox('cmd') === 'on', 'the write taken in on B');
    // An echo would go out at most publishInterval (250 ms) after B took it in.
    await quietFor(400, 'a second message', () => bus.published.length > before + 1);
    assert.deepEqual(
      bus.published.slice(before).map((m) => m.topic),
      ['tcpmq/mailbox/cmd'],
    );
  });

  it('coalesces a busy device: 50 reports in a second make a handful of messages, the last one out', async function () {
    const a = await gateway('hall-a', { offlineAfter: 5 });
    const b = await gateway('hall-b', { offlineAfter: 5 });
    const device = await a.connect();
    const before = bus.published.filter((m) => m.topic === 'tcpmq/mailbox/7').length;
    for (let n = 0; n < 50; n++) {
      await device.request(`[7,7,"v${n}"]`);
      await every(20);
    }
    await waitFor(() => b.broker.readMailbox(7) === 'v49', 'the latest value on B');
    const sent = bus.published.filter((m) => m.topic === 'tcpmq/mailbox/7').length - before;
    assert.ok(sent >= 2 && sent <= 7, `${sent} messages for 50 reports`);
    assert.equal(b.broker.readMailbox(7), 'v49', 'the latest value got out');
  });

  it("reads None for B's device once it is silent for offlineAfter, also when gateway B has died", async function () {
    const a = await gateway('hall-a');
    const b = await gateway('hall-b');
    const offline = [];
    a.fleet.on('offline', (device) => offline.push([device.id, device.gateway]));
    const onA = await a.connect();
    const onB = await b.connect();
    await onB.request('[2,2,"alive"]');
    await waitFor(async () => (await onA.request('[1,2,"x"]')) === 'alive', "B's news on A", 1000);
    b.fleet.detach(); // gateway B dies: no offline message will ever come
    await waitFor(
      async () => (await onA.request('[1,2,"x"]')) === 'None',
      'None once the news is older than offlineAfter',
      2000,
    );
    await waitFor(() => offline.length === 1, 'an offline event on A');
    assert.deepEqual(offline, [['2', 'hall-b']]);
  });

  it('writes a mailbox on every gateway from <prefix>/mailbox/<id>/set, JSON or text', async function () {
    const a = await gateway('hall-a');
    const b = await gateway('hall-b');
    bus.publish('tcpmq/mailbox/cmd/set', 'led off');
    bus.publish('tcpmq/mailbox/cfg/set', '{"rate":5}');
    await waitFor(
      () => a.broker.readMailbox('cmd') === 'led off' && b.broker.readMailbox('cmd') === 'led off',
      'the set on both',
      1000,
    );
    assert.deepEqual(a.broker.readMailbox('cfg'), { rate: 5 });
  });

  it('keeps the last writer by writtenAt, the gateway name breaking a tie', async function () {
    const a = await gateway('hall-a');
    const writtenAt = Date.now();
    const message = (value, gateway, at = writtenAt) =>
      JSON.stringify({ value, writtenAt: at, writer: 'flow', gateway, expiresAt: null });
    bus.publish('tcpmq/mailbox/x', message('from b', 'hall-b'), true);
    bus.publish('tcpmq/mailbox/x', message('from c', 'hall-c'), true);
    bus.publish('tcpmq/mailbox/x', message('from a0', 'hall-a0'), true);
    bus.publish('tcpmq/mailbox/x', message('older', 'hall-z', writtenAt - 1), true);
    await bus.idle();
    assert.equal(a.broker.readMailbox('x'), 'from c');
  });

  it("takes one gateway's reports in order, two in one millisecond too, and the same report once", async function () {
    const a = await gateway('hall-a');
    const b = await gateway('hall-b', { offlineAfter: 5 });
    const news = [];
    a.fleet.on('news', (event) => news.push(event.payload));
    const board = await b.connect();
    // Lockstep, as fast as it goes: several reports share a millisecond; each is stamped after the last.
    for (let n = 0; n < 20; n++) await board.request(`[9,9,"r${n}"]`);
    await waitFor(() => news.at(-1) === 'r19', 'the last report on A', 2000);
    const sent = b.broker.mailboxes.read('9', Date.now()).writtenAt;
    assert.deepEqual(
      news,
      [...news].sort((x, y) => Number(x.slice(1)) - Number(y.slice(1))),
      'in order',
    );
    // The same write published again (a restarted gateway) is no news.
    const again = { value: 'r19', writtenAt: sent, writer: 'device', gateway: 'hall-b', expiresAt: sent + 5000 };
    bus.publish('tcpmq/mailbox/9', JSON.stringify(again), true);
    bus.publish('tcpmq/mailbox/9', JSON.stringify({ ...again, value: 'older', writtenAt: sent - 1 }), true);
    await bus.idle();
    assert.equal(news.filter((value) => value === 'r19').length, 1, `r19 once: ${news}`);
    assert.ok(!news.includes('older'));
    assert.equal(a.broker.readMailbox('9'), 'r19');
  });

  it('names ids with MQTT wildcards or a slash reversibly in the topic', async function () {
    for (const id of ['a/b', '+', '#', '$SYS', '100%', '温度', '']) assert.equal(idOfLevel(topicLevel(id)), id);
    assert.equal(topicLevel('a/b+#'), 'a%2Fb%2B%23');
    const a = await gateway('hall-a');
    const b = await gateway('hall-b');
    a.broker.writeMailbox('hall/1', 'slashed');
    await waitFor(() => b.broker.readMailbox('hall/1') === 'slashed', 'the slashed id on B', 1000);
    assert.ok(bus.retained.has('tcpmq/mailbox/hall%2F1'));
  });

  it('publishes Home Assistant discovery for each device of its own', async function () {
    const a = await gateway('hall-a', { haDiscovery: true });
    const device = await a.connect();
    await device.request('[5,5,"21.5"]');
    await waitFor(() => bus.retained.has('homeassistant/sensor/tcpmq_5/config'), 'the discovery config', 1000);
    const config = JSON.parse(bus.retained.get('homeassistant/sensor/tcpmq_5/config'));
    assert.equal(config.unique_id, 'tcpmq_5');
    assert.equal(config.state_topic, 'tcpmq/mailbox/5');
    assert.equal(config.value_template, '{{ value_json.value | float(None) }}');
    assert.deepEqual(
      config.availability.map((a) => a.topic),
      ['tcpmq/device/5', 'tcpmq/gateway/hall-a'],
    );
  });

  it('serves boards the same while MQTT is down, and republishes its own state when it is back', async function () {
    const a = await gateway('hall-a', { offlineAfter: 5 });
    const b = await gateway('hall-b', { offlineAfter: 5 });
    const onA = await a.connect();
    bus.up = false;
    a.fleet.setConnected(false);
    assert.equal(await onA.request('[1,1,"while down"]'), 'while down');
    assert.equal(b.broker.readMailbox(1), undefined);
    bus.up = true;
    a.fleet.setConnected(true);
    await waitFor(() => b.broker.readMailbox(1) === 'while down', 'the resync on B', 1000);
  });
});

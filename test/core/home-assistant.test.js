'use strict';
// Home Assistant discovery checked against Home Assistant's own rules: every
// retained config against the keys and types its MQTT platforms accept
// (test/fixtures/home-assistant-mqtt.json, from its documentation), every
// template rendered by real Jinja2 over the fleet's real messages, and the
// retained topics replayed as Home Assistant reads them for availability.
const assert = require('node:assert/strict');
const fixture = require('../fixtures/home-assistant-mqtt.json');
const { Fleet } = require('../../dist/fleet/fleet');
const { readDeviceList } = require('../../dist/settings/device-list');
const { coreBrokerFixture, every, skipWithout, waitFor } = require('../support');
const { Bus } = require('./mqtt-bus');
const { haveJinja, render } = require('./jinja');

const OFFLINE_AFTER = 1;

/** Every way `config` breaks the platform's rules, in words. */
function violations(platform, config) {
  const rules = fixture.platforms[platform];
  const problems = [];
  const check = (where, type, value) => {
    if (Array.isArray(type)) {
      if (!type.includes(value)) problems.push(`${where}: ${JSON.stringify(value)} is not one of ${type.join(', ')}`);
      return;
    }
    const ok = {
      string: typeof value === 'string',
      'string|null': typeof value === 'string' || value === null,
      integer: Number.isInteger(value),
      boolean: typeof value === 'boolean',
      list: Array.isArray(value),
      topic: typeof value === 'string' && value !== '' && !/[+#]/.test(value),
      template: typeof value === 'string' && value.includes('{{'),
      device: typeof value === 'object' && value !== null,
      origin: typeof value === 'object' && value !== null,
      'availability-list': Array.isArray(value),
    }[type];
    if (!ok) problems.push(`${where}: ${JSON.stringify(value)} is not a ${type}`);
  };
  const keys = (where, rules, object) => {
    for (const key of rules.required) if (!(key in object)) problems.push(`${where}: ${key} is missing`);
    for (const [key, value] of Object.entries(object)) {
      if (!(key in rules.keys)) problems.push(`${where}: ${key} is not a key Home Assistant accepts`);
      else check(`${where}.${key}`, rules.keys[key], value);
    }
  };
  keys(platform, rules, config);
  if (config.device) keys('device', fixture.device, config.device);
  if (config.origin) keys('origin', fixture.origin, config.origin);
  for (const [i, item] of (config.availability ?? []).entries()) keys(`availability[${i}]`, fixture.availability, item);
  return problems;
}

describe('Home Assistant discovery, by Home Assistant rules', function () {
  const fixtureBroker = coreBrokerFixture();
  let bus;
  let fleet;
  let broker;

  before(function () {
    if (!haveJinja()) skipWithout(this, 'python3-jinja2', ".ci/run installs Debian's python3-jinja2");
  });

  async function gateway(devices = [], options = {}) {
    broker = await fixtureBroker.start({ offlineAfter: OFFLINE_AFTER, ...options });
    fleet = new Fleet(broker, {
      prefix: 'tcpmq',
      gateway: 'hall',
      haDiscovery: true,
      minIntervalMs: 0,
      devices: readDeviceList(devices).list,
      announce: { model: 'tcpmq-gateway', startedAt: Date.now() },
    });
    fleet.attach(bus.transport());
    fleet.setConnected(true);
    return fixtureBroker.connect(broker.status.port);
  }

  const config = (platform, object) => {
    const text = bus.retained.get(`homeassistant/${platform}/${object}/config`);
    return text === undefined ? undefined : JSON.parse(text);
  };

  /** Whether Home Assistant holds the entity available: every availability topic's template says online. */
  function available(entity) {
    const jobs = entity.availability.map(({ topic, value_template }) => ({
      template: value_template,
      payload: bus.retained.get(topic) ?? 'null',
    }));
    if (jobs.some((job) => job.payload === 'null')) return false;
    const answers = render(jobs);
    return entity.availability_mode === 'all' ? answers.every((a) => a === 'online') : answers.includes('online');
  }

  beforeEach(() => {
    bus = new Bus();
  });

  afterEach(() => fleet?.detach());

  it('makes a board reporting numbers a numeric sensor with history, and a text control for its mailbox', async function () {
    const board = await gateway();
    await board.request('[5,"cmd","21.5"]');
    await waitFor(() => config('sensor', 'tcpmq_5') && config('text', 'tcpmq_5'), 'the discovery configs', 1000);
    const sensor = config('sensor', 'tcpmq_5');
    const text = config('text', 'tcpmq_5');
    assert.deepEqual(violations('sensor', sensor), []);
    assert.deepEqual(violations('text', text), []);
    assert.equal(sensor.state_class, 'measurement');
    assert.equal(sensor.default_entity_id, 'sensor.tcpmq_5');
    assert.equal(sensor.name, null, "the entity takes the device's name: not doubled");
    assert.equal(sensor.expire_after, OFFLINE_AFTER + 5);
    assert.equal(sensor.device.name, 'TCPMQ 5');
    assert.deepEqual([sensor.device.manufacturer, typeof sensor.device.sw_version], ['TCPMQ', 'string']);
    assert.equal(sensor.origin.name, 'TCPMQ for Node-RED');
    assert.equal(text.command_topic, 'tcpmq/mailbox/cmd/set', 'the control writes the mailbox the board reads');
    assert.equal(config('switch', 'tcpmq_5'), undefined);
    // The state template over the mailbox message as published.
    const [state] = render([{ template: sensor.value_template, payload: bus.retained.get('tcpmq/mailbox/5') }]);
    assert.equal(state, '21.5');
  });

  it('announces the gateway as a device, so that via_device resolves', async function () {
    const board = await gateway();
    await board.request('[5,5,"1"]');
    await waitFor(() => config('sensor', 'tcpmq_5'), 'the board', 1000);
    const hub = config('binary_sensor', 'tcpmq_gateway_hall');
    assert.deepEqual(violations('binary_sensor', hub), []);
    assert.deepEqual(hub.device.identifiers, [config('sensor', 'tcpmq_5').device.via_device]);
    assert.equal(hub.device.model, 'tcpmq-gateway');
    const [connected] = render([{ template: hub.value_template, payload: bus.retained.get(hub.state_topic) }]);
    assert.equal(connected, 'ON');
  });

  it('gives a listed board its name, unit and device class; a text board stays text; objects show as JSON', async function () {
    const devices = [
      { id: '1', name: 'Kitchen', unit: '°C', kind: 'sensor', deviceClass: 'temperature' },
      { id: 'door', name: 'Door', kind: 'text' },
    ];
    const kitchen = await gateway(devices);
    const door = await fixtureBroker.connect(broker.status.port);
    const other = await fixtureBroker.connect(broker.status.port);
    await kitchen.request('[1,1,"21.5"]');
    await door.request('["door","door","open"]');
    await other.request('[7,7,{"t":21,"rh":40}]');
    await waitFor(() => ['tcpmq_1', 'tcpmq_door', 'tcpmq_7'].every((o) => config('sensor', o)), 'three boards', 1000);
    const sensor = config('sensor', 'tcpmq_1');
    assert.deepEqual(violations('sensor', sensor), []);
    assert.deepEqual(
      [sensor.device.name, sensor.unit_of_measurement, sensor.device_class, sensor.state_class],
      ['Kitchen', '°C', 'temperature', 'measurement'],
    );
    const doorSensor = config('sensor', 'tcpmq_door');
    assert.equal(doorSensor.state_class, undefined, 'a text board has no statistics');
    const objectSensor = config('sensor', 'tcpmq_7');
    const rendered = render([
      { template: doorSensor.value_template, payload: bus.retained.get('tcpmq/mailbox/door') },
      { template: objectSensor.value_template, payload: bus.retained.get('tcpmq/mailbox/7') },
    ]);
    assert.equal(rendered[0], 'open');
    assert.deepEqual(JSON.parse(rendered[1]), { t: 21, rh: 40 }, 'an object as JSON, not Python text');
    // The device topic carries the name for every other host of the fleet.
    assert.equal(JSON.parse(bus.retained.get('tcpmq/device/1')).name, 'Kitchen');
  });

  it('gives a listed binary board a switch, and removes the entities it no longer has', async function () {
    const board = await gateway([{ id: 'lamp', name: 'Lamp', kind: 'binary' }]);
    bus.retained.set('homeassistant/sensor/tcpmq_lamp/config', '{"left":"from before"}');
    await board.request('["lamp","lamp-cmd","on"]');
    await waitFor(() => config('switch', 'tcpmq_lamp'), 'the switch', 1000);
    const lamp = config('switch', 'tcpmq_lamp');
    assert.deepEqual(violations('switch', lamp), []);
    assert.equal(lamp.command_topic, 'tcpmq/mailbox/lamp-cmd/set');
    assert.equal(config('sensor', 'tcpmq_lamp'), undefined, 'the old sensor config is removed (empty retained)');
    const [state] = render([{ template: lamp.value_template, payload: bus.retained.get('tcpmq/mailbox/lamp') }]);
    assert.equal(state, 'ON');
    // Taken off the list: announced again as an unlisted board (a text board), the switch removed.
    fleet.setDevices(readDeviceList([]).list);
    await waitFor(() => config('sensor', 'tcpmq_lamp') && !config('switch', 'tcpmq_lamp'), 'the switch removed', 1000);
  });

  it('makes a board unavailable when it goes silent, and when its gateway dies', async function () {
    const board = await gateway();
    await board.request('[5,5,"21.5"]');
    await waitFor(() => config('sensor', 'tcpmq_5'), 'the discovery config', 1000);
    const sensor = config('sensor', 'tcpmq_5');
    assert.equal(available(sensor), true, 'available while it reports');
    // Silent for offlineAfter: its device topic says offline.
    await waitFor(() => !available(sensor), 'unavailable after offlineAfter', (OFFLINE_AFTER + 1) * 1000);
    await board.request('[5,5,"22"]');
    await waitFor(() => available(sensor), 'available again', 1000);
    // The gateway's connection is killed: the MQTT broker publishes its will.
    bus.publish('tcpmq/gateway/hall', JSON.stringify({ online: false }), true);
    assert.equal(available(sensor), false, 'unavailable once its gateway says offline');
  });

  it("feeds the sensor's expire_after with the reports themselves: no device message while a board reports", async function () {
    const board = await gateway();
    const started = Date.now();
    while (Date.now() - started < 2000) {
      await board.request('[5,5,"x"]');
      await every(50);
    }
    const devices = bus.published.filter((m) => m.topic === 'tcpmq/device/5');
    assert.equal(devices.length, 1, `one device message (online) in 2 s of reports: ${devices.length}`);
    const sensor = JSON.parse(bus.retained.get('homeassistant/sensor/tcpmq_5/config'));
    const mailboxes = bus.published.filter((m) => m.topic === sensor.state_topic).map((m) => JSON.parse(m.payload));
    const gaps = mailboxes.slice(1).map((m, n) => m.writtenAt - mailboxes[n].writtenAt);
    assert.ok(Math.max(...gaps) < sensor.expire_after * 1000, `its state topic heard every ${Math.max(...gaps)} ms`);
  });

  it('removes a board from Home Assistant when it is evicted', async function () {
    const first = await gateway([], { maxDevices: 1 });
    await first.request('[5,5,"x"]');
    await waitFor(() => config('sensor', 'tcpmq_5'), 'the first board', 1000);
    await waitFor(() => broker.deviceTable()[0]?.online === false, 'the first board offline', 3000);
    const second = await fixtureBroker.connect(broker.status.port);
    await second.request('[6,6,"y"]');
    await waitFor(() => config('sensor', 'tcpmq_6') && !config('sensor', 'tcpmq_5'), 'board 5 removed', 1000);
    assert.equal(config('text', 'tcpmq_5'), undefined);
  });
});

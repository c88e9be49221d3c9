'use strict';
// The hand-over of tcpmq-broker nodes (src/nodes/running-brokers.ts): what a closed node instance parks waits for
// the next instance of the same node; what nobody claims is stopped once the flows have started or stopped, and
// after the grace time (10 s) at the latest, for a start that never finishes. Time is sinon's fake clock.
const assert = require('node:assert/strict');
const net = require('node:net');
const sinon = require('sinon');
const { RunningBrokers } = require('../../dist/nodes/running-brokers');
const { coreBrokerFixture } = require('../support');

/** How long a parked broker waits for its new instance (GRACE_MS). */
const GRACE_MS = 10_000;

/** Resolves once a server of ours could listen on `port`, closing it again: the port is free. */
function portIsFree(port) {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

describe('parked brokers: taken over by the next instance, else stopped after the grace time', function () {
  const fixture = coreBrokerFixture();
  let clock;
  /** Fakes the timers that park() and claim() use; the sockets keep running on the real event loop. */
  const fakeTimers = () => (clock = sinon.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] }));
  afterEach(() => {
    clock?.restore();
    clock = undefined;
  });

  /** A runtime stand-in (what a node would run), parked as `id`; its release records the fake clock's time. */
  function parkedAt(running, id, releases) {
    const runtime = /** @type {any} */ ({ id });
    running.park(id, runtime, async () => void releases.push([id, clock.now]));
    return runtime;
  }

  it('stops a parked broker nobody claims 10 s after it was parked, not before, and frees its port', async function () {
    const broker = await fixture.start();
    const port = broker.status.port;
    const board = await fixture.connect();
    assert.equal(await board.request('[1,1,"before"]'), 'before');
    const running = new RunningBrokers();
    let stopping;
    const releasedAt = [];
    fakeTimers();
    running.park('broker', broker, () => {
      releasedAt.push(clock.now);
      stopping = broker.stop();
      return stopping;
    });
    clock.tick(GRACE_MS - 1);
    assert.deepEqual(releasedAt, [], 'not released 9.999 s after it was parked');
    assert.equal(await board.request('[1,1,"parked"]'), 'parked', 'the parked broker serves its boards meanwhile');
    clock.tick(1);
    assert.deepEqual(releasedAt, [GRACE_MS], 'released once, at 10 s');
    clock.restore();
    clock = undefined;
    await stopping;
    assert.equal(await board.closedWithin(1000), true, "the board's connection closed");
    assert.equal(broker.status.state, 'stopped');
    assert.equal(await portIsFree(port), true, `port ${port} free`);
    assert.equal(running.claim('broker'), undefined, 'nothing left to claim');
  });

  it('hands a claimed broker to the new instance and never stops it', async function () {
    const broker = await fixture.start();
    const board = await fixture.connect();
    const running = new RunningBrokers();
    const released = [];
    fakeTimers();
    running.park('broker', broker, async () => void released.push(clock.now));
    clock.tick(GRACE_MS - 1);
    assert.equal(running.claim('broker'), broker, 'the new instance gets the running broker');
    clock.tick(3 * GRACE_MS);
    assert.deepEqual(released, [], 'a claimed broker is not released');
    clock.restore();
    clock = undefined;
    assert.equal(await board.request('[1,1,"kept"]'), 'kept');
    assert.equal(broker.status.state, 'listening');
  });

  it('stops what nobody claimed at once when the flows have started, and only once', async function () {
    const running = new RunningBrokers();
    const releases = [];
    fakeTimers();
    parkedAt(running, 'a', releases);
    const b = parkedAt(running, 'b', releases);
    clock.tick(100);
    assert.equal(running.claim('b'), b);
    await running.flowsStarted();
    assert.deepEqual(releases, [['a', 100]], 'a released when the flows started; b was claimed');
    clock.tick(2 * GRACE_MS);
    assert.deepEqual(releases, [['a', 100]], 'the grace timer of a released broker never fires');
  });

  it('stops the earlier one at once when the same node parks again before anyone claimed', async function () {
    const running = new RunningBrokers();
    const releases = [];
    fakeTimers();
    parkedAt(running, 'broker', releases);
    clock.tick(4000);
    running.park(
      'broker',
      /** @type {any} */ ({ id: 'second' }),
      async () => void releases.push(['second', clock.now]),
    );
    assert.deepEqual(releases, [['broker', 4000]]);
    clock.tick(GRACE_MS - 1);
    assert.deepEqual(releases, [['broker', 4000]], 'the second waits its own 10 s');
    clock.tick(1);
    assert.deepEqual(releases, [
      ['broker', 4000],
      ['second', 4000 + GRACE_MS],
    ]);
  });

  it('stops everything parked at once when the flows stop without a deploy', async function () {
    const running = new RunningBrokers();
    const releases = [];
    const started = [];
    fakeTimers();
    running.afterStart(() => started.push('applied'));
    parkedAt(running, 'a', releases);
    await running.flowsStopped();
    assert.deepEqual(releases, [['a', 0]]);
    await running.flowsStarted();
    assert.deepEqual(started, [], 'settings waiting for a start that never came are dropped');
  });
});

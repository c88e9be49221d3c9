'use strict';
// Deploys, redeploys and closes: no EADDRINUSE, no lost device connections, nothing left open.
const assert = require('node:assert/strict');
const { Device, freePort, waitFor, sleep, trackOwnTimers } = require('../support');
const { helper, brokerConfig, deploy, listening, messagesOf, nodeRedFixture } = require('./flow');

/** Counts of the runtime's open servers, sockets and timers. */
function openResources() {
  const counts = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

describe('deploying and closing tcpmq flows', function () {
  const fixture = nodeRedFixture();
  let port;
  // The port fixture picked for this test (its beforeEach runs first).
  beforeEach(() => (port = fixture.port));

  const flow = (inSettings = {}) => [
    brokerConfig(port, { offlineAfter: 5 }),
    { id: 'in', type: 'tcpmq-in', broker: 'broker', ...inSettings, wires: [['sink']] },
    { id: 'sink', type: 'helper' },
  ];

  const connect = () => fixture.connect();

  it('redeploys twice on the same port and leaves no socket, server or timer open', async function () {
    const before = openResources();
    const timers = trackOwnTimers();
    for (let round = 0; round < 3; round++) {
      await deploy(flow());
      const device = await connect();
      assert.equal(await device.request(`[1,1,"round ${round}"]`), `round ${round}`);
      await helper.unload();
      assert.equal(await device.closedWithin(1000), true, 'closing the flow closes device connections');
    }
    await sleep(50);
    const after = openResources();
    for (const kind of ['TCPServerWrap', 'TCPSocketWrap']) {
      assert.ok((after[kind] ?? 0) <= (before[kind] ?? 0), `${kind}: ${before[kind] ?? 0} before, ${after[kind] ?? 0} after`);
    }
    assert.deepEqual(timers.stop(), [], 'timers of ours still alive');
    await deploy(flow());
  });

  it('keeps device connections through a modified-nodes deploy, with no duplicated messages', async function () {
    await deploy(flow());
    const device = await connect();
    assert.equal(await device.request('[1,1,"before"]'), 'before');
    await helper.setFlows(flow({ name: 'renamed' }), 'nodes');
    const received = messagesOf('sink');
    assert.equal(device.closed, false, 'the device connection survives');
    assert.equal(await device.request('[1,1,"after"]'), 'after');
    await waitFor(() => received.length === 1, 'one message');
    await sleep(50);
    assert.deepEqual(received.map((m) => m.payload), ['after']);
  });

  it('restarts on the same port in a full deploy without EADDRINUSE', async function () {
    await deploy(flow());
    const first = await connect();
    await first.request('[1,1,"a"]');
    for (let round = 0; round < 3; round++) {
      await helper.setFlows(flow({ name: `round ${round}` }), 'full');
      await listening();
      const device = await connect();
      assert.equal(await device.request(`[1,1,"r${round}"]`), `r${round}`);
    }
    const errors = helper.log().args.filter(([entry]) => entry.level === helper.log().ERROR);
    assert.deepEqual(errors.map(([entry]) => entry.msg), []);
  });

  it('redeploys 20 times while devices keep sending: no EADDRINUSE, no duplicates, nothing left open', async function () {
    this.timeout(60000);
    const before = openResources();
    const timers = trackOwnTimers();
    await deploy(flow());
    let replies = 0;
    let sending = true;
    // Two devices that reconnect whenever a full deploy drops them, as a good client does.
    const talk = async (id) => {
      while (sending) {
        let device;
        try {
          device = await Device.connect(port);
          while (sending) {
            await device.request(`[${id},${id},"${id}"]`, 2000);
            replies++;
          }
        } catch {
          await sleep(20);
        } finally {
          device?.close();
        }
      }
    };
    const talkers = [talk(1), talk(2)];
    for (let round = 0; round < 20; round++) {
      const type = round % 2 === 0 ? 'full' : 'nodes';
      await helper.setFlows(flow({ name: `round ${round}` }), type);
      await listening();
      const received = messagesOf('sink');
      const repliesBefore = replies;
      await waitFor(() => replies >= repliesBefore + 4, `replies after redeploy ${round}`);
      // Each request is one message: as many messages as requests made since, never twice as many.
      const counted = received.length;
      assert.ok(counted <= replies - repliesBefore + 2, `round ${round}: ${counted} messages for ${replies - repliesBefore} replies`);
    }
    sending = false;
    await Promise.all(talkers);
    const errors = helper.log().args.filter(([entry]) => entry.level === helper.log().ERROR);
    assert.deepEqual(errors.map(([entry]) => entry.msg), []);
    await helper.unload();
    await sleep(50);
    const after = openResources();
    const ownTimers = timers.stop();
    console.log(`      open before: ${JSON.stringify(before)}; after 20 redeploys and unload: ${JSON.stringify(after)}; timers of ours alive: ${ownTimers.length}`);
    for (const kind of ['TCPServerWrap', 'TCPSocketWrap']) {
      assert.ok((after[kind] ?? 0) <= (before[kind] ?? 0), `${kind}: ${before[kind] ?? 0} before, ${after[kind] ?? 0} after`);
    }
    assert.deepEqual(ownTimers, [], 'timers of ours still alive');
    await deploy(flow());
  });

  it('moves to a new port when the broker port changes', async function () {
    await deploy(flow());
    const oldPort = port;
    port = fixture.port = await freePort();
    await helper.setFlows(flow(), 'full');
    await listening();
    assert.equal(helper.getNode('broker').broker.status.port, port);
    const device = await connect();
    assert.equal(await device.request('[1,1,"moved"]'), 'moved');
    await assert.rejects(Device.connect(oldPort), /ECONNREFUSED/);
  });
});

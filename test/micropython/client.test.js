'use strict';
// The MicroPython client (examples/micropython/tcpmq.py) run under CPython against
// the project's broker in a real Node-RED runtime: the Python side is
// test/micropython/scenarios.py, one process per scenario.
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const path = require('node:path');
const { freePort, skipWithout, waitFor } = require('../support');
const { helper, brokerConfig, deploy, messagesOf } = require('../nodes/flow');

const SCENARIOS = path.join(__dirname, 'scenarios.py');
const PYTHON = process.env.PYTHON || 'python3';

/**
 * Runs one scenario. Resolves with its exit code, stdout, stderr and the JSON
 * lines it printed; `onEvent` sees each JSON line as it comes. The process is
 * killed (and the promise rejected) after `ms`.
 *
 * @param {string} name
 * @param {number} port
 * @param {{ onEvent?: (event: any) => void, ms?: number }} [options]
 */
function runScenario(name, port, { onEvent = () => {}, ms = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [SCENARIOS, name, String(port)], {
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', PYTHONIOENCODING: 'utf-8', PYTHONUNBUFFERED: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let pending = '';
    const events = [];
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`scenario ${name} still running after ${ms} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, ms);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (text) => {
      stdout += text;
      pending += text;
      let newline;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (!line) continue;
        let event;
        try {
          event = JSON.parse(line);
        } catch {
          continue; // not an event: kept in stdout for the failure message
        }
        events.push(event);
        try {
          onEvent(event);
        } catch (err) {
          stderr += `onEvent: ${err.stack}\n`;
        }
      }
    });
    child.stderr.on('data', (text) => {
      stderr += text;
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, events, result: events[events.length - 1] });
    });
  });
}

/** Fails with the scenario's own words unless it exited 0 with "ok": true. */
function assertPassed(run, name) {
  assert.equal(run.code, 0, `scenario ${name} exited ${run.code}:\n${run.stderr || run.stdout}`);
  assert.equal(run.result?.ok, true, `scenario ${name} printed no result:\n${run.stdout}`);
}

describe('MicroPython client (examples/micropython/tcpmq.py) under CPython', function () {
  this.timeout(20000);
  let port;

  before(function () {
    const probe = spawnSync(PYTHON, ['-c', 'import sys; assert sys.version_info >= (3, 6)']);
    if (probe.error || probe.status !== 0) {
      skipWithout(this, `${PYTHON} 3.6 or later`);
    }
  });

  beforeEach(async function () {
    port = await freePort();
    await new Promise((resolve) => helper.startServer(resolve));
  });

  afterEach(async function () {
    await helper.unload();
    await new Promise((resolve) => helper.stopServer(resolve));
  });

  const broker = () => helper.getNode('broker').broker;
  // The broker listens once a node uses it.
  const brokerFlow = (settings) => [
    brokerConfig(port, settings),
    { id: 'user', type: 'tcpmq-status', broker: 'broker', wires: [[]] },
  ];

  it('compiles both example files and uses only MicroPython modules and syntax', async function () {
    const run = await runScenario('lint', 0);
    assertPassed(run, 'lint');
  });

  it('exchanges with the broker in the text dialect, non-ASCII included', async function () {
    await deploy(brokerFlow({ replyFormat: 'text' }));
    const run = await runScenario('text', port);
    assertPassed(run, 'text');
    assert.equal(run.result.kitchen, '{"t":21}');
    assert.equal(broker().readMailbox('1'), '26.5');
    assert.equal(broker().readMailbox('-1'), '605');
    assert.deepEqual(broker().readMailbox('kitchen'), { t: 21 });
    assert.equal(broker().readMailbox('3'), '温度');
  });

  it('decodes the json dialect', async function () {
    await deploy(brokerFlow({ replyFormat: 'json' }));
    const run = await runScenario('json', port);
    assertPassed(run, 'json');
    assert.equal(broker().readMailbox(1), '温度');
    assert.deepEqual(broker().readMailbox('kitchen'), [1, '温度']);
  });

  it('sends ids that look like numbers as JSON numbers', async function () {
    await deploy([
      brokerConfig(port),
      { id: 'in', type: 'tcpmq-in', broker: 'broker', numbers: false, wires: [['sink']] },
      { id: 'sink', type: 'helper' },
    ]);
    const received = messagesOf('sink');
    const run = await runScenario('ids', port);
    assertPassed(run, 'ids');
    // What went on the wire (read by the scenario's own loopback server).
    assert.deepEqual(
      run.result.frames.map((frame) => JSON.parse(frame)),
      [
        [1, -1, 'x'],
        [1, 2.5, '温度'],
        [1, 'kitchen', null],
      ],
    );
    // What the broker made of the same ids.
    await waitFor(() => received.length === 3, 'three requests');
    assert.deepEqual(
      received.map((m) => [m.topic, m.want, m.payload]),
      [
        ['1', '1', 'news of 1'],
        ['-1', '1', 'news of -1'],
        ['kitchen', '-1', 'news of kitchen'],
      ],
    );
    assert.equal(broker().readMailbox('1'), 'news of 1');
    assert.equal(broker().readMailbox(-1), 'news of -1');
  });

  it('never raises on unexpected replies, closed connections or timeouts', async function () {
    await deploy(brokerFlow());
    const run = await runScenario('robust', port);
    assertPassed(run, 'robust');
  });

  it('counts None replies per peer: offline after offline_after, online again at the next reply', async function () {
    await deploy([
      brokerConfig(port, { offlineAfter: 0.5 }),
      { id: 'status', type: 'tcpmq-status', broker: 'broker', wires: [['sink']] },
      { id: 'sink', type: 'helper' },
    ]);
    const statuses = messagesOf('sink');
    const run = await runScenario('offline', port);
    assertPassed(run, 'offline');
    const seven = statuses.filter((m) => m.topic === '7').map((m) => m.payload);
    assert.deepEqual(seven, ['online', 'offline', 'online'], 'the broker saw device 7 come, go and come back');
  });

  it('recovers by itself when the broker restarts on the same port', async function () {
    const flow = () => brokerFlow();
    await deploy(flow());
    let stopping;
    let restarting;
    const result = await runScenario('restart', port, {
      ms: 15000,
      onEvent: (event) => {
        if (event.event === 'ready')
          stopping = helper.unload(); // the Python client keeps calling
        else if (event.event === 'down' && stopping) {
          restarting = stopping.then(() => deploy(flow()));
          restarting.catch(() => {}); // awaited below
        }
      },
    });
    assertPassed(result, 'restart');
    assert.ok(restarting, 'the client reported the outage');
    await restarting;
    assert.equal(broker().readMailbox('5'), 'after restart');
    assert.ok(result.result.attempts <= 4, `connection attempts during the outage: ${result.result.attempts}`);
  });

  it('reconnects at once, without a lost reply, when the broker closed the connection as idle', async function () {
    await deploy(brokerFlow({ idleTimeout: 0.3 }));
    const run = await runScenario('idle', port);
    assertPassed(run, 'idle');
    assert.ok(
      broker()
        .deviceTable()
        .find((d) => d.id === '6')?.messages === 3,
    );
  });

  it('backs off between connection attempts when nothing listens', async function () {
    const run = await runScenario('backoff', port); // port is free: nothing listens there
    assertPassed(run, 'backoff');
  });
});

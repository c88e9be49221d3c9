#!/usr/bin/env node
// `npm run bench`: measures a bare `net` server (the machine's limit), the core
// broker alone, the broker inside a spawned Node-RED and the tcpmq-gateway
// service (alone, and with a Node-RED attached through mosquitto), each in its
// own process, driven by a load generator in another process, all on loopback.
// Prints figures.
//
//   npm run bench -- [--seconds 10] [--scale 10000] [--skip-scale] [--only deploys|junk|share|gateway]
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execSync, fork, spawn } = require('node:child_process');
const { parseArgs } = require('node:util');
const { freePort } = require('../tools/free-port');
const { settingsText, nodeRedHome } = require('../tools/node-red-home');
const { childrenOf } = require('../tools/proc');

const root = path.join(__dirname, '..');
const { values: options } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    scale: { type: 'string', default: '10000' },
    'skip-scale': { type: 'boolean', default: false },
    only: { type: 'string', default: '' },
  },
});
const MEASURE_MS = Number(options.seconds) * 1000;
const WARMUP_MS = 1000;
const CLOCK_TICKS = Number(execSync('getconf CLK_TCK').toString()) || 100;

// ---- processes ------------------------------------------------------------

/** Starts `command` and resolves once its output matches `ready`. */
function startProcess(command, args, ready, env = process.env) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let output = '';
    let started = false;
    const onData = (chunk) => {
      // Once ready, only the tail is kept (a gateway logs a line per device), for an exit's message.
      output = started ? (output + chunk).slice(-4096) : output + chunk;
      if (!started && ready.test(output)) {
        started = true;
        resolve(child);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`${command} ${args.join(' ')} exited (${code}):\n${output}`)));
  });
}

async function stopProcess(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** CPU seconds used so far and resident memory (bytes) of process `pid`, from /proc. */
function processUsage(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
  return { cpuSeconds, rss };
}

/** processUsage() of `pid` and its children together (tcpmq-gateway: the holder and its worker). */
function usage(pid) {
  const total = processUsage(pid);
  for (const child of childrenOf(pid)) {
    try {
      const { cpuSeconds, rss } = processUsage(child);
      total.cpuSeconds += cpuSeconds;
      total.rss += rss;
    } catch {
      // Gone meanwhile.
    }
  }
  return total;
}

// A shell raises the open-files limit for the servers when it can (10,000 devices need 10,000 sockets).
function withFileLimit(command, args) {
  const quoted = [command, ...args].map((a) => `'${a}'`).join(' ');
  return ['sh', ['-c', `ulimit -n 30000 2>/dev/null; exec ${quoted}`]];
}

async function startReference(port) {
  return startProcess(
    ...withFileLimit(process.execPath, [path.join(__dirname, 'server.js'), 'reference', String(port)]),
    /ready/,
  );
}

async function startCore(port) {
  return startProcess(
    ...withFileLimit(process.execPath, [path.join(__dirname, 'server.js'), 'core', String(port)]),
    /ready/,
  );
}

/** The bench's flow: a broker on `port`, and tcpmq-in -> a counting node. */
function benchFlows(port, name = '', offlineAfter = 30, share = undefined) {
  const sharing = share
    ? [
        {
          id: 'mq',
          type: 'mqtt-broker',
          broker: '127.0.0.1',
          port: String(share.mqttPort),
          clientid: `bench-${share.gateway}`,
          autoConnect: true,
          usetls: false,
          protocolVersion: '4',
          keepalive: '15',
          cleansession: true,
        },
      ]
    : [];
  const shareProperties = share ? { share: 'mq', shareTopic: 'tcpmq', gateway: share.gateway } : {};
  return [
    { id: 'bench', type: 'tab', label: 'bench' },
    ...sharing,
    {
      id: 'broker',
      type: 'tcpmq-broker',
      name,
      host: '0.0.0.0',
      port,
      replyFormat: 'text',
      offlineAfter,
      idleTimeout: 120,
      maxConnections: 20000,
      maxFrameBytes: 65536,
      ...shareProperties,
    },
    {
      id: 'in',
      type: 'tcpmq-in',
      z: 'bench',
      broker: 'broker',
      device: '',
      numbers: true,
      remote: !!share,
      wires: [['count']],
    },
    { id: 'count', type: 'bench-counter', z: 'bench', wires: [] },
  ];
}

/** A Node-RED user directory with this package and the bench's counting node, running `flows`. */
function benchUserDir(flows) {
  return nodeRedHome({
    prefix: 'tcpmq-bench-',
    settings: settingsText("logging: { console: { level: 'info' } }"),
    flows,
    nodes: ['counter-node.js', 'counter-node.html'].map((file) => path.join(__dirname, file)),
  });
}

/**
 * node-red in `userDir` (made by benchUserDir), with `gc()` for memory
 * figures; resolves once its flows run. The child carries the bench's calls
 * to its admin API.
 */
async function launchNodeRed(userDir) {
  const editorPort = await freePort();
  const redJs = require.resolve('node-red/red.js', { paths: [root] });
  const child = await startProcess(
    ...withFileLimit(process.execPath, [
      '--expose-gc',
      redJs,
      '--settings',
      path.join(userDir, 'settings.js'),
      '--userDir',
      userDir,
      '--port',
      String(editorPort),
    ]),
    /Started flows/,
  );
  child.editorPort = editorPort;
  child.messagesCounted = async () =>
    (await (await fetch(`http://127.0.0.1:${editorPort}/bench-counter`)).json()).count;
  /** How long news stamped `t<ms>` took to reach this flow (and clears it): p50, p99, count. */
  child.propagation = async () =>
    (await (await fetch(`http://127.0.0.1:${editorPort}/bench-counter?latency=1`)).json()).latency;
  /** The broker's summary from the sidebar's admin API (counters, sharing). */
  child.summary = async () => (await (await fetch(`http://127.0.0.1:${editorPort}/tcpmq/brokers`)).json())[0];
  /** The process's heap after a full garbage collection, and its RSS, in bytes. */
  child.memory = async () => {
    const { memory } = await (await fetch(`http://127.0.0.1:${editorPort}/bench-counter?gc=1`)).json();
    return { heap: memory.heapUsed + memory.external, rss: memory.rss };
  };
  return child;
}

/** A real node-red with this package installed, running benchFlows(port), with `gc()` for memory figures. */
async function startNodeRed(port, offlineAfter = 30, share = undefined) {
  const userDir = benchUserDir(benchFlows(port, '', offlineAfter, share));
  const child = await launchNodeRed(userDir);
  // Wait until the broker accepts connections.
  const net = require('node:net');
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => resolve(true) || socket.destroy());
      socket.on('error', () => resolve(false));
    });
    if (ok) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  /** A full deploy of the bench's flow, with the broker renamed: the editor's Deploy button, as a user presses it. */
  child.deploy = async (name) => {
    const response = await fetch(`http://127.0.0.1:${child.editorPort}/flows`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
      body: JSON.stringify(benchFlows(port, name)),
    });
    if (!response.ok) throw new Error(`deploy: HTTP ${response.status}`);
  };
  child.cleanup = () => fs.rmSync(userDir, { recursive: true, force: true });
  return child;
}

// ---- load generator ---------------------------------------------------------

function startGenerator() {
  const child = fork(path.join(__dirname, 'load.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  child.call = (command, commandOptions) =>
    new Promise((resolve, reject) => {
      child.once('message', (reply) => (reply.ok ? resolve(reply.result) : reject(new Error(reply.error))));
      child.send({ command, options: commandOptions });
    });
  return child;
}

// ---- the run ------------------------------------------------------------------

/**
 * The generator checks every reply against every target alike, so that it does the
 * same work whatever it measures; the reference server's replies (always None) are
 * not counted as errors.
 */
async function measure(name, start, connectionCounts, countErrors) {
  const rows = [];
  for (const connections of connectionCounts) {
    const port = await freePort();
    const server = await start(port);
    const generator = startGenerator();
    const before = usage(server.pid);
    const counted = server.messagesCounted ? await server.messagesCounted() : undefined;
    try {
      const result = await generator.call('lockstep', {
        port,
        connections,
        warmupMs: WARMUP_MS,
        measureMs: MEASURE_MS,
        spreadSources: connections > 1000,
      });
      if (!countErrors) Object.assign(result, { errors: 0, firstError: undefined });
      const after = usage(server.pid);
      const row = {
        name,
        ...result,
        serverCpu: (after.cpuSeconds - before.cpuSeconds) / ((MEASURE_MS + WARMUP_MS) / 1000),
      };
      if (server.messagesCounted) row.messagesCounted = (await server.messagesCounted()) - counted;
      rows.push(row);
      console.log(
        `  ${name.padEnd(22)} ${String(connections).padStart(5)} conns  ${String(row.requestsPerSecond).padStart(7)} req/s  p50 ${row.p50.toFixed(2)} ms  p99 ${row.p99.toFixed(2)} ms  errors ${row.errors}` +
          `  server CPU ${(row.serverCpu * 100).toFixed(0)}%` +
          (row.messagesCounted !== undefined ? `  flow messages ${row.messagesCounted}` : '') +
          (row.firstError ? `\n    first error: ${row.firstError}` : ''),
      );
    } finally {
      generator.kill();
      await stopProcess(server);
      server.cleanup?.();
    }
  }
  return rows;
}

/** Connects `devices` devices (each answered once) to `server` on `port`; its RSS before and after, per connection. */
async function connectMeasured(name, server, port, generator, devices) {
  await new Promise((resolve) => setTimeout(resolve, 500));
  const idle = usage(server.pid);
  const started = Date.now();
  const { connected, answered } = await generator.call('connectDevices', { port, count: devices });
  const connectSeconds = (Date.now() - started) / 1000;
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const loaded = usage(server.pid);
  const rssPerConnection = (loaded.rss - idle.rss) / connected;
  console.log(
    `  ${name}: ${connected} devices connected and ${answered} answered in ${connectSeconds.toFixed(1)} s; ` +
      `RSS ${(idle.rss / 1e6).toFixed(1)} MB -> ${(loaded.rss / 1e6).toFixed(1)} MB = ${(rssPerConnection / 1024).toFixed(2)} KB per connection`,
  );
  return { connected, answered, connectSeconds, rssPerConnection };
}

/** Connects `devices` devices to the server `start` starts, then lets 1,000 of them report every 2 s. */
async function scaleRun(name, start, devices) {
  const port = await freePort();
  const server = await start(port);
  const generator = startGenerator();
  try {
    const { connected, answered, rssPerConnection } = await connectMeasured(name, server, port, generator, devices);
    const reporters = Math.min(1000, connected);
    const seconds = Math.max(10, MEASURE_MS / 1000);
    const before = usage(server.pid);
    const reported = await generator.call('report', { count: reporters, everyMs: 2000, seconds });
    const after = usage(server.pid);
    const cpu = (after.cpuSeconds - before.cpuSeconds) / (seconds + 0.2);
    console.log(
      `  ${name}: ${reporters} of them reporting every 2 s for ${seconds} s: ${reported.sent} sent, ${reported.answered} answered; CPU ${(cpu * 100).toFixed(2)}% of one core`,
    );
    await generator.call('closeAll', {});
    return {
      connected,
      answered,
      rssPerConnection,
      reporters,
      cpu,
      sent: reported.sent,
      reportAnswered: reported.answered,
    };
  } finally {
    generator.kill();
    await stopProcess(server);
  }
}

/** `connections` lockstep devices on the broker in Node-RED while `deploys` full deploys run, one every 500 ms. */
async function deployRun(connections, deploys) {
  const port = await freePort();
  const server = await startNodeRed(port);
  const generator = startGenerator();
  try {
    await generator.call('lockstepStart', { port, connections });
    const deployMs = [];
    /** From the deploy request until its broker node runs (ms since the epoch): when a reply is "during a deploy". */
    const windows = [];
    for (let round = 1; round <= deploys; round++) {
      const started = performance.now();
      const from = Date.now();
      await server.deploy(`round ${round}`);
      while ((await server.summary())?.name !== `round ${round}`)
        await new Promise((resolve) => setTimeout(resolve, 10));
      windows.push([from, Date.now()]);
      deployMs.push(performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const result = await generator.call('lockstepStop', {});
    // A request in flight while a deploy ran waited during it; any other slow reply is the machine's.
    const during = (slow) => windows.some(([from, to]) => slow.sentAt <= to && slow.sentAt + slow.wait >= from);
    result.longestDuringDeploys = Math.max(0, ...result.slow.filter(during).map((slow) => slow.wait));
    result.longestOtherwise = Math.max(0, ...result.slow.filter((slow) => !during(slow)).map((slow) => slow.wait));
    console.log(
      `  ${connections} lockstep devices, ${deploys} full deploys (${Math.round(Math.min(...deployMs))}-${Math.round(Math.max(...deployMs))} ms each, until the new broker node runs): ` +
        `${result.requests} replies, ${result.dropped} connections dropped, ${result.errors} wrong replies, ` +
        `longest reply wait during a deploy ${result.longestDuringDeploys.toFixed(1)} ms (between deploys ${result.longestOtherwise.toFixed(1)} ms), p99 ${result.p99.toFixed(2)} ms` +
        (result.firstError ? `\n    first error: ${result.firstError}` : ''),
    );
    return result;
  } finally {
    generator.kill();
    await stopProcess(server);
    server.cleanup?.();
  }
}

/**
 * Junk ids in Node-RED: 1,000 good devices report every 2 s (CPU and reply
 * p99 measured), one connection sends `junk` new ids, the junk goes offline,
 * and the good devices are measured again. Memory is the heap after a full GC.
 */
async function junkRun(junk) {
  const port = await freePort();
  const offlineAfter = 3;
  const server = await startNodeRed(port, offlineAfter);
  const generator = startGenerator();
  const mb = (bytes) => (bytes / 2 ** 20).toFixed(1);
  try {
    await generator.call('connectDevices', { port, count: 1000 });
    const measureReports = async (seconds) => {
      const before = usage(server.pid);
      const reported = await generator.call('report', { count: 1000, everyMs: 2000, seconds });
      return { ...reported, cpu: (usage(server.pid).cpuSeconds - before.cpuSeconds) / (seconds + 0.2) };
    };
    await measureReports(4); // warm up
    const baseline = await server.memory();
    const before = await measureReports(10);
    const burst = await generator.call('junkIds', { port, count: junk, payloadBytes: 40 });
    const afterBurst = await server.memory();
    await measureReports(offlineAfter + 3); // the good devices stay online while the junk goes silent
    const afterOffline = await server.memory();
    const after = await measureReports(10);
    console.log(
      `  ${junk} junk ids in ${burst.seconds.toFixed(1)} s; heap ${mb(baseline.heap)} MB -> ${mb(afterBurst.heap)} MB after the burst (+${mb(afterBurst.heap - baseline.heap)}), ` +
        `${mb(afterOffline.heap)} MB once it is offline (+${mb(afterOffline.heap - baseline.heap)}); RSS ${mb(baseline.rss)} -> ${mb(afterBurst.rss)} -> ${mb(afterOffline.rss)} MB`,
    );
    console.log(
      `  1000 good devices every 2 s: before p99 ${before.p99.toFixed(2)} ms, CPU ${(before.cpu * 100).toFixed(2)}%; ` +
        `after p99 ${after.p99.toFixed(2)} ms, CPU ${(after.cpu * 100).toFixed(2)}%; answered ${before.answered}/${before.sent} and ${after.answered}/${after.sent}`,
    );
    return { baseline, afterBurst, afterOffline, before, after };
  } finally {
    generator.kill();
    await stopProcess(server);
    server.cleanup?.();
  }
}

/** The targets of the junk run. */
function junkChecks(run) {
  const mb = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MB`;
  const { baseline, afterBurst, afterOffline, before, after } = run;
  // A floor for the ratios: below a few ms, or a few % of a core, a ratio measures the machine's noise.
  const p99Ratio = Math.max(after.p99, 1) / Math.max(before.p99, 1);
  const cpuRatio = Math.max(after.cpu, 0.01) / Math.max(before.cpu, 0.01);
  return [
    [
      '50,000 junk ids: heap <= 64 MB above baseline',
      afterBurst.heap - baseline.heap <= 64 * 2 ** 20,
      `+${mb(afterBurst.heap - baseline.heap)}`,
    ],
    [
      'junk offline: heap back within 16 MB of baseline',
      afterOffline.heap - baseline.heap <= 16 * 2 ** 20,
      `+${mb(afterOffline.heap - baseline.heap)}`,
    ],
    ['good devices after the burst: p99 within 1.25 x before', p99Ratio <= 1.25, `${p99Ratio.toFixed(2)} x`],
    ['good devices after the burst: CPU within 1.25 x before', cpuRatio <= 1.25, `${cpuRatio.toFixed(2)} x`],
    [
      'good devices: every report answered',
      before.answered === before.sent && after.answered === after.sent,
      `${after.answered}/${after.sent}`,
    ],
  ];
}

/**
 * mosquitto on a free loopback port (Debian's package), or undefined if it is
 * not installed. `verbose`: it logs every message (a cost at thousands a second).
 */
async function startMosquitto(verbose = true) {
  const mosquitto = '/usr/sbin/mosquitto';
  if (!fs.existsSync(mosquitto)) return undefined;
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpmq-bench-mqtt-'));
  fs.writeFileSync(
    path.join(dir, 'mosquitto.conf'),
    `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`,
  );
  const args = [...(verbose ? ['-v'] : []), '-c', path.join(dir, 'mosquitto.conf')];
  const child = await startProcess(mosquitto, args, /running|Opening/);
  child.port = port;
  child.cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
  return child;
}

/**
 * Sharing: two gateways on one mosquitto. 1,000 devices on gateway B report
 * every 2 s a value stamped with its send time; gateway A's flow measures how
 * long each took to arrive (propagation), B counts its MQTT messages per
 * report. Then 50 lockstep connections against B, against a Node-RED without
 * sharing measured in the same run (`unshared`).
 */
async function shareRun(unshared) {
  const mosquitto = await startMosquitto();
  if (!mosquitto) {
    console.log('  (not run: /usr/sbin/mosquitto is not installed; apt-get install mosquitto)');
    return undefined;
  }
  const [portA, portB] = [await freePort(), await freePort()];
  const a = await startNodeRed(portA, 30, { mqttPort: mosquitto.port, gateway: 'hall-a' });
  const b = await startNodeRed(portB, 30, { mqttPort: mosquitto.port, gateway: 'hall-b' });
  const generator = startGenerator();
  try {
    for (const gateway of [a, b]) {
      for (let i = 0; i < 100 && !(await gateway.summary())?.sharing?.connected; i++)
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await generator.call('connectDevices', { port: portB, count: 1000 });
    await generator.call('report', { count: 1000, everyMs: 2000, seconds: 4, stamp: true }); // warm up
    await a.propagation();
    const published = (await b.summary()).counters.sharePublished;
    const reported = await generator.call('report', {
      count: 1000,
      everyMs: 2000,
      seconds: FLEET_WINDOW_S,
      stamp: true,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const propagation = await a.propagation();
    const messagesPerReport = ((await b.summary()).counters.sharePublished - published) / reported.sent;
    await generator.call('closeAll', {});
    const lockstep = await generator.call('lockstep', {
      port: portB,
      connections: 50,
      warmupMs: WARMUP_MS,
      measureMs: MEASURE_MS,
      spreadSources: false,
    });
    const cost = 1 - lockstep.requestsPerSecond / unshared.requestsPerSecond;
    console.log(
      `  1000 devices on gateway B every 2 s: ${propagation.count} reports reached gateway A's flow, propagation p50 ${propagation.p50} ms, p99 ${propagation.p99} ms; ` +
        `${messagesPerReport.toFixed(3)} MQTT messages per report`,
    );
    console.log(
      `  50 lockstep connections, sharing on: ${lockstep.requestsPerSecond} req/s against ${unshared.requestsPerSecond} without, ${(cost * 100).toFixed(1)}% cost; errors ${lockstep.errors}`,
    );
    return { propagation, messagesPerReport, cost, sent: reported.sent };
  } finally {
    generator.kill();
    for (const gateway of [a, b]) {
      await stopProcess(gateway);
      gateway.cleanup();
    }
    await stopProcess(mosquitto);
    mosquitto.cleanup();
  }
}

/** The targets of the sharing run. */
function shareChecks(run) {
  if (!run) return [];
  return [
    ['sharing: cross-gateway propagation p99 <= 100 ms', run.propagation.p99 <= 100, `${run.propagation.p99} ms`],
    [
      'sharing: every report reached the other gateway',
      run.propagation.count >= run.sent,
      `${run.propagation.count}/${run.sent}`,
    ],
    ['sharing: <= 1.1 MQTT messages per report', run.messagesPerReport <= 1.1, run.messagesPerReport.toFixed(3)],
    ['sharing: throughput cost at 50 lockstep connections <= 15%', run.cost <= 0.15, `${(run.cost * 100).toFixed(1)}%`],
  ];
}

// ---- the gateway ----------------------------------------------------------------

const GATEWAY_BIN = path.join(root, 'bin', 'tcpmq-gateway.js');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * bin/tcpmq-gateway.js serving boards on loopback `port`, with `args`
 * (--mqtt, --publish-interval, ...); resolves once it listens, or with --mqtt
 * once it is connected to the MQTT broker. Limits raised for 10,000 boards.
 */
function startGateway(port, args = []) {
  const limits = ['--max-connections', '20000', '--max-devices', '20000', '--idle-timeout', '120'];
  return startProcess(
    ...withFileLimit(process.execPath, [
      GATEWAY_BIN,
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      ...limits,
      ...args,
    ]),
    args.includes('--mqtt') ? /MQTT connected/ : /listening on /,
  );
}

const startGatewayAlone = (port) => startGateway(port);
/** The gateway as one process (its broker in the process it starts), as before the holder and its worker. */
const startGatewaySingle = (port) => startGateway(port, ['--single-process']);

/** Node-RED attached to the fleet (tcpmq-broker mode `fleet` on mosquitto): tcpmq in -> the counting node. */
function fleetFlows(mqttPort) {
  return [
    { id: 'bench', type: 'tab', label: 'bench' },
    {
      id: 'mq',
      type: 'mqtt-broker',
      broker: '127.0.0.1',
      port: String(mqttPort),
      clientid: 'bench-node-red',
      autoConnect: true,
      usetls: false,
      protocolVersion: '4',
      keepalive: '15',
      cleansession: true,
    },
    { id: 'broker', type: 'tcpmq-broker', mode: 'fleet', share: 'mq', shareTopic: 'tcpmq' },
    { id: 'in', type: 'tcpmq-in', z: 'bench', broker: 'broker', device: '', numbers: true, wires: [['count']] },
    // Stamps Date.now() on each report `t<send time>` from a gateway: the latency from the board's send.
    { id: 'count', type: 'bench-counter', z: 'bench', wires: [] },
  ];
}

/** p50 and p99 of `values` (ms), and their count. */
function percentiles(values) {
  const sorted = values.sort((x, y) => x - y);
  const at = (p) =>
    sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((sorted.length * p) / 100) - 1)] : NaN;
  return { count: sorted.length, p50: at(50), p99: at(99) };
}

/**
 * Every message under `tcpmq/#` on the MQTT broker, counted by kind (mailbox,
 * device, gateway, ...); for a mailbox carrying a report stamped `t<send time>`,
 * how long it took from the board's send to here (the MQTT leg of the latency).
 */
async function fleetMessageCounter(mqttPort) {
  const mqtt = require(require.resolve('mqtt', { paths: [root] }));
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { clientId: 'bench-count', clean: true });
  const counts = {};
  let latencies = [];
  client.on('message', (topic, payload, packet) => {
    const kind = topic.split('/')[1] ?? '';
    counts[kind] = (counts[kind] ?? 0) + 1;
    if (kind !== 'mailbox' || packet.retain || payload.length === 0) return;
    let value;
    try {
      ({ value } = JSON.parse(payload.toString('utf8')));
    } catch {
      return; // not the gateway's: counted, not timed
    }
    if (typeof value === 'string' && value[0] === 't') latencies.push(Date.now() - Number(value.slice(1)));
  });
  await client.subscribeAsync('tcpmq/#', { qos: 0 });
  return {
    snapshot: () => ({ ...counts }),
    /** The MQTT leg since the last call: p50, p99, count. */
    latency() {
      const taken = latencies;
      latencies = [];
      return percentiles(taken);
    },
    /** What came between two snapshots: the total and each kind. */
    between(before, after) {
      const kinds = {};
      for (const kind of Object.keys(after)) kinds[kind] = after[kind] - (before[kind] ?? 0);
      return { total: Object.values(kinds).reduce((sum, n) => sum + n, 0), kinds };
    },
    end: () => client.endAsync(),
  };
}

/** Messages per report, and the kinds: "1.000 (mailbox 1.000, device 0.000)". */
function perReportText(messages, reports) {
  const kinds = Object.entries(messages.kinds)
    .filter(([, n]) => n > 0)
    .map(([kind, n]) => `${kind} ${(n / reports).toFixed(3)}`);
  return `${(messages.total / reports).toFixed(3)} (${kinds.join(', ')})`;
}

/** The RSS per connection of 10,000 boards on the bare server and on the gateway alone (holder and worker, and as one process). */
async function gatewayMemory(devices) {
  const rows = {};
  for (const [key, name, start] of [
    ['reference', 'reference net server', startReference],
    ['single', 'tcpmq-gateway --single-process', startGatewaySingle],
    ['gateway', 'tcpmq-gateway (holder + worker)', startGatewayAlone],
  ]) {
    const port = await freePort();
    const server = await start(port);
    const generator = startGenerator();
    try {
      rows[key] = await connectMeasured(name, server, port, generator, devices);
      await generator.call('closeAll', {});
    } finally {
      generator.kill();
      await stopProcess(server);
    }
  }
  return rows;
}

/**
 * How long the fleet's figures are measured: 16 s, a whole period of the device
 * topic's lastSeen refresh (offlineAfter / 2 = 15 s, at the next report).
 */
const FLEET_WINDOW_S = 16;

/**
 * The gateway with a Node-RED attached in fleet mode through a real
 * mosquitto: 1,000 boards report every 2 s to a gateway publishing every
 * report; the latency from the board's send to `tcpmq in`, the MQTT messages
 * per report; the longest reply wait while Node-RED restarts `restarts`
 * times, against as long a run without restarts; then MQTT messages per
 * report of a gateway publishing each board at most every 250 ms, its boards
 * reporting every second.
 */
async function gatewayFleetRun(restarts) {
  const mosquitto = await startMosquitto(false);
  if (!mosquitto) {
    console.log('  (fleet figures not measured: /usr/sbin/mosquitto is not installed; apt-get install mosquitto)');
    return undefined;
  }
  const mqttUrl = `mqtt://127.0.0.1:${mosquitto.port}`;
  const userDir = benchUserDir(fleetFlows(mosquitto.port));
  const generator = startGenerator();
  let counter;
  let gateway;
  let nodeRed;
  const result = {};
  try {
    counter = await fleetMessageCounter(mosquitto.port);
    const port = await freePort();
    gateway = await startGateway(port, ['--mqtt', mqttUrl, '--gateway', 'bench-gw', '--publish-interval', '0']);
    nodeRed = await launchNodeRed(userDir);
    for (let i = 0; i < 100 && !(await nodeRed.summary())?.sharing?.connected; i++) await sleep(100);

    // Report -> tcpmq in, and MQTT messages per report, publishing every report.
    await generator.call('connectDevices', { port, count: 1000 });
    await generator.call('report', { count: 1000, everyMs: 2000, seconds: 4, stamp: true }); // warm up
    await nodeRed.propagation();
    counter.latency();
    const before = counter.snapshot();
    const reported = await generator.call('report', {
      count: 1000,
      everyMs: 2000,
      seconds: FLEET_WINDOW_S,
      stamp: true,
    });
    await sleep(300);
    result.latency = await nodeRed.propagation();
    result.latency.sent = reported.sent;
    result.mqttLatency = counter.latency();
    result.everyReport = { reports: reported.sent, messages: counter.between(before, counter.snapshot()) };
    console.log(
      `  1000 boards every 2 s, --publish-interval 0: ${result.latency.count} of ${reported.sent} reports reached tcpmq in, ` +
        `board's send -> flow p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms ` +
        `(-> an MQTT subscriber p50 ${result.mqttLatency.p50} ms, p99 ${result.mqttLatency.p99} ms); ` +
        `MQTT messages per report ${perReportText(result.everyReport.messages, reported.sent)}; reply p99 ${reported.p99.toFixed(2)} ms`,
    );

    // The longest reply wait while Node-RED restarts (SIGTERM, then a start), and in as long a run without.
    const restartMs = [];
    await generator.call('reportStart', { count: 1000, everyMs: 2000, stamp: true });
    const started = performance.now();
    for (let round = 0; round < restarts; round++) {
      await sleep(1000);
      const from = performance.now();
      await stopProcess(nodeRed);
      nodeRed = await launchNodeRed(userDir);
      restartMs.push(performance.now() - from);
    }
    await sleep(1000);
    const windowMs = performance.now() - started;
    result.withRestarts = await generator.call('reportStop', {});
    result.withRestarts.restartMs = restartMs;
    result.withoutRestarts = await generator.call('report', {
      count: 1000,
      everyMs: 2000,
      seconds: windowMs / 1000,
      stamp: true,
    });
    for (const [label, run] of [
      [
        `${restarts} Node-RED restarts (${restartMs.map((ms) => (ms / 1000).toFixed(1)).join(', ')} s each)`,
        result.withRestarts,
      ],
      ['no restart', result.withoutRestarts],
    ]) {
      console.log(
        `  1000 boards every 2 s for ${(windowMs / 1000).toFixed(1)} s, ${label}: ${run.answered}/${run.sent} answered, ` +
          `${run.dropped} connections dropped, longest reply wait ${run.longestWait.toFixed(1)} ms, p99 ${run.p99.toFixed(2)} ms`,
      );
    }
    await generator.call('closeAll', {});
    await stopProcess(gateway);

    // MQTT messages per report, publishing each board at most every 250 ms, boards reporting every second.
    const port250 = await freePort();
    gateway = await startGateway(port250, [
      '--mqtt',
      mqttUrl,
      '--gateway',
      'bench-gw-250',
      '--publish-interval',
      '250',
    ]);
    await generator.call('connectDevices', { port: port250, count: 1000 });
    await generator.call('report', { count: 1000, everyMs: 1000, seconds: 3, stamp: true }); // warm up
    const before250 = counter.snapshot();
    const reported250 = await generator.call('report', {
      count: 1000,
      everyMs: 1000,
      seconds: FLEET_WINDOW_S,
      stamp: true,
    });
    await sleep(500);
    result.coalesced = { reports: reported250.sent, messages: counter.between(before250, counter.snapshot()) };
    console.log(
      `  1000 boards every 1 s, --publish-interval 250: MQTT messages per report ${perReportText(result.coalesced.messages, reported250.sent)}`,
    );
    await generator.call('closeAll', {});
    return result;
  } finally {
    generator.kill();
    await counter?.end();
    for (const child of [nodeRed, gateway]) if (child) await stopProcess(child);
    await stopProcess(mosquitto);
    mosquitto.cleanup();
    fs.rmSync(userDir, { recursive: true, force: true });
  }
}

/**
 * 1,000 boards reporting every 2 s while the gateway upgrades `upgrades` times (SIGUSR2, one every 2 s):
 * the longest reply wait, and connections dropped.
 */
async function gatewayUpgradeRun(upgrades) {
  const port = await freePort();
  const gateway = await startGateway(port);
  const generator = startGenerator();
  let output = '';
  gateway.stdout.on('data', (chunk) => (output = (output + chunk).slice(-4096)));
  try {
    await generator.call('connectDevices', { port, count: 1000 });
    await generator.call('reportStart', { count: 1000, everyMs: 2000 });
    for (let round = 1; round <= upgrades; round++) {
      await sleep(2000);
      const upgraded = new Promise((resolve) => {
        const onData = (chunk) =>
          /upgraded to version/.test(String(chunk)) && resolve(gateway.stdout.off('data', onData));
        gateway.stdout.on('data', onData);
      });
      gateway.kill('SIGUSR2');
      await Promise.race([upgraded, sleep(10000)]);
    }
    await sleep(2000);
    const run = await generator.call('reportStop', {});
    console.log(
      `  1000 boards every 2 s, ${upgrades} upgrades (SIGUSR2): ${run.answered}/${run.sent} answered, ` +
        `${run.dropped} connections dropped, longest reply wait ${run.longestWait.toFixed(1)} ms, p99 ${run.p99.toFixed(2)} ms`,
    );
    await generator.call('closeAll', {});
    return { ...run, upgrades };
  } catch (err) {
    throw new Error(`${err.message}\n${output}`);
  } finally {
    generator.kill();
    await stopProcess(gateway);
  }
}

/** The gateway part: throughput and memory against the bare server and as one process, its upgrades, and the fleet figures. */
async function gatewayRun(devices) {
  console.log('  50 lockstep connections:');
  const [reference] = await measure('reference net server', startReference, [50], false);
  const [single] = await measure('tcpmq-gateway --single-process', startGatewaySingle, [50], true);
  const [alone] = await measure('tcpmq-gateway (holder + worker)', startGatewayAlone, [50], true);
  console.log(`  ${devices} boards connected:`);
  const memory = await gatewayMemory(devices);
  const upgrade = await gatewayUpgradeRun(3);
  console.log('  Node-RED attached in fleet mode, through mosquitto:');
  const fleet = await gatewayFleetRun(3);
  const run = { reference, single, alone, memory, upgrade, fleet, devices };
  printGatewayTable(gatewayChecks(run));
  console.log(`(load average ${os.loadavg()[0].toFixed(2)}: other processes on this machine skew the figures)`);
  return run;
}

/** The targets of the gateway part: [what, holds, figure, target]. */
function gatewayChecks({ reference, single, alone, memory, upgrade, fleet, devices }) {
  const checks = [];
  const ratio = single.requestsPerSecond / reference.requestsPerSecond;
  checks.push([
    'gateway as one process, 50 lockstep connections: req/s × reference',
    ratio >= 0.9,
    `${single.requestsPerSecond} / ${reference.requestsPerSecond} = ${ratio.toFixed(2)} ×`,
    '≥ 0.9 ×',
  ]);
  const heldRatio = alone.requestsPerSecond / single.requestsPerSecond;
  checks.push([
    'gateway (holder + worker), 50 lockstep connections: req/s × one process',
    heldRatio >= 0.9,
    `${alone.requestsPerSecond} / ${single.requestsPerSecond} = ${heldRatio.toFixed(2)} ×`,
    '≥ 0.9 ×',
  ]);
  const errors = single.errors + alone.errors;
  checks.push(['gateway, 50 lockstep connections: wrong replies', errors === 0, `${errors}`, '0']);
  const kb = (bytes) => `${(bytes / 1024).toFixed(2)} KB`;
  const answered = (row) => (row.answered === devices ? '' : ` (${row.answered}/${devices} answered)`);
  const memoryRatio = memory.single.rssPerConnection / memory.reference.rssPerConnection;
  checks.push([
    `${devices} boards: RSS per connection, gateway as one process × bare server`,
    memoryRatio <= 1.25 && memory.single.answered === devices,
    `${kb(memory.single.rssPerConnection)} / ${kb(memory.reference.rssPerConnection)} = ${memoryRatio.toFixed(2)} ×` +
      answered(memory.single),
    '≤ 1.25 ×',
  ]);
  const heldMemory = memory.gateway.rssPerConnection / memory.single.rssPerConnection;
  checks.push([
    `${devices} boards: RSS per connection, holder + worker × one process`,
    heldMemory <= 1.1 && memory.gateway.answered === devices,
    `${kb(memory.gateway.rssPerConnection)} / ${kb(memory.single.rssPerConnection)} = ${heldMemory.toFixed(2)} ×` +
      answered(memory.gateway),
    '≤ 1.1 ×',
  ]);
  checks.push([
    `1000 boards every 2 s, ${upgrade.upgrades} upgrades: longest reply wait`,
    upgrade.longestWait <= 1000 && upgrade.dropped === 0 && upgrade.answered === upgrade.sent,
    `${upgrade.longestWait.toFixed(1)} ms, ${upgrade.dropped} dropped, ${upgrade.answered}/${upgrade.sent} answered`,
    '≤ 1 s, none dropped',
  ]);
  if (!fleet) return checks;
  const { latency, everyReport, coalesced, withRestarts, withoutRestarts } = fleet;
  checks.push([
    "1000 boards every 2 s: board's send -> tcpmq in, p50 / p99",
    latency.p99 <= 20 && latency.count >= latency.sent,
    `${latency.p50} / ${latency.p99} ms` +
      (latency.count >= latency.sent ? '' : ` (${latency.count}/${latency.sent} reached)`),
    'p99 ≤ 20 ms',
  ]);
  const perReport = (run) => run.messages.total / run.reports;
  checks.push([
    'MQTT messages per report, --publish-interval 0',
    perReport(everyReport) <= 1.05,
    perReportText(everyReport.messages, everyReport.reports),
    '≤ 1.05',
  ]);
  checks.push([
    'MQTT messages per report, --publish-interval 250, 1 report/s per board',
    perReport(coalesced) <= 1.1,
    perReportText(coalesced.messages, coalesced.reports),
    '≤ 1.1',
  ]);
  // Below 10 ms a difference is this machine's scheduling, not the restarts'.
  const floor = (ms) => Math.max(ms, 10);
  const intact = (run) => run.dropped === 0 && run.answered === run.sent;
  checks.push([
    `longest reply wait, ${withRestarts.restartMs.length} Node-RED restarts / none`,
    floor(withRestarts.longestWait) <= 1.25 * floor(withoutRestarts.longestWait) && intact(withRestarts),
    `${withRestarts.longestWait.toFixed(1)} / ${withoutRestarts.longestWait.toFixed(1)} ms` +
      (intact(withRestarts)
        ? ''
        : ` (${withRestarts.dropped} dropped, ${withRestarts.answered}/${withRestarts.sent} answered)`),
    'no different (≤ 1.25 ×), none dropped',
  ]);
  return checks;
}

/** The gateway's targets for the summary: [what and target, holds, figure]. */
function gatewayTargets(run) {
  return gatewayChecks(run).map(([what, ok, figure, target]) => [`${what}: ${target}`, ok, figure]);
}

function printGatewayTable(checks) {
  console.log('\n| tcpmq-gateway | measured | target | |');
  console.log('|---|---|---|---|');
  for (const [what, ok, figure, target] of checks) console.log(`| ${what} | ${figure} | ${target} | ${verdict(ok)} |`);
}

function verdict(ok) {
  return ok ? 'holds' : 'MISSED';
}

/** The targets of the deploy run. */
function deployChecks(deploys) {
  return [
    ['200 devices through 10 full deploys: 0 connections dropped', deploys.dropped === 0, `${deploys.dropped} dropped`],
    ['200 devices through 10 full deploys: 0 wrong replies', deploys.errors === 0, `${deploys.errors} wrong`],
    [
      '200 devices through 10 full deploys: longest reply wait during a deploy <= 250 ms',
      deploys.longestDuringDeploys <= 250,
      `${deploys.longestDuringDeploys.toFixed(1)} ms`,
    ],
  ];
}

function report(checks) {
  console.log('\nTargets:');
  for (const [what, ok, figure] of checks) console.log(`  ${verdict(ok).padEnd(6)} ${what} (${figure})`);
  process.exitCode = checks.every(([, ok]) => ok) ? 0 : 1;
}

async function main() {
  console.log(`TCPMQ benchmark, ${new Date().toISOString()}`);
  console.log(
    `${os.cpus().length} × ${os.cpus()[0].model}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${MEASURE_MS / 1000} s per run, ` +
      `load average ${os.loadavg()[0].toFixed(2)}\n`,
  );
  if (options.only === 'share') {
    console.log('Sharing through MQTT (two gateways on one mosquitto):');
    const [unshared] = await measure('broker in Node-RED', startNodeRed, [50], true);
    report(shareChecks(await shareRun(unshared)));
    return;
  }
  if (options.only === 'junk') {
    console.log('Junk ids in Node-RED (one connection, 50,000 new ids):');
    report(junkChecks(await junkRun(50000)));
    return;
  }
  if (options.only === 'gateway') {
    console.log('tcpmq-gateway (bin/tcpmq-gateway.js, its own process):');
    const checks = gatewayTargets(await gatewayRun(Number(options.scale)));
    process.exitCode = checks.every(([, ok]) => ok) ? 0 : 1;
    return;
  }
  if (options.only === 'deploys') {
    console.log('Full deploys while devices exchange (Deploy pressed in the editor, as users do):');
    report(deployChecks(await deployRun(200, 10)));
    return;
  }
  console.log('Lockstep round trips (each connection: send a frame, wait for the reply, repeat):');
  const reference = await measure('reference net server', startReference, [50, 500, 5000], false);
  const core = await measure('core broker', startCore, [50, 500, 5000], true);
  const nodeRed = await measure('broker in Node-RED', startNodeRed, [50, 500], true);

  const ref = (connections) => reference.find((row) => row.connections === connections);
  console.log('\nRatios to the reference server measured in this run:');
  console.log('| target | connections | req/s | ratio | p50 ms | p99 ms | p99 ratio | errors |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of [...reference, ...core, ...nodeRed]) {
    const base = ref(row.connections);
    console.log(
      `| ${row.name} | ${row.connections} | ${row.requestsPerSecond} | ${(row.requestsPerSecond / base.requestsPerSecond).toFixed(2)} | ${row.p50.toFixed(2)} | ${row.p99.toFixed(2)} | ${(row.p99 / base.p99).toFixed(2)} | ${row.name.startsWith('reference') ? 'n/a' : row.errors} |`,
    );
  }

  console.log('\nFull deploys while devices exchange (Deploy pressed in the editor, as users do):');
  const deploys = await deployRun(200, 10);

  console.log('\nJunk ids in Node-RED (one connection, 50,000 new ids):');
  const junk = await junkRun(50000);

  console.log('\nSharing through MQTT (two gateways on one mosquitto):');
  const share = await shareRun(nodeRed.find((r) => r.connections === 50));

  console.log('\ntcpmq-gateway (bin/tcpmq-gateway.js, its own process):');
  const gateway = await gatewayRun(Number(options.scale));

  let scale;
  if (!options['skip-scale']) {
    console.log(
      `\nScale run (devices connect from distinct 127.0.x.y addresses; the reference server shows the floor):`,
    );
    await scaleRun('reference net server', startReference, Number(options.scale));
    scale = await scaleRun('core broker', startCore, Number(options.scale));
  }

  const checks = [];
  for (const connections of [50, 500]) {
    const row = core.find((r) => r.connections === connections);
    const base = ref(connections);
    checks.push([
      `core broker, ${connections} connections: >= 0.85 x reference req/s`,
      row.requestsPerSecond / base.requestsPerSecond >= 0.85,
      (row.requestsPerSecond / base.requestsPerSecond).toFixed(2),
    ]);
    checks.push([
      `core broker, ${connections} connections: p99 <= 1.25 x reference p99`,
      row.p99 <= 1.25 * base.p99,
      (row.p99 / base.p99).toFixed(2),
    ]);
  }
  const nr50 = nodeRed.find((r) => r.connections === 50);
  checks.push([
    'broker in Node-RED, 50 connections: >= 0.5 x reference req/s',
    nr50.requestsPerSecond / ref(50).requestsPerSecond >= 0.5,
    (nr50.requestsPerSecond / ref(50).requestsPerSecond).toFixed(2),
  ]);
  const core50 = core.find((r) => r.connections === 50);
  const core5000 = core.find((r) => r.connections === 5000);
  checks.push([
    'core broker throughput from 50 to 5,000 connections falls <= 20%',
    core5000.requestsPerSecond >= 0.8 * core50.requestsPerSecond,
    `${((1 - core5000.requestsPerSecond / core50.requestsPerSecond) * 100).toFixed(0)}% drop`,
  ]);
  checks.push([
    'no wrong replies (core and Node-RED)',
    [...core, ...nodeRed].every((r) => r.errors === 0),
    `${[...core, ...nodeRed].reduce((n, r) => n + r.errors, 0)} errors`,
  ]);
  checks.push(...deployChecks(deploys));
  checks.push(...junkChecks(junk));
  checks.push(...shareChecks(share));
  checks.push(...gatewayTargets(gateway));
  if (scale) {
    checks.push([
      `${scale.connected} connected devices: <= 8 KB broker RSS per connection`,
      scale.rssPerConnection <= 8192,
      `${(scale.rssPerConnection / 1024).toFixed(2)} KB`,
    ]);
    checks.push([
      `${scale.connected} connected devices: every device answered`,
      scale.answered === scale.connected && scale.connected === Number(options.scale),
      `${scale.answered}/${Number(options.scale)}`,
    ]);
    checks.push([
      `${scale.reporters} reporting every 2 s: broker CPU <= 5% of one core`,
      scale.cpu <= 0.05,
      `${(scale.cpu * 100).toFixed(2)}%`,
    ]);
  }
  report(checks);
}

main().catch((err) => {
  console.error(err);
  process.exit(2);
});

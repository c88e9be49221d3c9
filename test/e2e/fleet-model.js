'use strict';
// The fleet's state rules (docs/PROTOCOL.md, sharing), hunted for by a seeded, model-based run: two
// tcpmq-gateway processes ("hall-a" with Home Assistant discovery, "hall-b"), each with persist, on one real
// mosquitto; a Node-RED attached in fleet mode whose flow writes a mailbox when the run asks it (an http in
// node) and posts every tcpmq-in message to the run (an http request node); lockstep boards on both
// gateways; /set from an MQTT client. A seeded PRNG picks each step: a board reports, a /set writes or
// clears a command mailbox, the flow writes or clears one, a gateway is killed (SIGKILL) or stopped
// (SIGTERM) and started again (with a few steps while it is down), Node-RED is stopped or killed and
// started again (with reports while it is down, and maybe a write by its flow before it is in step). After each step, once things settle (waits on conditions), what came is checked against
// the model:
//
// - on MQTT, a mailbox topic's values never go back (every value is a counter), its writes follow the
//   fleet's order, a command mailbox's write is published by its owner, and a mailbox is emptied only when
//   the model cleared it;
// - a command mailbox (cmd, flowbox), once a write has settled, reads the same on every gateway: that
//   write, or None once cleared; a board's news reads on every gateway while the board is alive (its
//   gateway has run since it reported) and reported within offlineAfter, and None once it is past;
//   what one reader reads never goes back; every write is read on every gateway (a gateway that was down
//   meanwhile: once it is back and in step);
// - the flow hears each report made while it runs once, in order per device, and no report made before
//   it started;
// - the gateways' processes (a holder and its worker) stay under a memory bound, and none outlives a kill.
//
// The model follows the promise, not the implementation: where a rule cannot hold by design it is written
// down below where it is modelled (a gateway's boards lose their connection when it restarts; a board
// whose gateway restarted is not alive until it reports again).
//
// Used by test/e2e/fleet-model.test.js (a short run) and bench/fleet-fuzz.js (long runs).

const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const mqtt = require('mqtt');
const { Device, every, freePort, waitFor, sleep } = require('../support');
const { linkedUserDir, startNodeRed, stopNodeRed } = require('./node-red-process');
const { startGateway } = require('./gateway-process');
const { mqttBrokerNode, startMosquitto } = require('./mosquitto');
const { alive, processTree, rssKb } = require('../../tools/proc');

const PREFIX = 'tcpmq';
const OFFLINE_AFTER_S = 5;
const OFFLINE_AFTER_MS = OFFLINE_AFTER_S * 1000;
const GATEWAYS = ['hall-a', 'hall-b'];
/** The boards the steps drive, and their gateway. */
const BOARDS = [
  ['a1', 'hall-a'],
  ['a2', 'hall-a'],
  ['b1', 'hall-b'],
  ['b2', 'hall-b'],
];
/** One probe board per gateway: it reads what a step wrote until its gateway serves it (the settle). */
const PROBES = { 'hall-a': 'pa', 'hall-b': 'pb' };
/** Mailboxes written by /set and by the flow; their values are `<mailbox>:<counter>`. */
const COMMANDS = ['cmd', 'flowbox'];
/** How long a write may take to reach MQTT and every gateway. */
const SETTLE_MS = 5000;
/**
 * A gateway serves its own board's news until its sweep (every 0.5 s) marks the board offline, and another
 * gateway until writtenAt + offlineAfter: news read later than this after the report's reply came is stale.
 */
const STALE_AFTER_MS = OFFLINE_AFTER_MS + 1500;
/** News read within this of the report's sending must be served (the reply is a bit later than writtenAt). */
const FRESH_WITHIN_MS = OFFLINE_AFTER_MS - 500;
/** Each gateway process (the holder, its worker) stays under this; measured ~70 MB each at start. */
const RSS_BOUND_KB = 150 * 1024;
/** The gateways' memory may not grow by more than this from the run's start to its end. */
const RSS_GROWTH_KB = 40 * 1024;
/** persist keeps a few mailboxes and devices here: its file stays small. */
const PERSIST_BOUND_BYTES = 64 * 1024;

/** The steps, by weight; the restarts of the gateways bring a few steps while one is down. */
const STEP_WEIGHTS = {
  report: 45,
  set: 12,
  clear: 4,
  'flow-write': 10,
  'flow-clear': 3,
  'gateway-sigkill': 8,
  'gateway-sigterm': 7,
  'node-red-sigterm': 3,
  'node-red-sigkill': 3,
};
/** The steps while a gateway is down: mostly writes, which its peer takes as their owner meanwhile. */
const WHILE_DOWN_WEIGHTS = { report: 3, set: 3, clear: 1, 'flow-write': 2, 'flow-clear': 1 };

/**
 * Defects of the system this run finds, kept out of its steps unless `defects` is set
 * (FLEET_MODEL_DEFECTS=1, bench/fleet-fuzz.js --defects): the steps that would hit them again and again
 * would hide everything else.
 */
const KNOWN_DEFECTS = [];

/** A run's figures before its first step (bench/fleet-fuzz.js adds runs' figures up from these too). */
function noFigures() {
  return {
    steps: 0,
    kinds: Object.fromEntries(Object.keys(STEP_WEIGHTS).map((kind) => [kind, 0])),
    whileDown: 0,
    earlyFlowWrites: 0,
    reads: 0,
    reports: 0,
    writes: 0,
    clears: 0,
    flowMessages: 0,
    mqttMailboxMessages: 0,
    republished: 0,
    maxRssKb: 0,
    violations: 0,
  };
}

/** mulberry32: a small seeded PRNG, the same sequence for the same seed on every machine. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random seed, for runs not told one. */
function randomSeed() {
  return (Date.now() ^ (process.pid << 16) ^ Math.floor(Math.random() * 0x7fffffff)) >>> 0;
}

/** A rule of the fleet broken: what the model expected and what came. */
class Violation extends Error {}

/** The run could not go on (a process did not start, an HTTP call failed): not a finding of the model. */
class RunError extends Error {}

/** A mailbox state as a board reads it: `None`, or `<mailbox>:<n>`. */
function shown(mailbox, n) {
  return n === null || n === undefined ? 'None' : `${mailbox}:${n}`;
}

/** What a reply says: null for None, else the mailbox and counter it names (undefined: not a value of ours). */
function parseValue(text) {
  if (text === 'None') return null;
  const match = /^(.+):(\d+)$/.exec(text);
  return match ? { mailbox: match[1], n: Number(match[2]) } : undefined;
}

/** The children of this process now. */
function children() {
  return processTree(process.pid).slice(1);
}

/**
 * Runs `start` (which spawns a process and waits until it is ready); if it fails, the processes it spawned
 * are killed: a start that timed out leaves its child running (tools/process.js).
 *
 * @template T
 * @param {() => Promise<T>} start
 * @returns {Promise<T>}
 */
async function ownChildren(start) {
  const before = new Set(children());
  try {
    return await start();
  } catch (err) {
    for (const pid of children().filter((pid) => !before.has(pid))) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    throw err;
  }
}

function withTimeout(promise, ms) {
  let timer;
  return Promise.race([promise, new Promise((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)))]).finally(
    () => clearTimeout(timer),
  );
}

/**
 * Node-RED's flows: the broker attached in fleet mode; each tcpmq-in message posted to the run with this
 * Node-RED's run id (new at each start) and a sequence number (the order the flow heard them in); POST
 * /write {topic, value} writes a mailbox through tcpmq-out (value null clears it).
 */
function nodeRedFlows(mqttPort, recorderPort) {
  return [
    { id: 'tab', type: 'tab', label: 'fleet model' },
    mqttBrokerNode('mq', mqttPort, 'fleet-model-node-red'),
    {
      id: 'broker',
      type: 'tcpmq-broker',
      name: 'node-red',
      mode: 'fleet',
      share: 'mq',
      shareTopic: PREFIX,
      offlineAfter: OFFLINE_AFTER_S,
    },
    { id: 'in', type: 'tcpmq-in', z: 'tab', broker: 'broker', device: '', numbers: false, wires: [['stamp']] },
    {
      id: 'stamp',
      type: 'function',
      z: 'tab',
      func: [
        "let run = context.get('run');",
        "if (!run) { run = Date.now() + '-' + Math.floor(Math.random() * 1e9); context.set('run', run); }",
        "const seq = (context.get('seq') || 0) + 1;",
        "context.set('seq', seq);",
        'msg.payload = { run, seq, topic: msg.topic, payload: msg.payload, gateway: msg.gateway, want: msg.want };',
        "msg.headers = { 'content-type': 'application/json' };",
        'return msg;',
      ].join('\n'),
      wires: [['post']],
    },
    {
      id: 'post',
      type: 'http request',
      z: 'tab',
      method: 'POST',
      ret: 'txt',
      paytoqs: 'ignore',
      url: `http://127.0.0.1:${recorderPort}/report`,
      tls: '',
      persist: false,
      proxy: '',
      insecureHTTPParser: false,
      authType: '',
      senderr: false,
      headers: [],
      wires: [[]],
    },
    { id: 'write-in', type: 'http in', z: 'tab', url: '/write', method: 'post', upload: false, wires: [['write']] },
    {
      id: 'write',
      type: 'function',
      z: 'tab',
      outputs: 2,
      func: [
        'const { topic, value } = msg.payload;',
        "msg.payload = 'ok';",
        'return [{ topic, payload: value }, msg];',
      ].join('\n'),
      wires: [['out'], ['write-done']],
    },
    { id: 'out', type: 'tcpmq-out', z: 'tab', broker: 'broker', device: '', ttl: 0, wires: [] },
    { id: 'write-done', type: 'http response', z: 'tab', statusCode: '', headers: {}, wires: [] },
  ];
}

class FleetModel {
  /**
   * @param {{ seed: number, steps?: number, until?: number, defects?: boolean, log?: (line: string) => void }} options
   *   `steps`: how many steps at most; `until`: a time (ms) after which no step starts; `defects`: steps
   *   into the known defects too (KNOWN_DEFECTS).
   */
  constructor({
    seed,
    steps = Infinity,
    until = Infinity,
    defects = KNOWN_DEFECTS.length === 0,
    log = () => undefined,
  }) {
    this.seed = seed >>> 0;
    this.defects = defects;
    this.random = prng(this.seed);
    this.maxSteps = steps;
    this.until = until;
    this.say = log;
    this.stepNo = 0;
    this.history = [];
    /** Violations found by the MQTT and HTTP handlers, thrown at the next check. */
    this.found = [];
    this.cleanups = [];
    this.figures = noFigures();
    this.gateways = {};
    this.boards = {};
    /** Per command mailbox: the last counter written, the model's state (a counter, or null: empty). */
    this.commands = Object.fromEntries(
      COMMANDS.map((m) => [m, { counter: 0, state: null, cleared: false, pending: undefined }]),
    );
    /** Per gateway and command mailbox: the state every board there reads once the last write settled. */
    this.settled = {};
    /** Per reader and mailbox: the greatest counter it read. */
    this.readMax = new Map();
    /** Per mailbox topic: what MQTT carried, in order. */
    this.mq = new Map();
    /** Per gateway: the states it announced on MQTT, with the time they came. */
    this.gatewayStates = Object.fromEntries(GATEWAYS.map((g) => [g, []]));
    /** Node-RED: its start (index), when each start was spawned, the flow's run id of each start. */
    this.nr = {
      up: false,
      proc: undefined,
      index: 0,
      hearing: false,
      spawnedAt: 0,
      starts: new Map(),
      runs: new Map(),
    };
    /** Flow messages by Node-RED start (index): what the flow posted. */
    this.flow = new Map();
    this.rssSamples = Object.fromEntries(GATEWAYS.map((g) => [g, []]));
  }

  // ---- the run ----------------------------------------------------------------

  /** Runs the steps; throws a Violation naming the seed, the step and what came. Always cleans up. */
  async run() {
    this.say(`fleet model: seed ${this.seed}`);
    try {
      await this.start();
      while (this.figures.steps < this.maxSteps && Date.now() < this.until) {
        this.stepNo++;
        this.figures.steps++;
        const kind = this.choose(STEP_WEIGHTS);
        await this.step(kind);
        await this.settle();
      }
      this.checkMemoryGrowth();
      this.throwFound();
    } catch (err) {
      let failure = err;
      if (err instanceof Violation) this.figures.violations++;
      else {
        // With the seed, the step and the steps so far, as a violation's message.
        const { message } = this.violation(`the run could not go on: ${err.stack ?? err}`, 'no error', '');
        failure = new RunError(message);
      }
      // The figures so far go with it (bench/fleet-fuzz.js adds them up).
      throw Object.assign(failure, { figures: this.figures });
    } finally {
      await this.stop();
    }
    return this.figures;
  }

  async start() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpmq-fleet-model-'));
    this.cleanups.push(() => fs.rmSync(this.dir, { recursive: true, force: true }));
    this.mqttPort = await freePort();
    this.mosquitto = await ownChildren(() => startMosquitto(this.mqttPort, this.dir));
    this.cleanups.push(async () => {
      if (this.mosquitto.exitCode === null) this.mosquitto.kill();
      await withTimeout(this.mosquitto.exited, 3000);
    });
    await this.startRecorder();
    await this.startMqtt();
    for (const name of GATEWAYS) {
      const port = await freePort();
      this.gateways[name] = {
        name,
        port,
        up: false,
        starts: 0,
        proc: undefined,
        persist: path.join(this.dir, `${name}.json`),
      };
      this.settled[name] = Object.fromEntries(COMMANDS.map((m) => [m, null]));
    }
    this.cleanups.push(() => this.stopGateways());
    for (const [id, gateway] of BOARDS) this.boards[id] = this.board(id, gateway, false);
    for (const [gateway, id] of Object.entries(PROBES)) this.boards[id] = this.board(id, gateway, true);
    this.cleanups.push(() => {
      for (const board of Object.values(this.boards)) board.device?.close();
    });
    for (const name of GATEWAYS) await this.startGatewayProcess(name);
    this.userDir = linkedUserDir('tcpmq-fleet-model-', undefined, nodeRedFlows(this.mqttPort, this.recorderPort));
    this.cleanups.push(() => fs.rmSync(this.userDir, { recursive: true, force: true }));
    this.cleanups.push(async () => {
      const proc = this.nr.proc;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      if ((await withTimeout(proc.exited, 10000)) === 'timeout') proc.kill('SIGKILL');
    });
    await this.startNodeRed();
    this.log('started: hall-a, hall-b, mosquitto, node-red');
  }

  /** Everything this run started, stopped; temporary files removed. */
  async stop() {
    for (const cleanup of this.cleanups.reverse()) {
      try {
        await cleanup();
      } catch (err) {
        this.say(`fleet model: cleanup: ${err.message}`);
      }
    }
    this.cleanups = [];
  }

  board(id, gateway, probe) {
    return { id, gateway, probe, device: undefined, counter: 0, reports: new Map(), last: undefined };
  }

  /** The run's HTTP server: Node-RED's flow posts every tcpmq-in message here. */
  async startRecorder() {
    this.recorderPort = await freePort();
    this.recorder = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        res.end('ok');
        try {
          this.flowMessage(JSON.parse(body));
        } catch (err) {
          this.found.push(this.violation('a flow message the run cannot read', 'JSON', `${body} (${err.message})`));
        }
      });
    });
    await new Promise((resolve) => this.recorder.listen(this.recorderPort, '127.0.0.1', () => resolve(undefined)));
    this.cleanups.push(() => new Promise((resolve) => this.recorder.close(() => resolve())));
    this.cleanups.push(() => this.recorder.closeAllConnections?.());
  }

  /** The run's MQTT client: it records everything under the prefix, and publishes the /set writes. */
  async startMqtt() {
    this.client = mqtt.connect(`mqtt://127.0.0.1:${this.mqttPort}`, {
      clientId: `fleet-model-${process.pid}`,
      clean: true,
      reconnectPeriod: 500,
    });
    this.cleanups.push(() => new Promise((resolve) => this.client.end(true, {}, () => resolve())));
    this.client.on('message', (topic, payload) => {
      try {
        this.mqttMessage(topic, payload);
      } catch (err) {
        this.found.push(
          this.violation(`a message on ${topic} the run cannot read`, 'JSON', `${payload} (${err.message})`),
        );
      }
    });
    await new Promise((resolve, reject) => {
      this.client.once('connect', resolve);
      this.client.once('error', reject);
    });
    await this.client.subscribeAsync(`${PREFIX}/#`, { qos: 1 });
  }

  // ---- processes ----------------------------------------------------------------

  gatewayArgs(name) {
    const g = this.gateways[name];
    const args = ['--host', '127.0.0.1', '--port', String(g.port), '--mqtt', `mqtt://127.0.0.1:${this.mqttPort}`];
    args.push('--gateway', name, '--offline-after', String(OFFLINE_AFTER_S), '--publish-interval', '0');
    // idleTimeout 0: a board silent for many steps keeps its connection; any close but a restart's is wrong.
    args.push('--persist', g.persist, '--idle-timeout', '0');
    if (name === 'hall-a') args.push('--ha-discovery');
    return args;
  }

  /**
   * Starts gateway `name`; resolves once it is in step with the fleet: it announces itself online only
   * after every retained message came in (docs/PROTOCOL.md, sharing: a restart reconciles first).
   *
   * Modelled gap: a gateway's boards make no request from its stop until it is in step again. Until then
   * it serves what persist kept (None, or an older write than MQTT holds) by design: a reply never waits
   * on MQTT. From then on it must serve what the model holds.
   */
  async startGatewayProcess(name) {
    const g = this.gateways[name];
    const spawnedAt = Date.now();
    g.proc = await ownChildren(() => startGateway(this.gatewayArgs(name), { ready: /MQTT connected/, ms: 15000 }));
    await this.waitFor(
      () => this.gatewayStates[name].some((s) => s.online && s.at >= spawnedAt),
      () => `${name} to announce itself online on MQTT after its start; its output:\n${g.proc.output.slice(-2000)}`,
      10000,
    );
    g.up = true;
    g.starts++;
    g.spawnedAt = spawnedAt;
  }

  /** Stops gateway `name` with `signal`; checks that its processes are all gone and that the fleet hears it. */
  async stopGatewayProcess(name, signal) {
    const g = this.gateways[name];
    const proc = g.proc;
    const tree = processTree(proc.pid);
    const killedAt = Date.now();
    g.up = false;
    proc.kill(signal);
    const code = await withTimeout(proc.exited, 6000);
    // The gateway's boards lose their connection: modelled, they connect again at their next request.
    for (const board of Object.values(this.boards)) {
      if (board.gateway !== name || !board.device) continue;
      board.device.close();
      board.device = undefined;
    }
    if (code === 'timeout') {
      proc.kill('SIGKILL');
      await proc.exited;
      throw this.violation(`${name} did not exit on ${signal}`, 'an exit within 6 s', 'still running');
    }
    if (signal === 'SIGTERM' && code !== 0)
      throw this.violation(`${name} on SIGTERM`, 'exit code 0', `${code}; output:\n${proc.output.slice(-1500)}`);
    const left = [];
    await waitFor(() => tree.every((pid) => !alive(pid)), 'x', 3000).catch(() => {
      left.push(...tree.filter(alive));
    });
    if (left.length > 0) {
      for (const pid of left) process.kill(pid, 'SIGKILL');
      throw this.violation(
        `${signal} of ${name}'s PID ${proc.pid} left processes behind`,
        `every process of the gateway gone (${tree.join(', ')})`,
        `still running: ${left.join(', ')}`,
      );
    }
    // Its will (SIGKILL) or its stop (SIGTERM) says offline; the other gateway then owns what it held.
    await this.waitFor(
      () => this.gatewayStates[name].some((s) => !s.online && s.at >= killedAt),
      `${name}'s state to say offline after its ${signal}`,
      10000,
    );
  }

  /** The command mailboxes in gateway `name`'s persist file, for the log. */
  persisted(name) {
    try {
      const snapshot = JSON.parse(fs.readFileSync(this.gateways[name].persist, 'utf8'));
      const held = snapshot.mailboxes.filter((m) => COMMANDS.includes(m.id));
      return held.map((m) => `${m.value} (writtenAt ${m.writtenAt})`).join(', ') || 'no command mailbox';
    } catch (err) {
      return `nothing readable (${err.code ?? err.message})`;
    }
  }

  async stopGateways() {
    for (const g of Object.values(this.gateways)) {
      const proc = g.proc;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) continue;
      const tree = processTree(proc.pid);
      proc.kill('SIGTERM');
      if ((await withTimeout(proc.exited, 6000)) === 'timeout') proc.kill('SIGKILL');
      await withTimeout(proc.exited, 3000);
      // Its worker follows the holder out (it sees the channel close): given a moment before it counts as left.
      await waitFor(() => tree.filter(alive).length === 0, 'the process tree to go', 1000).catch(() => undefined);
      for (const pid of tree.filter(alive)) {
        this.say(`fleet model: ${g.name}'s process ${pid} outlived its stop; killed`);
        process.kill(pid, 'SIGKILL');
      }
    }
  }

  /**
   * Starts Node-RED; resolves once its flow hears. `early`: a mailbox the flow writes at once, before its
   * fleet is in step (the write waits until it is: docs/PROTOCOL.md, sharing).
   */
  async startNodeRed(early = undefined) {
    this.nr.spawnedAt = Date.now();
    this.nr.index++;
    this.nr.starts.set(this.nr.index, this.nr.spawnedAt);
    this.nr.proc = await ownChildren(() => startNodeRed(this.userDir, { ready: /Started flows/ }));
    this.nr.up = true;
    if (early) {
      this.figures.earlyFlowWrites++;
      this.log(`  node-red's flow writes at once, before it is in step:`);
      await this.write(early, 'flow', false);
    }
    // The flow hears once it is subscribed: a probe reports until the new run posts it. Reports before that
    // may or may not reach the flow; none made before this start may.
    const index = this.nr.index;
    let k = 0;
    await this.waitFor(
      async () => {
        const up = GATEWAYS.filter((g) => this.gateways[g].up);
        const gateway = up[k++ % up.length];
        await this.report(this.boards[PROBES[gateway]], 'cmd');
        await every(100);
        return (this.flow.get(index)?.length ?? 0) > 0;
      },
      () => `the flow of Node-RED start ${index} to hear a report; its output:\n${this.nr.proc.output.slice(-2000)}`,
      20000,
    );
    this.nr.hearing = true;
  }

  async stopNodeRed(signal) {
    this.nr.up = false;
    this.nr.hearing = false;
    const proc = this.nr.proc;
    const code = await withTimeout(stopNodeRed(proc, signal), 20000);
    if (code === 'timeout') {
      proc.kill('SIGKILL');
      await proc.exited;
    }
  }

  // ---- steps ----------------------------------------------------------------------

  /** A weighted choice among the steps that make sense now. */
  choose(weights) {
    const options = Object.keys(weights).filter((kind) => this.possible(kind));
    const total = options.reduce((sum, kind) => sum + weights[kind], 0);
    let at = this.random() * total;
    for (const kind of options) {
      at -= weights[kind];
      if (at < 0) return kind;
    }
    return options[options.length - 1];
  }

  possible(kind) {
    const live = COMMANDS.some((m) => this.commands[m].state !== null);
    const allUp = GATEWAYS.every((g) => this.gateways[g].up);
    // Without `defects`, the steps stay out of the defects once found (KNOWN_DEFECTS, none at present):
    // this gate kept a clear while a gateway was down, and a gateway restart while a mailbox was cleared, out.
    const cleared = COMMANDS.some((m) => this.commands[m].cleared);
    switch (kind) {
      case 'report':
        return this.boardsUp().length > 0;
      case 'clear':
        return live && (this.defects || allUp);
      case 'flow-write':
        return this.nr.up;
      case 'flow-clear':
        return this.nr.up && live && (this.defects || allUp);
      case 'gateway-sigkill':
      case 'gateway-sigterm':
        return allUp && (this.defects || !cleared);
      default:
        return true;
    }
  }

  pick(items) {
    return items[Math.floor(this.random() * items.length)];
  }

  boardsUp() {
    return BOARDS.map(([id]) => this.boards[id]).filter((b) => this.gateways[b.gateway].up);
  }

  async step(kind) {
    this.figures.kinds[kind]++;
    switch (kind) {
      case 'report': {
        const board = this.pick(this.boardsUp());
        const want = this.pick([...COMMANDS, ...BOARDS.map(([id]) => id)]);
        const reply = await this.report(board, want);
        this.log(`report ${board.id} ${board.id}:${board.counter} (reads ${want}) -> ${reply}`);
        await this.settleReport(board);
        return;
      }
      case 'set':
      case 'flow-write': {
        const mailbox = this.pick(COMMANDS);
        await this.write(mailbox, kind === 'set' ? 'set' : 'flow', false);
        return;
      }
      case 'clear':
      case 'flow-clear': {
        const mailbox = this.pick(COMMANDS.filter((m) => this.commands[m].state !== null));
        await this.write(mailbox, kind === 'clear' ? 'set' : 'flow', true);
        return;
      }
      case 'gateway-sigkill':
      case 'gateway-sigterm':
        await this.restartGateway(this.pick(GATEWAYS), kind === 'gateway-sigkill' ? 'SIGKILL' : 'SIGTERM');
        return;
      case 'node-red-sigterm':
      case 'node-red-sigkill':
        await this.restartNodeRed(kind === 'node-red-sigkill' ? 'SIGKILL' : 'SIGTERM');
        return;
      default:
        throw new Error(`no step ${kind}`);
    }
  }

  async restartGateway(name, signal) {
    await this.stopGatewayProcess(name, signal);
    this.log(`${signal} ${name}: its state says offline; its persist holds ${this.persisted(name)}`);
    // A few steps while it is down: the other gateway owns what it held (its state says offline).
    const count = Math.floor(this.random() * 3);
    for (let i = 0; i < count; i++) {
      const kind = this.choose(WHILE_DOWN_WEIGHTS);
      this.figures.whileDown++;
      this.log(`  while ${name} is down:`);
      await this.step(kind);
    }
    await this.startGatewayProcess(name);
    this.log(`${name} started again, in step (announced online)`);
    await this.settleRestart(name);
  }

  async restartNodeRed(signal) {
    await this.stopNodeRed(signal);
    this.log(`${signal} node-red`);
    const count = Math.floor(this.random() * 3);
    for (let i = 0; i < count; i++) {
      const board = this.pick(this.boardsUp());
      const want = this.pick([...COMMANDS, ...BOARDS.map(([id]) => id)]);
      const reply = await this.report(board, want);
      this.log(`  while node-red is down: report ${board.id}:${board.counter} (reads ${want}) -> ${reply}`);
      await this.settleReport(board);
    }
    await this.startNodeRed(this.random() < 0.5 ? this.pick(COMMANDS) : undefined);
    this.log(`node-red started again (start ${this.nr.index}), its flow hears`);
  }

  // ---- boards ---------------------------------------------------------------------

  /**
   * Board `board` sends `[id, want, "<id>:<n+1>"]` and reads the reply, which is checked against the model.
   * `settling`: what a settle waits for may also be read (the write before it, or the new one).
   */
  async report(board, want, settling) {
    const g = this.gateways[board.gateway];
    if (!g.up) throw new Error(`board ${board.id} reports while ${board.gateway} is down`);
    if (board.device?.closed) {
      const { error } = board.device;
      board.device = undefined;
      throw this.violation(
        `board ${board.id}'s connection to ${board.gateway} closed while the gateway ran`,
        'the connection open (idleTimeout 0, no restart since it connected)',
        `closed${error ? `: ${error.message}` : ''}`,
      );
    }
    if (!board.device) {
      try {
        board.device = await Device.connect(g.port);
      } catch (err) {
        throw this.violation(`board ${board.id} cannot connect to ${board.gateway}`, 'a connection', err.message);
      }
    }
    const n = ++board.counter;
    const report = { n, sentAt: Date.now(), replyAt: 0, start: g.starts, nrIndex: this.nr.hearing ? this.nr.index : 0 };
    board.reports.set(n, report);
    const before = board.last;
    board.last = report;
    let reply;
    try {
      reply = await board.device.request(JSON.stringify([board.id, want, `${board.id}:${n}`]), 5000);
    } catch (err) {
      throw this.violation(`board ${board.id} on ${board.gateway}: a reply to its report ${n}`, 'a reply', err.message);
    }
    report.replyAt = Date.now();
    report.before = before;
    this.figures.reports++;
    this.figures.reads++;
    this.checkRead(board, want, reply, report, settling);
    return reply;
  }

  /** Whether board `b` is alive: it has reported since its gateway last started, and that gateway runs. */
  alive(b) {
    const g = this.gateways[b.gateway];
    return b.last !== undefined && g.up && b.last.start === g.starts && b.last.replyAt > 0;
  }

  /** Checks what `reader` read of `want` against the model. */
  checkRead(reader, want, reply, { sentAt, replyAt }, settling) {
    const G = reader.gateway;
    const got = parseValue(reply);
    const where = `board ${reader.id} on ${G} read mailbox ${want}`;
    if (got === undefined || (got !== null && got.mailbox !== want))
      throw this.violation(where, `None or a value ${want}:<n>`, reply, [want]);
    if (COMMANDS.includes(want)) {
      // Once a write settled, every gateway serves it until the next write or clear settles.
      const settled = this.settled[G][want];
      const allowed = [settled];
      if (settling?.mailbox === want) allowed.push(settling.next);
      const n = got === null ? null : got.n;
      if (!allowed.includes(n)) {
        const latest = this.commands[want].state;
        throw this.violation(
          where,
          allowed.map((a) => shown(want, a)).join(' or ') + ` (the model's latest: ${shown(want, latest)})`,
          reply,
          [want],
        );
      }
    } else {
      const b = this.boards[want];
      const last = b.last;
      if (got !== null) {
        const report = b.reports.get(got.n);
        const allowed = [last?.n];
        if (settling?.mailbox === want && settling.before) allowed.push(settling.before.n);
        if (!report || !allowed.includes(got.n))
          throw this.violation(where, `${allowed.map((a) => shown(want, a)).join(' or ')} or None`, reply, [want]);
        if (sentAt > report.replyAt + STALE_AFTER_MS)
          throw this.violation(
            `${where}: news served after offlineAfter (${OFFLINE_AFTER_S} s)`,
            `None: ${want} reported ${got.n} ${sentAt - report.sentAt} ms before`,
            reply,
            [want],
          );
      } else {
        // A board's news must be served while the board is alive and reported within offlineAfter; during
        // the settle of its report, None only if nothing of it was served before.
        const fresh = last && replyAt < last.sentAt + FRESH_WITHIN_MS;
        const emptyBefore = settling?.mailbox === want && settling.emptyBefore;
        if (this.alive(b) && fresh && !emptyBefore)
          throw this.violation(
            where,
            `${shown(want, last.n)}: ${want} is alive on ${b.gateway} and reported ${replyAt - last.sentAt} ms before`,
            reply,
            [want],
          );
      }
    }
    // What one reader reads never goes back.
    if (got !== null) {
      const key = `${reader.id}|${want}`;
      const max = this.readMax.get(key);
      if (max !== undefined && got.n < max)
        throw this.violation(`${where}: older than what it read before`, `${want}:${max} or later`, reply, [want]);
      this.readMax.set(key, got.n);
    }
  }

  // ---- writes -----------------------------------------------------------------------

  /** The gateway that takes a /set of `mailbox` now: the holder of its retained write if online, else the least online name. */
  expectedOwner(mailbox) {
    const online = GATEWAYS.filter((g) => this.gatewayOnline(g));
    const last = this.mq
      .get(mailbox)
      ?.filter((m) => m.n !== undefined || m.empty)
      .at(-1);
    if (last && !last.empty && online.includes(last.gateway)) return last.gateway;
    return online.sort()[0];
  }

  gatewayOnline(name) {
    return this.gatewayStates[name].at(-1)?.online === true;
  }

  /** A /set (`by` 'set') or a flow write (`by` 'flow') of a command mailbox, or a clear; then its settle. */
  async write(mailbox, by, clear) {
    const command = this.commands[mailbox];
    const n = clear ? null : ++command.counter;
    const owner = this.expectedOwner(mailbox);
    command.pending = { n, owner, clear, by, emptyBefore: command.state === null };
    const before = command.state;
    command.state = n;
    command.cleared = clear;
    const value = clear ? null : `${mailbox}:${n}`;
    if (by === 'set') {
      await this.client.publishAsync(`${PREFIX}/mailbox/${mailbox}/set`, value ?? '', { qos: 1 });
    } else {
      const response = await fetch(`http://127.0.0.1:${this.nr.proc.editorPort}/write`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topic: mailbox, value }),
      });
      if (!response.ok) throw new Error(`the flow's write of ${mailbox}: HTTP ${response.status}`);
    }
    if (clear) this.figures.clears++;
    else this.figures.writes++;
    this.log(
      `${by === 'set' ? '/set' : 'flow'} ${clear ? 'clears' : 'writes'} ${shown(mailbox, n)} (was ${shown(mailbox, before)}; owner ${owner ?? 'none'})`,
    );
    await this.settleWrite(mailbox, n);
    command.pending = undefined;
  }

  // ---- settles ----------------------------------------------------------------------

  /** A write settles: its owner publishes it, and every gateway up serves it (a probe reads it there). */
  async settleWrite(mailbox, n) {
    await this.waitFor(
      () => {
        const last = this.mq.get(mailbox)?.at(-1);
        return n === null ? last?.empty === true : last?.n === n;
      },
      () => `${shown(mailbox, n)} on MQTT (its retained mailbox topic), published by its owner`,
      SETTLE_MS,
      [mailbox],
    );
    for (const name of GATEWAYS) {
      if (!this.gateways[name].up) continue;
      const probe = this.boards[PROBES[name]];
      let reply;
      await this.waitFor(
        async () => {
          reply = await this.report(probe, mailbox, { mailbox, next: n });
          return parseValue(reply)?.n === n || (n === null && reply === 'None');
        },
        () => `${name} to serve ${shown(mailbox, n)} (its probe read ${reply})`,
        SETTLE_MS,
        [mailbox],
        20,
      );
      this.settled[name][mailbox] = n;
    }
  }

  /** A report settles: its gateway publishes it, and every other gateway up serves it. */
  async settleReport(board) {
    const report = board.last;
    await this.waitFor(
      () => this.mq.get(board.id)?.at(-1)?.n === report.n,
      () => `${board.id}:${report.n} on MQTT, published by ${board.gateway}`,
      SETTLE_MS,
      [board.id],
    );
    // Until the new report comes, another gateway may serve the one before it while that one is not past
    // offlineAfter (also after a restart of the board's gateway: a gateway that started since took it in
    // from MQTT); it must while the board was alive (no restart of its gateway since) and it is fresh.
    const before = report.before;
    const now = Date.now();
    const mayServeBefore = before && now < before.replyAt + STALE_AFTER_MS;
    const mustServeBefore = before?.start === report.start && now < before.sentAt + FRESH_WITHIN_MS;
    for (const name of GATEWAYS) {
      if (name === board.gateway || !this.gateways[name].up) continue;
      const probe = this.boards[PROBES[name]];
      const settling = {
        mailbox: board.id,
        before: mayServeBefore ? before : undefined,
        emptyBefore: !mustServeBefore,
      };
      let reply;
      await this.waitFor(
        async () => {
          reply = await this.report(probe, board.id, settling);
          return parseValue(reply)?.n === report.n;
        },
        () => `${name} to serve ${board.id}:${report.n} (its probe read ${reply})`,
        SETTLE_MS,
        [board.id],
        20,
      );
    }
  }

  /**
   * A gateway back and in step serves what the model holds at once: every command mailbox's latest state
   * (taken in from MQTT while it reconciled, or kept by persist), every board's news as checkRead() allows.
   */
  async settleRestart(name) {
    const probe = this.boards[PROBES[name]];
    for (const mailbox of COMMANDS) {
      this.settled[name][mailbox] = this.commands[mailbox].state;
      const reply = await this.report(probe, mailbox);
      this.log(`  ${name}'s probe reads ${mailbox} -> ${reply}`);
    }
    for (const [id] of BOARDS) {
      const reply = await this.report(probe, id);
      this.log(`  ${name}'s probe reads ${id} -> ${reply}`);
    }
  }

  /**
   * After each step: every report made while the flow hears has reached it once, in order; nothing the
   * handlers found; the gateways' memory and persist files within bounds.
   */
  async settle() {
    this.throwFound();
    if (this.nr.hearing) {
      const index = this.nr.index;
      const expected = [];
      for (const board of Object.values(this.boards))
        for (const report of board.reports.values())
          if (report.nrIndex === index) expected.push(`${board.id}:${report.n}`);
      await this.waitFor(
        () => {
          const heard = new Set((this.flow.get(index) ?? []).map((m) => m.payload));
          return expected.every((value) => heard.has(value));
        },
        () => {
          const heard = new Set((this.flow.get(index) ?? []).map((m) => m.payload));
          return `every report made while the flow hears to reach it; missing: ${expected.filter((v) => !heard.has(v)).join(', ')}`;
        },
        8000,
      );
      await this.waitFor(
        () => {
          const seqs = (this.flow.get(index) ?? []).map((m) => m.seq);
          return seqs.length === 0 || Math.max(...seqs) === seqs.length;
        },
        'every flow message posted (sequence numbers without a gap)',
        5000,
      );
    }
    this.checkFlowOrder();
    this.checkMemory();
    this.throwFound();
  }

  // ---- what MQTT and the flow bring ------------------------------------------------------

  mqttMessage(topic, payload) {
    const levels = topic.split('/');
    if (levels[0] !== PREFIX) return;
    if (levels[1] === 'gateway' && levels.length === 3) {
      if (payload.length === 0) return;
      const state = JSON.parse(payload.toString('utf8'));
      this.gatewayStates[levels[2]]?.push({
        online: state.online === true,
        at: Date.now(),
        startedAt: state.startedAt,
      });
      return;
    }
    if (levels[1] !== 'mailbox' || levels.length !== 3) return;
    this.figures.mqttMailboxMessages++;
    const id = levels[2];
    const history = this.mq.get(id) ?? [];
    this.mq.set(id, history);
    const previous = history.filter((m) => m.n !== undefined || m.empty).at(-1);
    if (payload.length === 0) {
      history.push({ empty: true, at: Date.now(), text: '' });
      const pending = this.commands[id]?.pending;
      // Emptied only by its owner, for a clear (no eviction here: the tables are far from full).
      if (!pending?.clear)
        this.found.push(
          this.violation(
            `an empty retained message on ${PREFIX}/mailbox/${id}`,
            COMMANDS.includes(id)
              ? `no empty message: the model's latest is ${shown(id, this.commands[id].state)}`
              : "none: a board's news is never emptied",
            'an empty message',
            [id],
          ),
        );
      return;
    }
    const text = payload.toString('utf8');
    const shared = JSON.parse(text);
    const value = typeof shared.value === 'string' ? parseValue(shared.value) : undefined;
    const entry = { n: value?.n, gateway: shared.gateway, writtenAt: shared.writtenAt, at: Date.now(), text };
    history.push(entry);
    const fail = (what, expected) =>
      this.found.push(this.violation(`${PREFIX}/mailbox/${id}: ${what}`, expected, text, [id]));
    if (!value || value.mailbox !== id) return fail("a value that is not this mailbox's", `${id}:<n>`);
    const written = COMMANDS.includes(id) ? this.commands[id].counter : this.boards[id]?.counter;
    if (written === undefined || value.n > written) return fail('a value nobody wrote', `at most ${id}:${written}`);
    if (previous?.empty) {
      // After a clear only a later write: a value from before it coming back is a write going back.
      const clearedAfter =
        history
          .filter((m) => m.n !== undefined)
          .slice(0, -1)
          .at(-1)?.n ?? 0;
      if (value.n <= clearedAfter)
        return fail(
          'a value written before its clear came back',
          `a write after the clear (after ${id}:${clearedAfter})`,
        );
    } else if (previous) {
      const later =
        shared.writtenAt > previous.writtenAt ||
        (shared.writtenAt === previous.writtenAt && shared.gateway > previous.gateway);
      const same = shared.writtenAt === previous.writtenAt && shared.gateway === previous.gateway;
      if (value.n < previous.n) return fail('went back', `${id}:${previous.n} or later`);
      if (same && value.n === previous.n) this.figures.republished++;
      else if (!later)
        return fail(
          "a write not after the one before it in the fleet's order",
          `writtenAt after ${previous.writtenAt} (or equal, gateway after ${previous.gateway})`,
        );
    }
    // One writer per retained topic: a board's gateway for its news; for a command mailbox, its owner.
    if (this.boards[id] && shared.gateway !== this.boards[id].gateway)
      return fail("published by another gateway than the board's", `gateway ${this.boards[id].gateway}`);
    const pending = this.commands[id]?.pending;
    if (pending && pending.n === value.n && pending.owner !== undefined && shared.gateway !== pending.owner)
      return fail('a /set taken by a gateway that does not own the mailbox', `gateway ${pending.owner}`);
  }

  flowMessage(message) {
    this.figures.flowMessages++;
    const { run, seq, topic, payload, gateway } = message;
    // The start a message comes from: its run id (a post may come in late, after its Node-RED was stopped).
    let index = [...this.nr.runs].find(([, id]) => id === run)?.[0];
    if (index === undefined) {
      index = this.nr.index;
      if (!this.nr.up || this.nr.runs.has(index)) {
        this.found.push(
          this.violation(
            `a flow message of a run Node-RED start ${index} did not have`,
            this.nr.runs.get(index),
            JSON.stringify(message),
          ),
        );
        return;
      }
      this.nr.runs.set(index, run);
    }
    const messages = this.flow.get(index) ?? [];
    this.flow.set(index, messages);
    messages.push({ seq, topic: String(topic), payload, gateway, at: Date.now() });
    const fail = (what, expected) =>
      this.found.push(
        this.violation(`flow message ${seq} of Node-RED start ${index}: ${what}`, expected, JSON.stringify(message)),
      );
    const value = typeof payload === 'string' ? parseValue(payload) : undefined;
    const board = this.boards[String(topic)];
    if (!value || !board || value.mailbox !== board.id)
      return fail('not a report of a board', '<board>:<n> from that board');
    const report = board.reports.get(value.n);
    if (!report) return fail('a report nobody made', `at most ${board.id}:${board.counter}`);
    if (gateway !== board.gateway) return fail('the wrong gateway', `msg.gateway ${board.gateway}`);
    // A retained message is state, not news: a report made before this Node-RED started never reaches its flow.
    const spawnedAt = this.nr.starts.get(index);
    if (report.sentAt < spawnedAt)
      return fail(
        'a report made before this Node-RED started',
        `only reports made after its start (this one ${spawnedAt - report.sentAt} ms before)`,
      );
    if (messages.filter((m) => m.payload === payload).length > 1) return fail('repeated', 'each report once');
  }

  /** Per Node-RED start and device, the flow's messages in the order it heard them: counters strictly increase. */
  checkFlowOrder() {
    for (const [index, messages] of this.flow) {
      const sorted = [...messages].sort((a, b) => a.seq - b.seq);
      const last = new Map();
      for (const m of sorted) {
        const n = parseValue(m.payload)?.n;
        const before = last.get(m.topic);
        if (before !== undefined && n <= before.n)
          this.found.push(
            this.violation(
              `the flow of Node-RED start ${index} heard ${m.topic}'s reports out of order`,
              `after ${m.topic}:${before.n} (message ${before.seq}) a later report`,
              `${m.payload} (message ${m.seq})`,
            ),
          );
        last.set(m.topic, { n, seq: m.seq });
      }
    }
  }

  /** Every gateway process under the bound now; persist files small. */
  checkMemory() {
    for (const name of GATEWAYS) {
      const g = this.gateways[name];
      if (!g.up) continue;
      const tree = processTree(g.proc.pid);
      const sizes = tree.map((pid) => [pid, rssKb(pid)]).filter(([, kb]) => kb !== undefined);
      const total = sizes.reduce((sum, [, kb]) => sum + kb, 0);
      this.rssSamples[name].push(total);
      for (const [pid, kb] of sizes) {
        this.figures.maxRssKb = Math.max(this.figures.maxRssKb, kb);
        if (kb > RSS_BOUND_KB)
          this.found.push(
            this.violation(
              `${name}'s process ${pid} uses ${Math.round(kb / 1024)} MB`,
              `under ${RSS_BOUND_KB / 1024} MB`,
              `${kb} kB`,
            ),
          );
      }
      const size = fs.existsSync(g.persist) ? fs.statSync(g.persist).size : 0;
      if (size > PERSIST_BOUND_BYTES)
        this.found.push(
          this.violation(`${name}'s persist file`, `under ${PERSIST_BOUND_BYTES} bytes`, `${size} bytes`),
        );
    }
  }

  /** Over a long enough run, the gateways' memory at the end is not far above where it was early on. */
  checkMemoryGrowth() {
    for (const name of GATEWAYS) {
      const samples = this.rssSamples[name];
      if (samples.length < 20) continue;
      const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      const early = median(samples.slice(2, 10));
      const late = median(samples.slice(-8));
      if (late > early + RSS_GROWTH_KB)
        this.found.push(
          this.violation(
            `${name}'s memory grows across the run`,
            `at most ${RSS_GROWTH_KB / 1024} MB above ${Math.round(early / 1024)} MB (early median)`,
            `${Math.round(late / 1024)} MB (late median); samples ${samples.map((kb) => Math.round(kb / 1024)).join(' ')}`,
          ),
        );
    }
  }

  // ---- reporting ---------------------------------------------------------------------------

  log(line) {
    this.history.push(`#${this.stepNo} ${line}`);
  }

  throwFound() {
    if (this.found.length > 0) throw this.found[0];
  }

  /** Waits on `check` (which may report a step's reads); fails as a Violation, with what MQTT holds of `mailboxes`. */
  async waitFor(check, what, ms, mailboxes = [], pollMs = 10) {
    const until = Date.now() + ms;
    for (;;) {
      this.throwFound();
      if (await check()) return;
      if (Date.now() > until)
        throw this.violation(
          `timed out after ${ms} ms`,
          typeof what === 'function' ? what() : what,
          'nothing',
          mailboxes,
        );
      await sleep(pollMs);
    }
  }

  /** A violation: the seed, the step, what was expected and what came, what MQTT carried, the steps so far. */
  violation(what, expected, came, mailboxes = []) {
    const lines = [
      `fleet model, seed ${this.seed}, step ${this.stepNo}: ${what}`,
      `  expected: ${expected}`,
      `  came:     ${came}`,
    ];
    for (const mailbox of mailboxes) {
      const history = (this.mq.get(mailbox) ?? []).slice(-6);
      lines.push(`  ${PREFIX}/mailbox/${mailbox} on MQTT, latest last:`);
      for (const m of history) lines.push(`    ${m.empty ? '(empty)' : m.text}`);
    }
    lines.push(
      '  gateways seen on MQTT (latest): ' +
        GATEWAYS.map((g) => `${g} ${this.gatewayOnline(g) ? 'online' : 'offline'}`).join(', '),
    );
    lines.push('steps so far:', ...this.history.slice(-40).map((line) => `  ${line}`));
    lines.push(
      `replay: ${this.defects ? 'FLEET_MODEL_DEFECTS=1 ' : ''}FLEET_MODEL_SEED=${this.seed} FLEET_MODEL_STEPS=${this.stepNo} ` +
        'npx mocha --no-config --exit --timeout 300000 test/e2e/fleet-model.test.js',
    );
    return new Violation(lines.join('\n'));
  }
}

/**
 * Runs the model once with `options` (see FleetModel); resolves with its figures, rejects with a Violation
 * (which carries the figures so far). `onStart` is handed the model first (to stop it early: `until = 0`).
 *
 * @param {ConstructorParameters<typeof FleetModel>[0] & { onStart?: (model: FleetModel) => void }} options
 */
function runFleetModel(options) {
  const model = new FleetModel(options);
  options.onStart?.(model);
  return model.run();
}

module.exports = {
  FleetModel,
  runFleetModel,
  randomSeed,
  noFigures,
  Violation,
  RunError,
  STEP_WEIGHTS,
  KNOWN_DEFECTS,
};

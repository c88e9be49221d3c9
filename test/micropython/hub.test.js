'use strict';
// The ESP32 hub (examples/micropython/hub) in a real MicroPython, started by its own
// main.py: the unix port from ../shared/tools (beside the checkout) with a roomy heap,
// and the 32-bit build (objects the size they are on an ESP32) in the 96 KB heap a
// plain ESP32 has room for. test/micropython/hub_net_standin.py stands in for the
// board's Wi-Fi and clock. Each hub gets its own hub_config.py on a free loopback
// port; its boards are real sockets, its fleet a real mosquitto.
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const mqtt = require('mqtt');
const { Device, every, freePort, skipWithout, vectorSuite, waitFor } = require('../support');
const { needMosquitto, startMosquitto } = require('../e2e/mosquitto');

const ROOT = path.join(__dirname, '..', '..');
const TOOLS = path.join(ROOT, '..', 'shared', 'tools');
const MICROPYTHON = process.env.MICROPYTHON || path.join(TOOLS, 'micropython');
const MICROPYTHON32 = process.env.MICROPYTHON32 || path.join(TOOLS, 'micropython32');
/** The VMs the whole suite runs on. */
const VMS = [
  { name: "MicroPython's unix port", binary: MICROPYTHON, heap: '256K' },
  { name: 'MicroPython 32-bit in a 96 KB heap, as on a plain ESP32', binary: MICROPYTHON32, heap: '96K' },
];
const HUB_DIR = path.join(ROOT, 'examples', 'micropython', 'hub');
const CLIENT_DIR = path.join(ROOT, 'examples', 'micropython');
const STANDIN = path.join(__dirname, 'hub_net_standin.py');

/** A setting as Python source: hub_config.py is Python. */
function pythonValue(value) {
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (typeof value === 'number') return String(value);
  return JSON.stringify(String(value)); // a JSON string is a Python string literal
}

/** The hub running in MicroPython, its console kept line by line. */
class HubProcess {
  static async start(vm, settings = {}) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpmq-hub-'));
    const port = settings.PORT ?? (await freePort());
    const config = { HOST: '127.0.0.1', PORT: port, ...settings };
    const lines = Object.entries(config).map(([name, value]) => `${name} = ${pythonValue(value)}\n`);
    fs.writeFileSync(path.join(dir, 'hub_config.py'), lines.join(''));
    fs.copyFileSync(STANDIN, path.join(dir, 'hub_net.py'));
    // main.py as a board runs it; hub_config.py and the stand-in hub_net.py come first on the path.
    const boot = `import sys; sys.path.append(${JSON.stringify(HUB_DIR)}); import main`;
    const child = spawn(vm.binary, ['-X', `heapsize=${vm.heap}`, '-c', boot], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const hub = new HubProcess(child, dir, port);
    await hub.waitForLine(/listening on/, 10000);
    return hub;
  }

  constructor(child, dir, port) {
    this.child = child;
    this.dir = dir;
    this.port = port;
    /** @type {string | undefined} its name in the fleet (GATEWAY), when the test gave one */
    this.gateway = undefined;
    this.lines = [];
    this.exited = new Promise((resolve) => child.on('exit', resolve));
    this.exitCode = undefined;
    this.exited.then((code) => (this.exitCode = code));
    let pending = '';
    const take = (text) => {
      pending += text;
      let newline;
      while ((newline = pending.indexOf('\n')) >= 0) {
        this.lines.push(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
      }
    };
    child.stdout.setEncoding('utf8').on('data', take);
    child.stderr.setEncoding('utf8').on('data', take);
  }

  /** The first console line from index `from` on that matches `pattern` (its match). */
  async waitForLine(pattern, ms = 5000, from = 0) {
    /** @type {RegExpMatchArray | null | undefined} */
    let match;
    await waitFor(
      () => {
        if (this.exitCode !== undefined) throw new Error(`the hub exited (${this.exitCode}):\n${this.console()}`);
        for (let i = from; i < this.lines.length && !match; i++) match = this.lines[i].match(pattern);
        return Boolean(match);
      },
      () => `a console line matching ${pattern}; the console:\n${this.console()}`,
      ms,
    );
    return match;
  }

  console() {
    return this.lines.slice(-40).join('\n');
  }

  /** Requests so far and free heap (after gc.collect()) on the next status line from now. */
  async nextStatus() {
    const match = await this.waitForLine(/status: .*, (\d+) requests, .* heap (\d+) free/, 5000, this.lines.length);
    return { requests: Number(match[1]), heap: Number(match[2]) };
  }

  connect() {
    return Device.connect(this.port);
  }

  async stop(signal = 'SIGTERM') {
    if (this.exitCode === undefined) {
      this.child.kill(signal);
      await this.exited;
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The 99th percentile of `values`. */
function p99(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)];
}

for (const vm of VMS) hubSuite(vm);

/** @param {{ name: string, binary: string, heap: string }} vm */
function hubSuite(vm) {
  describe(`TCPMQ hub (examples/micropython/hub) in ${vm.name}`, function () {
    this.timeout(30000);
    const hubs = [];
    const devices = [];

    before(function () {
      if (!fs.existsSync(vm.binary)) {
        skipWithout(this, `${vm.name} (${path.relative(ROOT, vm.binary)})`, 'CI has it in ../shared/tools');
      }
    });

    afterEach(async function () {
      for (const device of devices.splice(0)) device.close();
      await Promise.all(hubs.splice(0).map((hub) => hub.stop()));
    });

    async function startHub(settings) {
      const hub = await HubProcess.start(vm, settings);
      hub.gateway = settings?.GATEWAY; // its name in the fleet, when it has one
      hubs.push(hub);
      return hub;
    }

    async function connect(hub) {
      const device = await hub.connect();
      devices.push(device);
      return device;
    }

    /** Runs a MicroPython script of the test's own (a board's client) on this VM: its exit code and output. */
    function runMicroPython(script) {
      return new Promise((resolve, reject) => {
        const child = spawn(vm.binary, ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
        let text = '';
        child.stdout.on('data', (chunk) => (text += chunk));
        child.stderr.on('data', (chunk) => (text += chunk));
        const timer = setTimeout(() => child.kill('SIGKILL'), 20000);
        child.on('error', reject);
        child.on('exit', (code) => {
          clearTimeout(timer);
          resolve({ code, text });
        });
      });
    }

    /** What a board asking for `want` reads now, from a connection of its own. */
    async function readMailbox(hub, want, format = 'text') {
      const probe = await connect(hub);
      const reply = await probe.request(JSON.stringify(['probe', want, '']));
      probe.close();
      if (format === 'json') return reply === 'null' ? null : JSON.parse(reply);
      return reply === 'None' ? null : reply;
    }

    // The wire contract's vectors, as every broker of this project runs them.
    vectorSuite({
      async start(format) {
        const hub = await startHub({ REPLY_FORMAT: format });
        return { connect: () => connect(hub), readMailbox: (id) => readMailbox(hub, id, format) };
      },
    });

    it('reads frames split anywhere and frames coalesced, ids by their canonical text', async function () {
      const hub = await startHub();
      const device = await connect(hub);
      const frames = [
        '[7,7,"x0"]',
        ' \r\n[7, 7, "x1 [with] \\"brackets\\""]\n',
        '[7.0,7,"x2 温度"]',
        '["7",7,{"a":[1,{"b":"]"}]}]',
        '[1e0,"1","x4"]',
      ];
      const expected = ['x0', 'x1 [with] "brackets"', 'x2 温度', '{"a":[1,{"b":"]"}]}', 'x4'];
      const bytes = Buffer.from(frames.join(''));
      // Byte by byte for the first half, then the rest in one write.
      const half = Math.floor(bytes.length / 2);
      for (let i = 0; i < half; i++) {
        device.send(bytes.subarray(i, i + 1));
        if (i % 7 === 0) await device.flushed(); // the next byte a TCP segment of its own
      }
      device.send(bytes.subarray(half));
      const text = expected.join('');
      assert.equal(await device.readBytes(Buffer.byteLength(text)), text);
      // 1e0 and "1" are mailbox 1; 7.0 and "7" are 7.
      assert.equal(await readMailbox(hub, '1'), 'x4');
      assert.equal(await readMailbox(hub, 7), '{"a":[1,{"b":"]"}]}');
      // A payload nested deeper than 32 levels is a protocol error.
      const deep = `[8,7,${'['.repeat(33)}${']'.repeat(33)}]`;
      device.send(deep);
      assert.equal(await device.request('[8,8,"after"]'), 'after');
      await hub.waitForLine(/protocol error .*nested deeper than 32/);
    });

    it("serves the field's clients unchanged: the ESP8266 and PC clients of the blog, and examples/micropython/tcpmq.py", async function () {
      for (const format of ['text', 'json']) {
        const hub = await startHub({ REPLY_FORMAT: format });
        // The blog's code, as it is but for the address: the unix port's connect()
        // takes what getaddrinfo gives, where an ESP8266 takes ('192.168.4.1', 9999).
        const script = `
import sys, json, random, socket
sys.path.append(${JSON.stringify(CLIENT_DIR)})
from tcpmq import TcpmqClient
addr = socket.getaddrinfo('127.0.0.1', ${hub.port})[0][-1]
out = {}
# The PC client: one request, one reply.
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect(addr)
s.settimeout(8)
s.send(json.dumps([1, 2, '123']).encode())
out['pc'] = s.recv(100)
s.close()
# The ESP8266 client: a str through send(), recv(20), in lockstep.
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect(addr)
s.settimeout(8)
def k(x):
    s.send(json.dumps(x))
    ccc = s.recv(20)
    return ccc
out['esp8266'] = [k([-1, 1, '60%d' % random.getrandbits(3)]) for i in range(3)]
# The project's client.
c = TcpmqClient('127.0.0.1', ${hub.port}, device_id=1, dialect='${format}')
out['tcpmq'] = [c.exchange(-1, '26.5'), c.exchange(1, '27.5'), c.exchange('nobody', 'x')]
out['esp8266'].append(k([-1, 1, '600']))
print(repr(out))
`;
        const result = await runMicroPython(script);
        assert.equal(result.code, 0, result.text);
        const q = format === 'json' ? '"' : '';
        const none = format === 'json' ? 'null' : 'None';
        const line = result.text.trim().split('\n').pop();
        assert.match(line, new RegExp(`'pc': b'${none}'`), line);
        assert.match(line, new RegExp(`'esp8266': \\[b'${q}123${q}', b'${q}123${q}', b'${q}123${q}', b'${q}x${q}'\\]`));
        assert.match(line, /'tcpmq': \['60[0-7]', '27\.5', None\]/);
      }
    });

    it('stays up and serves on through junk on many connections', async function () {
      const hub = await startHub({ MAX_FRAME_BYTES: 1024, MAX_CONNECTIONS: 24 });
      let seed = 7;
      const random = (n) => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return seed % n;
      };
      const pieces = [
        '[',
        ']',
        '{',
        '}',
        '"',
        '\\',
        ',',
        ' ',
        '\n',
        '\r',
        '\u0000',
        '\u0001',
        '1e400',
        'null',
        'true',
        '-0',
        '[1,1,"ok"]',
        '[true,1,"x"]',
        '[[1],2,3]',
        '["a",{"b":1},"c"]',
        '温',
        '\u00ff',
        '[1,2]',
        `"${'9'.repeat(200)}"`,
      ];
      const junk = await Promise.all(Array.from({ length: 16 }, () => connect(hub)));
      for (let round = 0; round < 40; round++) {
        for (const device of junk) {
          if (device.closed) continue;
          const parts = Array.from({ length: 1 + random(12) }, () => pieces[random(pieces.length)]);
          const bytes = Buffer.from(parts.join(''), 'utf8');
          // Now and then a byte that is not UTF-8.
          if (random(5) === 0) bytes[random(bytes.length)] = 0xfe;
          device.send(bytes);
        }
        await Promise.all(junk.map((device) => device.flushed()));
      }
      const board = await connect(hub);
      assert.equal(await board.request('[40,40,"still here"]'), 'still here');
      assert.equal(hub.exitCode, undefined, 'the hub is running');
      const unexpected = hub.lines.filter((line) => /Traceback|unexpected|sweep:/.test(line));
      assert.deepEqual(unexpected, [], 'nothing raised out of the loop');
    });

    it('answers 20 connections in lockstep at once, each reply well inside 8 s', async function () {
      const hub = await startHub({ MAX_CONNECTIONS: 24 });
      const count = 20;
      const rounds = 40;
      const boards = await Promise.all(Array.from({ length: count }, () => connect(hub)));
      const latencies = [];
      let fromPeer = 0;
      const started = Date.now();
      await Promise.all(
        boards.map(async (board, i) => {
          const peer = (i + 1) % count;
          for (let round = 0; round < rounds; round++) {
            const sent = process.hrtime.bigint();
            const reply = await board.request(JSON.stringify([i, peer, `v${i}-${round}`]), 8000);
            latencies.push(Number(process.hrtime.bigint() - sent) / 1e6);
            assert.match(reply, new RegExp(`^(None|v${peer}-\\d+)$`), `board ${i} round ${round}`);
            if (reply !== 'None') fromPeer++;
          }
        }),
      );
      const elapsed = Date.now() - started;
      assert.equal(latencies.length, count * rounds);
      assert.ok(fromPeer >= count * (rounds - 2), `${fromPeer} replies carried the peer's news\n${hub.console()}`);
      const worst = p99(latencies);
      console.log(
        `      20 connections x ${rounds} lockstep requests: p99 ${worst.toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms, ` +
          `${Math.round((latencies.length * 1000) / elapsed)} requests/s`,
      );
      assert.ok(worst < 1000, `p99 latency ${worst.toFixed(1)} ms`);
    });

    it("serves 20 of the field's ESP8266 clients at once, MAX_CONNECTIONS raised in hub_config.py", async function () {
      const hub = await startHub({ MAX_CONNECTIONS: 24, STATUS_EVERY: 1 });
      // The blog's ESP8266 client, 20 times over in one MicroPython: each board its own connection,
      // a str through send(), recv(20), in lockstep; board i reports as -1-i and reads the next one.
      const script = `
import json, random, socket, time
addr = socket.getaddrinfo('127.0.0.1', ${hub.port})[0][-1]
boards = []
for i in range(20):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(addr)
    s.settimeout(8)
    boards.append(s)
def k(s, x):
    s.send(json.dumps(x))
    ccc = s.recv(20)
    return ccc
news = 0
worst = 0
for r in range(30):
    for i in range(20):
        t = time.ticks_ms()
        ccc = k(boards[i], [-1 - i, -1 - (i + 1) % 20, '60%d' % random.getrandbits(3)])
        worst = max(worst, time.ticks_diff(time.ticks_ms(), t))
        if ccc != b'None':
            assert ccc.startswith(b'60'), ccc
            news += 1
print(json.dumps({'news': news, 'worst': worst}))
`;
      const result = await runMicroPython(script);
      assert.equal(result.code, 0, result.text);
      const { news, worst } = JSON.parse(result.text.trim().split('\n').pop());
      assert.ok(news >= 20 * 29, `${news} of 600 replies carried the peer's news`);
      assert.ok(worst < 1000, `the slowest reply took ${worst} ms`);
      const status = await hub.nextStatus();
      console.log(`      20 ESP8266 clients x 30 rounds: slowest reply ${worst} ms; free heap ${status.heap} bytes`);
      assert.equal(status.requests, 600);
    });

    it('keeps serving through 3 x 1,000 distinct ids: the device table stays at MAX_BOARDS, warnings rate-limited, the heap flat', async function () {
      const hub = await startHub({ OFFLINE_AFTER: 1, STATUS_EVERY: 1 });
      const boards = await Promise.all([0, 1, 2, 3].map(() => connect(hub)));
      // Each id reports and reads itself back: its news if it got a record, else None.
      const round = async (base) => {
        let recorded = 0;
        await Promise.all(
          boards.map(async (board, b) => {
            for (let i = b; i < 1000; i += 4) {
              const reply = await board.request(JSON.stringify([`id-${base + i}`, `id-${base + i}`, `v${i}`]));
              assert.match(reply, /^(v\d+|None)$/);
              if (reply !== 'None') recorded++;
            }
          }),
        );
        return recorded;
      };
      const heaps = [];
      for (const base of [0, 1000, 2000]) {
        // Once the first 32 are offline, each round's ids take the records of the ones offline longest.
        assert.ok((await round(base)) >= 32, `ids from ${base} on got records`);
        await hub.waitForLine(/status: 0 boards online of 32,/, 5000, hub.lines.length);
        heaps.push((await hub.nextStatus()).heap);
      }
      const refused = hub.lines.filter((line) => /not recorded: 32 boards \(MAX_BOARDS\), all online/.test(line));
      assert.ok(refused.length <= 3 * 20, `${refused.length} warning lines for 2,900 boards not recorded`);
      console.log(`      free heap after each 1,000 ids: ${heaps.join(', ')} bytes`);
      // Flat: a dictionary's table rebuilt now and then moves it by up to 4 KB, the ids do not.
      const spread = Math.max(...heaps) - Math.min(...heaps);
      assert.ok(spread <= 4096 + 256, `free heap ${heaps.join(', ')} bytes`);
    });

    it('refuses connections beyond MAX_CONNECTIONS and serves the others', async function () {
      const hub = await startHub({ MAX_CONNECTIONS: 3 });
      const boards = [await connect(hub), await connect(hub), await connect(hub)];
      for (const [i, board] of boards.entries()) assert.equal(await board.request(`[${i},${i},"here"]`), 'here');
      const extra = await connect(hub);
      assert.ok(await extra.closedWithin(2000), 'the fourth connection is closed at once');
      await hub.waitForLine(/refused: 3 connections open \(MAX_CONNECTIONS\)/);
      boards[0].close();
      // Refused until the hub has seen the first one go; then served.
      await waitFor(
        async () => (await (await connect(hub)).request('[9,1,"x"]').catch(() => undefined)) === 'here',
        'a connection served once a place is free',
      );
    });

    it('reads None for a board silent for OFFLINE_AFTER seconds, and its news again when it speaks', async function () {
      const hub = await startHub({ OFFLINE_AFTER: 1 });
      const sensor = await connect(hub);
      const reader = await connect(hub);
      assert.equal(await sensor.request('[11,11,"here"]'), 'here');
      assert.equal(await reader.request('[12,11,""]'), 'here');
      await hub.waitForLine(/device 11 offline/, 3000);
      assert.equal(await reader.request('[12,11,""]'), 'None');
      assert.equal(await sensor.request('[11,12,"back"]'), 'None'); // 12 wrote an empty string
      assert.equal(await reader.request('[12,11,""]'), 'back');
    });

    it('closes idle, half-open and junk connections after IDLE_TIMEOUT, and keeps the ones that speak', async function () {
      const hub = await startHub({ IDLE_TIMEOUT: 1 });
      const silent = await connect(hub);
      const junk = await connect(hub);
      const live = await connect(hub);
      junk.send('[1,2]{"from":1}[1,1,"never ends');
      // The live board speaks in lockstep, as fast as it is answered, until the hub has closed the other two.
      const until = Date.now() + 5000;
      let answered = 0;
      while (!(silent.closed && junk.closed) && Date.now() < until) {
        assert.equal(await live.request('[20,20,"alive"]'), 'alive');
        answered++;
      }
      assert.ok(silent.closed, 'the silent connection is closed');
      assert.ok(junk.closed, 'the junk connection is closed');
      assert.equal(live.closed, false, 'the live connection stays');
      assert.ok(answered > 5);
      await hub.waitForLine(/no request for 1 s \(IDLE_TIMEOUT\)/);
    });

    it('closes a connection whose frame grows past MAX_FRAME_BYTES, and only that one', async function () {
      const hub = await startHub({ MAX_FRAME_BYTES: 512 });
      const big = await connect(hub);
      const other = await connect(hub);
      const fits = `[30,30,"${'a'.repeat(512 - 10)}"]`;
      assert.equal(Buffer.byteLength(fits), 512);
      assert.equal(await big.request(fits), 'a'.repeat(502));
      big.send(`[30,30,"${'b'.repeat(400)}`);
      await big.flushed();
      big.send('b'.repeat(400));
      assert.ok(await big.closedWithin(2000), 'the connection with an oversize frame is closed');
      assert.equal(await other.request('[31,30,"x"]'), 'a'.repeat(502));
      await hub.waitForLine(/without ending a frame \(MAX_FRAME_BYTES 512\): closed/);
    });

    it('keeps its heap flat over thousands of requests', async function () {
      this.timeout(40000);
      const hub = await startHub({ STATUS_EVERY: 1, MAX_BOARDS: 16 });
      const boards = await Promise.all([0, 1, 2, 3].map(() => connect(hub)));
      const payloads = ['26.5', '温度 21', '{"t":21}', 'x'.repeat(100)];
      const exchange = (count) =>
        Promise.all(
          boards.map(async (board, b) => {
            for (let i = 0; i < count; i++) {
              const from = (b * 4 + (i % 4)) % 12;
              const payload = payloads[i % payloads.length];
              await board.request(JSON.stringify([from, (from + 1) % 12, payload === '{"t":21}' ? { t: i } : payload]));
            }
          }),
        );
      await exchange(150); // every id and payload seen once
      const first = await hub.nextStatus();
      await exchange(1000);
      const last = await hub.nextStatus();
      console.log(
        `      free heap: ${first.heap} bytes after ${first.requests} requests, ${last.heap} after ${last.requests}`,
      );
      assert.equal(last.requests, 4600);
      assert.ok(first.heap - last.heap < 1024, `free heap went from ${first.heap} to ${last.heap} bytes`);
    });

    describe('in the fleet, through a real mosquitto', function () {
      let broker;
      let mqttPort;
      let mqttDir;
      const clients = [];

      before(async function () {
        needMosquitto(this);
        mqttPort = await freePort();
        mqttDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpmq-hub-mqtt-'));
        broker = await startMosquitto(mqttPort, mqttDir);
      });

      after(async function () {
        if (broker) {
          broker.kill('SIGTERM');
          await broker.exited;
        }
        if (mqttDir) fs.rmSync(mqttDir, { recursive: true, force: true });
      });

      afterEach(async function () {
        // The hubs first: their wills land before the retained messages are cleared.
        const stopped = hubs.map((hub) => hub.gateway).filter(Boolean);
        await Promise.all(hubs.splice(0).map((hub) => hub.stop()));
        await Promise.all(clients.splice(0).map((client) => client.endAsync()));
        // Nothing retained from one test is left for the next.
        const cleaner = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`);
        const last = new Map();
        cleaner.on('message', (topic, payload) => last.set(topic, payload.toString()));
        await cleaner.subscribeAsync(['tcpmq/#', 'homeassistant/#']);
        // A marker of ours comes back after every retained message.
        const marker = `tcpmq/test-cleaner/${process.pid}-${Date.now()}`;
        await cleaner.publishAsync(marker, 'x');
        await waitFor(() => last.has(marker), 'the retained messages, then our marker');
        // The stopped hubs' wills ("online": false) land before anything is cleared.
        const online = () =>
          stopped
            .map((name) => [`tcpmq/gateway/${name}`, last.get(`tcpmq/gateway/${name}`) ?? ''])
            .filter(([, text]) => /"online": ?true/.test(text));
        await waitFor(
          () => online().length === 0,
          () => `the wills of ${online().map(([topic]) => topic)}`,
          3000,
        );
        for (const [topic, text] of last)
          if (text.length && topic !== marker) await cleaner.publishAsync(topic, '', { retain: true });
        await cleaner.endAsync();
      });

      /**
       * A message an MQTT client heard.
       *
       * @typedef {{ topic: string, text: string, retain: boolean, at: number }} Heard
       */

      /** An MQTT client that keeps every message it hears on `filters`. */
      async function listen(filters = ['tcpmq/#']) {
        const connected = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`);
        clients.push(connected);
        const client = Object.assign(connected, { heard: /** @type {Heard[]} */ ([]) });
        client.on('message', (topic, payload, packet) =>
          client.heard.push({ topic, text: payload.toString('utf8'), retain: packet.retain, at: Date.now() }),
        );
        if (filters.length > 0) await client.subscribeAsync(filters);
        return client;
      }

      /**
       * The last message on `topic` that `check` accepts, waited for.
       *
       * @param {{ heard: Heard[] }} client
       * @param {string} topic
       * @param {(message: Heard) => boolean} [check]
       * @param {number} [ms]
       * @returns {Promise<Heard>}
       */
      async function heard(client, topic, check = () => true, ms = 5000) {
        /** @type {Heard | undefined} */
        let found;
        await waitFor(
          () => (found = client.heard.findLast((m) => m.topic === topic && check(m))) !== undefined,
          () => `a message on ${topic}; heard: ${JSON.stringify(client.heard.slice(-8))}`,
          ms,
        );
        return found;
      }

      function fleetHub(settings = {}) {
        return startHub({
          WIFI_SSID: 'home',
          MQTT_HOST: '127.0.0.1',
          MQTT_PORT: mqttPort,
          GATEWAY: 'hub-test',
          OFFLINE_AFTER: 2,
          ...settings,
        });
      }

      it('publishes its board news retained with the contract JSON, each id at most every 250 ms', async function () {
        const watcher = await listen(['tcpmq/#', 'homeassistant/#']);
        const hub = await fleetHub({ HA_DISCOVERY: true });
        const state = JSON.parse((await heard(watcher, 'tcpmq/gateway/hub-test', (m) => !m.retain)).text);
        assert.equal(state.online, true);
        assert.equal(typeof state.startedAt, 'number');
        assert.ok(Math.abs(state.startedAt - Date.now()) < 10000, `startedAt ${state.startedAt}`);
        const board = await connect(hub);
        const before = Date.now();
        assert.equal(await board.request('[5,5,"21.5"]'), '21.5');
        const news = JSON.parse((await heard(watcher, 'tcpmq/mailbox/5')).text);
        assert.equal(news.value, '21.5');
        assert.equal(news.writer, 'device');
        assert.equal(news.gateway, 'hub-test');
        assert.ok(news.writtenAt >= before - 50 && news.writtenAt <= Date.now() + 50, `writtenAt ${news.writtenAt}`);
        assert.equal(news.expiresAt, news.writtenAt + 2000);
        assert.equal(news.want, '5');
        assert.equal(news.remoteAddress, '127.0.0.1');
        assert.equal(typeof news.connectionId, 'number');
        assert.equal(news.remotePort, board.socket.localPort);
        const device = JSON.parse((await heard(watcher, 'tcpmq/device/5')).text);
        assert.deepEqual([device.online, device.gateway, device.remoteAddress], [true, 'hub-test', '127.0.0.1']);
        assert.ok(Math.abs(device.lastSeen - news.writtenAt) < 100);
        // Home Assistant sees the hub's boards as it sees a tcpmq-gateway's.
        const sensor = JSON.parse((await heard(watcher, 'homeassistant/sensor/tcpmq_5/config')).text);
        const command = JSON.parse((await heard(watcher, 'homeassistant/text/tcpmq_5/config')).text);
        const gateway = JSON.parse(
          (await heard(watcher, 'homeassistant/binary_sensor/tcpmq_gateway_hub_test/config')).text,
        );
        assert.equal(sensor.state_topic, 'tcpmq/mailbox/5');
        assert.equal(sensor.state_class, 'measurement');
        assert.deepEqual(
          sensor.availability.map((a) => a.topic),
          ['tcpmq/device/5', 'tcpmq/gateway/hub-test'],
        );
        assert.equal(command.command_topic, 'tcpmq/mailbox/5/set');
        assert.equal(gateway.state_topic, 'tcpmq/gateway/hub-test');
        const discovery = path.join(ROOT, 'dist', 'fleet', 'discovery.js');
        // The same configs as the package's own (built) gateways publish, but for versions and models, once
        // the built package follows the fleet's entity-id rule (lowercase, '_' outside [a-z0-9_]) too.
        const built = fs.existsSync(discovery) ? require(discovery) : undefined;
        if (
          built &&
          JSON.parse(built.gatewayDiscovery({ gateway: 'hub-test' }).payload).unique_id !== 'tcpmq_gateway_hub_test'
        ) {
          console.log('      (dist/fleet/discovery.js predates the entity-id rule: not compared)');
        } else if (built) {
          const { boardDiscovery, gatewayDiscovery } = built;
          const context = { prefix: 'tcpmq', gateway: 'hub-test', version: 'v', model: 'm', expireAfter: 7 };
          const same = (config) =>
            JSON.parse(JSON.stringify(config), (key, value) => (key === 'sw_version' || key === 'model' ? 'x' : value));
          const expected = boardDiscovery(context, { id: '5', numeric: true, reads: '5' });
          assert.deepEqual(same(sensor), same(JSON.parse(expected[0].payload)));
          assert.deepEqual(same(command), same(JSON.parse(expected[1].payload)));
          assert.deepEqual(same(gateway), same(JSON.parse(gatewayDiscovery(context).payload)));
        }

        // A board reporting as fast as it can: at most one publish per 250 ms, the latest last.
        const from = watcher.heard.length;
        const burstStart = Date.now();
        for (let i = 0; i < 60; i++) await board.request(`[5,5,"${i}"]`);
        const burst = Date.now() - burstStart;
        await heard(watcher, 'tcpmq/mailbox/5', (m) => JSON.parse(m.text).value === '59');
        const published = watcher.heard.slice(from).filter((m) => m.topic === 'tcpmq/mailbox/5');
        assert.ok(published.length <= Math.ceil(burst / 250) + 2, `${published.length} publishes in ${burst} ms`);
        assert.equal(JSON.parse(published[published.length - 1].text).value, '59');
        // Retained: a client that comes later reads the latest.
        const late = await listen(['tcpmq/mailbox/5']);
        const kept = await heard(late, 'tcpmq/mailbox/5');
        assert.equal(kept.retain, true);
        assert.equal(JSON.parse(kept.text).value, '59');
        // Silent for OFFLINE_AFTER: offline on the fleet too.
        const offline = await heard(watcher, 'tcpmq/device/5', (m) => JSON.parse(m.text).online === false, 4000);
        assert.equal(JSON.parse(offline.text).gateway, 'hub-test');
        // The device topic on online and offline only: a reporting board's news says it is alive.
        const online = watcher.heard.filter((m) => m.topic === 'tcpmq/device/5' && JSON.parse(m.text).online);
        assert.equal(online.length, 1, `device/5 online messages: ${online.length}`);
        // Expired news is not cleared on MQTT: receivers apply its expiry.
        assert.ok(!watcher.heard.some((m) => m.topic === 'tcpmq/mailbox/5' && m.text === ''), 'no empty mailbox/5');
      });

      it('serves a board what another client wrote with /set, which does not expire', async function () {
        const watcher = await listen();
        const hub = await fleetHub();
        await heard(watcher, 'tcpmq/gateway/hub-test', (m) => JSON.parse(m.text).online); // subscribed by then
        const writer = await listen([]);
        await writer.publishAsync('tcpmq/mailbox/cmd/set', 'on');
        const board = await connect(hub);
        await waitFor(async () => (await board.request('[6,"cmd",""]')) === 'on', 'the board to read "on"');
        const shared = JSON.parse((await heard(watcher, 'tcpmq/mailbox/cmd')).text);
        assert.deepEqual(
          [shared.value, shared.writer, shared.gateway, shared.expiresAt],
          ['on', 'flow', 'hub-test', null],
        );
        // Past OFFLINE_AFTER: a board that reported once, now, reads None then.
        const witness = await connect(hub);
        await witness.request('[66,66,"soon silent"]');
        await waitFor(
          async () => (await witness.request('[67,66,""]')) === 'None',
          'board 66 silent past OFFLINE_AFTER',
          5000,
        );
        assert.equal(await board.request('[6,"cmd",""]'), 'on');
        await writer.publishAsync('tcpmq/mailbox/cmd/set', '{"speed":3}');
        await waitFor(async () => (await board.request('[6,"cmd",""]')) === '{"speed":3}', 'the JSON value');
        await writer.publishAsync('tcpmq/mailbox/cmd/set', '');
        await waitFor(async () => (await board.request('[6,"cmd",""]')) === 'None', 'the cleared mailbox');
        const cleared = await heard(watcher, 'tcpmq/mailbox/cmd', (m) => m.text === '');
        assert.equal(cleared.text, '');
      });

      it("serves another gateway's retained mailbox, last writer wins, None once that gateway's will says offline", async function () {
        const other = await listen([]);
        const now = Date.now();
        const news = (value, writtenAt) =>
          JSON.stringify({ value, writtenAt, writer: 'device', gateway: 'hall-2', expiresAt: writtenAt + 30000 });
        // Retained before the hub connects: it comes in when the hub subscribes.
        await other.publishAsync('tcpmq/mailbox/77', news('from hall 2', now), { retain: true });
        const hub = await fleetHub({ OFFLINE_AFTER: 30 });
        const board = await connect(hub);
        await waitFor(async () => (await board.request('[8,77,""]')) === 'from hall 2', "hall 2's news");
        await other.publishAsync('tcpmq/mailbox/77', news('older', now - 1000), { retain: true });
        await other.publishAsync('tcpmq/mailbox/77', news('newer', now + 10), { retain: true });
        await waitFor(async () => (await board.request('[8,77,""]')) === 'newer', 'the newer news');
        await other.publishAsync('tcpmq/gateway/hall-2', JSON.stringify({ online: false }), { retain: true });
        await waitFor(async () => (await board.request('[8,77,""]')) === 'None', 'None once hall 2 is offline');
      });

      it('says offline through its will, serves its boards while the uplink is down, and shares again when it is back', async function () {
        const watcher = await listen();
        const hub = await fleetHub({ OFFLINE_AFTER: 30 });
        await heard(watcher, 'tcpmq/gateway/hub-test', (m) => JSON.parse(m.text).online);
        const board = await connect(hub);
        assert.equal(await board.request('[9,9,"before"]'), 'before');
        await heard(watcher, 'tcpmq/mailbox/9');

        // The home Wi-Fi goes: the hub drops its MQTT connection, the broker says so.
        fs.writeFileSync(path.join(hub.dir, 'uplink-down'), '');
        await heard(watcher, 'tcpmq/gateway/hub-test', (m) => JSON.parse(m.text).online === false);
        const late = await listen(['tcpmq/gateway/hub-test']);
        assert.equal(JSON.parse((await heard(late, 'tcpmq/gateway/hub-test', (m) => m.retain)).text).online, false);
        const latencies = [];
        for (let i = 0; i < 50; i++) {
          const sent = Date.now();
          assert.equal(await board.request(`[9,9,"offline ${i}"]`), `offline ${i}`);
          latencies.push(Date.now() - sent);
        }
        assert.ok(p99(latencies) < 200, `p99 ${p99(latencies)} ms with the uplink down`);

        // Back: online again, and what changed meanwhile is published.
        fs.rmSync(path.join(hub.dir, 'uplink-down'));
        await heard(watcher, 'tcpmq/gateway/hub-test', (m) => JSON.parse(m.text).online, 8000);
        await heard(watcher, 'tcpmq/mailbox/9', (m) => JSON.parse(m.text).value === 'offline 49');

        // Killed: the will.
        const from = watcher.heard.length;
        await hub.stop('SIGKILL');
        await waitFor(
          () =>
            watcher.heard.slice(from).some((m) => m.topic === 'tcpmq/gateway/hub-test' && !JSON.parse(m.text).online),
          'the will',
        );
      });

      it('shares plain-text lines, and writes to or closes a connection when another client says so', async function () {
        const watcher = await listen();
        const hub = await fleetHub();
        await heard(watcher, 'tcpmq/gateway/hub-test', (m) => JSON.parse(m.text).online); // subscribed by then
        const board = await connect(hub); // a K230-like board: plain text, no frames
        board.send('Hello 01Studio!\r\n');
        const line = JSON.parse((await heard(watcher, 'tcpmq/raw/hub-test')).text);
        assert.deepEqual(
          [line.data, line.gateway, line.remoteAddress, line.remotePort],
          ['Hello 01Studio!', 'hub-test', '127.0.0.1', board.socket.localPort],
        );
        const commander = await listen([]);
        const device = `127.0.0.1:${board.socket.localPort}`;
        await commander.publishAsync('tcpmq/gateway/hub-test/send', JSON.stringify({ device, data: 'I got: hi' }));
        assert.equal((await board.nextChunk()).toString('utf8'), 'I got: hi');
        await commander.publishAsync(
          'tcpmq/gateway/hub-test/close',
          JSON.stringify({ connectionId: line.connectionId }),
        );
        assert.ok(await board.closedWithin(2000), 'closed by the close command');
      });

      /** Another gateway of the fleet, as a test client publishing its retained messages. */
      async function gatewayClient() {
        const client = await listen([]);
        return Object.assign(client, {
          state: (name, state) => client.publishAsync(`tcpmq/gateway/${name}`, JSON.stringify(state), { retain: true }),
          mailbox: (id, gateway, value, writtenAt = Date.now(), writer = 'flow') =>
            client.publishAsync(
              `tcpmq/mailbox/${id}`,
              JSON.stringify({
                value,
                writtenAt,
                writer,
                gateway,
                expiresAt: writer === 'flow' ? null : writtenAt + 30000,
              }),
              { retain: true },
            ),
        });
      }

      let fences = 0;
      /** Resolves once the hub has taken in everything `client` published before (MQTT keeps one client's order). */
      async function fence(client, hub, board) {
        const id = `fence-${++fences}`;
        await client.publishAsync(
          `tcpmq/mailbox/${id}`,
          JSON.stringify({ value: id, writtenAt: Date.now(), writer: 'flow', gateway: 'zz-fence', expiresAt: null }),
          { retain: true },
        );
        await waitFor(
          async () => (await board.request(`["reader",${JSON.stringify(id)},""]`)) === id,
          `the hub to take in ${id}`,
        );
      }

      it('applies /set only for the ids it owns; the owner gateway, or the least online one, claims the rest', async function () {
        const watcher = await listen();
        const others = await gatewayClient();
        await others.state('hall-1', { online: true, version: 'x', startedAt: 1 }); // 'hall-1' < 'hub-test'
        await others.state('a-node-red', { online: true, attached: true }); // attached: never owns
        const hub = await fleetHub({ OFFLINE_AFTER: 30 });
        await heard(watcher, 'tcpmq/gateway/hub-test', (m) => JSON.parse(m.text).online);
        const board = await connect(hub);
        assert.equal(await board.request('[5,5,"21.5"]'), '21.5');
        await heard(watcher, 'tcpmq/mailbox/5');

        // A new id: hall-1, the least online gateway, claims it; the hub leaves it alone.
        await others.publishAsync('tcpmq/mailbox/cmdA/set', 'on');
        // An id the hub holds as its own (its board's news): the hub applies it, whoever is online.
        await others.publishAsync('tcpmq/mailbox/5/set', 'set by mqtt');
        await fence(others, hub, board);
        assert.equal(await board.request('[6,"cmdA",""]'), 'None', 'the hub did not apply a /set it does not own');
        assert.ok(!watcher.heard.some((m) => m.topic === 'tcpmq/mailbox/cmdA'), 'the hub published nothing on cmdA');
        const own = JSON.parse((await heard(watcher, 'tcpmq/mailbox/5', (m) => m.text.includes('set by mqtt'))).text);
        assert.deepEqual([own.gateway, own.writer], ['hub-test', 'flow']);
        // The owner's retained mailbox brings the value in.
        await others.mailbox('cmdA', 'hall-1', 'on');
        await waitFor(async () => (await board.request('[6,"cmdA",""]')) === 'on', "hall-1's write of cmdA");

        // hall-1 says it is offline: its ids and new ones are the hub's now (the attached one never owns).
        await others.state('hall-1', { online: false });
        await others.publishAsync('tcpmq/mailbox/cmdA/set', 'off');
        await others.publishAsync('tcpmq/mailbox/cmdB/set', '{"speed":3}');
        const a = JSON.parse((await heard(watcher, 'tcpmq/mailbox/cmdA', (m) => m.text.includes('"off"'))).text);
        const b = JSON.parse((await heard(watcher, 'tcpmq/mailbox/cmdB', (m) => m.text.includes('speed'))).text);
        assert.deepEqual([a.gateway, b.gateway], ['hub-test', 'hub-test']);
        assert.ok(a.writtenAt > JSON.parse(watcher.heard.find((m) => m.topic === 'tcpmq/mailbox/cmdA').text).writtenAt);
        assert.equal(await board.request('[6,"cmdB",""]'), '{"speed":3}');
      });

      it('never publishes a mailbox another gateway took over, not even empty; its board takes it back with a later writtenAt', async function () {
        const watcher = await listen();
        const others = await gatewayClient();
        const hub = await fleetHub({ OFFLINE_AFTER: 30 });
        await heard(watcher, 'tcpmq/gateway/hub-test', (m) => JSON.parse(m.text).online);
        const board = await connect(hub);
        assert.equal(await board.request('[7,7,"mine"]'), 'mine');
        const mine = JSON.parse((await heard(watcher, 'tcpmq/mailbox/7')).text);
        // hall-2 writes 7 later: the hub takes it in.
        const later = mine.writtenAt + 5000;
        await others.mailbox(7, 'hall-2', 'theirs', later, 'device');
        await waitFor(async () => (await board.request('[8,7,""]')) === 'theirs', "hall-2's news of 7");
        // An equal (writtenAt, gateway) is the same write; an older one is not taken in.
        await others.mailbox(7, 'hall-2', 'same key', later, 'device');
        await others.mailbox(7, 'hall-0', 'older', later - 1, 'device');
        await fence(others, hub, board);
        assert.equal(await board.request('[8,7,""]'), 'theirs');
        assert.ok(
          !watcher.heard.some((m) => m.topic === 'tcpmq/mailbox/7' && m.text === ''),
          'no empty retained message on mailbox/7',
        );
        assert.equal(
          watcher.heard.filter((m) => m.topic === 'tcpmq/mailbox/7' && m.text.includes('hub-test')).length,
          1,
        );
        // Its board reports again: stamped after what the hub holds, published as the hub's own.
        assert.equal(await board.request('[7,7,"mine again"]'), 'mine again');
        const back = JSON.parse((await heard(watcher, 'tcpmq/mailbox/7', (m) => m.text.includes('mine again'))).text);
        assert.equal(back.gateway, 'hub-test');
        assert.ok(back.writtenAt > later, `writtenAt ${back.writtenAt} after hall-2's ${later}`);
      });

      it('refuses, with a warning, ids over 128 bytes, values whose reply exceeds MAX_FRAME_BYTES, and new ids when its mailbox table is full', async function () {
        const watcher = await listen();
        const others = await gatewayClient();
        const hub = await fleetHub({ OFFLINE_AFTER: 30, MAX_FRAME_BYTES: 512, MAX_BOARDS: 2 });
        await heard(watcher, 'tcpmq/gateway/hub-test', (m) => JSON.parse(m.text).online);
        const board = await connect(hub);
        const long = 'L'.repeat(129);
        await others.publishAsync(`tcpmq/mailbox/${long}/set`, 'x');
        await hub.waitForLine(/MQTT tcpmq\/mailbox\/L+\.\.\. refused: an id longer than 128 bytes/);
        await others.mailbox(long, 'hall-2', 'x');
        await hub.waitForLine(
          /MQTT tcpmq\/mailbox\/L+\.\.\. refused: an id longer than 128 bytes/,
          5000,
          hub.lines.length,
        );
        await others.publishAsync('tcpmq/mailbox/big/set', 'b'.repeat(600));
        await hub.waitForLine(/MQTT tcpmq\/mailbox\/big\/set refused: a reply of 600 bytes \(MAX_FRAME_BYTES 512\)/);
        await others.mailbox('big2', 'hall-2', 'b'.repeat(513));
        await hub.waitForLine(/MQTT tcpmq\/mailbox\/big2 refused: a reply of 513 bytes/);
        // 2 x MAX_BOARDS = 4 mailboxes: the board's own and three taken in.
        assert.equal(await board.request('[9,9,"nine"]'), 'nine');
        for (const id of ['m1', 'm2', 'm3', 'm4']) await others.mailbox(id, 'hall-2', id);
        await hub.waitForLine(/MQTT tcpmq\/mailbox\/m4 refused: a new id, and the mailbox table is full/);
        await others.publishAsync('tcpmq/mailbox/m6/set', 'x');
        await hub.waitForLine(/MQTT tcpmq\/mailbox\/m6\/set refused: a new id, and the mailbox table is full/);
        for (const id of ['m1', 'm3']) assert.equal(await board.request(`[9,"${id}",""]`), id);
        for (const id of ['big', 'big2', 'm4', 'm6']) assert.equal(await board.request(`[9,"${id}",""]`), 'None');
        assert.ok(!watcher.heard.some((m) => /mailbox\/(big|m6)$/.test(m.topic)), 'nothing refused was published');
        assert.equal(hub.exitCode, undefined);
      });

      it('after a restart reads what is retained before it publishes, takes back its own /set write, and keeps the Home Assistant command topic', async function () {
        const watcher = await listen(['tcpmq/#', 'homeassistant/#']);
        const writer = await listen([]);
        let hub = await fleetHub({ OFFLINE_AFTER: 30, HA_DISCOVERY: true });
        await heard(watcher, 'tcpmq/gateway/hub-test', (m) => JSON.parse(m.text).online);
        await writer.publishAsync('tcpmq/mailbox/cmd5/set', 'led on');
        const written = JSON.parse((await heard(watcher, 'tcpmq/mailbox/cmd5')).text);
        let board = await connect(hub);
        assert.equal(await board.request('[5,"cmd5","21"]'), 'led on');
        const config = JSON.parse((await heard(watcher, 'homeassistant/text/tcpmq_5/config')).text);
        assert.equal(config.command_topic, 'tcpmq/mailbox/cmd5/set');

        const from = watcher.heard.length;
        await hub.stop();
        hubs.splice(hubs.indexOf(hub), 1);
        hub = await fleetHub({ OFFLINE_AFTER: 30, HA_DISCOVERY: true });
        await heard(watcher, 'tcpmq/gateway/hub-test/sync', (m) => watcher.heard.indexOf(m) >= from);
        board = await connect(hub);
        await waitFor(async () => (await board.request('[5,"cmd5","22"]')) === 'led on', 'its own write taken back');
        await heard(watcher, 'tcpmq/mailbox/5', (m) => m.text.includes('"22"') && watcher.heard.indexOf(m) >= from);
        await heard(watcher, 'homeassistant/text/tcpmq_5/config', (m) => watcher.heard.indexOf(m) >= from);
        const after = watcher.heard.slice(from);
        // The write it took back is what is retained: not published again.
        assert.deepEqual(
          after.filter((m) => m.topic === 'tcpmq/mailbox/cmd5'),
          [],
        );
        const configs = after.filter((m) => m.topic === 'homeassistant/text/tcpmq_5/config');
        assert.deepEqual(
          configs.map((m) => JSON.parse(m.text).command_topic),
          ['tcpmq/mailbox/cmd5/set'],
        );
        // It owns cmd5 again: a /set is applied, stamped after the write it holds.
        await writer.publishAsync('tcpmq/mailbox/cmd5/set', 'led off');
        const next = JSON.parse((await heard(watcher, 'tcpmq/mailbox/cmd5', (m) => m.text.includes('led off'))).text);
        assert.ok(next.writtenAt > written.writtenAt);
      });

      it('serves its boards as before when the MQTT broker cannot be reached', async function () {
        const hub = await fleetHub({ MQTT_PORT: await freePort() }); // nothing listens there
        const board = await connect(hub);
        await hub.waitForLine(/MQTT 127\.0\.0\.1:\d+: .*retrying/);
        const latencies = [];
        for (let i = 0; i < 100; i++) {
          const sent = Date.now();
          assert.equal(await board.request(`[10,10,"${i}"]`), String(i));
          latencies.push(Date.now() - sent);
          if (i % 10 === 0) await every(50);
        }
        assert.ok(p99(latencies) < 200, `p99 ${p99(latencies)} ms while MQTT is unreachable`);
      });
    });
  });
}

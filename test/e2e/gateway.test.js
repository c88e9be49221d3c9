'use strict';
// tcpmq-gateway as a process of its own: the command line, SIGHUP, SIGTERM with
// persist, and kill -9 with its will on a real mosquitto.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { execFile, spawn } = require('node:child_process');
const { Device, freePort, quietFor, skipWithout, waitFor } = require('../support');
const { BIN, startGateway, stopGateway } = require('./gateway-process');
const { needMosquitto, startMosquitto, retained, publish } = require('./mosquitto');

/** A board connecting from `localAddress` (any 127.x.y.z is this machine). */
function boardFrom(port, localAddress) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress }, () => resolve(new Device(socket)));
    socket.once('error', reject);
  });
}

/** Runs the gateway's command line to its end: { code, stdout, stderr }. */
function run(args, env = {}) {
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, ...env }, timeout: 5000 },
      (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }),
    ),
  );
}

describe('tcpmq-gateway', function () {
  this.timeout(60000);
  let dir;
  const children = [];

  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpmq-gateway-'));
  });

  afterEach(async function () {
    for (const child of children.splice(0)) await stopGateway(child, 'SIGKILL');
  });

  after(function () {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function gateway(args, options) {
    const child = await startGateway(args, options);
    children.push(child);
    return child;
  }

  describe('command line', function () {
    it('lists every option with its default and variable', async function () {
      const { code, stdout } = await run(['--help']);
      assert.equal(code, 0);
      for (const flag of ['--port', '--offline-after', '--allow-from', '--mqtt', '--topic', '--publish-interval'])
        assert.match(stdout, new RegExp(`^  ${flag} `, 'm'), `--help lists ${flag}`);
      assert.match(
        stdout,
        /--max-frame-bytes N\s+bytes in one request at most \(default: 65536\); env TCPMQ_MAX_FRAME_BYTES/,
      );
    });

    it('refuses a bad value in one line naming where it came from, with exit code 2', async function () {
      /** @type {[string[], NodeJS.ProcessEnv, RegExp][]} */
      const cases = [
        [['--max-frame-bytes', '10'], {}, /^tcpmq-gateway: --max-frame-bytes: "10" is not a whole number from 64/],
        [['--reply-format', 'xml'], {}, /^tcpmq-gateway: --reply-format: "xml" is not one of text, json/],
        [[], { TCPMQ_OFFLINE_AFTER: 'soon' }, /^tcpmq-gateway: TCPMQ_OFFLINE_AFTER: "soon" is not a number of seconds/],
        [['--porrt', '1'], {}, /^tcpmq-gateway: --porrt: unknown option/],
        [['--allow-from', '10.0.0.300'], {}, /^tcpmq-gateway: --allow-from: allowFrom: "10\.0\.0\.300" is not an IP/],
      ];
      for (const [args, env, expected] of cases) {
        const { code, stderr } = await run(['--port', String(await freePort()), ...args], env);
        assert.equal(code, 2, `${args.join(' ')} exits 2 (stderr: ${stderr})`);
        assert.match(stderr, expected);
        assert.equal(stderr.trim().split('\n').length, 1, `one line: ${stderr}`);
      }
    });

    it('takes a flag over the environment, and the environment over the file', async function () {
      const config = path.join(dir, 'layers.json');
      const [filePort, envPort, flagPort] = [await freePort(), await freePort(), await freePort()];
      fs.writeFileSync(config, JSON.stringify({ port: filePort, replyFormat: 'json', offlineAfter: 9 }));
      const env = { TCPMQ_PORT: String(envPort) };
      const child = await gateway(['--config', config, '--host', '127.0.0.1', '--port', String(flagPort)], { env });
      assert.match(child.output, new RegExp(`listening on 127\\.0\\.0\\.1:${flagPort}`));
      const board = await Device.connect(flagPort);
      // replyFormat from the file: an empty mailbox is JSON null.
      assert.equal(await board.request('[1,2,"x"]'), 'null');
      board.close();
      await stopGateway(child);
      const fromEnv = await gateway(['--config', config, '--host', '127.0.0.1'], { env });
      assert.match(fromEnv.output, new RegExp(`listening on 127\\.0\\.0\\.1:${envPort}`));
    });
  });

  describe('shipped for real installs', function () {
    const examples = path.join(__dirname, '..', '..', 'examples', 'gateway');

    it('starts with the example config file', async function () {
      const port = await freePort();
      const config = path.join(examples, 'gateway.conf');
      // The example's MQTT broker (1883) is not running here: the boards are served on.
      const child = await gateway(['--config', config, '--host', '127.0.0.1', '--port', String(port)]);
      const board = await Device.connect(port);
      assert.equal(await board.request('[1,1,"x"]'), 'x');
      board.close();
      assert.doesNotMatch(child.output, /\[error\]/);
    });

    it('has a systemd unit that systemd-analyze verifies', async function () {
      const analyze = '/usr/bin/systemd-analyze';
      if (!fs.existsSync(analyze)) skipWithout(this, 'systemd-analyze', "Debian's systemd package has it");
      const unit = path.join(examples, 'tcpmq-gateway.service');
      const { code, stderr } = await new Promise((resolve) =>
        execFile(analyze, ['verify', unit], (err, stdout, err2) => resolve({ code: err ? err.code : 0, stderr: err2 })),
      );
      assert.equal(code, 0, stderr);
      assert.match(fs.readFileSync(unit, 'utf8'), /^Restart=always$/m);
      assert.match(fs.readFileSync(unit, 'utf8'), /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    });
  });

  describe('signals', function () {
    it('applies a changed config file on SIGHUP as a deploy does: kept connections stay, refused ones close', async function () {
      const port = await freePort();
      const config = path.join(dir, 'hup.json');
      fs.writeFileSync(config, JSON.stringify({ host: '127.0.0.1', port, offlineAfter: 30, allowFrom: '' }));
      const child = await gateway(['--config', config]);
      const kept = await boardFrom(port, '127.0.0.1');
      const refused = await boardFrom(port, '127.0.0.2');
      assert.equal(await kept.request('[1,1,"a"]'), 'a');
      assert.equal(await refused.request('[2,2,"b"]'), 'b');
      fs.writeFileSync(config, JSON.stringify({ host: '127.0.0.1', port, offlineAfter: 1, allowFrom: '127.0.0.1' }));
      child.kill('SIGHUP');
      assert.equal(await refused.closedWithin(3000), true, 'the board outside the new allowFrom is closed');
      assert.equal(kept.closed, false, 'the board inside it stays');
      assert.equal(await kept.request('[1,2,"a2"]'), 'b', "board 2's news is still served");
      // offlineAfter 1 s now: board 2, silent, goes offline and its news goes with it.
      await waitFor(async () => (await kept.request('[1,2,"a3"]')) === 'None', 'board 2 offline after 1 s', 4000);
      assert.match(child.output, /settings applied/);
      kept.close();
    });

    it('stops on SIGTERM within 3 s with exit code 0, and serves after a restart what persist kept', async function () {
      const port = await freePort();
      const file = path.join(dir, 'persist.json');
      const args = ['--host', '127.0.0.1', '--port', String(port), '--persist', file];
      const first = await gateway(args);
      const board = await Device.connect(port);
      assert.equal(await board.request('[7,7,"kept"]'), 'kept');
      const stopped = Date.now();
      first.kill('SIGTERM');
      assert.equal(await first.exited, 0);
      assert.ok(Date.now() - stopped < 3000, `stopped in ${Date.now() - stopped} ms`);
      const second = await gateway(args);
      assert.match(second.output, /persist: restored/);
      const reader = await Device.connect(port);
      assert.equal(await reader.request('[8,7,"x"]'), 'kept', "board 7's news (online within offlineAfter) is back");
      reader.close();
    });
  });

  describe('persist', function () {
    it('keeps a snapshot it cannot read as it is, saying so, and serves on', async function () {
      const port = await freePort();
      const file = path.join(dir, 'broken.json');
      fs.writeFileSync(file, '{"version": 1, "mailboxes": [');
      const child = await gateway(['--host', '127.0.0.1', '--port', String(port), '--persist', file]);
      assert.match(child.output, /persist: cannot read .*broken\.json \(it is kept as it is\)/);
      const board = await Device.connect(port);
      assert.equal(await board.request('[1,1,"x"]'), 'x');
      board.close();
      child.kill('SIGTERM');
      assert.equal(await child.exited, 0);
      assert.equal(fs.readFileSync(file, 'utf8'), '{"version": 1, "mailboxes": [', 'not overwritten');
    });
  });

  describe('its log', function () {
    it('serves on, and stops on SIGTERM, when whatever read its output has gone (a closed pipe)', async function () {
      const port = await freePort();
      const child = await gateway(['--host', '127.0.0.1', '--port', String(port), '--log-level', 'debug']);
      // The reader of its stdout and stderr goes away: every log line from now on meets EPIPE.
      child.stdout.destroy();
      child.stderr.destroy();
      const board = await Device.connect(port);
      for (let i = 0; i < 20; i++) assert.equal(await board.request(`[1,1,"x${i}"]`), `x${i}`);
      board.close();
      // Idle, it stays idle: no loop of failed writes (CPU time from /proc, in clock ticks of 10 ms).
      const cpu = () => {
        const fields = fs.readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
        return Number(fields[11]) + Number(fields[12]);
      };
      const before = cpu();
      await quietFor(1000, '200 ms of CPU used while idle', () => cpu() - before >= 20);
      const stopped = Date.now();
      child.kill('SIGTERM');
      assert.equal(await child.exited, 0);
      assert.ok(Date.now() - stopped < 3000, `stopped in ${Date.now() - stopped} ms`);
    });
  });

  describe('on a real mosquitto', function () {
    let mqttPort;
    let mosquitto;

    before(async function () {
      needMosquitto(this);
      mqttPort = await freePort();
      mosquitto = await startMosquitto(mqttPort, dir);
    });

    after(function () {
      if (mosquitto && mosquitto.exitCode === null) mosquitto.kill();
    });

    async function site(name, extra = []) {
      const port = await freePort();
      const args = ['--host', '127.0.0.1', '--port', String(port), '--mqtt', `mqtt://127.0.0.1:${mqttPort}`];
      const child = await gateway([...args, '--gateway', name, '--offline-after', '2', ...extra], {
        ready: /MQTT connected/,
      });
      return { child, port };
    }

    it('announces itself retained, and its will says offline when it is killed; its boards read None elsewhere', async function () {
      const a = await site('site-a');
      const b = await site('site-b');
      const state = await retained(mqttPort, 'tcpmq/gateway/site-a');
      assert.equal(state.online, true);
      assert.equal(typeof state.version, 'string');
      assert.equal(typeof state.counters.requests, 'number');
      const sensor = await Device.connect(a.port);
      const reader = await Device.connect(b.port);
      assert.equal(await sensor.request('[1,1,"21.5"]'), '21.5');
      await waitFor(async () => (await reader.request('[2,1,"x"]')) === '21.5', "A's board on B", 3000);
      a.child.kill('SIGKILL');
      await waitFor(async () => (await retained(mqttPort, 'tcpmq/gateway/site-a')).online === false, 'the will', 5000);
      // Within offlineAfter (2 s) and a little: the dead gateway's board reads None on B.
      await waitFor(async () => (await reader.request('[2,1,"x"]')) === 'None', "A's board None on B", 4000);
      reader.close();
      sensor.close();
    });

    it('says offline on SIGTERM, and takes writes through /set from any MQTT client', async function () {
      const a = await site('site-c');
      const board = await Device.connect(a.port);
      await publish(mqttPort, 'tcpmq/mailbox/fan/set', 'fan off');
      await waitFor(async () => (await board.request('[3,"fan","x"]')) === 'fan off', 'the /set', 3000);
      board.close();
      a.child.kill('SIGTERM');
      assert.equal(await a.child.exited, 0);
      assert.equal((await retained(mqttPort, 'tcpmq/gateway/site-c')).online, false);
    });

    it('publishes every report with --publish-interval 0, with what the board asked for', async function () {
      const a = await site('site-d', ['--publish-interval', '0']);
      const board = await Device.connect(a.port);
      const seen = [];
      const sub = spawn('mosquitto_sub', [...['-h', '127.0.0.1', '-p', String(mqttPort), '-t', 'tcpmq/mailbox/9']]);
      sub.stdout.on('data', (chunk) => seen.push(...chunk.toString().trim().split('\n')));
      await sleepUntilSubscribed();
      for (let i = 0; i < 20; i++) await board.request(`[9,4,"r${i}"]`);
      await waitFor(() => seen.some((line) => line.includes('"r19"')), 'the last report', 3000);
      sub.kill();
      const values = seen.map((line) => JSON.parse(line)).filter((m) => /^r\d+$/.test(m.value));
      assert.equal(values.length, 20, `every report published: ${values.map((m) => m.value).join(' ')}`);
      assert.deepEqual(
        [values[0].want, typeof values[0].connectionId, values[0].remoteAddress],
        ['4', 'number', '127.0.0.1'],
      );
      board.close();
    });
  });
});

/** mosquitto_sub needs a moment to subscribe: there is no event for it. */
function sleepUntilSubscribed() {
  return new Promise((resolve) => setTimeout(resolve, 300));
}

'use strict';
// Whether the hub and the device library fit a board's heap: MicroPython's 32-bit build
// (objects the size they are on an ESP32 or an ESP8266) imports them from source in the
// heaps docs/hub.md promises, and the .mpy files build-mpy makes boot and serve in an
// ESP32's first 56 KB. test/micropython/hub-heap.js does the measuring (and prints the
// table of docs/hub.md).
const assert = require('node:assert/strict');
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { Device, freePort, skipWithout, waitFor } = require('../support');
const { MICROPYTHON32, MPY_CROSS, HUB_DIR, bootOrder, hubModules, boardDir, importIn } = require('./hub-heap');

const ROOT = path.join(__dirname, '..', '..');
const CLIENT_DIR = path.join(ROOT, 'examples', 'micropython');

describe('The hub and tcpmq.py fit a board (MicroPython 32-bit)', function () {
  this.timeout(60000);

  before(function () {
    for (const tool of [MICROPYTHON32, MPY_CROSS]) {
      if (!fs.existsSync(tool)) skipWithout(this, path.relative(ROOT, tool), 'CI has it in ../shared/tools');
    }
  });

  it("main.py imports every module of the hub's folder", function () {
    assert.deepEqual([...bootOrder()].sort(), hubModules().sort());
  });

  it("docs/hub.md's mip install loop names main.py's modules, in its order", function () {
    for (const doc of ['hub.md', 'hub.zh-CN.md']) {
      const text = fs.readFileSync(path.join(ROOT, 'docs', doc), 'utf8');
      const loop = text.match(/for f in ([\w ]+); do/);
      assert.ok(loop, `docs/${doc} has the mip install loop`);
      assert.deepEqual(loop[1].trim().split(' '), [...bootOrder(), 'main'], `docs/${doc}`);
    }
  });

  it("mip's package.json installs main.py's modules in its order, and the device library, at the package's version", function () {
    const version = require('../../package.json').version;
    const base = 'github:tcpmq/node-red-tcpmq/examples/micropython';
    const hub = JSON.parse(fs.readFileSync(path.join(HUB_DIR, 'package.json'), 'utf8'));
    const files = [...bootOrder(), 'main'].map((name) => `${name}.py`);
    assert.deepEqual(hub, { urls: files.map((file) => [file, `${base}/hub/${file}`]), version });
    const library = JSON.parse(fs.readFileSync(path.join(CLIENT_DIR, 'package.json'), 'utf8'));
    assert.deepEqual(library, { urls: [['tcpmq.py', `${base}/tcpmq.py`]], version });
    for (const [file] of [...hub.urls]) assert.ok(fs.existsSync(path.join(HUB_DIR, file)), file);
  });

  it('every hub module imports from source alone in a 96 KB heap', function () {
    for (const name of hubModules()) {
      const run = importIn(96, [name]);
      assert.ok(run.ok, `${name}.py in 96 KB:\n${run.error}`);
    }
  });

  it("all of them import from source in main.py's order in a 96 KB heap", function () {
    const order = bootOrder();
    const run = importIn(96, order);
    assert.ok(run.ok, `${order.join(', ')} in 96 KB:\n${run.error}`);
    console.log(`      in use after importing them all: ${run.inUse[run.inUse.length - 1]} bytes`);
  });

  it('tcpmq.py (the ESP8266 device library) imports in a 28 KB heap', function () {
    const run = importIn(28, ['tcpmq'], { from: CLIENT_DIR });
    assert.ok(run.ok, `tcpmq.py in 28 KB:\n${run.error}`);
    console.log(`      in use after importing tcpmq.py: ${run.inUse[0]} bytes`);
  });

  it("build-mpy's .mpy files boot the hub and serve 7 connections in an ESP32's first 56 KB", async function () {
    const dir = boardDir();
    const board = path.join(dir, 'board');
    const devices = [];
    let child;
    try {
      // As on the board: the .mpy files, main.py and hub_config.py; the Wi-Fi stand-in first on the path.
      execFileSync(path.join(HUB_DIR, 'build-mpy'), [board], { env: { ...process.env, MPY_CROSS } });
      assert.deepEqual(
        fs.readdirSync(board).sort(),
        hubModules()
          .map((name) => `${name}.mpy`)
          .sort(),
      );
      fs.copyFileSync(path.join(HUB_DIR, 'main.py'), path.join(board, 'main.py'));
      fs.copyFileSync(path.join(__dirname, 'hub_net_standin.py'), path.join(dir, 'hub_net.py'));
      const port = await freePort();
      fs.writeFileSync(path.join(dir, 'hub_config.py'), `HOST = '127.0.0.1'\nPORT = ${port}\nSTATUS_EVERY = 1\n`);
      const boot = `import sys; sys.path.append(${JSON.stringify(board)}); import main`;
      child = spawn(MICROPYTHON32, ['-X', 'heapsize=56K', '-c', boot], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (chunk) => (output += chunk));
      child.stderr.on('data', (chunk) => (output += chunk));
      let exited = false;
      child.on('exit', () => (exited = true));
      const console_ = () => output.split('\n').slice(-12).join('\n');
      await waitFor(
        () => /listening on/.test(output) || exited,
        () => `the hub to listen:\n${console_()}`,
      );
      assert.match(output, /heap: \d+ bytes free/);
      for (let i = 0; i < 7; i++) devices.push(await Device.connect(port));
      for (let round = 0; round < 50; round++) {
        await Promise.all(
          devices.map(async (device, i) => {
            const reply = await device.request(JSON.stringify([i, (i + 1) % 7, `r${round}`]));
            assert.match(reply, /^(None|r\d+)$/, console_());
          }),
        );
      }
      const from = output.length;
      await waitFor(
        () => /status: 7 boards online of 7, 7 connections, 350 requests/.test(output.slice(from)) || exited,
        () => `a status line after 350 requests:\n${console_()}`,
      );
      assert.equal(exited, false, console_());
      const free = Number(output.slice(from).match(/heap (\d+) free/)[1]);
      console.log(`      .mpy in a 56 KB heap, 7 connections: ${free} bytes free`);
    } finally {
      for (const device of devices) device.close();
      if (child && child.exitCode === null) child.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

'use strict';
// Installable like any palette package: `npm pack`, install the tarball into a
// fresh Node-RED user directory, start node-red, and check what it loaded.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync, spawn, spawnSync } = require('node:child_process');
const { Device, exampleFiles, freePort, waitFor } = require('../support');
const { RUNTIMES, startNodeRed, stopNodeRed } = require('./node-red-process');
const { nodeRedHome } = require('../../tools/node-red-home');

const root = path.join(__dirname, '..', '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';
// Run the machine's npm as a user would: without the npm_* settings of the `npm test`
// that runs us, and not the older npm that a dependency puts in node_modules/.bin.
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name)));
cleanEnv.PATH = (process.env.PATH ?? '')
  .split(path.delimiter)
  .filter((dir) => !dir.includes(`node_modules${path.sep}.bin`))
  .join(path.delimiter);

for (const { name: runtime, node } of RUNTIMES) {
  const version = require(`${runtime}/package.json`).version;

  describe(`the packed tarball in a fresh user directory of Node-RED ${version}`, function () {
    this.timeout(120000);
    let work;
    let editorPort;
    let tcpmqPort;
    let nodeRed;

    async function get(route) {
      const response = await fetch(`http://127.0.0.1:${editorPort}${route}`, {
        headers: { accept: 'application/json' },
      });
      assert.ok(response.ok, `GET ${route}: HTTP ${response.status}`);
      return response.json();
    }

    before(async function () {
      work = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpmq-pack-'));
      const userDir = path.join(work, 'user');
      fs.mkdirSync(userDir);
      // --ignore-scripts: the build already ran (npm test builds first); pack what it made.
      const packed = JSON.parse(
        execFileSync(npm, ['pack', '--json', '--ignore-scripts', '--pack-destination', work, root], {
          cwd: work,
          encoding: 'utf8',
          env: cleanEnv,
        }),
      );
      const tarball = path.join(work, packed[0].filename);
      execFileSync(
        npm,
        ['install', '--no-save', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', tarball],
        { cwd: userDir, stdio: 'ignore', env: cleanEnv },
      );
      tcpmqPort = await freePort();
      nodeRedHome({
        dir: userDir,
        link: false,
        flows: [
          { id: 'b1', type: 'tcpmq-broker', host: '127.0.0.1', port: tcpmqPort, replyFormat: 'json' },
          { id: 'in1', type: 'tcpmq-in', z: '', broker: 'b1', wires: [] },
        ],
      });
      nodeRed = await startNodeRed(userDir, { redJs: require.resolve(`${runtime}/red.js`), node, ms: 40000 });
      editorPort = nodeRed.editorPort;
    });

    after(async function () {
      await stopNodeRed(nodeRed);
      fs.rmSync(work, { recursive: true, force: true });
    });

    it('loads the four nodes with their help, catalogues and icon', async function () {
      const nodeSets = (await get('/nodes')).filter((set) => set.module === '@tcpmq/node-red-tcpmq');
      assert.deepEqual(nodeSets.map((set) => [set.types[0], set.enabled, set.err ?? 'no error']).sort(), [
        ['tcpmq-broker', true, 'no error'],
        ['tcpmq-in', true, 'no error'],
        ['tcpmq-out', true, 'no error'],
        ['tcpmq-status', true, 'no error'],
      ]);
      const icons = await get('/icons');
      assert.deepEqual(icons['@tcpmq/node-red-tcpmq'], ['tcpmq.svg']);
      for (const type of ['tcpmq-broker', 'tcpmq-in', 'tcpmq-out', 'tcpmq-status']) {
        const catalogue = await get(`/locales/@tcpmq/node-red-tcpmq/${type}?lng=en-US`);
        assert.ok(catalogue[type]?.label, `${type} has its message catalogue`);
      }
      const html = await (
        await fetch(`http://127.0.0.1:${editorPort}/nodes`, { headers: { accept: 'text/html' } })
      ).text();
      for (const type of ['tcpmq-broker', 'tcpmq-in', 'tcpmq-out', 'tcpmq-status']) {
        assert.match(html, new RegExp(`data-help-name="${type}"`), `${type} has help text`);
      }
    });

    it('loads the sidebar plugin with its catalogue and its admin API', async function () {
      const plugins = await get('/plugins');
      assert.deepEqual(
        plugins.filter((p) => p.module === '@tcpmq/node-red-tcpmq').map((p) => [p.id, p.enabled, p.err ?? 'no error']),
        [['@tcpmq/node-red-tcpmq/tcpmq-sidebar', true, 'no error']],
      );
      const catalogues = await get('/plugins/messages?lng=zh-CN');
      assert.match(catalogues['@tcpmq/node-red-tcpmq/tcpmq-sidebar']['tcpmq-sidebar'].title, /TCPMQ/);
      const html = await (
        await fetch(`http://127.0.0.1:${editorPort}/plugins`, { headers: { accept: 'text/html' } })
      ).text();
      assert.match(html, /registerPlugin\('tcpmq-sidebar'/);
      const [broker] = await get('/tcpmq/brokers');
      assert.equal(broker.id, 'b1');
    });

    it('lists every example in the Import menu', async function () {
      for (const file of exampleFiles()) {
        // The menu lists one folder at a time: examples/micropython/ is a sub-menu.
        const folder = path.dirname(file) === '.' ? '' : `/${path.dirname(file)}`;
        const listed = JSON.stringify(await get(`/library/examples/flows/@tcpmq/node-red-tcpmq${folder}`));
        assert.ok(listed.includes(`"${path.basename(file, '.json')}"`), `${file} is listed in ${listed}`);
      }
    });

    it('serves devices from the installed package', async function () {
      const device = await Device.connect(tcpmqPort);
      try {
        assert.equal(await device.request('[1,1,"packed"]'), '"packed"');
      } finally {
        device.close();
      }
    });

    // The command does not depend on Node-RED: checked once, with the first Node-RED.
    const once = runtime === RUNTIMES[0].name ? it : () => undefined;
    once('runs tcpmq-gateway from the installed package, as npx does', async function () {
      const userDir = path.join(work, 'user');
      const run = (args) =>
        spawnSync(npx, ['--no-install', 'tcpmq-gateway', ...args], { cwd: userDir, env: cleanEnv, encoding: 'utf8' });
      const help = run(['--help']);
      assert.equal(help.status, 0, help.stderr);
      assert.match(help.stdout, /--publish-interval MS/);
      const port = await freePort();
      // The command npx runs, started directly so that stopping it stops the gateway (npx would leave it running).
      const bin = path.join(userDir, 'node_modules', '.bin', 'tcpmq-gateway');
      const gateway = spawn(bin, ['--host', '127.0.0.1', '--port', String(port)], { cwd: userDir, env: cleanEnv });
      try {
        let output = '';
        gateway.stdout.on('data', (chunk) => (output += chunk));
        await waitFor(
          () => /listening on/.test(output),
          () => `the gateway to listen; output: ${output}`,
          15000,
        );
        const device = await Device.connect(port);
        assert.equal(await device.request('[1,1,"from npx"]'), 'from npx');
        device.close();
      } finally {
        gateway.kill('SIGTERM');
        await new Promise((resolve) => gateway.once('exit', resolve));
      }
    });
  });
}

#!/usr/bin/env node
// `npm start`: runs Node-RED from this project's own dependencies, with these
// nodes and FlowFuse Dashboard 2 loaded and the demo flow deployed, in a
// private user directory.
//
//   npm start -- [--port 1880] [--tcpmq-port 9999] [--offline-after 30] [--user-dir .node-red]
'use strict';
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { parseArgs } = require('node:util');
const { settingsText, nodeRedHome } = require('../tools/node-red-home');

const root = path.join(__dirname, '..');
/** The demo: the device page and the fleet page (config nodes they share appear in both files once). */
const DEMO = ['demo-dashboard.json', 'fleet-dashboard.json'].map((file) => path.join(root, 'examples', file));

const { values: options } = parseArgs({
  options: {
    port: { type: 'string', default: '1880' },
    'tcpmq-port': { type: 'string', default: '9999' },
    'offline-after': { type: 'string', default: '30' },
    'user-dir': { type: 'string', default: path.join(root, '.node-red') },
  },
});
const editorPort = Number(options.port);
const tcpmqPort = Number(options['tcpmq-port']);
const userDir = path.resolve(options['user-dir']);

/** Rejects with a plain sentence if `port` is taken on this machine. */
function checkFree(port, what) {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (/** @type {NodeJS.ErrnoException} */ err) =>
      reject(
        new Error(
          `port ${port} (${what}) is ${err.code === 'EADDRINUSE' ? 'already in use by another program' : `not available: ${err.code}`}. ` +
            `Stop that program or pick another port: npm start -- --port <editor port> --tcpmq-port <device port>`,
        ),
      ),
    );
    probe.listen(port, () => probe.close(resolve));
  });
}

/** Settings for the private user directory: a demo, so no update prompts or tours. */
const SETTINGS = settingsText('editorTheme: { tours: false, projects: { enabled: false } }');

/**
 * The user directory (on a fresh checkout it does not exist yet): settings, this package linked in as an
 * installed module, and the demo flow; what is already there stays.
 */
function prepareUserDir() {
  const flows = path.join(userDir, 'flows.json');
  if (fs.existsSync(flows)) console.log(`Using your flows in ${flows} (delete it to get the demo back).`);
  const byId = new Map();
  for (const file of DEMO) for (const node of JSON.parse(fs.readFileSync(file, 'utf8'))) byId.set(node.id, node);
  const demo = [...byId.values()];
  for (const node of demo) {
    if (node.type === 'tcpmq-broker')
      Object.assign(node, { port: tcpmqPort, offlineAfter: Number(options['offline-after']) });
  }
  nodeRedHome({ dir: userDir, settings: SETTINGS, flows: demo, keep: true });
}

async function main() {
  if (!fs.existsSync(path.join(root, 'dist', 'nodes', 'tcpmq-broker.js'))) {
    throw new Error('the nodes are not built: run `npm install` (or `npm run build`) first');
  }
  try {
    require.resolve('@flowfuse/node-red-dashboard/package.json');
  } catch {
    throw new Error('FlowFuse Dashboard 2 is missing: run `npm install` (with dev dependencies) first');
  }
  await checkFree(editorPort, 'Node-RED editor');
  await checkFree(tcpmqPort, 'TCPMQ devices');
  prepareUserDir();
  const redJs = require.resolve('node-red/red.js');
  const child = spawn(
    process.execPath,
    [redJs, '--settings', path.join(userDir, 'settings.js'), '--userDir', userDir, '--port', String(editorPort)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  child.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    if (/Server now running/.test(chunk.toString())) {
      console.log(`\n  Node-RED editor:   http://127.0.0.1:${editorPort}/`);
      console.log(`  Dashboard:         http://127.0.0.1:${editorPort}/dashboard`);
      console.log(`  The whole fleet:   http://127.0.0.1:${editorPort}/dashboard/fleet`);
      console.log(`  TCPMQ devices:     connect to this machine, port ${tcpmqPort}`);
      console.log('  Stop with Ctrl-C.\n');
    }
  });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill('SIGINT'));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 0 : 1)));
}

main().catch((err) => {
  console.error(`npm start: ${err.message}`);
  process.exit(1);
});

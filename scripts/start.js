#!/usr/bin/env node
// `npm start`: runs Node-RED from this project's own dependencies, with these
// nodes loaded and the demo flow deployed, in a private user directory.
//
//   npm start -- [--port 1880] [--tcpmq-port 9999] [--user-dir .node-red]
'use strict';
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { parseArgs } = require('node:util');

const root = path.join(__dirname, '..');
const DEMO = path.join(root, 'examples', 'sensor-dashboard-and-offline-alert.json');

const { values: options } = parseArgs({
  options: {
    port: { type: 'string', default: '1880' },
    'tcpmq-port': { type: 'string', default: '9999' },
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
    probe.once('error', (err) =>
      reject(new Error(`port ${port} (${what}) is ${err.code === 'EADDRINUSE' ? 'already in use by another program' : `not available: ${err.code}`}. ` +
        `Stop that program or pick another port: npm start -- --port <editor port> --tcpmq-port <device port>`)),
    );
    probe.listen(port, () => probe.close(resolve));
  });
}

/** The user directory: this package linked in as an installed module, and the demo flow. */
function prepareUserDir() {
  const link = path.join(userDir, 'node_modules', '@tcpmq', 'node-red-tcpmq');
  fs.mkdirSync(path.dirname(link), { recursive: true });
  if (!fs.existsSync(link)) fs.symlinkSync(root, link, 'dir');
  const flows = path.join(userDir, 'flows.json');
  if (!fs.existsSync(flows)) {
    const demo = JSON.parse(fs.readFileSync(DEMO, 'utf8'));
    for (const node of demo) if (node.type === 'tcpmq-broker') node.port = tcpmqPort;
    fs.writeFileSync(flows, JSON.stringify(demo, null, 2));
  } else {
    console.log(`Using your flows in ${flows} (delete it to get the demo back).`);
  }
}

async function main() {
  if (!fs.existsSync(path.join(root, 'nodes', 'tcpmq-broker.js'))) {
    throw new Error('the nodes are not built: run `npm install` (or `npm run build`) first');
  }
  await checkFree(editorPort, 'Node-RED editor');
  await checkFree(tcpmqPort, 'TCPMQ devices');
  prepareUserDir();
  const redJs = require.resolve('node-red/red.js');
  const child = spawn(process.execPath, [redJs, '--userDir', userDir, '--port', String(editorPort), 'flows.json'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  child.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    if (/Server now running/.test(chunk.toString())) {
      console.log(`\n  Node-RED editor:   http://127.0.0.1:${editorPort}/`);
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

'use strict';
// A real node-red process in a temporary user directory, for the end-to-end tests:
// deploys through the admin API, restarts, kills.
const assert = require('node:assert/strict');
const path = require('node:path');
const { freePort } = require('../support');
const { startProcess, stopProcess } = require('../../tools/process');
const { root, settingsText, nodeRedHome } = require('../../tools/node-red-home');

/** @typedef {import('../../tools/process').StartedProcess} StartedProcess */

/**
 * A new user directory with this package installed as a link (as `npm link`
 * would) and the given settings.js text and flows. Returns its path.
 */
function linkedUserDir(prefix, settings = settingsText(), flows = []) {
  return nodeRedHome({ prefix, settings, flows });
}

/**
 * Starts node-red (`redJs`: Node-RED 4 by default, run by the `node` binary,
 * this one by default) on a free editor port in `userDir`, and waits until its
 * output matches `ready`. The child carries
 * `output`, `exited` (a promise of the exit code) and `editorPort`.
 *
 * @param {string} userDir
 * @param {{ ready?: RegExp, redJs?: string, node?: string, ms?: number }} [options]
 * @returns {Promise<StartedProcess & { editorPort: number }>}
 */
async function startNodeRed(
  userDir,
  {
    ready = /listening on 127\.0\.0\.1:\d+/,
    redJs = require.resolve('node-red/red.js'),
    node = process.execPath,
    ms = 30000,
  } = {},
) {
  const editorPort = await freePort();
  const settings = path.join(userDir, 'settings.js');
  const args = [redJs, '--settings', settings, '--userDir', userDir, '--port', String(editorPort)];
  const child = await startProcess(node, args, { ready, ms, name: 'node-red' });
  return Object.assign(child, { editorPort });
}

/**
 * Stops `child` with `signal` if it still runs; resolves with its exit code.
 *
 * @param {StartedProcess | undefined | null} child
 * @param {NodeJS.Signals} [signal]
 */
function stopNodeRed(child, signal = 'SIGINT') {
  return stopProcess(child, signal);
}

/** One admin API call; resolves with the parsed JSON answer (undefined for none). */
async function api(editorPort, method, route, body, headers = {}) {
  const response = await fetch(`http://127.0.0.1:${editorPort}${route}`, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${route}: HTTP ${response.status} ${text}`);
  return text === '' ? undefined : JSON.parse(text);
}

/** Deploys `flows` as the editor's Deploy button does (a full deploy unless `type` says otherwise). */
function deploy(editorPort, flows, type = 'full') {
  return api(editorPort, 'POST', '/flows', flows, { 'Node-RED-Deployment-Type': type });
}

/**
 * The Node-RED versions the package is tested on: the npm package of each, and
 * the node binary that runs it (Node-RED 5 needs Node 22: test/runtimes/node-22,
 * a dev dependency).
 */
const RUNTIMES = [
  { name: 'node-red', node: process.execPath },
  { name: 'node-red-3', node: process.execPath },
  { name: 'node-red-5', node: require('node-22') },
];

/** Node-RED's own websocket client, for its comms (Node 20 has none built in). */
const WebSocket = require(
  require.resolve('ws', { paths: [path.dirname(require.resolve('@node-red/editor-api/package.json'))] }),
);

module.exports = { RUNTIMES, WebSocket, root, settingsText, linkedUserDir, startNodeRed, stopNodeRed, api, deploy };

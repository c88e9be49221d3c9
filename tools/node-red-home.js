'use strict';
// A Node-RED user directory with this package in it, for `npm start`, the end-to-end tests and the bench.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

/** This checkout: what the user directory's node_modules/@tcpmq/node-red-tcpmq points to. */
const root = path.join(__dirname, '..');

/** settings.js text: flows.json, no credential secret, no telemetry, plus `extra` (JS object text). */
function settingsText(extra = '') {
  const base = "flowFile: 'flows.json', credentialSecret: false, telemetry: { enabled: false }";
  return `module.exports = { ${base}${extra ? `, ${extra}` : ''} };\n`;
}

/**
 * A Node-RED user directory; returns its path.
 *
 * - `dir`: the directory, created if missing; without it, a new temporary one whose name starts with `prefix`.
 * - `settings`, `flows`: settings.js text and the flows of flows.json.
 * - `link`: this package installed as a link, node_modules/@tcpmq/node-red-tcpmq -> this checkout (as
 *   `npm link` would). False when the caller installs the package itself (npm pack, npm install).
 * - `nodes`: files copied into the directory's nodes/ folder, which Node-RED loads as local nodes.
 * - `keep`: leave a settings.js, flows.json or link already there as it is (`npm start` keeps the user's flows).
 *
 * @param {{
 *   dir?: string,
 *   prefix?: string,
 *   settings?: string,
 *   flows?: object[],
 *   link?: boolean,
 *   nodes?: string[],
 *   keep?: boolean,
 * }} [options]
 * @returns {string}
 */
function nodeRedHome({
  dir,
  prefix = 'tcpmq-',
  settings = settingsText(),
  flows = [],
  link = true,
  nodes = [],
  keep = false,
} = {}) {
  const userDir = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.mkdirSync(userDir, { recursive: true });
  const write = (file, text) => {
    const target = path.join(userDir, file);
    if (!keep || !fs.existsSync(target)) fs.writeFileSync(target, text);
  };
  write('settings.js', settings);
  if (link) {
    const linked = path.join(userDir, 'node_modules', '@tcpmq', 'node-red-tcpmq');
    fs.mkdirSync(path.dirname(linked), { recursive: true });
    if (!keep || !fs.existsSync(linked)) fs.symlinkSync(root, linked, 'dir');
  }
  if (nodes.length > 0) {
    fs.mkdirSync(path.join(userDir, 'nodes'), { recursive: true });
    for (const file of nodes) fs.copyFileSync(file, path.join(userDir, 'nodes', path.basename(file)));
  }
  write('flows.json', JSON.stringify(flows, null, 2));
  return userDir;
}

module.exports = { root, settingsText, nodeRedHome };

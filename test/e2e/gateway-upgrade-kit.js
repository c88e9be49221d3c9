'use strict';
// For the gateway's upgrade test and the bench: a copy of the package whose version can be bumped on
// disk.
const fs = require('node:fs');
const path = require('node:path');

/**
 * Copies what the installed package runs (bin/, dist/, package.json; node_modules linked) to `to`.
 *
 * @param {string} root
 * @param {string} to
 */
function copyPackage(root, to) {
  fs.mkdirSync(to, { recursive: true });
  for (const name of ['bin', 'dist', 'package.json'])
    fs.cpSync(path.join(root, name), path.join(to, name), { recursive: true });
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(to, 'node_modules'), 'dir');
  return { root: to, bin: path.join(to, 'bin', 'tcpmq-gateway.js') };
}

/**
 * Writes `version` into the copy's package.json, as an update on disk would.
 *
 * @param {string} root
 * @param {string} version
 */
function setVersion(root, version) {
  const file = path.join(root, 'package.json');
  const pkg = JSON.parse(fs.readFileSync(file, 'utf8'));
  fs.writeFileSync(file, JSON.stringify({ ...pkg, version }, null, 2));
}

module.exports = { copyPackage, setVersion };

'use strict';
// For the gateway's upgrade test and the bench: a copy of the package whose version can be bumped on
// disk, and a process's children from /proc.
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

/**
 * The PIDs whose parent is `pid`.
 *
 * @param {number | undefined} pid
 * @returns {number[]}
 */
function childrenOf(pid) {
  const children = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return children;
}

/**
 * Whether process `pid` runs (a zombie does not).
 *
 * @param {number} pid
 */
function alive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

module.exports = { copyPackage, setVersion, childrenOf, alive };

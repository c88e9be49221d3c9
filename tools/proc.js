'use strict';
// Processes as Linux's /proc shows them, for the tests and the bench that start gateways (a holder and
// its worker) and must know what runs, what it holds in memory, and that nothing is left behind.
const fs = require('node:fs');

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
 * `pid` and its descendants.
 *
 * @param {number} pid
 * @returns {number[]}
 */
function processTree(pid) {
  return [pid, ...childrenOf(pid).flatMap(processTree)];
}

/**
 * Whether process `pid` runs (a zombie, dead but not reaped, does not).
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

/**
 * A process's resident memory in kB, or undefined once it is gone (a zombie has none).
 *
 * @param {number} pid
 * @returns {number | undefined}
 */
function rssKb(pid) {
  try {
    const match = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

module.exports = { childrenOf, processTree, alive, rssKb };

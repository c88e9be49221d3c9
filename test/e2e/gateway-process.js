'use strict';
// A real tcpmq-gateway process (bin/tcpmq-gateway.js), for the end-to-end tests.
const path = require('node:path');
const { spawn } = require('node:child_process');
const { waitFor } = require('../support');

const BIN = path.join(__dirname, '..', '..', 'bin', 'tcpmq-gateway.js');

/**
 * Starts the gateway with `args` and waits until its log matches `ready`. The
 * child carries `output` (stdout and stderr so far) and `exited` (a promise of
 * its exit code, or signal).
 */
async function startGateway(args, { ready = /listening on /, env = {}, ms = 10000 } = {}) {
  const child = spawn(process.execPath, [BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  child.output = '';
  child.stdout.on('data', (chunk) => (child.output += chunk));
  child.stderr.on('data', (chunk) => (child.output += chunk));
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`tcpmq-gateway exited:\n${child.output}`);
      return ready.test(child.output);
    },
    () => `tcpmq-gateway to be ready (${ready}); output so far:\n${child.output}`,
    ms,
  );
  return child;
}

/** Stops `child` with `signal` if it still runs; resolves with its exit code. */
async function stopGateway(child, signal = 'SIGTERM') {
  if (child && child.exitCode === null && child.signalCode === null) child.kill(signal);
  return child?.exited;
}

module.exports = { BIN, startGateway, stopGateway };

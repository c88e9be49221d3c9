'use strict';
// A child process started for a test or the bench (node-red, tcpmq-gateway), ready once its output says so.
const { spawn } = require('node:child_process');
const { waitFor } = require('./wait');

/**
 * A started child: its `output` so far (stdout and stderr), `exited` (its exit code, or the signal that ended it)
 * and, for node-red, the `editorPort` it serves.
 *
 * @typedef {import('node:child_process').ChildProcess & {
 *   output: string,
 *   exited: Promise<number | string | null>,
 *   editorPort?: number,
 * }} StartedProcess
 */

/**
 * Starts `command` with `args` and waits until its output (stdout and stderr)
 * matches `ready`; rejects, with the output so far, if it exits first or
 * takes longer than `ms`. The child carries `output` (everything it printed)
 * and `exited` (a promise of its exit code, or the signal that ended it).
 *
 * @param {string} command
 * @param {readonly string[]} args
 * @param {{ ready: RegExp, env?: NodeJS.ProcessEnv, ms?: number, name?: string }} options
 * @returns {Promise<StartedProcess>}
 */
async function startProcess(command, args, { ready, env = process.env, ms = 30000, name = command }) {
  const child = /** @type {StartedProcess} */ (spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env }));
  child.output = '';
  child.stdout.on('data', (chunk) => (child.output += chunk));
  child.stderr.on('data', (chunk) => (child.output += chunk));
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`${name} exited:\n${child.output}`);
      return ready.test(child.output);
    },
    () => `${name} to be ready (${ready}); output so far:\n${child.output}`,
    ms,
  );
  return child;
}

/**
 * Stops `child` with `signal` if it still runs; resolves with its exit code.
 *
 * @param {StartedProcess | undefined | null} child
 * @param {NodeJS.Signals} [signal]
 */
async function stopProcess(child, signal = 'SIGTERM') {
  if (child && child.exitCode === null && child.signalCode === null) child.kill(signal);
  return child?.exited;
}

module.exports = { startProcess, stopProcess };

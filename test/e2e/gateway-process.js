'use strict';
// A real tcpmq-gateway process (bin/tcpmq-gateway.js), for the end-to-end tests.
const path = require('node:path');
const { startProcess, stopProcess } = require('../../tools/process');

const BIN = path.join(__dirname, '..', '..', 'bin', 'tcpmq-gateway.js');

/**
 * Starts the gateway with `args`; resolves once its log matches `ready` (see tools/process.js).
 *
 * @param {readonly string[]} args
 * @param {{ ready?: RegExp, env?: NodeJS.ProcessEnv, ms?: number }} [options]
 */
function startGateway(args, { ready = /listening on /, env = {}, ms = 10000 } = {}) {
  return startProcess(process.execPath, [BIN, ...args], {
    ready,
    env: { ...process.env, ...env },
    ms,
    name: 'tcpmq-gateway',
  });
}

/** Stops `child` with `signal` if it still runs; resolves with its exit code. */
const stopGateway = stopProcess;

module.exports = { BIN, startGateway, stopGateway };

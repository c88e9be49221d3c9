'use strict';
// Waiting on a condition instead of a fixed time, for the tests, the bench and npm start.

/**
 * Resolves when `check()` is true, polling; rejects after `ms` with `what` (or
 * `what()`, for a description of how things stand at that moment).
 */
async function waitFor(check, what, ms = 5000) {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until)
      throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'function' ? what() : what}`);
    await sleep(10);
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

module.exports = { waitFor, sleep };

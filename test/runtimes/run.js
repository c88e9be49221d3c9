'use strict';
// Runs mocha on another Node.js than the one running npm: `node test/runtimes/run.js 22 <mocha arguments>`
// runs it on Node.js 22 (test/runtimes/node-22, from npm ci). TCPMQ_NODE tells the tests which one they are
// meant to run on (test/node-version.test.js checks it).
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const [major, ...args] = process.argv.slice(2);
if (!/^\d+$/.test(major ?? '')) {
  console.error('usage: node test/runtimes/run.js <major version> <mocha arguments>');
  process.exit(2);
}
const node = require(`node-${major}`); // test/runtimes/node-<major>, a dev dependency
const mocha = require.resolve('mocha/bin/mocha.js');
const { status, signal } = spawnSync(node, [mocha, ...args], {
  stdio: 'inherit',
  cwd: path.join(__dirname, '..', '..'),
  env: { ...process.env, TCPMQ_NODE: major },
});
process.exit(status ?? (signal ? 1 : 0));

'use strict';
// The Node.js each job runs on, printed first: the system's for npm test, the one TCPMQ_NODE names for the
// jobs of test/runtimes/run.js (npm run test:node-red-5, test:node-versions).
const assert = require('node:assert/strict');
const path = require('node:path');

const root = path.join(__dirname, '..');

describe(`Node.js ${process.version} (${process.execPath})`, function () {
  const wanted = process.env.TCPMQ_NODE;
  if (wanted) {
    it(`runs on the Node.js ${wanted} this job names`, function () {
      assert.equal(process.versions.node.split('.')[0], wanted, `Node.js ${wanted}, not ${process.version}`);
    });
  } else {
    it("runs on the system's Node.js, not on a binary from the checkout's node_modules", function () {
      const inCheckout = !path.relative(root, process.execPath).startsWith('..');
      assert.ok(!inCheckout, `a node from outside the checkout (the system's), not ${process.execPath}`);
    });
  }
});

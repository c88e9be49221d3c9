// A Node-RED node for the benchmark: counts the messages it receives and
// reports the count at GET /bench-counter on the admin API, with the process's
// memory (after a full garbage collection with ?gc=1, when node runs with --expose-gc).
'use strict';
module.exports = function (RED) {
  let count = 0;
  function BenchCounter(config) {
    RED.nodes.createNode(this, config);
    this.on('input', (msg, send, done) => {
      count++;
      done();
    });
  }
  RED.nodes.registerType('bench-counter', BenchCounter);
  RED.httpAdmin.get('/bench-counter', (req, res) => {
    if (req.query.gc && global.gc) global.gc();
    res.json({ count, memory: process.memoryUsage() });
  });
};

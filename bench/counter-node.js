// A Node-RED node for the benchmark: counts the messages it receives and
// reports the count at GET /bench-counter on the admin API, with the process's
// memory (after a full garbage collection with ?gc=1, when node runs with --expose-gc), and
// with ?latency=1 how long stamped news from another gateway took to arrive.
'use strict';
module.exports = function (RED) {
  let count = 0;
  /** How long remote news stamped `t<send time in ms>` took to reach this flow (the sharing run). */
  let latencies = [];
  function BenchCounter(config) {
    RED.nodes.createNode(this, config);
    this.on('input', (msg, send, done) => {
      count++;
      if (msg.gateway !== undefined && typeof msg.payload === 'string' && msg.payload[0] === 't')
        latencies.push(Date.now() - Number(msg.payload.slice(1)));
      done();
    });
  }
  function latency() {
    const sorted = latencies.sort((x, y) => x - y);
    latencies = [];
    const at = (p) =>
      sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((sorted.length * p) / 100) - 1)] : NaN;
    return { count: sorted.length, p50: at(50), p99: at(99) };
  }
  RED.nodes.registerType('bench-counter', BenchCounter);
  RED.httpAdmin.get('/bench-counter', (req, res) => {
    if (req.query.gc && global.gc) global.gc();
    res.json({ count, memory: process.memoryUsage(), ...(req.query.latency ? { latency: latency() } : {}) });
  });
};

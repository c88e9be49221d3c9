#!/usr/bin/env node
// Long fuzzing run: the generators and properties of test/robustness/fuzz.test.js
// (test/robustness/fuzz-kit.js), with any seed, for as long as asked. Feeds the
// frame reader directly and drives a real broker (in this process) over TCP on
// 127.0.0.1 with rule-following fuzz connections, chaos connections and
// lockstep devices at once. Prints how many cases ran and every failure with
// the seed that replays it. Needs a build (dist/): `npm run build`.
//
//   node bench/fuzz.js [--seconds 60] [--seed N] [--all] [--no-tcp]
//   node bench/fuzz.js --property <name> --case-seed <S>    replay one case
//
// Over TCP also: junk ids (new ids of every spelling and length as fast as the
// broker answers, against maxDevices, while a good device must stay served).
//
// Properties: valid-every-boundary, valid-random-cuts, hostile-input,
// resync-after-garbage, segmentation-invariance, and tcp (one fuzz connection
// against a fresh broker). Properties listed in fuzz-kit's KNOWN_DEFECTS (none
// at present) run only with --all or --property. Exit code 1 if any case
// failed, the broker emitted a warning (an internal error) or anything threw.
'use strict';
const { parseArgs } = require('node:util');
const kit = require('../test/robustness/fuzz-kit');
const { freePort } = require('../tools/free-port');
const { TcpmqBroker } = require('../dist');

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    seed: { type: 'string' },
    property: { type: 'string' },
    'case-seed': { type: 'string' },
    all: { type: 'boolean', default: false },
    'no-tcp': { type: 'boolean', default: false },
  },
});

const seconds = Number(args.seconds);
const seed = args.seed === undefined ? (Date.now() ^ (process.pid << 16)) >>> 0 : Number(args.seed) >>> 0;
const uncaught = [];
process.on('uncaughtException', (err) => uncaught.push(err));
process.on('unhandledRejection', (err) => uncaught.push(err));

function firstLine(err) {
  return String(err && err.message ? err.message : err)
    .split('\n')
    .slice(0, 3)
    .join(' | ');
}

async function startBroker() {
  // A short offlineAfter, so that the fuzzed devices go offline (and their
  // mailboxes expire) during the run too.
  const broker = new TcpmqBroker({ host: '127.0.0.1', port: await freePort(), offlineAfter: 2 });
  const warnings = [];
  broker.on('warning', (message) => warnings.push(message));
  broker.start();
  while (broker.status.state !== 'listening') await kit.pause(10);
  return { broker, port: broker.status.port, warnings };
}

async function replay(property, caseSeed) {
  if (property === 'tcp') {
    const { broker, port, warnings } = await startBroker();
    try {
      const result = await kit.fuzzConnection(port, caseSeed, `fz-${caseSeed}`, { frames: 15 });
      console.log(
        `tcp case ${caseSeed}: ok (${result.frames} frames, ${result.bytes} bytes); warnings: ${warnings.length}`,
      );
    } finally {
      await broker.stop();
    }
    return;
  }
  if (!kit.PROPERTIES[property]) throw new Error(`no property ${property}`);
  const result = kit.PROPERTIES[property](caseSeed);
  console.log(`${property} case ${caseSeed}: ok (${result.bytes} bytes)`);
}

/** Frame reader properties, in slices of ~5 ms so that the TCP part (same event loop) runs meanwhile. */
async function runReaderProperties(until, stats, failures) {
  const names = Object.keys(kit.PROPERTIES).filter((name) => args.all || !kit.KNOWN_DEFECTS.has(name));
  for (const name of names) stats[name] = { cases: 0, bytes: 0, failed: 0 };
  let index = 0;
  while (Date.now() < until) {
    const sliceEnd = Date.now() + 5;
    while (Date.now() < sliceEnd) {
      for (const name of names) {
        const caseSeed = kit.caseSeed(seed, index);
        const stat = stats[name];
        stat.cases++;
        try {
          stat.bytes += kit.PROPERTIES[name](caseSeed).bytes;
        } catch (err) {
          stat.failed++;
          if (failures.length < 50) failures.push({ property: name, index, caseSeed, message: firstLine(err) });
        }
      }
      index++;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Waves of 8 fuzz connections, 4 chaos connections and 2 lockstep devices against one broker. */
async function runTcp(until, stats, failures) {
  const { broker, port, warnings } = await startBroker();
  let wave = 0;
  try {
    while (Date.now() < until) {
      let done = false;
      const lockstep = [0, 1].map((i) => kit.lockstepDevice(port, `lock-${i}`, () => done).catch((err) => err));
      const fuzz = [];
      for (let i = 0; i < 8; i++) {
        const caseSeed = kit.caseSeed(seed, 1_000_000 + wave * 8 + i);
        fuzz.push(
          kit.fuzzConnection(port, caseSeed, i % 2 ? `fz-${caseSeed}` : caseSeed, { frames: 15 }).then(
            (result) => {
              stats.fuzzConnections++;
              stats.frames += result.frames;
            },
            (err) => {
              stats.failed++;
              if (failures.length < 50)
                failures.push({ property: 'tcp', index: wave * 8 + i, caseSeed, message: firstLine(err) });
            },
          ),
        );
      }
      const chaos = [];
      for (let i = 0; i < 4; i++) {
        chaos.push(
          kit.chaosConnection(port, kit.caseSeed(seed, 2_000_000 + wave * 4 + i), 65536).then(
            (result) => {
              stats.chaosConnections++;
              stats.chaosBytes += result.bytes;
            },
            () => {},
          ),
        );
      }
      await Promise.all([...fuzz, ...chaos]);
      done = true;
      for (const result of await Promise.all(lockstep)) {
        if (typeof result === 'number') stats.lockstepReplies += result;
        else {
          stats.failed++;
          if (failures.length < 50)
            failures.push({ property: 'tcp-lockstep', index: wave, caseSeed: seed, message: firstLine(result) });
        }
      }
      wave++;
    }
  } finally {
    stats.protocolErrors = broker.counters.protocolErrors;
    stats.oversize = broker.counters.oversize;
    stats.warnings = warnings.length;
    stats.firstWarnings = warnings.slice(0, 5);
    stats.devices = broker.devices.size;
    stats.offline = broker.deviceTable().filter((d) => !d.online).length;
    await broker.stop();
  }
}

/** A junk id: a huge integer, another spelling of a number, or a string with controls, separators and any length (some beyond 128 bytes). */
function junkId(rng) {
  switch (rng.int(4)) {
    case 0:
      return String(rng.range(1, 9)) + Array.from({ length: rng.range(0, 24) }, () => rng.int(10)).join('');
    case 1:
      return rng.pick(['1.0', '1e0', '-0', '2.50', '12345678901234567890.0']);
    default: {
      const chars = Array.from({ length: rng.range(1, rng.chance(0.2) ? 160 : 40) }, () =>
        String.fromCodePoint(
          rng.pick([rng.int(0x20), rng.range(0x20, 0x7e), 0x2028, 0x202e, rng.range(0x4e00, 0x4fff), 0x85]),
        ),
      );
      return JSON.stringify(chars.join(''));
    }
  }
}

/**
 * Junk ids: one connection sends new ids as fast as the broker answers,
 * while a good device keeps exchanging. The table must stay within
 * maxDevices, the good device must be answered rightly and promptly, and
 * nothing may throw or warn.
 */
async function runJunkIds(until, stats, failures) {
  const maxDevices = 500;
  const broker = new TcpmqBroker({ host: '127.0.0.1', port: await freePort(), offlineAfter: 0.5, maxDevices });
  const warnings = [];
  broker.on('warning', (message) => warnings.push(message));
  broker.start();
  while (broker.status.state !== 'listening') await kit.pause(10);
  const rng = new kit.Rng(kit.caseSeed(seed, 3_000_000));
  const { Device } = require('../test/support');
  const good = await Device.connect(broker.status.port);
  const junk = await Device.connect(broker.status.port);
  let goodRound = 0;
  try {
    while (Date.now() < until) {
      const frames = Array.from({ length: 200 }, () => `[${junkId(rng)},${junkId(rng)},"junk"]`).join('');
      junk.send(frames);
      stats.junkFrames += 200;
      await kit.pause(5);
      const started = Date.now();
      const reply = await good.request(`["good","good","r${++goodRound}"]`, 2000);
      stats.goodWait = Math.max(stats.goodWait, Date.now() - started);
      if (reply !== `r${goodRound}`) throw new Error(`the good device read ${JSON.stringify(reply)} for r${goodRound}`);
      stats.maxTable = Math.max(stats.maxTable, broker.devices.size);
      if (broker.devices.size > maxDevices)
        throw new Error(`${broker.devices.size} device records, over maxDevices ${maxDevices}`);
      while (junk.chunks.length > 0) junk.chunks.shift(); // its replies are not read one by one
    }
  } catch (err) {
    stats.failed++;
    failures.push({ property: 'junk-ids', index: goodRound, caseSeed: seed, message: firstLine(err) });
  } finally {
    stats.goodReplies = goodRound;
    stats.capacityRefused = broker.counters.capacityRefused;
    stats.protocolErrors = broker.counters.protocolErrors;
    stats.warnings = warnings.length;
    stats.firstWarnings = warnings.slice(0, 5);
    good.close();
    junk.close();
    await broker.stop();
  }
}

async function main() {
  if (args.property !== undefined) {
    if (args['case-seed'] === undefined) throw new Error('--property needs --case-seed');
    await replay(args.property, Number(args['case-seed']) >>> 0);
    return 0;
  }
  console.log(
    `fuzz: seed ${seed}, ${seconds} s${args.all ? ', known defects included' : ''}${args['no-tcp'] ? ', no TCP' : ''}`,
  );
  const started = Date.now();
  const until = started + seconds * 1000;
  const readerStats = {};
  const tcpStats = { fuzzConnections: 0, frames: 0, chaosConnections: 0, chaosBytes: 0, lockstepReplies: 0, failed: 0 };
  const junkStats = { junkFrames: 0, goodReplies: 0, goodWait: 0, maxTable: 0, failed: 0 };
  const failures = [];
  await Promise.all([
    runReaderProperties(until, readerStats, failures),
    args['no-tcp'] ? undefined : runTcp(until, tcpStats, failures),
    args['no-tcp'] ? undefined : runJunkIds(until, junkStats, failures),
  ]);
  const elapsed = (Date.now() - started) / 1000;

  let total = 0;
  let failed = 0;
  console.log(`\nframe reader properties (${elapsed.toFixed(1)} s):`);
  for (const [name, stat] of Object.entries(readerStats)) {
    total += stat.cases;
    failed += stat.failed;
    const note = kit.KNOWN_DEFECTS.has(name) ? '  (known defect)' : '';
    console.log(
      `  ${name.padEnd(24)} ${String(stat.cases).padStart(8)} cases  ${(stat.bytes / 1e6).toFixed(1).padStart(9)} MB  ${stat.failed} failed${note}`,
    );
  }
  if (!args['no-tcp']) {
    failed += tcpStats.failed;
    console.log('over TCP:');
    console.log(`  ${tcpStats.fuzzConnections} fuzz connections, ${tcpStats.frames} frames answered exactly`);
    console.log(
      `  ${tcpStats.chaosConnections} chaos connections, ${(tcpStats.chaosBytes / 1e6).toFixed(1)} MB of hostile input`,
    );
    console.log(
      `  ${tcpStats.lockstepReplies} lockstep replies; broker: ${tcpStats.protocolErrors} protocol errors, ${tcpStats.oversize} oversize`,
    );
    console.log(`  ${tcpStats.devices} devices seen, ${tcpStats.offline} offline at the end`);
    // A warning is an internal error in the broker: a failure here.
    failed += tcpStats.warnings;
    console.log(`  warnings (internal errors): ${tcpStats.warnings}`);
    for (const w of tcpStats.firstWarnings) console.log(`    warning: ${w}`);
    failed += junkStats.failed + junkStats.warnings;
    console.log('junk ids (maxDevices 500):');
    console.log(
      `  ${junkStats.junkFrames} junk frames: ${junkStats.capacityRefused} answered but not recorded, ${junkStats.protocolErrors} protocol errors (ids over 128 bytes)`,
    );
    console.log(
      `  largest device table ${junkStats.maxTable}; good device: ${junkStats.goodReplies} replies, all right, longest wait ${junkStats.goodWait} ms`,
    );
    console.log(`  warnings (internal errors): ${junkStats.warnings}`);
    for (const w of junkStats.firstWarnings) console.log(`    warning: ${w}`);
  }
  console.log(
    `cases: ${total} frame reader + ${tcpStats.fuzzConnections + tcpStats.chaosConnections} TCP connections; failures: ${failed}; uncaught: ${uncaught.length}`,
  );
  for (const err of uncaught.slice(0, 5)) console.log(`  UNCAUGHT ${firstLine(err)}`);
  for (const f of failures) {
    console.log(`  FAIL ${f.property} case ${f.index} (seed ${seed}) case-seed ${f.caseSeed}: ${f.message}`);
    if (f.property !== 'tcp-lockstep')
      console.log(`       replay: node bench/fuzz.js --property ${f.property} --case-seed ${f.caseSeed}`);
  }
  return failed > 0 || uncaught.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  },
);

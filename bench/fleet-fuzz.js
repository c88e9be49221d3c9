#!/usr/bin/env node
// Long run of the fleet model (test/e2e/fleet-model.js): two tcpmq-gateway processes, a real mosquitto, a
// Node-RED in fleet mode, boards and /set writers, through random gateway SIGKILL and SIGTERM restarts and
// Node-RED restarts, checked after every step against the model of the fleet's rules. Runs with random
// seeds (or the one given) until the time is up, and prints the figures: steps, restarts of each kind,
// reads, writes, flow messages, violations, each violation with the seed and the line that replays it.
// Needs a build (dist/) and mosquitto.
//
//   node bench/fleet-fuzz.js [--seconds 120] [--steps 60] [--seed N] [--defects]
//
// --steps: steps per seed (a new seed after them); --seed: that seed only, for --steps or until the time is
// up; --defects: steps into the known defects too (KNOWN_DEFECTS in test/e2e/fleet-model.js). Exit code 1
// if any run found a violation.
'use strict';
const fs = require('node:fs');
const { parseArgs } = require('node:util');
const { runFleetModel, randomSeed, noFigures, Violation, KNOWN_DEFECTS } = require('../test/e2e/fleet-model');
const { sleep } = require('../tools/wait');

/** Runs that cannot go on this many times in a row (a build under way, a port taken): the fuzz stops. */
const ERRORS_IN_A_ROW = 5;

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '120' },
    steps: { type: 'string' },
    seed: { type: 'string' },
    defects: { type: 'boolean', default: false },
  },
});

if (!fs.existsSync('/usr/sbin/mosquitto')) {
  const ci = process.env.CI === 'true' || process.env.CI === '1';
  console.error(`fleet-fuzz: mosquitto is missing${ci ? ' (CI=true: a run may not skip)' : '; skipped'}`);
  process.exit(ci ? 1 : 0);
}

const until = Date.now() + Number(args.seconds) * 1000;
const given = args.seed === undefined ? undefined : Number(args.seed) >>> 0;
const steps = args.steps === undefined ? (given === undefined ? 60 : Infinity) : Number(args.steps);
const totals = { runs: 0, errors: 0, ...noFigures() };
const violations = [];
const errors = [];
let stopping = false;
let current;

process.on('SIGINT', () => {
  if (stopping) process.exit(130);
  stopping = true;
  console.log('fleet-fuzz: SIGINT: stopping after this step (again to quit at once)');
  if (current) current.until = 0;
});

function add(figures) {
  for (const [key, value] of Object.entries(figures)) {
    if (key === 'kinds') for (const [kind, count] of Object.entries(value)) totals.kinds[kind] += count;
    else if (key === 'maxRssKb') totals.maxRssKb = Math.max(totals.maxRssKb, value);
    else totals[key] += value;
  }
}

async function main() {
  console.log(`fleet-fuzz: ${args.seconds} s${args.defects ? ', known defects included' : ''}`);
  if (!args.defects) for (const defect of KNOWN_DEFECTS) console.log(`  (known defect kept out: ${defect})`);
  let errorsInARow = 0;
  while (Date.now() < until && !stopping && errorsInARow < ERRORS_IN_A_ROW) {
    const seed = given ?? randomSeed();
    const started = Date.now();
    totals.runs++;
    try {
      const figures = await runFleetModel({
        seed,
        steps,
        until,
        defects: args.defects || KNOWN_DEFECTS.length === 0,
        log: (line) => console.log(line),
        onStart: (model) => (current = model),
      });
      add(figures);
      errorsInARow = 0;
      console.log(
        `  seed ${seed}: ${figures.steps} steps in ${Math.round((Date.now() - started) / 1000)} s, no violation`,
      );
    } catch (err) {
      if (err.figures) add(err.figures);
      if (err instanceof Violation) {
        errorsInARow = 0;
        violations.push(err.message);
        console.log(`  seed ${seed}: VIOLATION\n${err.message}\n`);
      } else {
        // Not a finding: the run could not go on. Another try after a pause (a build may be under way).
        errorsInARow++;
        totals.errors++;
        errors.push(err.message);
        console.log(`  seed ${seed}: the run could not go on\n${err.message}\n`);
        await sleep(5000);
      }
    }
    current = undefined;
    if (given !== undefined) break;
  }
  const kinds = Object.entries(totals.kinds)
    .map(([kind, count]) => `${kind} ${count}`)
    .join(', ');
  console.log(
    [
      `fleet-fuzz: ${totals.runs} run${totals.runs === 1 ? '' : 's'}, ${totals.steps} steps (${kinds}; ${totals.whileDown} while a gateway was down)`,
      `  restarts: gateway SIGKILL ${totals.kinds['gateway-sigkill']}, gateway SIGTERM ${totals.kinds['gateway-sigterm']}, ` +
        `Node-RED SIGTERM ${totals.kinds['node-red-sigterm']}, Node-RED SIGKILL ${totals.kinds['node-red-sigkill']}`,
      `  ${totals.reads} reads (${totals.reports} reports), ${totals.writes} writes ` +
        `(${totals.earlyFlowWrites} by a flow just started), ${totals.clears} clears, ${totals.flowMessages} flow messages, ` +
        `${totals.mqttMailboxMessages} mailbox messages on MQTT ` +
        `(${totals.republished} the same write again)`,
      `  the largest gateway process ${Math.round(totals.maxRssKb / 1024)} MB`,
      `  violations: ${totals.violations}; runs that could not go on: ${totals.errors}`,
    ].join('\n'),
  );
  if (errorsInARow >= ERRORS_IN_A_ROW)
    console.log(`fleet-fuzz: stopped: ${ERRORS_IN_A_ROW} runs in a row could not go on`);
  process.exitCode = violations.length > 0 || errors.length > 0 ? 1 : 0;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});

'use strict';
// Home Assistant's templates rendered by real Jinja2 (Debian's python3-jinja2),
// with `value_json` as Home Assistant sets it: the message's payload, parsed.
const fs = require('node:fs');
const { execFileSync } = require('node:child_process');

const PYTHON = '/usr/bin/python3';

const RENDER = `
import json, sys
import jinja2
env = jinja2.Environment(undefined=jinja2.StrictUndefined)
out = []
for job in json.load(sys.stdin):
    out.append(env.from_string(job["template"]).render(value_json=json.loads(job["payload"])))
print(json.dumps(out))
`;

/** Whether Python 3 with Jinja2 is here. */
function haveJinja() {
  if (!fs.existsSync(PYTHON)) return false;
  try {
    execFileSync(PYTHON, ['-c', 'import jinja2'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Renders each `{ template, payload }` (payload: the MQTT message's text); returns the results in order. */
function render(jobs) {
  const output = execFileSync(PYTHON, ['-c', RENDER], { input: JSON.stringify(jobs), encoding: 'utf8' });
  return JSON.parse(output);
}

module.exports = { haveJinja, render };

'use strict';
// examples/micropython/tcpmq.py inside a real MicroPython VM: the WebAssembly port
// (npm package @micropython/micropython-webassembly-pyscript). That port has no
// sockets, so test/micropython/vm_check.py gives tcpmq.py an in-memory broker; the
// network itself is covered by client.test.js under CPython. Skipped, saying so,
// when the package is missing; MICROPYTHON_WASM may name its micropython.mjs elsewhere.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const { skipWithout } = require('../support');

const EXAMPLES = path.join(__dirname, '..', '..', 'examples', 'micropython');

function wasmEntry() {
  if (process.env.MICROPYTHON_WASM) return process.env.MICROPYTHON_WASM;
  try {
    return require.resolve('@micropython/micropython-webassembly-pyscript/micropython.mjs');
  } catch {
    return undefined;
  }
}

describe('MicroPython client (examples/micropython/tcpmq.py) in a MicroPython VM', function () {
  this.timeout(20000);
  let mp;
  const output = [];

  before(async function () {
    const entry = wasmEntry();
    if (!entry || !fs.existsSync(entry)) {
      skipWithout(this, '@micropython/micropython-webassembly-pyscript', 'npm ci installs it');
    }
    const { loadMicroPython } = await import(pathToFileURL(entry).href);
    mp = await loadMicroPython({ stdout: (line) => output.push(line), stderr: (line) => output.push(line) });
    for (const name of ['tcpmq.py', 'main.py']) mp.FS.writeFile(`/${name}`, fs.readFileSync(path.join(EXAMPLES, name)));
  });

  /** Runs Python; a Python exception fails the test with its traceback. */
  function run(code) {
    try {
      mp.runPython(code);
    } catch (err) {
      throw new Error(`MicroPython: ${err.message}\n${output.join('\n')}`);
    }
  }

  it('exchanges, decodes both dialects, converts ids and backs off under MicroPython', function () {
    run(fs.readFileSync(path.join(__dirname, 'vm_check.py'), 'utf8'));
    assert.match(output.join('\n'), /tcpmq\.py logic OK on micropython/);
  });

  it('keeps the heap flat over thousands of exchanges', function () {
    // Each runPython is its own step: this port collects only between them.
    const retained = [];
    run("import gc\nfor i in range(20): c.exchange(1, '605'); j.exchange(1, '605')");
    for (const rounds of [200, 2000]) {
      run('gc.collect(); heap_before = gc.mem_alloc()');
      run(`for i in range(${rounds}): c.exchange(1, '60%d' % (i % 8)); j.exchange(1, 'x'); c.exchange(i % 3, 'y')`);
      run(`gc.collect(); print('retained', gc.mem_alloc() - heap_before)`);
      retained.push(Number(output[output.length - 1].split(' ')[1]));
    }
    for (const bytes of retained)
      assert.ok(bytes < 512, `heap retained after a run of exchanges: ${retained.join(', ')} bytes`);
  });

  it('compiles main.py', function () {
    run("compile(open('/main.py').read(), 'main.py', 'exec'); print('main.py compiles')");
    assert.equal(output[output.length - 1], 'main.py compiles');
  });
});

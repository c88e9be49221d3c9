'use strict';
// How much heap the hub's modules need on a board: MicroPython's 32-bit unix build
// (../shared/tools/micropython32, objects the size they are on an ESP32) imports them
// in main.py's order, from source or compiled with mpy-cross, in a heap of a given size.
//
//     node test/micropython/hub-heap.js      prints docs/hub.md's memory table
//
// A fleet hub (WIFI_SSID and MQTT_HOST set) imports every module; hub_net.py's
// network and machine are given stand-ins (on a board they are built in).
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..', '..');
const TOOLS = path.join(ROOT, '..', 'shared', 'tools');
const MICROPYTHON32 = process.env.MICROPYTHON32 || path.join(TOOLS, 'micropython32');
const MPY_CROSS = process.env.MPY_CROSS || path.join(TOOLS, 'mpy-cross');
const HUB_DIR = path.join(ROOT, 'examples', 'micropython', 'hub');

/** The modules main.py imports, in its order (read from main.py, so the two cannot differ). */
function bootOrder() {
  const main = fs.readFileSync(path.join(HUB_DIR, 'main.py'), 'utf8');
  const list = main.match(/for name in \(([^)]*)\)/);
  if (!list) throw new Error('main.py has no "for name in (...)" list of modules');
  return ['hub_settings', ...[...list[1].matchAll(/'(\w+)'/g)].map((m) => m[1])];
}

/** Every .py of the hub but main.py. */
function hubModules() {
  return fs
    .readdirSync(HUB_DIR)
    .filter((file) => file.endsWith('.py') && file !== 'main.py')
    .map((file) => file.slice(0, -3));
}

/** A working directory for a fleet hub: hub_config.py, and stand-ins for the board's network and machine. */
function boardDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpmq-hub-heap-'));
  fs.writeFileSync(
    path.join(dir, 'hub_config.py'),
    "WIFI_SSID = 'home'\nMQTT_HOST = '127.0.0.1'\nGATEWAY = 'hub-heap'\nHA_DISCOVERY = True\n",
  );
  fs.writeFileSync(path.join(dir, 'network.py'), 'STA_IF = 0\nAP_IF = 1\n');
  fs.writeFileSync(path.join(dir, 'machine.py'), "def unique_id():\n    return b'\\x00\\x01\\x02'\n");
  return dir;
}

/** The hub's modules compiled with mpy-cross into a new folder (build-mpy does the same on a PC). */
function compileMpy() {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpmq-hub-mpy-'));
  for (const name of hubModules()) {
    execFileSync(MPY_CROSS, ['-o', path.join(out, `${name}.mpy`), path.join(HUB_DIR, `${name}.py`)]);
  }
  return out;
}

/**
 * Imports `modules` one after another in a heap of `heap` KB, collecting between them as main.py does.
 * Returns { ok, inUse: [bytes in use after each import], error }.
 *
 * @param {number} heap KB
 * @param {string[]} modules
 * @param {{ from?: string, dir?: string }} [options] the folder the modules come from; the working directory
 */
function importIn(heap, modules, options = {}) {
  const from = options.from ?? HUB_DIR;
  const dir = options.dir ?? boardDir();
  const script = [
    'import gc, sys',
    `sys.path.append(${JSON.stringify(from)})`,
    'gc.collect()',
    `for name in ${JSON.stringify(modules)}:`,
    '    __import__(name)',
    '    gc.collect()',
    "    print('in use', name, gc.mem_alloc())",
  ].join('\n');
  const run = spawnSync(MICROPYTHON32, ['-X', `heapsize=${heap}K`, '-c', script], { cwd: dir, encoding: 'utf8' });
  if (!options.dir) fs.rmSync(dir, { recursive: true, force: true });
  const inUse = [...run.stdout.matchAll(/^in use (\w+) (\d+)$/gm)].map((m) => Number(m[2]));
  const ok = run.status === 0 && inUse.length === modules.length;
  return { ok, inUse, error: ok ? '' : `${run.stdout}${run.stderr}`.trim().split('\n').slice(-3).join('\n') };
}

/** The smallest heap (KB) in which `modules` import, one after another; bisected between 8 and 256 KB. */
function smallestHeap(modules, options = {}) {
  let low = 8; // fails
  let high = 256; // imports
  if (!importIn(high, modules, options).ok) throw new Error(`${modules.join(', ')} do not import in ${high} KB`);
  while (high - low > 1) {
    const middle = (low + high) >> 1;
    if (importIn(middle, modules, options).ok) high = middle;
    else low = middle;
  }
  return high;
}

/** The measured table: per module of the boot order, source and .mpy. */
function measure() {
  const order = bootOrder();
  const mpyDir = compileMpy();
  try {
    const rows = [];
    const source = importIn(256, order);
    const compiled = importIn(256, order, { from: mpyDir });
    if (!source.ok || !compiled.ok) throw new Error(source.error || compiled.error);
    for (const [i, name] of order.entries()) {
      const chain = order.slice(0, i + 1);
      rows.push({
        name,
        bytes: fs.statSync(path.join(HUB_DIR, `${name}.py`)).size,
        mpyBytes: fs.statSync(path.join(mpyDir, `${name}.mpy`)).size,
        alone: smallestHeap([name]),
        chain: smallestHeap(chain),
        inUse: source.inUse[i],
        mpyChain: smallestHeap(chain, { from: mpyDir }),
        mpyInUse: compiled.inUse[i],
      });
    }
    return rows;
  } finally {
    fs.rmSync(mpyDir, { recursive: true, force: true });
  }
}

const kb = (bytes) => (bytes / 1024).toFixed(1);

if (require.main === module) {
  const rows = measure();
  console.log(
    '| module | source | imports alone in | in use after (main.py order) | imports in (with the ones above) | .mpy | .mpy: in use after | .mpy: imports in |',
  );
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| \`${r.name}\` | ${kb(r.bytes)} KB | ${r.alone} KB | ${kb(r.inUse)} KB | ${r.chain} KB | ${kb(r.mpyBytes)} KB | ${kb(r.mpyInUse)} KB | ${r.mpyChain} KB |`,
    );
  }
}

module.exports = {
  MICROPYTHON32,
  MPY_CROSS,
  HUB_DIR,
  bootOrder,
  hubModules,
  boardDir,
  compileMpy,
  importIn,
  smallestHeap,
};

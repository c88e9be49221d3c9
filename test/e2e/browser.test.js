'use strict';
// A newcomer's first minutes, checked in a real browser (Debian's chromium):
// `npm start` on free ports, `npm run simulate`, then the editor and the dashboard.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const net = require('node:net');
const { Device, every, exampleFiles, exampleFlow, freePort, skipWithout, waitFor } = require('../support');
const { editorSchema } = require('../../dist/settings/schema');

const root = path.join(__dirname, '..', '..');
const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOTS = path.join(root, 'test-output');
const OFFLINE_AFTER = 2;

function run(script, args) {
  const child = spawn(process.execPath, [path.join(root, 'scripts', script), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.output = '';
  child.stdout.on('data', (chunk) => (child.output += chunk));
  child.stderr.on('data', (chunk) => (child.output += chunk));
  child.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  return child;
}

async function stop(child) {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGINT');
    await child.exited;
  }
}

/**
 * `npm start` on free ports in a fresh user directory: the demo flow, or the
 * example `exampleFile` instead (start.js keeps a flows.json it finds).
 */
async function startNodeRed(name, { exampleFile, offlineAfter } = {}) {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), `tcpmq-${name}-`));
  const editorPort = await freePort();
  const tcpmqPort = await freePort();
  if (exampleFile)
    fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify(exampleFlow(exampleFile, tcpmqPort)));
  const args = ['--user-dir', userDir, '--port', String(editorPort), '--tcpmq-port', String(tcpmqPort)];
  if (offlineAfter) args.push('--offline-after', String(offlineAfter));
  const nodeRed = run('start.js', args);
  await waitFor(
    () => /listening on 0\.0\.0\.0:\d+/.test(nodeRed.output),
    `Node-RED to start; output so far:\n${nodeRed.output}`,
    40000,
  );
  return {
    editorPort,
    tcpmqPort,
    async stop() {
      await stop(nodeRed);
      fs.rmSync(userDir, { recursive: true, force: true });
    },
  };
}

function launchBrowser() {
  const { chromium } = require('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

describe('in a browser: editor, dashboard gauge and offline alert', function () {
  this.timeout(90000);
  let nodeRed;
  let editorPort;
  let tcpmqPort;
  let simulator;
  let browser;
  let page;

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) {
      skipWithout(this, CHROMIUM, ".ci/run installs Debian's chromium");
    }
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    nodeRed = await startNodeRed('browser', { offlineAfter: OFFLINE_AFTER });
    ({ editorPort, tcpmqPort } = nodeRed);
    simulator = run('simulate.js', [
      '--devices',
      '2',
      '--port',
      String(tcpmqPort),
      '--interval',
      '0.5',
      '--droppers',
      '0',
    ]);
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1500, height: 820 } });
  });

  after(async function () {
    if (browser) await browser.close();
    await stop(simulator);
    await nodeRed?.stop();
  });

  it('shows the four nodes in the palette and opens the broker dialog with its fields', async function () {
    await page.goto(`http://127.0.0.1:${editorPort}/`);
    for (const type of ['tcpmq-in', 'tcpmq-out', 'tcpmq-status']) {
      await page.waitForSelector(`.red-ui-palette-node[data-palette-type="${type}"]`, { timeout: 30000 });
    }
    // The status dot under tcpmq in counts the simulated devices.
    await page.waitForFunction(
      () => /2 online/.test(document.querySelector('#red-ui-workspace-chart').textContent),
      null,
      { timeout: 15000 },
    );
    await page.screenshot({ path: path.join(SCREENSHOTS, 'editor.png') });
    const brokerId = await page.evaluate(() => {
      let id;
      RED.nodes.eachConfig((node) => {
        if (node.type === 'tcpmq-broker') id = node.id;
      });
      RED.editor.editConfig('', 'tcpmq-broker', id);
      return id;
    });
    assert.ok(brokerId, 'the demo flow has a broker');
    await page.waitForSelector('#node-config-input-port', { state: 'visible' });
    const fields = await page.evaluate(() =>
      Object.fromEntries(
        ['host', 'port', 'replyFormat', 'offlineAfter', 'idleTimeout', 'maxConnections', 'maxFrameBytes'].map(
          (name) => [name, document.querySelector(`#node-config-input-${name}`).value],
        ),
      ),
    );
    assert.deepEqual(fields, {
      host: '0.0.0.0',
      port: String(tcpmqPort),
      replyFormat: 'text',
      offlineAfter: String(OFFLINE_AFTER),
      idleTimeout: '60',
      maxConnections: '1000',
      maxFrameBytes: '65536',
    });
    const label = await page.textContent('label[for="node-config-input-offlineAfter"]');
    assert.match(label, /Offline after/, 'labels come from the message catalogue');
    await page.screenshot({ path: path.join(SCREENSHOTS, 'editor-broker-dialog.png') });
    // A bad value is marked, and the validators say what is wrong from the catalogue.
    await page.fill('#node-config-input-port', '70000');
    await page.fill('#node-config-input-allowFrom', 'kitchen');
    await page.waitForSelector('#node-config-input-port.input-error', { timeout: 5000 });
    const messages = await page.evaluate(() => {
      const broker = RED.nodes.getType('tcpmq-broker').defaults;
      const ttl = RED.nodes.getType('tcpmq-out').defaults.ttl;
      const opt = { label: 'x' };
      return [
        broker.port.validate.call({ mode: 'server' }, '70000', opt),
        broker.maxFrameBytes.validate.call({}, '63', opt),
        broker.allowFrom.validate.call({}, 'kitchen', opt),
        ttl.validate.call({}, '-1', opt),
        broker.port.validate.call({}, '9999', opt),
      ];
    });
    // The editor's ranges are the settings schema's.
    const { port, maxFrameBytes } = editorSchema();
    assert.deepEqual(messages, [
      `a whole number from ${port.min} to ${port.max}`,
      `a whole number from ${maxFrameBytes.min} to ${maxFrameBytes.max}`,
      'comma-separated IP addresses or CIDR ranges, such as 192.168.4.0/24, fd00::/8',
      'a number of seconds, 0 or more (0 = never)',
      true,
    ]);
    // Fleet mode: no host or port; the devices come through an MQTT broker, which it needs.
    await page.selectOption('#node-config-input-mode', 'fleet');
    const shown = await page.evaluate(() =>
      Object.fromEntries(
        ['host', 'port', 'share', 'shareTopic'].map((name) => [
          name,
          document.querySelector(`#node-config-input-${name}`).closest('.form-row').offsetParent !== null,
        ]),
      ),
    );
    assert.deepEqual(shown, { host: false, port: false, share: true, shareTopic: true }, 'rows shown in fleet mode');
    // The device list, in every mode: the demo names device 1.
    const listed = await page.evaluate(() =>
      [...document.querySelectorAll('#node-config-devices .red-ui-editableList-item-content')].map((row) =>
        [...row.querySelectorAll('input, select')].map((field) => field.value),
      ),
    );
    assert.deepEqual(listed, [['1', 'Greenhouse', 'lx', 'sensor', 'illuminance', '2']], "the demo broker's devices");
    assert.ok(await page.isVisible('#node-config-devices'), 'the device list is shown in fleet mode');
    const shareMessage = await page.evaluate(() =>
      RED.nodes.getType('tcpmq-broker').defaults.share.validate.call({ mode: 'fleet' }, '', { label: 'x' }),
    );
    assert.equal(shareMessage, 'choose the MQTT broker the fleet is on');
    await page.screenshot({ path: path.join(SCREENSHOTS, 'editor-broker-fleet.png') });
    await page.click('#node-config-dialog-cancel');
  });

  it('shows a simulated device value on the dashboard gauge', async function () {
    await page.goto(`http://127.0.0.1:${editorPort}/dashboard`);
    await page.waitForFunction(() => /\b60[0-7]\b/.test(document.body.innerText), null, { timeout: 20000 });
    // The demo's broker names device 1 in its device list.
    assert.match(await page.innerText('body'), /Greenhouse/);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'dashboard.png') });
  });

  it('pops up the offline notification after a simulated device stops', async function () {
    await stop(simulator);
    const stoppedAt = Date.now();
    await page.waitForFunction(() => /(Device \d|Greenhouse \(1\)) is offline/.test(document.body.innerText), null, {
      timeout: (OFFLINE_AFTER + 8) * 1000,
    });
    const seconds = (Date.now() - stoppedAt) / 1000;
    assert.ok(seconds >= OFFLINE_AFTER - 0.5, `the alert came ${seconds} s after the devices stopped`);
    await page.waitForTimeout(600); // let the notification finish fading in
    await page.screenshot({ path: path.join(SCREENSHOTS, 'dashboard-offline-alert.png') });
  });

  it('opens every example in the editor with no unknown node', async function () {
    const examples = exampleFiles();
    fs.mkdirSync(path.join(SCREENSHOTS, 'examples'), { recursive: true });
    for (const file of examples) {
      const flow = exampleFlow(file, tcpmqPort);
      const response = await fetch(`http://127.0.0.1:${editorPort}/flows`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
        body: JSON.stringify(flow),
      });
      assert.ok(response.ok, `${file}: deploy HTTP ${response.status}`);
      await page.goto(`http://127.0.0.1:${editorPort}/`);
      await page.waitForFunction(() => window.RED && RED.nodes && RED.nodes.filterNodes({}).length > 0, null, {
        timeout: 30000,
      });
      const unknown = await page.evaluate(() => RED.nodes.filterNodes({ type: 'unknown' }).map((n) => n.name || n.id));
      assert.deepEqual(unknown, [], `${file}: unknown nodes`);
      await page.waitForTimeout(300);
      await page.screenshot({
        path: path.join(SCREENSHOTS, 'examples', file.replace(/[\\/]/g, '-').replace(/\.json$/, '.png')),
      });
    }
  });
});

describe('in a browser: the network assistant example', function () {
  this.timeout(90000);
  let nodeRed;
  let editorPort;
  let tcpmqPort;
  let browser;
  let board;

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) skipWithout(this, CHROMIUM, ".ci/run installs Debian's chromium");
    nodeRed = await startNodeRed('assistant', { exampleFile: 'network-assistant.json' });
    ({ editorPort, tcpmqPort } = nodeRed);
    browser = await launchBrowser();
  });

  after(async function () {
    board?.destroy();
    if (browser) await browser.close();
    await nodeRed?.stop();
  });

  it('lists a plain-text board, shows what it sent, and sends it a typed line', async function () {
    board = net.connect(tcpmqPort, '127.0.0.1');
    let received = '';
    board.on('data', (chunk) => (received += chunk));
    board.on('error', () => {});
    board.write('Hello 01Studio!\n');
    const page = await browser.newPage({ viewport: { width: 1300, height: 700 } });
    await page.goto(`http://127.0.0.1:${editorPort}/dashboard/assistant`);
    await page.waitForFunction(
      () => /Hello 01Studio!/.test(document.body.innerText) && /\braw\b/.test(document.body.innerText),
      null,
      { timeout: 20000 },
    );
    await page.locator('tr:has-text("raw")').first().click();
    const input = page.locator('input[type="text"]').first();
    await input.fill('hi board');
    await input.press('Enter');
    await waitFor(
      () => received === 'hi board',
      `the board to receive the line (got ${JSON.stringify(received)})`,
      5000,
    );
    await page.screenshot({ path: path.join(SCREENSHOTS, 'network-assistant.png') });
  });
});

describe('in a browser: the TCPMQ sidebar', function () {
  this.timeout(90000);
  let nodeRed;
  let editorPort;
  let tcpmqPort;
  let simulator;
  let browser;

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) skipWithout(this, CHROMIUM, ".ci/run installs Debian's chromium");
    nodeRed = await startNodeRed('sidebar', { offlineAfter: OFFLINE_AFTER });
    ({ editorPort, tcpmqPort } = nodeRed);
    browser = await launchBrowser();
  });

  after(async function () {
    if (browser) await browser.close();
    await stop(simulator);
    await nodeRed?.stop();
  });

  async function openSidebar(locale) {
    const context = await browser.newContext({ viewport: { width: 1500, height: 820 }, locale });
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${editorPort}/`);
    // The tab is registered with the editor (it may sit in the sidebar's overflow menu); the
    // plugin adds it before the nodes load, and the editor shows its own tab once they have.
    await page.waitForSelector('#red-ui-tab-tcpmq', { state: 'attached', timeout: 30000 });
    await page.waitForSelector('.red-ui-palette-node[data-palette-type="tcpmq-in"]', { timeout: 30000 });
    await page.waitForFunction(
      () =>
        !document.querySelector('#red-ui-loader') ||
        getComputedStyle(document.querySelector('#red-ui-loader')).display === 'none',
    );
    // On a busy machine the editor may show its own tab after ours: ask again until ours stays shown for a second.
    await page.waitForFunction(
      () => {
        if (document.querySelector('.tcpmq-sidebar')?.offsetParent == null) {
          window.tcpmqShownSince = undefined;
          RED.sidebar.show('tcpmq');
          return false;
        }
        window.tcpmqShownSince ??= Date.now();
        return Date.now() - window.tcpmqShownSince >= 1000;
      },
      null,
      { timeout: 30000, polling: 200 },
    );
    return page;
  }

  it('shows a device within a second of its first message, offline within offlineAfter + 1 s, and writes its mailbox', async function () {
    const page = await openSidebar('en-US');
    const sensor = await Device.connect(tcpmqPort);
    await sensor.request('[1,1,"26.5"]');
    const firstReport = Date.now();
    const row = '.tcpmq-sidebar-device[data-device="1"]';
    await page.waitForSelector(row, { timeout: 5000 });
    const shownAfter = Date.now() - firstReport;
    assert.match(await page.textContent(row), /online/);
    assert.ok(shownAfter <= 1000, `shown ${shownAfter} ms after its first message`);
    simulator = run('simulate.js', [
      '--devices',
      '2',
      '--port',
      String(tcpmqPort),
      '--interval',
      '0.5',
      '--droppers',
      '0',
    ]);
    await page.waitForSelector('.tcpmq-sidebar-device[data-device="2"]', { timeout: 5000 });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'sidebar.png') });
    // Device 1 now reports through the simulator too; once it stops, both fall silent.
    await stop(simulator);
    sensor.close();
    const stoppedAt = Date.now();
    await page.waitForFunction((selector) => /offline/.test(document.querySelector(selector).textContent), row, {
      timeout: (OFFLINE_AFTER + 3) * 1000,
    });
    const offlineAfter = (Date.now() - stoppedAt) / 1000;
    console.log(
      `      sidebar: device shown ${shownAfter} ms after its first message, offline ${offlineAfter.toFixed(1)} s after it fell silent`,
    );
    assert.ok(offlineAfter <= OFFLINE_AFTER + 1, `offline shown after ${offlineAfter} s`);
    await page.click(row);
    await page.fill('.tcpmq-sidebar-text', 'hello from the sidebar');
    await page.click('.tcpmq-sidebar-mailbox');
    await page.waitForFunction(() => /done/.test(document.querySelector('.tcpmq-sidebar-result').textContent));
    const reader = await Device.connect(tcpmqPort);
    try {
      assert.equal(await reader.request('[9,1,"x"]'), 'hello from the sidebar');
    } finally {
      reader.close();
    }
    await page.context().close();
  });

  it("keeps a board's connection and its row through full deploys from the editor's Deploy button, without a page reload", async function () {
    const page = await openSidebar('en-US');
    const board = await Device.connect(tcpmqPort);
    try {
      await board.request('[7,7,"before"]');
      const row = '.tcpmq-sidebar-device[data-device="7"]';
      await page.waitForFunction(
        (selector) => /before/.test(document.querySelector(selector)?.textContent ?? ''),
        row,
        { timeout: 5000 },
      );
      for (let round = 1; round <= 3; round++) {
        // Nothing changed, so the editor is told it has: Deploy is then the full deploy users press.
        await page.evaluate(() => RED.nodes.dirty(true));
        const deployed = page.waitForResponse(
          (response) => response.url().endsWith('/flows') && response.request().method() === 'POST',
        );
        await page.click('#red-ui-header-button-deploy');
        assert.equal((await deployed).request().headers()['node-red-deployment-type'], 'full');
        assert.equal(
          await board.request(`[7,7,"after ${round}"]`),
          `after ${round}`,
          `round ${round}: the board is still served on its connection`,
        );
        await page.waitForFunction(
          ([selector, text]) => document.querySelector(selector)?.textContent.includes(text),
          [row, `after ${round}`],
          { timeout: 5000 },
        );
      }
      assert.equal(board.closed, false);
    } finally {
      board.close();
      await page.context().close();
    }
  });

  it("shows the sidebar and the nodes' help in Chinese when the editor language is zh-CN", async function () {
    const page = await openSidebar('zh-CN');
    const device = await Device.connect(tcpmqPort);
    await device.request('[5,5,"26.5"]');
    device.close();
    await page.waitForSelector('.tcpmq-sidebar-device', { timeout: 5000 });
    const sidebar = await page.textContent('.tcpmq-sidebar');
    assert.match(sidebar, /设备号/, `sidebar text: ${sidebar.slice(0, 200)}`);
    const portMessage = await page.evaluate(() =>
      RED.nodes.getType('tcpmq-broker').defaults.port.validate.call({}, '70000', { label: 'x' }),
    );
    const { port } = editorSchema();
    assert.equal(portMessage, `${port.min} 到 ${port.max} 之间的整数`);
    await page.evaluate(() => RED.sidebar.help.show('tcpmq-in'));
    // The help panel (one of several .red-ui-help blocks) shows tcpmq-in's help, in Chinese.
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll('.red-ui-help')].some(
          (e) => /raw/.test(e.textContent) && /设备/.test(e.textContent),
        ),
      null,
      { timeout: 10000 },
    );
    await page.evaluate(() => RED.sidebar.show('tcpmq'));
    await page.screenshot({ path: path.join(SCREENSHOTS, 'sidebar-zh-CN.png') });
    await page.context().close();
  });

  it("names a board from the broker's device list: added in its dialog, deployed, shown in the sidebar with its unit", async function () {
    const page = await openSidebar('en-US');
    const brokerId = await page.evaluate(() => {
      let id;
      RED.nodes.eachConfig((node) => {
        if (node.type === 'tcpmq-broker') id = node.id;
      });
      RED.editor.editConfig('', 'tcpmq-broker', id);
      return id;
    });
    await page.waitForSelector('#node-config-devices', { state: 'visible' });
    await page.click('#node-config-dialog-edit-form .red-ui-editableList-addButton');
    const row = page.locator('#node-config-devices .red-ui-editableList-item-content').last();
    // An id listed already is marked as it is typed, and the validator says why.
    await row.locator('.tcpmq-device-id').fill('1');
    assert.match(await row.locator('.tcpmq-device-id').getAttribute('class'), /input-error/);
    assert.equal(
      await page.evaluate(() =>
        RED.nodes
          .getType('tcpmq-broker')
          .defaults.devices.validate.call({}, [{ id: '1' }, { id: '1' }], { label: 'x' }),
      ),
      'device 1 is listed twice',
    );
    await row.locator('.tcpmq-device-id').fill('4');
    await row.locator('.tcpmq-device-name').fill('Kitchen');
    await row.locator('.tcpmq-device-unit').fill('°C');
    assert.doesNotMatch(await row.locator('.tcpmq-device-id').getAttribute('class'), /input-error/);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'editor-broker-devices.png') });
    await page.click('#node-config-dialog-ok');
    await page.waitForSelector('#node-config-devices', { state: 'detached' });
    const saved = await page.evaluate((id) => RED.nodes.node(id).devices, brokerId);
    assert.deepEqual(saved, [
      { id: '1', name: 'Greenhouse', unit: 'lx', kind: 'sensor', deviceClass: 'illuminance', interval: 2 },
      { id: '4', name: 'Kitchen', unit: '°C', kind: 'sensor', deviceClass: '', interval: 0 },
    ]);
    const deployed = page.waitForResponse(
      (response) => response.url().endsWith('/flows') && response.request().method() === 'POST',
    );
    await page.click('#red-ui-header-button-deploy');
    assert.ok((await deployed).ok(), 'deployed');
    const board = await Device.connect(tcpmqPort);
    try {
      await board.request('[4,4,"21.5"]');
      const cells = '.tcpmq-sidebar-device[data-device="4"] td';
      await page.waitForFunction(
        (selector) => {
          const texts = [...document.querySelectorAll(selector)].map((td) => td.textContent);
          return texts.includes('Kitchen (4)') && texts.includes('21.5 °C');
        },
        cells,
        { timeout: 5000 },
      );
      await page.screenshot({ path: path.join(SCREENSHOTS, 'sidebar-named.png') });
    } finally {
      board.close();
      await page.context().close();
    }
  });
});

describe('in a browser: the editor on Node-RED 5 (Node 22)', function () {
  this.timeout(90000);
  let userDir;
  let tcpmqPort;
  let nodeRed;
  let browser;
  let page;

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) skipWithout(this, CHROMIUM, ".ci/run installs Debian's chromium");
    const { linkedUserDir, settingsText, startNodeRed: startRuntime, RUNTIMES } = require('./node-red-process');
    tcpmqPort = await freePort();
    userDir = linkedUserDir('tcpmq-nr5-', settingsText('editorTheme: { tours: false }'), [
      {
        id: 'b1',
        type: 'tcpmq-broker',
        name: 'hall',
        host: '127.0.0.1',
        port: tcpmqPort,
        replyFormat: 'text',
        offlineAfter: 30,
      },
      { id: 'in1', type: 'tcpmq-in', broker: 'b1', wires: [] },
    ]);
    nodeRed = await startRuntime(userDir, {
      redJs: require.resolve('node-red-5/red.js'),
      node: RUNTIMES.find((r) => r.name === 'node-red-5').node,
    });
    browser = await launchBrowser();
    page = await (await browser.newContext({ viewport: { width: 1500, height: 820 } })).newPage();
  });

  after(async function () {
    if (browser) await browser.close();
    if (nodeRed) await require('./node-red-process').stopNodeRed(nodeRed);
    if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
  });

  it('shows the nodes, the broker dialog, the help and a sidebar that fits, with its icon', async function () {
    await page.goto(`http://127.0.0.1:${nodeRed.editorPort}/`);
    for (const type of ['tcpmq-in', 'tcpmq-out', 'tcpmq-status']) {
      await page.waitForSelector(`.red-ui-palette-node[data-palette-type="${type}"]`, { timeout: 30000 });
    }
    await page.evaluate(() => RED.editor.editConfig('', 'tcpmq-broker', 'b1'));
    await page.waitForSelector('#node-config-input-port', { state: 'visible' });
    assert.equal(await page.inputValue('#node-config-input-port'), String(tcpmqPort));
    await page.click('#node-config-dialog-cancel');
    await page.waitForSelector('#node-config-input-port', { state: 'detached' });
    const device = await Device.connect(tcpmqPort);
    try {
      await device.request('[1,1,"26.5"]');
      await page.evaluate(() => RED.sidebar.show('tcpmq'));
      await page.waitForSelector('.tcpmq-sidebar-device[data-device="1"]', { timeout: 5000 });
      // Node-RED 5 shows sidebar tabs as icon buttons: ours has a glyph.
      const icon = await page.evaluate(() => {
        const glyph = document.querySelector('button[data-tab-id="tcpmq"] i');
        return glyph
          ? [glyph.getBoundingClientRect().width > 0, getComputedStyle(glyph, '::before').content !== 'none']
          : [false, false];
      });
      assert.deepEqual(icon, [true, true], 'the TCPMQ tab button has a visible icon');
      // Every cell of the device row within the (narrow) sidebar; sidebar-width.test.js measures each text.
      const overflow = await page.evaluate(() => {
        const sidebar = document.querySelector('.tcpmq-sidebar').getBoundingClientRect();
        return [...document.querySelectorAll('.tcpmq-sidebar-device td')]
          .filter((td) => td.getClientRects().length > 0 && td.getBoundingClientRect().right > sidebar.right + 1)
          .map((td) => td.textContent);
      });
      assert.deepEqual(overflow, [], 'cells cut off by the sidebar');
      await page.screenshot({ path: path.join(SCREENSHOTS, 'node-red-5-sidebar.png') });
    } finally {
      device.close();
    }
    await page.evaluate(() => RED.sidebar.help.show('tcpmq-in'));
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll('.red-ui-help')].some(
          (e) => /msg\.raw|raw/.test(e.textContent) && /device/.test(e.textContent),
        ),
      null,
      {
        timeout: 10000,
      },
    );
  });
});

describe('in a browser: the fleet page of the demo dashboard', function () {
  this.timeout(90000);
  let nodeRed;
  let simulator;
  let browser;

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) skipWithout(this, CHROMIUM, ".ci/run installs Debian's chromium");
    nodeRed = await startNodeRed('fleet', { offlineAfter: OFFLINE_AFTER });
    // Boards 1 and 2 from the simulator; board 3 is the test's, so that it knows when 3 falls silent.
    simulator = run('simulate.js', [
      '--devices',
      '2',
      '--port',
      String(nodeRed.tcpmqPort),
      '--interval',
      '0.5',
      '--droppers',
      '0',
    ]);
    browser = await launchBrowser();
  });

  after(async function () {
    if (browser) await browser.close();
    await stop(simulator);
    await nodeRed?.stop();
  });

  async function openFleet(locale, viewport = { width: 1400, height: 1000 }) {
    const context = await browser.newContext({ viewport, locale });
    const page = await context.newPage();
    // What the chart receives from the dashboard's websocket, by series (msg.topic).
    page.series = new Set();
    page.on('websocket', (socket) =>
      socket.on('framereceived', ({ payload }) => {
        const text = String(payload);
        if (!text.includes('msg-input:tcpmq.fleet.chart')) return;
        for (const match of text.matchAll(/"topic":"([^"]*)"/g)) page.series.add(match[1]);
      }),
    );
    await page.goto(`http://127.0.0.1:${nodeRed.editorPort}/dashboard/fleet`);
    return page;
  }

  /** The fleet table's rows: [state, device]. */
  const rows = (page) =>
    page.evaluate(() =>
      [...document.querySelectorAll('.nrdb-ui-table tbody tr')]
        .map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent.trim()))
        .filter((cells) => /line$/.test(cells[0] ?? '')),
    );

  it('lists every board live, charts each one, and sends a command from its form', async function () {
    const page = await openFleet('en-US');
    const board = await Device.connect(nodeRed.tcpmqPort);
    let reporting = true;
    const reports = (async () => {
      for (let n = 0; ; n++) {
        if (reporting) await board.request(`[3,3,"60${n % 8}"]`);
        await every(500);
        if (reporting === null) return;
      }
    })();
    try {
      await waitFor(
        async () => (await rows(page)).filter(([state]) => state === '● online').length === 3,
        'three boards online in the table',
        15000,
      );
      // Board 1 by its name in the demo's device list, its value with its unit; the others by their id.
      assert.deepEqual(
        (await rows(page)).map((cells) => cells[1]),
        ['Greenhouse (1)', '2', '3'],
      );
      assert.match((await rows(page))[0][3], /^60\d lx$/, 'the value of board 1, with its unit');
      reporting = false;
      const silent = Date.now();
      await waitFor(
        async () => (await rows(page)).some(([state, id]) => id === '3' && state === '○ offline'),
        'board 3 offline',
        (OFFLINE_AFTER + 3) * 1000,
      );
      const offlineAfter = (Date.now() - silent) / 1000;
      reporting = true;
      const back = Date.now();
      await waitFor(
        async () => (await rows(page)).some(([state, id]) => id === '3' && state === '● online'),
        'board 3 online again',
        5000,
      );
      console.log(
        `      fleet page: board 3 offline ${offlineAfter.toFixed(1)} s after it fell silent, online ${((Date.now() - back) / 1000).toFixed(1)} s after it spoke again`,
      );
      assert.ok(offlineAfter <= OFFLINE_AFTER + 1, `offline shown after ${offlineAfter} s`);
      await waitFor(
        () => ['Greenhouse', '2', '3'].every((id) => page.series.has(id)),
        `three chart series (got ${[...page.series]})`,
        10000,
      );
      // The command form writes mailbox cmd; a board reads it on its next request.
      await page.getByLabel('device id or mailbox').fill('cmd');
      await page.getByLabel('value').fill('led blue');
      await page.getByRole('button', { name: /write/ }).click();
      const reader = await Device.connect(nodeRed.tcpmqPort);
      try {
        await waitFor(
          async () => (await reader.request('[9,"cmd","x"]')) === 'led blue',
          'the command read by a board',
          5000,
        );
      } finally {
        reader.close();
      }
      await page.screenshot({ path: path.join(SCREENSHOTS, 'fleet.png'), fullPage: true });
      const chinese = await openFleet('zh-CN');
      await chinese.waitForSelector('.nrdb-ui-table tbody tr', { timeout: 10000 });
      assert.match(await chinese.textContent('body'), /设备号/);
      await chinese.waitForTimeout(2000);
      await chinese.screenshot({ path: path.join(SCREENSHOTS, 'fleet-zh-CN.png'), fullPage: true });
    } finally {
      reporting = null;
      await reports.catch(() => undefined);
      board.close();
    }
  });

  it('shows its tables uncovered on a laptop (1400×900) and on a phone (390×844)', async function () {
    for (const viewport of [
      { width: 1400, height: 900 },
      { width: 390, height: 844 },
    ]) {
      const size = `${viewport.width}×${viewport.height}`;
      const page = await openFleet('en-US', viewport);
      try {
        await waitFor(async () => (await rows(page)).length >= 2, `${size}: two boards in the fleet table`, 15000);
        // Each header and cell, scrolled into view: what is on top at its middle is the cell itself.
        const covered = await page.evaluate(() => {
          const found = [];
          for (const cell of document.querySelectorAll('.nrdb-ui-table th, .nrdb-ui-table td')) {
            cell.scrollIntoView({ block: 'center', inline: 'center' });
            const box = cell.getBoundingClientRect();
            if (box.width === 0 || box.height === 0) continue;
            const top = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
            if (top !== cell && !cell.contains(top)) {
              found.push(
                `"${cell.textContent.trim()}" under <${top?.tagName.toLowerCase()} class="${top?.className}">`,
              );
            }
          }
          return found;
        });
        assert.deepEqual(covered, [], `${size}: table cells covered by another element`);
        await page.screenshot({
          path: path.join(SCREENSHOTS, `fleet-${viewport.width}x${viewport.height}.png`),
          fullPage: true,
        });
      } finally {
        await page.context().close();
      }
    }
  });
});

'use strict';
// The TCPMQ sidebar as a new user first sees it: the `npm start` demo with three simulated boards, the editor at
// 1400×900 and the sidebar at Node-RED's default width, in English and in Chinese, on Node-RED 4 and 5. No text
// of the device list may be cut off and no word broken over two lines; dragged wider, it is a table, still whole.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const net = require('node:net');
const { spawn } = require('node:child_process');
const { freePort, skipWithout, waitFor } = require('../support');
const { RUNTIMES, root, settingsText, linkedUserDir, startNodeRed, stopNodeRed } = require('./node-red-process');

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOTS = path.join(root, 'test-output');
const VIEWPORT = { width: 1400, height: 900 };
/** The demo of `npm start`: its two example flows, config nodes they share once (as scripts/start.js merges them). */
const DEMO = ['demo-dashboard.json', 'fleet-dashboard.json'].map((file) => path.join(root, 'examples', file));
/** A width at which the sidebar shows its devices as a table. */
const WIDE = 640;

/** The demo's flows with its broker on `tcpmqPort`. */
function demoFlows(tcpmqPort) {
  const byId = new Map();
  for (const file of DEMO) for (const node of JSON.parse(fs.readFileSync(file, 'utf8'))) byId.set(node.id, node);
  const flows = [...byId.values()];
  for (const node of flows) if (node.type === 'tcpmq-broker') node.port = tcpmqPort;
  return flows;
}

/** `npm run simulate -- --devices 3` against `tcpmqPort`, every half second, none dropping off. */
function simulate(tcpmqPort) {
  const args = ['--devices', '3', '--port', String(tcpmqPort), '--interval', '0.5', '--droppers', '0', '--quiet'];
  const child = spawn(process.execPath, [path.join(root, 'scripts', 'simulate.js'), ...args], { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  return {
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
      await exited;
    },
  };
}

function launchBrowser() {
  const { chromium } = require('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync'],
  });
}

/**
 * Runs in the page. Every visible text of `selector` measured: which is cut off (its element scrolls, its text
 * reaches past its own box or past an ancestor that clips), and which word lies on two lines (its characters'
 * rectangles on more than one line). Chinese is split into words by the browser's word segmenter.
 */
function measureText(selector) {
  const { document, getComputedStyle, NodeFilter } = /** @type {any} */ (globalThis);
  /** Where an element is: "device 1: <td class=…>", "connection 7: …", "table header: …" or "broker: …". */
  const where = (element) => {
    const row = element.closest('[data-device], [data-connection]');
    let place = 'broker';
    if (row?.hasAttribute('data-device')) place = `device ${row.getAttribute('data-device')}`;
    else if (row) place = `connection ${row.getAttribute('data-connection')}`;
    else if (element.closest('thead')) place = 'table header';
    return `${place}: <${element.tagName.toLowerCase()} class="${element.className}">`;
  };
  const lines = (range) => {
    const tops = [];
    for (const rect of range.getClientRects()) {
      if (rect.width < 0.5) continue;
      if (!tops.some((top) => Math.abs(top - rect.top) < rect.height / 2)) tops.push(rect.top);
    }
    return tops.length;
  };
  const segmenter = new Intl.Segmenter('zh', { granularity: 'word' });
  /** The words of `text` with where they start: runs between spaces; Chinese runs as the segmenter splits them. */
  const words = (text) => {
    const found = [];
    for (const match of text.matchAll(/\S+/g)) {
      if (!/[\u3000-\u9fff\uff00-\uffef]/.test(match[0])) {
        found.push({ word: match[0], index: match.index });
        continue;
      }
      for (const part of segmenter.segment(match[0]))
        if (part.segment.trim()) found.push({ word: part.segment, index: match.index + part.index });
    }
    return found;
  };
  const root = document.querySelector(selector);
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const elements = new Set();
  const cut = [];
  const broken = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent;
    if (!text.trim()) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    const box = range.getBoundingClientRect();
    if (range.getClientRects().length === 0 || box.width === 0) continue; // not shown
    const element = node.parentElement;
    elements.add(element);
    for (let clip = element; clip && clip !== document.body; clip = clip.parentElement) {
      const style = getComputedStyle(clip);
      const clips = style.overflowX !== 'visible' || style.textOverflow !== 'clip';
      if (clip !== element && !clips) continue;
      const edge = clip.getBoundingClientRect();
      const left = edge.left + clip.clientLeft;
      const right = left + (clips ? clip.clientWidth : edge.width);
      let how = '';
      if (clips && clip.scrollWidth > clip.clientWidth)
        how = `scrollWidth ${clip.scrollWidth} > clientWidth ${clip.clientWidth}`;
      else if (box.right > right + 1 || box.left < left - 1)
        how = `text from x ${Math.round(box.left)} to ${Math.round(box.right)}, box from ${Math.round(left)} to ${Math.round(right)}`;
      if (how) {
        cut.push(
          `${where(element)} "${text.trim()}" cut off by ${clip === element ? 'its own box' : where(clip)}: ${how}`,
        );
        break;
      }
    }
    for (const { word, index } of words(text)) {
      const part = document.createRange();
      part.setStart(node, index);
      part.setEnd(node, index + word.length);
      if (lines(part) > 1)
        broken.push(`${where(element)} "${text.trim()}": the word "${word}" is on ${lines(part)} lines`);
    }
  }
  return { elements: elements.size, cut, broken };
}

/**
 * Runs in the page: what each device row shows, by device id, then by column: the text of each cell that is
 * shown, after the label a narrow row puts before it (its ::before), as a user reads it.
 */
function shownRows() {
  const { document, getComputedStyle } = /** @type {any} */ (globalThis);
  const shownText = (td) => {
    const before = getComputedStyle(td, '::before').content;
    const label = /^".*"$/.test(before) ? JSON.parse(before) : '';
    return `${label}${td.innerText}`.trim();
  };
  return Object.fromEntries(
    [...document.querySelectorAll('.tcpmq-sidebar-device')].map((row) => [
      row.getAttribute('data-device'),
      Object.fromEntries(
        [...row.querySelectorAll('td')]
          .filter((td) => td.getClientRects().length > 0)
          .map((td) => [td.className.match(/tcpmq-sidebar-column-(\w+)/)[1], shownText(td)]),
      ),
    ]),
  );
}

/**
 * Runs in the page: whether Chinese has a font (two different characters drawn differently). Without one, Chromium
 * draws every character as the same empty box, and the widths measured in zh-CN would be the boxes'.
 */
function hasChineseFont() {
  const { document } = /** @type {any} */ (globalThis);
  const pixels = (character) => {
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = 32;
    const context = canvas.getContext('2d');
    context.font = '24px sans-serif';
    context.fillText(character, 2, 26);
    return context.getImageData(0, 0, 32, 32).data.join();
  };
  return pixels('设') !== pixels('线');
}

/** Drags the sidebar's edge to the left until the sidebar is `width` px wide (as a user widens it). */
async function widenSidebar(page, width) {
  const start = await page.evaluate(() => {
    const { document } = /** @type {any} */ (globalThis);
    const sidebar = document.querySelector('.tcpmq-sidebar').getBoundingClientRect();
    // Node-RED 4's separator, or Node-RED 5's handles: the one on the sidebar's left edge.
    const [edge] = [...document.querySelectorAll('#red-ui-sidebar-separator, .red-ui-sidebar-separator-handle')]
      .map((element) => element.getBoundingClientRect())
      .filter((rect) => rect.width > 0 && rect.height > 0)
      .sort((a, b) => Math.abs(a.left + a.width / 2 - sidebar.left) - Math.abs(b.left + b.width / 2 - sidebar.left));
    return { x: edge.left + edge.width / 2, y: edge.top + edge.height / 2, width: sidebar.width };
  });
  await page.mouse.move(start.x, start.y);
  await page.mouse.down();
  await page.mouse.move(start.x - (width - start.width), start.y, { steps: 10 });
  await page.mouse.up();
  await page.waitForFunction(
    (wanted) =>
      /** @type {any} */ (globalThis).document.querySelector('.tcpmq-sidebar').getBoundingClientRect().width >=
      wanted - 4,
    width,
    { timeout: 5000 },
  );
}

/** What each board's row must show at any width, by column, in each language. */
const LANGUAGES = {
  'en-US': { onlineColumn: /^● online$/, lastSeen: /^\d+ s ago$/, messages: /^(messages )?\d+$/ },
  'zh-CN': { onlineColumn: /^● 在线$/, lastSeen: /^\d+ 秒前$/, messages: /^(请求数 )?\d+$/ },
};
const BOARDS = {
  1: { id: /^Greenhouse \(1\)$/, lastValue: /^60\d lx$/, address: /^127\.0\.0\.1$/ },
  2: { id: /^2$/, lastValue: /^60\d$/, address: /^127\.0\.0\.1$/ },
  3: { id: /^3$/, lastValue: /^60\d$/, address: /^127\.0\.0\.1$/ },
};

for (const runtime of RUNTIMES.filter(({ name }) => name !== 'node-red-3')) {
  const version = runtime.name === 'node-red' ? 'Node-RED 4' : 'Node-RED 5';

  describe(`in a browser: the TCPMQ sidebar at ${version}'s default width, the demo with three boards`, function () {
    this.timeout(120000);
    let userDir;
    let tcpmqPort;
    let nodeRed;
    let simulator;
    let browser;

    before(async function () {
      if (!fs.existsSync(CHROMIUM)) skipWithout(this, CHROMIUM, ".ci/run installs Debian's chromium");
      fs.mkdirSync(SCREENSHOTS, { recursive: true });
      tcpmqPort = await freePort();
      userDir = linkedUserDir(
        `tcpmq-width-${runtime.name}-`,
        settingsText('editorTheme: { tours: false, projects: { enabled: false } }'),
        demoFlows(tcpmqPort),
      );
      nodeRed = await startNodeRed(userDir, {
        redJs: require.resolve(`${runtime.name}/red.js`),
        node: runtime.node,
        ready: /listening on 0\.0\.0\.0:\d+/,
        ms: 60000,
      });
      simulator = simulate(tcpmqPort);
      browser = await launchBrowser();
    });

    after(async function () {
      if (browser) await browser.close();
      await simulator?.stop();
      await stopNodeRed(nodeRed);
      if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
    });

    /** A new editor page in `locale` (a fresh context: the sidebar at its default width), the TCPMQ tab shown. */
    async function openSidebar(locale) {
      const context = await browser.newContext({ viewport: VIEWPORT, locale });
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${nodeRed.editorPort}/`);
      await page.waitForSelector('.red-ui-palette-node[data-palette-type="tcpmq-in"]', { timeout: 60000 });
      // The editor may show its own tab after ours: ask again until ours stays shown for a second.
      await page.waitForFunction(
        () => {
          const { document, RED } = /** @type {any} */ (globalThis);
          const state = /** @type {any} */ (globalThis);
          if (document.querySelector('.tcpmq-sidebar')?.offsetParent == null) {
            state.tcpmqShownSince = undefined;
            RED.sidebar.show('tcpmq');
            return false;
          }
          state.tcpmqShownSince ??= Date.now();
          return Date.now() - state.tcpmqShownSince >= 1000;
        },
        null,
        { timeout: 30000, polling: 200 },
      );
      return page;
    }

    /**
     * Waits until the three boards are listed, each showing its name (or id), state, last seen, value (with its
     * unit), address and messages: at the default width the count labelled, in the table not.
     */
    async function threeBoards(page, locale, narrow) {
      const expected = (id) => ({ ...LANGUAGES[locale], ...BOARDS[id] });
      const mismatches = (rows) =>
        Object.keys(BOARDS).flatMap((id) =>
          Object.entries(expected(id))
            .filter(([column, pattern]) => !pattern.test(rows[id]?.[column] ?? ''))
            .map(
              ([column, pattern]) =>
                `board ${id}'s ${column}: expected ${pattern}, shown "${rows[id]?.[column] ?? ''}"`,
            ),
        );
      let rows = {};
      await waitFor(
        async () => {
          rows = await page.evaluate(shownRows);
          const labelled = Object.values(rows).every((row) => /\D \d+$/.test(row.messages ?? ''));
          return mismatches(rows).length === 0 && labelled === narrow;
        },
        () =>
          `the three boards shown whole (${narrow ? 'each count labelled' : 'in a table'}): ${mismatches(rows).join('; ') || JSON.stringify(rows)}`,
        20000,
      );
    }

    const sidebarWidth = (page) =>
      page.evaluate(() =>
        Math.round(
          /** @type {any} */ (globalThis).document.querySelector('.tcpmq-sidebar').getBoundingClientRect().width,
        ),
      );

    function assertWhole(measured, what) {
      console.log(
        `      ${what}: ${measured.elements} texts, ${measured.cut.length} cut off, ${measured.broken.length} words broken`,
      );
      assert.deepEqual(
        { cut: measured.cut, broken: measured.broken },
        { cut: [], broken: [] },
        `${what}: no text cut off and no word broken over two lines`,
      );
    }

    /**
     * Runs `check` on a new editor page in `locale` with the TCPMQ sidebar open, while a fourth client, which sent
     * a plain line rather than a TCPMQ request, is listed under the other connections. zh-CN is measured only with
     * a Chinese font.
     */
    async function withSidebar(test, locale, check) {
      const page = await openSidebar(locale);
      const plain = net.connect(tcpmqPort, '127.0.0.1');
      plain.on('error', () => {});
      plain.write('hello\n');
      try {
        if (locale === 'zh-CN' && !(await page.evaluate(hasChineseFont))) {
          skipWithout(test, 'a Chinese font for chromium', 'install one: apt-get install fonts-wqy-microhei');
        }
        await page.waitForSelector('.tcpmq-sidebar-connection', { state: 'visible', timeout: 10000 });
        await check(page);
      } finally {
        plain.destroy();
        await page.context().close();
      }
    }

    const screenshot = async (page, name) =>
      page.screenshot({
        path: path.join(SCREENSHOTS, `${name}.png`),
        clip: await page.evaluate(() => {
          const { document } = /** @type {any} */ (globalThis);
          const { x, y, width, height } = document.querySelector('.tcpmq-sidebar').getBoundingClientRect();
          return { x, y, width, height: Math.min(height, 320) };
        }),
      });

    for (const locale of Object.keys(LANGUAGES)) {
      it(`${locale}: at the default width, each board's name, state, value, last seen, address and messages whole`, async function () {
        await withSidebar(this, locale, async (page) => {
          await threeBoards(page, locale, true);
          const width = await sidebarWidth(page);
          assert.ok(width <= 330, `the sidebar at its default width (about 315 px), not ${width} px`);
          await screenshot(page, `sidebar-${runtime.name}-${locale}-${width}px`);
          // The whole editor, as the README shows it (docs/sidebar.png, docs/sidebar-zh-CN.png).
          await page.screenshot({ path: path.join(SCREENSHOTS, `editor-sidebar-${runtime.name}-${locale}.png`) });
          assertWhole(await page.evaluate(measureText, '.tcpmq-sidebar-brokers'), `${version}, ${locale}, ${width} px`);
        });
      });

      it(`${locale}: dragged to ${WIDE} px, the devices as a table with its headers, whole`, async function () {
        await withSidebar(this, locale, async (page) => {
          await widenSidebar(page, WIDE);
          await threeBoards(page, locale, false);
          const headers = await page.evaluate(() =>
            [.../** @type {any} */ (globalThis).document.querySelectorAll('.tcpmq-sidebar-devices th')]
              .filter((th) => th.getClientRects().length > 0)
              .map((th) => th.textContent),
          );
          assert.equal(headers.length, 6, `the table's six headers shown, got ${JSON.stringify(headers)}`);
          const width = await sidebarWidth(page);
          await screenshot(page, `sidebar-${runtime.name}-${locale}-${width}px`);
          assertWhole(await page.evaluate(measureText, '.tcpmq-sidebar-brokers'), `${version}, ${locale}, ${width} px`);
        });
      });
    }
  });
}

'use strict';
// The translations stay in step with the English editor text: every other
// language in src/nodes/locales/ (zh-CN today) has the same catalogue keys and
// __placeholders__ as en-US, and a help file per node whose message properties
// match the English help in src/nodes/locales/en-US/<node>.html (Node-RED reads
// each language's help from locales/<lang>/<node>.html). Plain files, no Node-RED.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..', '..');
const localesDir = path.join(root, 'src', 'nodes', 'locales');
const REFERENCE = 'en-US';
const REQUIRED = ['zh-CN'];

/** The node files package.json declares (`tcpmq-in` for nodes/tcpmq-in.js). */
const nodeFiles = Object.values(require(path.join(root, 'package.json'))['node-red'].nodes).map((file) =>
  path.basename(file, '.js'),
);

const languages = fs
  .readdirSync(localesDir, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && entry.name !== REFERENCE)
  .map((entry) => entry.name);

const readJson = (file) => JSON.parse(fs.readFileSync(file, 'utf8'));
const catalogues = (lang) =>
  fs
    .readdirSync(path.join(localesDir, lang))
    .filter((file) => file.endsWith('.json'))
    .sort();

/** Every leaf of a catalogue: dotted key -> string (or the odd non-string value). */
function leaves(tree, prefix = '', out = new Map()) {
  for (const [key, value] of Object.entries(tree)) {
    const name = prefix ? `${prefix}.${key}` : key;
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) leaves(value, name, out);
    else out.set(name, value);
  }
  return out;
}

/** Dotted keys whose value is an object in one tree and not in the other. */
function shapeClashes(a, b, prefix = '') {
  const isTree = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  const clashes = [];
  for (const key of Object.keys(a)) {
    if (!(key in b)) continue;
    const name = prefix ? `${prefix}.${key}` : key;
    if (isTree(a[key]) !== isTree(b[key])) clashes.push(name);
    else if (isTree(a[key])) clashes.push(...shapeClashes(a[key], b[key], name));
  }
  return clashes;
}

/** The i18next placeholders of a string, sorted and unique: `__port__` -> 'port'. */
function placeholders(text) {
  const names = new Set();
  for (const match of String(text).matchAll(/__([A-Za-z0-9][\w.-]*?)__/g)) names.add(match[1]);
  return [...names].sort();
}

const stripTags = (html) =>
  html
    .replace(/<[^>]*>/g, ' ')
    .replace(/&nbsp;/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
    .trim();

/** The help blocks of an .html file: data-help-name -> { type, body }. */
function helpBlocks(html) {
  const blocks = new Map();
  for (const match of html.replace(/<!--[\s\S]*?-->/g, '').matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)) {
    const name = /\bdata-help-name\s*=\s*"([^"]*)"/.exec(match[1]);
    if (!name) continue;
    const type = /\btype\s*=\s*"([^"]*)"/.exec(match[1]);
    blocks.set(name[1], { type: type ? type[1] : undefined, body: match[2] });
  }
  return blocks;
}

/**
 * The message-property lists of a help block, in order: each list is the
 * `<dt>`s it holds, as { name, optional }, name being the dt's text before its
 * property-type span (`payload`, `Listen on`, `any message`).
 */
function propertyLists(body) {
  return [...body.matchAll(/<dl\b[^>]*class="[^"]*\bmessage-properties\b[^"]*"[^>]*>([\s\S]*?)<\/dl>/g)].map((dl) =>
    [...dl[1].matchAll(/<dt\b([^>]*)>([\s\S]*?)<\/dt>/g)].map((dt) => ({
      name: stripTags(dt[2].split(/<span\b[^>]*class="[^"]*\bproperty-type\b/)[0]),
      optional: /class="[^"]*\boptional\b/.test(dt[1]),
    })),
  );
}

const firstToken = (text) => text.split(' ')[0];

/** The English help of node `file`, which every translation follows. */
function englishHelp(file) {
  const helpFile = path.join(localesDir, REFERENCE, `${file}.html`);
  assert.ok(fs.existsSync(helpFile), `src/nodes/locales/${REFERENCE}/${file}.html is missing`);
  return fs.readFileSync(helpFile, 'utf8');
}

/** Fails with one line per problem, so every one of them is read at once. */
function assertNone(problems, title) {
  if (problems.length > 0) assert.fail(`${title}:\n  - ${problems.join('\n  - ')}`);
}

describe('locales', function () {
  it(`has a translation for ${REQUIRED.join(', ')}`, function () {
    for (const lang of REQUIRED) assert.ok(languages.includes(lang), `src/nodes/locales/${lang}/ is missing`);
  });

  it(`has an ${REFERENCE} message for every catalogue key the editor's templates and scripts name`, function () {
    const editorDir = path.join(root, 'src', 'editor');
    const missing = [];
    for (const file of fs.readdirSync(editorDir).filter((name) => /\.(html|ts)$/.test(name))) {
      const text = fs.readFileSync(path.join(editorDir, file), 'utf8');
      const keys = [
        ...[...text.matchAll(/data-i18n="(?:\[\w+\])?([^"]+)"/g)].map((match) => match[1]),
        ...[...text.matchAll(/'(tcpmq-[a-z]+\.[\w.-]+)'/g)].map((match) => match[1]),
      ];
      for (const key of keys) {
        const node = key.split('.')[0];
        const catalogue = path.join(localesDir, REFERENCE, `${node}.json`);
        if (!fs.existsSync(catalogue) || !leaves(readJson(catalogue)).has(key)) missing.push(`${file}: ${key}`);
      }
    }
    assertNone(missing, `keys with no message in locales/${REFERENCE}/`);
  });

  it(`has ${REFERENCE} help for every node, one block named after it`, function () {
    for (const file of nodeFiles) {
      const blocks = helpBlocks(englishHelp(file));
      assert.deepEqual([...blocks.keys()], [file], `data-help-name blocks of locales/${REFERENCE}/${file}.html`);
      assert.equal(blocks.get(file).type, 'text/html', `script type of locales/${REFERENCE}/${file}.html`);
    }
  });

  for (const lang of languages) {
    describe(`${lang} message catalogues against ${REFERENCE}`, function () {
      it(`has one catalogue per ${REFERENCE} catalogue, and no other`, function () {
        assert.deepEqual(
          catalogues(lang),
          catalogues(REFERENCE),
          `catalogue files of locales/${lang}/ vs locales/${REFERENCE}/`,
        );
      });

      for (const file of catalogues(REFERENCE)) {
        const translated = path.join(localesDir, lang, file);
        const load = () => {
          assert.ok(fs.existsSync(translated), `locales/${lang}/${file} is missing`);
          return { en: readJson(path.join(localesDir, REFERENCE, file)), tr: readJson(translated) };
        };

        it(`${file}: has exactly the keys of ${REFERENCE}`, function () {
          const { en, tr } = load();
          const enKeys = leaves(en);
          const trKeys = leaves(tr);
          const problems = [
            ...[...enKeys.keys()]
              .filter((key) => !trKeys.has(key))
              .map((key) => `${key}: in ${REFERENCE}, missing in ${lang}`),
            ...[...trKeys.keys()]
              .filter((key) => !enKeys.has(key))
              .map((key) => `${key}: in ${lang}, not in ${REFERENCE}`),
            ...shapeClashes(en, tr).map((key) => `${key}: a group of keys in one language, a string in the other`),
          ];
          assertNone(problems, `${lang}/${file}: keys differ from ${REFERENCE}/${file}`);
        });

        it(`${file}: uses the same __placeholders__ as ${REFERENCE} in every string`, function () {
          const { en, tr } = load();
          const trKeys = leaves(tr);
          const differences = [];
          for (const [key, text] of leaves(en)) {
            if (!trKeys.has(key)) continue;
            const want = placeholders(text);
            const got = placeholders(trKeys.get(key));
            if (want.join() !== got.join())
              differences.push(`${key}: ${REFERENCE} has [${want}], ${lang} has [${got}]`);
          }
          assertNone(differences, `${lang}/${file}: placeholders differ`);
        });

        it(`${file}: translates every string (none empty, none left in English)`, function () {
          const { en, tr } = load();
          const enKeys = leaves(en);
          const untranslated = [];
          for (const [key, text] of leaves(tr)) {
            if (typeof text !== 'string' || text.trim() === '') untranslated.push(`${key}: empty or not a string`);
            // A string made only of placeholders ("__error__") is the same in every language.
            else if (text === enKeys.get(key) && /[A-Za-z]/.test(text.replace(/__[\w.-]+?__/g, ''))) {
              untranslated.push(`${key}: still "${text}"`);
            }
          }
          assertNone(untranslated, `${lang}/${file}: strings to translate`);
        });
      }
    });

    describe(`${lang} help against ${REFERENCE}`, function () {
      for (const file of nodeFiles) {
        it(`${file}: has a help file whose message properties match the English help`, function () {
          const english = helpBlocks(englishHelp(file));
          const helpFile = path.join(localesDir, lang, `${file}.html`);
          assert.ok(fs.existsSync(helpFile), `src/nodes/locales/${lang}/${file}.html is missing`);
          const translated = helpBlocks(fs.readFileSync(helpFile, 'utf8'));

          // A property named by an editor label (the broker's "Listen on") is
          // named by the same label's translation; a msg property (`payload`)
          // keeps its name; a phrase ("any message") is only counted.
          const enStrings = leaves(readJson(path.join(localesDir, REFERENCE, `${file}.json`)));
          const trCatalogue = path.join(localesDir, lang, `${file}.json`);
          const trStrings = fs.existsSync(trCatalogue) ? leaves(readJson(trCatalogue)) : new Map();
          const expectedName = (name) => {
            const keys = [...enStrings].filter(([, text]) => text === name).map(([key]) => key);
            if (keys.length > 0) {
              return {
                names: keys.map((key) => trStrings.get(key)).filter(Boolean),
                how: `the ${lang} text of ${keys.join(' / ')}`,
              };
            }
            if (!name.includes(' ')) return { token: name, how: 'the same property name' };
            return undefined;
          };

          const problems = [];
          for (const [helpName, { body }] of english) {
            const block = translated.get(helpName);
            if (!block) {
              problems.push(`no <script type="text/html" data-help-name="${helpName}"> block`);
              continue;
            }
            if (block.type !== 'text/html')
              problems.push(`${helpName}: script type is "${block.type}", not "text/html"`);
            const want = propertyLists(body);
            const got = propertyLists(block.body);
            if (want.length !== got.length) {
              problems.push(
                `${helpName}: ${want.length} message-properties lists in English, ${got.length} in ${lang}`,
              );
              continue;
            }
            want.forEach((list, l) => {
              const where = `${helpName}, list ${l + 1}`;
              const names = (items) => items.map((item) => item.name).join(' | ');
              if (list.length !== got[l].length) {
                problems.push(
                  `${where}: English has ${list.length} items (${names(list)}), ${lang} has ${got[l].length} (${names(got[l])})`,
                );
                return;
              }
              list.forEach((dt, d) => {
                const other = got[l][d];
                const expected = expectedName(dt.name);
                if (expected && expected.names && !expected.names.includes(other.name)) {
                  problems.push(
                    `${where}, item ${d + 1}: English "${dt.name}", expected ${expected.how} ("${expected.names.join('" or "')}"), got "${other.name}"`,
                  );
                }
                if (expected && expected.token && firstToken(other.name) !== expected.token) {
                  problems.push(
                    `${where}, item ${d + 1}: expected property "${expected.token}", got "${firstToken(other.name)}"`,
                  );
                }
                if (other.name === '') problems.push(`${where}, item ${d + 1}: empty in ${lang}`);
                if (dt.optional !== other.optional) {
                  problems.push(
                    `${where}, item ${d + 1} ("${dt.name}"): class="optional" ${dt.optional ? 'in English only' : `in ${lang} only`}`,
                  );
                }
              });
            });
          }
          for (const helpName of translated.keys()) {
            if (!english.has(helpName))
              problems.push(`help for "${helpName}", which locales/${REFERENCE}/${file}.html does not document`);
          }
          assertNone(problems, `locales/${lang}/${file}.html against locales/${REFERENCE}/${file}.html`);
        });
      }
    });
  }
});

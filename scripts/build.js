#!/usr/bin/env node
// Builds the package Node-RED loads: src/ -> dist/ (the core library, and
// dist/nodes/: compiled .js beside each node's .html, locales/ and icons/).
//
// A node's .html is made of src/editor/: the shared CSS, the node's script
// (src/editor/<node>.ts and what it imports, as one IIFE: Node-RED's editor
// runs it as a plain script) and its edit template (src/editor/<node>.html).
// The broker's script gets the settings schema as SCHEMA. Help is not here:
// Node-RED reads it from locales/<lang>/<node>.html.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const ts = require('typescript');

const root = path.join(__dirname, '..');
const out = (...parts) => path.join(root, ...parts);
const editorDir = out('src', 'editor');

function tsc(project) {
  try {
    execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', project], { stdio: 'inherit' });
  } catch (err) {
    process.exit(err.status ?? 1); // tsc has said what is wrong
  }
}

fs.rmSync(out('dist'), { recursive: true, force: true });
tsc(out('tsconfig.json'));
// Type-checks the editor's scripts (no output: the HTML below is built from the sources).
tsc(path.join(editorDir, 'tsconfig.json'));

const { editorSchema } = require(out('dist', 'settings', 'schema.js'));
/** Constants a node's script is given (declared in src/editor/red.d.ts). */
const GIVEN = { 'tcpmq-broker': { SCHEMA: editorSchema() } };

/**
 * The editor module `file` as plain script text, and the editor modules it
 * imports: import declarations removed (the build puts what they name before
 * it), `export` keywords dropped. `import type` is erased (verbatimModuleSyntax
 * makes every type-only import say so).
 */
function asScript(file) {
  const text = fs.readFileSync(file, 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2017, true);
  const imports = [];
  const names = [];
  let script = '';
  let from = 0;
  const cut = (start, end) => {
    script += text.slice(from, start);
    from = end;
  };
  for (const statement of source.statements) {
    if (ts.isImportDeclaration(statement)) {
      const specifier = /** @type {ts.StringLiteral} */ (statement.moduleSpecifier).text;
      if (!specifier.startsWith('./')) throw new Error(`${file}: imports ${specifier}, which the build cannot include`);
      if (!statement.importClause?.isTypeOnly) imports.push(path.join(editorDir, `${specifier}.ts`));
      cut(statement.getStart(), statement.end);
      continue;
    }
    if (ts.isExportDeclaration(statement) || ts.isExportAssignment(statement)) {
      throw new Error(`${file}: export lists and default exports are not supported; export declarations`);
    }
    const exported = ts.canHaveModifiers(statement)
      ? ts.getModifiers(statement)?.find((m) => m.kind === ts.SyntaxKind.ExportKeyword)
      : undefined;
    if (exported) cut(exported.getStart(), exported.end + 1);
    if (ts.isFunctionDeclaration(statement) || ts.isClassDeclaration(statement)) names.push(statement.name.text);
    if (ts.isVariableStatement(statement)) {
      for (const declaration of statement.declarationList.declarations) names.push(declaration.name.getText());
    }
  }
  script += text.slice(from);
  const { outputText } = ts.transpileModule(script, {
    fileName: file,
    compilerOptions: { target: ts.ScriptTarget.ES2017, module: ts.ModuleKind.None, removeComments: false },
    reportDiagnostics: false,
  });
  return { js: outputText.trim(), imports, names };
}

/** `entry` and the modules it imports, each once, dependencies first, in one IIFE. */
function bundle(entry, given = {}) {
  const parts = [];
  const declared = new Map(Object.keys(given).map((name) => [name, 'scripts/build.js']));
  const seen = new Set();
  const add = (file) => {
    if (seen.has(file)) return;
    seen.add(file);
    const { js, imports, names } = asScript(file);
    imports.forEach(add);
    // One scope for every module: two top-level declarations of one name would clash.
    for (const name of names) {
      if (declared.has(name)) throw new Error(`${name} is declared in both ${declared.get(name)} and ${file}`);
      declared.set(name, file);
    }
    parts.push(`// ${path.relative(root, file)}\n${js}`);
  };
  add(entry);
  const constants = Object.entries(given).map(([name, value]) => `const ${name} = ${JSON.stringify(value)};`);
  const script = ['(function () {', "'use strict';", ...constants, ...parts, '})();'].join('\n');
  if (/<\/script|<!--/i.test(script)) throw new Error(`${entry}: the script must not contain "</script" or "<!--"`);
  return script;
}

const css = fs.readFileSync(path.join(editorDir, 'tcpmq.css'), 'utf8').trim();
const pkg = require(out('package.json'));
const editorFiles = [...Object.keys(pkg['node-red'].nodes), ...Object.keys(pkg['node-red'].plugins)];
for (const name of editorFiles) {
  const html = [`<style>\n${css}\n</style>`];
  html.push(`<script type="text/javascript">\n${bundle(path.join(editorDir, `${name}.ts`), GIVEN[name])}\n</script>`);
  const template = path.join(editorDir, `${name}.html`);
  if (fs.existsSync(template)) {
    const body = fs.readFileSync(template, 'utf8').trim();
    html.push(`<script type="text/html" data-template-name="${name}">\n${body}\n</script>`);
  }
  fs.writeFileSync(out('dist', 'nodes', `${name}.html`), `${html.join('\n\n')}\n`);
}

fs.cpSync(out('src', 'nodes', 'locales'), out('dist', 'nodes', 'locales'), { recursive: true });
// Node-RED looks for icons beside the node files.
fs.cpSync(out('icons'), out('dist', 'nodes', 'icons'), { recursive: true });

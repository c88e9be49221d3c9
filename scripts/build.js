#!/usr/bin/env node
// Builds the package Node-RED loads: src/ -> dist/ (the core library, and
// dist/nodes/: compiled .js beside each node's .html, locales/ and icons/).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const root = path.join(__dirname, '..');
const out = (...parts) => path.join(root, ...parts);

fs.rmSync(out('dist'), { recursive: true, force: true });

execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', out('tsconfig.json')], {
  stdio: 'inherit',
});

for (const file of fs.readdirSync(out('src', 'nodes'))) {
  if (file.endsWith('.html')) fs.copyFileSync(out('src', 'nodes', file), out('dist', 'nodes', file));
}
fs.cpSync(out('src', 'nodes', 'locales'), out('dist', 'nodes', 'locales'), { recursive: true });
// Node-RED looks for icons beside the node files.
fs.cpSync(out('icons'), out('dist', 'nodes', 'icons'), { recursive: true });

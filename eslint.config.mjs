// Lint: typescript-eslint's recommended rules for src/ (browser globals for src/editor/), ESLint's for the plain
// JavaScript of tests, bench and scripts; formatting is Prettier's (npm run lint).
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'test-output/', 'docs/', 'examples/'] },
  {
    files: ['src/**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
    languageOptions: { globals: globals.node },
    // Node-RED's own convention: `const node = this` in a node's constructor.
    rules: { '@typescript-eslint/no-this-alias': ['error', { allowedNames: ['node'] }] },
  },
  {
    // The editor's scripts run in the browser, beside Node-RED's editor (RED) and jQuery ($).
    files: ['src/editor/**/*.ts'],
    languageOptions: { globals: { ...globals.browser, RED: 'readonly', $: 'readonly' } },
  },
  {
    files: ['**/*.js'],
    extends: [js.configs.recommended],
    languageOptions: { sourceType: 'commonjs', globals: { ...globals.node, ...globals.mocha } },
    rules: { 'no-unused-vars': ['error', { args: 'none', caughtErrors: 'none' }] },
  },
  {
    // Functions that the browser test runs inside the editor's page.
    files: ['test/e2e/browser.test.js'],
    languageOptions: { globals: { ...globals.browser, RED: 'readonly' } },
  },
);

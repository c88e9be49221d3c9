'use strict';
// A real mosquitto (Debian's package) on a free loopback port, and its command-line clients.
const fs = require('node:fs');
const path = require('node:path');
const { spawn, execFile } = require('node:child_process');
const { Device, skipWithout, waitFor } = require('../support');

const MOSQUITTO = '/usr/sbin/mosquitto';

/** Skips `suite` (fails it under CI=true) when mosquitto or its clients are missing. */
function needMosquitto(suite) {
  if (!fs.existsSync(MOSQUITTO) || !fs.existsSync('/usr/bin/mosquitto_sub'))
    skipWithout(suite, 'mosquitto and mosquitto-clients', ".ci/run installs Debian's mosquitto and mosquitto-clients");
}

/**
 * mosquitto on `port`, no persistence, anonymous clients, loopback only. The child carries `exited` (a promise of
 * its exit code).
 *
 * @param {number} port
 * @param {string} dir
 */
async function startMosquitto(port, dir) {
  const conf = path.join(dir, 'mosquitto.conf');
  fs.writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
  const spawned = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  const child = Object.assign(spawned, {
    /** @type {Promise<number | null>} */
    exited: new Promise((resolve) => spawned.on('exit', resolve)),
  });
  await waitFor(async () => {
    try {
      (await Device.connect(port)).close();
      return true;
    } catch {
      return false;
    }
  }, 'mosquitto to listen');
  return child;
}

/** mosquitto_sub / mosquitto_pub, resolving with what they print. */
function mqtt(command, args) {
  return new Promise((resolve, reject) =>
    execFile(command, args, { timeout: 10000 }, (err, stdout) => (err && !stdout ? reject(err) : resolve(stdout))),
  );
}

/** The first retained (or next) message on `topic`, parsed as JSON. */
async function retained(port, topic) {
  const text = await mqtt('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-t', topic, '-C', '1', '-W', '5']);
  return JSON.parse(text);
}

/** Publishes `message` on `topic` (`retain`: as a retained message). */
function publish(port, topic, message, retain = false) {
  const args = ['-h', '127.0.0.1', '-p', String(port), '-t', topic, '-m', message];
  return mqtt('mosquitto_pub', retain ? [...args, '-r'] : args);
}

/** A Node-RED core mqtt-broker config node for the mosquitto on `port`. */
function mqttBrokerNode(id, port, clientid) {
  return {
    id,
    type: 'mqtt-broker',
    name: 'fleet',
    broker: '127.0.0.1',
    port: String(port),
    clientid,
    autoConnect: true,
    usetls: false,
    protocolVersion: '4',
    keepalive: '15',
    cleansession: true,
  };
}

module.exports = { needMosquitto, startMosquitto, mqtt, retained, publish, mqttBrokerNode };

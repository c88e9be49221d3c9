/**
 * tcpmq-broker: the config node that owns a TCPMQ broker. In, out and status
 * nodes register with it (as users of Node-RED's MQTT broker node do); it starts
 * listening when the first one registers and fans its status out to all of them.
 */

import type { Node, NodeAPI, NodeDef, NodeStatus } from 'node-red';
import { TcpmqBroker, type BrokerOptions, type BrokerStatus, type RejectEvent } from '../core/broker';
import { REPLY_FORMATS, type ReplyFormat } from '../core/reply';
import type { BrokerConfigNode } from './broker-user';
import { numberProperty } from './config';

interface TcpmqBrokerDef extends NodeDef {
  host: string;
  port: number | string;
  replyFormat: ReplyFormat;
  offlineAfter: number | string;
  idleTimeout: number | string;
  maxConnections: number | string;
  maxFrameBytes: number | string;
}

/** At most this many rejection log lines per broker each minute; the rest are counted. */
const REJECT_LOGS_PER_MINUTE = 20;

function brokerOptions(config: TcpmqBrokerDef): Partial<BrokerOptions> {
  return {
    host: String(config.host ?? '').trim() || '0.0.0.0',
    port: numberProperty(config.port, 9999),
    replyFormat: REPLY_FORMATS.includes(config.replyFormat) ? config.replyFormat : 'text',
    offlineAfter: numberProperty(config.offlineAfter, 30),
    idleTimeout: numberProperty(config.idleTimeout, 60),
    maxConnections: numberProperty(config.maxConnections, 1000),
    maxFrameBytes: numberProperty(config.maxFrameBytes, 65536),
  };
}

export = function (RED: NodeAPI) {
  function TcpmqBrokerNode(this: BrokerConfigNode, config: TcpmqBrokerDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const broker = new TcpmqBroker(brokerOptions(config));
    const users = new Map<string, Node>();
    let lastLoggedError: string | undefined;
    let rejectLogs = 0;
    let rejectWindowStart = 0;
    let unloggedRejects = 0;
    node.broker = broker;

    function currentStatus(): NodeStatus {
      const status: BrokerStatus = broker.status;
      switch (status.state) {
        case 'listening':
          return {
            fill: 'green',
            shape: 'dot',
            text: RED._('tcpmq-broker.status.listening', { port: status.port, online: broker.devices.online }),
          };
        case 'starting':
          return { fill: 'yellow', shape: 'ring', text: RED._('tcpmq-broker.status.starting', { port: status.port }) };
        case 'error':
          return { fill: 'red', shape: 'ring', text: RED._('tcpmq-broker.status.error', { error: status.error ?? '' }) };
        default:
          return {};
      }
    }

    function showStatus(): void {
      const status = currentStatus();
      for (const user of users.values()) user.status(status);
    }

    broker.on('state', (status: BrokerStatus) => {
      if (status.state === 'listening') {
        lastLoggedError = undefined;
        node.log(RED._('tcpmq-broker.log.listening', { host: status.host, port: status.port }));
      } else if (status.state === 'error' && status.error !== lastLoggedError) {
        // Retries repeat the same failure every few seconds: log it once.
        lastLoggedError = status.error;
        node.error(RED._('tcpmq-broker.errors.listen', { error: status.error ?? '', seconds: broker.options.retryInterval / 1000 }));
      }
      showStatus();
    });
    broker.on('online', showStatus);
    broker.on('offline', showStatus);
    broker.on('warning', (message: string) => node.warn(message));
    broker.on('rejected', (event: RejectEvent) => {
      const now = Date.now();
      if (now - rejectWindowStart >= 60_000) {
        if (unloggedRejects > 0) node.warn(RED._('tcpmq-broker.log.unlogged', { count: unloggedRejects }));
        rejectWindowStart = now;
        rejectLogs = 0;
        unloggedRejects = 0;
      }
      if (rejectLogs >= REJECT_LOGS_PER_MINUTE) {
        unloggedRejects++;
        return;
      }
      rejectLogs++;
      node.warn(
        RED._(`tcpmq-broker.log.${event.kind}`, {
          address: `${event.remoteAddress}:${event.remotePort}`,
          reason: event.reason,
        }),
      );
    });

    node.register = (user: Node) => {
      users.set(user.id, user);
      user.status(currentStatus());
      broker.start();
    };

    // Listening goes on when the last user leaves: field devices never reconnect,
    // so a redeploy of one in/out node must not drop their connections.
    node.deregister = (user: Node, done: () => void) => {
      users.delete(user.id);
      done();
    };

    node.on('close', (_removed: boolean, done: () => void) => {
      broker.stop().then(
        () => done(),
        () => done(),
      );
    });
  }

  RED.nodes.registerType('tcpmq-broker', TcpmqBrokerNode);
};

/** tcpmq-out: a flow writes a mailbox; the device asking for it gets it on its next request. */

import type { Node, NodeAPI, NodeDef } from 'node-red';
import { useBroker } from './broker-user';
import { numberProperty } from './config';

interface TcpmqOutDef extends NodeDef {
  broker: string;
  device: string;
  ttl: number | string;
}

export = function (RED: NodeAPI) {
  function TcpmqOutNode(this: Node, config: TcpmqOutDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const fixedDevice = String(config.device ?? '').trim();
    const defaultTtl = numberProperty(config.ttl, 0);
    const brokerNode = useBroker(RED, node, config.broker);

    node.on('input', (msg, _send, done) => {
      if (!brokerNode) {
        done(new Error(RED._('tcpmq-out.errors.no-broker')));
        return;
      }
      const message = msg as typeof msg & { ttl?: unknown };
      const target = fixedDevice !== '' ? fixedDevice : message.topic;
      if (target === undefined || target === null || target === '') {
        done(new Error(RED._('tcpmq-out.errors.no-target')));
        return;
      }
      const ttl = numberProperty(message.ttl, defaultTtl);
      if (ttl < 0) {
        done(new Error(RED._('tcpmq-out.errors.bad-ttl', { ttl: String(message.ttl) })));
        return;
      }
      try {
        if (message.payload === undefined || message.payload === null) brokerNode.broker.clearMailbox(target);
        else brokerNode.broker.writeMailbox(target, message.payload, ttl);
        done();
      } catch (err) {
        done(err as Error);
      }
    });
  }

  RED.nodes.registerType('tcpmq-out', TcpmqOutNode);
};

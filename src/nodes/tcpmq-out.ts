/**
 * tcpmq-out: a flow writes a mailbox (the device asking for it gets it on its
 * next request), or writes bytes straight to a device's connections, or closes them.
 */

import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { useBroker } from './broker-user';
import { numberProperty } from './config';

interface TcpmqOutDef extends NodeDef {
  broker: string;
  device: string;
  ttl: number | string;
  action?: Action;
}

/** mailbox: write the mailbox a device reads; send: write bytes to its connections; close: close them. */
type Action = 'mailbox' | 'send' | 'close';
const ACTIONS: readonly Action[] = ['mailbox', 'send', 'close'];

type OutMessage = NodeMessageInFlow & { ttl?: unknown; connectionId?: unknown; gateway?: unknown };

export = function (RED: NodeAPI) {
  function TcpmqOutNode(this: Node, config: TcpmqOutDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const fixedDevice = String(config.device ?? '').trim();
    const defaultTtl = numberProperty(config.ttl, 0);
    const action: Action = ACTIONS.includes(config.action as Action) ? (config.action as Action) : 'mailbox';
    const endpoint = useBroker(RED, node, config.broker);

    node.on('input', (msg, _send, done) => {
      if (!endpoint) {
        done(new Error(RED._('tcpmq-out.errors.no-broker')));
        return;
      }
      const message = msg as OutMessage;
      const target = fixedDevice !== '' ? fixedDevice : message.topic;
      const choice = { connectionId: message.connectionId, device: target, gateway: message.gateway };
      try {
        if (action === 'mailbox')
          endpoint.writeMailbox(target, message.payload, numberProperty(message.ttl, defaultTtl));
        else if (action === 'send') endpoint.send(choice, bytesOf(message.payload));
        else endpoint.closeConnections(choice);
        done();
      } catch (err) {
        done(err as Error);
      }
    });
  }

  RED.nodes.registerType('tcpmq-out', TcpmqOutNode);
};

/** msg.payload as it goes on the wire: a Buffer or a string as they are, anything else as text. */
function bytesOf(payload: unknown): string | Buffer {
  if (Buffer.isBuffer(payload) || typeof payload === 'string') return payload;
  if (payload === undefined || payload === null) return '';
  return typeof payload === 'object' ? JSON.stringify(payload) : String(payload);
}

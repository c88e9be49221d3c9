/**
 * tcpmq-out: a flow writes a mailbox (the device asking for it gets it on its
 * next request), or writes bytes straight to a device's connections, or closes them.
 */

import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import type { ConnectionTarget, TcpmqBroker } from '../core/broker';
import type { TcpmqClient } from '../core/client';
import { canonicalId } from '../core/request';
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

type OutMessage = NodeMessageInFlow & { ttl?: unknown; connectionId?: unknown };

export = function (RED: NodeAPI) {
  function TcpmqOutNode(this: Node, config: TcpmqOutDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const fixedDevice = String(config.device ?? '').trim();
    const defaultTtl = numberProperty(config.ttl, 0);
    const action: Action = ACTIONS.includes(config.action as Action) ? (config.action as Action) : 'mailbox';
    const brokerNode = useBroker(RED, node, config.broker);

    /** The connections to write to or close: msg.connectionId, else the device's. */
    function connectionTarget(msg: OutMessage): ConnectionTarget {
      const connectionId = numberProperty(msg.connectionId, NaN);
      if (Number.isInteger(connectionId)) return { connectionId };
      const device = canonicalId(fixedDevice !== '' ? fixedDevice : msg.topic);
      if (device === undefined || device === '') throw new Error(RED._('tcpmq-out.errors.no-connection'));
      return { device };
    }

    function writeMailbox(broker: TcpmqBroker, msg: OutMessage): void {
      const target = fixedDevice !== '' ? fixedDevice : msg.topic;
      if (target === undefined || target === null || target === '') throw new Error(RED._('tcpmq-out.errors.no-target'));
      const ttl = numberProperty(msg.ttl, defaultTtl);
      if (ttl < 0) throw new Error(RED._('tcpmq-out.errors.bad-ttl', { ttl: String(msg.ttl) }));
      if (msg.payload === undefined || msg.payload === null) broker.clearMailbox(target);
      else broker.writeMailbox(target, msg.payload, ttl);
    }

    /** Client mode: its own mailbox is what it sends with every request. */
    function writeOwnMailbox(client: TcpmqClient, msg: OutMessage): void {
      if (action !== 'mailbox') throw new Error(RED._('tcpmq-out.errors.client-action', { action }));
      client.setPayload(msg.payload === null ? undefined : msg.payload);
    }

    node.on('input', (msg, _send, done) => {
      if (!brokerNode) {
        done(new Error(RED._('tcpmq-out.errors.no-broker')));
        return;
      }
      const message = msg as OutMessage;
      const { broker, client } = brokerNode;
      try {
        if (!broker) writeOwnMailbox(client!, message);
        else if (action === 'mailbox') writeMailbox(broker, message);
        else if (action === 'send') broker.send(connectionTarget(message), bytesOf(message.payload));
        else broker.closeConnections(connectionTarget(message));
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

/** What the in, out and status nodes share: finding their broker and following its status. */

import type { EventEmitter } from 'node:events';
import type { Node, NodeAPI, NodeDef, NodeStatus } from 'node-red';
import type { TcpmqBroker } from '../core/broker';
import type { TcpmqClient } from '../core/client';
import type { ReplyFormat } from '../core/reply';

/** The tcpmq-broker node's properties, as the editor saves them (numbers may be text). */
export interface BrokerDef extends NodeDef {
  mode?: 'server' | 'client';
  host: string;
  port: number | string;
  replyFormat: ReplyFormat;
  // server
  offlineAfter: number | string;
  idleTimeout: number | string;
  maxConnections: number | string;
  maxFrameBytes: number | string;
  allowFrom?: string;
  allowDevices?: string;
  usetls?: boolean;
  tls?: string;
  persist?: boolean;
  // client
  clientId?: string;
  watch?: string;
  pollInterval?: number | string;
  offlineAfterNones?: number | string;
}

/**
 * One tcpmq-broker node instance's hold on what it runs: a broker (server
 * mode) or a device on another broker (client mode). The broker or client
 * outlives the instance (see running-brokers.ts); the endpoint does not.
 */
export interface Endpoint {
  broker?: TcpmqBroker;
  client?: TcpmqClient;
  start(): void;
  /** Lets go of the broker or client, which goes on running: listeners and timers removed, `persist` saved. */
  close(): Promise<void>;
  /** The status dot its user nodes show. */
  status(): NodeStatus;
}

/** The config node as its user nodes see it (see tcpmq-broker.ts): exactly one of broker and client is set. */
export interface BrokerConfigNode extends Node {
  mode: 'server' | 'client';
  broker?: TcpmqBroker;
  client?: TcpmqClient;
  register(user: Node): void;
  deregister(user: Node, done: () => void): void;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each event has its own argument type
export type Listeners = Record<string, (event: any) => void>;

/** Subscribes `listeners` to `source`'s events; returns the function that unsubscribes them. */
export function attach(source: EventEmitter, listeners: Listeners): () => void {
  for (const [event, listener] of Object.entries(listeners)) source.on(event, listener);
  return () => {
    for (const [event, listener] of Object.entries(listeners)) source.off(event, listener);
  };
}

/**
 * Attaches `node` to the broker config node `brokerId`: subscribes `listeners`
 * to the broker's events, registers for status, and undoes both on close.
 * Returns undefined (with a red status and a log line) if there is no broker.
 */
export function useBroker(
  RED: NodeAPI,
  node: Node,
  brokerId: string,
  listeners: Listeners = {},
): BrokerConfigNode | undefined {
  const brokerNode = RED.nodes.getNode(brokerId) as BrokerConfigNode | null;
  if (!brokerNode) {
    // Each node's own catalogue (locales/en-US/<type>.json) carries this key.
    node.status({ fill: 'red', shape: 'ring', text: RED._(`${node.type}.status.no-broker`) });
    node.error(RED._(`${node.type}.errors.no-broker`));
    return undefined;
  }
  const detach = attach((brokerNode.broker ?? brokerNode.client)!, listeners);
  brokerNode.register(node);
  // Two declared parameters: the runtime then passes `removed` and waits for `done`.
  node.on('close', (_removed: boolean, done: () => void) => {
    detach();
    brokerNode.deregister(node, done);
  });
  return brokerNode;
}

/** What the in, out and status nodes share: finding their broker and following its status. */

import type { Node, NodeAPI } from 'node-red';
import type { TcpmqBroker } from '../core/broker';

/** The config node as its user nodes see it (see tcpmq-broker.ts). */
export interface BrokerConfigNode extends Node {
  broker: TcpmqBroker;
  register(user: Node): void;
  deregister(user: Node, done: () => void): void;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each event has its own argument type
type Listeners = Record<string, (event: any) => void>;

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
  const broker = brokerNode.broker;
  for (const [event, listener] of Object.entries(listeners)) broker.on(event, listener);
  brokerNode.register(node);
  // Two declared parameters: the runtime then passes `removed` and waits for `done`.
  node.on('close', (_removed: boolean, done: () => void) => {
    for (const [event, listener] of Object.entries(listeners)) broker.off(event, listener);
    brokerNode.deregister(node, done);
  });
  return brokerNode;
}

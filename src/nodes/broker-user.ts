/** What the in, out and status nodes share: finding their broker and following its status. */

import type { Node, NodeAPI, NodeDef } from 'node-red';
import type { TcpmqBroker } from '../broker';
import type { TcpmqClient } from '../client/client';
import type { ReplyFormat } from '../protocol/reply';
import type { Mode } from '../settings/schema';
import type { BrokerPort, Endpoint, EndpointEvent, Listeners } from './endpoint';

/**
 * The tcpmq-broker node's properties, as the editor saves them (numbers may be text). The settings
 * schema (src/settings/schema.ts) holds those the gateway shares; the node's own are here: its mode,
 * the nodes it names (tls, share), its flags (usetls, persist) and the device list.
 */
export interface BrokerDef extends NodeDef {
  mode?: Mode;
  host: string;
  port: number | string;
  replyFormat: ReplyFormat;
  // server
  offlineAfter: number | string;
  idleTimeout: number | string;
  maxConnections: number | string;
  maxFrameBytes: number | string;
  maxDevices?: number | string;
  allowFrom?: string;
  allowDevices?: string;
  usetls?: boolean;
  /** The id of a core tls-config node. */
  tls?: string;
  /** On: mailboxes and devices saved in the user directory (the gateway's `persist` is a file's path instead). */
  persist?: boolean;
  /** Sharing: the id of a core mqtt-broker config node (empty: no sharing), the topic prefix, this gateway's name. */
  share?: string;
  shareTopic?: string;
  gateway?: string;
  haDiscovery?: boolean;
  publishInterval?: number | string;
  /** The device list: names, units and kinds of boards (see src/settings/device-list.ts). */
  devices?: unknown;
  // client
  clientId?: string;
  watch?: string;
  pollInterval?: number | string;
  offlineAfterNones?: number | string;
}

/** The config node as its user nodes see it (see tcpmq-broker.ts). */
export interface BrokerConfigNode extends Node {
  /** What user nodes talk to, in every mode. */
  endpoint: Endpoint;
  /** What runs behind it (for tests and tools): exactly one is set. */
  broker?: TcpmqBroker;
  client?: TcpmqClient;
  register(user: Node): void;
  deregister(user: Node, done: () => void): void;
}

/**
 * Attaches `node` to the broker config node `brokerId`: subscribes `listeners`
 * to its endpoint's events, registers for status, and undoes both on close.
 * Returns the endpoint, or undefined (with a red status and a log line) if
 * there is no broker.
 */
export function useBroker(
  RED: NodeAPI,
  node: Node,
  brokerId: string,
  listeners: Listeners = {},
): BrokerPort | undefined {
  const brokerNode = RED.nodes.getNode(brokerId) as BrokerConfigNode | null;
  if (!brokerNode) {
    // Each node's own catalogue (locales/en-US/<type>.json) carries this key.
    node.status({ fill: 'red', shape: 'ring', text: RED._(`${node.type}.status.no-broker`) });
    node.error(RED._(`${node.type}.errors.no-broker`));
    return undefined;
  }
  const { endpoint } = brokerNode;
  const unsubscribe: (() => void)[] = [];
  const subscribe = <E extends EndpointEvent>(event: E) => {
    const listener = listeners[event];
    if (listener) unsubscribe.push(endpoint.on(event, listener));
  };
  for (const event of Object.keys(listeners) as EndpointEvent[]) subscribe(event);
  brokerNode.register(node);
  // Two declared parameters: the runtime then passes `removed` and waits for `done`.
  node.on('close', (_removed: boolean, done: () => void) => {
    for (const off of unsubscribe) off();
    brokerNode.deregister(node, done);
  });
  return endpoint;
}

/** The gateway name of broker `brokerId` when it shares its devices (sharing), for msg.gateway. */
export function brokerGateway(RED: NodeAPI, brokerId: string): string | undefined {
  return (RED.nodes.getNode(brokerId) as BrokerConfigNode | null)?.endpoint?.gateway;
}

/** Whether broker `brokerId` is attached to a fleet (mode `fleet`): every gateway's devices are its own then. */
export function isAttached(RED: NodeAPI, brokerId: string): boolean {
  return (RED.nodes.getNode(brokerId) as BrokerConfigNode | null)?.endpoint?.mode === 'fleet';
}

/** The name and unit broker `brokerId`'s device list gives board `id` (for msg.name and msg.unit). */
export function describeDevice(RED: NodeAPI, brokerId: string, id: string): { name?: string; unit?: string } {
  return (RED.nodes.getNode(brokerId) as BrokerConfigNode | null)?.endpoint?.describeDevice(id) ?? {};
}

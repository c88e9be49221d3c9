/**
 * Sharing for a tcpmq-broker in server mode (its boards shared) or in fleet
 * mode (attached, no boards of its own): a Fleet (src/fleet/fleet.ts) over
 * Node-RED's own mqtt-broker config node, used as the core mqtt in/out nodes
 * use it (register, subscribe, publish), so that its settings, TLS and
 * credentials are the user's and no MQTT client is added here. The fleet's
 * replica belongs to the running core broker and goes through deploys with it.
 */

import { hostname } from 'node:os';
import type { Node, NodeStatus } from 'node-red';
import type { TcpmqBroker } from '../broker';
import { Fleet } from '../fleet/fleet';
import type { FleetTransport } from '../fleet/options';
import { topicPrefix } from '../fleet/topics';
import type { RoleContext, RoleSettings } from './broker-role';

/** Node-RED's mqtt-broker config node, as far as sharing needs it (see @node-red/nodes 10-mqtt.js). */
interface MqttBrokerNode extends Node {
  connected: boolean;
  register(user: { id: string; status(status: NodeStatus): void }): void;
  deregister(user: { id: string; status(status: NodeStatus): void }, done: () => void, autoDisconnect?: boolean): void;
  subscribe(
    topic: string,
    options: { qos: number },
    callback: (topic: string, payload: Buffer, packet: { retain?: boolean }) => void,
    ref: string,
  ): void;
  unsubscribe(topic: string, ref: string, removeClientSubscription?: boolean): void;
  publish(msg: { topic: string; payload: string; qos: number; retain: boolean }, done?: (err?: unknown) => void): void;
}

/** The fleet of each running broker, kept with it through deploys. */
const fleets = new WeakMap<TcpmqBroker, Fleet>();

interface Sharing {
  fleet: Fleet;
  /** Lets go of the MQTT connection; the fleet's replica stays with the broker. */
  close(): void;
}

/**
 * Shares `broker` through the mqtt-broker node `config.share`; undefined (with
 * a warning) if that node is not deployed. The status dot is shown anew
 * whenever the connection comes or goes. `attached`: fleet mode, a broker with
 * no boards of its own that follows the whole fleet.
 */
export function shareBroker(
  context: RoleContext,
  { settings, devices, warn }: RoleSettings,
  broker: TcpmqBroker,
  attached = false,
): Sharing | undefined {
  const { RED, node, config, showStatus: changed } = context;
  const mqtt = RED.nodes.getNode(String(config.share)) as MqttBrokerNode | null;
  if (!mqtt) {
    node.warn(RED._('tcpmq-broker.errors.no-share'));
    return undefined;
  }
  const prefix = topicPrefix(settings.shareTopic);
  // Attached (fleet mode), this Node-RED is one more writer of the fleet, never one of its gateways.
  const gateway =
    settings.gateway || String(config.name ?? '').trim() || (attached ? `${hostname()}-node-red` : hostname());
  let fleet = fleets.get(broker);
  // Deploys make the node anew, not the broker: it started when its fleet did.
  const startedAt = fleet?.options.announce?.startedAt ?? Date.now();
  const options = {
    prefix,
    gateway,
    haDiscovery: settings.haDiscovery && !attached,
    minIntervalMs: settings.publishInterval,
    attached,
    // A gateway says it is there (Home Assistant's availability follows it); a Node-RED attached is none.
    announce: attached ? undefined : { model: 'Node-RED', startedAt, counters: () => ({ ...broker.counters }) },
  };
  if (!fleet || fleet.options.prefix !== prefix || fleet.options.gateway !== gateway) {
    fleet?.detach();
    fleet = new Fleet(broker, options);
    fleets.set(broker, fleet);
  }
  Object.assign(fleet.options, options);
  fleet.setDevices(devices);
  const ref = `${node.id}:share`;
  const transport: FleetTransport = {
    publish: (topic, payload, retain) => mqtt.publish({ topic, payload, qos: 1, retain }, () => undefined),
    subscribe: (topic, onMessage) =>
      mqtt.subscribe(topic, { qos: 1 }, (at, payload, packet) => onMessage(at, payload, packet?.retain === true), ref),
    unsubscribe: (topic) => mqtt.unsubscribe(topic, ref, true),
  };
  const shared = fleet;
  // The mqtt-broker node tells its users of its connection through their status.
  const user = { id: ref, status: (status: NodeStatus) => shared.setConnected(status.fill === 'green') };
  const detach = shared.listen({ state: changed, warning: warn });
  shared.attach(transport);
  mqtt.register(user);
  if (mqtt.connected) shared.setConnected(true);
  return {
    fleet: shared,
    close() {
      detach();
      shared.detach();
      mqtt.deregister(user, () => undefined, false);
    },
  };
}

/**
 * The fleet side of tcpmq-broker (mode "fleet"): no port here. Node-RED
 * attaches through a core mqtt-broker node to the devices of every gateway on
 * that MQTT broker (tcpmq-gateway services, other Node-REDs sharing), so the
 * boards belong to processes that outlive any Node-RED restart. A broker that
 * never listens holds the fleet's replica; the user nodes see it through the
 * same Endpoint as a local broker: news, plain-text lines, online and offline,
 * the device table; mailbox writes, send and close go out on MQTT.
 */

import type { NodeAPI, NodeStatus } from 'node-red';
import { TcpmqBroker } from '../broker';
import type { EventListeners } from '../events/safe-emitter';
import type { Fleet, FleetEvents } from '../fleet/fleet';
import { canonicalId } from '../protocol/request';
import { describeDevice } from '../settings/device-list';
import type { DeviceRecord } from '../store/devices';
import { shareBroker } from './broker-share';
import { roleSettings, type RoleContext } from './broker-role';
import { named, type ConnectionChoice, type Endpoint } from './endpoint';
import { connectionTarget, writeMailbox } from './flow-writes';

export function fleetEndpoint(context: RoleContext, kept?: TcpmqBroker): { endpoint: Endpoint; broker: TcpmqBroker } {
  const { RED, node, config, showStatus, later } = context;
  const role = roleSettings(context, 'fleet');
  const { settings, devices } = role;
  const options = { offlineAfter: settings.offlineAfter, maxDevices: settings.maxDevices };
  // Never started: a store for the fleet's mailboxes and devices, and the flow's writes.
  const broker = kept ?? new TcpmqBroker(options);
  if (kept) later(() => kept.configure(options));
  const sharing = config.share ? shareBroker(context, { ...role, devices: new Map() }, broker, true) : undefined;
  if (!config.share) node.error(RED._('tcpmq-broker.errors.fleet-no-share'));
  const fleet = sharing?.fleet;
  const detachStatus = fleet?.listen({ online: showStatus, offline: showStatus });

  /** Writes to (or closes) the chosen connections on their gateway, through its command topic. */
  function command(kind: 'send' | 'close', choice: ConnectionChoice, data?: string | Buffer): number {
    if (!fleet) throw new Error(RED._('tcpmq-broker.errors.fleet-no-share'));
    const target = connectionTarget(RED, choice);
    const bytes = Buffer.isBuffer(data) ? { data: data.toString('base64'), buffer: true as const } : { data };
    fleet.command(targetGateway(RED, fleet, choice), kind, kind === 'send' ? { ...target, ...bytes } : target);
    // Its gateway does the writing: how many connections it reaches is not known here.
    return 1;
  }

  const rows = (records: DeviceRecord[]) =>
    named(
      records.map((row) => ({ ...row, gateway: fleet?.deviceGateway(row.id) ?? '' })),
      endpoint.describeDevice,
    );
  const connected = () => fleet?.connected === true;

  const endpoint: Endpoint = {
    mode: 'fleet',
    gateway: undefined,
    on(event, listener) {
      if (!fleet || !['news', 'raw', 'online', 'offline'].includes(event)) return () => undefined;
      return fleet.listen({ [event]: listener } as EventListeners<FleetEvents>);
    },
    start() {
      // Attached at creation: the mqtt-broker node connects by itself.
    },
    async close() {
      detachStatus?.();
      sharing?.close();
    },
    status: () => fleetStatus(RED, fleet),
    state: () => ({ state: connected() ? 'connected' : 'connecting', host: fleet?.options.prefix ?? '', port: 0 }),
    sharing: () => (fleet ? { gateway: fleet.gateway, connected: fleet.connected } : undefined),
    // This node's device list first, else what the board's gateway says.
    describeDevice(id) {
      const own = describeDevice(devices, id);
      return own.name !== undefined || own.unit !== undefined ? own : (fleet?.describeDevice(id) ?? {});
    },
    changes: () => `${fleet?.counters.received}:${fleet?.remote.online ?? 0}:${connected()}`,
    table: (options = { devices: true }) => ({
      devices: options.devices && fleet ? rows(fleet.remote.table()) : [],
      connections: [],
      counters: { shareReceived: fleet?.counters.received ?? 0, sharePublished: fleet?.counters.published ?? 0 },
    }),
    takeChanges() {
      if (!fleet) return { devices: [], removed: [] };
      const { changed, removed } = fleet.remote.takeChanges();
      return { devices: rows(changed), removed };
    },
    dropChanges: () => fleet?.remote.dropChanges(),
    // Sent to the id's gateway through `/set`; its retained mailbox message brings it back here.
    writeMailbox: (target, value, ttlSeconds) => writeMailbox(RED, fleet ?? broker, target, value, ttlSeconds),
    send: (choice, data) => command('send', choice, data),
    closeConnections: (choice) => command('close', choice),
  };
  return { endpoint, broker };
}

/** The gateway whose connections a message means: msg.gateway, else the device's. */
function targetGateway(RED: NodeAPI, fleet: Fleet, choice: ConnectionChoice): string {
  const given = typeof choice.gateway === 'string' ? choice.gateway.trim() : '';
  if (given) return given;
  const id = canonicalId(choice.device);
  if (id !== undefined && fleet.isRemote(id)) return fleet.deviceGateway(id);
  throw new Error(RED._('tcpmq-broker.errors.no-gateway', { device: String(choice.device ?? '') }));
}

/** The status dot: attached (with the fleet's devices online), MQTT down, or no MQTT broker node. */
function fleetStatus(RED: NodeAPI, fleet: Fleet | undefined): NodeStatus {
  if (!fleet) return { fill: 'red', shape: 'ring', text: RED._('tcpmq-broker.status.fleetNoShare') };
  const topic = fleet.options.prefix;
  if (!fleet.connected)
    return { fill: 'yellow', shape: 'ring', text: RED._('tcpmq-broker.status.fleetDown', { topic }) };
  return {
    fill: 'green',
    shape: 'dot',
    text: RED._('tcpmq-broker.status.fleet', { topic, online: fleet.remote.online }),
  };
}

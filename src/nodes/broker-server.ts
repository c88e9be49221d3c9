/**
 * The server side of tcpmq-broker: runs a TcpmqBroker with the node's settings,
 * TLS from a tls-config node, rate-limited logs, and `persist` through the
 * node's context, behind the Endpoint its user nodes see. Given the broker an
 * earlier instance of the node ran (a deploy), it takes that one over with the
 * new settings instead of a new one.
 */

import type { TlsOptions } from 'node:tls';
import type { Node, NodeAPI, NodeStatus } from 'node-red';
import { TcpmqBroker, type BrokerEvents, brokerOptions, type RejectEvent } from '../broker';
import { loggedOnce } from '../events/rate-limit';
import { errorText, type EventListeners } from '../events/safe-emitter';
import type { Fleet, FleetEvents } from '../fleet/fleet';
import { connectionName } from '../protocol/connection-info';
import { describeDevice } from '../settings/device-list';
import type { DeviceRecord } from '../store/devices';
import { roleSettings, type RoleContext } from './broker-role';
import type { BrokerDef } from './broker-user';
import { errorStatus, named, type DeviceRow, type Endpoint, type EndpointEvent, type EndpointEvents } from './endpoint';
import { shareBroker } from './broker-share';
import { connectionTarget, writeMailbox } from './flow-writes';
import { persistBroker } from './broker-persist';

/** Node-RED's tls-config node, as far as a server needs it. */
interface TlsConfigNode extends Node {
  verifyservercert?: boolean;
  addTLSOptions(options: TlsOptions): TlsOptions;
}

/** The broker's event behind each endpoint event, carrying the same (a server has no remote broker: no 'link'). */
const BROKER_EVENTS: { [E in EndpointEvent]?: keyof BrokerEvents } = {
  news: 'request',
  raw: 'raw',
  online: 'online',
  offline: 'offline',
  rejected: 'rejected',
};

export function serverEndpoint(context: RoleContext, kept?: TcpmqBroker): { endpoint: Endpoint; broker: TcpmqBroker } {
  const { RED, node, config, later } = context;
  // One limit for every warning a device can cause: refusals, bad input, listener failures.
  const role = roleSettings(context, 'server');
  const { devices, warn } = role;
  const options = brokerOptions(role.settings, tlsOptions(RED, config));
  const broker = kept ?? new TcpmqBroker(options);
  const persistence = persistBroker(RED, node, broker, config.persist === true, kept !== undefined);
  const detach = logBroker(context, broker, warn);
  // Sharing through MQTT, when a mqtt-broker node is given (its replica goes through deploys with the broker).
  const sharing = config.share ? shareBroker(context, role, broker) : undefined;
  const fleet = sharing?.fleet;

  // A kept one takes the new settings once every node of the deploy listens: what they change is logged and reported.
  if (kept) later(() => kept.configure(options));

  /** The device rows of this gateway and, when sharing, of the others, each with its gateway and name. */
  const rows = (local: DeviceRecord[], remote: DeviceRecord[] | undefined): DeviceRow[] =>
    named(fleet && remote ? withGateways(fleet, local, remote) : local, endpoint.describeDevice);

  const endpoint: Endpoint = {
    mode: 'server',
    gateway: fleet?.gateway,
    on: (event, listener) => subscribe(broker, fleet, event, listener),
    start() {
      persistence.restored.then(() => broker.start()).catch((err: unknown) => node.error(errorText(err)));
    },
    async close(removed) {
      detach();
      sharing?.close();
      await persistence.close(removed);
    },
    status: () => serverStatus(RED, broker, fleet),
    state: () => broker.status,
    sharing: () => (fleet ? { gateway: fleet.gateway, connected: fleet.connected } : undefined),
    changes() {
      const { connections, rawMessages, protocolErrors } = broker.counters;
      return `${broker.changes}:${connections}:${rawMessages}:${protocolErrors}:${broker.connectionCount}:${broker.onlineCount}:${broker.status.state}:${fleet?.connected}`;
    },
    describeDevice: (id) => (fleet ? fleet.describeDevice(id) : describeDevice(devices, id)),
    table: (options = { devices: true }) => ({
      devices: options.devices ? rows(broker.deviceTable(), fleet?.remote.table()) : [],
      connections: broker.connectionTable(),
      counters: {
        ...broker.counters,
        openConnections: broker.connectionCount,
        ...(fleet ? { sharePublished: fleet.counters.published, shareReceived: fleet.counters.received } : {}),
      },
    }),
    takeChanges() {
      const { changed, removed } = broker.devices.takeChanges();
      if (!fleet) return { devices: rows(changed, undefined), removed };
      const remote = fleet.remote.takeChanges();
      return { devices: rows(changed, remote.changed), removed: [...removed, ...remote.removed] };
    },
    dropChanges() {
      broker.devices.dropChanges();
      fleet?.remote.dropChanges();
    },
    writeMailbox: (target, value, ttlSeconds) => writeMailbox(RED, fleet ?? broker, target, value, ttlSeconds),
    send: (choice, data) => broker.send(connectionTarget(RED, choice), data),
    closeConnections: (choice) => broker.closeConnections(connectionTarget(RED, choice)),
  };
  return { endpoint, broker };
}

/** The broker's events in the node's log and status dot; returns the function that stops them. */
function logBroker({ RED, node, showStatus }: RoleContext, broker: TcpmqBroker, warn: (text: string) => void) {
  // Retries repeat the same failure every few seconds: logged once.
  const listenError = loggedOnce((error) =>
    node.error(RED._('tcpmq-broker.errors.listen', { error, seconds: broker.options.retryInterval / 1000 })),
  );
  return broker.listen({
    state(status) {
      if (status.state === 'listening') {
        listenError.recovered();
        node.log(RED._('tcpmq-broker.log.listening', { host: status.host, port: status.port }));
      } else if (status.state === 'error') listenError.failed(status.error);
      showStatus();
    },
    online: showStatus,
    offline: showStatus,
    warning: warn,
    rejected: (event: RejectEvent) =>
      warn(RED._(`tcpmq-broker.log.${event.kind}`, { address: connectionName(event), reason: event.reason })),
  });
}

/** TLS options from the tls-config node, when `usetls` is ticked. */
function tlsOptions(RED: NodeAPI, config: BrokerDef): TlsOptions | undefined {
  if (!config.usetls || !config.tls) return undefined;
  const tlsNode = RED.nodes.getNode(config.tls) as TlsConfigNode | null;
  if (!tlsNode) return undefined;
  const options = tlsNode.addTLSOptions({});
  // "Verify server certificate" on a server means: ask devices for a certificate and check it.
  return { ...options, requestCert: !!tlsNode.verifyservercert, rejectUnauthorized: !!tlsNode.verifyservercert };
}

/** Subscribes `listener` to the broker's event behind `event`, and to the other gateways' devices when sharing. */
function subscribe<E extends EndpointEvent>(
  broker: TcpmqBroker,
  fleet: Fleet | undefined,
  event: E,
  listener: (arg: EndpointEvents[E]) => void,
): () => void {
  const brokerEvent = BROKER_EVENTS[event];
  if (!brokerEvent) return () => undefined;
  const local = broker.listen({ [brokerEvent]: listener } as EventListeners<BrokerEvents>);
  // The devices of other gateways, with their gateway: news, online, offline.
  const remote =
    fleet && (event === 'news' || event === 'online' || event === 'offline')
      ? fleet.listen({ [event]: listener } as EventListeners<FleetEvents>)
      : undefined;
  return () => {
    local();
    remote?.();
  };
}

/** This gateway's device rows and the other gateways' ones, each with its gateway. */
function withGateways(
  fleet: Fleet,
  local: DeviceRecord[],
  remote: DeviceRecord[],
): (DeviceRecord & { gateway: string })[] {
  return [
    ...local.map((row) => ({ ...row, gateway: fleet.gateway })),
    ...remote.map((row) => ({ ...row, gateway: fleet.deviceGateway(row.id) })),
  ];
}

/** The status dot: listening (yellow while sharing is down), starting, or the listen error. */
function serverStatus(RED: NodeAPI, broker: TcpmqBroker, fleet: Fleet | undefined): NodeStatus {
  const status = broker.status;
  const counts = { port: status.port, online: broker.onlineCount };
  switch (status.state) {
    case 'listening':
      // Local service goes on without MQTT: a yellow ring says that sharing does not.
      if (fleet && !fleet.connected)
        return { fill: 'yellow', shape: 'ring', text: RED._('tcpmq-broker.status.shareDown', counts) };
      return { fill: 'green', shape: 'dot', text: RED._('tcpmq-broker.status.listening', counts) };
    case 'starting':
      return { fill: 'yellow', shape: 'ring', text: RED._('tcpmq-broker.status.starting', { port: status.port }) };
    case 'error':
      return errorStatus(RED, status.error);
    default:
      return {};
  }
}

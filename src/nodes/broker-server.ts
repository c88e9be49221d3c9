/**
 * The server side of tcpmq-broker: runs a TcpmqBroker with the node's settings,
 * TLS from a tls-config node, rate-limited logs, and `persist` through the
 * node's context, behind the Endpoint its user nodes see. Given the broker an
 * earlier instance of the node ran (a deploy), it takes that one over with the
 * new settings instead of a new one.
 */

import type { TlsOptions } from 'node:tls';
import type { Node, NodeStatus } from 'node-red';
import { TcpmqBroker, type BrokerEvents, brokerOptions, type BrokerStatus, type RejectEvent } from '../broker';
import { connectionName } from '../protocol/connection-info';
import { describeDevice } from '../settings/device-list';
import type { DeviceRecord } from '../store/devices';
import type { FleetEvents } from '../fleet/fleet';
import { describe, type EventListeners } from '../events/safe-emitter';
import { roleSettings, type RoleContext } from './broker-role';
import { named, type DeviceRow, type Endpoint, type EndpointEvent } from './endpoint';
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
  const { RED, node, config, showStatus, later } = context;
  // One limit for every warning a device can cause: refusals, bad input, listener failures.
  const role = roleSettings(context, 'server');
  const { settings, devices, warn } = role;
  const options = brokerOptions(settings, tlsOptions());
  const broker = kept ?? new TcpmqBroker(options);
  let lastLoggedError: string | undefined;

  /** TLS options from the tls-config node, when `usetls` is ticked. */
  function tlsOptions(): TlsOptions | undefined {
    if (!config.usetls || !config.tls) return undefined;
    const tlsNode = RED.nodes.getNode(config.tls) as TlsConfigNode | null;
    if (!tlsNode) return undefined;
    const options = tlsNode.addTLSOptions({});
    // "Verify server certificate" on a server means: ask devices for a certificate and check it.
    return { ...options, requestCert: !!tlsNode.verifyservercert, rejectUnauthorized: !!tlsNode.verifyservercert };
  }

  const persistence = persistBroker(RED, node, broker, config.persist === true, kept !== undefined);

  const detach = broker.listen({
    state(status: BrokerStatus) {
      if (status.state === 'listening') {
        lastLoggedError = undefined;
        node.log(RED._('tcpmq-broker.log.listening', { host: status.host, port: status.port }));
      } else if (status.state === 'error' && status.error !== lastLoggedError) {
        // Retries repeat the same failure every few seconds: log it once.
        lastLoggedError = status.error;
        node.error(
          RED._('tcpmq-broker.errors.listen', {
            error: status.error ?? '',
            seconds: broker.options.retryInterval / 1000,
          }),
        );
      }
      showStatus();
    },
    online: showStatus,
    offline: showStatus,
    warning: warn,
    rejected: (event: RejectEvent) =>
      warn(RED._(`tcpmq-broker.log.${event.kind}`, { address: connectionName(event), reason: event.reason })),
  });
  // Sharing through MQTT, when a mqtt-broker node is given (its replica goes through deploys with the broker).
  const sharing = config.share ? shareBroker(context, role, broker) : undefined;
  const fleet = sharing?.fleet;

  // A kept one takes the new settings once every node of the deploy listens: what they change is logged and reported.
  if (kept) later(() => kept.configure(options));

  const endpoint: Endpoint = {
    mode: 'server',
    gateway: fleet?.gateway,
    on(event, listener) {
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
    },
    start() {
      persistence.restored.then(() => broker.start()).catch((err: unknown) => node.error(describe(err)));
    },
    async close(removed) {
      detach();
      sharing?.close();
      await persistence.close(removed);
    },
    status(): NodeStatus {
      const status = broker.status;
      switch (status.state) {
        case 'listening':
          // Local service goes on without MQTT: a yellow ring says that sharing does not.
          if (fleet && !fleet.connected)
            return {
              fill: 'yellow',
              shape: 'ring',
              text: RED._('tcpmq-broker.status.shareDown', { port: status.port, online: broker.onlineCount }),
            };
          return {
            fill: 'green',
            shape: 'dot',
            text: RED._('tcpmq-broker.status.listening', { port: status.port, online: broker.onlineCount }),
          };
        case 'starting':
          return { fill: 'yellow', shape: 'ring', text: RED._('tcpmq-broker.status.starting', { port: status.port }) };
        case 'error':
          return {
            fill: 'red',
            shape: 'ring',
            text: RED._('tcpmq-broker.status.error', { error: status.error ?? '' }),
          };
        default:
          return {};
      }
    },
    state: () => broker.status,
    sharing: () => (fleet ? { gateway: fleet.gateway, connected: fleet.connected } : undefined),
    changes() {
      const { connections, rawMessages, protocolErrors } = broker.counters;
      return `${broker.changes}:${connections}:${rawMessages}:${protocolErrors}:${broker.connectionCount}:${broker.onlineCount}:${broker.status.state}:${fleet?.connected}`;
    },
    describe: (id) => (fleet ? fleet.describe(id) : describeDevice(devices, id)),
    table: (options = { devices: true }) => ({
      devices: options.devices ? withGateways(broker.deviceTable(), fleet?.remote.table()) : [],
      connections: broker.connectionTable(),
      counters: {
        ...broker.counters,
        openConnections: broker.connectionCount,
        ...(fleet ? { sharePublished: fleet.counters.published, shareReceived: fleet.counters.received } : {}),
      },
    }),
    takeChanges() {
      const { changed, removed } = broker.devices.takeChanges();
      if (!fleet) return { devices: named(changed, endpoint.describe), removed };
      const remote = fleet.remote.takeChanges();
      return { devices: withGateways(changed, remote.changed), removed: [...removed, ...remote.removed] };
    },
    dropChanges() {
      broker.devices.dropChanges();
      fleet?.remote.dropChanges();
    },
    writeMailbox: (target, value, ttlSeconds) => writeMailbox(RED, fleet ?? broker, target, value, ttlSeconds),
    send: (choice, data) => broker.send(connectionTarget(RED, choice), data),
    closeConnections: (choice) => broker.closeConnections(connectionTarget(RED, choice)),
  };
  /** The device rows of this gateway and, when sharing, of the others, each with its gateway and name. */
  function withGateways(local: DeviceRecord[], remote: DeviceRecord[] | undefined): DeviceRow[] {
    if (!fleet || !remote) return named(local, endpoint.describe);
    const own = fleet.gateway;
    const rows = [
      ...local.map((row) => ({ ...row, gateway: own })),
      ...remote.map((row) => ({ ...row, gateway: fleet.gatewayFor(row.id) })),
    ];
    return named(rows, endpoint.describe);
  }

  return { endpoint, broker };
}

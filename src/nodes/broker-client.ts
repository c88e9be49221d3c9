/**
 * The client side of tcpmq-broker (mode "client"): joins a TCPMQ broker hosted
 * elsewhere, such as an ESP32 on its own Wi-Fi hotspot, as one more device,
 * behind the Endpoint its user nodes see. Given the client an earlier instance of the node ran (a deploy), it takes
 * that one over with the new settings: the connection and polling go on.
 */

import type { NodeAPI, NodeStatus } from 'node-red';
import { TcpmqClient, type ClientSettings } from '../client/client';
import { loggedOnce } from '../events/rate-limit';
import { describeDevice } from '../settings/device-list';
import type { Settings } from '../settings/schema';
import { roleSettings, type RoleContext } from './broker-role';
import {
  errorStatus,
  named,
  type Endpoint,
  type EndpointEvent,
  type EndpointEvents,
  type LinkEvent,
  type NewsEvent,
} from './endpoint';

export function clientEndpoint(context: RoleContext, kept?: TcpmqClient): { endpoint: Endpoint; client: TcpmqClient } {
  const { RED, node, showStatus, later } = context;
  const { settings, devices, warn } = roleSettings(context, 'client');
  const options = clientSettings(settings);
  const client = kept ?? new TcpmqClient(options);
  // Reconnecting repeats the same failure: logged once.
  const connectError = loggedOnce((error) => warn(RED._('tcpmq-broker.errors.connect', { error })));
  const detach = client.listen({
    state(status) {
      if (status.state === 'connected') {
        connectError.recovered();
        node.log(RED._('tcpmq-broker.log.connected', { host: status.host, port: status.port }));
      } else if (status.state === 'error') connectError.failed(status.error);
      showStatus();
    },
    online: showStatus,
    offline: showStatus,
    // Stray bytes and odd replies from the remote broker, rate-limited as every warning of the role.
    warning: warn,
  });
  // A kept one takes the new settings once every node of the deploy listens: what they change is logged and reported.
  if (kept) later(() => kept.configure(options));

  let lastChanges = '';
  /** Sending to connections is a server's; a client writes only its own mailbox. */
  const serverOnly = (action: string) => () => {
    throw new Error(RED._('tcpmq-broker.errors.client-action', { action }));
  };

  const endpoint: Endpoint = {
    mode: 'client',
    gateway: undefined,
    on: (event, listener) => subscribe(client, event, listener),
    start() {
      client.start();
    },
    async close() {
      detach();
    },
    status: () => clientStatus(RED, client),
    state: () => client.status,
    sharing: () => undefined,
    changes: () => `${client.counters.replies}:${client.counters.emptyReplies}:${client.status.state}`,
    describeDevice: (id) => describeDevice(devices, id),
    table: () => ({ devices: named(client.watchState(), endpoint.describeDevice), counters: { ...client.counters } }),
    // A handful of watched ids: all of them, whenever anything changed.
    takeChanges() {
      const now = endpoint.changes();
      if (now === lastChanges) return { devices: [], removed: [] };
      lastChanges = now;
      return { devices: named(client.watchState(), endpoint.describeDevice), removed: [] };
    },
    dropChanges() {
      lastChanges = endpoint.changes();
    },
    writeMailbox(_target, value) {
      // Its own mailbox: what it sends with every request.
      client.setPayload(value === null ? undefined : value);
    },
    send: serverOnly('send'),
    closeConnections: serverOnly('close'),
  };
  return { endpoint, client };
}

/** The client's settings out of the schema's. */
function clientSettings(settings: Settings): ClientSettings {
  const { host, port, clientId, watch, pollInterval, offlineAfterNones, replyFormat } = settings;
  return { host, port, clientId, watch, pollInterval, offlineAfterNones, replyFormat };
}

/** The client's events behind the endpoint's; 'link' is derived from its state, 'raw' and 'rejected' never come. */
function subscribe<E extends EndpointEvent>(
  client: TcpmqClient,
  event: E,
  listener: (event: EndpointEvents[E]) => void,
): () => void {
  switch (event) {
    case 'news': {
      const news = listener as (news: NewsEvent) => void;
      return client.listen({ reply: (reply) => news({ from: reply.id, payload: reply.payload }) });
    }
    case 'online':
      return client.listen({ online: listener as (device: { id: string }) => void });
    case 'offline':
      return client.listen({ offline: listener as (device: { id: string }) => void });
    case 'link':
      return followLink(client, listener as (link: LinkEvent) => void);
    default:
      return () => undefined;
  }
}

/** 'link', on a change only: a node deployed while the client is connected starts from there. */
function followLink(client: TcpmqClient, link: (link: LinkEvent) => void): () => void {
  let connected = client.status.state === 'connected';
  return client.listen({
    state(status) {
      if ((status.state === 'connected') === connected) return;
      connected = !connected;
      link({
        topic: `${status.host}:${status.port}`,
        payload: connected ? 'connected' : 'disconnected',
        broker: status,
      });
    },
  });
}

/** The status dot: connected (with the watched ids online), connecting, or the connection's error. */
function clientStatus(RED: NodeAPI, client: TcpmqClient): NodeStatus {
  const status = client.status;
  const where = `${status.host}:${status.port}`;
  switch (status.state) {
    case 'connected': {
      const online = client.watchState().filter((watched) => watched.online).length;
      return { fill: 'green', shape: 'dot', text: RED._('tcpmq-broker.status.connected', { where, online }) };
    }
    case 'connecting':
      return { fill: 'yellow', shape: 'ring', text: RED._('tcpmq-broker.status.connecting', { where }) };
    case 'error':
      return errorStatus(RED, status.error);
    default:
      return {};
  }
}

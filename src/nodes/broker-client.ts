/**
 * The client side of tcpmq-broker (mode "client"): joins a TCPMQ broker hosted
 * elsewhere, such as an ESP32 on its own Wi-Fi hotspot, as one more device,
 * behind the Endpoint its user nodes see. Given the client an earlier instance of the node ran (a deploy), it takes
 * that one over with the new settings: the connection and polling go on.
 */

import type { NodeStatus } from 'node-red';
import { TcpmqClient, type ClientSettings, type ClientStatus } from '../client/client';
import type { ReplyFormat } from '../protocol/reply';
import { describeDevice } from '../settings/device-list';
import { roleSettings, type RoleContext } from './broker-role';
import {
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
  const options: ClientSettings = {
    host: settings.host,
    port: settings.port,
    clientId: settings.clientId,
    watch: settings.watch,
    pollInterval: settings.pollInterval,
    offlineAfterNones: settings.offlineAfterNones,
    replyFormat: settings.replyFormat as ReplyFormat,
  };
  const client = kept ?? new TcpmqClient(options);
  let lastLoggedError: string | undefined;
  const detach = client.listen({
    state(status: ClientStatus) {
      if (status.state === 'connected') {
        lastLoggedError = undefined;
        node.log(RED._('tcpmq-broker.log.connected', { host: status.host, port: status.port }));
      } else if (status.state === 'error' && status.error !== lastLoggedError) {
        // Reconnecting repeats the same failure: log it once.
        lastLoggedError = status.error;
        warn(RED._('tcpmq-broker.errors.connect', { error: status.error ?? '' }));
      }
      showStatus();
    },
    online: showStatus,
    offline: showStatus,
    // Stray bytes and odd replies from the remote broker, at most WARNINGS_PER_MINUTE lines a minute.
    warning: warn,
  });
  // A kept one takes the new settings once every node of the deploy listens: what they change is logged and reported.
  if (kept) later(() => kept.configure(options));

  /** The client's events behind the endpoint's; 'link' is derived from its state, 'raw' and 'rejected' never come. */
  function subscribe<E extends EndpointEvent>(event: E, listener: (event: EndpointEvents[E]) => void): () => void {
    switch (event) {
      case 'news': {
        const news = listener as (news: NewsEvent) => void;
        return client.listen({ reply: (reply) => news({ from: reply.id, payload: reply.payload }) });
      }
      case 'online':
        return client.listen({ online: listener as (device: { id: string }) => void });
      case 'offline':
        return client.listen({ offline: listener as (device: { id: string }) => void });
      case 'link': {
        const link = listener as (link: LinkEvent) => void;
        // Reported on a change only: a node deployed while the client is connected starts from there.
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
      default:
        return () => undefined;
    }
  }

  let lastChanges = '';

  /** Sending to connections is a server's; a client writes only its own mailbox. */
  const serverOnly = (action: string) => () => {
    throw new Error(RED._('tcpmq-broker.errors.client-action', { action }));
  };

  const endpoint: Endpoint = {
    mode: 'client',
    gateway: undefined,
    on: subscribe,
    start() {
      client.start();
    },
    async close() {
      detach();
    },
    status(): NodeStatus {
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
          return {
            fill: 'red',
            shape: 'ring',
            text: RED._('tcpmq-broker.status.error', { error: status.error ?? '' }),
          };
        default:
          return {};
      }
    },
    state: () => client.status,
    sharing: () => undefined,
    changes: () => `${client.counters.replies}:${client.counters.emptyReplies}:${client.status.state}`,
    describe: (id) => describeDevice(devices, id),
    table: () => ({ devices: named(client.watchState(), endpoint.describe), counters: { ...client.counters } }),
    // A handful of watched ids: all of them, whenever anything changed.
    takeChanges() {
      const now = endpoint.changes();
      if (now === lastChanges) return { devices: [], removed: [] };
      lastChanges = now;
      return { devices: named(client.watchState(), endpoint.describe), removed: [] };
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

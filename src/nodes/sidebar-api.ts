/**
 * What the editor's TCPMQ sidebar (the tcpmq-sidebar plugin) reads and writes:
 * admin HTTP endpoints (behind Node-RED's own permissions) and live updates
 * over RED.comms.
 */

import type { EventEmitter } from 'node:events';
import type { NodeAPI } from 'node-red';
import type { BrokerStatus, ConnectionRecord } from '../broker';
import type { ClientStatus } from '../client/client';
import { canonicalId } from '../protocol/request';
import { errorText } from '../events/safe-emitter';
import type { Mode } from '../settings/schema';
import type { BrokerConfigNode } from './broker-user';

interface BrokerSummary {
  id: string;
  name: string;
  mode: Mode;
  status: BrokerStatus | ClientStatus;
  /** Server: every device heard. Client: the watched ids (id, online, nones). */
  devices: object[];
  connections: ConnectionRecord[];
  /** What the broker (or the client) has counted since it started, deploys included. */
  counters: Record<string, number>;
  /** Sharing through MQTT, when on. */
  sharing?: { gateway: string; connected: boolean };
}

/** Updates go out at most this often per broker, and only when something changed. */
const PUBLISH_EVERY_MS = 250;

function summarize(node: BrokerConfigNode): BrokerSummary {
  const { devices, connections = [], counters } = node.endpoint.table();
  return { ...heading(node), devices, connections, counters };
}

/** What a summary and an update both say of a broker, besides its devices. */
function heading(node: BrokerConfigNode): Pick<BrokerSummary, 'id' | 'name' | 'mode' | 'status' | 'sharing'> {
  const { endpoint } = node;
  return {
    id: node.id,
    name: node.name ?? '',
    mode: endpoint.mode,
    status: endpoint.state(),
    sharing: endpoint.sharing(),
  };
}

interface Request {
  params: Record<string, string>;
  body?: Record<string, unknown>;
}
interface Response {
  json(body: unknown): void;
  status(code: number): Response;
}

/** What the sidebar serves in one Node-RED runtime. */
interface Sidebar {
  /** The deployed tcpmq-broker nodes by id: the broker nodes keep it, the sidebar plugin reads it. */
  brokers: Map<string, BrokerConfigNode>;
  /** Until when an open editor wants live updates. */
  watchedUntil: number;
}

/** One per runtime (the test helper loads the nodes again for every test), keyed as running-brokers.ts keys its registry. */
const sidebars = new WeakMap<EventEmitter, Sidebar>();

function sidebarOf(RED: NodeAPI): Sidebar {
  let sidebar = sidebars.get(RED.events);
  if (!sidebar) sidebars.set(RED.events, (sidebar = { brokers: new Map(), watchedUntil: 0 }));
  return sidebar;
}

/**
 * Lists broker `node` in the sidebar, with live updates while an editor is open (publishUpdates()); returns
 * the function that takes it off (a deploy does, and the node's next instance is listed anew).
 */
export function joinSidebar(RED: NodeAPI, node: BrokerConfigNode): () => void {
  const sidebar = sidebarOf(RED);
  sidebar.brokers.set(node.id, node);
  const stopPublishing = publishUpdates(RED, node, sidebar);
  return () => {
    if (sidebar.brokers.get(node.id) === node) sidebar.brokers.delete(node.id);
    stopPublishing();
  };
}

/** Registers the endpoints (the sidebar plugin does, once per runtime); they serve whichever broker nodes are deployed. */
export function registerSidebarApi(RED: NodeAPI): void {
  const sidebar = sidebarOf(RED);
  const read = RED.auth.needsPermission('tcpmq.read');
  const write = RED.auth.needsPermission('tcpmq.write');
  const withBroker =
    (handler: (node: BrokerConfigNode, body: Record<string, unknown>) => unknown) => (req: Request, res: Response) => {
      const node = sidebar.brokers.get(req.params.id);
      if (!node) {
        res.status(404).json({ error: `no deployed tcpmq-broker ${req.params.id}` });
        return;
      }
      try {
        res.json(handler(node, req.body ?? {}));
      } catch (err) {
        res.status(400).json({ error: errorText(err) });
      }
    };
  RED.httpAdmin.get('/tcpmq/brokers', read, (_req: Request, res: Response) =>
    res.json([...sidebar.brokers.values()].map(summarize)),
  );
  // An open sidebar says so every few seconds: live updates are built only while one is.
  RED.httpAdmin.post('/tcpmq/watch', read, (_req: Request, res: Response) => {
    sidebar.watchedUntil = Date.now() + WATCH_FOR_MS;
    res.json({ watchFor: WATCH_FOR_MS });
  });
  RED.httpAdmin.post(
    '/tcpmq/brokers/:id/mailbox',
    write,
    withBroker((node, body) => {
      node.endpoint.writeMailbox(body.device, body.payload, 0);
      return { device: canonicalId(body.device) };
    }),
  );
  RED.httpAdmin.post(
    '/tcpmq/brokers/:id/send',
    write,
    withBroker((node, body) => {
      const connectionId = typeof body.connectionId === 'number' ? body.connectionId : undefined;
      const device = typeof body.device === 'string' ? body.device : undefined;
      return { sent: node.endpoint.send({ connectionId, device }, String(body.text ?? '')) };
    }),
  );
}

/** An editor's sidebar says it is open at least this often (POST /tcpmq/watch); updates stop this long after the last. */
const WATCH_FOR_MS = 30_000;

/**
 * Publishes what changed in the broker to open editors (topic
 * `tcpmq/broker/<id>`, not retained), at most every PUBLISH_EVERY_MS: the
 * changed device rows and removed ids, the status, counters and connections.
 * A thousand devices reporting every 2 s make four updates a second, not five
 * hundred; with no editor open nothing is built or sent. An editor reads the
 * whole table once (GET /tcpmq/brokers), then applies the updates. Returns the
 * stop function (a deploy stops it and the node's next instance publishes on).
 */
function publishUpdates(RED: NodeAPI, node: BrokerConfigNode, sidebar: Sidebar): () => void {
  const topic = `tcpmq/broker/${node.id}`;
  let published = '';
  const publish = () => {
    // Cleared every time, so that what piles up is only what changed in one period; built only for an editor.
    if (Date.now() > sidebar.watchedUntil) {
      node.endpoint.dropChanges();
      return;
    }
    const { devices, removed } = node.endpoint.takeChanges();
    const now = node.endpoint.changes();
    if (now === published && devices.length === 0 && removed.length === 0) return;
    published = now;
    const { connections = [], counters } = node.endpoint.table({ devices: false });
    RED.comms.publish(
      topic,
      { ...heading(node), delta: true, devices, removedDevices: removed, connections, counters },
      false,
    );
  };
  const timer = setInterval(publish, PUBLISH_EVERY_MS);
  return () => clearInterval(timer);
}

/** Tells open editors that broker `id` is gone (deleted, or stopped with no new instance to take it over). */
export function publishRemoved(RED: NodeAPI, id: string): void {
  RED.comms.publish(`tcpmq/broker/${id}`, { id, removed: true }, false);
}

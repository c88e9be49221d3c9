/**
 * What the in, out and status nodes (and the sidebar) see of a tcpmq-broker,
 * in each of its modes: a broker of its own (server, broker-server.ts), a device
 * on a broker hosted elsewhere (client, broker-client.ts), or the devices of a
 * fleet's gateways through MQTT (fleet, broker-fleet.ts). User nodes talk to
 * this role object only, never to the mode behind it.
 */

import type { NodeAPI, NodeStatus } from 'node-red';
import type { BrokerStatus, ConnectionRecord, RawEvent, RejectEvent } from '../broker';
import type { ClientStatus, WatchedId } from '../client/client';
import type { Mode } from '../settings/schema';
import type { DeviceRecord } from '../store/devices';

/** A device's news: a request it sent (server), or a watched id's mailbox read (client). */
export interface NewsEvent {
  /** The device id. */
  from: string;
  payload: unknown;
  /** Server: what the device asked for, and where it spoke from. */
  want?: string;
  remoteAddress?: string;
  remotePort?: number;
  connectionId?: number;
  /** Set for a device of another gateway (sharing). */
  gateway?: string;
}

/** The remote broker came or went (client mode). */
export interface LinkEvent {
  /** `host:port` of the remote broker. */
  topic: string;
  payload: 'connected' | 'disconnected';
  broker: ClientStatus;
}

/** What each event carries. */
export interface EndpointEvents {
  news: NewsEvent;
  /** A line or chunk from a plain-text connection (server). */
  raw: RawEvent;
  /** A device came online or went offline; `gateway` is set for a device of another gateway. */
  online: { id: string; gateway?: string };
  offline: { id: string; gateway?: string };
  /** Bad input, a refused or closed connection (server). */
  rejected: RejectEvent;
  link: LinkEvent;
}

export type EndpointEvent = keyof EndpointEvents;

/** Listeners for some of the events. */
export type Listeners = { [E in EndpointEvent]?: (event: EndpointEvents[E]) => void };

/** A row of the device table: a device heard (server, fleet) or a watched id (client), with its gateway and name. */
export type DeviceRow = (DeviceRecord | WatchedId) & { gateway?: string; name?: string; unit?: string };

/** The device table, as tcpmq-status sends it and the sidebar shows it. */
interface DeviceTable {
  /** Server: every device heard. Client: the watched ids. */
  devices: DeviceRow[];
  /** Server: every open connection. */
  connections?: ConnectionRecord[];
  counters: Record<string, number>;
}

/** Which connections a flow writes to or closes, as the message gives them (parsed by the endpoint). */
export interface ConnectionChoice {
  connectionId?: unknown;
  device?: unknown;
  /** Fleet mode: the gateway that holds the connection (msg.gateway). */
  gateway?: unknown;
}

/** What the in, out and status nodes use of a broker: its events, its status dot, the flow's writes. */
export interface BrokerPort {
  readonly mode: Mode;
  /** This gateway's name when the broker shares its devices through MQTT; undefined otherwise. */
  readonly gateway: string | undefined;
  /** Subscribes `listener`; returns the function that unsubscribes it. */
  on<E extends EndpointEvent>(event: E, listener: (event: EndpointEvents[E]) => void): () => void;
  /** The status dot its user nodes show. */
  status(): NodeStatus;
  /** The device table; `{ devices: false }`: all but the device rows (cheap, whatever the number of devices). */
  table(options?: { devices: boolean }): DeviceTable;
  /** The name and unit the device list gives board `id` (or its own gateway's, in the fleet). */
  describeDevice(id: string): { name?: string; unit?: string };
  /**
   * Writes mailbox `target` (server) or this device's own mailbox (client);
   * `value` null or undefined clears it. Throws with a message for the flow.
   */
  writeMailbox(target: unknown, value: unknown, ttlSeconds: number): void;
  /** Writes `data` to the chosen connections; returns how many. Throws if there is none, or in client mode. */
  send(choice: ConnectionChoice, data: string | Buffer): number;
  /** Closes the chosen connections; returns how many. Throws as send() does. */
  closeConnections(choice: ConnectionChoice): number;
}

/** What the editor's sidebar reads of a broker besides that: its state and what changed since it last looked. */
interface SidebarFeed {
  /** The listening or connection state. */
  state(): BrokerStatus | ClientStatus;
  /** Sharing through MQTT, when on: this gateway's name and whether the MQTT broker is connected. */
  sharing(): { gateway: string; connected: boolean } | undefined;
  /** Changes whenever what the sidebar shows may have changed. */
  changes(): string;
  /** The device rows changed, and the ids removed, since the last call (for the sidebar's updates). */
  takeChanges(): { devices: DeviceRow[]; removed: string[] };
  /** Forgets those changes without building them (no editor is looking). */
  dropChanges(): void;
}

/** A role of tcpmq-broker (server, client, fleet), as the config node runs it and its users see it. */
export interface Endpoint extends BrokerPort, SidebarFeed {
  /** Starts serving (or connecting); what it runs may already be running (a deploy). */
  start(): void;
  /**
   * Lets go of what it runs, which goes on: listeners and timers removed,
   * `persist` saved; `removed`: the broker was deleted (its snapshot goes too).
   */
  close(removed: boolean): Promise<void>;
}

/** `rows` with the name and unit of each listed board. */
export function named<R extends DeviceRow>(rows: R[], describeDevice: BrokerPort['describeDevice']): R[] {
  return rows.map((row) => {
    const info = describeDevice(row.id);
    return info.name === undefined && info.unit === undefined ? row : { ...row, ...info };
  });
}

/** The red ring of a role that cannot listen or connect, with the reason. */
export function errorStatus(RED: NodeAPI, error: string | undefined): NodeStatus {
  return { fill: 'red', shape: 'ring', text: RED._('tcpmq-broker.status.error', { error: error ?? '' }) };
}

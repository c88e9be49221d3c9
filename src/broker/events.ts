/**
 * What the broker reports, and what each of its events carries (plain objects).
 *
 * - 'state'      (BrokerStatus)  starting / listening / error / stopped
 * - 'request'    (RequestEvent)  a device sent a valid request (already answered)
 * - 'raw'        (RawEvent)      a line or chunk of plain text (docs/PROTOCOL.md, plain text)
 * - 'online'     (DeviceRecord)  a device sent its first request since being offline
 * - 'offline'    (DeviceRecord)  a device was silent for offlineAfter seconds
 * - 'rejected'   (RejectEvent)   bad input, oversize frame, refused or dropped connection
 * - 'connection' / 'disconnect' (ConnectionInfo)
 * - 'warning'    (string)        a listener threw; the broker carried on
 */

import type { DeviceId } from '../protocol/request';
import type { DeviceRecord } from '../store/devices';
import type { Mailbox } from '../store/mailboxes';
import type { ConnectionInfo } from '../protocol/connection-info';

export type BrokerState = 'stopped' | 'starting' | 'listening' | 'error';

export interface BrokerStatus {
  state: BrokerState;
  host: string;
  port: number;
  /** Why listening failed, naming the address: set in the 'error' state. */
  error?: string;
  /** The system error code (EADDRINUSE, EACCES, ...) in the 'error' state. */
  code?: string;
}

export interface RequestEvent extends ConnectionInfo {
  from: DeviceId;
  want: DeviceId;
  payload: unknown;
}

export interface RawEvent extends ConnectionInfo {
  bytes: Buffer;
  /** False for bytes that are not UTF-8 text (or hold control characters other than tab, CR, LF, ESC). */
  isText: boolean;
}

export type RejectKind =
  'protocol-error' | 'oversize' | 'refused' | 'forbidden' | 'unknown-device' | 'capacity' | 'tls' | 'idle' | 'backlog';

export interface RejectEvent extends ConnectionInfo {
  kind: RejectKind;
  reason: string;
  /** The device id involved, for 'unknown-device'. */
  deviceId?: DeviceId;
}

/**
 * What sharing (fleet.ts) hears of this broker's own changes: called at once,
 * with no copy made, so that a request costs one call more, not an event.
 */
export interface ShareHook {
  /**
   * Mailbox `id` was written here (a device's request, a flow), or cleared
   * (`mailbox` undefined); for a device's request, what it asked for and its connection.
   */
  written(id: DeviceId, mailbox: Mailbox | undefined, want?: DeviceId, connection?: ConnectionInfo): void;
  /** A device record was dropped to make room (maxDevices). */
  evicted(id: DeviceId): void;
  /** A device of this broker came online or went offline. */
  device(record: DeviceRecord): void;
}

/** What each of the broker's events carries (see the top of this file). */
export interface BrokerEvents {
  state: BrokerStatus;
  request: RequestEvent;
  raw: RawEvent;
  online: DeviceRecord;
  offline: DeviceRecord;
  rejected: RejectEvent;
  connection: ConnectionInfo;
  disconnect: ConnectionInfo;
  warning: string;
}

export interface BrokerCounters {
  connections: number;
  requests: number;
  rawMessages: number;
  protocolErrors: number;
  oversize: number;
  /** Connections refused: over maxConnections, or from an address not in allowFrom. */
  refused: number;
  /** Requests from ids not in allowDevices (their connections are closed). */
  unknownDevices: number;
  idleClosed: number;
  /** Requests answered while no flow listened for them (no tcpmq-in, or in the moment of a deploy). */
  unheardRequests: number;
  /** Connections closed because a changed allowFrom or allowDevices no longer admits them. */
  closedBySettings: number;
  /** Requests from new ids answered but not recorded: maxDevices records, all online. */
  capacityRefused: number;
}

/** Counters at their start: all zero. */
export function noCounts(): BrokerCounters {
  return {
    connections: 0,
    requests: 0,
    rawMessages: 0,
    protocolErrors: 0,
    oversize: 0,
    refused: 0,
    unknownDevices: 0,
    idleClosed: 0,
    unheardRequests: 0,
    closedBySettings: 0,
    capacityRefused: 0,
  };
}

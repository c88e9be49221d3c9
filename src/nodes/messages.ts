/**
 * The messages the nodes send into flows, as their help documents them: one
 * shape per kind, so that what a flow receives is typed where it is made.
 */

import type { NodeMessage } from 'node-red';
import type { ConnectionRecord, RejectKind } from '../broker';
import type { DeviceRow, LinkEvent } from './endpoint';

/** Where a board spoke from (a local board; for a fleet's board, as its gateway saw it). */
interface Origin {
  remoteAddress?: string;
  remotePort?: number;
  connectionId?: number;
}

/** tcpmq in: a board's news. */
export interface NewsMessage extends NodeMessage, Origin {
  topic: string;
  payload: unknown;
  /** The device list's name and unit for the board, when listed. */
  name?: string;
  unit?: string;
  /** What the board asked for. */
  want?: string;
  /** The gateway the board is on (sharing, fleet mode). */
  gateway?: string;
}

/** tcpmq in: a line or chunk from a plain-text board. */
export interface RawMessage extends NodeMessage, Origin {
  /** `address:port` of the connection. */
  topic: string;
  payload: string | Buffer;
  raw: true;
  /** Fleet mode: the gateway holding the connection, where a reply must go. */
  gateway?: string;
}

/** tcpmq status: a board came online or went offline. */
export interface PresenceMessage extends NodeMessage {
  topic: string;
  payload: 'online' | 'offline';
  device: { id: string; gateway?: string };
  name?: string;
  unit?: string;
  gateway?: string;
}

/** tcpmq status: bad input, a refused or closed connection (or how many such were not sent). */
export interface ErrorMessage extends NodeMessage, Origin {
  topic: string;
  payload: 'error';
  error: string;
  kind: RejectKind | 'dropped';
}

/** tcpmq status: the remote broker came or went (client mode). */
export type LinkMessage = NodeMessage & LinkEvent;

/** tcpmq status: the answer to any input, the device table. */
export interface TableMessage extends NodeMessage {
  payload: DeviceRow[];
  connections?: ConnectionRecord[];
  counters: Record<string, number>;
}

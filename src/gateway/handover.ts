/**
 * What tcpmq-gateway's holder (holder.ts) and its worker (worker.ts) say to
 * each other over the IPC channel of child_process.fork(). The holder owns the
 * listening socket and every board's connection and runs no broker code; the
 * worker runs the broker on the sockets it is handed. An upgrade:
 *
 *   holder --fork--> new worker --ready--> holder --handover--> old worker
 *   old worker --handed (its state; it has let go of every socket)--> holder
 *   holder --state, then each connection with its socket--> new worker
 *   new worker --serving (its MQTT session is up, or it has none)--> holder --leave--> old worker
 *
 * A worker that dies is replaced by a new one that gets the last `snapshot` it
 * sent (every few seconds) and every connection.
 */

import type { BrokerCounters, ConnectionState } from '../broker';
import type { BrokerSnapshot } from '../store/snapshot';

/** A connection's state as it crosses the channel (JSON): its unread bytes as base64. */
type ConnectionWire = Omit<ConnectionState, 'held'> & { held: string };

/** What a worker hands on: mailboxes and devices (the store's snapshot), counters, connections. */
export interface WorkerState {
  snapshot: BrokerSnapshot;
  counters: BrokerCounters;
  connections: ConnectionWire[];
}

/** Holder to worker. */
export type HolderMessage =
  /** The state to start from (JSON of a WorkerState; none: the first worker, which reads persist); when the service started. */
  | { type: 'state'; state: string | undefined; startedAt: number }
  /** A connection, its socket beside the message. */
  | { type: 'connection'; connectionId: number }
  /** An upgrade: stop reading, let go of every socket and answer 'handed'. */
  | { type: 'handover' }
  /** The next worker serves: end the MQTT session without a word, and exit. */
  | { type: 'leave' }
  /** SIGTERM: stop as the gateway stops (persist saved, offline said on MQTT), and exit. */
  | { type: 'stop' }
  /** SIGHUP: read the settings again. */
  | { type: 'reload' };

/** Worker to holder. */
export type WorkerMessage =
  /** Started from the code on disk now: waits for its 'state'. */
  | { type: 'ready'; version: string }
  /** Serving from its state (persist read, at the first start): the holder listens from then on. */
  | { type: 'started' }
  /** Serving, and its MQTT session is up (or it has none): the worker before may go. */
  | { type: 'serving' }
  /** Connection `connectionId` closed here (the board's close, or the broker's): the holder closes its own. */
  | { type: 'closed'; connectionId: number }
  /** The state now (JSON of a WorkerState), every few seconds while it changes: what a crash falls back on. */
  | { type: 'snapshot'; state: string }
  /** Answer to 'handover': the state (JSON of a WorkerState, with each connection's unread bytes). */
  | { type: 'handed'; state: string };

export function toWire(state: ConnectionState): ConnectionWire {
  return { ...state, held: state.held.toString('base64') };
}

export function fromWire(wire: ConnectionWire): ConnectionState {
  return { ...wire, held: Buffer.from(wire.held, 'base64') };
}

/** What the client reports, and what each of its events carries (see client.ts). */

export type ClientState = 'stopped' | 'connecting' | 'connected' | 'error';

export interface ClientStatus {
  state: ClientState;
  host: string;
  port: number;
  /** What went wrong, naming the address: set in the 'error' state. */
  error?: string;
  /** The system error code (ECONNREFUSED, ECONNRESET, ...) or ETIMEDOUT / ECLOSED / EINVAL, in the 'error' state. */
  code?: string;
  /** Milliseconds until the next connection attempt, in the 'error' state (absent: no retry). */
  retryIn?: number;
}

export interface ClientReply {
  /** The watched id, as given in `watch`. */
  id: string;
  /** text: the reply's UTF-8 text; json: its decoded JSON value (or the text if it is not JSON). */
  payload: unknown;
  /** The reply's bytes as received. */
  raw: Buffer;
}

export interface WatchedId {
  id: string;
  /** undefined until the id has answered, or has answered empty offlineAfterNones times. */
  online: boolean | undefined;
  /** Consecutive empty replies. */
  nones: number;
}

export interface ClientCounters {
  /** Connections made. */
  connections: number;
  requests: number;
  /** Replies with something in them (emitted as 'reply', or read back with an empty watch list). */
  replies: number;
  /** `None` / `null` replies. */
  emptyReplies: number;
  /** Requests that got no reply within `timeout`. */
  timeouts: number;
  /** Bytes received while no request was waiting for its reply: dropped. */
  strayBytes: number;
}

/** What each of the client's events carries (see the top of this file). */
export interface ClientEvents {
  state: ClientStatus;
  reply: ClientReply;
  online: { id: string };
  offline: { id: string };
  warning: string;
}

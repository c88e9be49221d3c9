/** The client's settings: what the constructor and configure() take, with defaults and checks. */

import { listItems } from '../protocol/ids';
import type { ReplyFormat } from '../protocol/reply';
import { defaults } from '../settings/schema';

export interface ClientOptions {
  /** The broker's address: an ESP32 hotspot is 192.168.4.1. */
  host: string;
  port: number;
  /** This device's id, as typed (sent as a number if it looks like one, see wireIdJson()). */
  clientId: string;
  /**
   * Ids whose mailboxes are read, one per request, in turn (duplicates and empty
   * ids dropped). Empty: the client reads its own. The constructor also takes a
   * comma-separated string ("1, 2, cmd").
   */
  watch: string[];
  /** Seconds from one request to the next. */
  pollInterval: number;
  /** Consecutive empty replies for a watched id after which it is offline. */
  offlineAfterNones: number;
  /** How the broker writes replies: 'text' (raw, `None` = nothing) or 'json' (JSON text, `null` = nothing). */
  replyFormat: ReplyFormat;
  /** Seconds to wait for a connection or for a reply before reconnecting. */
  timeout: number;
  /** Seconds before the first reconnection attempt; doubles after each failure up to retryMax. */
  retryMin: number;
  retryMax: number;
}

const SCHEMA_DEFAULTS = defaults('client');

export const DEFAULT_CLIENT_OPTIONS: ClientOptions = {
  host: SCHEMA_DEFAULTS.host,
  port: SCHEMA_DEFAULTS.port,
  clientId: SCHEMA_DEFAULTS.clientId,
  watch: [],
  pollInterval: SCHEMA_DEFAULTS.pollInterval,
  offlineAfterNones: SCHEMA_DEFAULTS.offlineAfterNones,
  replyFormat: SCHEMA_DEFAULTS.replyFormat,
  timeout: 8,
  retryMin: 1,
  retryMax: 30,
};

/** What the constructor and configure() take: any option left out has its default. */
export type ClientSettings = Partial<Omit<ClientOptions, 'watch'>> & { watch?: string[] | string };

/** Complete, checked options: defaults for what is missing or not a positive number. */
export function clientOptions(options: ClientSettings): ClientOptions {
  const given = { ...DEFAULT_CLIENT_OPTIONS, ...options };
  const d = DEFAULT_CLIENT_OPTIONS;
  const retryMin = positive(given.retryMin, d.retryMin);
  return {
    host: String(given.host || d.host),
    port: Number(given.port ?? d.port),
    clientId: String(given.clientId ?? ''),
    watch: [
      ...new Set(
        (typeof given.watch === 'string' ? listItems(given.watch) : (given.watch ?? []).map(String)).filter(
          (id) => id !== '',
        ),
      ),
    ],
    pollInterval: positive(given.pollInterval, d.pollInterval),
    offlineAfterNones: Math.max(1, Math.round(positive(given.offlineAfterNones, d.offlineAfterNones))),
    replyFormat: given.replyFormat === 'json' || given.replyFormat === 'text' ? given.replyFormat : d.replyFormat,
    timeout: positive(given.timeout, d.timeout),
    retryMin,
    retryMax: Math.max(retryMin, positive(given.retryMax, d.retryMax)),
  };
}

function positive(value: unknown, fallback: number): number {
  const number = Number(value);
  return Number.isFinite(number) && number > 0 ? number : fallback;
}

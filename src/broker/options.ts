/** The broker's settings, with their defaults from the one schema (src/settings/schema.ts). */

import type * as tls from 'node:tls';
import type { ReplyFormat } from '../protocol/reply';
import { defaults, type Settings } from '../settings/schema';

export interface BrokerOptions {
  host: string;
  port: number;
  replyFormat: ReplyFormat;
  /** Seconds of silence before a device is offline. */
  offlineAfter: number;
  /** Seconds a connection may stay silent before it is closed; 0 = never. */
  idleTimeout: number;
  maxConnections: number;
  maxFrameBytes: number;
  /** Milliseconds between attempts to listen after a failure. */
  retryInterval: number;
  /** Comma-separated addresses and CIDR ranges allowed to connect; empty = anyone. */
  allowFrom: string;
  /** Comma-separated device ids allowed to send; empty = any. */
  allowDevices: string;
  /** Device records at most: an offline one makes room for a new id; when all are online, new ids are not recorded. */
  maxDevices: number;
  /** Key, certificate (and CA to verify clients) to serve TLS instead of plain TCP. */
  tls?: tls.TlsOptions;
}

const SCHEMA_DEFAULTS = defaults('server');

export const DEFAULT_OPTIONS: BrokerOptions = {
  host: SCHEMA_DEFAULTS.host,
  port: SCHEMA_DEFAULTS.port,
  replyFormat: SCHEMA_DEFAULTS.replyFormat,
  offlineAfter: SCHEMA_DEFAULTS.offlineAfter,
  idleTimeout: SCHEMA_DEFAULTS.idleTimeout,
  maxConnections: SCHEMA_DEFAULTS.maxConnections,
  maxFrameBytes: SCHEMA_DEFAULTS.maxFrameBytes,
  retryInterval: 5000,
  allowFrom: SCHEMA_DEFAULTS.allowFrom,
  allowDevices: SCHEMA_DEFAULTS.allowDevices,
  maxDevices: SCHEMA_DEFAULTS.maxDevices,
};

/** The broker's options out of the schema's settings (the node's, the gateway's), with TLS if it serves TLS. */
export function brokerOptions(settings: Settings, tls?: tls.TlsOptions): Partial<BrokerOptions> {
  return {
    host: settings.host,
    port: settings.port,
    replyFormat: settings.replyFormat,
    offlineAfter: settings.offlineAfter,
    idleTimeout: settings.idleTimeout,
    maxConnections: settings.maxConnections,
    maxFrameBytes: settings.maxFrameBytes,
    maxDevices: settings.maxDevices,
    allowFrom: settings.allowFrom,
    allowDevices: settings.allowDevices,
    tls,
  };
}

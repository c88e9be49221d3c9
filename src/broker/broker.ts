/**
 * The TCPMQ broker: listens (listener.ts), takes in connections
 * (connections.ts), answers each request from the mailboxes (mailboxes.ts),
 * keeps the device table (devices.ts) and reports what happens as events;
 * the flow API writes mailboxes and connections. No Node-RED import: usable
 * on its own. A byte goes: socket -> Connection -> FrameReader -> onFrame()
 * here -> parseRequest -> Mailboxes / Devices -> reply and 'request' event.
 *
 * Events (all arguments are plain objects):
 * - 'state'      (BrokerStatus)  starting / listening / error / stopped
 * - 'request'    (RequestEvent)  a device sent a valid request (already answered)
 * - 'raw'        (RawEvent)      a line or chunk of plain text (docs/PROTOCOL.md, plain text)
 * - 'online'     (DeviceRecord)  a device sent its first request since being offline
 * - 'offline'    (DeviceRecord)  a device was silent for offlineAfter seconds
 * - 'rejected'   (RejectEvent)   bad input, oversize frame, refused or dropped connection
 * - 'connection' / 'disconnect' (ConnectionInfo)
 * - 'warning'    (string)        a listener threw; the broker carried on
 */

import { isUtf8 } from 'node:buffer';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { isAllowedAddress, parseAllowFrom, parseIdList } from './access';
import {
  plainAddress,
  type Connection,
  type ConnectionHandlers,
  type ConnectionInfo,
  type ConnectionRecord,
} from './connection';
import { Connections, type ConnectionTarget } from './connections';
import { Devices, type DeviceRecord } from '../store/devices';
import { Listener, listenError, sameTls } from './listener';
import { copyOf, Mailboxes, type Mailbox } from '../store/mailboxes';
import { encodeReply, type ReplyFormat } from '../protocol/reply';
import { printable } from '../protocol/printable';
import { canonicalId, isRequest, parseRequest, type DeviceId } from '../protocol/request';
import { SafeEmitter, describe } from '../events/safe-emitter';
import { restoreSnapshot, takeSnapshot, type BrokerSnapshot } from '../store/snapshot';

export { connectionName, type ConnectionInfo, type ConnectionRecord } from './connection';
export type { ConnectionTarget } from './connections';
export type { BrokerSnapshot } from '../store/snapshot';

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

export const DEFAULT_OPTIONS: BrokerOptions = {
  host: '0.0.0.0',
  port: 9999,
  replyFormat: 'text',
  offlineAfter: 30,
  idleTimeout: 60,
  maxConnections: 1000,
  maxFrameBytes: 65536,
  retryInterval: 5000,
  allowFrom: '',
  allowDevices: '',
  maxDevices: 10000,
};

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
  /** Mailbox `id` was written here (a device's request, a flow), or cleared (`mailbox` undefined). */
  written(id: DeviceId, mailbox: Mailbox | undefined): void;
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

export class TcpmqBroker extends SafeEmitter<BrokerEvents> {
  readonly mailboxes: Mailboxes;
  readonly devices: Devices;
  readonly counters: BrokerCounters = {
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

  private settings: BrokerOptions;
  /** Sharing through MQTT, when on (see fleet.ts). */
  private share: ShareHook | undefined;
  private readonly connections = new Connections();
  /** The listener bound with the current settings. */
  private listener: Listener | undefined;
  /** A listener being replaced (new host, port or TLS): closed once the new one has bound. */
  private retiring: Listener | undefined;
  /** Listeners being closed: stop() waits for them. */
  private readonly closing = new Set<Promise<void>>();
  /** Every accepted TCP socket until it closes (TLS ones from before their handshake), whichever listener took it. */
  private readonly sockets = new Set<net.Socket>();
  private retryTimer: NodeJS.Timeout | undefined;
  private flowWrites = 0;
  private currentStatus: BrokerStatus;
  /** Between start() and stop(): serving, or trying to. */
  private running = false;
  private stopping = false;
  private allowedAddresses: net.BlockList | undefined;
  private allowedDevices: Set<DeviceId> | undefined;
  /** A setting that cannot work (a bad allowFrom entry): reported instead of listening. */
  private configError: string | undefined;

  /** Where a connection's bytes go: closures, so that nothing of this is public. */
  private readonly handlers: ConnectionHandlers = {
    frame: (connection, frame) => this.onFrame(connection, frame),
    raw: (connection, bytes) => {
      this.counters.rawMessages++;
      this.safeEmit('raw', { ...connection.info(), bytes, isText: isText(bytes) } satisfies RawEvent);
    },
    stray: (connection, bytes) => {
      this.counters.protocolErrors++;
      this.reject(connection, 'protocol-error', `not JSON: ${preview(bytes)}`);
    },
    oversize: (connection, size) => {
      this.counters.oversize++;
      this.reject(
        connection,
        'oversize',
        `frame of ${size} bytes or more exceeds maxFrameBytes (${this.settings.maxFrameBytes})`,
      );
      connection.close();
    },
    backlog: (connection, unread) =>
      this.reject(connection, 'backlog', `does not read its replies (${unread} bytes unread)`),
  };

  constructor(options: Partial<BrokerOptions> = {}) {
    super();
    this.settings = { ...DEFAULT_OPTIONS, ...options };
    this.parseAccess();
    this.mailboxes = new Mailboxes(this.settings.replyFormat);
    this.devices = new Devices(
      this.settings.offlineAfter * 1000,
      (device) => this.wentOffline(device),
      this.settings.maxDevices,
    );
    this.currentStatus = { state: 'stopped', host: this.settings.host, port: this.settings.port };
  }

  /** The settings in force (configure() replaces them). */
  get options(): BrokerOptions {
    return this.settings;
  }

  get status(): BrokerStatus {
    return this.currentStatus;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Devices online now. */
  get onlineCount(): number {
    return this.devices.online;
  }

  /** Grows with every change to mailboxes or devices: whether a snapshot is out of date. */
  get changes(): number {
    return this.counters.requests + this.flowWrites;
  }

  // ---- running ------------------------------------------------------------

  /** Starts listening; a failure is reported as an 'error' state and retried. */
  start(): void {
    if (this.listener || this.retryTimer || this.stopping) return;
    this.running = true;
    const { host, port } = this.settings;
    if (this.configError) {
      this.setStatus({ state: 'error', host, port, code: 'EINVAL', error: this.configError });
      this.retire();
      return;
    }
    this.startSweeps();
    this.setStatus({ state: 'starting', host, port });
    const tlsOptions = this.settings.tls;
    let server: net.Server;
    try {
      server = tlsOptions ? tls.createServer(tlsOptions) : net.createServer();
    } catch (err) {
      // A key that does not match its certificate, a wrong passphrase: reported, not thrown.
      this.setStatus({ state: 'error', host, port, code: 'ETLS', error: `TLS settings rejected: ${describe(err)}` });
      this.retire();
      return;
    }
    const listener = new Listener(server);
    server.on('connection', (socket: net.Socket) => {
      // With TLS, devices are served once the handshake is done ('secureConnection').
      if (this.admit(socket, listener) && !tlsOptions) this.accept(socket);
    });
    if (tlsOptions) {
      server.on('secureConnection', (socket: tls.TLSSocket) => this.accept(socket));
      server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => this.tlsFailed(err, socket));
    }
    this.listener = listener;
    server.on('error', (err: NodeJS.ErrnoException) => this.listenFailed(listener, err));
    try {
      server.listen({ host, port }, () => {
        if (this.listener !== listener) return; // stopped or moved while binding
        const address = server.address();
        const boundPort = typeof address === 'object' && address ? address.port : port;
        this.setStatus({ state: 'listening', host, port: boundPort });
        this.retire();
      });
    } catch (err) {
      // A port out of range or a malformed host fails at once rather than as an event.
      this.listenFailed(listener, err as NodeJS.ErrnoException);
    }
  }

  /** Closes every connection and listener, and clears every timer. */
  async stop(): Promise<void> {
    this.running = false;
    this.stopping = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.stopSweeps();
    // Every socket, served or still in its TLS handshake: server.close() waits for them all.
    for (const socket of this.sockets) socket.destroy();
    for (const listener of [this.listener, this.retiring]) if (listener) this.closeListener(listener);
    this.listener = undefined;
    this.retiring = undefined;
    await Promise.all(this.closing);
    this.stopping = false;
    this.setStatus({ state: 'stopped', host: this.settings.host, port: this.settings.port });
  }

  /**
   * Applies new settings to the running broker, keeping its mailboxes, devices,
   * counters and connection numbers. Limits, access lists, timeouts and the
   * reply dialect apply at once, on open connections too: a connection the new
   * allowFrom or allowDevices no longer admits is closed (reported as
   * 'rejected'). A new host, port or TLS setting needs a new listener: it is
   * bound first, then the old one and its connections are closed.
   */
  configure(options: Partial<BrokerOptions>): void {
    const previous = this.settings;
    const next: BrokerOptions = { ...DEFAULT_OPTIONS, ...options };
    this.settings = next;
    const hadConfigError = this.configError;
    this.parseAccess();
    this.mailboxes.setFormat(next.replyFormat);
    this.connections.setMaxFrameBytes(next.maxFrameBytes);
    this.devices.setOfflineAfter(next.offlineAfter * 1000);
    this.devices.setMaxDevices(next.maxDevices);
    if (!this.running) {
      this.currentStatus = { ...this.currentStatus, host: next.host, port: next.port };
      return;
    }
    this.stopSweeps();
    this.startSweeps();
    this.closeUnadmitted();
    const moved = next.host !== previous.host || next.port !== previous.port || !sameTls(next.tls, previous.tls);
    if (moved || this.configError !== hadConfigError) this.relisten();
  }

  /** Sharing hears of this broker's own changes from now on (undefined: no more). */
  setShare(share: ShareHook | undefined): void {
    this.share = share;
  }

  // ---- the flow's side ------------------------------------------------------

  /**
   * Writes a mailbox from the flow's side: served until overwritten, cleared or
   * past its time to live. Throws if the value cannot be sent (e.g. circular).
   */
  writeMailbox(id: unknown, value: unknown, ttlSeconds = 0): DeviceId {
    const mailboxId = this.mailboxId(id);
    // Encoded first, so that a value with no reply throws before it is written.
    const reply = encodeReply(value, this.settings.replyFormat);
    // A copy: the flow may go on changing the object it sent.
    const mailbox = this.mailboxes.write(mailboxId, copyOf(value), 'flow', Date.now(), ttlSeconds * 1000, reply);
    this.flowWrites++;
    this.share?.written(mailboxId, mailbox);
    return mailboxId;
  }

  clearMailbox(id: unknown): DeviceId {
    const mailboxId = this.mailboxId(id);
    this.mailboxes.clear(mailboxId);
    this.flowWrites++;
    this.share?.written(mailboxId, undefined);
    return mailboxId;
  }

  /** The content a device asking for `id` would get now, or undefined if empty. */
  readMailbox(id: unknown): unknown {
    const mailboxId = canonicalId(id);
    return mailboxId === undefined ? undefined : copyOf(this.mailboxes.read(mailboxId, Date.now())?.value);
  }

  /** Copies of every device record. */
  deviceTable(): DeviceRecord[] {
    return this.devices.table();
  }

  /** Every open connection, TCPMQ or plain text. */
  connectionTable(): ConnectionRecord[] {
    return this.connections.table();
  }

  /**
   * Writes `data` as it is to the target's connections (a flow answering a
   * plain-text board, or talking to a device directly). Returns how many
   * connections it went to; throws if there is none.
   */
  send(target: ConnectionTarget, data: string | Buffer): number {
    const connections = this.connections.find(target);
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    for (const connection of connections) connection.write(bytes);
    return connections.length;
  }

  /** Closes the target's connections; returns how many. Throws if there is none. */
  closeConnections(target: ConnectionTarget): number {
    const connections = this.connections.find(target);
    for (const connection of connections) connection.socket.destroy();
    return connections.length;
  }

  /** Mailboxes and devices as plain JSON, to be saved and restored after a restart. */
  snapshot(): BrokerSnapshot {
    return takeSnapshot(this.mailboxes, this.devices, Date.now());
  }

  /** Takes back a snapshot (see restoreSnapshot()). */
  restore(snapshot: BrokerSnapshot): void {
    restoreSnapshot(snapshot, this.mailboxes, this.devices, Date.now());
  }

  // ---- listening ------------------------------------------------------------

  /** Binds a listener for the new settings; the current one is retired once it has (see retire()). */
  private relisten(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.listener) {
      // A listener replaced before the one it replaced was closed: that one goes now.
      if (this.retiring) this.closeListener(this.retiring);
      this.retiring = this.listener;
      this.listener = undefined;
    }
    this.start();
  }

  /** The new listener has bound (or cannot): the one it replaces closes, with its connections. */
  private retire(): void {
    const retiring = this.retiring;
    this.retiring = undefined;
    if (retiring) this.closeListener(retiring);
  }

  /** Closes `listener` and the connections it accepted; stop() waits for it. */
  private closeListener(listener: Listener): Promise<void> {
    const closed = listener.close();
    this.closing.add(closed);
    closed.then(() => this.closing.delete(closed));
    return closed;
  }

  private listenFailed(listener: Listener, err: NodeJS.ErrnoException): void {
    listener.server.close();
    if (this.listener !== listener) return;
    this.listener = undefined;
    const retiring = this.retiring;
    if (retiring && err.code === 'EADDRINUSE') {
      // The listener being replaced holds the port (same port, new host or TLS): it closes first.
      this.retiring = undefined;
      this.closeListener(retiring).then(() => {
        if (this.running && !this.listener && !this.retryTimer) this.start();
      });
      return;
    }
    const { host, port, retryInterval } = this.settings;
    this.setStatus({ state: 'error', host, port, code: err.code, error: listenError(host, port, err) });
    this.retire();
    if (this.stopping || !this.running) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.start();
    }, retryInterval);
  }

  private setStatus(status: BrokerStatus): void {
    this.currentStatus = status;
    this.safeEmit('state', status);
  }

  // ---- admission --------------------------------------------------------------

  private parseAccess(): void {
    this.configError = undefined;
    try {
      this.allowedAddresses = parseAllowFrom(this.settings.allowFrom);
    } catch (err) {
      this.allowedAddresses = undefined;
      this.configError = describe(err);
    }
    this.allowedDevices = parseIdList(this.settings.allowDevices);
  }

  /** Takes in a new TCP socket, or refuses it (allowFrom, maxConnections) before any byte is read. */
  private admit(socket: net.Socket, listener: Listener): boolean {
    socket.on('error', () => {
      // Resets and timeouts from the device's side: 'close' follows and cleans up.
    });
    const remoteAddress = plainAddress(socket.remoteAddress);
    const refusal =
      this.allowedAddresses && !isAllowedAddress(this.allowedAddresses, remoteAddress)
        ? ({ kind: 'forbidden', reason: 'address not in allowFrom' } as const)
        : this.sockets.size >= this.settings.maxConnections
          ? ({ kind: 'refused', reason: `connection limit of ${this.settings.maxConnections} reached` } as const)
          : undefined;
    if (refusal) {
      this.counters.refused++;
      this.safeEmit('rejected', {
        ...refusal,
        connectionId: 0,
        remoteAddress,
        remotePort: socket.remotePort ?? 0,
      } satisfies RejectEvent);
      socket.destroy();
      return false;
    }
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    listener.track(socket);
    return true;
  }

  /** Serves an admitted socket (a TLSSocket once its handshake is done). */
  private accept(socket: net.Socket): void {
    socket.on('error', () => {
      // As in admit(): 'close' follows.
    });
    const connection = this.connections.add(
      socket,
      plainAddress(socket.remoteAddress),
      socket.remotePort ?? 0,
      this.settings.maxFrameBytes,
      this.handlers,
    );
    this.counters.connections++;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      try {
        connection.received(chunk);
      } catch (err) {
        // Only a listener's fault can get here; the connection is dropped, the broker carries on.
        this.warn(`connection ${connection.name} dropped after an internal error: ${describe(err)}`);
        socket.destroy();
      }
    });
    socket.on('close', () => {
      connection.reader.end();
      this.connections.delete(connection);
      this.safeEmit('disconnect', connection.info());
    });
    this.safeEmit('connection', connection.info());
  }

  /** After a change of allowFrom or allowDevices: the connections they no longer admit are closed. */
  private closeUnadmitted(): void {
    for (const connection of this.connections.values()) {
      let refusal: { kind: RejectKind; reason: string } | undefined;
      if (this.allowedAddresses && !isAllowedAddress(this.allowedAddresses, connection.remoteAddress)) {
        refusal = { kind: 'forbidden', reason: 'address no longer in allowFrom' };
      } else if (
        this.allowedDevices &&
        connection.deviceId !== undefined &&
        !this.allowedDevices.has(connection.deviceId)
      ) {
        refusal = {
          kind: 'unknown-device',
          reason: `device id ${printable(connection.deviceId)} no longer in allowDevices`,
        };
      }
      if (!refusal) continue;
      this.counters.closedBySettings++;
      this.safeEmit('rejected', {
        ...connection.info(),
        ...refusal,
        deviceId: connection.deviceId,
      } satisfies RejectEvent);
      connection.close();
    }
  }

  /** A TLS handshake failed (plain TCP, wrong certificate, no client certificate). */
  private tlsFailed(err: Error, socket: tls.TLSSocket): void {
    this.safeEmit('rejected', {
      kind: 'tls',
      reason: `TLS handshake failed: ${describe(err)}`,
      connectionId: 0,
      remoteAddress: plainAddress(socket.remoteAddress),
      remotePort: socket.remotePort ?? 0,
    } satisfies RejectEvent);
  }

  // ---- requests ---------------------------------------------------------------

  /** A complete JSON frame: answered from the mailboxes at once, then reported. */
  private onFrame(connection: Connection, frame: Buffer): void {
    const parsed = parseRequest(frame);
    if (!isRequest(parsed)) {
      this.counters.protocolErrors++;
      this.reject(connection, 'protocol-error', parsed.reason);
      return;
    }
    const { from, want, payload } = parsed;
    if (this.allowedDevices && !this.allowedDevices.has(from)) {
      // Refused before it touches a mailbox; the connection goes, so nothing it queued is read.
      this.counters.unknownDevices++;
      this.safeEmit('rejected', {
        ...connection.info(),
        kind: 'unknown-device',
        reason: `device id ${printable(from)} not in allowDevices`,
        deviceId: from,
      } satisfies RejectEvent);
      connection.close();
      return;
    }
    const now = Date.now();
    if (!this.devices.admits(from)) {
      // The table is full of devices that are all online: this one is served, not recorded.
      this.counters.capacityRefused++;
      connection.write(this.mailboxes.replyTo(want, now));
      const reason = `device id ${printable(from)} not recorded: ${this.settings.maxDevices} devices (maxDevices), all online`;
      this.safeEmit('rejected', {
        ...connection.info(),
        kind: 'capacity',
        reason,
        deviceId: from,
      } satisfies RejectEvent);
      return;
    }
    this.counters.requests++;
    const written = this.mailboxes.write(from, payload, 'device', now);
    const cameOnline = this.devices.heard(from, connection, payload, now);
    if (this.share) {
      this.share.written(from, written);
      if (cameOnline) this.share.device(cameOnline);
    }
    connection.deviceId = from;
    connection.write(this.mailboxes.replyTo(want, now));
    if (cameOnline) this.safeEmit('online', copyOf(cameOnline));
    if (this.listenerCount('request') === 0) this.counters.unheardRequests++;
    else {
      this.safeEmit('request', {
        from,
        want,
        payload: copyOf(payload),
        connectionId: connection.connectionId,
        remoteAddress: connection.remoteAddress,
        remotePort: connection.remotePort,
      } satisfies RequestEvent);
    }
  }

  private reject(connection: Connection, kind: RejectKind, reason: string): void {
    this.safeEmit('rejected', { ...connection.info(), kind, reason } satisfies RejectEvent);
  }

  /** Runs on the sweep timer: nothing may escape from here. */
  private wentOffline(device: DeviceRecord): void {
    try {
      this.mailboxes.expireDeviceNews(device.id);
      this.share?.device(device);
      this.safeEmit('offline', copyOf(device));
    } catch (err) {
      this.warn(`reporting device ${printable(device.id)} offline failed: ${describe(err)}`);
    }
  }

  private mailboxId(id: unknown): DeviceId {
    const mailboxId = canonicalId(id);
    if (mailboxId === undefined || mailboxId === '') {
      throw new Error(`invalid mailbox id ${JSON.stringify(id) ?? String(id)}: use a number or a non-empty string`);
    }
    return mailboxId;
  }

  // ---- sweeps -------------------------------------------------------------------

  private startSweeps(): void {
    this.devices.startSweeping();
    this.connections.startIdleSweep(this.settings.idleTimeout * 1000, (connection) => {
      this.counters.idleClosed++;
      this.reject(connection, 'idle', `silent for ${this.settings.idleTimeout} s`);
      connection.socket.destroy();
    });
  }

  private stopSweeps(): void {
    this.devices.stopSweeping();
    this.connections.stopIdleSweep();
  }
}

/** The first bytes of `bytes`, printable, for a log line. */
function preview(bytes: Buffer): string {
  const text = printable(bytes.subarray(0, 24).toString('latin1'));
  return bytes.length > 24 ? `${text}... (${bytes.length} bytes)` : text;
}

/** Text is UTF-8 with no NUL or other C0 control bytes except tab, CR, LF (and ESC for terminals). */
function isText(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (byte < 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d && byte !== 0x1b) return false;
  }
  return isUtf8(bytes);
}

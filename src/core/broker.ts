/**
 * The TCPMQ broker: a TCP server that wires connections, frame readers,
 * mailboxes and the device registry together and reports what happens as
 * events. No Node-RED import: usable on its own.
 *
 * Events (all arguments are plain objects):
 * - 'state'      (BrokerStatus)  starting / listening / error / stopped
 * - 'request'    (RequestEvent)  a device sent a valid request (already answered)
 * - 'raw'        (RawEvent)      a line or chunk of plain text (protocol section 5)
 * - 'online'     (DeviceRecord)  a device sent its first request since being offline
 * - 'offline'    (DeviceRecord)  a device was silent for offlineAfter seconds
 * - 'rejected'   (RejectEvent)   bad input, oversize frame, refused or dropped connection
 * - 'connection' / 'disconnect' (ConnectionInfo)
 * - 'warning'    (string)        a listener threw; the broker carried on
 */

import { isUtf8 } from 'node:buffer';
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import * as tls from 'node:tls';
import { isAllowedAddress, parseAllowFrom, parseIdList } from './access';
import { Devices, type DeviceRecord } from './devices';
import { FrameReader, type FrameSink } from './frame-reader';
import { Mailboxes } from './mailboxes';
import { emptyReply, encodeReply, type ReplyFormat } from './reply';
import { canonicalId, isRequest, parseRequest, type DeviceId } from './request';
import { SafeEmitter, describe } from './safe-emitter';

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

export interface ConnectionInfo {
  connectionId: number;
  remoteAddress: string;
  remotePort: number;
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

/** An open connection, as the device table lists it (like a desktop network assistant). */
export interface ConnectionRecord extends ConnectionInfo {
  /** The id last seen on it (TCPMQ connections). */
  deviceId: DeviceId | undefined;
  /** 'tcpmq' (JSON frames), 'raw' (plain text) or 'unknown' (nothing received yet). */
  kind: 'tcpmq' | 'raw' | 'unknown';
  connectedAt: number;
  bytesIn: number;
  bytesOut: number;
}

/** Which connections a flow writes to or closes: one by number, or every one of a device. */
export interface ConnectionTarget {
  connectionId?: number;
  /** A device id, or `address:port` for a plain-text connection. */
  device?: string;
}

export type RejectKind = 'protocol-error' | 'oversize' | 'refused' | 'forbidden' | 'unknown-device' | 'tls' | 'idle' | 'backlog';

export interface RejectEvent extends ConnectionInfo {
  kind: RejectKind;
  reason: string;
  /** The device id involved, for 'unknown-device'. */
  deviceId?: DeviceId;
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

/** What survives a restart (see snapshot() and restore()): plain JSON. */
export interface BrokerSnapshot {
  version: 1;
  /** `buffer`: the value is a Buffer, saved as base64 (a JSON store would turn it into an object). */
  mailboxes: { id: DeviceId; value: unknown; buffer?: boolean; writtenAt: number; writer: 'device' | 'flow'; expiresAt: number | null }[];
  devices: DeviceRecord[];
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
}

/** Replies that a client leaves unread beyond this are a client that does not read: drop it. */
const MAX_UNREAD_REPLY_BYTES = 1024 * 1024;

class Connection implements FrameSink, ConnectionInfo {
  readonly reader: FrameReader;
  readonly connectedAt = Date.now();
  /** When it last sent anything: the idle sweep closes it after idleTimeout of silence. */
  lastHeard = performance.now();
  deviceId: DeviceId | undefined;
  bytesIn = 0;
  bytesOut = 0;

  constructor(
    private readonly broker: TcpmqBroker,
    readonly socket: net.Socket,
    readonly connectionId: number,
    readonly remoteAddress: string,
    readonly remotePort: number,
    maxFrameBytes: number,
  ) {
    this.reader = new FrameReader(this, maxFrameBytes);
  }

  onFrame(frame: Buffer): void {
    this.broker.handleFrame(this, frame);
  }

  onRaw(bytes: Buffer): void {
    this.broker.handleRaw(this, bytes);
  }

  onStray(bytes: Buffer): void {
    this.broker.handleStray(this, bytes);
  }

  onOversize(size: number): void {
    this.broker.handleOversize(this, size);
  }

  /** `address:port`, the name of a connection that has no device id. */
  get address(): string {
    return `${this.remoteAddress}:${this.remotePort}`;
  }

  record(): ConnectionRecord {
    const { connectionId, remoteAddress, remotePort, deviceId, connectedAt, bytesIn, bytesOut } = this;
    return { connectionId, remoteAddress, remotePort, deviceId, kind: this.reader.kind, connectedAt, bytesIn, bytesOut };
  }

  write(reply: Buffer): void {
    if (reply.length === 0 || this.socket.destroyed) return;
    this.bytesOut += reply.length;
    this.socket.write(reply);
    if (this.socket.writableLength > MAX_UNREAD_REPLY_BYTES) {
      this.broker.reject(this, 'backlog', `does not read its replies (${this.socket.writableLength} bytes unread)`);
      this.reader.stop();
      this.socket.destroy();
    }
  }
}

export class TcpmqBroker extends SafeEmitter<BrokerEvents> {
  readonly mailboxes = new Mailboxes();
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
  };

  private settings: BrokerOptions;
  /** The listening server and the sockets it accepted. */
  private listener: Listener | undefined;
  /** A listener being replaced (new host, port or TLS): closed once the new one has bound. */
  private retiring: Listener | undefined;
  /** Listeners being closed: stop() waits for them. */
  private readonly closing = new Set<Promise<void>>();
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly connections = new Map<number, Connection>();
  /** Every accepted TCP socket until it closes (TLS ones from before their handshake), whichever listener took it. */
  private readonly sockets = new Set<net.Socket>();
  private nextConnectionId = 1;
  private flowWrites = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private currentStatus: BrokerStatus;
  /** Between start() and stop(): serving, or trying to. */
  private running = false;
  private stopping = false;
  private allowedAddresses: net.BlockList | undefined;
  private allowedDevices: Set<DeviceId> | undefined;
  /** A setting that cannot work (a bad allowFrom entry): reported instead of listening. */
  private configError: string | undefined;

  constructor(options: Partial<BrokerOptions> = {}) {
    super();
    this.settings = { ...DEFAULT_OPTIONS, ...options };
    this.parseAccess();
    this.devices = new Devices(this.settings.offlineAfter * 1000, (device) => this.wentOffline(device));
    this.currentStatus = { state: 'stopped', host: this.settings.host, port: this.settings.port };
  }

  /** The settings in force (configure() replaces them). */
  get options(): BrokerOptions {
    return this.settings;
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
    if (next.replyFormat !== previous.replyFormat) this.mailboxes.forgetReplies();
    for (const connection of this.connections.values()) connection.reader.maxFrameBytes = next.maxFrameBytes;
    this.devices.setOfflineAfter(next.offlineAfter * 1000);
    if (!this.running) {
      this.currentStatus = { ...this.currentStatus, host: next.host, port: next.port };
      return;
    }
    this.restartSweeps();
    this.closeUnadmitted();
    const moved = next.host !== previous.host || next.port !== previous.port || !sameTls(next.tls, previous.tls);
    if (moved || this.configError !== hadConfigError) this.relisten();
  }

  get status(): BrokerStatus {
    return this.currentStatus;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

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
    this.devices.startSweeping();
    this.startIdleSweep();
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
    const listener: Listener = { server, sockets: new Set() };
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
  private closeListener({ server, sockets }: Listener): Promise<void> {
    for (const socket of sockets) socket.destroy();
    const closed = new Promise<void>((resolve) => {
      if (server.listening) server.close(() => resolve());
      else {
        // Still binding: close once the bind settles, so the port is never left open.
        server.once('listening', () => server.close(() => resolve()));
        server.once('error', () => resolve());
      }
    });
    this.closing.add(closed);
    closed.then(() => this.closing.delete(closed));
    return closed;
  }

  /**
   * Writes a mailbox from the flow's side: served until overwritten, cleared or
   * past its time to live. Throws if the value cannot be sent (e.g. circular).
   */
  writeMailbox(id: unknown, value: unknown, ttlSeconds = 0): DeviceId {
    const mailboxId = this.mailboxId(id);
    const reply = encodeReply(value, this.options.replyFormat);
    // A copy: the flow may go on changing the object it sent.
    const mailbox = this.mailboxes.write(mailboxId, copyOf(value), 'flow', Date.now(), ttlSeconds * 1000);
    mailbox.reply = reply;
    this.flowWrites++;
    return mailboxId;
  }

  clearMailbox(id: unknown): DeviceId {
    const mailboxId = this.mailboxId(id);
    this.mailboxes.clear(mailboxId);
    this.flowWrites++;
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
    return Array.from(this.connections.values(), (connection) => connection.record());
  }

  /**
   * Writes `data` as it is to the target's connections (a flow answering a
   * plain-text board, or talking to a device directly). Returns how many
   * connections it went to; throws if there is none.
   */
  send(target: ConnectionTarget, data: string | Buffer): number {
    const connections = this.targetConnections(target);
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    for (const connection of connections) connection.write(bytes);
    return connections.length;
  }

  /** Closes the target's connections; returns how many. Throws if there is none. */
  closeConnections(target: ConnectionTarget): number {
    const connections = this.targetConnections(target);
    for (const connection of connections) connection.socket.destroy();
    return connections.length;
  }

  private targetConnections({ connectionId, device }: ConnectionTarget): Connection[] {
    let found: Connection[];
    if (connectionId !== undefined) {
      const connection = this.connections.get(connectionId);
      found = connection && !connection.socket.destroyed ? [connection] : [];
      if (found.length === 0) throw new Error(`connection ${connectionId} is not open`);
      return found;
    }
    if (device === undefined || device === '') throw new Error('no connection to write to: give a device id or a connection number');
    found = [...this.connections.values()].filter((c) => !c.socket.destroyed && (c.deviceId === device || c.address === device));
    if (found.length === 0) throw new Error(`device ${device} has no open connection`);
    return found;
  }

  /** Devices online now. */
  get onlineCount(): number {
    return this.devices.online;
  }

  /** Grows with every change to mailboxes or devices: whether a snapshot is out of date. */
  get changes(): number {
    return this.counters.requests + this.flowWrites;
  }

  /** Mailboxes and devices as plain JSON, to be saved and restored after a restart. */
  snapshot(): BrokerSnapshot {
    const now = Date.now();
    const mailboxes: BrokerSnapshot['mailboxes'] = [];
    for (const [id, mailbox] of this.mailboxes.entries()) {
      if (mailbox.expiresAt <= now) continue;
      const { value, writtenAt, writer, expiresAt } = mailbox;
      const saved = Number.isFinite(expiresAt) ? expiresAt : null;
      if (Buffer.isBuffer(value)) mailboxes.push({ id, value: value.toString('base64'), buffer: true, writtenAt, writer, expiresAt: saved });
      else mailboxes.push({ id, value: copyOf(value), writtenAt, writer, expiresAt: saved });
    }
    return { version: 1, mailboxes, devices: this.devices.table() };
  }

  /**
   * Takes back a snapshot: flow-written mailboxes until their time to live,
   * a device's own news only while the device still counts as online. A
   * mailbox written since this broker started is newer: it is kept.
   */
  restore(snapshot: BrokerSnapshot): void {
    if (snapshot?.version !== 1) return;
    const now = Date.now();
    this.devices.restore(snapshot.devices ?? [], now);
    for (const { id, value, buffer, writtenAt, writer, expiresAt } of snapshot.mailboxes ?? []) {
      const ttl = expiresAt === null ? 0 : expiresAt - now;
      if (expiresAt !== null && ttl <= 0) continue;
      if (writer === 'device' && !this.devices.get(id)?.online) continue;
      if (this.mailboxes.read(id, now)) continue;
      const mailbox = this.mailboxes.write(id, buffer ? Buffer.from(String(value), 'base64') : value, writer, now, ttl);
      mailbox.writtenAt = writtenAt;
    }
  }

  // ---- connections --------------------------------------------------------

  /**
   * One timer for every connection's idle timeout (rather than a timer per
   * socket, refreshed on every read and write): closes the silent ones.
   */
  private startIdleSweep(): void {
    const idleMs = this.settings.idleTimeout * 1000;
    if (idleMs <= 0 || this.idleTimer) return;
    this.idleTimer = setInterval(() => {
      // A monotonic clock: setting the system time must not close every connection.
      const deadline = performance.now() - idleMs;
      for (const connection of this.connections.values()) {
        if (connection.lastHeard > deadline) continue;
        this.counters.idleClosed++;
        this.reject(connection, 'idle', `silent for ${this.options.idleTimeout} s`);
        connection.socket.destroy();
      }
    }, Math.max(20, Math.min(5000, idleMs / 10))); // late by at most a tenth of idleTimeout
  }

  private stopSweeps(): void {
    this.devices.stopSweeping();
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** New offlineAfter or idleTimeout: the sweeps run at the new pace. */
  private restartSweeps(): void {
    this.stopSweeps();
    this.devices.startSweeping();
    this.startIdleSweep();
  }

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

  /** After a change of allowFrom or allowDevices: the connections they no longer admit are closed. */
  private closeUnadmitted(): void {
    for (const connection of this.connections.values()) {
      let reason: string | undefined;
      if (this.allowedAddresses && !isAllowedAddress(this.allowedAddresses, connection.remoteAddress)) reason = 'address no longer in allowFrom';
      else if (this.allowedDevices && connection.deviceId !== undefined && !this.allowedDevices.has(connection.deviceId)) {
        reason = `device id "${connection.deviceId}" no longer in allowDevices`;
      }
      if (reason === undefined) continue;
      this.counters.closedBySettings++;
      const kind = reason.startsWith('address') ? 'forbidden' : 'unknown-device';
      this.safeEmit('rejected', { ...connectionInfo(connection), kind, reason, deviceId: connection.deviceId } satisfies RejectEvent);
      connection.reader.stop();
      connection.socket.destroy();
    }
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
        : this.sockets.size >= this.options.maxConnections
          ? ({ kind: 'refused', reason: `connection limit of ${this.options.maxConnections} reached` } as const)
          : undefined;
    if (refusal) {
      this.counters.refused++;
      this.safeEmit('rejected', { ...refusal, connectionId: 0, remoteAddress, remotePort: socket.remotePort ?? 0 } satisfies RejectEvent);
      socket.destroy();
      return false;
    }
    this.sockets.add(socket);
    listener.sockets.add(socket);
    socket.on('close', () => {
      this.sockets.delete(socket);
      listener.sockets.delete(socket);
    });
    return true;
  }

  /** Serves an admitted socket (a TLSSocket once its handshake is done). */
  private accept(socket: net.Socket): void {
    socket.on('error', () => {
      // As in admit(): 'close' follows.
    });
    const connectionId = this.nextConnectionId++;
    const remoteAddress = plainAddress(socket.remoteAddress);
    const remotePort = socket.remotePort ?? 0;
    const connection = new Connection(this, socket, connectionId, remoteAddress, remotePort, this.options.maxFrameBytes);
    this.connections.set(connectionId, connection);
    this.counters.connections++;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      connection.lastHeard = performance.now();
      connection.bytesIn += chunk.length;
      try {
        connection.reader.push(chunk);
      } catch (err) {
        // Only a listener's fault can get here; the connection is dropped, the broker carries on.
        this.warn(`connection ${remoteAddress}:${remotePort} dropped after an internal error: ${describe(err)}`);
        socket.destroy();
      }
    });
    socket.on('close', () => {
      connection.reader.end();
      this.connections.delete(connectionId);
      this.safeEmit('disconnect', connectionInfo(connection));
    });
    this.safeEmit('connection', connectionInfo(connection));
  }

  /** @internal called by Connection for each complete JSON frame. */
  handleFrame(connection: Connection, frame: Buffer): void {
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
      this.safeEmit('rejected', { ...connectionInfo(connection), kind: 'unknown-device', reason: `device id "${from}" not in allowDevices`, deviceId: from } satisfies RejectEvent);
      connection.reader.stop();
      connection.socket.destroy();
      return;
    }
    const now = Date.now();
    this.counters.requests++;
    this.mailboxes.write(from, payload, 'device', now);
    const cameOnline = this.devices.heard(from, connection, payload, now);
    connection.deviceId = from;
    const mailbox = this.mailboxes.read(want, now);
    const format = this.options.replyFormat;
    connection.write(mailbox ? (mailbox.reply ??= encodeReply(mailbox.value, format)) : emptyReply(format));
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

  /** @internal */
  handleRaw(connection: Connection, bytes: Buffer): void {
    this.counters.rawMessages++;
    this.safeEmit('raw', { ...connectionInfo(connection), bytes, isText: isText(bytes) } satisfies RawEvent);
  }

  /** @internal */
  handleStray(connection: Connection, bytes: Buffer): void {
    this.counters.protocolErrors++;
    this.reject(connection, 'protocol-error', `not JSON: ${preview(bytes)}`);
  }

  /** @internal */
  handleOversize(connection: Connection, size: number): void {
    this.counters.oversize++;
    this.reject(connection, 'oversize', `frame of ${size} bytes or more exceeds maxFrameBytes (${this.options.maxFrameBytes})`);
    connection.socket.destroy();
  }

  /** @internal */
  reject(connection: Connection, kind: RejectKind, reason: string): void {
    this.safeEmit('rejected', { ...connectionInfo(connection), kind, reason } satisfies RejectEvent);
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

  /** Runs on the sweep timer: nothing may escape from here. */
  private wentOffline(device: DeviceRecord): void {
    try {
      this.mailboxes.expireDeviceNews(device.id);
      this.safeEmit('offline', copyOf(device));
    } catch (err) {
      this.warn(`reporting device ${device.id} offline failed: ${describe(err)}`);
    }
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

  private mailboxId(id: unknown): DeviceId {
    const mailboxId = canonicalId(id);
    if (mailboxId === undefined || mailboxId === '') {
      throw new Error(`invalid mailbox id ${JSON.stringify(id) ?? String(id)}: use a number or a non-empty string`);
    }
    return mailboxId;
  }

  private setStatus(status: BrokerStatus): void {
    this.currentStatus = status;
    this.safeEmit('state', status);
  }

}

/** `address:port`: the name of a connection, and of a plain-text board (which has no id). */
export function connectionName({ remoteAddress, remotePort }: { remoteAddress: string; remotePort: number }): string {
  return `${remoteAddress}:${remotePort}`;
}

/** A listening server and the sockets it accepted (closed with it when it is replaced). */
interface Listener {
  server: net.Server;
  sockets: Set<net.Socket>;
}

/** Whether two TLS settings are the same (the tls-config node gives a new object each time). */
function sameTls(a: tls.TlsOptions | undefined, b: tls.TlsOptions | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/**
 * Payloads are stored as parsed and handed to flows: each side gets its own
 * copy of an object, so a flow changing msg.payload cannot change a mailbox.
 */
function copyOf<T>(value: T): T {
  if (Buffer.isBuffer(value)) return Buffer.from(value) as T;
  return typeof value === 'object' && value !== null ? structuredClone(value) : value;
}

/** The first bytes of `bytes`, printable, for a log line. */
function preview(bytes: Buffer): string {
  const text = JSON.stringify(bytes.subarray(0, 24).toString('latin1'));
  return bytes.length > 24 ? `${text}... (${bytes.length} bytes)` : text;
}

function connectionInfo(connection: Connection): ConnectionInfo {
  return {
    connectionId: connection.connectionId,
    remoteAddress: connection.remoteAddress,
    remotePort: connection.remotePort,
  };
}

/** `::ffff:192.168.4.2` -> `192.168.4.2`, as people know their boards' addresses. */
function plainAddress(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** Text is UTF-8 with no NUL or other C0 control bytes except tab, CR, LF (and ESC for terminals). */
function isText(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (byte < 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d && byte !== 0x1b) return false;
  }
  return isUtf8(bytes);
}

function listenError(host: string, port: number, err: NodeJS.ErrnoException): string {
  const where = `${host}:${port}`;
  switch (err.code) {
    case 'EADDRINUSE':
      return `port ${port} is already in use (${where})`;
    case 'EACCES':
      return `not allowed to listen on ${where} (ports below 1024 need privileges)`;
    case 'EADDRNOTAVAIL':
      return `address ${host} is not on this machine (${where})`;
    case 'ERR_SOCKET_BAD_PORT':
      return `${port} is not a TCP port (1 to 65535)`;
    default:
      return `cannot listen on ${where}: ${err.message}`;
  }
}

/**
 * The TCPMQ broker: handed sockets (by its Server, server.ts, or by any
 * net.Server a user owns: `net.createServer((socket) => broker.handle(socket))`),
 * it admits them (admission.ts), answers each request from the mailboxes and
 * keeps the device table (src/store), and reports what happens as events
 * (events.ts); the flow API writes mailboxes and connections. No Node-RED
 * import. A byte goes: socket -> Connection -> FrameReader -> onFrame() here ->
 * parseRequest -> Mailboxes / Devices -> reply and 'request' event.
 */

import type * as net from 'node:net';
import type * as tls from 'node:tls';
import { SafeEmitter, errorText } from '../events/safe-emitter';
import { isText, preview, printable } from '../protocol/printable';
import { encodeReply } from '../protocol/reply';
import { canonicalId, isRequest, mailboxIdOf, parseRequest, type DeviceId } from '../protocol/request';
import { Devices, type DeviceRecord } from '../store/devices';
import { copyOf, Mailboxes } from '../store/mailboxes';
import { restoreSnapshot, takeSnapshot, type BrokerSnapshot } from '../store/snapshot';
import { Admission } from './admission';
import {
  ignoreError,
  plainAddress,
  type Connection,
  type ConnectionHandlers,
  type ConnectionRecord,
  type ConnectionState,
} from './connection';
import { Connections, type ConnectionTarget } from './connections';
import { noCounts } from './events';
import type { BrokerCounters, BrokerEvents, BrokerStatus, RawEvent, RejectEvent } from './events';
import type { RejectKind, RequestEvent, ShareHook } from './events';
import { DEFAULT_OPTIONS, type BrokerOptions } from './options';
import { Server, type ListenAddress } from './server';

export class TcpmqBroker extends SafeEmitter<BrokerEvents> {
  readonly mailboxes: Mailboxes;
  readonly devices: Devices;
  readonly counters: BrokerCounters = noCounts();

  private settings: BrokerOptions;
  /** Sharing through MQTT, when on (see src/fleet). */
  private share: ShareHook | undefined;
  private readonly admission: Admission;
  /** Listening, when start() runs it (a broker may also be handed sockets by a server of the user's). */
  private readonly server: Server;
  /** Every admitted socket until it closes (TLS ones from before their handshake): counted against maxConnections. */
  private readonly sockets = new Set<net.Socket>();
  /** @internal The open connections, for white-box tests of memory bounds (not in the published types). */
  readonly connections = new Connections();
  private flowWrites = 0;
  private sweepsOn = false;

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
      const { maxFrameBytes } = this.settings;
      this.reject(connection, 'oversize', `frame of ${size} bytes or more exceeds maxFrameBytes (${maxFrameBytes})`);
      connection.close();
    },
    backlog: (connection, unread) =>
      this.reject(connection, 'backlog', `does not read its replies (${unread} bytes unread)`),
    // Only a listener's fault can get here; the connection is dropped, the broker carries on.
    failed: (connection, err) =>
      this.warn(`connection ${connection.name} dropped after an internal error: ${errorText(err)}`),
    closed: (connection) => this.safeEmit('disconnect', connection.info()),
  };

  constructor(options: Partial<BrokerOptions> = {}) {
    super();
    this.settings = { ...DEFAULT_OPTIONS, ...options };
    this.admission = new Admission(this.settings);
    this.mailboxes = new Mailboxes(this.settings.replyFormat);
    this.devices = new Devices(
      this.settings.offlineAfter * 1000,
      (device) => this.wentOffline(device),
      this.settings.maxDevices,
      (id) => this.share?.evicted(id),
    );
    this.server = new Server({
      admit: (socket) => this.admit(socket),
      handle: (socket) => this.serve(socket),
      tlsFailed: (err, socket) => this.tlsFailed(err, socket),
      state: (status) => this.safeEmit('state', status),
    });
    this.server.move(this.listenAddress());
  }

  /** The settings in force (configure() replaces them). */
  get options(): BrokerOptions {
    return this.settings;
  }

  get status(): BrokerStatus {
    return this.server.status;
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

  /**
   * Starts listening (server.ts); a failure is reported as an 'error' state and retried. With `listen`
   * false it only starts its timers: its sockets are all handed to it (handle(), adopt()).
   */
  start({ listen = true }: { listen?: boolean } = {}): void {
    if (this.server.running) return;
    this.startSweeps();
    if (listen) this.server.start(this.listenAddress());
  }

  /** Takes in a socket from a server of the caller's own (aedes' way), admitted and served: no start() needed. */
  handle(socket: net.Socket): void {
    if (!this.sockets.has(socket) && !this.admit(socket)) return;
    this.startSweeps();
    this.serve(socket);
  }

  /**
   * Takes in a socket numbered elsewhere (tcpmq-gateway's holder numbers its connections), admitted as any
   * new one; with the rest of `state`, it goes on where another broker let go of it (release()): its device,
   * its counts, the frame it had half received. False if admission refused it (it is closed here).
   */
  adopt(socket: net.Socket, state: Partial<ConnectionState> & { connectionId: number }): boolean {
    if (!this.admit(socket)) return false;
    this.startSweeps();
    const connection = this.connections.serve(socket, this.settings.maxFrameBytes, this.handlers, state.connectionId);
    this.counters.connections++;
    this.safeEmit('connection', connection.info());
    if (state.held !== undefined) connection.resume(state as ConnectionState);
    return true;
  }

  /**
   * Lets go of every connection without closing any (another process holds them and takes them over,
   * with what this returns: see adopt()). Reading stops at once; replies already written go out first
   * (for `drainMs` at most). No 'disconnect' is reported: the connections go on elsewhere.
   */
  async release(drainMs = 1000): Promise<ConnectionState[]> {
    this.stopSweeps();
    const connections = [...this.connections.values()];
    for (const { socket } of connections) socket.pause();
    const deadline = Date.now() + drainMs;
    while (connections.some(({ socket }) => socket.writableLength > 0 && !socket.destroyed) && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 5));
    const states: ConnectionState[] = [];
    for (const connection of connections) {
      this.sockets.delete(connection.socket);
      const state = this.connections.release(connection);
      if (state) states.push(state);
    }
    return states;
  }

  /** Closes every connection and listener, and clears every timer. */
  async stop(): Promise<void> {
    this.stopSweeps();
    // Every socket, served or still in its TLS handshake: server.close() waits for them all.
    for (const socket of this.sockets) socket.destroy();
    await this.server.stop();
  }

  /**
   * Applies new settings, keeping mailboxes, devices, counters and connection
   * numbers. They apply at once, on open connections too: one the new allowFrom
   * or allowDevices refuses is closed ('rejected'). A new host, port or TLS
   * setting binds a new listener first, then closes the old one (server.ts).
   */
  configure(options: Partial<BrokerOptions>): void {
    const next: BrokerOptions = { ...DEFAULT_OPTIONS, ...options };
    this.settings = next;
    this.admission.configure(next);
    this.mailboxes.setFormat(next.replyFormat);
    this.connections.setMaxFrameBytes(next.maxFrameBytes);
    this.devices.setOfflineAfter(next.offlineAfter * 1000);
    this.devices.setMaxDevices(next.maxDevices);
    if (this.sweepsOn) {
      this.stopSweeps();
      this.startSweeps();
    }
    if (this.server.running || this.sockets.size > 0) this.closeUnadmitted();
    this.server.move(this.listenAddress());
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
    const mailboxId = mailboxIdOf(id);
    // Encoded first, so that a value with no reply throws before it is written.
    const reply = encodeReply(value, this.settings.replyFormat);
    // A copy: the flow may go on changing the object it sent.
    const mailbox = this.mailboxes.write(mailboxId, copyOf(value), 'flow', Date.now(), ttlSeconds * 1000, reply);
    this.flowWrites++;
    this.share?.written(mailboxId, mailbox);
    return mailboxId;
  }

  clearMailbox(id: unknown): DeviceId {
    const mailboxId = mailboxIdOf(id);
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

  // ---- admission --------------------------------------------------------------

  private listenAddress(): ListenAddress {
    const { host, port, tls, retryInterval } = this.settings;
    return { host, port, tls, retryInterval, invalid: this.admission.configError };
  }

  /** Takes in a new TCP socket, or refuses it (allowFrom, maxConnections) before any byte is read. */
  private admit(socket: net.Socket): boolean {
    socket.on('error', ignoreError);
    const remoteAddress = plainAddress(socket.remoteAddress);
    const refusal = this.admission.refuseConnection(remoteAddress, this.sockets.size);
    if (refusal) {
      this.counters.refused++;
      const where = { connectionId: 0, remoteAddress, remotePort: socket.remotePort ?? 0 };
      this.safeEmit('rejected', { ...refusal, ...where } satisfies RejectEvent);
      socket.destroy();
      return false;
    }
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    return true;
  }

  /** Serves an admitted socket (a TLSSocket once its handshake is done). */
  private serve(socket: net.Socket): void {
    const connection = this.connections.serve(socket, this.settings.maxFrameBytes, this.handlers);
    this.counters.connections++;
    this.safeEmit('connection', connection.info());
  }

  /** After a change of allowFrom or allowDevices: the connections they no longer admit are closed. */
  private closeUnadmitted(): void {
    for (const connection of this.connections.values()) {
      const refusal = this.admission.refuseOpen(connection.remoteAddress, connection.deviceId);
      if (!refusal) continue;
      this.counters.closedBySettings++;
      const event = { ...connection.info(), ...refusal, deviceId: connection.deviceId };
      this.safeEmit('rejected', event satisfies RejectEvent);
      connection.close();
    }
  }

  /** A TLS handshake failed (plain TCP, wrong certificate, no client certificate). */
  private tlsFailed(err: Error, socket: tls.TLSSocket): void {
    this.safeEmit('rejected', {
      kind: 'tls',
      reason: `TLS handshake failed: ${errorText(err)}`,
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
    const refusal = this.admission.refuseDevice(from);
    if (refusal) {
      // Refused before it touches a mailbox; the connection goes, so nothing it queued is read.
      this.counters.unknownDevices++;
      this.safeEmit('rejected', { ...connection.info(), ...refusal, deviceId: from } satisfies RejectEvent);
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
    const cameOnline = this.devices.heard(from, connection, payload, now, want);
    if (this.share) {
      this.share.written(from, written, want, connection);
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
      this.warn(`reporting device ${printable(device.id)} offline failed: ${errorText(err)}`);
    }
  }

  // ---- sweeps -------------------------------------------------------------------

  private startSweeps(): void {
    if (this.sweepsOn) return;
    this.sweepsOn = true;
    this.devices.startSweeping();
    this.connections.startIdleSweep(this.settings.idleTimeout * 1000, (connection) => {
      this.counters.idleClosed++;
      this.reject(connection, 'idle', `silent for ${this.settings.idleTimeout} s`);
      connection.socket.destroy();
    });
  }

  private stopSweeps(): void {
    this.sweepsOn = false;
    this.devices.stopSweeping();
    this.connections.stopIdleSweep();
  }
}

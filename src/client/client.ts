/**
 * The device role (docs/PROTOCOL.md, client mode): joins a TCPMQ broker hosted elsewhere
 * (an ESP32 on its own Wi-Fi hotspot, a PC broker, another copy of this
 * project) as one more device. In lockstep, every pollInterval: one request
 * `[clientId, want, payload]`, one reply, then `want` moves on to the next
 * watched id. No Node-RED import: usable on its own.
 *
 * Events (all arguments are plain objects, except 'warning'):
 * - 'state'    (ClientStatus)  connecting / connected / error / stopped
 * - 'reply'    (ClientReply)   a watched mailbox answered with something (not `None` / `null`)
 * - 'online'   ({id})          a watched id answered after being unknown or offline
 * - 'offline'  ({id})          a watched id answered empty offlineAfterNones times in a row
 * - 'warning'  (string)        a listener threw, or the broker sent something odd; the client carried on
 *
 * Never emits 'error': failures are 'error' states, followed by a reconnection.
 */

import * as net from 'node:net';
import { decodeReply } from '../protocol/reply';
import { printable } from '../protocol/printable';
import { wireIdJson } from '../protocol/request';
import { SafeEmitter } from '../events/safe-emitter';
import type { ClientCounters, ClientEvents, ClientReply, ClientStatus, WatchedId } from './events';
import { clientOptions, type ClientOptions, type ClientSettings } from './options';

export * from './events';
export * from './options';

/**
 * Data received within this many milliseconds of the previous chunk belongs to
 * the same reply: replies have no delimiter, and TCP may split one.
 */
const REPLY_SETTLE_MS = 20;

/** A reply longer than this is not a mailbox: the connection is dropped. */
const MAX_REPLY_BYTES = 1024 * 1024;

interface PendingRequest {
  want: string;
  sentAt: number;
  chunks: Buffer[];
  bytes: number;
}

export class TcpmqClient extends SafeEmitter<ClientEvents> {
  readonly counters: ClientCounters = {
    connections: 0,
    requests: 0,
    replies: 0,
    emptyReplies: 0,
    timeouts: 0,
    strayBytes: 0,
  };

  private settings: ClientOptions;
  private readonly watched = new Map<string, WatchedId>();
  /** The payload element of every request, as JSON text. */
  private payloadJson: string;
  private running = false;
  /** The connection in use, if any. */
  private socket: net.Socket | undefined;
  /** Every socket not yet closed, including ones being torn down: stop() waits for them. */
  private readonly sockets = new Set<net.Socket>();
  /** The one timer: connect timeout, reply timeout, reply settling, next poll or next retry. */
  private timer: NodeJS.Timeout | undefined;
  /** The request waiting for its reply; data that comes while there is none is stray. */
  private pending: PendingRequest | undefined;
  /** Index in watch of the next id to ask for. */
  private nextWant = 0;
  private retryDelay: number;
  private lastError: NodeJS.ErrnoException | undefined;
  private warnedUndecodable = false;
  private currentStatus: ClientStatus;

  constructor(options: ClientSettings = {}) {
    super();
    this.settings = clientOptions(options);
    for (const id of this.settings.watch) this.watched.set(id, { id, online: undefined, nones: 0 });
    this.payloadJson = this.emptyPayloadJson();
    this.retryDelay = this.settings.retryMin * 1000;
    this.currentStatus = { state: 'stopped', host: this.settings.host, port: this.settings.port };
  }

  /** The settings in force (configure() replaces them). */
  get options(): ClientOptions {
    return this.settings;
  }

  /**
   * Applies new settings without dropping the connection: the next request
   * uses them. Watched ids that stay keep their online state. A new host or
   * port closes the connection and connects there at once.
   */
  configure(options: ClientSettings): void {
    const previous = this.settings;
    const next = clientOptions(options);
    const emptyPayload = this.payloadJson === this.emptyPayloadJson();
    this.settings = next;
    if (emptyPayload) this.payloadJson = this.emptyPayloadJson();
    const watched = new Map<string, WatchedId>();
    for (const id of next.watch) watched.set(id, this.watched.get(id) ?? { id, online: undefined, nones: 0 });
    this.watched.clear();
    for (const [id, state] of watched) this.watched.set(id, state);
    this.nextWant = 0;
    // An empty client id stopped it before it connected: with an id it starts now.
    const moved = next.host !== previous.host || next.port !== previous.port || previous.clientId === '';
    if (!this.running) {
      this.currentStatus = { ...this.currentStatus, host: next.host, port: next.port };
      return;
    }
    if (!moved) return;
    // Elsewhere now: drop the old connection, connect anew.
    this.clearTimer();
    this.pending = undefined;
    const socket = this.socket;
    this.socket = undefined;
    socket?.destroy();
    this.running = false;
    this.start();
  }

  get status(): ClientStatus {
    return this.currentStatus;
  }

  /** The online state of each watched id, in watch order (copies). */
  watchState(): WatchedId[] {
    return [...this.watched.values()].map((w) => ({ ...w }));
  }

  /**
   * Sets the content of this device's own mailbox, sent as the payload of every
   * request from now on. It goes out as JSON: a string as a JSON string (what
   * field devices send, and the only kind the ESP32 broker can serve), another
   * value as its JSON text, a Buffer as the JSON string of its UTF-8 text.
   * `undefined` (or a function or symbol) means nothing, as before any call:
   * `""` with text replies, `null` with json replies, which every broker then
   * serves as `None` / `null`. Throws for a value with no JSON text (circular,
   * BigInt); the payload is then unchanged.
   */
  setPayload(value: unknown): void {
    const json = JSON.stringify(Buffer.isBuffer(value) ? value.toString('utf8') : value);
    this.payloadJson = json === undefined ? this.emptyPayloadJson() : json;
  }

  /** Connects and polls until stop(); failures are reported as 'error' states and retried forever. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.retryDelay = this.settings.retryMin * 1000;
    if (this.settings.clientId === '') {
      this.setStatus({
        state: 'error',
        host: this.settings.host,
        port: this.settings.port,
        code: 'EINVAL',
        error: 'the client id is empty: give this device an id',
      });
      return;
    }
    this.connect();
  }

  /** Closes the connection and clears every timer; resolves once every socket is closed. */
  stop(): Promise<void> {
    this.running = false;
    this.clearTimer();
    this.pending = undefined;
    this.socket = undefined;
    const closing = [...this.sockets].map(
      (socket) =>
        new Promise<void>((resolve) => {
          socket.once('close', () => resolve());
          socket.destroy();
        }),
    );
    return Promise.all(closing).then(() => {
      if (!this.running && this.currentStatus.state !== 'stopped') {
        this.setStatus({ state: 'stopped', host: this.settings.host, port: this.settings.port });
      }
    });
  }

  // ---- connection ---------------------------------------------------------

  private connect(): void {
    const { host, port } = this.settings;
    this.lastError = undefined;
    this.setStatus({ state: 'connecting', host, port });
    if (!this.running) return; // a 'state' listener stopped the client
    let socket: net.Socket;
    try {
      socket = net.connect({ host, port });
    } catch (err) {
      // A port out of range fails at once rather than as an event.
      this.fail(err as NodeJS.ErrnoException);
      return;
    }
    this.socket = socket;
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // Refused, reset, unreachable: 'close' follows and reconnects.
      if (socket === this.socket) this.lastError = err;
    });
    socket.on('close', () => {
      this.sockets.delete(socket);
      if (socket === this.socket) this.connectionClosed();
    });
    socket.on('data', (chunk: Buffer) => {
      if (socket === this.socket) this.received(chunk);
    });
    socket.once('connect', () => {
      if (socket !== this.socket) return;
      this.clearTimer();
      this.counters.connections++;
      this.setStatus({ state: 'connected', host, port });
      if (socket === this.socket) this.sendRequest();
    });
    this.setTimer(() => {
      this.fail(
        withCode(new Error(`cannot connect to ${host}:${port} within ${this.settings.timeout} s`), 'ETIMEDOUT'),
      );
    }, this.settings.timeout * 1000);
  }

  /** The broker closed the connection, or the connection failed. */
  private connectionClosed(): void {
    // A reply that came just before the close is still a reply.
    if (this.pending && this.pending.bytes > 0) this.finishReply(false);
    const { host, port } = this.settings;
    this.fail(this.lastError ?? withCode(new Error(`connection closed by ${host}:${port}`), 'ECLOSED'));
  }

  /** Drops the connection, reports the error and tries again after the backoff delay. */
  private fail(err: NodeJS.ErrnoException): void {
    this.clearTimer();
    this.pending = undefined;
    const socket = this.socket;
    this.socket = undefined;
    socket?.destroy();
    if (!this.running) return;
    const { host, port } = this.settings;
    const retryIn = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, this.settings.retryMax * 1000);
    this.setTimer(() => this.connect(), retryIn);
    this.setStatus({ state: 'error', host, port, error: connectError(host, port, err), code: err.code, retryIn });
  }

  // ---- requests and replies -----------------------------------------------

  private sendRequest(): void {
    const socket = this.socket;
    if (!socket || socket.destroyed || !this.running) return;
    const { clientId, watch, timeout } = this.settings;
    const want = watch.length === 0 ? clientId : watch[this.nextWant % watch.length];
    this.nextWant = watch.length === 0 ? 0 : (this.nextWant + 1) % watch.length;
    const frame = `[${wireIdJson(clientId)},${wireIdJson(want)},${this.payloadJson}]`;
    this.pending = { want, sentAt: Date.now(), chunks: [], bytes: 0 };
    this.counters.requests++;
    // One write: field brokers read one chunk and parse it whole.
    socket.write(Buffer.from(frame, 'utf8'));
    this.setTimer(() => {
      this.counters.timeouts++;
      const { host, port } = this.settings;
      this.fail(
        withCode(new Error(`no reply from ${host}:${port} within ${timeout} s (asked for "${want}")`), 'ETIMEDOUT'),
      );
    }, timeout * 1000);
  }

  private received(chunk: Buffer): void {
    const pending = this.pending;
    if (!pending) {
      this.counters.strayBytes += chunk.length;
      this.warn(
        `${chunk.length} bytes from ${this.settings.host}:${this.settings.port} with no request waiting: dropped`,
      );
      return;
    }
    pending.chunks.push(chunk);
    pending.bytes += chunk.length;
    if (pending.bytes > MAX_REPLY_BYTES) {
      this.fail(
        withCode(
          new Error(`a reply over ${MAX_REPLY_BYTES} bytes from ${this.settings.host}:${this.settings.port}`),
          'EMSGSIZE',
        ),
      );
      return;
    }
    // Wait a moment for the rest of a reply that TCP split.
    this.setTimer(() => this.finishReply(true), REPLY_SETTLE_MS);
  }

  /** Handles the reply of the pending request and, if `next`, schedules the next request. */
  private finishReply(next: boolean): void {
    const pending = this.pending;
    if (!pending) return;
    this.pending = undefined;
    this.clearTimer();
    this.retryDelay = this.settings.retryMin * 1000; // the broker works: back to quick retries
    this.handleReply(pending.want, Buffer.concat(pending.chunks, pending.bytes));
    if (!next || !this.running || !this.socket) return;
    const wait = Math.max(0, pending.sentAt + this.settings.pollInterval * 1000 - Date.now());
    this.setTimer(() => this.sendRequest(), wait);
  }

  private handleReply(want: string, raw: Buffer): void {
    const reply = decodeReply(raw, this.settings.replyFormat);
    const watched = this.watched.get(want);
    if (reply.empty) {
      this.counters.emptyReplies++;
      if (!watched) return;
      watched.nones++;
      if (watched.nones >= this.settings.offlineAfterNones && watched.online !== false) {
        watched.online = false;
        this.safeEmit('offline', { id: want });
      }
      return;
    }
    if ('notJson' in reply && !this.warnedUndecodable) {
      this.warnedUndecodable = true;
      this.warn(
        `a reply from ${this.settings.host}:${this.settings.port} is not JSON (${printable(reply.value, 24)}): passed on as text; does the broker use text replies?`,
      );
    }
    this.counters.replies++;
    if (!watched) return; // its own mailbox, read back when nothing is watched
    watched.nones = 0;
    if (watched.online !== true) {
      watched.online = true;
      this.safeEmit('online', { id: want });
    }
    this.safeEmit('reply', { id: want, payload: reply.value, raw } satisfies ClientReply);
  }

  // ---- plumbing -------------------------------------------------------------

  private emptyPayloadJson(): string {
    return this.settings.replyFormat === 'json' ? 'null' : '""';
  }

  private setTimer(callback: () => void, ms: number): void {
    this.clearTimer();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      callback();
    }, ms);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private setStatus(status: ClientStatus): void {
    this.currentStatus = status;
    this.safeEmit('state', status);
  }
}

function withCode(err: Error, code: string): NodeJS.ErrnoException {
  return Object.assign(err, { code });
}

function connectError(host: string, port: number, err: NodeJS.ErrnoException): string {
  const where = `${host}:${port}`;
  switch (err.code) {
    case 'ECONNREFUSED':
      return `${where} refused the connection (no broker listening there?)`;
    case 'ECONNRESET':
      return `connection to ${where} reset`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${where} is unreachable (not on its Wi-Fi network?)`;
    case 'ENOTFOUND':
      return `host ${host} not found`;
    case 'ERR_SOCKET_BAD_PORT':
      return `${port} is not a TCP port (1 to 65535)`;
    default:
      return err.message.includes(where) ? err.message : `${where}: ${err.message}`;
  }
}

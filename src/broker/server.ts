/**
 * Listening for a broker: binds a TCP or TLS server, retries a failed bind,
 * moves to a new host, port or TLS setting without a gap, and hands every
 * socket it accepts to its owner (the broker is handed sockets; it does not
 * listen). One state machine:
 *
 *   stopped --start()--> starting --bound--> listening
 *   starting --bind failed--> error --retryInterval--> starting
 *   (any but stopped) --move()--> starting: the new listener binds while the old
 *       one keeps serving ("retiring"); it closes, with its connections, once the
 *       new one has bound or failed (at once if it holds the port the new one wants)
 *   (any) --stop()--> stopped, every socket and listener closed
 *
 * A setting that cannot work (`invalid`) is an 'error' state with no bind and
 * no retry, until move() brings a working one.
 */

import * as net from 'node:net';
import * as tls from 'node:tls';
import { errorText } from '../events/safe-emitter';
import type { BrokerStatus } from './events';
import { Listener, listenError, sameTls } from './listener';

export interface ListenAddress {
  host: string;
  port: number;
  /** Key, certificate (and CA to verify clients) to serve TLS instead of plain TCP. */
  tls?: tls.TlsOptions;
  /** Milliseconds between attempts to listen after a failure. */
  retryInterval: number;
  /** Why these settings cannot work, if they cannot (reported instead of binding). */
  invalid?: string;
  /** Accepted sockets are not read here (tcpmq-gateway's holder hands them to its worker, which reads them). */
  pauseOnConnect?: boolean;
}

/** What the server hands its owner. */
interface ServerHooks {
  /** A new TCP socket, before any byte is read: false if it is refused (the hook destroys it). */
  admit(socket: net.Socket): boolean;
  /** An admitted socket, ready to be served (a TLS socket once its handshake is done). */
  handle(socket: net.Socket): void;
  /** A TLS handshake failed (plain TCP, a wrong or missing client certificate). */
  tlsFailed(err: Error, socket: tls.TLSSocket): void;
  /** The state changed. */
  state(status: BrokerStatus): void;
}

export class Server {
  private address: ListenAddress | undefined;
  private current: BrokerStatus = { state: 'stopped', host: '', port: 0 };
  /** The listener bound (or binding) with the current address. */
  private listener: Listener | undefined;
  /** The listener being replaced by a move(): it serves until the new one has bound. */
  private retiring: Listener | undefined;
  /** Listeners being closed: stop() waits for them. */
  private readonly closing = new Set<Promise<void>>();
  private retryTimer: NodeJS.Timeout | undefined;
  private stopping = false;

  constructor(private readonly hooks: ServerHooks) {}

  get status(): BrokerStatus {
    return this.current;
  }

  /** Between start() and stop(). */
  get running(): boolean {
    return this.address !== undefined;
  }

  /** Starts listening on `address`; a failure is an 'error' state, retried. */
  start(address: ListenAddress): void {
    if (this.running || this.stopping) return;
    this.address = address;
    this.bind();
  }

  /** Listens on `address` from now on: as start() if stopped; kept as it is if nothing changed. */
  move(address: ListenAddress): void {
    const previous = this.address;
    if (!previous) {
      this.current = { ...this.current, host: address.host, port: address.port };
      return;
    }
    this.address = address;
    const moved =
      address.host !== previous.host ||
      address.port !== previous.port ||
      !sameTls(address.tls, previous.tls) ||
      address.pauseOnConnect !== previous.pauseOnConnect ||
      address.invalid !== previous.invalid;
    if (!moved) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.listener) {
      // A listener replaced before the one it replaced was closed: that one goes now.
      if (this.retiring) this.closeListener(this.retiring);
      this.retiring = this.listener;
      this.listener = undefined;
    }
    this.bind();
  }

  /** Closes every listener and the sockets they accepted, and clears the retry timer. */
  async stop(): Promise<void> {
    const address = this.address;
    this.address = undefined;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    for (const listener of [this.listener, this.retiring]) if (listener) this.closeListener(listener);
    this.listener = undefined;
    this.retiring = undefined;
    this.stopping = true;
    await Promise.all(this.closing);
    this.stopping = false;
    this.setStatus({
      state: 'stopped',
      host: address?.host ?? this.current.host,
      port: address?.port ?? this.current.port,
    });
  }

  private bind(): void {
    const address = this.address;
    if (!address) return;
    const { host, port } = address;
    if (address.invalid) {
      this.setStatus({ state: 'error', host, port, code: 'EINVAL', error: address.invalid });
      this.retire();
      return;
    }
    this.setStatus({ state: 'starting', host, port });
    let server: net.Server;
    try {
      server = address.tls
        ? tls.createServer(address.tls)
        : net.createServer({ pauseOnConnect: address.pauseOnConnect });
    } catch (err) {
      // A key that does not match its certificate, a wrong passphrase: reported, not thrown.
      this.setStatus({ state: 'error', host, port, code: 'ETLS', error: `TLS settings rejected: ${errorText(err)}` });
      this.retire();
      return;
    }
    const listener = new Listener(server);
    const secure = address.tls !== undefined;
    server.on('connection', (socket: net.Socket) => {
      if (!this.hooks.admit(socket)) return;
      listener.track(socket);
      // With TLS, a socket is handed over once its handshake is done ('secureConnection').
      if (!secure) this.hooks.handle(socket);
    });
    if (secure) {
      server.on('secureConnection', (socket: tls.TLSSocket) => this.hooks.handle(socket));
      server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => this.hooks.tlsFailed(err, socket));
    }
    this.listener = listener;
    server.on('error', (err: NodeJS.ErrnoException) => this.bindFailed(listener, err));
    try {
      server.listen({ host, port }, () => {
        if (this.listener !== listener) return; // stopped or moved while binding
        const bound = server.address();
        this.setStatus({ state: 'listening', host, port: typeof bound === 'object' && bound ? bound.port : port });
        this.retire();
      });
    } catch (err) {
      // A port out of range or a malformed host fails at once rather than as an event.
      this.bindFailed(listener, err as NodeJS.ErrnoException);
    }
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

  private bindFailed(listener: Listener, err: NodeJS.ErrnoException): void {
    listener.server.close();
    if (this.listener !== listener) return;
    this.listener = undefined;
    const retiring = this.retiring;
    if (retiring && err.code === 'EADDRINUSE') {
      // The listener being replaced holds the port (same port, new host or TLS): it closes first.
      this.retiring = undefined;
      this.closeListener(retiring).then(() => {
        if (this.running && !this.listener && !this.retryTimer) this.bind();
      });
      return;
    }
    const address = this.address;
    if (!address) return;
    const { host, port, retryInterval } = address;
    this.setStatus({ state: 'error', host, port, code: err.code, error: listenError(host, port, err) });
    this.retire();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.bind();
    }, retryInterval);
  }

  private setStatus(status: BrokerStatus): void {
    this.current = status;
    this.hooks.state(status);
  }
}

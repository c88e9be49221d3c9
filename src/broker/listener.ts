/**
 * A listening TCP or TLS server and the sockets it accepted: the broker has one
 * per bound address, and briefly two when it moves to a new host, port or TLS
 * setting (the new one binds, then the old one closes with its connections).
 */

import type * as net from 'node:net';
import type * as tls from 'node:tls';

export class Listener {
  /** Every socket it accepted that is not closed yet. */
  readonly sockets = new Set<net.Socket>();

  constructor(readonly server: net.Server) {}

  /** Keeps `socket` until it closes. */
  track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
  }

  /** Closes the connections it accepted and the server; resolves once the port is free. */
  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    const { server } = this;
    return new Promise<void>((resolve) => {
      if (server.listening) server.close(() => resolve());
      else {
        // Still binding: close once the bind settles, so the port is never left open.
        server.once('listening', () => server.close(() => resolve()));
        server.once('error', () => resolve());
      }
    });
  }
}

/** Whether two TLS settings are the same (the tls-config node gives a new object each time). */
export function sameTls(a: tls.TlsOptions | undefined, b: tls.TlsOptions | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/** Why binding `host:port` failed, in words that name the address. */
export function listenError(host: string, port: number, err: NodeJS.ErrnoException): string {
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

/**
 * The broker's open connections: numbered in the order they came (numbers are
 * never reused while the broker runs), found by number or by device, listed
 * for the connection table, and swept for silence on one timer.
 */

import type * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  Connection,
  ignoreError,
  plainAddress,
  type ConnectionHandlers,
  type ConnectionRecord,
  type ConnectionState,
} from './connection';

/** Which connections a flow writes to or closes: one by number, or every one of a device. */
export interface ConnectionTarget {
  connectionId?: number;
  /** A device id, or `address:port` for a plain-text connection. */
  device?: string;
}

export class Connections {
  private readonly open = new Map<number, Connection>();
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | undefined;

  /**
   * Serves `socket`: numbered, kept until it closes, its bytes read into
   * frames for `handlers`, its errors handled ('close' follows every one).
   */
  serve(socket: net.Socket, maxFrameBytes: number, handlers: ConnectionHandlers, connectionId?: number): Connection {
    const address = plainAddress(socket.remoteAddress);
    // A number given from elsewhere (a connection handed over) is kept; later ones count on after it.
    const id = connectionId ?? this.nextId;
    this.nextId = Math.max(this.nextId, id + 1);
    const connection = new Connection(socket, id, address, socket.remotePort ?? 0, maxFrameBytes, handlers);
    this.open.set(connection.connectionId, connection);
    // Admitted sockets have their error handler already (the broker's admission).
    if (socket.listenerCount('error') === 0) socket.on('error', ignoreError);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      if (connection.released) return;
      try {
        connection.received(chunk);
      } catch (err) {
        handlers.failed(connection, err);
        socket.destroy();
      }
    });
    socket.on('close', () => {
      if (connection.released) return;
      connection.reader.end();
      this.open.delete(connection.connectionId);
      handlers.closed(connection);
    });
    return connection;
  }

  /**
   * Lets go of `connection` without closing it (another process holds it, and takes it over): reading
   * stops where its last complete frame ended, and what it read beyond goes into its state. Its socket's
   * descriptor here is closed (no FIN: the connection is not, while another descriptor holds it), and
   * no 'closed' is reported. Returns undefined if it had closed already.
   */
  release(connection: Connection): ConnectionState | undefined {
    const { socket } = connection;
    this.open.delete(connection.connectionId);
    connection.released = true;
    if (socket.destroyed) return undefined;
    socket.pause();
    const unread: Buffer[] = [];
    for (let chunk: Buffer | null; (chunk = socket.read() as Buffer | null) !== null;) unread.push(chunk);
    const state = connection.state(Buffer.concat(unread));
    socket.destroy();
    return state;
  }

  get size(): number {
    return this.open.size;
  }

  values(): IterableIterator<Connection> {
    return this.open.values();
  }

  table(): ConnectionRecord[] {
    return Array.from(this.open.values(), (connection) => connection.record());
  }

  /** The target's open connections; throws, saying why, if there is none. */
  find({ connectionId, device }: ConnectionTarget): Connection[] {
    if (connectionId !== undefined) {
      const connection = this.open.get(connectionId);
      if (!connection?.open) throw new Error(`connection ${connectionId} is not open`);
      return [connection];
    }
    if (device === undefined || device === '')
      throw new Error('no connection to write to: give a device id or a connection number');
    const found = [...this.open.values()].filter((c) => c.open && (c.deviceId === device || c.name === device));
    if (found.length === 0) throw new Error(`device ${device} has no open connection`);
    return found;
  }

  /** A new limit for the frames of every open connection. */
  setMaxFrameBytes(maxFrameBytes: number): void {
    for (const connection of this.open.values()) connection.reader.maxFrameBytes = maxFrameBytes;
  }

  /**
   * One timer for every connection's idle timeout (rather than a timer per
   * socket, refreshed on every read and write): `onIdle` hears each one
   * silent for `idleMs`, late by at most a tenth of it. 0 = never.
   */
  startIdleSweep(idleMs: number, onIdle: (connection: Connection) => void): void {
    if (idleMs <= 0 || this.idleTimer) return;
    this.idleTimer = setInterval(
      () => {
        // A monotonic clock: setting the system time must not close every connection.
        const deadline = performance.now() - idleMs;
        for (const connection of this.open.values()) if (connection.lastHeard <= deadline) onIdle(connection);
      },
      Math.max(20, Math.min(5000, idleMs / 10)),
    );
  }

  stopIdleSweep(): void {
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = undefined;
  }
}

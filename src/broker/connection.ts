/**
 * One TCP connection of the broker: its frame reader, what the connection
 * table lists about it, and writes that drop a device which never reads.
 */

import type * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import { FrameReader, type FrameSink, type ReaderState } from '../protocol/frame-reader';
import { connectionName, type ConnectionInfo } from '../protocol/connection-info';
import type { DeviceId } from '../protocol/request';

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

/**
 * A connection as one broker hands it to another (in another process, say: tcpmq-gateway's upgrade): its
 * number, its device, its counts and where its reader stopped (the bytes of a frame half received, and
 * bytes read but not yet looked at). The socket itself travels beside it.
 */
export interface ConnectionState extends ReaderState {
  connectionId: number;
  deviceId?: DeviceId;
  connectedAt: number;
  bytesIn: number;
  bytesOut: number;
}

/** `::ffff:192.168.4.2` -> `192.168.4.2`, as people know their boards' addresses. */
export function plainAddress(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** What a connection's bytes turn into, handed to its owner with the connection. */
export interface ConnectionHandlers {
  /** A complete JSON frame. */
  frame(connection: Connection, frame: Buffer): void;
  /** A line or chunk of plain text (docs/PROTOCOL.md, plain text). */
  raw(connection: Connection, bytes: Buffer): void;
  /** Bytes between frames that start no frame. */
  stray(connection: Connection, bytes: Buffer): void;
  /** A frame beyond maxFrameBytes: the connection closes. */
  oversize(connection: Connection, size: number): void;
  /** The device leaves `unread` bytes of replies unread: the connection closes. */
  backlog(connection: Connection, unread: number): void;
  /** A handler threw on the connection's bytes: it is dropped, its owner carries on. */
  failed(connection: Connection, err: unknown): void;
  /** The socket closed. */
  closed(connection: Connection): void;
}

/** Replies that a client leaves unread beyond this are a client that does not read: drop it. */
const MAX_UNREAD_REPLY_BYTES = 1024 * 1024;

export class Connection implements ConnectionInfo, FrameSink {
  readonly reader: FrameReader;
  connectedAt = Date.now();
  /** When it last sent anything (a monotonic clock): the idle sweep closes it after idleTimeout of silence. */
  lastHeard = performance.now();
  deviceId: DeviceId | undefined;
  /** Handed over to another broker (release()): its socket's events are no longer this broker's. */
  released = false;
  bytesIn = 0;
  bytesOut = 0;

  constructor(
    readonly socket: net.Socket,
    readonly connectionId: number,
    readonly remoteAddress: string,
    readonly remotePort: number,
    maxFrameBytes: number,
    private readonly handlers: ConnectionHandlers,
  ) {
    // The connection is its reader's sink: methods, not a closure each (a broker may hold 10,000 connections).
    this.reader = new FrameReader(this, maxFrameBytes);
  }

  onFrame(frame: Buffer): void {
    this.handlers.frame(this, frame);
  }

  onRaw(bytes: Buffer): void {
    this.handlers.raw(this, bytes);
  }

  onStray(bytes: Buffer): void {
    this.handlers.stray(this, bytes);
  }

  onOversize(size: number): void {
    this.handlers.oversize(this, size);
  }

  get name(): string {
    return connectionName(this);
  }

  get open(): boolean {
    return !this.socket.destroyed;
  }

  info(): ConnectionInfo {
    return { connectionId: this.connectionId, remoteAddress: this.remoteAddress, remotePort: this.remotePort };
  }

  record(): ConnectionRecord {
    const { connectionId, remoteAddress, remotePort, deviceId, connectedAt, bytesIn, bytesOut } = this;
    return {
      connectionId,
      remoteAddress,
      remotePort,
      deviceId,
      kind: this.reader.kind,
      connectedAt,
      bytesIn,
      bytesOut,
    };
  }

  /** Where it stands, with `unread` (bytes read from the socket and not yet looked at) after its unfinished frame. */
  state(unread: Buffer): ConnectionState {
    const { connectionId, deviceId, connectedAt, bytesIn, bytesOut } = this;
    const reader = this.reader.save();
    const held = unread.length > 0 ? Buffer.concat([reader.held, unread]) : reader.held;
    return { connectionId, deviceId, connectedAt, bytesIn, bytesOut, ...reader, held };
  }

  /** Goes on from `state` (a connection handed over): its counts, its device, then its unread bytes. */
  resume(state: ConnectionState): void {
    this.deviceId = state.deviceId;
    this.connectedAt = state.connectedAt;
    this.bytesIn = state.bytesIn;
    this.bytesOut = state.bytesOut;
    this.reader.resume(state);
  }

  /** Bytes from the socket. */
  received(chunk: Buffer): void {
    this.lastHeard = performance.now();
    this.bytesIn += chunk.length;
    this.reader.push(chunk);
  }

  write(reply: Buffer): void {
    if (reply.length === 0 || this.socket.destroyed) return;
    this.bytesOut += reply.length;
    this.socket.write(reply);
    if (this.socket.writableLength > MAX_UNREAD_REPLY_BYTES) {
      this.handlers.backlog(this, this.socket.writableLength);
      this.close();
    }
  }

  /** Closes it now: nothing more it sent is read. */
  close(): void {
    this.reader.stop();
    this.socket.destroy();
  }
}

/** For sockets' 'error' events: resets and timeouts from the device's side; 'close' follows and cleans up. */
export function ignoreError(): void {
  // One function for every socket, rather than a closure each.
}

/**
 * The holder's side of one worker process (worker.ts): forked from the code on
 * disk at that moment, sent messages and sockets over its IPC channel, and
 * what it is doing as the holder sees it.
 */

import { fork, type ChildProcess } from 'node:child_process';
import type * as net from 'node:net';
import * as path from 'node:path';
import type { HolderMessage, WorkerMessage } from './handover';

/**
 * starting: forked, not ready yet; ready: waits for its state; serving: has its state and the sockets;
 * handing: asked to hand over; leaving: handed over, to exit; stopping: asked to stop.
 */
type WorkerPhase = 'starting' | 'ready' | 'serving' | 'handing' | 'leaving' | 'stopping';

export class WorkerProcess {
  readonly child: ChildProcess;
  phase: WorkerPhase = 'starting';
  /** The package version it runs (its 'ready' says). */
  version = '';
  /** It has served (said 'serving'): a crash after that is not a crash at start. */
  served = false;

  constructor(
    argv: readonly string[],
    onMessage: (worker: WorkerProcess, message: WorkerMessage) => void,
    onExit: (worker: WorkerProcess, code: number | null, signal: NodeJS.Signals | null) => void,
  ) {
    // Resolved at each start: an upgrade runs whatever is on disk now.
    const file = path.join(__dirname, 'worker.js');
    this.child = fork(file, argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
    this.child.on('message', (message: WorkerMessage) => onMessage(this, message));
    this.child.on('exit', (code, signal) => onExit(this, code, signal));
    // A channel that breaks is an exit to come; fork() failing (no memory, no process slots) is one too.
    this.child.on('error', () => undefined);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  send(message: HolderMessage): void {
    if (this.child.connected) this.child.send(message, undefined, {}, ignore);
  }

  /**
   * Hands it connection `connectionId`. keepOpen: the holder keeps its descriptor of the connection, which
   * stays open when this worker goes, for the next one; it never reads from it (paused since accept).
   */
  hand(connectionId: number, socket: net.Socket): void {
    if (this.child.connected) this.child.send({ type: 'connection', connectionId }, socket, { keepOpen: true }, ignore);
  }

  kill(): void {
    if (this.alive) this.child.kill('SIGKILL');
  }
}

function ignore(): void {
  // A send to a worker that has just gone: its exit is handled on its own.
}

/**
 * A worker of tcpmq-gateway: the gateway (gateway.ts) on the sockets its holder
 * (holder.ts) hands it, started by the holder with child_process.fork() from the
 * code on disk at that moment. It never listens and has no MQTT will: the holder
 * keeps the port, the connections and the will, so this process may be replaced
 * by newer code (an upgrade) or die (a crash) without a board noticing more than
 * a wait. What it says to its holder: handover.ts.
 */

import type * as net from 'node:net';
import type { ConnectionState } from '../broker';
import { errorText } from '../events/safe-emitter';
import { SettingError } from '../settings/schema';
import { VERSION } from '../settings/version';
import { Gateway } from './gateway';
import { fromWire, toWire, type HolderMessage, type WorkerMessage, type WorkerState } from './handover';
import { consoleLog, type Log } from './log';
import { parseArgs, resolveOptions, type GatewayOptions } from './options';

/** How often the state goes to the holder while it changes: a crash loses at most this much of it. */
const SNAPSHOT_EVERY_MS = 5000;
/** Exit code of a bad setting (as a shell's usage error). */
const USAGE = 2;

class GatewayWorker {
  private gateway: Gateway | undefined;
  /** Serving: the state is in, the gateway started. Connections wait for it. */
  private started: Promise<void> | undefined;
  /** The connections of the state it started from, until their sockets come. */
  private readonly handed = new Map<number, ConnectionState>();
  /** Handed over to the next worker: a socket that still comes is not this worker's. */
  private frozen = false;
  private snapshotTimer: NodeJS.Timeout | undefined;
  private lastSnapshot = '';

  constructor(
    private readonly cli: { flags: Record<string, unknown>; config: string },
    private readonly options: GatewayOptions,
    private readonly log: Log,
    private readonly send: (message: WorkerMessage) => void,
  ) {}

  /** What the holder says; `socket` comes with a 'connection'. */
  async onMessage(message: HolderMessage, socket: net.Socket | undefined): Promise<void> {
    switch (message.type) {
      case 'state':
        this.started = this.start(message.state, message.startedAt);
        return this.started;
      case 'connection':
        return this.adopt(message.connectionId, socket);
      case 'handover':
        return this.handOver();
      case 'leave':
        await this.gateway?.leave();
        process.exit(0);
        return;
      case 'stop':
        this.stopSnapshots();
        await this.gateway?.stop();
        process.exit(0);
        return;
      case 'reload':
        return this.reload();
    }
  }

  private async start(json: string | undefined, startedAt: number): Promise<void> {
    const state = json === undefined ? undefined : (JSON.parse(json) as WorkerState);
    const gateway = new Gateway(this.options, this.log, { startedAt, connected: () => this.send({ type: 'serving' }) });
    this.gateway = gateway;
    for (const wire of state?.connections ?? []) this.handed.set(wire.connectionId, fromWire(wire));
    if (state) Object.assign(gateway.broker.counters, state.counters);
    gateway.broker.on('disconnect', ({ connectionId }) => this.send({ type: 'closed', connectionId }));
    await gateway.start(state?.snapshot);
    this.send({ type: 'started' });
    if (!this.options.mqtt) this.send({ type: 'serving' });
    this.snapshotTimer = setInterval(() => this.sendSnapshot(), SNAPSHOT_EVERY_MS);
  }

  private async adopt(connectionId: number, socket: net.Socket | undefined): Promise<void> {
    if (!socket) {
      // Closed in the holder before it could be sent.
      this.send({ type: 'closed', connectionId });
      return;
    }
    socket.on('error', ignore);
    // Not this worker's any more: let go without a word (the holder hands it to the next).
    if (this.frozen) return void socket.destroy();
    await this.started;
    const state = this.handed.get(connectionId);
    this.handed.delete(connectionId);
    if (this.frozen) return void socket.destroy();
    if (!this.gateway?.broker.adopt(socket, state ?? { connectionId })) this.send({ type: 'closed', connectionId });
  }

  /** An upgrade: no more reading, sharing or saving here; the state and every socket go to the next worker. */
  private async handOver(): Promise<void> {
    this.frozen = true;
    this.stopSnapshots();
    await this.started;
    const gateway = this.gateway;
    if (!gateway) return;
    gateway.freeze();
    const connections = await gateway.broker.release();
    this.send({ type: 'handed', state: JSON.stringify(this.state(connections)) });
  }

  private state(connections: ConnectionState[]): WorkerState {
    const { broker } = this.gateway as Gateway;
    return { snapshot: broker.snapshot(), counters: { ...broker.counters }, connections: connections.map(toWire) };
  }

  /** The state for a crash to fall back on: sent when it changed, without unread bytes (they are being read). */
  private sendSnapshot(): void {
    const broker = this.gateway?.broker;
    if (!broker || this.frozen) return;
    const connections = broker
      .connectionTable()
      .map(({ connectionId, deviceId, kind, connectedAt, bytesIn, bytesOut }): ConnectionState => ({
        connectionId,
        deviceId,
        kind,
        connectedAt,
        bytesIn,
        bytesOut,
        sendsLines: false,
        held: Buffer.alloc(0),
      }));
    const state = JSON.stringify(this.state(connections));
    if (state === this.lastSnapshot) return;
    this.lastSnapshot = state;
    this.send({ type: 'snapshot', state });
  }

  private stopSnapshots(): void {
    if (this.snapshotTimer) clearInterval(this.snapshotTimer);
    this.snapshotTimer = undefined;
  }

  /** SIGHUP, through the holder: the settings read again and applied as a deploy applies them. */
  private reload(): void {
    try {
      const next = resolveOptions(this.cli, process.env);
      this.log.level = next.logLevel;
      this.gateway?.apply(next);
    } catch (err) {
      this.log.error(`SIGHUP: settings not applied: ${errorText(err)}`);
    }
  }
}

function ignore(): void {
  // A socket's errors: its 'close' follows, and the broker cleans up.
}

/** The worker's process: started by the holder with the gateway's own arguments and environment. */
function runWorker(argv: readonly string[]): void {
  const send = (message: WorkerMessage) => {
    // The holder gone: the 'disconnect' below ends this process.
    if (process.connected) process.send?.(message, undefined, {}, ignore);
  };
  let command;
  let options: GatewayOptions;
  try {
    command = parseArgs(argv);
    if (command.help) throw new SettingError('--help is the holder’s');
    options = resolveOptions(command, process.env);
  } catch (err) {
    // The settings changed on disk since the holder read them: it keeps the worker it has.
    process.stderr.write(`tcpmq-gateway worker: ${errorText(err)}\n`);
    process.exit(err instanceof SettingError ? USAGE : 1);
  }
  const log = consoleLog(options.logLevel);
  const worker = new GatewayWorker(command, options, log, send);
  process.on('uncaughtException', (err) => log.error(`internal error, carrying on: ${err.stack ?? errorText(err)}`));
  // The holder speaks for the service: signals sent to every process of the service (systemd's
  // control group, a terminal's Ctrl-C) reach the holder too, which tells this worker what to do.
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR2'] as const) process.on(signal, ignore);
  // The holder killed (kill -9): nothing holds the port or the boards any more, and neither does this.
  process.on('disconnect', () => process.exit(0));
  process.on('message', (message: HolderMessage, socket?: net.Socket) => {
    worker.onMessage(message, socket).catch((err: unknown) => log.error(`worker: ${errorText(err)}`));
  });
  send({ type: 'ready', version: VERSION });
}

if (require.main === module) runWorker(process.argv.slice(2));

/**
 * The process tcpmq-gateway starts (its main PID): a small, stable holder that
 * owns the listening socket, a descriptor of every board's connection and the
 * gateway's MQTT will, and runs no broker code. The broker runs in a worker
 * process (worker.ts) that it hands the connections to; so the worker can be
 * replaced by the code on disk now (SIGUSR2: an upgrade) or die (a crash)
 * while every board keeps its connection, as nginx keeps its listening socket
 * through a binary upgrade, here for every established connection too.
 *
 * The holder never reads a connection (accepted paused, handed with keepOpen):
 * the worker reads. A connection closes when the worker says it closed.
 * The messages between the two: handover.ts.
 */

import { hostname } from 'node:os';
import type * as net from 'node:net';
import { Server } from '../broker/server';
import { loggedOnce } from '../events/rate-limit';
import { errorText } from '../events/safe-emitter';
import { fleetTopics, topicPrefix, type SharedGateway } from '../fleet/topics';
import { VERSION } from '../settings/version';
import type { WorkerMessage } from './handover';
import type { Log } from './log';
import { connectMqtt, type MqttLink } from './mqtt-transport';
import type { GatewayOptions } from './options';
import { WorkerProcess } from './worker-process';

/** A new worker that is not ready within this is given up (an upgrade keeps the worker it has). */
const READY_WITHIN_MS = 15_000;
/** A worker asked to hand over that has not within this is taken as crashed. */
const HANDED_WITHIN_MS = 3000;
/** The worker before leaves at the latest this long after the new one serves, MQTT session up or not. */
const LEAVE_WITHIN_MS = 10_000;
/** A worker that dies before it served is restarted after a pause: broken code must not spin. */
const CRASH_PAUSE_MS = 1000;

function ignore(): void {
  // A held socket's errors: it is never read or written here; its worker reports its close.
}

export class Holder {
  private readonly server: Server;
  /** Every connection, by number: the holder's descriptor of it, never read. */
  private readonly sockets = new Map<number, net.Socket>();
  private nextId = 1;
  /** The worker handed every connection (new ones go to it as they come). */
  private active: WorkerProcess | undefined;
  /** A worker started for an upgrade, not serving yet. */
  private next: WorkerProcess | undefined;
  /** The worker handing over to `next`. */
  private previous: WorkerProcess | undefined;
  /** The last state a worker sent (JSON): what a new worker starts from after a crash. */
  private lastState: string | undefined;
  private will: MqttLink | undefined;
  private willVersion = VERSION;
  private wills = 0;
  private readonly startedAt = Date.now();
  private stopping = false;
  /** Where it listens, once bound; said once a worker serves too (boards that come sooner wait). */
  private listening: string | undefined;
  private workerStarted = false;
  private timers = new Set<NodeJS.Timeout>();

  constructor(
    private options: GatewayOptions,
    /** The gateway's arguments, for each worker. */
    private readonly argv: readonly string[],
    private readonly log: Log,
  ) {
    // Retries repeat the same failure every few seconds: logged once.
    const listenError = loggedOnce((error) => this.log.error(`${error}; retrying every 5 s`));
    this.server = new Server({
      admit: (socket) => {
        socket.on('error', ignore);
        return true;
      },
      handle: (socket) => this.accept(socket),
      tlsFailed: () => undefined, // no TLS here: a gateway serving TLS runs as one process
      state: (status) => {
        if (status.state === 'listening') {
          listenError.recovered();
          this.listening = `${status.host}:${status.port}`;
          this.sayListening();
        } else if (status.state === 'error') listenError.failed(status.error);
      },
    });
  }

  get name(): string {
    return this.options.gateway || hostname();
  }

  start(): void {
    this.server.start(this.listenAddress());
    this.connectWill();
    this.startWorker(0);
  }

  /** SIGUSR2: a new worker from the code on disk now takes over every connection and the state. */
  upgrade(): void {
    if (this.stopping) return;
    if (this.next || this.previous || this.active?.phase !== 'serving') {
      this.log.warn('SIGUSR2: an upgrade or a restart is under way; this one is not started');
      return;
    }
    this.log.info('SIGUSR2: upgrading: starting a worker from the code on disk');
    this.next = this.fork();
  }

  /** SIGHUP: the settings read again; a new host or port is listened on, the worker applies the rest. */
  reload(options: GatewayOptions): void {
    this.options = options;
    this.log.level = options.logLevel;
    this.server.move(this.listenAddress());
    this.active?.send({ type: 'reload' });
  }

  /** SIGTERM: the worker stops (persist saved, offline said), then the holder; within 3 s in all. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const timer of this.timers) clearTimeout(timer);
    for (const worker of [this.next, this.previous]) worker?.kill();
    const active = this.active;
    if (active?.alive) {
      const exited = new Promise((resolve) => active.child.once('exit', resolve));
      active.phase = 'stopping';
      active.send({ type: 'stop' });
      await Promise.race([exited, delay(2000)]);
      active.kill();
    }
    if (this.will) {
      // The worker said so already if it could; the holder says it too, and ends without its will.
      if (this.will.client.connected) this.will.publish(this.willTopic(), JSON.stringify(this.offline()), true);
      await Promise.race([this.will.end(), delay(500)]);
    }
    for (const socket of this.sockets.values()) socket.destroy();
    await this.server.stop();
  }

  /** "listening on": bound, and a worker serves (persist read): a board that connects now is answered at once. */
  private sayListening(): void {
    if (!this.listening || !this.workerStarted) return;
    this.log.info(`listening on ${this.listening}`);
    this.listening = undefined;
  }

  private listenAddress() {
    const { host, port } = this.options;
    return { host, port, retryInterval: 5000, pauseOnConnect: true };
  }

  /** A new connection: numbered, kept, never read here; handed to the worker that serves, if one does. */
  private accept(socket: net.Socket): void {
    const connectionId = this.nextId++;
    this.sockets.set(connectionId, socket);
    socket.on('close', () => this.sockets.delete(connectionId));
    if (this.active?.phase === 'serving') this.active.hand(connectionId, socket);
  }

  private fork(): WorkerProcess {
    const worker = new WorkerProcess(
      this.argv,
      (from, message) => this.onMessage(from, message),
      (from, code, signal) => this.onExit(from, code, signal),
    );
    this.later(() => {
      if (worker.phase !== 'starting') return;
      this.log.error(`worker ${worker.pid} not ready within ${READY_WITHIN_MS / 1000} s; stopped`);
      worker.kill();
    }, READY_WITHIN_MS);
    return worker;
  }

  /** A worker for every connection, from `state` (the last one sent; none: persist, at the first start). */
  private startWorker(pauseMs: number): void {
    if (this.stopping) return;
    if (pauseMs > 0) this.later(() => this.startWorker(0), pauseMs);
    else this.active = this.fork();
  }

  private onMessage(worker: WorkerProcess, message: WorkerMessage): void {
    switch (message.type) {
      case 'ready':
        worker.version = message.version;
        worker.phase = 'ready';
        this.log.info(`worker ${worker.pid} started (version ${message.version})`);
        if (worker === this.active) this.serveWith(worker);
        else if (worker === this.next) this.handOver();
        return;
      case 'handed':
        this.lastState = message.state;
        if (worker === this.previous && worker.phase === 'handing') {
          worker.phase = 'leaving';
          this.takeOver();
        }
        return;
      case 'started':
        this.workerStarted = true;
        this.sayListening();
        return;
      case 'serving':
        worker.served = true;
        if (worker === this.active && this.previous) this.letGo(this.previous);
        return;
      case 'snapshot':
        if (worker === this.active) this.lastState = message.state;
        return;
      case 'closed':
        this.sockets.get(message.connectionId)?.destroy();
        return;
    }
  }

  /** The worker serves: its state, then every connection (in one order over one channel). */
  private serveWith(worker: WorkerProcess): void {
    worker.send({ type: 'state', state: this.lastState, startedAt: this.startedAt });
    worker.phase = 'serving';
    for (const [connectionId, socket] of this.sockets) worker.hand(connectionId, socket);
  }

  /** The new worker is ready: the old one stops reading and hands its state over. */
  private handOver(): void {
    const previous = this.active;
    const next = this.next;
    if (!next) return;
    if (!previous?.alive) {
      this.takeOver();
      return;
    }
    this.previous = previous;
    previous.phase = 'handing';
    previous.send({ type: 'handover' });
    this.later(() => {
      if (previous.phase !== 'handing') return;
      this.log.error(`worker ${previous.pid} did not hand over within ${HANDED_WITHIN_MS / 1000} s; stopped`);
      previous.kill();
    }, HANDED_WITHIN_MS);
  }

  /** The new worker takes every connection, from the state the old one handed (or its last). */
  private takeOver(): void {
    const next = this.next;
    if (!next) return;
    this.next = undefined;
    this.active = next;
    this.serveWith(next);
    if (this.previous && !this.options.mqtt) this.letGo(this.previous);
    else if (this.previous) {
      const previous = this.previous;
      this.later(() => this.letGo(previous), LEAVE_WITHIN_MS);
    }
    if (next.version !== this.willVersion) this.connectWill(next.version);
  }

  /** The old worker goes: it ends its MQTT session without a word (the new one speaks for the gateway). */
  private letGo(previous: WorkerProcess): void {
    if (this.previous !== previous) return;
    this.previous = undefined;
    previous.phase = 'leaving';
    previous.send({ type: 'leave' });
    this.later(() => previous.kill(), LEAVE_WITHIN_MS);
    this.log.info(`upgraded to version ${this.active?.version} (worker ${this.active?.pid})`);
  }

  private onExit(worker: WorkerProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stopping || worker.phase === 'leaving') return;
    const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
    if (worker === this.next) {
      this.next = undefined;
      this.log.error(`upgrade failed: the new worker ${how}; worker ${this.active?.pid} serves on`);
      return;
    }
    if (worker === this.previous) {
      // Died while handing over: the new worker starts from the last state sent.
      this.log.error(`worker ${worker.pid} ${how} while handing over`);
      worker.phase = 'leaving';
      this.previous = undefined;
      if (this.next?.phase === 'ready') this.takeOver();
      return;
    }
    if (worker !== this.active) return;
    this.active = undefined;
    const young = !worker.served;
    this.log.error(`worker ${worker.pid} ${how}; a new one takes every connection${young ? ' in 1 s' : ''}`);
    if (this.next) {
      // An upgrade was starting: its worker takes over once ready.
      if (this.next.phase === 'ready') this.takeOver();
      return;
    }
    this.startWorker(young ? CRASH_PAUSE_MS : 0);
  }

  /** The gateway's will, held here: it says offline only when the holder goes, never when a worker does. */
  private connectWill(version = VERSION): void {
    if (!this.options.mqtt) return;
    const before = this.will;
    this.willVersion = version;
    // A client id of its own each time: taking over a session would fire the will it replaces.
    const clientId = `tcpmq-gateway-${this.name}-${process.pid}-will-${++this.wills}`.replace(/[^A-Za-z0-9_-]/g, '_');
    this.will = connectMqtt(this.options.mqtt, clientId, {
      topic: this.willTopic(),
      payload: JSON.stringify(this.offline()),
    });
    // The worker reports MQTT trouble; here it is only retried.
    this.will.client.on('error', (err) => this.log.debug(`MQTT (will): ${errorText(err)}`));
    // The will before is dropped once this one is in place (a clean end never fires it).
    if (before) this.will.client.once('connect', () => before.end().catch(ignore));
  }

  private willTopic(): string {
    return fleetTopics(topicPrefix(this.options.shareTopic)).gateway(this.name);
  }

  private offline(): SharedGateway {
    return { online: false, version: this.willVersion, startedAt: this.startedAt };
  }

  /** A timer the holder owns: cleared on stop. */
  private later(action: () => void, ms: number): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      action();
    }, ms);
    this.timers.add(timer);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

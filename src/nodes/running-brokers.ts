/**
 * The core brokers and clients that tcpmq-broker nodes run, kept across deploys.
 *
 * A deploy closes node instances and creates them again, but boards in the
 * field never reconnect: so an instance closed for a deploy parks what it runs
 * here, and the new instance with the same id claims it back, with its
 * listening socket, connections, mailboxes and devices. What nobody claims is
 * released (stopped, its port freed) as soon as the flows have started, at
 * once when the flows stop without a deploy (Node-RED shutting down), and
 * after GRACE_MS at the latest (a start that never finishes).
 */

import type { EventEmitter } from 'node:events';
import type { TcpmqBroker } from '../broker';
import type { TcpmqClient } from '../client/client';

/** What a tcpmq-broker node runs. */
type Runtime = TcpmqBroker | TcpmqClient;

/** How long a parked runtime waits for its new instance, if the runtime never says the flows have started. */
const GRACE_MS = 10_000;

interface Parked {
  runtime: Runtime;
  release: () => Promise<void>;
  timer: NodeJS.Timeout;
}

export class RunningBrokers {
  private readonly parked = new Map<string, Parked>();
  /** Callbacks for the next 'flows:started'. */
  private readonly whenStarted: (() => void)[] = [];

  /** Keeps `runtime` for the next instance of node `id`; `release` stops it if none claims it. */
  park(id: string, runtime: Runtime, release: () => Promise<void>): void {
    this.release(id); // an earlier one nobody claimed
    const timer = setTimeout(() => this.release(id), GRACE_MS);
    this.parked.set(id, { runtime, release, timer });
  }

  /** What the previous instance of node `id` parked, if anything: it is the caller's now. */
  claim(id: string): Runtime | undefined {
    const parked = this.parked.get(id);
    if (!parked) return undefined;
    clearTimeout(parked.timer);
    this.parked.delete(id);
    return parked.runtime;
  }

  /**
   * Runs `callback` once the flows being started now have started: by then
   * every node of the deploy exists and listens (new settings applied then are
   * reported to the tcpmq-status nodes of the same deploy).
   */
  afterStart(callback: () => void): void {
    this.whenStarted.push(callback);
  }

  /** The flows have started: new settings apply, and what nobody claimed stops. */
  flowsStarted(): Promise<void> {
    for (const callback of this.whenStarted.splice(0)) {
      try {
        callback();
      } catch {
        // A callback reports its own failures (configure() never throws).
      }
    }
    return this.releaseAll();
  }

  /** The flows stopped with no deploy to follow (shutdown, "stop flows"): everything parked stops now. */
  flowsStopped(): Promise<void> {
    this.whenStarted.length = 0;
    return this.releaseAll();
  }

  /** Stops every runtime nobody claimed; resolves when they are stopped. */
  releaseAll(): Promise<void> {
    return Promise.all([...this.parked.keys()].map((id) => this.release(id))).then(() => undefined);
  }

  private release(id: string): Promise<void> {
    const parked = this.parked.get(id);
    if (!parked) return Promise.resolve();
    clearTimeout(parked.timer);
    this.parked.delete(id);
    return parked.release().catch(() => undefined);
  }
}

/** One registry per Node-RED runtime (the test helper loads the nodes again for every test). */
const registries = new WeakMap<EventEmitter, RunningBrokers>();

/**
 * The registry of the runtime whose events are `events`, released at the
 * moments the runtime's flow events mark: the flows have started (every
 * instance that will claim has claimed: constructors run during the start), or
 * the flows stopped without a deploy (shutdown, or "stop flows").
 */
export function runningBrokers(events: EventEmitter): RunningBrokers {
  const known = registries.get(events);
  if (known) return known;
  const created = new RunningBrokers();
  registries.set(events, created);
  events.on('flows:started', () => created.flowsStarted());
  events.on('runtime-event', (event: { id?: string; payload?: { state?: string; deploy?: boolean } }) => {
    if (event?.id === 'runtime-state' && event.payload?.state === 'stop' && !event.payload.deploy)
      created.flowsStopped();
  });
  return created;
}

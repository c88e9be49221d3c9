/**
 * `persist`, for any host of a broker (the tcpmq-broker node, the gateway):
 * mailboxes and devices read back once, then saved every few seconds when
 * they changed, and on stop. A snapshot that could not be read is never
 * overwritten: it may still be fixed by hand.
 */

import type { BrokerSnapshot } from './snapshot';

/** How often a changed snapshot is saved while running: a crash loses at most this much. */
const SAVE_EVERY_MS = 5000;

/** What is saved: a broker's mailboxes and devices (TcpmqBroker is one). */
interface Snapshotted {
  /** Grows with every change: whether the saved snapshot is out of date. */
  readonly changes: number;
  snapshot(): BrokerSnapshot;
  restore(snapshot: BrokerSnapshot): void;
}

/** Where a snapshot is kept (a file of its own, or a Node-RED context store). */
export interface SnapshotStore {
  /** The saved snapshot, or undefined if there is none; rejects if it cannot be read. */
  read(): Promise<unknown>;
  write(snapshot: BrokerSnapshot): Promise<void>;
}

/** What the host says when reading or writing fails (a log line, a node warning). */
interface SnapshotFailures {
  restore(err: unknown): void;
  save(err: unknown): void;
}

export class SnapshotSaver {
  private savedChanges: number;
  private restoreFailed = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly broker: Snapshotted,
    private readonly store: SnapshotStore,
    private readonly failures: SnapshotFailures,
  ) {
    this.savedChanges = broker.changes;
  }

  /** Takes back what was saved (true if there was something), then saves changes every few seconds. */
  async start(): Promise<boolean> {
    let restored = false;
    try {
      const saved = await this.store.read();
      if (saved) this.broker.restore(saved as BrokerSnapshot);
      restored = Boolean(saved);
    } catch (err) {
      this.restoreFailed = true;
      this.failures.restore(err);
    }
    this.savedChanges = this.broker.changes;
    this.resume();
    return restored;
  }

  /** Saves changes every few seconds, without reading anything back (a broker kept through a deploy). */
  resume(): void {
    this.timer ??= setInterval(() => this.broker.changes !== this.savedChanges && this.save(), SAVE_EVERY_MS);
  }

  /** Saves a last time (unless `save` is false: the snapshot is about to go) and stops. */
  async stop(save = true): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (save) await this.save();
  }

  private async save(): Promise<void> {
    this.savedChanges = this.broker.changes;
    if (this.restoreFailed) return;
    try {
      await this.store.write(this.broker.snapshot());
    } catch (err) {
      this.failures.save(err);
    }
  }
}

/**
 * `persist` for a server-mode tcpmq-broker: mailboxes and devices saved to a
 * file of their own in the Node-RED user directory (`tcpmq/<broker id>.json`),
 * every few seconds when changed and on close, and read back before listening.
 * A broker kept through a deploy has them already, newer: nothing is read.
 */

import * as path from 'node:path';
import type { Node, NodeAPI } from 'node-red';
import type { BrokerSnapshot, TcpmqBroker } from '../broker/broker';
import { describe } from '../events/safe-emitter';
import { SnapshotFile } from '../store/snapshot-file';

/** Where earlier versions kept the snapshot in the node's context (read if there is no snapshot file). */
const SNAPSHOT_KEY = 'tcpmq';
/** How often a changed snapshot is saved while running: a crash loses at most this much. */
const SAVE_EVERY_MS = 5000;

export interface Persistence {
  /** Settles once the snapshot is read back (at once when there is nothing to read). */
  restored: Promise<void>;
  /** Saves a last time; `removed`: the broker was deleted, its snapshot goes with it. */
  close(removed: boolean): Promise<void>;
}

export function persistBroker(RED: NodeAPI, node: Node, broker: TcpmqBroker, on: boolean, kept: boolean): Persistence {
  const userDir = (RED.settings as { userDir?: string }).userDir;
  const file = userDir ? new SnapshotFile(path.join(userDir, 'tcpmq', `${node.id}.json`)) : undefined;
  let savedChanges = broker.changes;
  /** A snapshot that could not be read is not overwritten: it may still be fixed by hand. */
  let restoreFailed = false;
  const context = node.context();

  async function restore(): Promise<void> {
    try {
      // The node's context holds what earlier versions saved (and is the store when there is no user directory).
      const saved =
        (await file?.read()) ??
        (await new Promise((resolve, reject) => {
          // The store may call back at once (memory) or later (localfilesystem).
          context.get(SNAPSHOT_KEY, (err: Error | undefined, value: unknown) => (err ? reject(err) : resolve(value)));
        }));
      if (saved) broker.restore(saved as BrokerSnapshot);
    } catch (failure) {
      restoreFailed = true;
      node.warn(RED._('tcpmq-broker.errors.restore', { error: describe(failure) }));
    }
    savedChanges = broker.changes;
  }

  async function save(): Promise<void> {
    savedChanges = broker.changes;
    if (restoreFailed) return;
    const snapshot = broker.snapshot();
    try {
      if (file) await file.write(snapshot);
      else {
        await new Promise<void>((resolve, reject) =>
          context.set(SNAPSHOT_KEY, snapshot, (err?: Error) => (err ? reject(err) : resolve())),
        );
      }
    } catch (err) {
      node.warn(RED._('tcpmq-broker.errors.save', { error: describe(err) }));
    }
  }

  const restored = on && !kept ? restore() : Promise.resolve();
  const timer = on ? setInterval(() => broker.changes !== savedChanges && save(), SAVE_EVERY_MS) : undefined;
  return {
    restored,
    async close(removed) {
      if (timer) clearInterval(timer);
      // A deleted broker's snapshot goes with it, as Node-RED drops a deleted node's context.
      if (removed) await file?.remove();
      else if (on) await restored.then(save);
    },
  };
}

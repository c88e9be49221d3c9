/**
 * `persist` (the node's flag) for a server-mode tcpmq-broker: the snapshot (src/store/snapshot-saver.ts)
 * in a file of its own in the Node-RED user directory (`tcpmq/<broker id>.json`),
 * read back before listening. A broker kept through a deploy has its mailboxes
 * and devices already, newer: nothing is read.
 */

import * as path from 'node:path';
import type { Node, NodeAPI } from 'node-red';
import type { TcpmqBroker } from '../broker';
import { errorText } from '../events/safe-emitter';
import { SnapshotFile } from '../store/snapshot-file';
import { SnapshotSaver, type SnapshotStore } from '../store/snapshot-saver';

/** Where earlier versions kept the snapshot in the node's context (read if there is no snapshot file). */
const SNAPSHOT_KEY = 'tcpmq';

interface Persistence {
  /** Settles once the snapshot is read back (at once when there is nothing to read). */
  restored: Promise<void>;
  /** Saves a last time; `removed`: the broker was deleted, its snapshot goes with it. */
  close(removed: boolean): Promise<void>;
}

export function persistBroker(RED: NodeAPI, node: Node, broker: TcpmqBroker, on: boolean, kept: boolean): Persistence {
  const userDir = (RED.settings as { userDir?: string }).userDir;
  const file = userDir ? new SnapshotFile(path.join(userDir, 'tcpmq', `${node.id}.json`)) : undefined;
  if (!on) {
    // Off: nothing to save, but a snapshot saved while it was on goes with a deleted broker.
    return {
      restored: Promise.resolve(),
      async close(removed) {
        if (removed) await file?.remove();
      },
    };
  }
  const context = node.context();
  // The node's context holds what earlier versions saved (and is the store when there is no user directory).
  const store: SnapshotStore = {
    read: async () =>
      (await file?.read()) ??
      new Promise((resolve, reject) => {
        // The store may call back at once (memory) or later (localfilesystem).
        context.get(SNAPSHOT_KEY, (err: Error | undefined, value: unknown) => (err ? reject(err) : resolve(value)));
      }),
    write: (snapshot) =>
      file
        ? file.write(snapshot)
        : new Promise<void>((resolve, reject) =>
            context.set(SNAPSHOT_KEY, snapshot, (err?: Error) => (err ? reject(err) : resolve())),
          ),
  };
  const saver = new SnapshotSaver(broker, store, {
    restore: (err) => node.warn(RED._('tcpmq-broker.errors.restore', { error: errorText(err) })),
    save: (err) => node.warn(RED._('tcpmq-broker.errors.save', { error: errorText(err) })),
  });
  const restored = kept ? Promise.resolve(saver.resume()) : saver.start().then(() => undefined);
  return {
    restored,
    async close(removed) {
      await restored;
      // A deleted broker's snapshot goes with it, as Node-RED drops a deleted node's context.
      await saver.stop(!removed);
      if (removed) await file?.remove();
    },
  };
}

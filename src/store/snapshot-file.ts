/**
 * Where `persist` keeps a broker's snapshot: a JSON file of its own in the
 * Node-RED user directory (`tcpmq/<broker id>.json`), replaced atomically (a
 * new file written and flushed, then renamed over the old one), so that a
 * crash or a `kill -9` at any moment leaves the previous snapshot or the new
 * one, never half of one, and nothing waits on a context store's flush.
 */

import { promises as fs } from 'node:fs';
import * as path from 'node:path';

export class SnapshotFile {
  /** The write under way: writes go one after the other. */
  private writing: Promise<void> = Promise.resolve();

  constructor(readonly file: string) {}

  /** The saved snapshot, or undefined if there is none. Rejects if the file cannot be read or is not JSON. */
  async read(): Promise<unknown> {
    let text: string;
    try {
      text = await fs.readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return JSON.parse(text);
  }

  /** Replaces the saved snapshot with `snapshot`. */
  write(snapshot: unknown): Promise<void> {
    const text = JSON.stringify(snapshot);
    const written = this.writing.then(() => this.replace(text));
    this.writing = written.catch(() => undefined);
    return written;
  }

  /** Deletes the saved snapshot (its broker was deleted). */
  async remove(): Promise<void> {
    await this.writing;
    await fs.rm(this.file, { force: true });
  }

  private async replace(text: string): Promise<void> {
    await fs.mkdir(path.dirname(this.file), { recursive: true });
    const next = `${this.file}.${process.pid}.tmp`;
    const handle = await fs.open(next, 'w');
    try {
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(next, this.file);
  }
}

/** Mailbox store: device id -> latest news (protocol sections 2 and 4). */

import type { DeviceId } from './request';

/** Who wrote a mailbox: a device's own news expires when it goes silent; a flow's does not. */
export type Writer = 'device' | 'flow';

export interface Mailbox {
  value: unknown;
  writtenAt: number;
  writer: Writer;
  /** Time (ms since epoch) after which the mailbox reads as empty; Infinity for never. */
  expiresAt: number;
  /** The reply bytes for `value`, encoded once on first read. */
  reply?: Buffer;
}

export class Mailboxes {
  private readonly boxes = new Map<DeviceId, Mailbox>();

  write(id: DeviceId, value: unknown, writer: Writer, now: number, ttlMs = 0): Mailbox {
    const expiresAt = ttlMs > 0 ? now + ttlMs : Infinity;
    let mailbox = this.boxes.get(id);
    if (mailbox === undefined) {
      mailbox = { value, writtenAt: now, writer, expiresAt, reply: undefined };
      this.boxes.set(id, mailbox);
    } else {
      // Updated in place: a device writes its mailbox every few seconds, for as long as it runs.
      mailbox.value = value;
      mailbox.writtenAt = now;
      mailbox.writer = writer;
      mailbox.expiresAt = expiresAt;
      mailbox.reply = undefined;
    }
    return mailbox;
  }

  /** The mailbox's current content, or undefined when it is empty or expired. */
  read(id: DeviceId, now: number): Mailbox | undefined {
    const mailbox = this.boxes.get(id);
    if (mailbox === undefined) return undefined;
    if (mailbox.expiresAt <= now) {
      this.boxes.delete(id);
      return undefined;
    }
    return mailbox;
  }

  clear(id: DeviceId): void {
    this.boxes.delete(id);
  }

  /** A device went silent: its own news is no longer served (the flow's writes stay). */
  expireDeviceNews(id: DeviceId): void {
    if (this.boxes.get(id)?.writer === 'device') this.boxes.delete(id);
  }

  /** The reply dialect changed: every reply is encoded anew on its next read. */
  forgetReplies(): void {
    for (const mailbox of this.boxes.values()) mailbox.reply = undefined;
  }

  get size(): number {
    return this.boxes.size;
  }

  entries(): IterableIterator<[DeviceId, Mailbox]> {
    return this.boxes.entries();
  }
}

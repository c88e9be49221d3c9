/** Mailbox store: device id -> latest news, and the reply bytes that serve it (docs/PROTOCOL.md, mailboxes). */

import { emptyReply, encodeReply, type ReplyFormat } from '../protocol/reply';
import type { DeviceId } from '../protocol/request';
import { defaults } from '../settings/schema';

/** Who wrote a mailbox: a device's own news expires when it goes silent; a flow's does not. */
export type Writer = 'device' | 'flow';

export interface Mailbox {
  value: unknown;
  writtenAt: number;
  writer: Writer;
  /** Time (ms since epoch) after which the mailbox reads as empty; Infinity for never. */
  expiresAt: number;
  /** The reply bytes for `value`, encoded once on first read (owned by Mailboxes). */
  reply?: Buffer;
  /** The gateway that wrote it, for a mailbox taken in from the fleet (sharing); undefined for this broker's own. */
  gateway?: string;
  /** Published on MQTT by this gateway as it is now (sharing); a new write is not, until it goes out. */
  shared?: boolean;
}

export class Mailboxes {
  private readonly boxes = new Map<DeviceId, Mailbox>();

  /** @param format the reply dialect the cached replies are in */
  constructor(private format: ReplyFormat = defaults().replyFormat) {}

  /**
   * Writes mailbox `id`, the one way anything is written: by `writer` at
   * `writtenAt`, served for `ttlMs` from then (0: until overwritten), taken in
   * from `gateway` (sharing; undefined: written here). `reply`: the value's
   * reply bytes if the caller has encoded them already (a flow's value is
   * checked that way before it is written). A write here (no `gateway`) is
   * stamped after what is held, so its writtenAt never ties with the last.
   */
  write(
    id: DeviceId,
    value: unknown,
    writer: Writer,
    writtenAt: number,
    ttlMs = 0,
    reply?: Buffer,
    gateway?: string,
  ): Mailbox {
    let mailbox = this.boxes.get(id);
    // A write here comes after whatever is held: two in one millisecond, or a clock behind another gateway's,
    // still order (the fleet compares writtenAt, docs/PROTOCOL.md, sharing).
    const now =
      gateway === undefined && mailbox !== undefined && writtenAt <= mailbox.writtenAt
        ? mailbox.writtenAt + 1
        : writtenAt;
    const expiresAt = ttlMs > 0 ? now + ttlMs : Infinity;
    if (mailbox === undefined) {
      mailbox = { value, writtenAt: now, writer, expiresAt, reply, gateway };
      this.boxes.set(id, mailbox);
    } else {
      // Updated in place: a device writes its mailbox every few seconds, for as long as it runs.
      mailbox.value = value;
      mailbox.writtenAt = now;
      mailbox.writer = writer;
      mailbox.expiresAt = expiresAt;
      mailbox.reply = reply;
      mailbox.gateway = gateway;
      mailbox.shared = undefined;
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

  /** The bytes a device asking for `id` gets now: the content's reply, or the empty reply. */
  replyTo(id: DeviceId, now: number): Buffer {
    const mailbox = this.read(id, now);
    if (mailbox === undefined) return emptyReply(this.format);
    return (mailbox.reply ??= encodeReply(mailbox.value, this.format));
  }

  /** A new reply dialect: every reply is encoded anew on its next read. */
  setFormat(format: ReplyFormat): void {
    if (format === this.format) return;
    this.format = format;
    for (const mailbox of this.boxes.values()) mailbox.reply = undefined;
  }

  get size(): number {
    return this.boxes.size;
  }

  entries(): IterableIterator<[DeviceId, Mailbox]> {
    return this.boxes.entries();
  }
}

/**
 * Payloads are stored as parsed and handed to flows: each side gets its own
 * copy of an object, so a flow changing msg.payload cannot change a mailbox.
 */
export function copyOf<T>(value: T): T {
  if (Buffer.isBuffer(value)) return Buffer.from(value) as T;
  return typeof value === 'object' && value !== null ? structuredClone(value) : value;
}

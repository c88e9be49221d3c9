/**
 * Bytes in, frames out (docs/PROTOCOL.md, frames and plain text).
 *
 * Scans each byte once and keeps only the bytes of an unfinished frame, so a
 * frame split over reads, several frames in one read and UTF-8 split across
 * reads all come out whole. Brackets and quotes are ASCII, so they can never
 * be part of a multi-byte UTF-8 character: scanning bytes is safe and nothing
 * is decoded until a frame is complete. Never throws on input.
 */

/** Where the frames of one connection go. */
export interface FrameSink {
  /** A complete JSON value (array, object or string) to parse; or a broken one, which will not parse. */
  onFrame(bytes: Buffer): void;
  /** On a plain-text connection: a line (without its line ending), or a chunk of text. */
  onRaw(bytes: Buffer): void;
  /** On a TCPMQ connection: bytes between frames that cannot start one. */
  onStray(bytes: Buffer): void;
  /** The frame in progress grew past the limit: the connection must be closed. */
  onOversize(size: number): void;
}

/** A reader's place in its stream (save(), resume()): what the connection speaks and the bytes of an unfinished frame. */
export interface ReaderState {
  kind: 'tcpmq' | 'raw' | 'unknown';
  sendsLines: boolean;
  held: Buffer;
}

const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

const enum Mode {
  BetweenFrames,
  Json,
  Raw,
  Stray,
  Stopped,
}

/** Marks a JSON frame that ends early: a control byte inside a string, which JSON forbids. */
const BROKEN = -2;

export class FrameReader {
  private mode = Mode.BetweenFrames;
  /**
   * Decided by the connection's first byte (docs/PROTOCOL.md, plain text): JSON frames
   * when it is `[` (or `{` or `"`, to be rejected as protocol errors), plain
   * text otherwise, whatever comes later.
   */
  private speaksJson: boolean | undefined;
  /** Once a plain-text sender has ended a line, later text waits for its newline. */
  private sendsLines = false;
  private strayReported = false;
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Bytes of the unfinished frame from earlier reads: one buffer, grown by doubling. */
  private held: Buffer | undefined;
  private heldBytes = 0;

  /**
   * @param maxFrameBytes the largest frame or line; may be changed at any time
   *   (a broker's settings changed while the connection is open)
   */
  constructor(
    private readonly sink: FrameSink,
    public maxFrameBytes: number,
  ) {}

  /** What the connection speaks, once its first byte is known. */
  get kind(): 'tcpmq' | 'raw' | 'unknown' {
    return this.speaksJson === undefined ? 'unknown' : this.speaksJson ? 'tcpmq' : 'raw';
  }

  /** @internal The size of the buffer holding an unfinished frame, for white-box tests of memory bounds. */
  get heldCapacity(): number {
    return this.held?.length ?? 0;
  }

  /** Bytes held for an unfinished frame (bounded by maxFrameBytes). */
  get bufferedBytes(): number {
    return this.heldBytes;
  }

  /** Where this reader is in its stream, for a reader in another process to go on from (see resume()). */
  save(): ReaderState {
    const held = this.held ? Buffer.from(this.held.subarray(0, this.heldBytes)) : Buffer.alloc(0);
    return { kind: this.kind, sendsLines: this.sendsLines, held };
  }

  /** Goes on from where another reader of the same stream stopped (its save()), on a reader that has read nothing. */
  resume({ kind, sendsLines, held }: ReaderState): void {
    this.speaksJson = kind === 'unknown' ? undefined : kind === 'tcpmq';
    this.sendsLines = sendsLines;
    // The held bytes start where the unfinished frame or line did: read again, they rebuild the scan's state.
    if (held.length > 0) this.push(held);
  }

  push(chunk: Buffer): void {
    const length = chunk.length;
    let start = 0;
    let i = 0;
    while (i < length && this.mode !== Mode.Stopped) {
      if (this.mode === Mode.BetweenFrames) {
        const byte = chunk[i];
        if (byte === SPACE || byte === LF || byte === CR || byte === TAB) {
          i++;
          continue;
        }
        start = i;
        this.speaksJson ??= byte === OPEN_BRACKET || byte === OPEN_BRACE || byte === QUOTE;
        if (!this.speaksJson) {
          this.mode = Mode.Raw;
        } else if (byte === OPEN_BRACKET || byte === OPEN_BRACE) {
          this.beginJson(1, false);
          i++;
        } else if (byte === QUOTE) {
          this.beginJson(0, true);
          i++;
        } else {
          this.mode = Mode.Stray;
          this.strayReported = false;
        }
        continue;
      }
      if (this.mode === Mode.Json) {
        const end = this.scanJson(chunk, i);
        if (end === -1) {
          i = length;
          break;
        }
        if (end <= BROKEN) {
          // Hand over the frame up to the control byte; it will not parse. Read on from that byte.
          i = BROKEN - end;
          this.finish(chunk, start, i, this.sink.onFrame);
        } else {
          i = end;
          this.finish(chunk, start, end, this.sink.onFrame);
        }
        continue;
      }
      if (this.mode === Mode.Stray) {
        // Stray bytes end at a newline or where the next request starts, in this
        // read or a later one: where TCP cuts them changes nothing. One report a run.
        const end = strayEnd(chunk, i);
        if (!this.strayReported && end > start) {
          this.strayReported = true;
          this.sink.onStray(chunk.subarray(start, end));
        }
        if (end < length) this.mode = Mode.BetweenFrames;
        i = end;
        continue;
      }
      // Mode.Raw
      const newline = chunk.indexOf(LF, i);
      if (newline >= 0) {
        this.sendsLines = true;
        this.finishLine(chunk, start, newline);
        i = newline + 1;
      } else if (!this.sendsLines) {
        // A board that sends no newlines: each read is one message.
        this.finishLine(chunk, start, length);
        i = length;
      } else {
        i = length;
        break;
      }
    }
    if (this.mode === Mode.Json || this.mode === Mode.Raw) this.keep(chunk, start);
  }

  /** The connection closed: a last line without its newline is still a message. */
  end(): void {
    if (this.mode === Mode.Raw && this.held) this.finishLine(Buffer.alloc(0), 0, 0);
    this.stop();
  }

  /** Stops reading: later bytes are ignored and held bytes are released. */
  stop(): void {
    this.mode = Mode.Stopped;
    this.held = undefined;
    this.heldBytes = 0;
  }

  private beginJson(depth: number, inString: boolean): void {
    this.mode = Mode.Json;
    this.depth = depth;
    this.inString = inString;
    this.escaped = false;
  }

  /**
   * Returns the index just past the end of the JSON frame, -1 if it goes on in
   * a later read, or BROKEN - i if a control byte at i ends it early.
   */
  private scanJson(chunk: Buffer, from: number): number {
    let depth = this.depth;
    let inString = this.inString;
    let escaped = this.escaped;
    const length = chunk.length;
    for (let i = from; i < length; i++) {
      const byte = chunk[i];
      if (inString) {
        if (byte < SPACE) return BROKEN - i;
        if (escaped) escaped = false;
        else if (byte === BACKSLASH) escaped = true;
        else if (byte === QUOTE) {
          inString = false;
          if (depth === 0) return i + 1;
        }
      } else if (byte === QUOTE) {
        inString = true;
      } else if (byte === OPEN_BRACKET || byte === OPEN_BRACE) {
        depth++;
      } else if (byte === CLOSE_BRACKET || byte === CLOSE_BRACE) {
        depth--;
        if (depth === 0) return i + 1;
      }
    }
    this.depth = depth;
    this.inString = inString;
    this.escaped = escaped;
    return -1;
  }

  /** A line ends: drops a trailing CR and hands the text over. */
  private finishLine(chunk: Buffer, start: number, end: number): void {
    const lineEnd = end > start && chunk[end - 1] === CR ? end - 1 : end;
    this.finish(chunk, start, lineEnd, this.sink.onRaw);
  }

  /** Hands the frame chunk[start, end), after any held bytes, to `deliver`. */
  private finish(chunk: Buffer, start: number, end: number, deliver: (bytes: Buffer) => void): void {
    const size = this.heldBytes + end - start;
    if (size > this.maxFrameBytes) {
      this.oversize(size);
      return;
    }
    let frame = chunk.subarray(start, end);
    if (this.held) {
      this.append(frame);
      frame = this.held.subarray(0, this.heldBytes);
      // The frame owns the held buffer now; the next unfinished frame gets a new one.
      this.held = undefined;
      this.heldBytes = 0;
    }
    this.mode = Mode.BetweenFrames;
    deliver.call(this.sink, frame);
  }

  /** Holds the unfinished frame's bytes from this read until the next one. */
  private keep(chunk: Buffer, start: number): void {
    const size = this.heldBytes + chunk.length - start;
    if (size > this.maxFrameBytes) {
      this.oversize(size);
      return;
    }
    this.append(chunk.subarray(start));
  }

  /** Copies `part` after the held bytes (a copy per read: one byte per read must not cost a buffer each). */
  private append(part: Buffer): void {
    const needed = this.heldBytes + part.length;
    if (!this.held || needed > this.held.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.maxFrameBytes, Math.max(needed, 2 * (this.held?.length ?? 64))));
      if (this.held) this.held.copy(grown, 0, 0, this.heldBytes);
      this.held = grown;
    }
    part.copy(this.held, this.heldBytes);
    this.heldBytes = needed;
  }

  private oversize(size: number): void {
    this.stop();
    this.sink.onOversize(size);
  }
}

/** The end of stray bytes on a TCPMQ connection: the next newline or `[`, else the end of the read. */
function strayEnd(chunk: Buffer, from: number): number {
  for (let i = from; i < chunk.length; i++) {
    const byte = chunk[i];
    if (byte === LF || byte === OPEN_BRACKET) return i;
  }
  return chunk.length;
}

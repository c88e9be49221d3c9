/**
 * Bytes in, frames out (protocol sections 1 and 5).
 *
 * Scans each byte once and keeps only the bytes of an unfinished frame, so a
 * frame split over reads, several frames in one read and UTF-8 split across
 * reads all come out whole. Brackets and quotes are ASCII, so they can never
 * be part of a multi-byte UTF-8 character: scanning bytes is safe and nothing
 * is decoded until a frame is complete. Never throws on input.
 */

/** Where the frames of one connection go. */
export interface FrameSink {
  /** A complete JSON value: an array, an object or a string, still to be parsed. */
  onFrame(bytes: Buffer): void;
  /** A line (without its line ending) or a chunk of plain text. */
  onRaw(bytes: Buffer): void;
  /** The frame in progress grew past the limit: the connection must be closed. */
  onOversize(size: number): void;
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
  Stopped,
}

export class FrameReader {
  private mode = Mode.BetweenFrames;
  /** Bytes of the unfinished frame from earlier reads. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  /**
   * Decided by the connection's first byte (protocol section 5): JSON frames
   * when it is `[` (or `{` or `"`, to be rejected as protocol errors), plain
   * text otherwise, whatever comes later.
   */
  private speaksJson: boolean | undefined;
  /** Once a plain-text sender has ended a line, later text waits for its newline. */
  private sendsLines = false;

  constructor(
    private readonly sink: FrameSink,
    private readonly maxFrameBytes: number,
  ) {}

  /** Bytes held for an unfinished frame (bounded by maxFrameBytes). */
  get bufferedBytes(): number {
    return this.pendingBytes;
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
        if (this.speaksJson === undefined) this.speaksJson = byte === OPEN_BRACKET || byte === OPEN_BRACE || byte === QUOTE;
        if (!this.speaksJson) {
          this.mode = Mode.Raw;
        } else if (byte === OPEN_BRACKET || byte === OPEN_BRACE) {
          this.beginJson(1, false);
          i++;
        } else if (byte === QUOTE) {
          this.beginJson(0, true);
          i++;
        } else {
          this.mode = Mode.Raw;
        }
        continue;
      }
      if (this.mode === Mode.Json) {
        const end = this.scanJson(chunk, i);
        if (end < 0) {
          i = length;
          break;
        }
        this.finish(chunk, start, end, false);
        i = end;
        continue;
      }
      // Mode.Raw
      if (this.speaksJson) {
        // A TCPMQ connection: stray bytes end at a newline or where the next request starts.
        const end = rawEnd(chunk, i);
        this.finish(chunk, start, end, true);
        i = end < length && chunk[end] === LF ? end + 1 : end;
        continue;
      }
      const newline = chunk.indexOf(LF, i);
      if (newline >= 0) {
        this.sendsLines = true;
        this.finish(chunk, start, newline, true);
        i = newline + 1;
      } else if (!this.sendsLines && this.pendingBytes === 0) {
        // A board that sends no newlines: each read is one message.
        this.finish(chunk, start, length, true);
        i = length;
      } else {
        i = length;
        break;
      }
    }
    if (this.mode === Mode.Json || this.mode === Mode.Raw) this.keep(chunk, start);
  }

  /** Stops reading: later bytes are ignored and held bytes are released. */
  stop(): void {
    this.mode = Mode.Stopped;
    this.pending = [];
    this.pendingBytes = 0;
  }

  private beginJson(depth: number, inString: boolean): void {
    this.mode = Mode.Json;
    this.depth = depth;
    this.inString = inString;
    this.escaped = false;
  }

  /** Returns the index just past the end of the JSON frame, or -1 if it goes on in a later read. */
  private scanJson(chunk: Buffer, from: number): number {
    let depth = this.depth;
    let inString = this.inString;
    let escaped = this.escaped;
    const length = chunk.length;
    for (let i = from; i < length; i++) {
      const byte = chunk[i];
      if (inString) {
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

  /** Hands the frame chunk[start, end) (after any held bytes) to the sink. */
  private finish(chunk: Buffer, start: number, end: number, raw: boolean): void {
    const size = this.pendingBytes + end - start;
    if (size > this.maxFrameBytes) {
      this.oversize(size);
      return;
    }
    let frame =
      this.pendingBytes === 0
        ? chunk.subarray(start, end)
        : Buffer.concat([...this.pending, chunk.subarray(start, end)], size);
    this.pending = [];
    this.pendingBytes = 0;
    this.mode = Mode.BetweenFrames;
    if (raw) {
      if (frame.length > 0 && frame[frame.length - 1] === CR) frame = frame.subarray(0, frame.length - 1);
      this.sink.onRaw(frame);
    } else {
      this.sink.onFrame(frame);
    }
  }

  /** Holds the unfinished frame's bytes from this read until the next one. */
  private keep(chunk: Buffer, start: number): void {
    const part = chunk.subarray(start);
    if (this.pendingBytes + part.length > this.maxFrameBytes) {
      this.oversize(this.pendingBytes + part.length);
      return;
    }
    this.pending.push(part);
    this.pendingBytes += part.length;
  }

  private oversize(size: number): void {
    this.stop();
    this.sink.onOversize(size);
  }
}

/** The end of stray bytes on a TCPMQ connection: the next newline or `[`, else the end of the read. */
function rawEnd(chunk: Buffer, from: number): number {
  for (let i = from; i < chunk.length; i++) {
    const byte = chunk[i];
    if (byte === LF || byte === OPEN_BRACKET) return i;
  }
  return chunk.length;
}

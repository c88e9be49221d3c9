'use strict';
// Seeded generators and properties for robustness fuzzing, shared by
// test/robustness/fuzz.test.js (fixed seed, small budget) and bench/fuzz.js
// (any seed, any duration). Not a test file itself (no .test.js suffix).
//
// Every case takes one 32-bit seed and is fully determined by it for the
// FrameReader properties: a failure prints that seed, and
// `node bench/fuzz.js --property <name> --case-seed <seed>` replays it.
// Over TCP the bytes sent are determined by the seed; how the kernel cuts them
// into reads is not, so the TCP cases only check properties that hold for
// every cut.
const assert = require('node:assert/strict');
const net = require('node:net');
const { performance } = require('node:perf_hooks');
const { FrameReader, encodeReply, parseRequest, isRequest } = require('../../dist');
const { waitFor } = require('../../tools/wait');

// ---- PRNG ------------------------------------------------------------------

/** mulberry32: a tiny 32-bit PRNG; the same seed gives the same sequence everywhere. */
function mulberry32(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  constructor(seed) {
    this.seed = seed >>> 0;
    this.next = mulberry32(this.seed);
  }

  /** 0 .. n-1 */
  int(n) {
    return Math.floor(this.next() * n);
  }

  /** lo .. hi, both included */
  range(lo, hi) {
    return lo + this.int(hi - lo + 1);
  }

  chance(p) {
    return this.next() < p;
  }

  pick(items) {
    return items[this.int(items.length)];
  }

  /** `n` random bytes, none of them in `excluded` (an array of byte values). */
  bytes(n, excluded = []) {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) {
      let byte;
      do byte = this.int(256);
      while (excluded.includes(byte));
      out[i] = byte;
    }
    return out;
  }
}

/** The seed of case `index` of a run started with `seed`: well mixed, so neighbouring cases differ. */
function caseSeed(seed, index) {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

// ---- valid frames ----------------------------------------------------------

const B = (text) => Buffer.from(text, 'utf8');
const OPEN_BRACKET = 0x5b;
const OPEN_BRACE = 0x7b;
const QUOTE = 0x22;

/** Characters a payload string is made of: JSON specials, brackets, controls, CJK, astral, a lone surrogate. */
const STRING_CHARS = [
  'a',
  'b',
  'x',
  '0',
  '7',
  ' ',
  '.',
  '-',
  ',',
  ':',
  '[',
  ']',
  '{',
  '}',
  '"',
  '\\',
  '/',
  '\n',
  '\r',
  '\t',
  '\u0000',
  '\u001f',
  'é',
  'ñ',
  '温',
  '度',
  '中',
  '文',
  'Ω',
  '😀',
  '\ud800',
  '\u2028',
];

function genString(rng, maxLength = 12) {
  let text = '';
  const length = rng.int(maxLength + 1);
  for (let i = 0; i < length; i++)
    text += rng.chance(0.5) ? rng.pick('abcxyz0123456789'.split('')) : rng.pick(STRING_CHARS);
  return text;
}

/** A device id as a field device or a flow would send it: small ints, negatives, decimals, strings. */
function genId(rng) {
  switch (rng.int(5)) {
    case 0:
      return rng.range(-5, 99);
    case 1:
      return rng.pick([2.5, -1.25, 1e3, 0, 123456789]);
    case 2:
      return String(rng.range(0, 99));
    case 3:
      return rng.pick(['esp32', 'k230-a', '温度计', 'a"b', 'x]y[', '']);
    default:
      return genString(rng, 6);
  }
}

function genPayload(rng, depth = 0) {
  const kind = rng.int(depth >= 3 ? 4 : 6);
  switch (kind) {
    case 0:
    case 1:
      // The field's favourite: a number as a string.
      return rng.chance(0.5) ? (rng.next() * 100).toFixed(3) : genString(rng, 24);
    case 2:
      return rng.pick([0, -1, 42, 26.545, 1e-7, 123456789012, -0.5]);
    case 3:
      return rng.pick([true, false, null]);
    case 4: {
      const items = [];
      for (let i = rng.int(4); i > 0; i--) items.push(genPayload(rng, depth + 1));
      return items;
    }
    default: {
      const object = {};
      for (let i = rng.int(4); i > 0; i--) object[genString(rng, 5)] = genPayload(rng, depth + 1);
      return object;
    }
  }
}

/** JSON text of `value`, usually compact, sometimes pretty-printed (newlines and spaces between tokens are still one frame). */
function formatJson(rng, value) {
  return rng.chance(0.85) ? JSON.stringify(value) : JSON.stringify(value, null, rng.pick([1, 2, '\t']));
}

/** A valid request frame `[from, want, payload]`: its bytes and its value. */
function genFrame(rng, from = genId(rng), want = genId(rng), payload = genPayload(rng)) {
  const value = [from, want, payload];
  return { bytes: B(formatJson(rng, value)), value };
}

/** A valid frame of exactly `size` bytes (size >= 9): `[1,1,"xxx…"]`. */
function frameOfSize(size, fill = 'x') {
  return B('[1,1,"' + fill.repeat(size - 8) + '"]');
}

/** What may separate frames: nothing, spaces, tabs, newlines, CRLF. */
function genSeparator(rng) {
  return B(rng.pick(['', '', '', ' ', '\n', '\r\n', '\t', ' \r\n ', '\n\n']));
}

/**
 * A stream of valid frames with separators, each frame at most `maxFrameBytes`
 * (some exactly at the limit or one under it when `nearLimit`).
 */
function genValidStream(rng, count, { maxFrameBytes = 65536, nearLimit = false, maxFrameSize = Infinity } = {}) {
  const parts = [genSeparator(rng)];
  const frames = [];
  while (frames.length < count) {
    let frame;
    if (nearLimit && rng.chance(0.15)) frame = frameOfSize(maxFrameBytes - rng.int(2));
    else frame = genFrame(rng).bytes;
    if (frame.length > Math.min(maxFrameBytes, maxFrameSize)) continue;
    frames.push(frame);
    parts.push(frame, genSeparator(rng));
  }
  return { bytes: Buffer.concat(parts), frames };
}

// ---- garbage ---------------------------------------------------------------

/**
 * Garbage after which a TCPMQ connection is always back between frames, however
 * TCP cuts it: no `[` or `{` (so no bracket is ever left open), and it ends with
 * a newline, which ends stray bytes and (as a control byte) any string a `"`
 * in it opened. Kept well under maxFrameBytes.
 */
function genNewlineGarbage(rng, maxLength = 120) {
  const body = rng.bytes(rng.int(maxLength), [OPEN_BRACKET, OPEN_BRACE]);
  return Buffer.concat([body, B('\n')]);
}

/**
 * Garbage that needs no newline: no `[`, `{` or `"`, so it can only be
 * whitespace or stray bytes, and stray bytes end where the next `[` starts.
 */
function genQuietGarbage(rng, maxLength = 120) {
  return rng.bytes(1 + rng.int(maxLength), [OPEN_BRACKET, OPEN_BRACE, QUOTE]);
}

/** A valid frame mangled: bytes flipped, inserted, deleted, duplicated, truncated. */
function mutate(rng, bytes) {
  let out = Buffer.from(bytes);
  for (let ops = 1 + rng.int(3); ops > 0; ops--) {
    const at = rng.int(out.length + 1);
    switch (rng.int(6)) {
      case 0:
        if (out.length > 0) out[Math.min(at, out.length - 1)] = rng.int(256);
        break;
      case 1:
        out = Buffer.concat([
          out.subarray(0, at),
          B(rng.pick(['[', ']', '{', '}', '"', '\\', ',', '\n', '\u0000'])),
          out.subarray(at),
        ]);
        break;
      case 2:
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + rng.int(4))]);
        break;
      case 3:
        out = Buffer.concat([out.subarray(0, at), out.subarray(rng.int(out.length + 1)), out.subarray(at)]);
        break;
      case 4:
        out = out.subarray(0, at);
        break;
      default:
        out = Buffer.concat([out.subarray(0, at), rng.bytes(1 + rng.int(4)), out.subarray(at)]);
    }
  }
  return out;
}

const HOSTILE_KINDS = [
  'valid',
  'random-bytes',
  'deep-nesting',
  'huge-string',
  'invalid-utf8',
  'unbalanced',
  'nul-bytes',
  'mutated',
  'control-in-string',
  'separator',
];

/** One segment of hostile input of the given (or a random) kind. */
function genHostile(rng, maxFrameBytes, kind = rng.pick(HOSTILE_KINDS)) {
  switch (kind) {
    case 'valid':
      return genFrame(rng).bytes;
    case 'random-bytes':
      return rng.bytes(1 + rng.int(200));
    case 'deep-nesting': {
      // 10,000 levels (or fewer), of arrays or objects, left open or closed.
      const depth = rng.chance(0.5) ? 10000 : 1 + rng.int(3000);
      const open = rng.pick(['[', '{', '[{']);
      const opening = open.repeat(Math.ceil(depth / open.length));
      return B(
        rng.chance(0.5)
          ? opening
          : opening + (open === '[' ? ']' : open === '{' ? '}' : '}]').repeat(Math.ceil(depth / open.length)),
      );
    }
    case 'huge-string': {
      // Near and over the limit, terminated or not.
      const size = Math.max(9, maxFrameBytes + rng.range(-8, 8));
      const frame = frameOfSize(size);
      return rng.chance(0.3) ? frame.subarray(0, frame.length - 2) : frame;
    }
    case 'invalid-utf8':
      return Buffer.concat([
        B('[1,1,"'),
        Buffer.from(
          rng.pick([
            [0xff],
            [0xfe, 0xff],
            [0xc0, 0x80],
            [0xed, 0xa0, 0x80],
            [0xe6, 0xb8],
            [0xf8, 0x88, 0x80, 0x80, 0x80],
          ]),
        ),
        B(rng.pick(['"]', '', '"', '\n'])),
      ]);
    case 'unbalanced':
      return B(
        rng.pick([']]]', '[[[', '}}', '{{', '[1,1,"a"]]', '[[1,1,"a"]', '"', '\\', '[1,1,"a\\', '"]"]', '[', '{']),
      );
    case 'nul-bytes':
      return rng.chance(0.5) ? Buffer.alloc(1 + rng.int(16)) : B('[1,1,"a\u0000b"]');
    case 'mutated':
      return mutate(rng, genFrame(rng).bytes);
    case 'control-in-string':
      return B('[1,1,"ab' + String.fromCharCode(rng.int(32)) + 'cd"]');
    default:
      return genSeparator(rng);
  }
}

/** Cuts `bytes` into reads: one byte, a few bytes, a few hundred, or the rest. */
function randomCuts(rng, bytes) {
  const reads = [];
  let at = 0;
  while (at < bytes.length) {
    const roll = rng.next();
    const size = roll < 0.25 ? 1 : roll < 0.55 ? 1 + rng.int(16) : roll < 0.9 ? 1 + rng.int(600) : bytes.length - at;
    reads.push(bytes.subarray(at, at + size));
    at += size;
  }
  return reads;
}

// ---- feeding a FrameReader -------------------------------------------------

/**
 * Pushes `reads` into a new FrameReader and returns its events. Checks after
 * every push that nothing escaped (an exception fails the caller) and that the
 * reader holds at most maxFrameBytes, in bufferedBytes and in its buffer.
 */
function feed(reads, maxFrameBytes) {
  const events = [];
  // heldCapacity is @internal (for white-box tests; the published types leave it out).
  const reader = /** @type {FrameReader & { heldCapacity: number }} */ (
    new FrameReader(
      {
        onFrame: (bytes) => events.push({ kind: 'frame', bytes: Buffer.from(bytes) }),
        onRaw: (bytes) => events.push({ kind: 'raw', bytes: Buffer.from(bytes) }),
        onStray: (bytes) => events.push({ kind: 'stray', bytes: Buffer.from(bytes) }),
        onOversize: (size) => events.push({ kind: 'oversize', size }),
      },
      maxFrameBytes,
    )
  );
  let maxBuffered = 0;
  for (const chunk of reads) {
    reader.push(chunk);
    const buffered = reader.bufferedBytes;
    maxBuffered = Math.max(maxBuffered, buffered);
    assert.ok(buffered <= maxFrameBytes, `bufferedBytes ${buffered} > maxFrameBytes ${maxFrameBytes}`);
    if (reader.heldCapacity)
      assert.ok(reader.heldCapacity <= maxFrameBytes, `held buffer of ${reader.heldCapacity} bytes > ${maxFrameBytes}`);
  }
  return { events, reader, maxBuffered };
}

const frameTexts = (events) => events.filter((e) => e.kind === 'frame').map((e) => e.bytes.toString('latin1'));
const requestFrameTexts = (events) =>
  events.filter((e) => e.kind === 'frame' && e.bytes[0] === OPEN_BRACKET).map((e) => e.bytes.toString('latin1'));
const texts = (buffers) => buffers.map((b) => b.toString('latin1'));

// ---- properties (FrameReader) ---------------------------------------------
//
// Each takes a case seed, throws (an AssertionError) on failure and returns a
// small summary ({ bytes }) for the statistics.

const PROPERTIES = {
  /** Valid frames cut in two (and three) at every byte boundary come out whole, identical and in order. */
  'valid-every-boundary'(seed) {
    const rng = new Rng(seed);
    const { bytes, frames } = genValidStream(rng, 1 + rng.int(4), { maxFrameSize: 240 });
    const expected = texts(frames);
    for (let cut = 1; cut < bytes.length; cut++) {
      const { events } = feed([bytes.subarray(0, cut), bytes.subarray(cut)], 65536);
      assert.deepEqual(frameTexts(events), expected, `seed ${seed}: cut at byte ${cut}`);
      assert.equal(events.length, expected.length, `seed ${seed}: only frames, cut at byte ${cut}`);
      const second = cut + rng.int(bytes.length - cut);
      const three = feed([bytes.subarray(0, cut), bytes.subarray(cut, second), bytes.subarray(second)], 65536).events;
      assert.deepEqual(frameTexts(three), expected, `seed ${seed}: cuts at ${cut} and ${second}`);
    }
    const oneByteReads = feed(
      [...bytes].map((byte) => Buffer.from([byte])),
      65536,
    );
    assert.deepEqual(frameTexts(oneByteReads.events), expected, `seed ${seed}: one byte per read`);
    assert.equal(oneByteReads.reader.bufferedBytes, 0);
    return { bytes: bytes.length * bytes.length * 2 };
  },

  /** Many valid frames (some exactly at maxFrameBytes) at random boundaries come out identical and in order. */
  'valid-random-cuts'(seed) {
    const rng = new Rng(seed);
    const maxFrameBytes = rng.pick([160, 1024, 65536]);
    const { bytes, frames } = genValidStream(rng, 5 + rng.int(50), { maxFrameBytes, nearLimit: true });
    const expected = texts(frames);
    for (let round = 0; round < 4; round++) {
      const { events, reader } = feed(randomCuts(rng, bytes), maxFrameBytes);
      assert.deepEqual(frameTexts(events), expected, `seed ${seed}: round ${round}`);
      assert.equal(events.length, expected.length, `seed ${seed}: only frames (round ${round})`);
      assert.equal(reader.bufferedBytes, 0);
    }
    return { bytes: bytes.length * 4 };
  },

  /**
   * Random bytes, 10,000-deep nesting, strings near and over the limit,
   * invalid UTF-8, unbalanced brackets, NUL bytes and mangled frames, mixed
   * with valid frames: push never throws, the reader never holds more than
   * maxFrameBytes, no frame or line it hands over is larger, and after an oversize
   * frame it reports nothing more.
   */
  'hostile-input'(seed) {
    const rng = new Rng(seed);
    const maxFrameBytes = rng.pick([64, 256, 4096, 65536]);
    const parts = [];
    if (rng.chance(0.8)) parts.push(genFrame(rng).bytes); // mostly a TCPMQ connection; sometimes a plain-text one
    for (let n = 4 + rng.int(24); n > 0; n--) parts.push(genHostile(rng, maxFrameBytes));
    const bytes = Buffer.concat(parts);
    const { events, reader } = feed(randomCuts(rng, bytes), maxFrameBytes);
    for (const event of events) {
      // Stray bytes are never held (they are a slice of the current read), so only frames and lines are bounded.
      if (event.kind === 'frame' || event.kind === 'raw') {
        assert.ok(event.bytes.length <= maxFrameBytes, `seed ${seed}: a ${event.kind} of ${event.bytes.length} bytes`);
      }
    }
    const oversize = events.findIndex((e) => e.kind === 'oversize');
    if (oversize >= 0) {
      assert.equal(oversize, events.length - 1, `seed ${seed}: events after an oversize frame`);
      assert.ok(events[oversize].size > maxFrameBytes);
      assert.equal(reader.bufferedBytes, 0);
    }
    reader.end();
    assert.equal(reader.bufferedBytes, 0);
    return { bytes: bytes.length };
  },

  /**
   * The resynchronisation rule the broker guarantees (see genNewlineGarbage and
   * genQuietGarbage): after the connection has started with a frame, a valid
   * frame is read exactly when the garbage before it leaves no `[` or `{` open,
   * i.e. garbage without `[`/`{` that ends in a newline, or garbage without
   * `[`/`{`/`"` at all. Every valid frame then comes out, identical and in
   * order, however the stream is cut; the garbage never yields a request.
   */
  'resync-after-garbage'(seed) {
    const rng = new Rng(seed);
    const first = genFrame(rng).bytes;
    const parts = [first];
    const frames = [first];
    for (let n = 3 + rng.int(20); n > 0; n--) {
      parts.push(rng.chance(0.5) ? genNewlineGarbage(rng) : genQuietGarbage(rng));
      if (rng.chance(0.3)) parts.push(genSeparator(rng));
      const frame = genFrame(rng).bytes;
      parts.push(frame);
      frames.push(frame);
    }
    const bytes = Buffer.concat(parts);
    const expected = texts(frames);
    for (let round = 0; round < 3; round++) {
      const { events } = feed(round === 0 ? [bytes] : randomCuts(rng, bytes), 65536);
      assert.deepEqual(requestFrameTexts(events), expected, `seed ${seed}: round ${round}`);
    }
    return { bytes: bytes.length * 3 };
  },

  /**
   * How TCP cuts the stream must not change which frames are read: the same
   * bytes give the same frames whole or cut anywhere, even when stray bytes
   * (with `"` and `{` among them) are cut by a read. (Found by this fuzzing: a
   * stray run used to end at the end of a read, so a `"` or `{` starting the
   * next read opened a frame that swallowed the valid frames after it.)
   */
  'segmentation-invariance'(seed) {
    const rng = new Rng(seed);
    const parts = [genFrame(rng).bytes];
    for (let n = 3 + rng.int(12); n > 0; n--) {
      // Stray garbage (it starts with a byte that cannot start a frame), with quotes and braces inside.
      const garbage = Buffer.from(
        Array.from({ length: 2 + rng.int(10) }, (_, i) =>
          i === 0 ? 0x78 : rng.pick([0x78, 0x20, 0x22, 0x7b, 0x7d, 0x5d, 0x0a, 0x00, 0xff]),
        ),
      );
      parts.push(garbage, genFrame(rng).bytes);
    }
    const bytes = Buffer.concat(parts);
    const whole = requestFrameTexts(feed([bytes], 65536).events);
    for (let round = 0; round < 3; round++) {
      const cut = requestFrameTexts(feed(randomCuts(rng, bytes), 65536).events);
      assert.deepEqual(cut, whole, `seed ${seed}: round ${round}`);
    }
    return { bytes: bytes.length * 4 };
  },
};

/** Properties that fail because of a known, unfixed defect: run by bench/fuzz.js only with --all. None at present. */
const KNOWN_DEFECTS = new Set([]);

/** Runs `property` for `cases` case seeds derived from `seed`; returns counts, throws the first failure. */
function runProperty(name, seed, cases) {
  let bytes = 0;
  for (let i = 0; i < cases; i++) bytes += PROPERTIES[name](caseSeed(seed, i)).bytes;
  return { cases, bytes };
}

// ---- over TCP ----------------------------------------------------------------

function connect(port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' }, () => {
      socket.off('error', reject);
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** One turn of the event loop. */
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

/** Resolves once what `socket` was given so far is in the kernel (or the socket is gone). */
const flushed = (socket) =>
  new Promise((resolve) => (socket.destroyed ? resolve() : socket.write('', () => resolve())));

/**
 * Writes `reads` one by one, now and then yielding to the event loop or waiting until what was written is in
 * the kernel (so that the next write is likely a TCP segment of its own).
 */
async function writeInPieces(rng, socket, reads) {
  for (const read of reads) {
    if (socket.destroyed) return;
    socket.write(read);
    if (rng.chance(0.2)) await (rng.chance(0.3) ? flushed(socket) : nextTurn());
  }
}

/**
 * A connection's stream: valid frames `[id, id, payload]` (each answers with
 * its own payload, so the replies are known in advance) with garbage between
 * them that follows the resynchronisation rule (genNewlineGarbage,
 * genQuietGarbage). Returns the bytes and the exact reply bytes expected.
 */
function genFuzzStream(rng, id, count) {
  const parts = [];
  const replies = [];
  for (let i = 0; i < count; i++) {
    if (i > 0 && rng.chance(0.6)) parts.push(rng.chance(0.5) ? genNewlineGarbage(rng) : genQuietGarbage(rng));
    parts.push(genSeparator(rng));
    const payload = genPayload(rng);
    parts.push(genFrame(rng, id, id, payload).bytes);
    replies.push(encodeReply(payload, 'text'));
  }
  return { bytes: Buffer.concat(parts), expected: Buffer.concat(replies), frames: count };
}

/** Hostile garbage of every kind, for connections whose replies are not checked. */
function genChaosStream(rng, maxFrameBytes) {
  const parts = [];
  if (rng.chance(0.7)) parts.push(genFrame(rng, 'chaos', 'chaos').bytes);
  for (let n = 4 + rng.int(16); n > 0; n--) parts.push(genHostile(rng, maxFrameBytes));
  return Buffer.concat(parts);
}

/**
 * One fuzz connection: sends its stream in random pieces and checks that the
 * reply bytes are exactly the expected ones (all frames answered, in order,
 * nothing for the garbage) and that the connection stays open.
 */
async function fuzzConnection(port, seed, id, { frames = 12, timeoutMs = 5000 } = {}) {
  const rng = new Rng(seed);
  const stream = genFuzzStream(rng, id, frames);
  // A last frame of ours: its reply comes after any reply the stream's bytes make, so once it is in,
  // nothing more may come for them.
  const last = `[${JSON.stringify(id)},${JSON.stringify(id)},"end of stream ${seed}"]`;
  const bytes = Buffer.concat([stream.bytes, Buffer.from(last)]);
  const expected = Buffer.concat([stream.expected, Buffer.from(`end of stream ${seed}`)]);
  const socket = await connect(port);
  const received = [];
  let receivedBytes = 0;
  let closed = false;
  socket.on('data', (chunk) => {
    received.push(chunk);
    receivedBytes += chunk.length;
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    closed = true;
  });
  try {
    await writeInPieces(rng, socket, randomCuts(rng, bytes));
    await waitFor(() => receivedBytes >= expected.length || closed, 'the replies', timeoutMs).catch(() => undefined);
    const got = Buffer.concat(received);
    if (!got.equals(expected)) {
      let at = 0;
      while (at < got.length && got[at] === expected[at]) at++;
      assert.fail(
        `seed ${seed} (id ${JSON.stringify(id)}): replies differ at byte ${at} of ${expected.length} (got ${got.length}): ` +
          `expected ${JSON.stringify(expected.subarray(at, at + 40).toString())}, got ${JSON.stringify(got.subarray(at, at + 40).toString())}`,
      );
    }
    assert.equal(closed, false, `seed ${seed}: the broker closed a connection that followed the rule`);
    return { frames, bytes: stream.bytes.length };
  } finally {
    socket.destroy();
  }
}

/** One chaos connection: sends hostile bytes in random pieces; the broker may close it (oversize). */
async function chaosConnection(port, seed, maxFrameBytes) {
  const rng = new Rng(seed);
  const bytes = genChaosStream(rng, maxFrameBytes);
  const socket = await connect(port);
  socket.on('data', () => {});
  socket.on('error', () => {});
  try {
    await writeInPieces(rng, socket, randomCuts(rng, bytes));
    // Every byte in: the broker reads them all before this end of the stream, then closes (or has closed) it.
    socket.end();
    await waitFor(() => socket.destroyed, 'the broker to close the chaos connection', 2000).catch(() => undefined);
    return { bytes: bytes.length };
  } finally {
    socket.destroy();
  }
}

/**
 * A well-behaved device in lockstep (`[id, id, "n<seq>"]`, wait, check the
 * reply) until `isDone()`; returns how many correct replies it got. Throws on
 * a wrong or missing reply. `onReply(latencyMs)` is called for each reply.
 *
 * @param {number} port
 * @param {string} id
 * @param {() => boolean} isDone
 * @param {{ replyTimeoutMs?: number, onReply?: (latencyMs: number) => void }} [options]
 */
async function lockstepDevice(port, id, isDone, { replyTimeoutMs = 2000, onReply } = {}) {
  const socket = await connect(port);
  socket.on('error', () => {});
  let wake;
  let buffered = '';
  socket.on('data', (chunk) => {
    buffered += chunk.toString('utf8');
    if (wake) wake();
  });
  socket.on('close', () => {
    if (wake) wake();
  });
  const nextData = () =>
    new Promise((resolve) => {
      const timer = setTimeout(() => wake(), 50);
      wake = () => {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      };
    });
  const frameId = JSON.stringify(id);
  let count = 0;
  try {
    while (!isDone()) {
      const payload = `n${count}`;
      buffered = '';
      const sent = performance.now();
      socket.write(`[${frameId},${frameId},"${payload}"]`);
      const until = Date.now() + replyTimeoutMs;
      while (buffered.length < payload.length) {
        if (socket.destroyed || Date.now() > until)
          throw new Error(`lockstep device ${id}: no reply to request ${count}`);
        await nextData();
      }
      assert.equal(buffered, payload, `lockstep device ${id}: reply to request ${count}`);
      if (onReply) onReply(performance.now() - sent);
      count++;
    }
    return count;
  } finally {
    socket.destroy();
  }
}

module.exports = {
  mulberry32,
  Rng,
  caseSeed,
  genId,
  genPayload,
  genFrame,
  frameOfSize,
  genSeparator,
  genValidStream,
  genNewlineGarbage,
  genQuietGarbage,
  genHostile,
  HOSTILE_KINDS,
  mutate,
  randomCuts,
  feed,
  frameTexts,
  requestFrameTexts,
  PROPERTIES,
  KNOWN_DEFECTS,
  runProperty,
  connect,
  pause,
  genFuzzStream,
  genChaosStream,
  fuzzConnection,
  chaosConnection,
  lockstepDevice,
  parseRequest,
  isRequest,
};

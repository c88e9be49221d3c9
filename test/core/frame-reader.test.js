'use strict';
const assert = require('node:assert/strict');
const { FrameReader } = require('../../dist/protocol/frame-reader');

/** Feeds `reads` (strings or Buffers) to a reader and returns what came out, in order. */
function read(reads, maxFrameBytes = 65536) {
  const out = [];
  // heldCapacity is @internal (for white-box tests; the published types leave it out).
  const reader = /** @type {FrameReader & { heldCapacity: number }} */ (
    new FrameReader(
      {
        onFrame: (bytes) => out.push(['frame', bytes.toString('utf8')]),
        onRaw: (bytes) => out.push(['raw', bytes.toString('utf8')]),
        onStray: (bytes) => out.push(['stray', bytes.toString('utf8')]),
        onOversize: (size) => out.push(['oversize', size]),
      },
      maxFrameBytes,
    )
  );
  for (const chunk of reads) reader.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return { out, reader };
}

const frames = (...texts) => texts.map((t) => ['frame', t]);

describe('frame reader', function () {
  it('reads one frame in one read', function () {
    assert.deepEqual(read(['[1,1,"26.5"]']).out, frames('[1,1,"26.5"]'));
  });

  it('reads several frames in one read, in order', function () {
    assert.deepEqual(read(['[1,1,"a"][1,1,"b"][2,1,"c"]']).out, frames('[1,1,"a"]', '[1,1,"b"]', '[2,1,"c"]'));
  });

  it('skips whitespace and newlines between frames', function () {
    assert.deepEqual(
      read([' [1,1,"a"]\n[1,1,"b"]\r\n\t [1,1,"c"]\n']).out,
      frames('[1,1,"a"]', '[1,1,"b"]', '[1,1,"c"]'),
    );
  });

  it('joins a frame split over reads at every byte boundary', function () {
    const stream = Buffer.from('[1,1,"a"] [-1,"x","温度 ]["][2,9,{"t":[1,2]}]\n');
    const expected = frames('[1,1,"a"]', '[-1,"x","温度 ]["]', '[2,9,{"t":[1,2]}]');
    for (let cut = 1; cut < stream.length; cut++) {
      const { out } = read([stream.subarray(0, cut), stream.subarray(cut)]);
      assert.deepEqual(out, expected, `cut at byte ${cut}`);
    }
  });

  it('joins a frame that arrives one byte per read (UTF-8 split across reads)', function () {
    const stream = Buffer.from('[3,3,"温度 ok"]');
    const reads = [...stream].map((byte) => Buffer.from([byte]));
    assert.deepEqual(read(reads).out, frames('[3,3,"温度 ok"]'));
  });

  it('keeps brackets and escaped quotes inside strings', function () {
    const text = String.raw`[1,1,"a]\"[\\"]`;
    assert.deepEqual(read([text, '[1,1,"]]]"]']).out, frames(text, '[1,1,"]]]"]'));
  });

  it('reads objects and bare strings as frames (to be rejected by the parser)', function () {
    assert.deepEqual(read(['{"from":1}"just text"']).out, frames('{"from":1}', '"just text"'));
  });

  it('passes plain text on as raw lines without their line endings', function () {
    assert.deepEqual(read(['hello\r\nworld\n']).out, [
      ['raw', 'hello'],
      ['raw', 'world'],
    ]);
  });

  it('passes a chunk of plain text with no newline on as one raw message', function () {
    assert.deepEqual(read(['Hello 01Studio!', 'Hello again']).out, [
      ['raw', 'Hello 01Studio!'],
      ['raw', 'Hello again'],
    ]);
  });

  it('waits for the newline once a sender has shown it sends lines', function () {
    assert.deepEqual(read(['one\ntw', 'o\n']).out, [
      ['raw', 'one'],
      ['raw', 'two'],
    ]);
  });

  it('on a TCPMQ connection, ends stray bytes where the next request starts', function () {
    assert.deepEqual(read(['[1,1,"a"]', 'garbage[1,1,"b"]oops\n[1,1,"c"]']).out, [
      ['frame', '[1,1,"a"]'],
      ['stray', 'garbage'],
      ['frame', '[1,1,"b"]'],
      ['stray', 'oops'],
      ['frame', '[1,1,"c"]'],
    ]);
  });

  it('reads the same frames and one stray report however TCP cuts stray bytes', function () {
    const stream = Buffer.from('[1,1,"a"]xx{"y":"z[1,1,"q"]\n[1,1,"b"]');
    const whole = read([stream]).out;
    assert.deepEqual(whole, [
      ['frame', '[1,1,"a"]'],
      ['stray', 'xx{"y":"z'],
      ['frame', '[1,1,"q"]'],
      ['frame', '[1,1,"b"]'],
    ]);
    for (let cut = 1; cut < stream.length; cut++) {
      const out = read([stream.subarray(0, cut), stream.subarray(cut)]).out;
      assert.deepEqual(
        out.filter(([kind]) => kind === 'frame'),
        whole.filter(([kind]) => kind === 'frame'),
        `cut at ${cut}`,
      );
      assert.equal(out.filter(([kind]) => kind === 'stray').length, 1, `cut at ${cut}`);
    }
  });

  it('ends a frame at a control byte inside a string (invalid JSON) and reads on', function () {
    assert.deepEqual(read(['[1,1,"no end\n[1,1,"b"]', '[1,1,"c\u0000"]']).out, [
      ['frame', '[1,1,"no end'],
      ['frame', '[1,1,"b"]'],
      ['frame', '[1,1,"c'],
      ['stray', '\u0000"]'],
    ]);
  });

  it('holds a frame sent one byte per read in one buffer, not one per read', function () {
    const { reader } = read([...Buffer.from('[1,1,"' + 'x'.repeat(3000))].map((byte) => Buffer.from([byte])));
    assert.equal(reader.bufferedBytes, 3006);
    assert.ok(reader.heldCapacity <= 2 * 3006, `held buffer of ${reader.heldCapacity} bytes`);
  });

  it('on a plain-text connection, keeps lines that start with [ as text', function () {
    assert.deepEqual(read(['boot\n[INFO] ready\n']).out, [
      ['raw', 'boot'],
      ['raw', '[INFO] ready'],
    ]);
  });

  it('reports a frame over the limit once and reads nothing after it', function () {
    const { out, reader } = read(['[1,1,"' + 'x'.repeat(40), 'x'.repeat(40), '"][1,1,"a"]'], 64);
    assert.deepEqual(out, [['oversize', 86]]);
    assert.equal(reader.bufferedBytes, 0);
  });

  it('reports a complete frame over the limit', function () {
    assert.deepEqual(read(['[1,1,"' + 'x'.repeat(100) + '"]'], 64).out, [['oversize', 108]]);
  });

  it('accepts a frame exactly at the limit', function () {
    const frame = '[1,1,"' + 'x'.repeat(56) + '"]';
    assert.equal(frame.length, 64);
    assert.deepEqual(read([frame], 64).out, frames(frame));
  });

  it('holds no more than the unfinished frame', function () {
    const { reader } = read(['[1,1,"a"][1,1,"bc']);
    assert.equal(reader.bufferedBytes, 8);
  });
});

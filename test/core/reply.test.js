'use strict';
const assert = require('node:assert/strict');
const { encodeReply, emptyReply } = require('../../dist/protocol/reply');

const text = (value, format) => encodeReply(value, format).toString('utf8');

describe('reply encoding', function () {
  it('text dialect: strings bare, other values as JSON, empty as None', function () {
    assert.equal(text('26.545', 'text'), '26.545');
    assert.equal(text('温度', 'text'), '温度');
    assert.equal(text({ t: 21 }, 'text'), '{"t":21}');
    assert.equal(text(42, 'text'), '42');
    assert.equal(text(true, 'text'), 'true');
    assert.equal(emptyReply('text').toString(), 'None');
    assert.equal(text('', 'text'), 'None', 'zero bytes would leave the device waiting');
  });

  it('json dialect: everything as JSON, empty as null', function () {
    assert.equal(text('26.545', 'json'), '"26.545"');
    assert.equal(text('温度', 'json'), '"温度"');
    assert.equal(text({ t: 21 }, 'json'), '{"t":21}');
    assert.equal(text(42, 'json'), '42');
    assert.equal(emptyReply('json').toString(), 'null');
  });

  it('sends a Buffer written by a flow as its bytes, or as a JSON string', function () {
    assert.deepEqual(encodeReply(Buffer.from([0x41, 0x42]), 'text'), Buffer.from('AB'));
    assert.equal(text(Buffer.from('AB'), 'json'), '"AB"');
  });

  it('throws for a value with no JSON text (a circular object)', function () {
    const loop = {};
    loop.self = loop;
    assert.throws(() => encodeReply(loop, 'text'), /circular/i);
  });
});

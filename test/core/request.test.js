'use strict';
const assert = require('node:assert/strict');
const { canonicalId, parseRequest, parseAnyFrame, isRequest } = require('../../dist/protocol/request');

const parse = (text) => parseRequest(Buffer.from(text));

describe('request parsing', function () {
  it('names a number id by its JSON text and a string id as itself', function () {
    assert.equal(canonicalId(1), '1');
    assert.equal(canonicalId(-1), '-1');
    assert.equal(canonicalId(2.5), '2.5');
    assert.equal(canonicalId('1'), '1');
    assert.equal(canonicalId('cmd'), 'cmd');
  });

  it('refuses ids that are not numbers or strings', function () {
    for (const id of [null, true, {}, [], Infinity, NaN, undefined])
      assert.equal(canonicalId(id), undefined, String(id));
  });

  it('reads [from, want, payload] with canonical ids', function () {
    assert.deepEqual(parse('["1",-1,{"t":21}]'), { from: '1', want: '-1', payload: { t: 21 } });
    assert.deepEqual(parse('[3,3,"温度"]'), { from: '3', want: '3', payload: '温度' });
  });

  it('names why a frame is not a request', function () {
    const cases = {
      '[1,2]': 'not a three-element array',
      '[1,2,3,4]': 'not a three-element array',
      '{"from":1}': 'not a three-element array',
      '"[1,1,\\"a\\"]"': 'not a three-element array',
      '[{"id":1},1,"x"]': 'device ids must be numbers or strings',
      '[1,null,"x"]': 'device ids must be numbers or strings',
      '[1,1,x]': 'invalid JSON',
      '[1,1,"a"': 'invalid JSON',
      [`[1,1,${'['.repeat(40)}${']'.repeat(40)}]`]: 'payload nested deeper than 32 levels',
    };
    for (const [frame, reason] of Object.entries(cases)) {
      const parsed = parse(frame);
      assert.ok(!isRequest(parsed), frame);
      assert.match(parsed.reason, new RegExp(reason.replace(/[[\]]/g, '\\$&')), frame);
    }
  });

  it('reads the common frames without JSON.parse exactly as JSON.parse would', function () {
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const pick = (items) => items[Math.floor(random() * items.length)];
    const ids = [
      '0',
      '1',
      '-1',
      '42',
      '-0',
      '01',
      '1.0',
      '2.5',
      '1e3',
      '123456789012345',
      '1234567890123456',
      '"1"',
      '"cmd"',
      '"温度"',
      '"a\\"b"',
      '""',
      'true',
      'null',
      '{}',
    ];
    const payloads = [
      '"26.5"',
      '""',
      '"温度 ok"',
      '"a]["',
      '"tab\\tx"',
      '"quote\\""',
      '603',
      '{"t":21}',
      '[1,2]',
      'null',
      '"\\u0041"',
    ];
    const spaces = ['', ' ', '  '];
    for (let n = 0; n < 3000; n++) {
      const frame = `[${pick(spaces)}${pick(ids)}${pick(spaces)},${pick(spaces)}${pick(ids)}${pick(spaces)},${pick(spaces)}${pick(payloads)}${pick(spaces)}]`;
      const bytes = Buffer.from(frame);
      assert.deepEqual(parseRequest(bytes), parseAnyFrame(bytes), frame);
    }
  });
});

// The event-stream parser on its own: the same messages however the text is cut.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ChainlogError } from '../src/index.js';
import { MAX_LINE_CHARS, SseParser, type SseMessage } from '../src/sse.js';

const STREAM =
  ': open\n\n' +
  'id: 7\nevent: event\ndata: {"seq":7}\n\n' +
  ': keep-alive\n\n' +
  'id: 8\r\nevent: event\r\ndata: {"seq":8}\r\n\r\n' +
  'data: one\rdata: two\r\r' +
  'data:no-space\ndata\n\n' +
  'id: 9\nevent: event\n\n'; // no data line: dropped, as the format says

const EXPECTED: SseMessage[] = [
  { id: '7', event: 'event', data: '{"seq":7}' },
  { id: '8', event: 'event', data: '{"seq":8}' },
  { event: 'message', data: 'one\ntwo' },
  { event: 'message', data: 'no-space\n' },
];

test('sse: a whole stream parses to its messages, comments and data-less messages left out', () => {
  assert.deepEqual(new SseParser().push(STREAM), EXPECTED);
});

test('sse: cut at every position, the stream parses the same', () => {
  for (let cut = 0; cut <= STREAM.length; cut++) {
    const parser = new SseParser();
    const got = [...parser.push(STREAM.slice(0, cut)), ...parser.push(STREAM.slice(cut))];
    assert.deepEqual(got, EXPECTED, `cut at ${cut}`);
  }
});

test('sse: fed one character at a time, the stream parses the same', () => {
  const parser = new SseParser();
  const got = [...STREAM].flatMap((c) => parser.push(c));
  assert.deepEqual(got, EXPECTED);
});

test('sse: a line longer than the bound is refused, not buffered', () => {
  const parser = new SseParser();
  assert.throws(
    () => parser.push('data: ' + 'x'.repeat(MAX_LINE_CHARS)),
    (e: unknown) => e instanceof ChainlogError && e.code === 'bad_response',
  );
});

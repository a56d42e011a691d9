import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  SHOWN_MS, TypingSignal, nextExpiry, pruneTypists, typingText, withTypist,
} from '../../static/js/typing.js';
import { createFakeTime } from './fakes.mjs';

function signal() {
  const time = createFakeTime();
  return { time, typing: new TypingSignal({ now: time.now }) };
}

test('typing sends true at once, then at most every 3 s while the user keeps typing', () => {
  const { time, typing } = signal();
  assert.deepEqual(typing.input('room:general', 'h'), [{ key: 'room:general', typing: true }]);
  for (let i = 0; i < 29; i += 1) {
    time.advance(100);
    assert.deepEqual(typing.input('room:general', `h${'ello'.repeat(i)}`), [], `keystroke ${i}`);
  }
  time.advance(100); // 3 s after the first
  assert.deepEqual(typing.input('room:general', 'hello!'), [{ key: 'room:general', typing: true }]);
  time.advance(2999);
  assert.deepEqual(typing.input('room:general', 'hello!!'), []);
});

test('sending or clearing the text sends false, once, and only after a true', () => {
  const { typing } = signal();
  assert.deepEqual(typing.stop(), [], 'nothing was standing');
  assert.deepEqual(typing.input('room:general', ''), []);
  typing.input('room:general', 'hi');
  assert.deepEqual(typing.stop(), [{ key: 'room:general', typing: false }]);
  assert.deepEqual(typing.stop(), []);
  typing.input('room:general', 'hi');
  assert.deepEqual(typing.input('room:general', '   '), [{ key: 'room:general', typing: false }], 'cleared');
  assert.deepEqual(typing.input('room:general', 'again'), [{ key: 'room:general', typing: true }],
    'typing again right after a false is news');
});

test('turning to another conversation stops typing in the first', () => {
  const { typing } = signal();
  typing.input('room:general', 'hi');
  assert.deepEqual(typing.input('dm:g:bob', 'hi bob'), [
    { key: 'room:general', typing: false }, { key: 'dm:g:bob', typing: true },
  ]);
});

test('after a lost connection nothing is standing', () => {
  const { typing } = signal();
  typing.input('room:general', 'hi');
  typing.reset();
  assert.deepEqual(typing.stop(), []);
  assert.deepEqual(typing.input('room:general', 'hi'), [{ key: 'room:general', typing: true }]);
});

test('who is typing, in words', () => {
  assert.equal(typingText([]), '');
  assert.equal(typingText(['alice']), 'alice is typing…');
  assert.equal(typingText(['alice', 'bob']), 'alice and bob are typing…');
  assert.equal(typingText(['alice', 'bob', 'carol']), 'alice, bob and carol are typing…');
  assert.equal(typingText(['a', 'b', 'c', 'd']), 'Several people are typing…');
});

test('typists come and go without changing the map they are given; they expire', () => {
  const none = new Map();
  const one = withTypist(none, 'g:a', 'alice', true, 1000 + SHOWN_MS);
  assert.equal(none.size, 0);
  const two = withTypist(one, 'g:b', 'bob', true, 2000 + SHOWN_MS);
  assert.deepEqual([...two.keys()], ['g:a', 'g:b']);
  assert.equal(nextExpiry(two), 1000 + SHOWN_MS);
  assert.equal(nextExpiry(none), null);
  assert.equal(withTypist(one, 'g:zz', 'z', false, 0), one, 'stopping a non-typist changes nothing');
  assert.deepEqual([...withTypist(two, 'g:a', 'alice', false, 0).keys()], ['g:b']);
  assert.equal(pruneTypists(two, 1000 + SHOWN_MS - 1), two);
  assert.deepEqual([...pruneTypists(two, 1000 + SHOWN_MS).keys()], ['g:b']);
  assert.equal(two.size, 2);
});

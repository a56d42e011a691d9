import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Outbox, OutboxFullError } from '../../static/js/outbox.js';
import { createFakeStorage } from './fakes.mjs';

const say = (cid, text = 'hi') => ({ type: 'say', room: 'general', text, cid });

test('keeps frames in the order queued until removed by cid', () => {
  const box = new Outbox({ limit: 10 });
  box.add(say('a'));
  box.add({ type: 'dm', to: 'bob', text: 'yo', cid: 'b' });
  box.add(say('c'));
  assert.deepEqual(box.entries().map((e) => e.frame.cid), ['a', 'b', 'c']);
  assert.equal(box.remove('b').frame.text, 'yo');
  assert.equal(box.remove('b'), null, 'a second ack finds nothing');
  assert.deepEqual(box.entries().map((e) => e.frame.cid), ['a', 'c']);
  assert.equal(box.size, 2);
});

test('adding the same cid twice keeps one entry', () => {
  const box = new Outbox({ limit: 10 });
  box.add(say('a'));
  box.add(say('a'));
  assert.equal(box.size, 1);
});

test('is bounded: a full outbox throws OutboxFullError and keeps what it has', () => {
  const box = new Outbox({ limit: 3 });
  for (const cid of ['a', 'b', 'c']) box.add(say(cid));
  assert.throws(() => box.add(say('d')), (err) => {
    assert.ok(err instanceof OutboxFullError);
    assert.equal(err.code, 'outbox_full');
    assert.match(err.message, /3/);
    return true;
  });
  assert.deepEqual(box.entries().map((e) => e.frame.cid), ['a', 'b', 'c']);
  box.remove('a');
  box.add(say('d'));
  assert.equal(box.size, 3);
});

test('survives a reload through storage', () => {
  const storage = createFakeStorage();
  const first = new Outbox({ limit: 10, storage, key: 'k', now: () => 1234 });
  first.add(say('a', 'one'));
  first.add(say('b', 'two'));
  first.remove('a');
  const second = new Outbox({ limit: 10, storage, key: 'k' });
  assert.deepEqual(second.entries(), [{ frame: say('b', 'two'), queuedAt: 1234 }]);
  second.remove('b');
  assert.equal(storage.getItem('k'), null, 'an empty outbox leaves no key behind');
});

test('keys are separate (one outbox per user)', () => {
  const storage = createFakeStorage();
  new Outbox({ limit: 10, storage, key: 'alice' }).add(say('a'));
  assert.equal(new Outbox({ limit: 10, storage, key: 'bob' }).size, 0);
});

test('ignores corrupt storage and invalid entries', () => {
  const broken = createFakeStorage({ k: '{not json' });
  assert.equal(new Outbox({ limit: 10, storage: broken, key: 'k' }).size, 0);
  const mixed = createFakeStorage({
    k: JSON.stringify([{ frame: say('ok') }, { frame: { type: 'join', room: 'x' } }, null, { frame: { type: 'say' } }]),
  });
  assert.deepEqual(new Outbox({ limit: 10, storage: mixed, key: 'k' }).entries().map((e) => e.frame.cid), ['ok']);
});

test('storage that throws (quota, privacy mode) does not break sending', () => {
  const storage = {
    getItem() { throw new Error('SecurityError'); },
    setItem() { throw new Error('QuotaExceededError'); },
    removeItem() { throw new Error('SecurityError'); },
  };
  const box = new Outbox({ limit: 10, storage });
  box.add(say('a'));
  assert.equal(box.size, 1);
});

test('refuses frames without a cid and a bad limit', () => {
  const box = new Outbox({ limit: 10 });
  assert.throws(() => box.add({ type: 'say', room: 'x', text: 'y' }), TypeError);
  assert.throws(() => new Outbox({ limit: 0 }), /outbox_limit/);
});

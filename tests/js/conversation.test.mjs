import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Conversation, conversationKeyOf, dmKey, roomKey } from '../../static/js/conversation.js';

const msg = (id, extra = {}) => ({ type: 'message', id, room: 'general', from: 'bob', text: `m${id}`, ts: id, ...extra });
const ids = (conv) => conv.messages().map((m) => m.id);

test('shows messages in id order whatever order they arrive in', () => {
  const conv = new Conversation(roomKey('general'));
  for (const id of [5, 2, 9, 1, 7]) conv.add(msg(id));
  assert.deepEqual(ids(conv), [1, 2, 5, 7, 9]);
  assert.equal(conv.oldestId, 1);
  assert.equal(conv.newestId, 9);
});

test('shows each message once (live, recovery and history overlap)', () => {
  const conv = new Conversation(roomKey('general'));
  assert.equal(conv.add(msg(3)), true);
  assert.equal(conv.add(msg(3)), false);
  assert.equal(conv.addAll([msg(1), msg(2), msg(3), msg(4)]), 3);
  assert.equal(conv.addAll([msg(4), msg(3)]), 0);
  assert.deepEqual(ids(conv), [1, 2, 3, 4]);
});

test('a pending message stays after the confirmed ones until its ack replaces it', () => {
  const conv = new Conversation(roomKey('general'));
  conv.add(msg(1));
  conv.addPending({ cid: 'c1', from: 'alice', room: 'general', text: 'mine', ts: 5 });
  conv.add(msg(2));
  let list = conv.messages();
  assert.deepEqual(list.map((m) => [m.id, m.pending]), [[1, false], [2, false], [null, true]]);
  assert.equal(conv.confirm('c1', { id: 3, ts: 6 }), true);
  list = conv.messages();
  assert.deepEqual(list.map((m) => [m.id, m.pending, m.text]), [[1, false, 'm1'], [2, false, 'm2'], [3, false, 'mine']]);
  // The same message coming back in a recovery is not shown twice.
  assert.equal(conv.add(msg(3, { from: 'alice', text: 'mine', cid: 'c1' })), false);
  assert.equal(conv.messages().length, 3);
});

test('an echo (my other tab, or recovery before the ack) replaces the pending one by cid', () => {
  const conv = new Conversation(roomKey('general'));
  conv.addPending({ cid: 'c1', from: 'alice', room: 'general', text: 'mine', ts: 5 });
  assert.equal(conv.add(msg(8, { from: 'alice', text: 'mine', cid: 'c1' })), true);
  assert.deepEqual(conv.messages().map((m) => [m.id, m.pending]), [[8, false]]);
  assert.equal(conv.confirm('c1', { id: 8, ts: 5 }), false, 'the late ack changes nothing');
  assert.equal(conv.messages().length, 1);
});

test("someone else's message with the same cid does not replace my pending one", () => {
  const conv = new Conversation(roomKey('general'));
  conv.addPending({ cid: 'c1', from: 'alice', room: 'general', text: 'mine', ts: 5 });
  conv.add(msg(4, { from: 'bob', cid: 'c1' }));
  assert.deepEqual(conv.messages().map((m) => [m.id, m.pending]), [[4, false], [null, true]]);
});

test('a failed message stays visible, marked, until discarded', () => {
  const conv = new Conversation(dmKey('bob'));
  conv.addPending({ cid: 'c1', from: 'alice', to: 'bob', text: 'x'.repeat(9999), ts: 1 });
  assert.equal(conv.fail('c1', 'too_long'), true);
  assert.equal(conv.messages()[0].failed, 'too_long');
  conv.discard('c1');
  assert.equal(conv.messages().length, 0);
});

test('reset() forgets confirmed messages but keeps pending ones', () => {
  const conv = new Conversation(roomKey('general'));
  conv.addAll([msg(1), msg(2)]);
  conv.addPending({ cid: 'c1', from: 'alice', room: 'general', text: 'mine', ts: 5 });
  conv.reset();
  assert.deepEqual(conv.messages().map((m) => m.cid), ['c1']);
  assert.equal(conv.more, true);
});

test('conversation keys: rooms by name, direct messages by partner', () => {
  assert.equal(conversationKeyOf({ room: 'general', from: 'bob' }, 'alice'), 'room:general');
  assert.equal(conversationKeyOf({ from: 'bob', to: 'alice' }, 'alice'), 'dm:bob');
  assert.equal(conversationKeyOf({ from: 'alice', to: 'bob' }, 'alice'), 'dm:bob', 'my own DM from another tab');
});

const edit = (id, target, text, extra = {}) => ({ type: 'edit', id, target, room: 'general', from: 'bob', text, ts: id, ...extra });
const del = (id, target, extra = {}) => ({ type: 'delete', id, target, room: 'general', from: 'bob', text: '', ts: id, ...extra });

test('an edit changes its message’s text and marks it edited; a deletion empties it for good', () => {
  const conv = new Conversation(roomKey('general'));
  conv.addAll([msg(1), msg(2)]);
  const before = conv.clone();
  assert.equal(conv.applyEvent(edit(3, 1, 'better')), true);
  assert.deepEqual([conv.get(1).text, conv.get(1).edited], ['better', 3]);
  assert.equal(before.get(1).text, 'm1', 'a clone keeps its version');
  assert.equal(conv.applyEvent(del(4, 1, { by: 'operator' })), true);
  assert.deepEqual([conv.get(1).text, conv.get(1).deleted, conv.get(1).by], ['', true, 'operator']);
  assert.equal(conv.applyEvent(edit(5, 1, 'back?')), false, 'a deleted message stays deleted');
  assert.equal(conv.messages()[0], conv.get(1), 'the ordered list shows the new version');
  assert.deepEqual(ids(conv), [1, 2]);
});

test('events apply once, in order; one for a message not here is ignored', () => {
  const conv = new Conversation(roomKey('general'));
  conv.add(msg(1));
  assert.equal(conv.applyEvent(edit(3, 1, 'second')), true);
  assert.equal(conv.applyEvent(edit(2, 1, 'first')), false, 'older than the version shown');
  assert.equal(conv.applyEvent(edit(3, 1, 'second')), false, 'the same event again');
  assert.equal(conv.get(1).text, 'second');
  assert.equal(conv.applyEvent(edit(9, 99, 'nobody')), false);
  assert.equal(conv.applyEvent({ type: 'other', id: 10, target: 1 }), false);
});

test('a message arriving in a later version (edited or deleted) replaces the one shown', () => {
  const conv = new Conversation(roomKey('general'));
  conv.add(msg(1));
  assert.equal(conv.add(msg(1, { text: 'fixed', edited: 7 })), false, 'not new');
  assert.deepEqual([conv.get(1).text, conv.get(1).edited], ['fixed', 7]);
  conv.add(msg(1, { text: '', deleted: true }));
  assert.equal(conv.get(1).deleted, true);
  conv.add(msg(1, { text: 'm1' }));
  assert.equal(conv.get(1).deleted, true, 'an old copy cannot bring it back');
  const fresh = new Conversation(roomKey('general'));
  fresh.add(msg(2, { text: 'new text', edited: 9 }));
  assert.equal(fresh.get(2).edited, 9, 'arrives edited');
});

test('a failed message keeps the server’s reason', () => {
  const conv = new Conversation(roomKey('general'));
  conv.addPending({ cid: 'c1', from: 'alice', room: 'general', text: 'hi', ts: 1 });
  conv.fail('c1', 'muted', 'you are muted in general until 12:00: spam');
  const [failed] = conv.messages();
  assert.deepEqual([failed.failed, failed.failedReason], ['muted', 'you are muted in general until 12:00: spam']);
});

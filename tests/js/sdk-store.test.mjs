import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ChatStore, chatStore } from '../../static/sdk/store.js';
import { fakeConnection } from './connection-fixture.mjs';
import { createFakeStorage } from './fakes.mjs';

const BOB = 'g:bob';

/** A store over a fake connection, counting its notifications. */
function setup(options) {
  const ctx = fakeConnection(options);
  const store = new ChatStore(ctx.conn);
  let notified = 0;
  store.subscribe(() => {
    notified += 1;
  });
  return { ...ctx, store, notified: () => notified, snap: () => store.getSnapshot() };
}

function open(ctx, rooms = ['general']) {
  for (const room of rooms) ctx.store.join(room);
  ctx.conn.connect();
  const ws = ctx.WS.last;
  ws.welcome({ interval: 3600, timeout: 7200 });
  return ws;
}

const joined = (room, fields = {}) => ({
  type: 'joined', room, members: ['alice', BOB], names: { alice: 'alice', [BOB]: 'bob' },
  messages: [], truncated: false, topic: '', private: false, owner: null, ...fields,
});
const roomOf = (snap, name) => snap.rooms.find((r) => r.name === name);
const texts = (room) => room.messages.map((m) => `${m.text}${m.pending ? ' (pending)' : ''}${m.failed ? ` (${m.failed})` : ''}`);

test('one store per connection; before connecting it has the rooms and the unsent messages it was given', () => {
  const storage = createFakeStorage({
    'imserver.outbox': JSON.stringify([{ frame: { type: 'say', room: 'general', text: 'from before', cid: 'old' }, queuedAt: 1 }]),
  });
  const { conn, WS } = fakeConnection({ storage });
  conn.join('general');
  const store = chatStore(conn);
  assert.equal(chatStore(conn), store);
  const snap = store.getSnapshot();
  assert.equal(snap.state, 'stopped');
  assert.equal(snap.user, null);
  assert.deepEqual(snap.outbox, { size: 1, limit: 200 });
  assert.deepEqual(snap.rooms.map((r) => [r.name, r.joined]), [['general', false]]);
  assert.deepEqual(texts(snap.rooms[0]), ['from before (pending)']);
  assert.equal(snap.rooms[0].messages[0].from, null, 'no user before the welcome');
  assert.ok(Object.isFrozen(snap) && Object.isFrozen(snap.rooms[0]));
  // The welcome names me: my queued message is mine.
  conn.connect();
  const ws = WS.last;
  ws.welcome();
  const mine = store.getSnapshot().rooms[0].messages[0];
  assert.deepEqual([mine.from, mine.name, mine.pending], ['alice', 'alice', true]);
  ws.serverSend({ type: 'ack', cid: 'old', id: 3, ts: 5 });
  assert.deepEqual(store.getSnapshot().rooms[0].messages.map((m) => [m.id, m.pending, m.from]), [[3, false, 'alice']]);
});

test('open: the user, the room as joined says, and its members by name', () => {
  const ctx = setup();
  const ws = open(ctx);
  assert.equal(ctx.snap().state, 'open');
  assert.equal(ctx.snap().status.state, 'open');
  assert.deepEqual(ctx.snap().user, { id: 'alice', name: 'alice' });
  ws.serverSend(joined('general', {
    topic: 'all', owner: 'alice', messages: [{ id: 1, room: 'general', from: BOB, name: 'bob', text: 'hi', ts: 1 }],
  }));
  const room = roomOf(ctx.snap(), 'general');
  assert.deepEqual({ ...room, messages: texts(room) }, {
    name: 'general', joined: true, members: ['alice', BOB], topic: 'all', private: false, owner: 'alice',
    messages: ['hi'], more: true, loadingOlder: false, refused: null,
  });
  assert.equal(ctx.snap().names.of(BOB), 'bob');
  ws.serverSend({ type: 'presence', room: 'general', joined: ['g:carol'], left: [BOB], names: { 'g:carol': 'carol' } });
  assert.deepEqual(roomOf(ctx.snap(), 'general').members, ['alice', 'g:carol']);
  assert.equal(ctx.snap().names.of('g:carol'), 'carol');
});

test('send: pending at once, acknowledged in place; other rooms keep their identity', () => {
  const ctx = setup();
  const ws = open(ctx, ['general', 'dev']);
  ws.serverSend(joined('general'));
  ws.serverSend(joined('dev'));
  const before = ctx.snap();
  const cid = ctx.store.send('general', 'hello');
  assert.deepEqual(ws.frames.at(-1), { type: 'say', room: 'general', text: 'hello', cid });
  const after = ctx.snap();
  assert.notEqual(after, before);
  assert.equal(roomOf(after, 'dev'), roomOf(before, 'dev'));
  assert.deepEqual(texts(roomOf(after, 'general')), ['hello (pending)']);
  assert.deepEqual(after.outbox, { size: 1, limit: 200 });
  ws.serverSend({ type: 'message', id: 7, room: 'general', from: BOB, name: 'bob', text: 'yo', ts: 2 });
  ws.serverSend({ type: 'ack', cid, id: 8, ts: 3 });
  const room = roomOf(ctx.snap(), 'general');
  assert.deepEqual(texts(room), ['yo', 'hello']);
  assert.deepEqual(room.messages.map((m) => m.id), [7, 8]);
  assert.equal(ctx.snap().outbox.size, 0);
  // Edits and deletions change the message shown.
  ws.serverSend({ type: 'edit', id: 9, target: 7, room: 'general', from: BOB, text: 'yo!', ts: 4 });
  ws.serverSend({ type: 'delete', id: 10, target: 8, room: 'general', from: 'alice', text: '', ts: 5 });
  assert.deepEqual(roomOf(ctx.snap(), 'general').messages.map((m) => [m.text, Boolean(m.deleted)]), [['yo!', false], ['', true]]);
});

test('a message refused for good is marked failed until discarded', () => {
  const ctx = setup();
  const ws = open(ctx);
  const cid = ctx.store.send('general', 'shh');
  ws.serverSend({ type: 'error', code: 'muted', message: 'muted until noon', cid });
  const [message] = roomOf(ctx.snap(), 'general').messages;
  assert.deepEqual([message.failed, message.failedReason], ['muted', 'muted until noon']);
  ctx.store.discard(cid);
  assert.deepEqual(roomOf(ctx.snap(), 'general').messages, []);
});

test('a refused join says why; joining again clears it; a room removed or left is gone', () => {
  const ctx = setup();
  const ws = open(ctx, ['general', 'secret']);
  ws.serverSend({ type: 'error', code: 'forbidden', room: 'secret', message: 'room secret is private' });
  assert.deepEqual(roomOf(ctx.snap(), 'secret').refused, { code: 'forbidden', message: 'room secret is private' });
  ctx.store.join('secret');
  assert.equal(roomOf(ctx.snap(), 'secret').refused, null);
  assert.equal(ws.frames.filter((f) => f.type === 'join' && f.room === 'secret').length, 2);
  ws.serverSend({ type: 'left', room: 'secret', reason: 'removed' });
  ctx.store.leave('general');
  assert.deepEqual(ctx.snap().rooms, []);
  assert.deepEqual(ws.frames.at(-1), { type: 'leave', room: 'general' });
});

test('older messages on demand; a lost connection unjoins the rooms until they are joined again', () => {
  const ctx = setup();
  const ws = open(ctx);
  ws.serverSend(joined('general', { messages: [{ id: 50, room: 'general', from: BOB, text: 'late', ts: 1 }] }));
  assert.equal(ctx.store.loadOlder('general'), true);
  assert.equal(ctx.store.loadOlder('general'), false, 'one page at a time');
  assert.deepEqual(ws.frames.at(-1), { type: 'history', room: 'general', limit: 50, before: 50 });
  assert.equal(roomOf(ctx.snap(), 'general').loadingOlder, true);
  ws.serverSend({ type: 'history', room: 'general', messages: [{ id: 40, room: 'general', from: BOB, text: 'early', ts: 0 }], more: false });
  assert.deepEqual(texts(roomOf(ctx.snap(), 'general')), ['early', 'late']);
  assert.equal(roomOf(ctx.snap(), 'general').more, false);

  ws.serverClose(1006);
  assert.equal(ctx.snap().state, 'waiting');
  assert.equal(typeof ctx.snap().status.reconnectAt, 'number');
  assert.equal(roomOf(ctx.snap(), 'general').joined, false);
  assert.deepEqual(texts(roomOf(ctx.snap(), 'general')), ['early', 'late'], 'the messages stay');
  assert.equal(ctx.store.loadOlder('general'), false, 'not while disconnected');
});

test('frames that change nothing here make no new snapshot', () => {
  const ctx = setup();
  const ws = open(ctx);
  const count = ctx.notified();
  const snap = ctx.snap();
  ws.serverSend('pong');
  ws.serverSend({ type: 'typing', room: 'general', user: BOB, typing: true });
  ws.serverSend({ type: 'message', id: 3, room: 'elsewhere', from: BOB, text: 'x', ts: 1 });
  assert.equal(ctx.notified(), count);
  assert.equal(ctx.snap(), snap);
});

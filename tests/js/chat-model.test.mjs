import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  ACTIONS, currentEntry, initialState, labelOf, loadOlderOf, memberIds, reduce, roomsOf, statusOfState,
  totalUnread,
} from '../../static/js/model.js';

const ME = { id: 'g:me', name: 'alice' };
const BOB = 'g:bob';
const CAROL = 'g:carol';

const msg = (id, fields = {}) => ({
  type: 'message', id, room: 'general', from: BOB, name: 'bob', text: `m${id}`, ts: 1000 + id, ...fields,
});
const dm = (id, from, to, fields = {}) => ({
  type: 'message', id, from, to, name: from === ME.id ? 'alice' : 'bob', to_name: to === ME.id ? 'alice' : 'bob',
  text: `d${id}`, ts: 1000 + id, ...fields,
});

/** Frames (and actions) in, state out. */
const run = (state, ...actions) => actions.reduce(reduce, state);

function session(options = {}) {
  return reduce(initialState(), { type: ACTIONS.SESSION, user: ME, rooms: ['general'], pending: [], ...options });
}

const welcome = { type: 'welcome', conn: 'c1', user: ME, heartbeat: { interval: 10, timeout: 20 }, server_time: 1 };
const joined = (messages = [], fields = {}) => ({
  type: 'joined', room: 'general', members: [ME.id, BOB], names: { [ME.id]: 'alice', [BOB]: 'bob' },
  messages, truncated: false, ...fields,
});
const ids = (state, key = 'room:general') => state.conversations.get(key).conv.messages().map((m) => m.id);

test('a session opens its rooms and shows the first; the state before has nothing', () => {
  const empty = initialState();
  assert.equal(empty.me, null);
  assert.equal(statusOfState(empty), null);
  const state = session({ rooms: ['general', 'dev'] });
  assert.deepEqual(roomsOf(state), ['general', 'dev']);
  assert.equal(state.current, 'room:general');
  assert.equal(currentEntry(state).loaded, false);
  assert.equal(state.names.of(ME.id), 'alice');
});

test('messages still in the outbox are shown as pending, and their rooms kept', () => {
  const pending = [
    { frame: { type: 'say', room: 'random', text: 'hi', cid: 'c1' }, queuedAt: 5000 },
    { frame: { type: 'dm', to: BOB, text: 'psst', cid: 'c2' }, queuedAt: 6000 },
  ];
  const state = session({ pending });
  assert.deepEqual(roomsOf(state), ['general', 'random']);
  const [shown] = state.conversations.get('room:random').conv.messages();
  assert.equal(shown.pending, true);
  assert.equal(shown.from, ME.id);
  assert.equal(shown.ts, 5);
  assert.equal(state.conversations.get(`dm:${BOB}`).conv.pendingCount, 1);
});

test('welcome changes no conversation; the connection state comes from statechange', () => {
  const before = session();
  const after = reduce(before, welcome);
  assert.equal(after.conversations, before.conversations);
  const open = reduce(after, { type: ACTIONS.CONNECTION, state: 'open', attempt: 0, attempts: 10 });
  assert.equal(statusOfState(open), 'connected');
  const waiting = reduce(open, { type: ACTIONS.CONNECTION, state: 'waiting', attempt: 2, attempts: 10, reconnectAt: 9 });
  assert.equal(statusOfState(waiting), 'reconnecting');
  assert.equal(waiting.connection.reconnectAt, 9);
  assert.equal(statusOfState(reduce(waiting, { type: ACTIONS.ONLINE, online: false })), 'offline');
});

test('joined with a backlog: members with names, the messages, more pages; not counted unread', () => {
  const state = run(session(), welcome, joined([msg(5), msg(7)]));
  const entry = currentEntry(state);
  assert.deepEqual([...entry.members], [ME.id, BOB]);
  assert.deepEqual(ids(state), [5, 7]);
  assert.equal(entry.loaded, true);
  assert.equal(entry.conv.more, true);
  assert.equal(entry.unread, 0);
  assert.equal(state.names.of(BOB), 'bob');
  assert.deepEqual(memberIds(state), [ME.id, BOB]);
  assert.deepEqual(loadOlderOf(state), { show: true, enabled: false, loading: false }, 'offline: not yet');
});

test('a re-join after a reconnect adds what was missed, once; a truncated one starts over', () => {
  let state = run(session(), joined([msg(5)]), { type: ACTIONS.VISIBILITY, hidden: true });
  state = run(state, joined([msg(5), msg(6)]));
  assert.deepEqual(ids(state), [5, 6]);
  assert.equal(currentEntry(state).unread, 1, 'in a hidden page, the missed message is unread');
  state = run(state, joined([msg(50)], { truncated: true }));
  assert.deepEqual(ids(state), [50]);
  assert.equal(currentEntry(state).conv.more, true, 'the gap can be loaded');
});

test('joined for a room the page has left is ignored', () => {
  const before = run(session(), { type: ACTIONS.LEAVE_ROOM, room: 'general' });
  assert.equal(before.current, null);
  const after = reduce(before, joined([msg(5)]));
  assert.equal(after.conversations.has('room:general'), false);
});

test('presence adds and removes members, and names them', () => {
  const state = run(session(), joined(), {
    type: 'presence', room: 'general', joined: [CAROL], left: [BOB], names: { [CAROL]: 'carol' },
  });
  assert.deepEqual(memberIds(state), [ME.id, CAROL]);
  assert.equal(state.names.of(CAROL), 'carol');
  assert.equal(reduce(state, { type: 'presence', room: 'elsewhere', joined: ['x'], left: [] }).conversations,
    state.conversations);
});

test('a live message: shown once, unread only where the user is not looking', () => {
  let state = run(session({ rooms: ['general', 'dev'] }), joined());
  state = run(state, msg(8), msg(8));
  assert.deepEqual(ids(state), [8]);
  assert.equal(currentEntry(state).unread, 0, 'looking at it');
  state = run(state, msg(9, { room: 'dev' }), msg(10, { room: 'dev' }), msg(11, { room: 'dev', from: ME.id }));
  assert.equal(state.conversations.get('room:dev').unread, 2, 'my own messages are never unread');
  assert.equal(totalUnread(state), 2);
  state = reduce(state, { type: ACTIONS.SELECT, key: 'room:dev' });
  assert.equal(totalUnread(state), 0);
  assert.equal(reduce(state, msg(12, { room: 'left-long-ago' })), state, 'a room the page left');
});

test('a direct message opens its conversation, keyed by the partner’s id, shown by name', () => {
  const state = run(session(), dm(20, BOB, ME.id));
  const entry = state.conversations.get(`dm:${BOB}`);
  assert.equal(entry.kind, 'dm');
  assert.equal(entry.unread, 1);
  assert.equal(entry.conv.more, true);
  assert.equal(labelOf(state, entry), 'bob');
  // My own message from another tab goes to the conversation with its recipient.
  const mine = reduce(state, dm(21, ME.id, CAROL, { to_name: 'carol' }));
  assert.equal(mine.conversations.get(`dm:${CAROL}`).unread, 0);
  assert.equal(mine.names.of(CAROL), 'carol');
});

test('send shows a pending message; its ack confirms it with the server’s id', () => {
  let state = run(session(), joined([msg(5)]));
  state = reduce(state, { type: ACTIONS.SEND, key: 'room:general', cid: 'c1', text: 'hello', ts: 99 });
  const [, pending] = currentEntry(state).conv.messages();
  assert.deepEqual([pending.pending, pending.text, pending.from, pending.room], [true, 'hello', ME.id, 'general']);
  state = reduce(state, { type: 'ack', cid: 'c1', id: 6, ts: 100 });
  const [, confirmed] = currentEntry(state).conv.messages();
  assert.deepEqual([confirmed.pending, confirmed.id, confirmed.ts], [false, 6, 100]);
  assert.equal(reduce(state, { type: 'ack', cid: 'unknown', id: 7, ts: 1 }).conversations, state.conversations);
});

test('a message refused for good is marked failed, flashed, and can be dismissed', () => {
  let state = reduce(session(), { type: ACTIONS.SEND, key: 'room:general', cid: 'c1', text: 'x', ts: 1 });
  state = reduce(state, { type: ACTIONS.FAILED, cid: 'c1', code: 'too_long', message: 'too long' });
  assert.equal(currentEntry(state).conv.messages()[0].failed, 'too_long');
  assert.deepEqual(state.flash, { id: 1, text: 'too long' });
  state = reduce(state, { type: ACTIONS.DISCARD, cid: 'c1' });
  assert.equal(currentEntry(state).conv.pendingCount, 0);
});

test('error frames: one without a cid is flashed; one with a cid is the connection’s', () => {
  const start = session();
  const limited = reduce(start, { type: 'error', code: 'rate_limited', message: 'slow down' });
  assert.equal(limited.flash.text, 'You are sending too fast; slow down a little.');
  const other = reduce(limited, { type: 'error', code: 'not_in_room', message: 'join first' });
  assert.deepEqual(other.flash, { id: 2, text: 'join first' });
  assert.equal(reduce(start, { type: 'error', code: 'rate_limited', cid: 'c1' }), start);
});

test('history pages fill in older messages and say whether there are more', () => {
  let state = run(session(), joined([msg(50)]));
  state = reduce(state, { type: ACTIONS.HISTORY_REQUESTED, key: 'room:general', before: 50 });
  assert.deepEqual(loadOlderOf(state), { show: true, enabled: false, loading: true });
  state = reduce(state, { type: 'history', room: 'general', messages: [msg(48), msg(49)], more: false });
  assert.deepEqual(ids(state), [48, 49, 50]);
  assert.equal(currentEntry(state).loadingOlder, false);
  assert.equal(loadOlderOf(state).show, false);
  // A direct conversation's page names the partner.
  state = run(state, { type: ACTIONS.OPEN_DM, user: CAROL }, {
    type: 'history', with: CAROL, messages: [dm(30, CAROL, ME.id, { name: 'carol' })], more: true,
  });
  assert.equal(currentEntry(state).loaded, true);
  assert.equal(labelOf(state, currentEntry(state)), 'carol');
  assert.equal(reduce(state, { type: 'history', room: 'nowhere', messages: [], more: false }).conversations,
    state.conversations);
});

test('dm_sync: the first answer is not unread, later ones are; a truncated one starts over', () => {
  let state = reduce(session(), { type: 'dm_sync', messages: [dm(3, BOB, ME.id), dm(4, ME.id, BOB)], truncated: false });
  const key = `dm:${BOB}`;
  assert.deepEqual(ids(state, key), [3, 4]);
  assert.equal(state.conversations.get(key).unread, 0);
  assert.equal(state.dmSynced, true);
  state = reduce(state, { type: 'dm_sync', messages: [dm(4, ME.id, BOB), dm(9, BOB, ME.id)], truncated: false });
  assert.deepEqual(ids(state, key), [3, 4, 9]);
  assert.equal(state.conversations.get(key).unread, 1);
  state = reduce(state, { type: 'dm_sync', messages: [dm(40, BOB, ME.id)], truncated: true });
  assert.deepEqual(ids(state, key), [40]);
});

test('bye and left change nothing the page shows', () => {
  const state = run(session(), joined([msg(5)]));
  assert.equal(reduce(state, { type: 'bye', reason: 'shutdown', retry_after: 3.2 }), state);
  assert.equal(reduce(state, { type: 'left', room: 'general' }), state);
  assert.equal(reduce(state, { type: 'something-newer' }), state);
});

test('leaving the room shown moves to another; a direct conversation with unsent messages stays', () => {
  let state = run(session({ rooms: ['general', 'dev'] }), { type: ACTIONS.OPEN_DM, user: BOB });
  assert.equal(state.current, `dm:${BOB}`);
  state = reduce(state, { type: ACTIONS.SEND, key: `dm:${BOB}`, cid: 'c1', text: 'hi', ts: 1 });
  assert.equal(reduce(state, { type: ACTIONS.CLOSE_DM, user: BOB }), state);
  state = reduce(state, { type: 'ack', cid: 'c1', id: 3, ts: 2 });
  state = reduce(state, { type: ACTIONS.CLOSE_DM, user: BOB });
  assert.equal(state.current, 'room:general');
  state = reduce(state, { type: ACTIONS.LEAVE_ROOM, room: 'general' });
  assert.equal(state.current, 'room:dev');
  state = reduce(state, { type: ACTIONS.JOIN_ROOM, room: 'general' });
  assert.deepEqual(roomsOf(state), ['dev', 'general']);
  assert.equal(state.current, 'room:general');
  assert.equal(reduce(state, { type: ACTIONS.OPEN_DM, user: ME.id }), state, 'no conversation with oneself');
});

test('reduce never changes the state it is given', () => {
  const before = run(session(), joined([msg(5)]), { type: 'dm_sync', messages: [dm(3, BOB, ME.id)], truncated: false });
  const snapshot = JSON.stringify([...before.conversations.values()].map((e) => [e.key, e.unread, e.conv.messages()]));
  const members = [...currentEntry(before).members];
  run(before, msg(6), { type: 'presence', room: 'general', joined: [CAROL], left: [BOB] },
    { type: ACTIONS.SEND, key: 'room:general', cid: 'c9', text: 'x', ts: 1 }, { type: 'ack', cid: 'c9', id: 7, ts: 2 },
    { type: 'dm_sync', messages: [], truncated: true }, dm(8, BOB, ME.id));
  assert.equal(JSON.stringify([...before.conversations.values()].map((e) => [e.key, e.unread, e.conv.messages()])), snapshot);
  assert.deepEqual([...currentEntry(before).members], members);
});

test('frames without a session, or after it ended, are ignored', () => {
  assert.equal(reduce(initialState(), msg(5)).conversations.size, 0);
  const ended = reduce(run(session(), joined([msg(5)])), { type: ACTIONS.END });
  assert.equal(ended.me, null);
  assert.equal(ended.conversations.size, 0);
});

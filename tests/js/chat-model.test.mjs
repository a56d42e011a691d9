import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  ACTIONS, canManage, changesByTarget, composerOf, currentEntry, initialState, labelOf, loadOlderOf, memberIds,
  membersNoteOf, nextTypingExpiry, readsToSend, reduce, roomsOf, statusOfState, totalUnread,
  typingNames,
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

// ---- conversations: read marks, typing, edits, rooms -------------------------

const open = { type: ACTIONS.CONNECTION, state: 'open', attempt: 0, attempts: 10 };
/** A welcome with the user's unread counts. */
const unread = (rooms = {}, direct = {}) => ({ ...welcome, unread: { rooms, direct } });
const entryOf = (state, key = 'room:general') => state.conversations.get(key);
const badges = (state) => Object.fromEntries([...state.conversations.values()].map((e) => [e.key, e.unread]));

test('unread counts come from the server after welcome, for rooms and direct conversations', () => {
  let state = run(session({ rooms: ['general', 'dev'] }), open, welcome);
  assert.deepEqual(readsToSend(state), [], 'nothing is sent to a server that keeps no read marks');
  assert.equal(state.speaks, false);
  state = reduce(state, unread({ general: { read: 10, unread: 0 }, dev: { read: 7, unread: 4 } },
    { [BOB]: { name: 'bob', read: 3, unread: 2 } }));
  assert.equal(state.speaks, true);
  assert.deepEqual(badges(state), { 'room:general': 0, 'room:dev': 4, [`dm:${BOB}`]: 2 });
  assert.equal(labelOf(state, entryOf(state, `dm:${BOB}`)), 'bob');
  // The recovery that follows brings the messages, not more unread ones.
  state = run(state, { type: 'dm_sync', messages: [dm(4, BOB, ME.id), dm(5, BOB, ME.id)], truncated: false },
    joined([msg(8), msg(9)], { room: 'dev', read: 7, unread: 4 }));
  assert.deepEqual(badges(state), { 'room:general': 0, 'room:dev': 4, [`dm:${BOB}`]: 2 });
});

test('a live message is unread unless mine, at or before my mark, or in view', () => {
  let state = run(session({ rooms: ['general', 'dev'] }), open, unread({ dev: { read: 20, unread: 0 } }),
    joined([], { read: 0, unread: 0 }), joined([], { room: 'dev', read: 20, unread: 0 }));
  state = run(state, msg(19, { room: 'dev' }), msg(21, { room: 'dev' }), msg(22, { room: 'dev', from: ME.id }));
  assert.equal(entryOf(state, 'room:dev').unread, 1);
  // In view (the current conversation, visible, at the bottom): read at once, the mark moves.
  state = reduce(state, msg(23));
  assert.equal(entryOf(state).unread, 0);
  assert.equal(entryOf(state).read, 23);
  // Scrolled up: counted, and read once back at the bottom.
  state = run(state, { type: ACTIONS.SCROLLED, atBottom: false }, msg(24), msg(25));
  assert.deepEqual([entryOf(state).unread, entryOf(state).read], [2, 23]);
  state = reduce(state, { type: ACTIONS.SCROLLED, atBottom: true });
  assert.deepEqual([entryOf(state).unread, entryOf(state).read], [0, 25]);
  // In a hidden page: counted, and read when shown again.
  state = run(state, { type: ACTIONS.VISIBILITY, hidden: true }, msg(26));
  assert.equal(entryOf(state).unread, 1);
  state = reduce(state, { type: ACTIONS.VISIBILITY, hidden: false });
  assert.deepEqual([entryOf(state).unread, entryOf(state).read], [0, 26]);
});

test('read marks are sent when further than the server knows, once each, and only while open', () => {
  let state = run(session(), open, unread({ general: { read: 5, unread: 2 } }),
    joined([msg(4), msg(5), msg(6), msg(7)], { read: 5, unread: 2 }));
  assert.equal(entryOf(state).unread, 0, 'in view');
  assert.deepEqual(readsToSend(state), [{ key: 'room:general', target: { room: 'general' }, id: 7 }]);
  state = reduce(state, { type: ACTIONS.READ_SENT, reads: readsToSend(state) });
  assert.deepEqual(readsToSend(state), []);
  state = run(state, { type: ACTIONS.CONNECTION, state: 'waiting', attempt: 1, attempts: 10 }, msg(8));
  assert.deepEqual(readsToSend(state), [], 'not while away');
  state = reduce(state, open);
  assert.deepEqual(readsToSend(state), [{ key: 'room:general', target: { room: 'general' }, id: 8 }]);
  // A direct conversation's mark names the partner.
  state = run(state, { type: ACTIONS.OPEN_DM, user: BOB }, {
    type: 'history', with: BOB, messages: [dm(30, BOB, ME.id)], more: false,
  });
  assert.deepEqual(readsToSend(state).map((r) => r.target), [{ room: 'general' }, { with: BOB }]);
});

test('reading on another device clears the badge here; a mark behind mine changes nothing', () => {
  let state = run(session({ rooms: ['general', 'dev'] }), open, welcome,
    unread({ general: { read: 1, unread: 0 }, dev: { read: 3, unread: 0 } }),
    joined([msg(1)], { read: 1, unread: 0 }), joined([msg(3)], { room: 'dev', read: 3, unread: 0 }),
    msg(4, { room: 'dev' }), msg(5, { room: 'dev' }));
  assert.equal(entryOf(state, 'room:dev').unread, 2);
  state = reduce(state, { type: 'read', room: 'dev', id: 5, unread: 0 });
  assert.deepEqual([entryOf(state, 'room:dev').unread, entryOf(state, 'room:dev').read], [0, 5]);
  assert.deepEqual(readsToSend(state), [], 'the server told us; nothing to tell it');
  assert.equal(reduce(state, { type: 'read', room: 'dev', id: 4, unread: 1 }).conversations.get('room:dev').unread,
    0, 'an older mark');
  state = run(state, { type: 'dm_sync', messages: [dm(9, BOB, ME.id)], truncated: false });
  state = reduce(state, { type: 'read', with: BOB, id: 9, unread: 0 });
  assert.equal(entryOf(state, `dm:${BOB}`).read, 9);
});

test('a mark read here while the server could not hear it is kept and sent again', () => {
  let state = run(session(), open, unread({ general: { read: 5, unread: 0 } }),
    joined([msg(5)], { read: 5, unread: 0 }));
  state = run(state, { type: ACTIONS.CONNECTION, state: 'waiting', attempt: 1, attempts: 10 }, msg(6), msg(7));
  assert.equal(entryOf(state).read, 7, 'read in view while away');
  // Back: the server still has 5, and counts 6 and 7.
  state = run(state, open, unread({ general: { read: 5, unread: 2 } }),
    joined([msg(6), msg(7)], { read: 5, unread: 2 }));
  assert.deepEqual([entryOf(state).read, entryOf(state).unread], [7, 0]);
  assert.deepEqual(readsToSend(state), [{ key: 'room:general', target: { room: 'general' }, id: 7 }]);
});

test('a welcome without counts (the store was slow): a joined with a read mark still says the server keeps them', () => {
  let state = run(session(), open, welcome);
  assert.equal(state.speaks, false);
  state = reduce(state, joined([msg(5), msg(6)], { read: 5, unread: 1 }));
  assert.equal(state.speaks, true);
  assert.deepEqual(readsToSend(state), [{ key: 'room:general', target: { room: 'general' }, id: 6 }]);
});

test('a direct conversation missing from `unread` has nothing unread', () => {
  let state = run(session(), dm(3, BOB, ME.id));
  assert.equal(entryOf(state, `dm:${BOB}`).unread, 1);
  state = reduce(state, unread({}, {}));
  assert.equal(entryOf(state, `dm:${BOB}`).unread, 0);
});

test('rooms the user is in elsewhere join the list; one left here does not come back', () => {
  let state = run(session(), { type: ACTIONS.JOIN_ROOM, room: 'dev' }, { type: ACTIONS.LEAVE_ROOM, room: 'dev' });
  assert.deepEqual(roomsOf(state), ['general']);
  state = reduce(state, unread({ general: { read: 0, unread: 0 }, dev: { read: 0, unread: 3 }, design: { read: 0, unread: 1 } }));
  assert.deepEqual(roomsOf(state), ['general', 'design']);
  assert.equal(state.current, 'room:general', 'the one shown stays');
  state = run(state, { type: ACTIONS.JOIN_ROOM, room: 'dev' }, unread({ dev: { read: 0, unread: 3 } }));
  assert.deepEqual(roomsOf(state), ['general', 'design', 'dev']);
});

test('typing: shown for others only, gone on false, on their message, when they leave, or after a while', () => {
  let state = run(session(), open, joined());
  state = reduce(state, { type: 'typing', room: 'general', user: BOB, name: 'bob', typing: true }, 1000);
  state = reduce(state, { type: 'typing', room: 'general', user: ME.id, name: 'alice', typing: true }, 1000);
  assert.deepEqual(typingNames(state), ['bob']);
  state = reduce(state, { type: 'typing', room: 'general', user: CAROL, name: 'carol', typing: true }, 2000);
  assert.deepEqual(typingNames(state), ['bob', 'carol']);
  assert.equal(nextTypingExpiry(state), 9000);
  assert.deepEqual(typingNames(reduce(state, { type: 'typing', room: 'general', user: BOB, typing: false })), ['carol']);
  assert.deepEqual(typingNames(reduce(state, msg(9))), ['carol'], 'bob sent his message');
  assert.deepEqual(typingNames(reduce(state, { type: 'presence', room: 'general', joined: [], left: [CAROL] })), ['bob']);
  // Nothing more came: the page's own safety net.
  assert.equal(reduce(state, { type: ACTIONS.TICK }, 8999), state);
  state = reduce(state, { type: ACTIONS.TICK }, 9000);
  assert.deepEqual(typingNames(state), ['carol']);
  state = reduce(state, { type: 'typing', room: 'general', user: CAROL, name: 'carol', typing: true }, 9500);
  assert.equal(nextTypingExpiry(state), 17500, 'a new true restarts the clock');
  // Losing the connection forgets them all (the next one tells again).
  state = reduce(state, { type: ACTIONS.CONNECTION, state: 'waiting', attempt: 1, attempts: 10 });
  assert.deepEqual(typingNames(state), []);
  assert.equal(nextTypingExpiry(state), null);
});

test('typing in a direct conversation shows in that conversation only', () => {
  let state = run(session(), { type: ACTIONS.OPEN_DM, user: BOB });
  state = reduce(state, { type: 'typing', user: BOB, name: 'bob', typing: true }, 0);
  assert.deepEqual(typingNames(state), ['bob']);
  state = reduce(state, { type: 'typing', user: CAROL, name: 'carol', typing: true }, 0);
  assert.equal(state.conversations.has(`dm:${CAROL}`), false, 'typing opens no conversation');
  state = reduce(state, { type: ACTIONS.SELECT, key: 'room:general' });
  assert.deepEqual(typingNames(state), []);
});

const edit = (id, target, text, extra = {}) => ({
  type: 'edit', id, target, room: 'general', from: BOB, name: 'bob', text, ts: 2000 + id, ...extra,
});

test('live edits and deletions, and those in a recovery, change the message shown', () => {
  let state = run(session(), joined([msg(5), msg(6)]));
  state = reduce(state, edit(7, 5, 'hello, edited'));
  assert.deepEqual([entryOf(state).conv.get(5).text, entryOf(state).conv.get(5).edited], ['hello, edited', 2007]);
  state = reduce(state, { ...edit(8, 6, ''), type: 'delete', by: 'operator' });
  assert.deepEqual([entryOf(state).conv.get(6).deleted, entryOf(state).conv.get(6).by], [true, 'operator']);
  // After a reconnect: the events since the last id seen.
  state = reduce(state, joined([msg(9)], { events: [edit(10, 9, 'nine, edited')] }));
  assert.equal(entryOf(state).conv.get(9).text, 'nine, edited');
  assert.equal(entryOf(state).unread, 0, 'an event is not a message');
  // In a direct conversation, from dm_sync.
  state = run(state, { type: 'dm_sync', messages: [dm(11, BOB, ME.id)], truncated: false }, {
    type: 'dm_sync', messages: [], events: [{ ...edit(12, 11, 'psst, edited'), room: undefined, to: ME.id }], truncated: false,
  });
  assert.equal(entryOf(state, `dm:${BOB}`).conv.get(11).text, 'psst, edited');
});

test('my edit: the editor opens, the change waits for its ack, then shows', () => {
  const mine = msg(5, { from: ME.id, name: 'alice', text: 'helo' });
  let state = run(session(), joined([mine, msg(6)]), { type: ACTIONS.EDIT, id: 5, mode: 'edit' });
  assert.deepEqual(state.editing, { id: 5, mode: 'edit' });
  state = reduce(state, { type: ACTIONS.CHANGE_SENT, cid: 'e1', target: 5, change: 'edit', text: 'hello' });
  assert.equal(state.editing, null);
  assert.deepEqual([...changesByTarget(state)], [[5, 'edit']]);
  assert.equal(entryOf(state).conv.get(5).text, 'helo', 'not before the ack');
  state = reduce(state, { type: 'ack', cid: 'e1', id: 9, ts: 3000 });
  assert.deepEqual([entryOf(state).conv.get(5).text, entryOf(state).conv.get(5).edited], ['hello', 3000]);
  assert.equal(state.changes.size, 0);
  // A deletion the same way; a refused one is flashed with the server's reason.
  state = run(state, { type: ACTIONS.CHANGE_SENT, cid: 'd1', target: 5, change: 'delete' }, { type: 'ack', cid: 'd1', id: 10, ts: 3001 });
  assert.equal(entryOf(state).conv.get(5).deleted, true);
  state = run(state, { type: ACTIONS.CHANGE_SENT, cid: 'e2', target: 6, change: 'edit', text: 'x' },
    { type: ACTIONS.FAILED, cid: 'e2', code: 'forbidden', message: 'only its author may edit or delete a message' });
  assert.equal(state.changes.size, 0);
  assert.equal(state.flash.text, 'only its author may edit or delete a message');
});

test('a deletion from elsewhere closes the editor of that message', () => {
  let state = run(session(), joined([msg(5, { from: ME.id })]), { type: ACTIONS.EDIT, id: 5, mode: 'edit' });
  state = reduce(state, { ...edit(6, 5, ''), type: 'delete', from: ME.id });
  assert.equal(state.editing, null);
  assert.equal(reduce(state, { type: ACTIONS.EDIT, id: null }).editing, null);
});

test('edits and deletions still in the outbox after a reload wait for their ack', () => {
  const state = session({
    pending: [
      { frame: { type: 'edit', room: 'general', target: 5, text: 'new', cid: 'e1' }, queuedAt: 1 },
      { frame: { type: 'delete', target: 8, cid: 'd1' }, queuedAt: 2 },
    ],
  });
  assert.deepEqual([...changesByTarget(state)], [[5, 'edit'], [8, 'delete']]);
  assert.equal(currentEntry(state).conv.pendingCount, 0, 'not shown as messages');
  const after = run(state, joined([msg(5, { from: ME.id })]), { type: 'ack', cid: 'e1', id: 9, ts: 1 });
  assert.equal(entryOf(after).conv.get(5).text, 'new');
});

test('a message refused as muted is failed with the reason, not sent again', () => {
  let state = reduce(session(), { type: ACTIONS.SEND, key: 'room:general', cid: 'c1', text: 'x', ts: 1 });
  const reason = 'you are muted in general until 12:00: calm down';
  state = reduce(state, { type: ACTIONS.FAILED, cid: 'c1', code: 'muted', message: reason });
  const [failed] = currentEntry(state).conv.messages();
  assert.deepEqual([failed.failed, failed.failedReason], ['muted', reason]);
  assert.equal(state.flash.text, reason);
});

test('the directory: opened, filled by `rooms`; create selects the new room, which is mine', () => {
  let state = run(session(), { type: ACTIONS.DIRECTORY, open: true });
  assert.deepEqual(state.directory, { open: true, rooms: null, creating: null, error: '' });
  const rooms = [{ room: 'general', topic: 'all', members: 3, private: false, member: true }];
  state = reduce(state, { type: 'rooms', rooms });
  assert.equal(state.directory.rooms, rooms);
  state = run(state, { type: ACTIONS.CREATE, room: 'general' }, { type: 'error', code: 'room_exists', message: 'room general exists already' });
  assert.deepEqual(state.directory, { open: true, rooms, creating: null, error: 'A room named #general exists already.' });
  assert.equal(state.flash, null);
  state = run(state, { type: ACTIONS.CREATE, room: 'design' },
    { type: 'created', room: 'design', topic: 'the new logo', private: true });
  assert.equal(state.current, 'room:design');
  assert.deepEqual(roomsOf(state), ['general', 'design']);
  assert.equal(state.directory.open, false);
  assert.deepEqual([entryOf(state, 'room:design').topic, entryOf(state, 'room:design').private], ['the new logo', true]);
  assert.equal(canManage(state), true);
  assert.equal(canManage(reduce(state, { type: ACTIONS.SELECT, key: 'room:general' })), false);
});

test('a joined frame says who owns the room, and brings topic and privacy', () => {
  let state = session({ rooms: ['general', 'design'] });
  state = run(state, { type: ACTIONS.SELECT, key: 'room:design' },
    joined([], { room: 'design', topic: 't', private: true, owner: ME.id }));
  assert.equal(canManage(state), true);
  assert.equal(currentEntry(state).topic, 't');
  // Another's room, or one made by joining it (owner null), is not mine to manage.
  assert.equal(canManage(reduce(state, joined([], { room: 'design', private: true, owner: BOB }))), false);
  assert.equal(canManage(reduce(state, joined([], { room: 'design', private: true, owner: null }))), false);
  // A server that does not say keeps what the page knows (it created the room).
  assert.equal(canManage(reduce(state, joined([], { room: 'design', private: true }))), true);
});

test('an invitation adds the room; the owner is told; a removal takes it away and says so', () => {
  let state = run(session(), { type: 'invited', room: 'design', topic: 'logo', by: CAROL, name: 'carol' });
  assert.deepEqual(roomsOf(state), ['general', 'design']);
  assert.equal(state.current, 'room:general', 'an invitation does not switch conversations');
  assert.equal(state.flash.text, 'carol invited you to #design.');
  assert.equal(entryOf(state, 'room:design').private, true);
  state = run(state, { type: ACTIONS.SELECT, key: 'room:design' }, { type: 'left', room: 'design', reason: 'removed' });
  assert.deepEqual(roomsOf(state), ['general']);
  assert.equal(state.current, 'room:general');
  assert.equal(state.flash.text, 'You were removed from #design.');
  state = run(state, joined(), { type: 'invited', room: 'design', user: BOB });
  assert.equal(state.flash.text, 'Invited bob to #design.');
  state = reduce(state, { type: 'removed', room: 'design', user: BOB });
  assert.equal(state.flash.text, 'Removed bob from #design.');
  assert.equal(reduce(state, { type: 'invited', room: 'design', user: 'g:stranger' }).flash.text, 'Invitation to #design sent.');
});

test('a join refused as private removes the room and says why', () => {
  let state = run(session(), { type: ACTIONS.JOIN_ROOM, room: 'secret' });
  assert.equal(state.current, 'room:secret');
  state = reduce(state, { type: ACTIONS.JOIN_REFUSED, room: 'secret', code: 'forbidden', message: 'room secret is private' });
  assert.deepEqual(roomsOf(state), ['general']);
  assert.equal(state.current, 'room:general');
  assert.equal(state.flash.text, '#secret is a private room: only members it invited can join.');
  state = run(state, { type: ACTIONS.JOIN_ROOM, room: 'team-x' }, {
    type: ACTIONS.JOIN_REFUSED, room: 'team-x', code: 'forbidden', message: 'the application says: not your team',
  });
  assert.equal(state.flash.text, 'You cannot join #team-x: the application says: not your team');
});

test('disconnected by an operator: no composer, no presence, and the page says why', () => {
  let state = run(session(), open, joined());
  assert.deepEqual(composerOf(state), { disabled: false, reason: '' });
  assert.deepEqual(memberIds(state), [ME.id, BOB]);
  assert.deepEqual(membersNoteOf(state), { stale: false, note: '' });
  state = reduce(state, { type: ACTIONS.CONNECTION, state: 'waiting', attempt: 1, attempts: 10 });
  assert.equal(membersNoteOf(state).stale, true, 'away: shown, marked out of date');
  assert.deepEqual(memberIds(state), [ME.id, BOB]);
  state = reduce(state, { type: ACTIONS.CONNECTION, state: 'stopped', reason: 'kicked', message: 'spam' });
  assert.deepEqual(memberIds(state), []);
  assert.match(membersNoteOf(state).note, /operator/);
  assert.deepEqual(composerOf(state), { disabled: true, reason: 'Disconnected by an operator. Reconnect to write again.' });
});

test('the drawers: one open at a time; opening a conversation closes them', () => {
  let state = reduce(session(), { type: ACTIONS.PANEL, panel: 'rooms' });
  assert.equal(state.panel, 'rooms');
  state = reduce(state, { type: ACTIONS.SELECT, key: 'room:general' });
  assert.equal(state.panel, 'none');
});

test('a read mark sent but lost with the connection is sent again on the next one', () => {
  let state = run(session(), open, unread({ general: { read: 5, unread: 0 } }), joined([msg(5), msg(6)], { read: 5, unread: 1 }));
  state = reduce(state, { type: ACTIONS.READ_SENT, reads: readsToSend(state) });
  assert.deepEqual(readsToSend(state), []);
  state = run(state, { type: ACTIONS.CONNECTION, state: 'waiting', attempt: 1, attempts: 10 }, open,
    unread({ general: { read: 5, unread: 1 } }), joined([msg(6)], { read: 5, unread: 1 }));
  assert.deepEqual(readsToSend(state), [{ key: 'room:general', target: { room: 'general' }, id: 6 }]);
});

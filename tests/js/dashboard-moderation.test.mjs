import { test } from 'node:test';
import assert from 'node:assert/strict';

import { AdminApi } from '../../dashboard/js/api.js';
import { ACTION_LABELS, actionLabel } from '../../dashboard/js/audit-view.js';
import { closedReason } from '../../dashboard/js/closed-view.js';
import { messageStatus, messageText } from '../../dashboard/js/messages-view.js';
import { mergeById } from '../../dashboard/js/pages.js';
import { knownRooms, validRoom } from '../../dashboard/js/rooms.js';
import { fakeFetch } from './fakes.mjs';

test('room messages and the audit log are GETs with only the paging arguments given', async () => {
  const { fetch, calls } = fakeFetch([[200, { messages: [] }], [200, {}], [200, { entries: [] }], [200, {}]]);
  const api = new AdminApi({ fetch });
  api.csrf = 'c1';
  await api.roomMessages('general');
  await api.roomMessages('a.b', { before: 120, limit: 20 });
  await api.audit();
  await api.audit({ before: 7 });
  assert.deepEqual(calls.map((c) => [c.method, c.url, c.body, c.headers['X-CSRF-Token']]), [
    ['GET', '/admin/api/rooms/general/messages', undefined, undefined],
    ['GET', '/admin/api/rooms/a.b/messages?before=120&limit=20', undefined, undefined],
    ['GET', '/admin/api/audit', undefined, undefined],
    ['GET', '/admin/api/audit?before=7', undefined, undefined],
  ]);
});

test('deleteMessage is a DELETE with CSRF and a JSON reason', async () => {
  const { fetch, calls } = fakeFetch([[200, { deleted: 5, id: 9 }]]);
  const api = new AdminApi({ fetch });
  api.csrf = 'c1';
  assert.deepEqual(await api.deleteMessage(5, 'doxxing'), { deleted: 5, id: 9 });
  const [call] = calls;
  assert.deepEqual([call.method, call.url, call.headers['X-CSRF-Token'], call.headers['Content-Type'], call.json],
    ['DELETE', '/admin/api/messages/5', 'c1', 'application/json', { reason: 'doxxing' }]);
});

test('the session and the login keep the operator the server names; logout forgets it', async () => {
  const { fetch } = fakeFetch([[200, { csrf: 'c', operator: 'alice.ops', via: 'cookie' }],
    [204, undefined], [200, { csrf: 'd', operator: 'admin' }], [401, { error: 'unauthorized' }]]);
  const api = new AdminApi({ fetch });
  await api.login('t');
  assert.equal(api.operator, 'alice.ops');
  await api.logout();
  assert.equal(api.operator, null);
  assert.equal(await api.session(), true);
  assert.equal(api.operator, 'admin');
  assert.equal(await api.session(), false);
  assert.equal(api.operator, null);
});

test('a room name is what the server takes; the rooms suggested are valid names, each once, sorted', () => {
  for (const good of ['general', 'a', 'x'.repeat(64), 'Team_1.dev-ops']) assert.ok(validRoom(good), good);
  for (const bad of ['', 'x'.repeat(65), 'a b', 'été', 'a/b', null, 5]) assert.ok(!validRoom(bad), String(bad));
  assert.deepEqual(knownRooms(['b', 'a', 'a', 'not a room']), ['a', 'b']);
  assert.deepEqual(knownRooms(undefined), []);
});

test('messages read as their latest version; pages merge newest first, each item once, the newer version kept', () => {
  assert.equal(messageText({ text: 'hi', deleted: false }), 'hi');
  assert.equal(messageText({ text: '', deleted: true }), 'message deleted');
  assert.equal(messageStatus({ deleted: true, edited: 5 }), 'deleted');
  assert.equal(messageStatus({ deleted: false, edited: 5 }), 'edited');
  assert.equal(messageStatus({ deleted: false, edited: null }), '');
  const first = mergeById([], [{ id: 3, text: 'c' }, { id: 4, text: 'd' }]);
  assert.deepEqual(first.map((m) => m.id), [4, 3]);
  const more = mergeById(first, [{ id: 1 }, { id: 2 }, { id: 3, text: 'c, edited' }]);
  assert.deepEqual(more.map((m) => m.id), [4, 3, 2, 1]);
  assert.equal(more[1].text, 'c, edited');
});

test('audit entries merge by id, newest first; every action the server records has a label', () => {
  const merged = mergeById([{ id: 5 }, { id: 3 }], [{ id: 4 }, { id: 5, reason: 'new' }, { id: 9 }]);
  assert.deepEqual(merged.map((e) => e.id), [9, 5, 4, 3]);
  assert.equal(merged[1].reason, 'new');
  assert.deepEqual(Object.keys(ACTION_LABELS).sort(), [
    'ban', 'delete_message', 'disconnect', 'disconnect_user', 'mute', 'unban', 'unmute']);
  assert.equal(actionLabel('delete_message'), 'Delete message');
  assert.equal(actionLabel('rename_room'), 'rename room');  // a newer server's action
});

test('the closed log shows what the operator said beside the close reason', () => {
  assert.equal(closedReason({ reason: 'kicked', operator_reason: 'Spamming the room' }), 'kicked: Spamming the room');
  assert.equal(closedReason({ reason: 'heartbeat_timeout', operator_reason: '' }), 'heartbeat timeout');
  assert.equal(closedReason({ reason: 'client_close' }), 'client close');
  assert.equal(closedReason({}), '—');
});

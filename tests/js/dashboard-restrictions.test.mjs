import { test } from 'node:test';
import assert from 'node:assert/strict';

import { AdminApi } from '../../dashboard/js/api.js';
import {
  BANS, DEFAULT_DURATION, DURATIONS, MUTES, describeUntil, durationSeconds, inForce,
} from '../../dashboard/js/restrictions.js';
import { fakeFetch } from './fakes.mjs';

test('the durations offered are within what the server takes, with one until lifted', () => {
  for (const d of DURATIONS) {
    if (d.seconds !== null) assert.ok(d.seconds >= 60 && d.seconds <= 10 * 365 * 86400, d.key);
  }
  assert.equal(DURATIONS.filter((d) => d.seconds === null).length, 1);
  assert.equal(durationSeconds('1h'), 3600);
  assert.equal(durationSeconds('forever'), null);
  assert.equal(durationSeconds('nonsense'), durationSeconds(DEFAULT_DURATION));
});

test('banUser sends the reason and the seconds (none for until lifted); liftBan is a DELETE with CSRF and no body', async () => {
  const { fetch, calls } = fakeFetch([[200, { user: 'g:1' }], [200, { user: 'bob' }], [200, { lifted: 'g:1' }], [200, []]]);
  const api = new AdminApi({ fetch });
  api.csrf = 'c1';
  await api.banUser('g:1', 'spam', 3600);
  await api.banUser('bob smith', 'flood', null);
  assert.deepEqual(await api.liftBan('g:1'), { lifted: 'g:1' });
  assert.deepEqual(await api.bans(), []);
  assert.deepEqual(calls.map((c) => [c.method, c.url, c.headers['X-CSRF-Token'], c.json]), [
    ['POST', '/admin/api/users/g%3A1/ban', 'c1', { reason: 'spam', seconds: 3600 }],
    ['POST', '/admin/api/users/bob%20smith/ban', 'c1', { reason: 'flood' }],
    ['DELETE', '/admin/api/users/g%3A1/ban', 'c1', undefined],
    ['GET', '/admin/api/bans', undefined, undefined],
  ]);
  assert.equal(calls[2].headers['Content-Type'], undefined);
});

test('a ban or a mute reads as the time left or until lifted; the list keeps those in force, newest first', () => {
  assert.equal(describeUntil({ until: null }, 1000), 'until lifted');
  assert.equal(describeUntil({ until: 1000 + 7200 }, 1000), '2 h left');
  assert.equal(describeUntil({ until: 900 }, 1000), '0.0 s left');
  const bans = [
    { user: 'a', at: 10, until: null },
    { user: 'b', at: 30, until: 2000 },
    { user: 'c', at: 20, until: 999 },
  ];
  assert.deepEqual(inForce(bans, 1000).map((b) => b.user), ['b', 'a']);
  assert.deepEqual(inForce(null, 0), []);
});

test('mutes in force are ordered newest first, then by user and room', () => {
  const mutes = [
    { room: 'b', user: 'x', at: 10, until: null },
    { room: 'a', user: 'x', at: 10, until: null },
    { room: 'a', user: 'w', at: 10, until: 5 },
    { room: 'c', user: 'y', at: 20, until: 2000 },
  ];
  assert.deepEqual(inForce(mutes, 1000).map((m) => `${m.room}/${m.user}`), ['c/y', 'a/x', 'b/x']);
});

test('the ban and mute lists show their columns from the item, with what is left', () => {
  const mute = { room: 'general', user: 'g:1', reason: 'shouting', until: null, by: null, at: 1 };
  assert.deepEqual(MUTES.columns.map((c) => c.label), ['Room', 'User', 'Reason', 'Ends', 'By', 'Since']);
  assert.deepEqual(MUTES.columns.slice(0, 5).map((c) => c.cell(mute, 100).text),
    ['general', 'g:1', 'shouting', 'until lifted', '—']);
  assert.deepEqual(MUTES.attrs(mute), { 'data-user': 'g:1', 'data-room': 'general' });
  assert.deepEqual(BANS.columns.map((c) => c.label), ['User', 'Reason', 'Ends', 'By', 'Since']);
  assert.equal(BANS.columns[2].cell({ until: 160 }, 100).text, '1 min left');
  assert.deepEqual([BANS.row, BANS.lift, MUTES.row, MUTES.lift], ['ban-row', 'lift-ban', 'mute-row', 'lift-mute']);
});

test('muteUser sends the room, the reason and the seconds; liftMute is a DELETE without a body', async () => {
  const { fetch, calls } = fakeFetch([[200, { room: 'a.b' }], [200, {}], [200, { lifted: {} }],
    [200, [{ room: 'r' }]]]);
  const api = new AdminApi({ fetch });
  api.csrf = 'c2';
  await api.muteUser('a.b', 'g:1', 'shouting', 600);
  await api.muteUser('r', 'bob smith', 'flood', null);
  await api.liftMute('r', 'g:1');
  assert.deepEqual(await api.mutes(), [{ room: 'r' }]);
  assert.deepEqual(calls.map((c) => [c.method, c.url, c.headers['X-CSRF-Token'], c.json]), [
    ['POST', '/admin/api/rooms/a.b/mutes/g%3A1', 'c2', { reason: 'shouting', seconds: 600 }],
    ['POST', '/admin/api/rooms/r/mutes/bob%20smith', 'c2', { reason: 'flood' }],
    ['DELETE', '/admin/api/rooms/r/mutes/g%3A1', 'c2', undefined],
    ['GET', '/admin/api/mutes', undefined, undefined],
  ]);
});

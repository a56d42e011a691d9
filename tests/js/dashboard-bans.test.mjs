import { test } from 'node:test';
import assert from 'node:assert/strict';

import { AdminApi } from '../../dashboard/js/api.js';
import {
  BAN_DURATIONS, DEFAULT_DURATION, bansInForce, describeUntil, durationSeconds,
} from '../../dashboard/js/bans.js';

function fakeFetch(answers) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, ...init, json: init.body === undefined ? undefined : JSON.parse(init.body) });
    const [status, body] = answers.shift();
    return { status, ok: status >= 200 && status < 300, json: async () => body };
  };
  return { fetch, calls };
}

test('the durations offered are within what the server takes, with one until lifted', () => {
  for (const d of BAN_DURATIONS) {
    if (d.seconds !== null) assert.ok(d.seconds >= 60 && d.seconds <= 10 * 365 * 86400, d.key);
  }
  assert.equal(BAN_DURATIONS.filter((d) => d.seconds === null).length, 1);
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

test('a ban reads as the time left or until lifted; the list keeps those in force, newest first', () => {
  assert.equal(describeUntil({ until: null }, 1000), 'until lifted');
  assert.equal(describeUntil({ until: 1000 + 7200 }, 1000), '2 h left');
  assert.equal(describeUntil({ until: 900 }, 1000), '0.0 s left');
  const bans = [
    { user: 'a', at: 10, until: null },
    { user: 'b', at: 30, until: 2000 },
    { user: 'c', at: 20, until: 999 },
  ];
  assert.deepEqual(bansInForce(bans, 1000).map((b) => b.user), ['b', 'a']);
  assert.deepEqual(bansInForce(null, 0), []);
});

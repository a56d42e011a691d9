import { test } from 'node:test';
import assert from 'node:assert/strict';

import { AdminApi, ApiError } from '../../dashboard/js/api.js';
import { fakeFetch } from './fakes.mjs';

test('login keeps the CSRF token; every later POST sends it with a JSON content type', async () => {
  const { fetch, calls } = fakeFetch([[200, { csrf: 'c1' }], [200, { disconnected: ['a/b'] }], [200, { disconnected: [] }]]);
  const api = new AdminApi({ fetch });
  await api.login('secret');
  assert.equal(api.csrf, 'c1');
  assert.deepEqual(calls[0].json, { token: 'secret' });
  assert.equal(calls[0].headers['Content-Type'], 'application/json');
  assert.deepEqual(await api.disconnectClient('a/b', 'spam'), { disconnected: ['a/b'] });
  await api.disconnectUser('bob smith', 'bye');
  assert.deepEqual(calls.slice(1).map((c) => [c.method, c.url, c.headers['X-CSRF-Token'], c.headers['Content-Type'], c.json]), [
    ['POST', '/admin/api/clients/a%2Fb/disconnect', 'c1', 'application/json', { reason: 'spam' }],
    ['POST', '/admin/api/users/bob%20smith/disconnect', 'c1', 'application/json', { reason: 'bye' }],
  ]);
  assert.ok(calls.every((c) => c.credentials === 'same-origin'));
});

test('session: true with the CSRF token, false on 401, an ApiError otherwise', async () => {
  const { fetch, calls } = fakeFetch([[200, { csrf: 'c2', via: 'cookie' }], [401, { error: 'unauthorized' }],
    [500, undefined]]);
  const api = new AdminApi({ fetch });
  assert.equal(await api.session(), true);
  assert.equal(api.csrf, 'c2');
  assert.equal(calls[0].method, 'GET');
  assert.equal(calls[0].body, undefined, 'a GET has no body');
  assert.equal(await api.session(), false);
  assert.equal(api.csrf, null);
  await assert.rejects(api.session(), (err) => err instanceof ApiError && err.status === 500 && err.code === null);
});

test('errors carry the status, the server error code and message', async () => {
  const { fetch } = fakeFetch([[401, { error: 'unauthorized', message: 'wrong admin token' }],
    [404, { error: 'not_found', message: 'no live connection x' }]]);
  const api = new AdminApi({ fetch });
  await assert.rejects(api.login('nope'), { name: 'ApiError', status: 401, code: 'unauthorized', message: 'wrong admin token' });
  assert.equal(api.csrf, null);
  await assert.rejects(api.disconnectClient('x', 'r'), { status: 404, code: 'not_found' });
});

test('logout posts with the token, then forgets it even when the request fails', async () => {
  const { fetch, calls } = fakeFetch([[200, { csrf: 'c3' }], [204, undefined], [200, { csrf: 'c4' }], [500, undefined]]);
  const api = new AdminApi({ fetch });
  await api.login('t');
  await api.logout();
  assert.equal(calls[1].url, '/admin/api/logout');
  assert.equal(calls[1].headers['X-CSRF-Token'], 'c3');
  assert.equal(api.csrf, null);
  await api.login('t');
  await assert.rejects(api.logout(), { status: 500 });
  assert.equal(api.csrf, null);
});

test('clients: the query in the URL (filters, sort, cursor), set values only; the summary with its top', async () => {
  const page = { clients: [], matched: 0, totals: { connections: 0 }, next: null, prev: null };
  const { fetch, calls } = fakeFetch([[200, page], [200, page], [200, { top_users: [] }]]);
  const api = new AdminApi({ fetch });
  assert.deepEqual(await api.clients({ user: 'g:ann', limit: '1' }), page);
  await api.clients();
  await api.summary({ top: 5 });
  assert.deepEqual(calls.map((c) => [c.method, c.url]), [
    ['GET', '/admin/api/clients?user=g%3Aann&limit=1'], ['GET', '/admin/api/clients'], ['GET', '/admin/api/summary?top=5'],
  ]);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  COLUMNS, DEFAULT_SORT, compareValues, filterClients, nextSort, sortClients, visibleClients,
} from '../../dashboard/js/table.js';

function client(id, user, fields = {}) {
  return {
    id, user, name: user, rooms: [], remote: '127.0.0.1', user_agent: 'ua', connected_at: 100,
    last_seen: 100, idle: 0, rtt: null, frames_in: 0, frames_out: 0, reconnect: 0, health: 'green', ...fields,
  };
}

const clients = [
  client('c1', 'alice', { rooms: ['general', 'random'], connected_at: 300, rtt: 0.002, frames_in: 5, idle: 1 }),
  client('c2', 'bob', { rooms: ['general'], connected_at: 100, rtt: 0.010, frames_in: 50, health: 'amber' }),
  client('c3', 'carol', { name: 'Carol M.', rooms: ['support'], connected_at: 200, rtt: null, frames_in: 5 }),
  client('c4', 'user10', { connected_at: 250, rtt: 0.001 }),
  client('c5', 'user2', { connected_at: 250, rtt: 0.003 }),
];
const ids = (list) => list.map((c) => c.id);

test('the columns are the ones the issue asks for, each sortable', () => {
  assert.deepEqual(COLUMNS.map((c) => c.key), [
    'id', 'user', 'rooms', 'remote', 'node', 'user_agent', 'connected_at', 'idle', 'rtt', 'frames_in', 'frames_out',
    'reconnect', 'health',
  ]);
  for (const col of COLUMNS) {
    assert.ok(['string', 'number'].includes(typeof col.value(clients[0])), col.key);
    assert.ok(col.label, col.key);
  }
});

test('filter: user, display name or room, case-insensitive, every word must match', () => {
  assert.deepEqual(ids(filterClients(clients, 'general')), ['c1', 'c2']);
  assert.deepEqual(ids(filterClients(clients, 'ALI')), ['c1']);
  assert.deepEqual(ids(filterClients(clients, 'carol m')), ['c3'], 'display name words');
  assert.deepEqual(ids(filterClients(clients, 'alice random')), ['c1']);
  assert.deepEqual(ids(filterClients(clients, 'bob random')), []);
  assert.deepEqual(ids(filterClients(clients, '127.0.0.1')), [], 'the address is not searched');
  assert.deepEqual(ids(filterClients(clients, '  ')), ids(clients));
  assert.deepEqual(ids(filterClients(clients, undefined)), ids(clients));
});

test('in a cluster: filter by node; rows of other nodes sort their unknown live fields last', () => {
  const here = client('h1', 'alice', { node: 'node-a', rtt: 0.002, frames_in: 3 });
  const there = client('t1', 'alice', {
    node: 'node-b', idle: null, rtt: null, frames_in: null, frames_out: null, health: null,
  });
  const amber = client('h2', 'bob', { node: 'node-a', health: 'amber' });
  const mixed = [there, here, amber];
  assert.deepEqual(ids(filterClients(mixed, 'node-b')), ['t1']);
  assert.deepEqual(ids(filterClients(mixed, 'alice node-a')), ['h1']);
  assert.deepEqual(ids(sortClients(mixed, { key: 'node', dir: 'asc' })), ['h1', 'h2', 't1']);
  for (const key of ['frames_in', 'health', 'idle']) {
    for (const dir of ['asc', 'desc']) assert.equal(ids(sortClients(mixed, { key, dir })).at(-1), 't1', `${key} ${dir}`);
  }
  assert.equal(ids(sortClients(mixed, { key: 'health', dir: 'desc' }))[0], 'h2', 'amber first');
});

test('filter returns a new array and leaves the input alone', () => {
  const copy = [...clients];
  assert.notEqual(filterClients(clients, ''), clients);
  assert.deepEqual(clients, copy);
});

test('sort: text in natural order, numbers numerically, both directions', () => {
  assert.deepEqual(ids(sortClients(clients, { key: 'user', dir: 'asc' })), ['c1', 'c2', 'c3', 'c5', 'c4']);
  assert.deepEqual(ids(sortClients(clients, { key: 'user', dir: 'desc' })), ['c4', 'c5', 'c3', 'c2', 'c1']);
  assert.deepEqual(ids(sortClients(clients, { key: 'frames_in', dir: 'desc' })), ['c2', 'c1', 'c3', 'c4', 'c5']);
  assert.deepEqual(ids(sortClients(clients, { key: 'health', dir: 'desc' }))[0], 'c2', 'amber first');
});

test('sort: missing values last in both directions, ties broken by id', () => {
  assert.deepEqual(ids(sortClients(clients, { key: 'rtt', dir: 'asc' })), ['c4', 'c1', 'c5', 'c2', 'c3']);
  assert.deepEqual(ids(sortClients(clients, { key: 'rtt', dir: 'desc' })), ['c2', 'c5', 'c1', 'c4', 'c3']);
  const tie = [client('b', 'x'), client('a', 'x'), client('c', 'x')];
  assert.deepEqual(ids(sortClients(tie, { key: 'user', dir: 'desc' })), ['a', 'b', 'c']);
});

test('sort: the default is newest first; an unknown key falls back to it', () => {
  assert.deepEqual(DEFAULT_SORT, { key: 'connected_at', dir: 'desc' });
  assert.deepEqual(ids(sortClients(clients)), ['c1', 'c4', 'c5', 'c3', 'c2']);
  assert.deepEqual(ids(sortClients(clients, { key: 'nope', dir: 'desc' })), ['c1', 'c4', 'c5', 'c3', 'c2']);
});

test('a header click flips the same column, starts text ascending and numbers descending', () => {
  assert.deepEqual(nextSort({ key: 'user', dir: 'asc' }, 'user'), { key: 'user', dir: 'desc' });
  assert.deepEqual(nextSort({ key: 'user', dir: 'desc' }, 'user'), { key: 'user', dir: 'asc' });
  assert.deepEqual(nextSort({ key: 'user', dir: 'asc' }, 'rtt'), { key: 'rtt', dir: 'desc' });
  assert.deepEqual(nextSort({ key: 'rtt', dir: 'desc' }, 'remote'), { key: 'remote', dir: 'asc' });
});

test('compareValues and visibleClients', () => {
  assert.ok(compareValues('user2', 'user10') < 0);
  assert.ok(compareValues('Alice', 'alice') === 0);
  assert.ok(compareValues(2, 10) < 0);
  assert.deepEqual(ids(visibleClients(clients, { query: 'general', sort: { key: 'user', dir: 'desc' } })), ['c2', 'c1']);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { CLOSED_LIMIT, SERIES_LIMIT, initialState, reduce, totals } from '../../dashboard/js/model.js';

const client = (id, user, rooms = []) => ({ id, user, rooms, health: 'green' });
const closed = (id, user) => ({ id, user, reason: 'client_close', closed_by: 'client', code: 1000 });
const stats = (fields = {}) => ({
  connections: 0, users: 0, rooms: 0, terminations_5m: 1, reconnects_5m: 2, messages_per_second: 3.5,
  uptime: 10, series: { t: [1], connections: [1], messages_per_second: [0] }, ...fields,
});

function snapshot() {
  return reduce(initialState(), {
    type: 'snapshot',
    clients: [client('a', 'alice', ['general']), client('b', 'bob', ['general', 'random'])],
    closed: [closed('x', 'xavier')],
    stats: stats(),
  });
}

test('before the first snapshot: nothing, not ready', () => {
  const state = initialState();
  assert.equal(state.ready, false);
  assert.deepEqual(totals(state), { connections: 0, users: 0, rooms: 0, terminations: 0, reconnects: 0, mps: 0 });
});

test('a snapshot replaces everything', () => {
  const state = snapshot();
  assert.equal(state.ready, true);
  assert.deepEqual(state.clients.map((c) => c.id), ['a', 'b']);
  assert.deepEqual(state.closed.map((c) => c.id), ['x']);
  const again = reduce(state, { type: 'snapshot', clients: [], closed: [], stats: stats() });
  assert.deepEqual(again.clients, []);
  assert.deepEqual(again.closed, []);
});

test('opened adds a client (once, even if repeated)', () => {
  let state = reduce(snapshot(), { type: 'opened', client: client('c', 'carol') });
  state = reduce(state, { type: 'opened', client: { ...client('c', 'carol'), rooms: ['x'] } });
  assert.deepEqual(state.clients.map((c) => c.id), ['a', 'b', 'c']);
  assert.deepEqual(state.clients[2].rooms, ['x'], 'the newer copy wins');
});

test('closed removes the client and puts the entry first, keeping at most CLOSED_LIMIT', () => {
  let state = reduce(snapshot(), { type: 'closed', closed: closed('a', 'alice') });
  assert.deepEqual(state.clients.map((c) => c.id), ['b']);
  assert.deepEqual(state.closed.map((c) => c.id), ['a', 'x']);
  for (let i = 0; i < CLOSED_LIMIT + 5; i += 1) state = reduce(state, { type: 'closed', closed: closed(`n${i}`, 'n') });
  assert.equal(state.closed.length, CLOSED_LIMIT);
  assert.equal(state.closed[0].id, `n${CLOSED_LIMIT + 4}`);
});

test('tick replaces the clients and the stats; the closed list stays', () => {
  const before = snapshot();
  const state = reduce(before, { type: 'tick', clients: [client('b', 'bob')], stats: stats({ uptime: 11 }) });
  assert.deepEqual(state.clients.map((c) => c.id), ['b']);
  assert.equal(state.stats.uptime, 11);
  assert.equal(state.closed, before.closed, 'same array: the view knows nothing changed');
});

test('a tick appends its point to the snapshot series, keeping at most SERIES_LIMIT', () => {
  let state = reduce(initialState(), {
    type: 'snapshot', clients: [], closed: [],
    stats: stats({ series: { t: [1, 2], connections: [3, 4], messages_per_second: [0, 5] } }),
  });
  state = reduce(state, { type: 'tick', clients: [], stats: stats(),
    point: { t: 3, connections: 6, messages_per_second: 7 } });
  assert.deepEqual(state.stats.series, { t: [1, 2, 3], connections: [3, 4, 6], messages_per_second: [0, 5, 7] });
  for (let i = 0; i < SERIES_LIMIT + 10; i += 1) {
    state = reduce(state, { type: 'tick', clients: [], stats: stats(),
      point: { t: 10 + i, connections: i, messages_per_second: i } });
  }
  assert.equal(state.stats.series.t.length, SERIES_LIMIT);
  assert.equal(state.stats.series.t.at(-1), 10 + SERIES_LIMIT + 9);
});

test('reduce never changes the state it is given', () => {
  const state = snapshot();
  const frozen = JSON.stringify(state);
  reduce(state, { type: 'opened', client: client('c', 'carol') });
  reduce(state, { type: 'closed', closed: closed('a', 'alice') });
  reduce(state, { type: 'tick', clients: [], stats: stats() });
  assert.equal(JSON.stringify(state), frozen);
});

test('unknown or malformed messages leave the state as it is', () => {
  const state = snapshot();
  for (const message of [{ type: 'future_kind' }, {}, null, { type: 'opened' }, { type: 'closed' }]) {
    assert.equal(reduce(state, message), state);
  }
});

test('totals: connections, users and rooms from the client list, the rest from stats', () => {
  let state = snapshot();
  state = reduce(state, { type: 'opened', client: client('c', 'alice', ['support']) });
  assert.deepEqual(totals(state), { connections: 3, users: 2, rooms: 3, terminations: 1, reconnects: 2, mps: 3.5 });
});

test('totals in a cluster: the clients of every node count, rooms joined on any node once', () => {
  const state = reduce(initialState(), {
    type: 'snapshot',
    closed: [],
    stats: { terminations_5m: 0, reconnects_5m: 0, messages_per_second: 0, node: 'node-a', series: { t: [], connections: [], messages_per_second: [] } },
    clients: [
      { id: 'a1', user: 'alice', rooms: ['general'], node: 'node-a' },
      { id: 'b1', user: 'alice', rooms: ['general', 'support'], node: 'node-b', rtt: null, health: null },
      { id: 'b2', user: 'bob', rooms: [], node: 'node-b', rtt: null, health: null },
    ],
  });
  const t = totals(state);
  assert.deepEqual([t.connections, t.users, t.rooms], [3, 2, 2]);
});

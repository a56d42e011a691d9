import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  CLOSED_LIMIT, SERIES_LIMIT, initialState, reduce, totals, withView,
} from '../../dashboard/js/model.js';
import { withFilter } from '../../dashboard/js/listing.js';

const closed = (id, user) => ({ id, user, reason: 'client_close', closed_by: 'client', code: 1000 });
const stats = (fields = {}) => ({
  connections: 40000, users: 2000, rooms: 12, terminations_5m: 1, reconnects_5m: 2, messages_per_second: 3.5,
  uptime: 10, series: { t: [1], connections: [1], messages_per_second: [0] }, ...fields,
});
const summary = (fields = {}) => ({
  top_users: [{ user: 'u1', name: 'ann', connections: 3, nodes: { 'node-a': 3 } }], rooms: [], nodes: [],
  terminations: { kicked: 1 }, reconnects: { network: 2 }, window: 300, ...fields,
});

function snapshot(state = initialState()) {
  return reduce(state, {
    type: 'snapshot', closed: [closed('x', 'xavier')], stats: stats(), summary: summary(), now: 1000,
  }, 1002);
}

test('before the first snapshot: nothing, not ready, the default view', () => {
  const state = initialState();
  assert.equal(state.ready, false);
  assert.equal(state.view.seq, 0);
  assert.deepEqual(state.page.ids, []);
  assert.deepEqual(totals(state), { connections: 0, users: 0, rooms: 0, terminations: 0, reconnects: 0, mps: 0 });
});

test('a snapshot sets the totals, the small tables, the closed list and the clock offset', () => {
  const state = snapshot();
  assert.equal(state.ready, true);
  assert.deepEqual(state.closed.map((c) => c.id), ['x']);
  assert.equal(state.summary.top_users[0].connections, 3);
  assert.equal(state.offset, 2, 'the page is 2 s ahead of the server');
  assert.deepEqual(totals(state), {
    connections: 40000, users: 2000, rooms: 12, terminations: 1, reconnects: 2, mps: 3.5,
  });
});

test('pages of the current view fill the table; a new snapshot (a new channel) empties it', () => {
  let state = snapshot();
  state = reduce(state, {
    type: 'page', seq: 0, ids: ['a', 'b'], rows: [{ id: 'a' }, { id: 'b' }], matched: 40000, position: 0,
    next: 'n', prev: null, totals: { connections: 40001, users: 2000, rooms: 12, nodes: 2 },
  });
  assert.deepEqual(state.page.ids, ['a', 'b']);
  assert.equal(totals(state).connections, 40001, 'the newest totals win');
  const again = reduce(state, { type: 'snapshot', closed: [], stats: stats(), summary: summary() });
  assert.deepEqual(again.page.ids, []);
});

test('a page of another view is dropped; the page of the new view is taken', () => {
  let state = snapshot();
  state = withView(state, withFilter(state.view, 'user', 'ann'));
  assert.equal(state.view.seq, 1);
  const stale = reduce(state, { type: 'page', seq: 0, ids: ['a'], rows: [{ id: 'a' }] });
  assert.equal(stale, state);
  const fresh = reduce(state, { type: 'page', seq: 1, ids: ['c'], rows: [{ id: 'c', user: 'ann' }], matched: 1 });
  assert.deepEqual(fresh.page.ids, ['c']);
});

test('a tick adds the new closed ones first, keeping at most CLOSED_LIMIT, and replaces the small tables', () => {
  let state = snapshot();
  const before = state.closed;
  state = reduce(state, { type: 'tick', stats: stats(), closed: [], summary: summary({ rooms: [{ room: 'x' }] }) });
  assert.equal(state.closed, before, 'same array when nothing closed: the view knows nothing changed');
  assert.equal(state.summary.rooms[0].room, 'x');
  state = reduce(state, { type: 'tick', stats: stats(), closed: [closed('b', 'bob'), closed('a', 'ann')] });
  assert.deepEqual(state.closed.map((c) => c.id), ['b', 'a', 'x']);
  const many = Array.from({ length: CLOSED_LIMIT + 5 }, (_, i) => closed(`n${i}`, 'n'));
  state = reduce(state, { type: 'tick', stats: stats(), closed: many });
  assert.equal(state.closed.length, CLOSED_LIMIT);
  assert.equal(state.closed[0].id, 'n0');
});

test('a tick appends its point to the snapshot series, keeping at most SERIES_LIMIT', () => {
  let state = reduce(initialState(), {
    type: 'snapshot', closed: [],
    stats: stats({ series: { t: [1, 2], connections: [3, 4], messages_per_second: [0, 5] } }),
  });
  state = reduce(state, { type: 'tick', stats: stats(), point: { t: 3, connections: 6, messages_per_second: 7 } });
  assert.deepEqual(state.stats.series, { t: [1, 2, 3], connections: [3, 4, 6], messages_per_second: [0, 5, 7] });
  for (let i = 0; i < SERIES_LIMIT + 10; i += 1) {
    state = reduce(state, { type: 'tick', stats: stats(), point: { t: 10 + i, connections: i, messages_per_second: i } });
  }
  assert.equal(state.stats.series.t.length, SERIES_LIMIT);
  assert.equal(state.stats.series.t.at(-1), 10 + SERIES_LIMIT + 9);
});

test('an error about the current view is kept to show; one about an older view is not', () => {
  let state = snapshot();
  state = reduce(state, { type: 'error', seq: 0, message: 'health must be one of green, amber, unknown' });
  assert.match(state.viewError, /health/);
  state = withView(state, withFilter(state.view, 'q', 'x'));
  assert.equal(state.viewError, '');
  assert.equal(reduce(state, { type: 'error', seq: 0, message: 'old' }), state);
});

test('reduce never changes the state it is given', () => {
  const state = snapshot();
  const frozen = JSON.stringify(state, (k, v) => (v instanceof Map ? [...v] : v));
  reduce(state, { type: 'page', seq: 0, ids: ['a'], rows: [{ id: 'a' }] });
  reduce(state, { type: 'tick', stats: stats(), closed: [closed('q', 'q')] });
  reduce(state, { type: 'error', seq: 0, message: 'x' });
  assert.equal(JSON.stringify(state, (k, v) => (v instanceof Map ? [...v] : v)), frozen);
});

test('unknown or malformed messages leave the state as it is', () => {
  const state = snapshot();
  for (const message of [{ type: 'future_kind' }, {}, null, { type: 'page' }, { type: 'opened' }]) {
    assert.equal(reduce(state, message), state);
  }
});

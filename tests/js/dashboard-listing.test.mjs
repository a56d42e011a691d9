import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  PAGE_SIZE, applyPage, clockOffset, emptyPage, idleSeconds, initialView, isDefault, queryOf, rangeText,
  viewMessage, withCursor, withFilter, withSort, withoutFilters,
} from '../../dashboard/js/listing.js';

const row = (id, fields = {}) => ({ id, user: `u-${id}`, last_seen: 100, ...fields });

test('the first view is the server default: newest first, a page of PAGE_SIZE', () => {
  const view = initialView();
  assert.ok(isDefault(view));
  assert.deepEqual(queryOf(view), { sort: 'connected_at', order: 'desc', limit: String(PAGE_SIZE) });
  assert.deepEqual(viewMessage(view), { type: 'view', seq: 0, query: queryOf(view) });
});

test('filters: set, trimmed, cleared; each change a new seq and back to the first page', () => {
  let view = withCursor(initialView(), 'cursor-1');
  assert.equal(view.seq, 1);
  view = withFilter(view, 'user', '  ann ');
  assert.equal(view.seq, 2);
  assert.equal(view.cursor, null, 'a new filter starts from the first page');
  assert.deepEqual(queryOf(view), { user: 'ann', sort: 'connected_at', order: 'desc', limit: String(PAGE_SIZE) });
  assert.equal(withFilter(view, 'user', 'ann'), view, 'no change, no new view');
  assert.equal(withFilter(view, 'password', 'x'), view, 'not a filter the server takes');
  view = withFilter(withFilter(view, 'health', 'amber'), 'user', '');
  assert.deepEqual(Object.keys(queryOf(view)), ['health', 'sort', 'order', 'limit']);
  assert.ok(!isDefault(view));
  view = withoutFilters(view);
  assert.deepEqual(view.filters, {});
  assert.equal(withoutFilters(view), view);
});

test('sorting: another column starts largest first if numeric, else from A; the same column flips', () => {
  let view = withSort(initialView(), 'user');
  assert.deepEqual([view.sort, view.order], ['user', 'asc']);
  view = withSort(view, 'user');
  assert.deepEqual([view.sort, view.order], ['user', 'desc']);
  view = withSort(withCursor(view, 'c'), 'rtt');
  assert.deepEqual([view.sort, view.order, view.cursor], ['rtt', 'desc', null]);
  assert.equal(view.seq, 4);
});

test('cursors: the next or previous page of the same view', () => {
  const view = withCursor(initialView(), 'abc');
  assert.equal(queryOf(view).cursor, 'abc');
  assert.equal(withCursor(view, null).cursor, null);
});

test('a page holds the ids in the server order, new rows taken, unchanged rows kept as the same objects', () => {
  const a = row('a');
  const b = row('b');
  let page = applyPage(emptyPage(), {
    seq: 3, ids: ['a', 'b'], rows: [a, b], matched: 120, position: 50, next: 'n', prev: 'p',
    totals: { connections: 40000 },
  }, 3);
  assert.deepEqual(page.ids, ['a', 'b']);
  assert.equal(rangeText(page), '51–52 of 120');
  const b2 = row('b', { frames_in: 9 });
  const c = row('c');
  const next = applyPage(page, { seq: 3, ids: ['c', 'b', 'a'], rows: [b2, c], matched: 121, position: 50 }, 3);
  assert.deepEqual(next.ids, ['c', 'b', 'a']);
  assert.equal(next.rows.get('a'), a, 'unchanged: the very same object, its DOM row is left alone');
  assert.equal(next.rows.get('b'), b2);
  assert.deepEqual(next.totals, { connections: 40000 }, 'totals kept when a page has none');
  page = applyPage(next, { seq: 3, ids: ['a'], rows: [] }, 3);
  assert.deepEqual(page.ids, ['a']);
  assert.equal(page.rows.size, 1, 'rows out of view are forgotten');
});

test('a page of another view changes nothing; rows of an older view are no base for a diff', () => {
  const page = applyPage(emptyPage(), { seq: 1, ids: ['a'], rows: [row('a')] }, 1);
  assert.equal(applyPage(page, { seq: 0, ids: ['z'], rows: [row('z')] }, 1), page);
  const newer = applyPage(page, { seq: 2, ids: ['a', 'b'], rows: [row('b')] }, 2);
  assert.deepEqual(newer.ids, ['b'], 'a (not sent again) is not taken from the older view');
  assert.equal(rangeText(emptyPage()), '');
});

test('a 40,000-row page window holds only its rows', () => {
  const ids = Array.from({ length: PAGE_SIZE }, (_, i) => `c${i}`);
  const page = applyPage(emptyPage(), {
    seq: 0, ids, rows: ids.map((id) => row(id)), matched: 40000, position: 40000 - PAGE_SIZE,
  }, 0);
  assert.equal(page.rows.size, PAGE_SIZE);
  assert.equal(rangeText(page), `${(40001 - PAGE_SIZE).toLocaleString('en-US')}–40,000 of 40,000`);
});

test('last frame: seconds since last_seen on the server clock; unknown on another node', () => {
  assert.equal(idleSeconds(row('a', { last_seen: 100 }), 103.5), 3.5);
  assert.equal(idleSeconds(row('a', { last_seen: 100 }), 99), 0, 'never negative');
  assert.equal(idleSeconds(row('a', { last_seen: null }), 103), null);
  assert.equal(clockOffset(1000, 1002.5), 2.5);
  assert.equal(clockOffset(undefined, 1002.5), 0);
});

/**
 * The clients table as a window on the server's list of every connection of
 * the cluster: what the page asks to see (filters, a column and order, a page
 * of PAGE_SIZE rows from a cursor), and the pages the server pushes for it,
 * which carry the ids in view and only the rows that changed since the last
 * page of the same view. Pure functions, unit-tested with node --test; the
 * page renders nothing but the rows in view.
 *
 * A view has a `seq`: every change makes a new one, the server answers with
 * pages of that seq, and pages of an older seq (in flight when the view
 * changed) are dropped.
 */

/** Rows a page shows (the server shows as many on a new push channel: adminview.py DASHBOARD_PAGE). */
export const PAGE_SIZE = 25;

/** The filters the server takes (imserver/http/clientlist.py), in the order the page shows them. */
export const FILTERS = Object.freeze(['q', 'user', 'room', 'remote', 'node', 'health', 'cause']);

/** What each health and reconnect cause filter value reads as. */
export const HEALTH_CHOICES = Object.freeze([
  ['', 'Any health'], ['green', 'OK'], ['amber', 'Late'], ['unknown', 'On another node'],
]);
export const CAUSE_CHOICES = Object.freeze([
  ['', 'Any connection'], ['none', 'First connection'], ['network', 'Reconnect: network'],
  ['error', 'Reconnect: error'], ['close', 'Reconnect: closed'], ['watchdog', 'Reconnect: watchdog'],
  ['shutdown', 'Reconnect: shutdown'], ['other', 'Reconnect: other'],
]);

/** Columns whose first click sorts the largest first (the server's default order for them too). */
export const NUMERIC = Object.freeze(new Set([
  'connected_at', 'idle', 'rtt', 'frames_in', 'frames_out', 'reconnect', 'health',
]));

/** The view before the operator changes anything: every client, newest first (the server's default). */
export function initialView() {
  return { seq: 0, filters: {}, sort: 'connected_at', order: 'desc', cursor: null };
}

/** Whether a view is the server's default one (what a new push channel shows unasked). */
export function isDefault(view) {
  return Object.keys(view.filters).length === 0 && view.sort === 'connected_at'
    && view.order === 'desc' && view.cursor === null;
}

/** The `view` message's query: text arguments only, empty filters left out. */
export function queryOf(view) {
  const query = {};
  for (const name of FILTERS) {
    const value = String(view.filters[name] ?? '').trim();
    if (value) query[name] = value;
  }
  query.sort = view.sort;
  query.order = view.order;
  query.limit = String(PAGE_SIZE);
  if (view.cursor) query.cursor = view.cursor;
  return query;
}

/** The `view` message that asks the server for `view`. */
export function viewMessage(view) {
  return { type: 'view', seq: view.seq, query: queryOf(view) };
}

/** A filter set (or cleared with ''): back to the first page. The same view when nothing changes. */
export function withFilter(view, name, value) {
  if (!FILTERS.includes(name)) return view;
  const text = String(value ?? '').trim();
  if ((view.filters[name] ?? '') === text) return view;
  const filters = { ...view.filters };
  if (text) filters[name] = text;
  else delete filters[name];
  return { ...view, seq: view.seq + 1, filters, cursor: null };
}

/** Every filter cleared. */
export function withoutFilters(view) {
  if (Object.keys(view.filters).length === 0) return view;
  return { ...view, seq: view.seq + 1, filters: {}, cursor: null };
}

/**
 * A click on column `key`: the same column flips its order, another starts
 * with the largest first if numeric, else from A. Back to the first page.
 */
export function withSort(view, key) {
  const order = view.sort === key ? (view.order === 'asc' ? 'desc' : 'asc') : (NUMERIC.has(key) ? 'desc' : 'asc');
  return { ...view, seq: view.seq + 1, sort: key, order, cursor: null };
}

/** The page a cursor of the current page leads to (its `next` or `prev`; null: the first page). */
export function withCursor(view, cursor) {
  return { ...view, seq: view.seq + 1, cursor: cursor || null };
}

/** A page before the server has sent one. */
export function emptyPage() {
  return {
    seq: -1, ids: [], rows: new Map(), matched: 0, position: 0, next: null, prev: null, totals: null,
  };
}

/**
 * The page after a `page` message for view `seq`: the ids in the server's
 * order, each row the message's when it carries one (it changed), else the
 * one already held (the same object, so that the table leaves its DOM row
 * alone). A message of another seq changes nothing.
 */
export function applyPage(page, message, seq) {
  if (!message || message.seq !== seq) return page;
  const changed = new Map((message.rows || []).map((row) => [row.id, row]));
  const rows = new Map();
  for (const id of message.ids || []) {
    const row = changed.get(id) || (page.seq === seq ? page.rows.get(id) : undefined);
    if (row) rows.set(id, row);
  }
  return {
    seq,
    ids: [...rows.keys()],
    rows,
    matched: message.matched ?? rows.size,
    position: message.position ?? 0,
    next: message.next ?? null,
    prev: message.prev ?? null,
    totals: message.totals ?? page.totals,
  };
}

/** "1–50 of 38,000" (with `of` the matching rows), or "" for an empty page. */
export function rangeText(page) {
  if (!page.ids.length) return '';
  const first = page.position + 1;
  const last = page.position + page.ids.length;
  const f = (n) => Math.round(n).toLocaleString('en-US');
  return `${f(first)}–${f(last)} of ${f(page.matched)}`;
}

/**
 * Seconds since a row's last frame at `now` (Unix seconds, the server's
 * clock as the page estimates it); null for another node's row (not known).
 */
export function idleSeconds(row, now) {
  if (row.last_seen === null || row.last_seen === undefined) return null;
  return Math.max(0, now - row.last_seen);
}

/**
 * How far the server's clock is behind the page's (seconds), from a time the
 * server sent (`serverNow`) and when it arrived (`localNow`, both Unix seconds):
 * "ago" texts are then right even when the two clocks disagree.
 */
export function clockOffset(serverNow, localNow) {
  return Number.isFinite(serverNow) ? localNow - serverNow : 0;
}

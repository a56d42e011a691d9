/**
 * The dashboard's state, built from the push channel's messages. `reduce`
 * is a pure function: (state, message) -> new state, so the whole event
 * handling is unit-tested without a socket or a DOM.
 *
 * Messages (imserver/http/adminview.py):
 *   snapshot {closed, stats, summary, now}   on every (re)connect
 *   page     {seq, ids, rows, matched, ...}  the clients in view (listing.js)
 *   tick     {stats, point, closed, summary, now}
 *                                            once a second: stats without the series,
 *                                            point = its newest entry, closed = the
 *                                            connections closed since the last tick
 *   error    {seq, message}                  a view the server did not take
 *
 * The view (what the clients table asks for) is the page's own: the app
 * changes it and tells the server; pages of another view are dropped.
 */
import { applyPage, clockOffset, emptyPage, initialView } from './listing.js';

/** How many closed connections are shown (the server sends at most this many at once). */
export const CLOSED_LIMIT = 50;

export const EMPTY_STATS = Object.freeze({
  connections: 0, users: 0, rooms: 0, terminations_5m: 0, reconnects_5m: 0,
  messages_per_second: 0, uptime: 0,
  series: Object.freeze({ t: [], connections: [], messages_per_second: [] }),
});

export const EMPTY_SUMMARY = Object.freeze({
  top_users: [], rooms: [], nodes: [], terminations: {}, reconnects: {}, window: 300,
});

/** The state before the first snapshot. */
export function initialState(view = initialView()) {
  return {
    ready: false, closed: [], stats: EMPTY_STATS, summary: EMPTY_SUMMARY, view, page: emptyPage(),
    offset: 0, viewError: '',
  };
}

/** The closed connections, newest first, each once, at most CLOSED_LIMIT. */
function newestClosed(incoming, shown) {
  const seen = new Set();
  const all = [];
  for (const entry of [...(incoming || []), ...shown]) {
    if (!entry || seen.has(entry.id)) continue;
    seen.add(entry.id);
    all.push(entry);
    if (all.length === CLOSED_LIMIT) break;
  }
  return all;
}

/**
 * The state after one push message (`localNow`: when it arrived, Unix seconds).
 * Unknown message types leave the state as it is (a newer server may send more kinds).
 */
export function reduce(state, message, localNow = Date.now() / 1000) {
  switch (message && message.type) {
    case 'snapshot':
      return {
        ...state,
        ready: true,
        closed: newestClosed(message.closed, []),
        stats: message.stats || state.stats,
        summary: message.summary || state.summary,
        // A new channel: the server has sent no row of any view on it yet.
        page: emptyPage(),
        offset: clockOffset(message.now, localNow),
        viewError: '',
      };
    case 'page': {
      const page = applyPage(state.page, message, state.view.seq);
      return page === state.page ? state : { ...state, page, viewError: '' };
    }
    case 'tick':
      return {
        ...state,
        closed: message.closed && message.closed.length ? newestClosed(message.closed, state.closed) : state.closed,
        stats: message.stats
          ? { ...message.stats, series: appendPoint(state.stats.series, message.point) }
          : state.stats,
        summary: message.summary || state.summary,
        offset: Number.isFinite(message.now) ? clockOffset(message.now, localNow) : state.offset,
      };
    case 'error':
      return message.seq === state.view.seq ? { ...state, viewError: String(message.message || '') } : state;
    default:
      return state;
  }
}

/** The state with a new view (the app sends it to the server). */
export function withView(state, view) {
  return view === state.view ? state : { ...state, view, viewError: '' };
}

/** How many chart points are kept: 15 minutes of one a second, like the server. */
export const SERIES_LIMIT = 901;

/** The series with one more point, the oldest dropped past SERIES_LIMIT. */
export function appendPoint(series, point) {
  if (!point) return series;
  const keep = (values, value) => [...values, value].slice(-SERIES_LIMIT);
  return {
    t: keep(series.t, point.t),
    connections: keep(series.connections, point.connections),
    messages_per_second: keep(series.messages_per_second, point.messages_per_second),
  };
}

/**
 * The totals shown at the top: the whole cluster's, from the server (the page
 * holds a window of the clients, never all of them).
 */
export function totals(state) {
  const s = state.stats;
  const t = state.page.totals || s;
  return {
    connections: t.connections,
    users: t.users,
    rooms: t.rooms,
    terminations: s.terminations_5m,
    reconnects: s.reconnects_5m,
    mps: s.messages_per_second,
  };
}

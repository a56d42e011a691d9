/**
 * The dashboard's state, built from the push channel's messages. `reduce`
 * is a pure function: (state, message) -> new state, so the whole event
 * handling is unit-tested without a socket or a DOM.
 *
 * Messages (imserver/admin.py):
 *   snapshot {clients, closed, stats}   on every (re)connect
 *   opened   {client}                    a connection was added
 *   closed   {closed}                    a connection ended (newest first)
 *   tick     {stats, point, clients}     once a second; stats without the
 *                                        series, point = its newest entry
 */

/** How many closed connections are kept, like the server's ClosedLog. */
export const CLOSED_LIMIT = 300;

export const EMPTY_STATS = Object.freeze({
  connections: 0, users: 0, rooms: 0, terminations_5m: 0, reconnects_5m: 0,
  messages_per_second: 0, uptime: 0,
  series: Object.freeze({ t: [], connections: [], messages_per_second: [] }),
});

/** The state before the first snapshot. */
export function initialState() {
  return { ready: false, clients: [], closed: [], stats: EMPTY_STATS };
}

/**
 * The state after one push message. Unknown message types leave the state
 * as it is (a newer server may send more kinds).
 */
export function reduce(state, message) {
  switch (message && message.type) {
    case 'snapshot':
      return {
        ready: true,
        clients: [...(message.clients || [])],
        closed: (message.closed || []).slice(0, CLOSED_LIMIT),
        stats: message.stats || state.stats,
      };
    case 'opened': {
      const client = message.client;
      if (!client) return state;
      const others = state.clients.filter((c) => c.id !== client.id);
      return { ...state, clients: [...others, client] };
    }
    case 'closed': {
      const entry = message.closed;
      if (!entry) return state;
      return {
        ...state,
        clients: state.clients.filter((c) => c.id !== entry.id),
        closed: [entry, ...state.closed.filter((c) => c.id !== entry.id)].slice(0, CLOSED_LIMIT),
      };
    }
    case 'tick':
      return {
        ...state,
        clients: message.clients ? [...message.clients] : state.clients,
        stats: message.stats
          ? { ...message.stats, series: appendPoint(state.stats.series, message.point) }
          : state.stats,
      };
    default:
      return state;
  }
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
 * The totals shown at the top. Connections, users and rooms are counted
 * from the client list, which `opened`/`closed` keep current between two
 * ticks; the rest comes from the last stats.
 */
export function totals(state) {
  const users = new Set(state.clients.map((c) => c.user));
  const rooms = new Set(state.clients.flatMap((c) => c.rooms));
  const s = state.stats;
  return {
    connections: state.clients.length,
    users: users.size,
    rooms: rooms.size,
    terminations: s.terminations_5m,
    reconnects: s.reconnects_5m,
    mps: s.messages_per_second,
  };
}

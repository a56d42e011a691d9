/**
 * The clients table's logic, apart from the DOM: which columns there are,
 * how rows are filtered and sorted. Pure functions over the client objects
 * of the admin API (see tests/test_admin.py for their fields). In a cluster
 * each client has its `node`; another node's clients have null for the
 * fields only their node knows (idle, rtt, frames, health).
 */

/**
 * The columns, in display order. `value` gives what a column sorts by;
 * `numeric` columns are right-aligned and start sorting with the largest;
 * `title` explains a terse header.
 */
export const COLUMNS = Object.freeze([
  { key: 'id', label: 'Connection', value: (c) => c.id },
  { key: 'user', label: 'User', value: (c) => c.name || c.user },
  { key: 'rooms', label: 'Rooms', value: (c) => c.rooms.join(', ') },
  { key: 'remote', label: 'Address', value: (c) => c.remote },
  { key: 'node', label: 'Node', value: (c) => c.node || '', title: 'The server the client is connected to' },
  { key: 'user_agent', label: 'User agent', value: (c) => c.user_agent },
  { key: 'connected_at', label: 'Connected', value: (c) => c.connected_at, numeric: true },
  { key: 'idle', label: 'Last frame', value: (c) => c.idle, numeric: true, title: 'Time since the last frame from the client' },
  { key: 'rtt', label: 'RTT', value: (c) => c.rtt, numeric: true, title: 'Heartbeat round trip' },
  { key: 'frames_in', label: 'In', value: (c) => c.frames_in, numeric: true, title: 'Frames received' },
  { key: 'frames_out', label: 'Out', value: (c) => c.frames_out, numeric: true, title: 'Frames sent' },
  { key: 'reconnect', label: 'Reconnect', value: (c) => c.reconnect, numeric: true,
    title: 'Reconnect number the client gave (0: a first connection)' },
  { key: 'health', label: 'Health', value: (c) => (c.health ? Number(c.health === 'amber') : null), numeric: true,
    title: 'Amber: nothing heard for over half the ping timeout' },
]);

const BY_KEY = new Map(COLUMNS.map((col) => [col.key, col]));

/** The default order: newest connections first. */
export const DEFAULT_SORT = Object.freeze({ key: 'connected_at', dir: 'desc' });

/**
 * Compares two sort values: numbers numerically, text by locale with
 * embedded numbers in order ("user2" < "user10"). null/undefined compare
 * as equal to each other; where they go is left to sortClients.
 */
export function compareValues(a, b) {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a).localeCompare(String(b), 'en', { numeric: true, sensitivity: 'base' });
}

const missing = (v) => v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v));

/**
 * A new array of `clients` in the order `sort` = {key, dir} asks for.
 * Missing values (an rtt not yet measured) go last in both directions; ties
 * are broken by connection id so that rows do not jump between updates.
 */
export function sortClients(clients, sort = DEFAULT_SORT) {
  const column = BY_KEY.get(sort.key) || BY_KEY.get(DEFAULT_SORT.key);
  const sign = sort.dir === 'desc' ? -1 : 1;
  return [...clients].sort((x, y) => {
    const a = column.value(x);
    const b = column.value(y);
    if (missing(a) || missing(b)) {
      if (missing(a) && !missing(b)) return 1;
      if (!missing(a) && missing(b)) return -1;
    } else {
      const order = compareValues(a, b);
      if (order !== 0) return sign * order;
    }
    return compareValues(x.id, y.id);
  });
}

/**
 * The sort after a click on column `key`: the same column flips direction,
 * another column starts descending if numeric (largest first), else ascending.
 */
export function nextSort(current, key) {
  if (current && current.key === key) return { key, dir: current.dir === 'asc' ? 'desc' : 'asc' };
  const column = BY_KEY.get(key);
  return { key, dir: column && column.numeric ? 'desc' : 'asc' };
}

/**
 * The clients whose user (id or display name), node or one of whose rooms
 * contains every word of `query`, case-insensitively. An empty query keeps
 * everything.
 */
export function filterClients(clients, query) {
  const words = String(query || '').toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return [...clients];
  return clients.filter((c) => {
    const haystack = [c.user, c.name || '', c.node || '', ...c.rooms].map((s) => String(s).toLowerCase());
    return words.every((w) => haystack.some((s) => s.includes(w)));
  });
}

/** What the table shows: filtered, then sorted. */
export function visibleClients(clients, { query = '', sort = DEFAULT_SORT } = {}) {
  return sortClients(filterClients(clients, query), sort);
}

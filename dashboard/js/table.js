/**
 * The clients table's columns. Rows are filtered, sorted and paged by the
 * server (imserver/http/clientlist.py); each column here is one the server
 * sorts by, under the same key. In a cluster each client has its `node`;
 * another node's clients have null for the fields only their node knows
 * (last frame, rtt, frames, health).
 */

/**
 * The columns, in display order. `numeric` columns are right-aligned and
 * start sorting with the largest; `title` explains a terse header.
 */
export const COLUMNS = Object.freeze([
  { key: 'id', label: 'Connection' },
  { key: 'user', label: 'User' },
  { key: 'rooms', label: 'Rooms' },
  { key: 'remote', label: 'Address' },
  { key: 'node', label: 'Node', title: 'The server the client is connected to' },
  { key: 'user_agent', label: 'User agent' },
  { key: 'connected_at', label: 'Connected', numeric: true },
  { key: 'idle', label: 'Last frame', numeric: true, title: 'Time since the last frame from the client' },
  { key: 'rtt', label: 'RTT', numeric: true, title: 'Heartbeat round trip' },
  { key: 'frames_in', label: 'In', numeric: true, title: 'Frames received' },
  { key: 'frames_out', label: 'Out', numeric: true, title: 'Frames sent' },
  { key: 'reconnect', label: 'Reconnect', numeric: true,
    title: 'Reconnect number the client gave (0: a first connection), and why it reconnected' },
  { key: 'health', label: 'Health', numeric: true, title: 'Amber: nothing heard for over half the ping timeout' },
]);

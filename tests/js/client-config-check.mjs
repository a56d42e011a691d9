/**
 * Run by tests/test_client_config.py against a real server:
 *
 *     node tests/js/client-config-check.mjs http://127.0.0.1:PORT
 *
 * Fetches GET /api/client-config as the chat page does, builds the page's
 * ChatConnection from the answer (and nothing else), lets every attempt fail
 * on a fake WebSocket with random() at its maximum, and prints JSON: what
 * the server served, the policy and outbox limit the connection took, and
 * the reconnect delays (ms) it waited before giving up.
 */
import { ChatConnection } from '../../static/js/connection.js';
import { createFakeTime, createFakeWebSocket } from './fakes.mjs';

const base = process.argv[2];
const response = await fetch(`${base}/api/client-config`);
if (!response.ok) throw new Error(`GET /api/client-config: HTTP ${response.status}`);
const served = await response.json();

const time = createFakeTime();
const WebSocket = createFakeWebSocket();
const conn = new ChatConnection({
  ...served,
  url: `${base.replace(/^http/, 'ws')}/ws`,
  WebSocket,
  now: time.now,
  setTimeout: time.setTimeout,
  clearTimeout: time.clearTimeout,
  random: () => 1 - Number.EPSILON,
  storage: null,
  window: null,
  document: null,
});
const delays = [];
let timeouts = 0;
conn.addEventListener('statechange', (e) => {
  if (e.detail.state === 'waiting') delays.push(e.detail.delay);
});
conn.connect();
// The first attempt hangs until the connect timeout; the others fail at once.
const opened = WebSocket.instances.length;
time.advance(conn.policy.connectTimeout * 1000);
if (conn.state === 'waiting' && WebSocket.instances.length === opened) timeouts += 1;
while (conn.state !== 'stopped') {
  time.advance(delays.at(-1));
  WebSocket.last.fail();
}
console.log(JSON.stringify({
  served,
  policy: { ...conn.policy },
  outbox_limit: conn.outboxLimit,
  delays,
  timeouts,
  sockets: WebSocket.instances.length,
  stop_reason: conn.stopReason,
}));

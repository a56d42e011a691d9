/**
 * A ChatConnection wired to the fakes of fakes.mjs, for the tests of the
 * connection and of what is built on it (the store, the React and Vue
 * adapters).
 */
import { ChatConnection } from '../../static/js/connection.js';
import {
  createFakeBrowser, createFakeStorage, createFakeTime, createFakeWebSocket,
} from './fakes.mjs';

/**
 * The settings the tests run with, in the shape of GET /api/client-config
 * (the server's defaults at the time of writing; the page always passes what
 * the server serves, see tests/test_client_config.py).
 */
export const CLIENT_CONFIG = {
  reconnect: { base: 1.0, factor: 2.0, cap: 30.0, attempts: 10, stable_after: 10.0, connect_timeout: 10.0 },
  outbox_limit: 200,
};

/**
 * A connection wired to fakes, with its cids `cid-1`, `cid-2`, ... and
 * `random` fixed at 0.5 unless given: {conn, time, WS, browser, storage}.
 */
export function fakeConnection(options = {}) {
  const time = createFakeTime();
  const WS = createFakeWebSocket();
  const browser = createFakeBrowser();
  const storage = options.storage ?? createFakeStorage();
  let n = 0;
  const conn = new ChatConnection({
    ...CLIENT_CONFIG,
    url: 'ws://chat.test/ws',
    token: 'tok',
    WebSocket: WS,
    now: time.now,
    setTimeout: time.setTimeout,
    clearTimeout: time.clearTimeout,
    random: () => 0.5,
    storage,
    createId: () => `cid-${++n}`,
    window: browser.window,
    document: browser.document,
    ...options,
  });
  return { conn, time, WS, browser, storage };
}

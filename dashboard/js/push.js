/**
 * PushChannel: the dashboard's live feed from /admin/ws, on the shared
 * ReconnectingSocket (static/shared/socket.js: capped exponential backoff
 * with full jitter, one attempt at a time). What is the dashboard's own is
 * here: its reconnect policy, its URL, and that each message is JSON. It
 * never gives up, whatever the close code: the page checks its session
 * while the channel waits (a refused upgrade looks like any failure).
 *
 * Events (CustomEvents, payload in `event.detail`):
 * - `statechange` {state, previous, attempt, retryAt}
 * - `message`     each JSON message from the server, parsed
 *
 * The page sends one kind of message, its view of the clients list
 * ({type: "view", seq, query}); the server pushes the rest.
 */
import { backoffDelay } from '../../static/shared/backoff.js';
import { ReconnectingSocket, SocketState } from '../../static/shared/socket.js';

export const PushState = SocketState;

/**
 * The dashboard's reconnect policy (seconds) and its plumbing. These are not
 * the chat client's settings (config.yaml `client`): an operator's page
 * comes back sooner and never gives up.
 */
export const DEFAULTS = Object.freeze({
  base: 0.5, // ceiling of the first retry delay
  factor: 2,
  cap: 15, // no retry waits longer
  stableAfter: 5, // seconds open before the attempt count starts again
  connectTimeout: 8, // seconds an attempt may take to open
  WebSocket: globalThis.WebSocket,
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (id) => globalThis.clearTimeout(id),
  now: () => Date.now(),
  random: Math.random,
});

/** The delay in seconds before retry `attempt` (1-based): random() * min(cap, base * factor^(attempt-1)). */
export const retryDelay = backoffDelay;

/** The push channel's URL for a page at `location`: ws(s)://host/admin/ws. */
export function pushUrl(location) {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/admin/ws`;
}

export class PushChannel extends EventTarget {
  constructor(url, options = {}) {
    super();
    this.url = url;
    this.options = { ...DEFAULTS, ...options };
    const o = this.options;
    this._socket = new ReconnectingSocket({
      url,
      policy: {
        base: o.base, factor: o.factor, cap: o.cap, stableAfter: o.stableAfter, connectTimeout: o.connectTimeout,
      },
      WebSocket: o.WebSocket,
      setTimeout: o.setTimeout,
      clearTimeout: o.clearTimeout,
      now: o.now,
      random: o.random,
    });
    this._socket.addEventListener('statechange', (event) => {
      const { state, previous, attempt, retryAt } = event.detail;
      this.dispatchEvent(new CustomEvent('statechange', { detail: { state, previous, attempt, retryAt } }));
    });
    this._socket.addEventListener('message', (event) => {
      let message;
      try {
        message = JSON.parse(event.detail.data);
      } catch {
        return; // not ours to understand
      }
      this.dispatchEvent(new CustomEvent('message', { detail: message }));
    });
  }

  get state() {
    return this._socket.state;
  }

  /** Failed attempts in a row (0 once the channel stayed open). */
  get attempt() {
    return this._socket.attempt;
  }

  /** When the next attempt is due (ms of options.now) while waiting, else null. */
  get retryAt() {
    return this._socket.retryAt;
  }

  /** Connects, unless already started. */
  start() {
    this._socket.start();
  }

  /** Closes the channel and stops reconnecting. */
  stop() {
    this._socket.stop();
  }

  /** Sends a message (JSON) while open; false when it cannot (it is sent again on the next open). */
  send(message) {
    return this._socket.send(JSON.stringify(message));
  }

  /** While waiting: tries again at once. */
  retryNow() {
    this._socket.retryNow();
  }
}

/**
 * PushChannel: the dashboard's live feed from /admin/ws, reconnected with
 * capped exponential backoff and full jitter whenever it drops. It knows
 * nothing of the DOM.
 *
 * State (changed only by `_setState`, which emits `statechange`):
 *
 *     stopped --start()--> connecting --open--> open
 *        ^                   |   ^                |
 *        |       fail/timeout|   |timer,          | drop
 *        +------stop()------ waiting <-----------+
 *                                retryNow()
 *
 * Events (CustomEvents, payload in `event.detail`):
 * - `statechange` {state, previous, attempt, retryAt}
 * - `message`     each JSON message from the server, parsed
 *
 * The browser does not show why an upgrade failed (a 401 looks like any
 * other failure), so the page checks its session when the channel waits.
 */

export const PushState = Object.freeze({
  CONNECTING: 'connecting',
  OPEN: 'open',
  WAITING: 'waiting',
  STOPPED: 'stopped',
});

export const DEFAULTS = Object.freeze({
  base: 0.5, // seconds: ceiling of the first retry delay
  factor: 2,
  cap: 15, // seconds: no retry waits longer
  stableAfter: 5, // seconds open before the attempt count starts again
  connectTimeout: 8, // seconds an attempt may take to open
  WebSocket: globalThis.WebSocket,
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (id) => globalThis.clearTimeout(id),
  now: () => Date.now(),
  random: Math.random,
});

/** The delay in seconds before retry `attempt` (1-based): random() * min(cap, base * factor^(attempt-1)). */
export function retryDelay(attempt, { base, factor, cap }, random = Math.random) {
  return random() * Math.min(cap, base * factor ** (attempt - 1));
}

/** The push channel's URL for a page at `location`: ws(s)://host/admin/ws. */
export function pushUrl(location) {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/admin/ws`;
}

export class PushChannel extends EventTarget {
  constructor(url, options = {}) {
    super();
    this.url = url;
    this.options = { ...DEFAULTS, ...options };
    this.state = PushState.STOPPED;
    this.attempt = 0; // failed attempts in a row
    this.retryAt = null; // ms (options.now) of the next attempt while waiting
    this._ws = null;
    this._timers = { connect: null, stable: null, retry: null };
  }

  /** Connects, unless already started. */
  start() {
    if (this.state !== PushState.STOPPED) return;
    this.attempt = 0;
    this._connect();
  }

  /** Closes the channel and stops reconnecting. */
  stop() {
    this._clearTimers();
    this._detach(true);
    this._setState(PushState.STOPPED);
  }

  /** While waiting: tries again at once. */
  retryNow() {
    if (this.state !== PushState.WAITING) return;
    this._clearTimers();
    this._connect();
  }

  _connect() {
    const o = this.options;
    this.retryAt = null;
    this._setState(PushState.CONNECTING);
    let ws;
    try {
      ws = new o.WebSocket(this.url);
    } catch {
      this._dropped();
      return;
    }
    this._ws = ws;
    this._timers.connect = o.setTimeout(() => this._dropped(), o.connectTimeout * 1000);
    ws.onopen = () => {
      this._clear('connect');
      this._timers.stable = o.setTimeout(() => {
        this._timers.stable = null;
        this.attempt = 0;
      }, o.stableAfter * 1000);
      this._setState(PushState.OPEN);
    };
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // not ours to understand
      }
      this.dispatchEvent(new CustomEvent('message', { detail: message }));
    };
    ws.onclose = () => this._dropped();
    ws.onerror = () => {}; // a close event follows
  }

  /** The socket closed, failed or timed out: wait, then try again. */
  _dropped() {
    this._clearTimers();
    this._detach(true);
    if (this.state === PushState.STOPPED) return;
    const o = this.options;
    this.attempt += 1;
    const delay = retryDelay(this.attempt, o, o.random);
    this.retryAt = o.now() + delay * 1000;
    this._timers.retry = o.setTimeout(() => {
      this._timers.retry = null;
      this._connect();
    }, delay * 1000);
    this._setState(PushState.WAITING);
  }

  _detach(close) {
    const ws = this._ws;
    this._ws = null;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    if (close && ws.readyState < 2) ws.close();
  }

  _clear(name) {
    if (this._timers[name] !== null) this.options.clearTimeout(this._timers[name]);
    this._timers[name] = null;
  }

  _clearTimers() {
    for (const name of Object.keys(this._timers)) this._clear(name);
  }

  _setState(state) {
    const previous = this.state;
    this.state = state;
    this.dispatchEvent(new CustomEvent('statechange', {
      detail: { state, previous, attempt: this.attempt, retryAt: this.retryAt },
    }));
  }
}

/**
 * ReconnectingSocket: a WebSocket that comes back by itself, shared by the
 * chat page and the admin dashboard. It knows no protocol: it opens, closes
 * and reconnects with capped exponential backoff and full jitter, keeps at
 * most one attempt in flight, announces its state, and sends while open.
 * What a frame means, and what a close code asks for, is its user's business
 * (see the `onClose` option).
 *
 * State (changed only by `_setState`, which emits `statechange`):
 *
 *     stopped    --start()-->                           connecting
 *     connecting --open (or markOpen())-->              open
 *     connecting --failure, connect timeout-->          waiting
 *     open       --close, error, reconnect()-->         waiting
 *     waiting    --timer, retryNow()-->                 connecting
 *     any        --stop(), onClose says stop,
 *                  last attempt failed-->               stopped
 *
 * Events (CustomEvents, payload in `event.detail`):
 * - `statechange` {state, previous, attempt, attempts, cause, delay, retryAt,
 *   reason, message}: delay (ms) while waiting; reason and message when stopped
 * - `message`     {data}: each frame as received, not parsed
 * - `open`        the WebSocket opened (before markOpen(), with awaitReady)
 * - `drop`        the current WebSocket was let go, for whatever reason:
 *   per-socket work (a heartbeat, timers) ends here
 */
import { backoffDelay } from './backoff.js';

export const SocketState = Object.freeze({
  CONNECTING: 'connecting',
  OPEN: 'open',
  WAITING: 'waiting',
  STOPPED: 'stopped',
});

/** Why the socket stopped by itself. Users may stop it with reasons of their own. */
export const SocketStopReason = Object.freeze({
  GAVE_UP: 'gave_up',
  CLOSED: 'closed',
});

const WS_OPEN = 1;
const WS_CLOSING = 2;

function checkNumber(name, value, { min = 0, integer = false } = {}) {
  const ok = typeof value === 'number' && !Number.isNaN(value) && value >= min
    && (!integer || Number.isInteger(value) || value === Infinity);
  if (!ok) {
    const kind = integer ? 'an integer' : 'a number';
    throw new RangeError(`option ${name} must be ${kind} >= ${min}, got ${JSON.stringify(value)}`);
  }
}

/**
 * Checks a reconnect policy (times in seconds) and returns a frozen copy:
 * base, factor, cap (the backoff), attempts (failed attempts in a row before
 * giving up; Infinity: never), stableAfter (seconds open before the attempt
 * count starts again), connectTimeout (seconds an attempt may take to open).
 * `names` maps these keys to the option names used in errors.
 */
export function checkPolicy(policy, names = {}) {
  if (!policy || typeof policy !== 'object') throw new TypeError('a reconnect policy is required');
  const name = (key) => names[key] ?? key;
  const p = { attempts: Infinity, ...policy };
  checkNumber(name('base'), p.base, { min: Number.MIN_VALUE });
  checkNumber(name('factor'), p.factor, { min: 1 });
  checkNumber(name('cap'), p.cap);
  checkNumber(name('attempts'), p.attempts, { integer: true });
  checkNumber(name('stableAfter'), p.stableAfter);
  checkNumber(name('connectTimeout'), p.connectTimeout, { min: Number.MIN_VALUE });
  for (const key of ['base', 'factor', 'cap', 'stableAfter', 'connectTimeout']) {
    checkNumber(name(key), p[key]);
    if (!Number.isFinite(p[key])) throw new RangeError(`option ${name(key)} must be finite, got ${p[key]}`);
  }
  return Object.freeze(p);
}

export class ReconnectingSocket extends EventTarget {
  /**
   * @param {object} o
   * @param {string | ((attempt: number, cause: string|null) => string)} o.url
   *   the URL, or a function of the attempt number (0: first connect) and the
   *   cause of the reconnect
   * @param {object} o.policy see checkPolicy()
   * @param {boolean} [o.awaitReady] the socket counts as open only once
   *   markOpen() is called (e.g. after a welcome message), not when the
   *   WebSocket opens; the connect timeout runs until then
   * @param {(info: object) => (object|undefined)} [o.onClose] told of every
   *   close of the current WebSocket, {code, reason, wasClean, opened, ready,
   *   error}; may return {stop: reason, message} to stop, or {cause, delay}
   *   (delay in ms, null: the backoff) to reconnect. By default it reconnects
   *   after the backoff with cause `error` (the socket failed) or `close`.
   * @param {Function} [o.WebSocket] WebSocket constructor
   * @param {() => number} [o.now] wall-clock ms
   * @param {Function} [o.setTimeout]
   * @param {Function} [o.clearTimeout]
   * @param {() => number} [o.random] in [0, 1), for the jitter
   */
  constructor({
    url,
    policy,
    awaitReady = false,
    onClose = null,
    WebSocket = globalThis.WebSocket,
    now = () => Date.now(),
    setTimeout = (fn, ms) => globalThis.setTimeout(fn, ms),
    clearTimeout = (id) => globalThis.clearTimeout(id),
    random = Math.random,
  }) {
    super();
    this.policy = checkPolicy(policy);
    this.url = url;
    this._awaitReady = awaitReady;
    this._onClose = onClose;
    this._WebSocket = WebSocket;
    this._now = now;
    this._setTimeout = setTimeout;
    this._clearTimeout = clearTimeout;
    this._random = random;

    this._state = SocketState.STOPPED;
    this._stopReason = null;
    /** The number of the current or next attempt (0: the first connect). */
    this._attempt = 0;
    this._cause = null;
    this._retryAt = null;
    this._openedAt = null;
    this._ws = null;
    this._wsOpened = false;
    this._ready = false;
    this._sawError = false;
    this._timers = { retry: null, connect: null, stable: null };
  }

  // ---- public state -------------------------------------------------------

  get state() {
    return this._state;
  }

  /** The current or upcoming attempt number (0: first connect). */
  get attempt() {
    return this._attempt;
  }

  /** Why the last reconnect was made (null for a first connect). */
  get cause() {
    return this._cause;
  }

  /** When the next attempt is due (ms of now()), while waiting; else null. */
  get retryAt() {
    return this._retryAt;
  }

  /** Why the socket stopped, while stopped. */
  get stopReason() {
    return this._stopReason;
  }

  /** True while frames can be sent (the WebSocket is open). */
  get sendable() {
    return this._ws !== null && this._ws.readyState === WS_OPEN;
  }

  // ---- lifecycle ----------------------------------------------------------

  /**
   * Connects when stopped, as attempt `attempt` with `cause` (a manual
   * reconnect passes 1 and a cause). Does nothing while connecting, open or
   * waiting: one attempt at a time.
   */
  start({ attempt = 0, cause = null } = {}) {
    if (this._state !== SocketState.STOPPED) return;
    this._attempt = attempt;
    this._open(cause);
  }

  /** While waiting: tries again at once. Does nothing in other states. */
  retryNow(cause = null) {
    if (this._state !== SocketState.WAITING) return;
    this._open(cause ?? this._cause);
  }

  /**
   * Lets the current WebSocket go (closed with `code`, without waiting for
   * its close event: on a dead network that can take minutes) and reconnects
   * after the backoff, with `cause`.
   */
  reconnect(cause, code = undefined) {
    if (this._state !== SocketState.OPEN && this._state !== SocketState.CONNECTING) return;
    this._drop(code === undefined ? [] : [code]);
    this._schedule(cause);
  }

  /** Stops for good (until start()): closes the WebSocket with `code`, no reconnect. */
  stop({ reason = SocketStopReason.CLOSED, message = '', code = undefined } = {}) {
    this._drop(code === undefined ? [] : [code]);
    this._clear('retry');
    this._openedAt = null;
    this._retryAt = null;
    this._stopReason = reason;
    this._setState(SocketState.STOPPED, { reason, message });
  }

  /** With awaitReady: the protocol's handshake is done, the socket is open. */
  markOpen() {
    if (this._state !== SocketState.CONNECTING || this._ws === null || this._ready) return;
    this._ready = true;
    this._opened();
  }

  /** Sends `data` while the WebSocket is open; returns whether it was sent. */
  send(data) {
    if (!this.sendable) return false;
    this._ws.send(data);
    return true;
  }

  // ---- internals ----------------------------------------------------------

  _open(cause) {
    this._clear('retry');
    if (this._ws !== null) return;
    this._cause = cause;
    this._retryAt = null;
    const url = typeof this.url === 'function' ? this.url(this._attempt, cause) : this.url;
    let ws;
    try {
      ws = new this._WebSocket(url);
    } catch {
      // A malformed URL or a blocked port: a failed attempt.
      this._setState(SocketState.CONNECTING);
      this._schedule('error');
      return;
    }
    this._ws = ws;
    this._wsOpened = false;
    this._ready = false;
    this._sawError = false;
    ws.onopen = () => {
      this._wsOpened = true;
      this._emit('open', {});
      if (!this._awaitReady) this._opened();
    };
    ws.onmessage = (event) => this._emit('message', { data: event.data });
    ws.onerror = () => {
      this._sawError = true; // a close event follows
    };
    ws.onclose = (event) => this._closed(event);
    this._timers.connect = this._setTimeout(() => {
      this._timers.connect = null;
      this.reconnect('error');
    }, this.policy.connectTimeout * 1000);
    this._setState(SocketState.CONNECTING);
  }

  _opened() {
    this._clear('connect');
    this._openedAt = this._now();
    this._timers.stable = this._setTimeout(() => {
      this._timers.stable = null;
      this._attempt = 0;
    }, this.policy.stableAfter * 1000);
    this._setState(SocketState.OPEN);
  }

  _closed(event) {
    const info = {
      code: event.code,
      reason: event.reason || '',
      wasClean: Boolean(event.wasClean),
      opened: this._wsOpened,
      ready: this._awaitReady ? this._ready : this._wsOpened,
      error: this._sawError,
    };
    this._drop(null);
    const decision = this._onClose ? this._onClose(info) : undefined;
    if (decision && decision.stop) {
      this.stop({ reason: decision.stop, message: decision.message ?? '' });
      return;
    }
    const cause = (decision && decision.cause) || (info.error ? 'error' : 'close');
    this._schedule(cause, decision && decision.delay !== undefined ? decision.delay : null);
  }

  /**
   * Detaches the current WebSocket and its timers; closes it with
   * `closeArgs` unless null (it closed by itself).
   */
  _drop(closeArgs) {
    const ws = this._ws;
    this._clear('connect');
    this._clear('stable');
    if (!ws) return;
    this._ws = null;
    ws.onopen = null;
    ws.onmessage = null;
    ws.onerror = null;
    ws.onclose = null;
    if (closeArgs !== null && ws.readyState < WS_CLOSING) {
      try {
        ws.close(...closeArgs);
      } catch {
        // already closing
      }
    }
    this._emit('drop', {});
  }

  /** Waits before attempt n+1: the backoff, or `fixedDelay` ms; stops after the last attempt. */
  _schedule(cause, fixedDelay = null) {
    const p = this.policy;
    if (this._openedAt !== null && this._now() - this._openedAt >= p.stableAfter * 1000) {
      // The stable timer may not have run (a throttled tab): the wall clock decides.
      this._attempt = 0;
    }
    this._openedAt = null;
    this._cause = cause;
    const next = this._attempt + 1;
    if (next > p.attempts) {
      this.stop({ reason: SocketStopReason.GAVE_UP });
      return;
    }
    this._attempt = next;
    const delay = fixedDelay ?? backoffDelay(next, p, this._random) * 1000;
    this._retryAt = this._now() + delay;
    this._clear('retry');
    this._timers.retry = this._setTimeout(() => {
      this._timers.retry = null;
      this._open(this._cause);
    }, delay);
    this._setState(SocketState.WAITING, { delay });
  }

  _setState(state, extra = {}) {
    const previous = this._state;
    this._state = state;
    if (state !== SocketState.STOPPED) this._stopReason = null;
    this._emit('statechange', {
      state,
      previous,
      attempt: this._attempt,
      attempts: this.policy.attempts,
      cause: this._cause,
      delay: null,
      retryAt: this._retryAt,
      reason: null,
      message: '',
      ...extra,
    });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _clear(name) {
    if (this._timers[name] !== null) {
      this._clearTimeout(this._timers[name]);
      this._timers[name] = null;
    }
  }
}

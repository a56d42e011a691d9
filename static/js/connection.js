/**
 * ChatConnection: one user's link to the chat server, kept alive across
 * network failures, server restarts and background tabs. It knows nothing of
 * the DOM; the page listens to its events.
 *
 * The socket, its backoff and its states are the shared ReconnectingSocket
 * (static/shared/socket.js), which the dashboard uses too. What is the chat's
 * own is here: open means welcomed; recovery after each (re)connect (join with
 * `since`, dm_sync); the heartbeat watchdog; the outbox; what the close codes
 * and `bye` ask for; the browser's online, offline and visibility signals.
 * The reconnect policy and the outbox limit are options, with no default
 * here: the page passes what GET /api/client-config serves.
 *
 * State (changed only by `_setState`, which emits `statechange`):
 *
 *     stopped    --connect(), retryNow()-->               connecting
 *     connecting --welcome frame-->                       open
 *     connecting --failure, connect timeout-->            waiting
 *     open       --close, error, watchdog, offline, bye-> waiting
 *     waiting    --timer, online, visible, retryNow()-->  connecting
 *     any        --4001, 4003, 1000 from the server,
 *                  last attempt failed, close()-->        stopped
 *
 * Events (all CustomEvents; the payload is in `event.detail`):
 *
 * - `statechange` {state, previous, attempt, attempts, cause, delay,
 *   reconnectAt, reason, message}
 * - `welcome`  the welcome frame (the connection is open)
 * - `message`  every JSON frame from the server, as an object
 * - `ack`      {ack, sent}: the ack frame and the frame it acknowledges
 * - `failed`   {cid, code, message, sent}: a queued frame the server refused
 *   for good; it has left the outbox
 * - `error`    an error frame from the server
 * - `outbox`   {size, limit}: the number of unacknowledged frames changed
 * - `refused`  {room, code, message}: the server refused to let us join
 *   `room` (a private room, or the application's refusal); it is not joined again
 * - `refreshed` {expires}: the server took the token from `getToken`
 *   (expires: epoch seconds); it is the token of the next connects too
 * - `refreshfailed` {code, message, delay}: getting or sending a fresh token
 *   failed (`token_unavailable`: getToken failed; `bad_token`, `forbidden`:
 *   the server refused it); it is tried again after `delay` ms
 * - `stopped`  {reason, message}: reason `auth` (4001, or refreshToken found
 *   the session gone), `kicked` (4003, with
 *   the operator's reason as message), `gave_up`, `server_closed` (1000 from
 *   the server) or `closed` (close() was called)
 */
import { backoffDelay } from '../shared/backoff.js';
import { ReconnectingSocket, SocketState, SocketStopReason, checkPolicy } from '../shared/socket.js';
import { createClientId } from './client-id.js';
import { Outbox } from './outbox.js';
import { Watchdog } from './watchdog.js';

export const State = SocketState;

/** Why a reconnect attempt is made; sent to the server as `cause`. */
export const Cause = Object.freeze({
  CLOSE: 'close',
  ERROR: 'error',
  WATCHDOG: 'watchdog',
  NETWORK: 'network',
  SHUTDOWN: 'shutdown',
});

/** Why the connection stopped for good (until connect() or retryNow()). */
export const StopReason = Object.freeze({
  AUTH: 'auth',
  KICKED: 'kicked',
  GAVE_UP: SocketStopReason.GAVE_UP,
  SERVER_CLOSED: 'server_closed',
  CLOSED: SocketStopReason.CLOSED,
});

/** WebSocket close codes of the protocol. */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  WATCHDOG: 4000,
  UNAUTHENTICATED: 4001,
  KICKED: 4003,
});

/** Error codes of a join that another try may pass (the join hook did not answer, a flood). */
const PASSING_JOIN_ERRORS = new Set(['unavailable', 'rate_limited']);

/** The longest a timer may be set for (ms): a longer setTimeout fires at once. */
const MAX_TIMER = 2 ** 31 - 1;

/** Error codes after which re-sending the same frame cannot succeed. */
const FINAL_ERROR_CODES = new Set([
  'bad_request', 'too_long', 'not_in_room', 'unknown_user', 'muted', 'forbidden', 'not_found', 'deleted',
]);

/**
 * Defaults of the options that are the client's own. The reconnect policy
 * (`reconnect`) and `outbox_limit` have none here: they come from the
 * server, GET /api/client-config (config.yaml, defaults in imserver/config.py),
 * and are passed as they come, in the server's snake_case spelling.
 */
export const DEFAULTS = Object.freeze({
  /** Used only if the welcome frame has no heartbeat. */
  heartbeat: Object.freeze({ interval: 10, timeout: 20 }),
  /** Seconds before re-sending a frame refused with a passing error (rate_limited, unavailable). */
  resend_delay: 2.0,
  /** The WebSocket endpoint without query; null: /ws on the page's origin. */
  url: null,
  /** The token from /api/login or /api/me, passed as ?token=. */
  token: null,
  /** Storage key of the outbox; make it per user. */
  storage_key: 'imserver.outbox',
  /**
   * Seconds before the token expires that a refresh is sent (with getToken):
   * this, or a tenth of the token's remaining lifetime if that is shorter,
   * and up to half as much again at random.
   */
  refresh_lead: 60,
});

function isPlainObject(value) {
  return value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype;
}

/** Merges options over defaults, one level deep for nested option groups. */
export function mergeOptions(defaults, options) {
  const merged = { ...defaults, ...options };
  for (const [key, value] of Object.entries(defaults)) {
    if (isPlainObject(value) && isPlainObject(options[key])) {
      merged[key] = { ...value, ...options[key] };
    }
  }
  return merged;
}

/**
 * The shared socket's policy from the server's `reconnect` settings
 * ({base, factor, cap, attempts, stable_after, connect_timeout}, seconds).
 */
export function reconnectPolicy(reconnect) {
  if (!isPlainObject(reconnect)) {
    throw new TypeError('option reconnect is required (the settings of GET /api/client-config)');
  }
  return checkPolicy({
    base: reconnect.base,
    factor: reconnect.factor,
    cap: reconnect.cap,
    attempts: reconnect.attempts,
    stableAfter: reconnect.stable_after,
    connectTimeout: reconnect.connect_timeout,
  }, {
    base: 'reconnect.base',
    factor: 'reconnect.factor',
    cap: 'reconnect.cap',
    attempts: 'reconnect.attempts',
    stableAfter: 'reconnect.stable_after',
    connectTimeout: 'reconnect.connect_timeout',
  });
}

function defaultUrl() {
  const loc = globalThis.location;
  if (!loc) throw new Error('option url is required outside a browser');
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/ws`;
}

export class ChatConnection extends EventTarget {
  /**
   * @param {object} options merged over DEFAULTS; besides those keys:
   * @param {object} options.reconnect {base, factor, cap, attempts,
   *   stable_after, connect_timeout}: the `reconnect` of /api/client-config
   * @param {number} options.outbox_limit the `outbox_limit` of /api/client-config
   * @param {Function} [options.WebSocket] WebSocket constructor
   * @param {() => number} [options.now] wall-clock ms
   * @param {Function} [options.setTimeout]
   * @param {Function} [options.clearTimeout]
   * @param {() => number} [options.random] in [0, 1), for the jitter
   * @param {Storage|null} [options.storage] sessionStorage-like, for the outbox
   * @param {() => string} [options.createId] makes a cid
   * @param {EventTarget|null} [options.window] source of online, offline, pageshow
   * @param {EventTarget|null} [options.document] source of visibilitychange, has .hidden
   * @param {() => Promise<string|null>} [options.refreshToken] called when a
   *   socket failed before opening (the server may refuse the upgrade with a
   *   plain 401, which a browser cannot see): resolve to a fresh token, or
   *   to null when the session is gone (the connection then stops with `auth`).
   * @param {() => Promise<string>} [options.getToken] the application's way
   *   to mint a fresh token for the same user. With it, when the welcome says
   *   when the token expires, a fresh one is sent (`refresh`) a little before
   *   (see refresh_lead), again after a failure, and used for later connects;
   *   a token that expired anyway (a tab asleep past the refresh) is replaced
   *   before the next connect instead of stopping with `auth`.
   */
  constructor(options = {}) {
    super();
    const o = mergeOptions(DEFAULTS, options);
    const policy = reconnectPolicy(o.reconnect);
    const limit = o.outbox_limit;
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(`option outbox_limit must be an integer >= 1, got ${JSON.stringify(limit)}`);
    }
    this.options = o;
    this.token = o.token;

    const g = globalThis;
    this._now = o.now ?? (() => Date.now());
    this._setTimeout = o.setTimeout ?? g.setTimeout.bind(g);
    this._clearTimeout = o.clearTimeout ?? g.clearTimeout.bind(g);
    this._createId = o.createId ?? (() => createClientId());
    this._window = o.window !== undefined ? o.window : (g.window ?? null);
    this._document = o.document !== undefined ? o.document : (g.document ?? null);
    this._refreshToken = o.refreshToken ?? null;
    this._getToken = o.getToken ?? null;
    this._random = o.random ?? Math.random;
    let storage = o.storage;
    if (storage === undefined) {
      try {
        storage = g.sessionStorage ?? null;
      } catch {
        storage = null; // blocked by privacy settings
      }
    }
    this._outbox = new Outbox({ limit, storage, key: o.storage_key, now: this._now });

    this._socket = new ReconnectingSocket({
      url: (attempt, cause) => this._buildUrl(attempt, cause),
      policy,
      awaitReady: true, // open means welcomed
      onClose: (info) => this._handleClose(info),
      WebSocket: o.WebSocket ?? g.WebSocket,
      now: this._now,
      setTimeout: this._setTimeout,
      clearTimeout: this._clearTimeout,
      random: this._random,
    });
    this._socket.addEventListener('statechange', (e) => this._socketStateChanged(e.detail));
    this._socket.addEventListener('message', (e) => this._handleData(e.detail.data));
    this._socket.addEventListener('drop', () => this._dropSocket());

    this._hasTried = false;
    this._user = null;

    // Per socket.
    this._welcomed = false;
    this._byeRetryAfter = null;
    this._watchdog = null;
    /** Streams whose recovery answer arrived on this socket: `room:x`, `dm`. */
    this._synced = new Set();

    this._resendTimer = null;
    this._toResend = new Set();

    /** Rooms to be in; each is re-joined after every reconnect. */
    this._rooms = new Set();
    /** Rooms left while no socket was open: the server hears it on the next one. */
    this._leaveOwed = new Set();
    /** Rooms joined on this socket whose answer has not come. */
    this._joinsAwaiting = new Set();
    /** Rooms whose join failed for a passing reason: joined again with the resends. */
    this._toRejoin = new Set();
    /** room -> highest message id received in order from the live stream. */
    this._roomHighest = new Map();
    this._dmHighest = null;

    // The token's life (see getToken). Times are this clock's ms.
    /** server_time - now(), from the last welcome: the server's expiry in this clock. */
    this._serverOffset = 0;
    /** When the token in use expires, or null (never, or not known). */
    this._expiresAt = null;
    /** When to send a fresh token: a little before _expiresAt. */
    this._refreshAt = null;
    this._refreshTimer = null;
    /** Failed refreshes in a row (the backoff of the next try). */
    this._refreshFailures = 0;
    /** The token sent in `refresh`, until the answer. */
    this._refreshSent = null;
    /** Whether a getToken() call is in flight. */
    this._fetchingToken = false;
    /** Counts the sockets welcomed: a token fetched for an older one is not sent on a newer. */
    this._session = 0;

    this._listening = false;
    this._onOnline = () => this._handleOnline();
    this._onOffline = () => this._handleOffline();
    this._onPageShow = () => this._handleResume();
    this._onVisibility = () => {
      if (!this._document.hidden) this._handleResume();
    };
  }

  // ---- public state -------------------------------------------------------

  get state() {
    return this._socket.state;
  }

  /** The current or upcoming reconnect attempt number (0: first connect). */
  get attempt() {
    return this._socket.attempt;
  }

  /** Why the connection stopped, while state is `stopped`. */
  get stopReason() {
    return this._socket.stopReason;
  }

  /** The reconnect policy in use (see ReconnectingSocket; seconds). */
  get policy() {
    return this._socket.policy;
  }

  /** The most unacknowledged messages kept. */
  get outboxLimit() {
    return this._outbox.limit;
  }

  /** The user from the last welcome frame. */
  get user() {
    return this._user;
  }

  /** The rooms this connection keeps joined. */
  get rooms() {
    return [...this._rooms];
  }

  /** Unacknowledged frames, oldest first: [{frame, queuedAt}]. */
  pending() {
    return this._outbox.entries();
  }

  /** The highest live message id of `room` (the `since` of a re-join), or null. */
  highestId(room) {
    return this._roomHighest.get(room) ?? null;
  }

  /** The highest direct-message id received (the `since` of dm_sync), or null. */
  get highestDmId() {
    return this._dmHighest;
  }

  // ---- lifecycle ----------------------------------------------------------

  /**
   * Connects when stopped (the first connect, or a manual reconnect after
   * 4003, 4001 or giving up). Does nothing while connecting, open or waiting.
   */
  connect() {
    if (this.state !== State.STOPPED) return;
    this._listen();
    if (this._hasTried) {
      this._socket.start({ attempt: 1, cause: this._socket.cause ?? Cause.CLOSE });
    } else {
      this._hasTried = true;
      this._socket.start({ attempt: 0, cause: null });
    }
  }

  /**
   * Skips the wait before the next attempt (the "Retry now" button); from
   * `stopped` it is connect(). Does nothing while connecting or open.
   */
  retryNow(cause = null) {
    if (this.state === State.WAITING) {
      this._socket.retryNow(cause ?? this._socket.cause ?? Cause.CLOSE);
    } else if (this.state === State.STOPPED) {
      if (cause && this._hasTried) {
        this._listen();
        this._socket.start({ attempt: 1, cause });
        return;
      }
      this.connect();
    }
  }

  /** Closes for good (logout): code 1000, no reconnect. The outbox is kept. */
  close() {
    this._unlisten();
    this._socket.stop({ reason: StopReason.CLOSED, code: CloseCode.NORMAL });
  }

// ---- chat ---------------------------------------------------------------

  /**
   * Joins `room` now and after every reconnect. `since` is sent when the
   * connection already has messages of the room.
   */
  join(room) {
    if (this._rooms.has(room)) return;
    this._rooms.add(room);
    this._leaveOwed.delete(room);
    if (this._isReady()) this._sendJoin(room);
  }

  /**
   * Leaves `room` and stops re-joining it. Leaving ends the membership on
   * the server, so a leave made while away is sent on the next connection.
   */
  leave(room) {
    const had = this._rooms.delete(room);
    this._synced.delete(`room:${room}`);
    if (!had) return;
    if (this._isReady()) this._send({ type: 'leave', room });
    else this._leaveOwed.add(room);
  }

  /** Stops re-joining `room` without telling the server (it removed us, or refused). */
  _forget(room) {
    this._rooms.delete(room);
    this._synced.delete(`room:${room}`);
    this._roomHighest.delete(room);
  }

  /**
   * Says `text` in `room`. Returns the cid; the frame is queued until its ack.
   * Throws OutboxFullError (code `outbox_full`) when the outbox is full.
   */
  say(room, text) {
    return this._queue({ type: 'say', room, text });
  }

  /** Sends a direct message to user `to`; like say(). */
  dm(to, text) {
    return this._queue({ type: 'dm', to, text });
  }

  /**
   * Asks for a page of older messages: target is {room} or {with: user}.
   * Returns false when not connected (history is not queued).
   */
  history(target, { before = null, limit = 50 } = {}) {
    const frame = { type: 'history', ...target, limit };
    if (before !== null && before !== undefined) frame.before = before;
    return this._send(frame);
  }

  /**
   * Edits my message `id` (in `room`; null: a direct message) to `text`.
   * Queued like say(), until its ack; returns the cid.
   */
  edit(room, id, text) {
    return this._queue({ type: 'edit', ...(room === null ? {} : { room }), target: id, text });
  }

  /** Deletes my message `id` (in `room`; null: a direct message); like edit(). */
  deleteMessage(room, id) {
    return this._queue({ type: 'delete', ...(room === null ? {} : { room }), target: id });
  }

  /**
   * Tells the server how far the user has read: target is {room} or {with:
   * user}. Not queued: returns false when not connected (the page sends the
   * mark again on the next connection).
   */
  read(target, id) {
    return this._send({ type: 'read', ...target, id });
  }

  /** Tells the others in target ({room} or {to: user}) that the user is typing or stopped. */
  typing(target, typing) {
    return this._send({ type: 'typing', ...target, typing });
  }

  /** Asks for the room directory (answered by a `rooms` frame). */
  listRooms() {
    return this._send({ type: 'rooms' });
  }

  /** Asks to create a room (answered by `created`, or the error `room_exists`). */
  createRoom(room, { topic = '', isPrivate = false } = {}) {
    return this._send({ type: 'create', room, topic, private: isPrivate });
  }

  /** Invites `user` (an id or a name held now) into my private `room`. */
  invite(room, user) {
    return this._send({ type: 'invite', room, user });
  }

  /** Removes `user` from my private `room`. */
  removeMember(room, user) {
    return this._send({ type: 'remove', room, user });
  }

  /** Gives up on a queued frame (e.g. one the user deleted). */
  discard(cid) {
    if (this._outbox.remove(cid)) this._emitOutbox();
  }

  // ---- internals: sockets -------------------------------------------------

  /** True once the server welcomed the current socket (frames may be sent). */
  _isReady() {
    return this._welcomed && this._socket.sendable;
  }

  _send(frame) {
    if (!this._isReady()) return false;
    return this._socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  _buildUrl(attempt, cause) {
    const url = new URL(this.options.url ?? defaultUrl());
    if (this.token) url.searchParams.set('token', this.token);
    if (attempt >= 1) {
      url.searchParams.set('reconnect', String(attempt));
      url.searchParams.set('cause', cause ?? Cause.CLOSE);
    }
    return url.toString();
  }

  /** The shared socket changed state: start a socket's session, or pass it on. */
  _socketStateChanged(detail) {
    if (detail.state === State.CONNECTING) {
      this._welcomed = false;
      this._byeRetryAfter = null;
      this._synced.clear();
      this._joinsAwaiting.clear();
    }
    const { retryAt, ...rest } = detail;
    this._emit('statechange', {
      ...rest,
      attempts: this._socket.policy.attempts,
      reconnectAt: retryAt,
    });
    if (detail.state === State.STOPPED) {
      this._emit('stopped', { reason: detail.reason, message: detail.message });
    }
  }

  /** The current socket is gone (closed, failed, abandoned): its watchdog and timers too. */
  _dropSocket() {
    if (this._watchdog) {
      this._watchdog.stop();
      this._watchdog = null;
    }
    if (this._resendTimer !== null) {
      this._clearTimeout(this._resendTimer);
      this._resendTimer = null;
    }
    this._toResend.clear();
    this._toRejoin.clear();
    this._clearRefresh();
    this._refreshSent = null; // its answer will not come
  }

  /** What a close of the socket means in this protocol (the socket's onClose). */
  _handleClose({ code, reason, opened, ready }) {
    switch (code) {
      case CloseCode.UNAUTHENTICATED:
        if (this._renewExpiredToken()) return { cause: Cause.CLOSE };
        return { stop: StopReason.AUTH, message: reason };
      case CloseCode.KICKED:
        return { stop: StopReason.KICKED, message: reason };
      case CloseCode.NORMAL:
        // The protocol says: a normal close from the server asks for nothing.
        if (ready) return { stop: StopReason.SERVER_CLOSED, message: reason };
        break;
      default:
        break;
    }
    if (!opened && !this._renewExpiredToken()) this._checkAuth();
    if (this._byeRetryAfter !== null) return { cause: Cause.SHUTDOWN, delay: this._byeRetryAfter * 1000 };
    return undefined; // the backoff, cause error or close
  }

  /** Asks the page whether the session is still valid (see refreshToken). */
  _checkAuth() {
    if (!this._refreshToken) return;
    let result;
    try {
      result = this._refreshToken();
    } catch {
      return;
    }
    Promise.resolve(result).then((token) => {
      if (this.state === State.STOPPED || this.state === State.OPEN) return;
      if (token === null) {
        this._socket.stop({ reason: StopReason.AUTH });
      } else if (typeof token === 'string' && token) {
        this.token = token;
      }
    }, () => {
      // The check itself failed (server down): keep retrying as planned.
    });
  }

  // ---- internals: the token's life -----------------------------------------

  /** The server said when the token expires (epoch seconds; absent: never). */
  _setExpiry(expires) {
    this._clearRefresh();
    if (typeof expires !== 'number' || !Number.isFinite(expires)) {
      this._expiresAt = null;
      this._refreshAt = null;
      return;
    }
    const now = this._now();
    this._expiresAt = expires * 1000 - this._serverOffset;
    const lead = Math.min(this.options.refresh_lead * 1000, Math.max(0, this._expiresAt - now) / 10);
    this._refreshAt = this._expiresAt - lead * (1 + this._random() / 2);
    this._scheduleRefresh(this._refreshAt);
  }

  /** Whether the token is due for a refresh, or past it (by this clock). */
  _tokenDue() {
    return this._refreshAt !== null && this._now() >= this._refreshAt;
  }

  _scheduleRefresh(at) {
    this._clearRefresh();
    if (!this._getToken || !this._isReady()) return;
    const delay = Math.min(Math.max(0, at - this._now()), MAX_TIMER);
    this._refreshTimer = this._setTimeout(() => {
      this._refreshTimer = null;
      // A timer may fire early (clamped to MAX_TIMER): the clock decides.
      if (this._now() < at) this._scheduleRefresh(at);
      else this._refresh();
    }, delay);
  }

  _clearRefresh() {
    if (this._refreshTimer !== null) {
      this._clearTimeout(this._refreshTimer);
      this._refreshTimer = null;
    }
  }

  /** Asks the application for a fresh token and sends it on the open socket. */
  _refresh() {
    if (this._fetchingToken || this._refreshSent !== null) return;
    const session = this._session;
    this._fetchToken((token) => {
      if (session !== this._session || !this._isReady()) return; // the next welcome starts over
      this._refreshSent = token;
      this._send({ type: 'refresh', token });
    }, (message) => {
      if (session === this._session) this._refreshFailed('token_unavailable', message);
    });
  }

  /** Calls getToken() once at a time: `use(token)` with a token, `fail(message)` without. */
  _fetchToken(use, fail) {
    this._fetchingToken = true;
    let result;
    try {
      result = this._getToken();
    } catch (err) {
      result = Promise.reject(err);
    }
    Promise.resolve(result).then((token) => {
      this._fetchingToken = false;
      if (typeof token === 'string' && token) use(token);
      else fail('getToken gave no token');
    }, (err) => {
      this._fetchingToken = false;
      fail(err instanceof Error ? err.message : String(err));
    });
  }

  _handleRefreshed(frame) {
    const before = this._expiresAt;
    if (this._refreshSent !== null) this.token = this._refreshSent;
    this._refreshSent = null;
    this._setExpiry(frame.expires);
    if (before === null || this._expiresAt === null || this._expiresAt > before) {
      this._refreshFailures = 0;
      this._emit('refreshed', { expires: frame.expires ?? null });
    } else {
      // The same token again (or an older one): it buys no time.
      this._refreshFailed('bad_token', 'the fresh token expires no later than the one in use');
    }
  }

  /** Whether an error frame answers the refresh in flight: then it is told as `refreshfailed`. */
  _refusedRefresh(frame) {
    if (this._refreshSent === null || frame.cid || frame.room !== undefined) return false;
    if (frame.code !== 'bad_token' && frame.code !== 'forbidden') return false;
    this._refreshSent = null;
    this._refreshFailed(frame.code, frame.message ?? '');
    return true;
  }

  /** Tries again after the reconnect policy's backoff (the tries so far count as its attempts). */
  _refreshFailed(code, message) {
    this._refreshFailures += 1;
    const delay = backoffDelay(this._refreshFailures, this._socket.policy, this._random) * 1000;
    this._scheduleRefresh(this._now() + delay);
    this._emit('refreshfailed', { code, message, delay });
  }

  /**
   * The token is past its refresh time (a refresh failed, or the page slept
   * through it), so the server refused or closed the socket for that: with
   * getToken, a fresh token is fetched and the connection tries again with
   * it. Returns whether it handles the failure so.
   */
  _renewExpiredToken() {
    if (!this._getToken || !this._tokenDue()) return false;
    if (!this._fetchingToken) {
      this._fetchToken((token) => {
        this.token = token;
        this._expiresAt = null; // the next welcome says when this one expires
        this._refreshAt = null;
        if (this.state === State.WAITING) this.retryNow();
      }, () => {
        // The application could not say (its server down too?): the backoff goes on.
      });
    }
    return true;
  }

  // ---- internals: frames --------------------------------------------------

  _handleData(data) {
    if (this._watchdog) this._watchdog.alive();
    if (data === 'pong' || data === 'ping') return;
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return; // not ours to judge; the server never sends bad JSON
    }
    if (!frame || typeof frame !== 'object') return;
    switch (frame.type) {
      case 'welcome':
        this._handleWelcome(frame);
        return; // emits its own events, in order
      case 'ack':
        this._handleAck(frame);
        break;
      case 'error':
        if (this._refusedJoin(frame) || this._refusedRefresh(frame)) return; // told as `refused`, `refreshfailed`
        this._handleError(frame);
        break;
      case 'refreshed':
        this._handleRefreshed(frame);
        break;
      case 'joined':
        this._synced.add(`room:${frame.room}`);
        this._joinsAwaiting.delete(frame.room);
        this._trackRoom(frame.room, [...(frame.messages ?? []), ...(frame.events ?? [])]);
        break;
      case 'message':
      case 'edit':
      case 'delete':
        this._trackLive(frame);
        break;
      case 'dm_sync':
        this._synced.add('dm');
        this._trackDm([...(frame.messages ?? []), ...(frame.events ?? [])]);
        break;
      case 'left':
        if (frame.reason === 'removed') this._forget(frame.room);
        break;
      case 'bye':
        this._byeRetryAfter = Number.isFinite(frame.retry_after) && frame.retry_after >= 0
          ? frame.retry_after
          : null;
        break;
      default:
        break;
    }
    this._emit('message', frame);
  }

  _handleWelcome(frame) {
    this._welcomed = true;
    this._session += 1;
    this._user = frame.user ?? null;
    this._serverOffset = Number.isFinite(frame.server_time) ? frame.server_time * 1000 - this._now() : 0;

    const hb = { ...this.options.heartbeat, ...(frame.heartbeat ?? {}) };
    const socket = this._socket;
    this._watchdog = new Watchdog({
      interval: hb.interval * 1000,
      timeout: hb.timeout * 1000,
      sendPing: () => socket.send('ping'),
      onDead: () => socket.reconnect(Cause.WATCHDOG, CloseCode.WATCHDOG),
      now: this._now,
      setTimeout: this._setTimeout,
      clearTimeout: this._clearTimeout,
      isHidden: () => Boolean(this._document && this._document.hidden),
    });
    this._watchdog.start();

    // Recover in order: rooms, then direct messages, then what we still owe.
    // This happens before listeners hear of the open state, so that a join()
    // they make is not sent twice.
    for (const room of this._leaveOwed) this._send({ type: 'leave', room });
    this._leaveOwed.clear();
    for (const room of this._rooms) this._sendJoin(room);
    const sync = { type: 'dm_sync' };
    if (this._dmHighest !== null) sync.since = this._dmHighest;
    this._send(sync);
    for (const { frame: queued } of this._outbox.entries()) this._send(queued);

    socket.markOpen(); // emits the open state
    this._setExpiry(frame.expires);
    this._emit('welcome', frame);
    this._emit('message', frame);
  }

  _sendJoin(room) {
    const frame = { type: 'join', room };
    const since = this._roomHighest.get(room);
    if (since !== undefined) frame.since = since;
    if (this._send(frame)) this._joinsAwaiting.add(room);
  }

  /**
   * An error naming a room whose join waits for its answer is that join's
   * answer. `forbidden` (a private room, or the application's refusal) is
   * final: told as `refused`, and the room is not joined again. A passing
   * one (the join hook did not answer) is told as an error, and the join is
   * sent again after resend_delay.
   */
  _refusedJoin(frame) {
    const room = frame.room;
    if (frame.cid || typeof room !== 'string' || !this._joinsAwaiting.has(room)) return false;
    if (frame.code === 'forbidden') {
      this._forget(room);
      this._joinsAwaiting.delete(room);
      this._emit('refused', { room, code: frame.code, message: frame.message ?? '' });
      return true;
    }
    if (PASSING_JOIN_ERRORS.has(frame.code)) {
      this._joinsAwaiting.delete(room);
      this._toRejoin.add(room);
      this._scheduleResend();
    }
    return false;
  }

  _handleAck(frame) {
    const entry = this._outbox.remove(frame.cid);
    this._toResend.delete(frame.cid);
    if (entry) this._emitOutbox();
    this._emit('ack', { ack: frame, sent: entry ? entry.frame : null });
  }

  _handleError(frame) {
    const entry = frame.cid ? this._outbox.get(frame.cid) : null;
    if (entry && FINAL_ERROR_CODES.has(frame.code)) {
      this._outbox.remove(frame.cid);
      this._emitOutbox();
      this._emit('failed', { cid: frame.cid, code: frame.code, message: frame.message ?? '', sent: entry.frame });
    } else if (entry) {
      // rate_limited, unavailable (store trouble) or unknown: try again later.
      this._toResend.add(frame.cid);
      this._scheduleResend();
    }
    this._emit('error', frame);
  }

  _scheduleResend() {
    if (this._resendTimer === null) {
      this._resendTimer = this._setTimeout(() => this._resendRefused(), this.options.resend_delay * 1000);
    }
  }

  _resendRefused() {
    this._resendTimer = null;
    const cids = [...this._toResend];
    const rooms = [...this._toRejoin];
    this._toResend.clear();
    this._toRejoin.clear();
    for (const room of rooms) {
      if (this._rooms.has(room)) this._sendJoin(room);
    }
    for (const cid of cids) {
      const entry = this._outbox.get(cid);
      if (entry) this._send(entry.frame);
    }
  }

  /**
   * The `since` of a re-join must be an id after which nothing was missed,
   * so only messages from the recovery answer (joined, dm_sync) and live
   * messages after it count; history pages and acks do not.
   */
  _trackLive(frame) {
    if (!Number.isInteger(frame.id)) return;
    if (frame.room !== undefined && frame.room !== null) {
      if (this._synced.has(`room:${frame.room}`)) this._raiseRoom(frame.room, frame.id);
    } else if (this._synced.has('dm')) {
      this._dmHighest = Math.max(this._dmHighest ?? frame.id, frame.id);
    }
  }

  _trackRoom(room, messages) {
    for (const m of messages ?? []) {
      if (Number.isInteger(m.id)) this._raiseRoom(room, m.id);
    }
  }

  _raiseRoom(room, id) {
    const current = this._roomHighest.get(room);
    if (current === undefined || id > current) this._roomHighest.set(room, id);
  }

  _trackDm(messages) {
    for (const m of messages ?? []) {
      if (Number.isInteger(m.id) && (this._dmHighest === null || m.id > this._dmHighest)) {
        this._dmHighest = m.id;
      }
    }
  }

  _queue(frame) {
    const cid = this._createId();
    this._outbox.add({ ...frame, cid });
    this._emitOutbox();
    this._send({ ...frame, cid });
    return cid;
  }

  // ---- internals: browser signals ----------------------------------------

  _listen() {
    if (this._listening) return;
    this._listening = true;
    if (this._window) {
      this._window.addEventListener('online', this._onOnline);
      this._window.addEventListener('offline', this._onOffline);
      this._window.addEventListener('pageshow', this._onPageShow);
    }
    if (this._document) this._document.addEventListener('visibilitychange', this._onVisibility);
  }

  _unlisten() {
    if (!this._listening) return;
    this._listening = false;
    if (this._window) {
      this._window.removeEventListener('online', this._onOnline);
      this._window.removeEventListener('offline', this._onOffline);
      this._window.removeEventListener('pageshow', this._onPageShow);
    }
    if (this._document) this._document.removeEventListener('visibilitychange', this._onVisibility);
  }

  /**
   * After giving up, the browser's word that things may work again (the
   * network is back, the page is shown again) starts over. A stop for any
   * other reason (an operator, a logout, the server's normal close) stays.
   */
  _restartAfterGivingUp(cause) {
    if (this.state === State.STOPPED && this.stopReason === StopReason.GAVE_UP) {
      this._socket.start({ attempt: 1, cause });
    }
  }

  /** The network is back: reconnect at once, or check a connection we have. */
  _handleOnline() {
    switch (this.state) {
      case State.WAITING:
        this.retryNow(Cause.NETWORK);
        break;
      case State.STOPPED:
        this._restartAfterGivingUp(Cause.NETWORK);
        break;
      case State.OPEN:
        if (this._watchdog) this._watchdog.probe();
        break;
      default:
        break; // connecting: one attempt in flight is enough
    }
  }

  /** The browser lost its network: the socket is dead, reconnect with backoff. */
  _handleOffline() {
    this._socket.reconnect(Cause.NETWORK, CloseCode.NORMAL);
  }

  /** The page is visible again: probe an open socket, skip a pending wait, start over after giving up. */
  _handleResume() {
    if (this.state === State.OPEN) {
      if (this._watchdog) this._watchdog.probe();
    } else if (this.state === State.WAITING) {
      this.retryNow();
    } else {
      this._restartAfterGivingUp(this._socket.cause ?? Cause.CLOSE);
    }
  }

  // ---- internals: plumbing ------------------------------------------------

  _emitOutbox() {
    this._emit('outbox', { size: this._outbox.size, limit: this._outbox.limit });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

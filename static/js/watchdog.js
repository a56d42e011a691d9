/**
 * Application-level heartbeat watchdog for one open connection.
 *
 * It sends a ping every `interval` ms and declares the connection dead when a
 * ping has had no answer within `timeout` ms. Any inbound frame counts as the
 * answer (the caller reports it with `alive()`).
 *
 * Browsers delay timers in background tabs (down to once a minute) and
 * freeze them during sleep, so a timer that fires late tells us nothing about
 * the connection: the pong may be waiting in the event queue behind it. Time
 * is therefore judged by the wall clock (`now()`), and a missing answer found
 * by a late timer, or while the page is hidden, only triggers a fresh probe
 * ping that gets the full timeout. Only an unanswered probe, or a missing
 * answer found on time in a visible page, is final.
 *
 * The watchdog does no I/O itself: `sendPing` and `onDead` are callbacks.
 */
export class Watchdog {
  /**
   * @param {object} o
   * @param {number} o.interval ms between pings
   * @param {number} o.timeout ms a ping may stay unanswered
   * @param {() => void} o.sendPing sends the bare `ping` frame
   * @param {() => void} o.onDead called once when the connection is judged dead
   * @param {() => number} [o.now] wall-clock ms
   * @param {Function} [o.setTimeout]
   * @param {Function} [o.clearTimeout]
   * @param {() => boolean} [o.isHidden] true while the page is in the background
   * @param {number} [o.lateTolerance] ms a timer may be late and still count as on time
   */
  constructor({
    interval,
    timeout,
    sendPing,
    onDead,
    now = () => Date.now(),
    setTimeout = globalThis.setTimeout.bind(globalThis),
    clearTimeout = globalThis.clearTimeout.bind(globalThis),
    isHidden = () => false,
    lateTolerance = Math.max(1000, Math.min(interval, timeout) / 2),
  }) {
    if (!(interval > 0)) throw new RangeError(`interval must be > 0, got ${interval}`);
    if (!(timeout > 0)) throw new RangeError(`timeout must be > 0, got ${timeout}`);
    this.interval = interval;
    this.timeout = timeout;
    this.lateTolerance = lateTolerance;
    this._sendPing = sendPing;
    this._onDead = onDead;
    this._now = now;
    this._setTimeout = setTimeout;
    this._clearTimeout = clearTimeout;
    this._isHidden = isHidden;
    this._timer = null;
    this._dueAt = 0;
    this._lastPingAt = 0;
    /** The oldest unanswered ping: {sentAt, probe} or null. */
    this._pending = null;
    this._running = false;
  }

  /** True while a ping is waiting for its answer. */
  get awaitingPong() {
    return this._pending !== null;
  }

  /** Starts the ping cycle; the first ping goes out after `interval`. */
  start() {
    this._running = true;
    this._pending = null;
    this._lastPingAt = this._now();
    this._schedule();
  }

  /** Stops all timers; the watchdog will not call onDead any more. */
  stop() {
    this._running = false;
    this._pending = null;
    this._cancel();
  }

  /** Reports an inbound frame: it answers every outstanding ping. */
  alive() {
    if (!this._running || this._pending === null) return;
    this._pending = null;
    // The timer was aimed at the answer's deadline; aim it at the next ping.
    this._schedule();
  }

  /**
   * Sends a probe ping now and gives it the full timeout, e.g. when a hidden
   * page becomes visible or the network comes back. Its silence is final.
   */
  probe() {
    if (!this._running) return;
    if (this._pending !== null && this._pending.probe) return;
    this._ping(true);
    this._schedule();
  }

  _ping(probe) {
    const now = this._now();
    this._lastPingAt = now;
    this._pending = { sentAt: now, probe };
    this._sendPing();
  }

  _tick() {
    this._timer = null;
    if (!this._running) return;
    const now = this._now();
    if (now < this._lastPingAt) {
      // The wall clock went backwards: measure from now instead of from a
      // time that will not come again for a long while.
      this._lastPingAt = now;
      if (this._pending !== null) this._pending.sentAt = now;
    }
    const late = now - this._dueAt > this.lateTolerance;
    const pending = this._pending;
    if (pending !== null) {
      if (now - pending.sentAt >= this.timeout) {
        if (!pending.probe && (late || this._isHidden())) {
          this._ping(true);
        } else {
          this.stop();
          this._onDead();
          return;
        }
      }
    } else if (now - this._lastPingAt >= this.interval) {
      this._ping(false);
    }
    this._schedule();
  }

  _schedule() {
    this._cancel();
    const now = this._now();
    const dueAt = this._pending !== null
      ? this._pending.sentAt + this.timeout
      : this._lastPingAt + this.interval;
    // Clamp, so that a wall clock set backwards cannot park the timer for hours.
    const delay = Math.min(Math.max(0, dueAt - now), Math.max(this.interval, this.timeout));
    this._dueAt = now + delay;
    this._timer = this._setTimeout(() => this._tick(), delay);
  }

  _cancel() {
    if (this._timer !== null) {
      this._clearTimeout(this._timer);
      this._timer = null;
    }
  }
}

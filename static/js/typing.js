/**
 * Typing indicators (docs/PROTOCOL.md, "Typing"), both ways.
 *
 * Out: `TypingSignal` decides when the page sends `typing`: `true` at most
 * every `interval` while the user types (the server forgets a typist after
 * 6 s without one), `false` when the text is sent or cleared or the user
 * turns to another conversation.
 *
 * In: who is typing where is the model's (model.js keeps, per conversation,
 * a Map of user id -> {name, until}); the functions here change such a map
 * without touching the one they are given. The server sends `typing: false`
 * when a typist stops, leaves or goes; `until` is the page's own safety net
 * for when that never comes.
 */

/** Milliseconds between two `typing: true` while the user keeps typing (the protocol's 3 s). */
export const SIGNAL_INTERVAL_MS = 3000;
/** Milliseconds a typist stays shown without another `typing: true`: past the server's 6 s. */
export const SHOWN_MS = 8000;

export class TypingSignal {
  /**
   * @param {object} [o]
   * @param {number} [o.interval] ms between two `typing: true` to one conversation
   * @param {() => number} [o.now] clock, ms
   */
  constructor({ interval = SIGNAL_INTERVAL_MS, now = () => Date.now() } = {}) {
    this.interval = interval;
    this._now = now;
    /** The conversation told `typing: true` last, and when; null when none is standing. */
    this._key = null;
    this._sentAt = 0;
  }

  /**
   * The composer's text is now `text`, in conversation `key`: the signals
   * to send, [{key, typing}], oldest first (often none).
   */
  input(key, text) {
    if (text.trim() === '') return this.stop();
    const signals = this._key !== null && this._key !== key ? this.stop() : [];
    const now = this._now();
    if (this._key !== key || now - this._sentAt >= this.interval) {
      this._key = key;
      this._sentAt = now;
      signals.push({ key, typing: true });
    }
    return signals;
  }

  /** The text was sent or cleared: `typing: false` to where `true` went last, if anywhere. */
  stop() {
    if (this._key === null) return [];
    const key = this._key;
    this._key = null;
    return [{ key, typing: false }];
  }

  /** The connection is gone, and the server forgot us with it: nothing is standing. */
  reset() {
    this._key = null;
  }
}

/** "alice is typing…", "alice and bob are typing…", …; '' for nobody. */
export function typingText(names) {
  switch (names.length) {
    case 0:
      return '';
    case 1:
      return `${names[0]} is typing…`;
    case 2:
      return `${names[0]} and ${names[1]} are typing…`;
    case 3:
      return `${names[0]}, ${names[1]} and ${names[2]} are typing…`;
    default:
      return 'Several people are typing…';
  }
}

/** `typists` with `user` typing (until `until`, ms) or not. */
export function withTypist(typists, user, name, typing, until) {
  if (!typing) {
    if (!typists.has(user)) return typists;
    const next = new Map(typists);
    next.delete(user);
    return next;
  }
  return new Map(typists).set(user, { name, until });
}

/** `typists` without those shown past their time. */
export function pruneTypists(typists, now) {
  let next = typists;
  for (const [user, { until }] of typists) {
    if (until <= now) {
      if (next === typists) next = new Map(typists);
      next.delete(user);
    }
  }
  return next;
}

/** The earliest time (ms) at which one of `typists` expires, or null. */
export function nextExpiry(typists) {
  let next = null;
  for (const { until } of typists.values()) {
    if (next === null || until < next) next = until;
  }
  return next;
}

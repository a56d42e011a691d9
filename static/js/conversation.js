/**
 * One conversation (a room or a direct-message partner) as the user sees it:
 * every message once, in id order, followed by the user's own messages that
 * are still pending (sent but not acknowledged).
 *
 * The same message can reach the client several times: live, again in the
 * `joined` recovery after a reconnect, in a `history` page, or as the echo of
 * one's own message from another tab. Messages are deduplicated by id; a
 * pending message is identified by its cid and replaced by the acknowledged
 * or echoed one.
 */

/** The conversation key of a room. */
export function roomKey(room) {
  return `room:${room}`;
}

/** The conversation key of a direct conversation with `user`. */
export function dmKey(user) {
  return `dm:${user}`;
}

/**
 * The key of the conversation a message frame belongs to. For a direct
 * message the partner is `to` when I sent it (possibly from another tab of
 * mine), else `from`.
 */
export function conversationKeyOf(message, me) {
  if (message.room !== undefined && message.room !== null) return roomKey(message.room);
  return dmKey(message.from === me ? message.to : message.from);
}

export class Conversation {
  /** @param {string} key from roomKey() or dmKey() */
  constructor(key) {
    this.key = key;
    /** id -> message */
    this._byId = new Map();
    /** confirmed messages sorted by id */
    this._ordered = [];
    /** cid -> pending message, in the order they were sent */
    this._pending = new Map();
    /** Whether older messages may exist on the server (for "load older"). */
    this.more = false;
  }

  /** The number of confirmed messages. */
  get size() {
    return this._ordered.length;
  }

  get pendingCount() {
    return this._pending.size;
  }

  /** The smallest confirmed id, or null. */
  get oldestId() {
    return this._ordered.length ? this._ordered[0].id : null;
  }

  /** The largest confirmed id, or null. */
  get newestId() {
    return this._ordered.length ? this._ordered[this._ordered.length - 1].id : null;
  }

  has(id) {
    return this._byId.has(id);
  }

  /** Whether `cid` is one of my messages still waiting for its ack (or failed). */
  isPending(cid) {
    return this._pending.has(cid);
  }

  /**
   * A copy to change, leaving this one as it is: the chat page's state
   * (model.js) never changes a conversation it has already shown.
   */
  clone() {
    const copy = new Conversation(this.key);
    copy._byId = new Map(this._byId);
    copy._ordered = [...this._ordered];
    copy._pending = new Map(this._pending);
    copy.more = this.more;
    return copy;
  }

  /** The messages to show: confirmed ones by id, then pending ones. */
  messages() {
    return [...this._ordered, ...this._pending.values()];
  }

  /**
   * Adds a message frame from the server (it has an id). Returns true when
   * the visible list changed, false for a duplicate.
   */
  add(message) {
    if (!Number.isInteger(message.id)) {
      throw new TypeError(`a message needs an integer id, got ${message.id}`);
    }
    const replacedPending = this._dropPendingFor(message);
    if (this._byId.has(message.id)) return replacedPending;
    this._insert({ ...message, pending: false, failed: null });
    return true;
  }

  /** Adds many frames (e.g. a history page); returns how many were new. */
  addAll(messages) {
    let added = 0;
    for (const message of messages) {
      const before = this._ordered.length;
      this.add(message);
      if (this._ordered.length > before) added += 1;
    }
    return added;
  }

  /**
   * Shows one of my own messages as pending until its ack. `message` has
   * cid, from, text, ts, and room or to.
   */
  addPending(message) {
    if (!message.cid) throw new TypeError('a pending message needs a cid');
    if (this._pending.has(message.cid)) return false;
    for (const m of this._ordered) {
      if (m.cid === message.cid && m.from === message.from) return false; // already confirmed
    }
    this._pending.set(message.cid, { ...message, id: null, pending: true, failed: null });
    return true;
  }

  /**
   * Turns the pending message `cid` into a confirmed one with the id and
   * timestamp from its ack. Returns true when the list changed.
   */
  confirm(cid, { id, ts }) {
    const pending = this._pending.get(cid);
    if (!pending) return false;
    this._pending.delete(cid);
    if (!this._byId.has(id)) {
      this._insert({ ...pending, id, ts: ts ?? pending.ts, pending: false, failed: null });
    }
    return true;
  }

  /** Marks the pending message `cid` as failed for good (e.g. too_long). */
  fail(cid, code) {
    const pending = this._pending.get(cid);
    if (!pending) return false;
    this._pending.set(cid, { ...pending, failed: code || 'failed' });
    return true;
  }

  /** Removes a pending (usually failed) message. */
  discard(cid) {
    return this._pending.delete(cid);
  }

  /**
   * Forgets the confirmed messages but keeps the pending ones: used when a
   * recovery was truncated, so that the gap can be filled with "load older".
   */
  reset() {
    this._byId.clear();
    this._ordered = [];
    this.more = true;
  }

  _dropPendingFor(message) {
    if (!message.cid) return false;
    const pending = this._pending.get(message.cid);
    if (!pending || pending.from !== message.from) return false;
    this._pending.delete(message.cid);
    return true;
  }

  _insert(message) {
    const list = this._ordered;
    this._byId.set(message.id, message);
    if (list.length === 0 || list[list.length - 1].id < message.id) {
      list.push(message); // the common case: a new message
      return;
    }
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (list[mid].id < message.id) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, message);
  }
}

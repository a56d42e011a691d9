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
   * Adds a message frame from the server (it has an id), in place of my
   * pending one with its cid if there is one. Returns true when the message
   * is new here; false for one already here, whose text it updates when it
   * is a later version (edited or deleted since).
   */
  add(message) {
    if (!Number.isInteger(message.id)) {
      throw new TypeError(`a message needs an integer id, got ${message.id}`);
    }
    const replacedPending = this._dropPendingFor(message);
    const known = this._byId.get(message.id);
    if (known) {
      // A page or a recovery carries each message's latest version: it may
      // bring an edit or a deletion that was missed (never undo a deletion).
      if (!known.deleted && changedVersion(known, message)) {
        const { text, edited = null, deleted = false, by = null } = message;
        this._replace({ ...known, text, edited, deleted, by });
      }
      return replacedPending;
    }
    this._insert({ ...message, pending: false, failed: null });
    return true;
  }

  /**
   * Applies an edit or a deletion (an `edit` or `delete` frame, or one of
   * the `events` of a recovery) to the message it targets. Events are applied
   * in id order, each once; a deleted message stays deleted. Returns true
   * when the message shown changed; false when it is not here (an older
   * page brings it in its latest version) or the event is old news.
   */
  applyEvent(event) {
    const message = this._byId.get(event.target);
    if (!message || message.deleted || !Number.isInteger(event.id)) return false;
    if (Number.isInteger(message.version) && event.id <= message.version) return false;
    if (event.type === 'edit') {
      this._replace({ ...message, text: event.text, edited: event.ts ?? true, version: event.id });
    } else if (event.type === 'delete') {
      this._replace({ ...message, text: '', deleted: true, by: event.by ?? null, version: event.id });
    } else {
      return false;
    }
    return true;
  }

  /** How many confirmed messages after `id` someone other than `me` sent. */
  countAfter(id, me) {
    let n = 0;
    for (let i = this._ordered.length - 1; i >= 0 && this._ordered[i].id > id; i -= 1) {
      if (this._ordered[i].from !== me) n += 1;
    }
    return n;
  }

  /** The confirmed message `id`, or null. */
  get(id) {
    return this._byId.get(id) ?? null;
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

  /**
   * Marks the pending message `cid` as failed for good (e.g. too_long,
   * muted), with the server's explanation if it gave one.
   */
  fail(cid, code, reason = '') {
    const pending = this._pending.get(cid);
    if (!pending) return false;
    this._pending.set(cid, { ...pending, failed: code || 'failed', failedReason: reason });
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

  /** Puts a new version of a confirmed message in place of the old one. */
  _replace(message) {
    this._byId.set(message.id, message);
    this._ordered[this._indexOf(message.id)] = message;
  }

  /** Where a message with `id` is, or would go, in the ordered list. */
  _indexOf(id) {
    const list = this._ordered;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (list[mid].id < id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  _insert(message) {
    const list = this._ordered;
    this._byId.set(message.id, message);
    if (list.length === 0 || list[list.length - 1].id < message.id) {
      list.push(message); // the common case: a new message
      return;
    }
    list.splice(this._indexOf(message.id), 0, message);
  }
}

/** Whether a message frame shows another version than the message kept. */
function changedVersion(known, message) {
  return (message.edited ?? null) !== (known.edited ?? null) || Boolean(message.deleted) !== Boolean(known.deleted);
}

/**
 * The outbox: chat frames (`say`, `dm`, and `edit`, `delete` of one's own
 * messages) that the server has not acknowledged.
 *
 * A frame stays here from the moment the user sends it until its `ack` (or a
 * final error), and is re-sent with its original `cid` after every reconnect;
 * the server drops repeated cids, so re-sending is safe. The outbox is
 * bounded, so that a long outage cannot grow it without limit, and refuses
 * new frames when full rather than dropping old ones. It is mirrored to a
 * sessionStorage-like store so that a reload of the page keeps it.
 */

/** Thrown by `Outbox.add` when the outbox already holds `limit` frames. */
export class OutboxFullError extends Error {
  constructor(limit) {
    super(`Too many unsent messages (${limit}); wait for the connection to come back.`);
    this.name = 'OutboxFullError';
    this.code = 'outbox_full';
    this.limit = limit;
  }
}

const SENDABLE_TYPES = new Set(['say', 'dm', 'edit', 'delete']);

export class Outbox {
  /**
   * @param {object} o
   * @param {number} o.limit the most frames held at once
   * @param {Storage|null} [o.storage] sessionStorage-like (getItem/setItem/removeItem)
   * @param {string} [o.key] storage key
   * @param {() => number} [o.now] wall-clock ms, stamped on each entry
   */
  constructor({ limit, storage = null, key = 'imserver.outbox', now = () => Date.now() }) {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(`outbox_limit must be an integer >= 1, got ${limit}`);
    }
    this.limit = limit;
    this._storage = storage;
    this._key = key;
    this._now = now;
    /** cid -> {frame, queuedAt}, in the order the frames were queued. */
    this._entries = new Map();
    this._load();
  }

  get size() {
    return this._entries.size;
  }

  get full() {
    return this._entries.size >= this.limit;
  }

  has(cid) {
    return this._entries.has(cid);
  }

  /** The entry {frame, queuedAt} for `cid`, or null. */
  get(cid) {
    return this._entries.get(cid) ?? null;
  }

  /** A copy of the entries, oldest first. */
  entries() {
    return Array.from(this._entries.values(), (e) => ({ frame: { ...e.frame }, queuedAt: e.queuedAt }));
  }

  /**
   * Queues a frame that carries a `cid`. Throws OutboxFullError when full;
   * nothing is ever dropped silently.
   */
  add(frame) {
    if (!frame || typeof frame.cid !== 'string' || !frame.cid) {
      throw new TypeError('an outbox frame needs a string cid');
    }
    if (this._entries.has(frame.cid)) return this.get(frame.cid);
    if (this.full) throw new OutboxFullError(this.limit);
    const entry = { frame: { ...frame }, queuedAt: this._now() };
    this._entries.set(frame.cid, entry);
    this._save();
    return entry;
  }

  /** Removes and returns the entry for `cid` (after its ack), or null. */
  remove(cid) {
    const entry = this._entries.get(cid);
    if (!entry) return null;
    this._entries.delete(cid);
    this._save();
    return entry;
  }

  clear() {
    this._entries.clear();
    this._save();
  }

  _load() {
    if (!this._storage) return;
    let stored;
    try {
      stored = JSON.parse(this._storage.getItem(this._key) ?? '[]');
    } catch {
      return; // unreadable (corrupt or blocked storage): start empty
    }
    if (!Array.isArray(stored)) return;
    // Keep every valid entry even beyond the limit (the limit may have been
    // lowered since): these are messages the user already sent.
    for (const entry of stored) {
      const frame = entry && entry.frame;
      if (frame && SENDABLE_TYPES.has(frame.type) && typeof frame.cid === 'string' && frame.cid) {
        this._entries.set(frame.cid, { frame, queuedAt: Number(entry.queuedAt) || this._now() });
      }
    }
  }

  _save() {
    if (!this._storage) return;
    try {
      if (this._entries.size === 0) {
        this._storage.removeItem(this._key);
      } else {
        this._storage.setItem(this._key, JSON.stringify([...this._entries.values()]));
      }
    } catch {
      // Quota exceeded or storage disabled: the in-memory outbox still works.
    }
  }
}

/**
 * Display names of users. Users are keyed by id everywhere (a guest's id is
 * opaque, not its name); the names come with the frames that mention users:
 * `names` ({id: name}) on `joined` and `presence`, `name` (the sender's) and
 * `to_name` (a direct message's recipient's) on messages, in `joined`,
 * `history` and `dm_sync` pages too. A user no frame has named yet is shown
 * by its id.
 */
export class Names {
  /** @param {{id: string, name?: string}} me the logged-in user */
  constructor(me) {
    /** id -> display name */
    this._names = new Map();
    if (me) this.set(me.id, me.name);
  }

  set(id, name) {
    if (typeof id === 'string' && id && typeof name === 'string' && name) this._names.set(id, name);
  }

  /** The display name of `id` (the id itself when unknown). */
  of(id) {
    return this._names.get(id) ?? id;
  }

  /** Learns the names a server frame carries (any type; unknown shapes are ignored). */
  learn(frame) {
    if (!frame || typeof frame !== 'object') return;
    if (frame.names && typeof frame.names === 'object') {
      for (const [id, name] of Object.entries(frame.names)) this.set(id, name);
    }
    if (frame.type === 'message') this._learnMessage(frame);
    if (Array.isArray(frame.messages)) {
      for (const message of frame.messages) this._learnMessage(message);
    }
  }

  _learnMessage(message) {
    if (!message || typeof message !== 'object') return;
    this.set(message.from, message.name);
    this.set(message.to, message.to_name);
  }

  /** Compares two ids by display name (case-insensitively), then by id: a stable order. */
  compare(a, b) {
    return this.of(a).localeCompare(this.of(b), undefined, { sensitivity: 'base' }) || (a < b ? -1 : a > b ? 1 : 0);
  }
}

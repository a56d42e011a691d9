/**
 * Display names of users. Users are keyed by id everywhere (a guest's id is
 * opaque, not its name); the names come with the frames that mention users:
 * `names` ({id: name}) on `joined` and `presence`, `name` (the sender's) and
 * `to_name` (a direct message's recipient's) on messages, edits and
 * deletions, in `joined`, `history` and `dm_sync` pages too; `name` on
 * `typing` (the typist's) and `invited` (the inviter's, `by`); the unread
 * counts of `welcome`. A user no frame has named yet is shown by its id.
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

  /** Whether a frame has named `id`. */
  has(id) {
    return this._names.has(id);
  }

  /** The display name of `id` (the id itself when unknown). */
  of(id) {
    return this._names.get(id) ?? id;
  }

  /** Learns the names a server frame carries (any type; unknown shapes are ignored). */
  learn(frame) {
    for (const [id, name] of namesIn(frame)) this.set(id, name);
  }

  /**
   * The names after `frame`, leaving this one as it is: itself when the
   * frame teaches nothing new, else a copy that knows more.
   */
  learned(frame) {
    let copy = null;
    for (const [id, name] of namesIn(frame)) {
      if (typeof id !== 'string' || !id || typeof name !== 'string' || !name) continue;
      if ((copy ?? this)._names.get(id) === name) continue;
      if (copy === null) {
        copy = new Names(null);
        copy._names = new Map(this._names);
      }
      copy.set(id, name);
    }
    return copy ?? this;
  }

  /** Compares two ids by display name (case-insensitively), then by id: a stable order. */
  compare(a, b) {
    return this.of(a).localeCompare(this.of(b), undefined, { sensitivity: 'base' }) || (a < b ? -1 : a > b ? 1 : 0);
  }
}

/** Frames that name their sender (`from`, `name`) and a direct recipient (`to`, `to_name`). */
const MESSAGE_TYPES = new Set(['message', 'edit', 'delete']);

/** The [id, name] pairs a server frame carries. */
function* namesIn(frame) {
  if (!frame || typeof frame !== 'object') return;
  if (frame.names && typeof frame.names === 'object') yield* Object.entries(frame.names);
  if (MESSAGE_TYPES.has(frame.type)) yield* namesOfMessage(frame);
  for (const list of [frame.messages, frame.events]) {
    if (Array.isArray(list)) {
      for (const message of list) yield* namesOfMessage(message);
    }
  }
  switch (frame.type) {
    case 'typing':
      yield [frame.user, frame.name];
      break;
    case 'invited':
      yield [frame.by, frame.name];
      break;
    case 'welcome': {
      const direct = frame.unread && frame.unread.direct;
      if (direct && typeof direct === 'object') {
        for (const [id, mark] of Object.entries(direct)) yield [id, mark && mark.name];
      }
      break;
    }
    default:
      break;
  }
}

function* namesOfMessage(message) {
  if (!message || typeof message !== 'object') return;
  yield [message.from, message.name];
  yield [message.to, message.to_name];
}

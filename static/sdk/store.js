/**
 * ChatStore: what one ChatConnection knows, as snapshots for a UI framework
 * (React's useSyncExternalStore, a Vue shallowRef; see react.js, vue.js).
 *
 * A snapshot is never changed once made: each change of the connection's
 * state, user, outbox or rooms makes a new one that shares every room that
 * did not change, so that a view can tell by identity what to draw again.
 * Listeners are called after each change, with no argument.
 *
 * Snapshot:
 *   state       the connection's state: connecting | open | waiting | stopped
 *   status      its last statechange: {state, attempt, attempts, cause,
 *               delay, reconnectAt, reason, message}
 *   user        {id, name} from the welcome, or null before it
 *   names       Names: `names.of(id)` is a user's display name (its id when
 *               no frame has named it)
 *   outbox      {size, limit}: my messages not acknowledged yet
 *   rooms       [Room], in the order they were joined:
 *                 {name, joined (the server's answer came on this socket),
 *                  members (user ids), topic, private, owner (user id or
 *                  null), messages, more (older ones on the server),
 *                  loadingOlder, refused ({code, message}: the server would
 *                  not let me in; the room is not joined again) or null}
 *   Messages are the server's frames (id, room, from, name, text, ts, cid,
 *   edited, deleted) with `pending` (sent, no ack yet: id null) and `failed`
 *   (the error code of a message refused for good, with `failedReason`).
 *
 * Rooms only: direct messages, read marks and typing are the connection's
 * (its methods and its `message` event).
 */
import { Conversation, roomKey } from '../js/conversation.js';
import { Names } from '../js/names.js';

const stores = new WeakMap();

/** The store of `connection`, made on the first call: every caller shares it. */
export function chatStore(connection) {
  let store = stores.get(connection);
  if (!store) {
    store = new ChatStore(connection);
    stores.set(connection, store);
  }
  return store;
}

export class ChatStore {
  /**
   * Starts from what the connection knows now (its state, user, rooms and
   * outbox); the messages of rooms joined before are those that come after.
   * Prefer chatStore(), which makes one store per connection.
   */
  constructor(connection) {
    this.connection = connection;
    this._listeners = new Set();
    /** name -> the store's own record of a room, changed in place (see _view). */
    this._rooms = new Map();
    /** name -> the room as the last snapshot has it. */
    this._views = new Map();
    /** Rooms changed since the last snapshot. */
    this._touched = new Set();
    /** Whether a room was added or removed since the last snapshot. */
    this._listChanged = false;
    /** cid of a pending message -> its room. */
    this._pendingRoom = new Map();

    const user = connection.user;
    const pending = connection.pending();
    this._snapshot = {
      state: connection.state,
      status: {
        state: connection.state, attempt: connection.attempt, attempts: connection.policy.attempts,
        cause: null, delay: null, reconnectAt: null, reason: connection.stopReason, message: '',
      },
      user,
      names: new Names(user),
      outbox: { size: pending.length, limit: connection.outboxLimit },
      rooms: [],
    };
    for (const room of connection.rooms) this._room(room);
    for (const { frame, queuedAt } of pending) {
      if (frame.type === 'say') this._addPending(frame, queuedAt / 1000);
    }
    this._commit({});

    this.subscribe = this.subscribe.bind(this);
    this.getSnapshot = this.getSnapshot.bind(this);
    /** The actions, bound: what useChat hands out beside the snapshot. */
    this.actions = Object.freeze({
      send: this.send.bind(this),
      join: this.join.bind(this),
      leave: this.leave.bind(this),
      loadOlder: this.loadOlder.bind(this),
      discard: this.discard.bind(this),
    });
    connection.addEventListener('statechange', (e) => this._onState(e.detail));
    connection.addEventListener('message', (e) => this._onFrame(e.detail));
    connection.addEventListener('outbox', (e) => this._commit({ outbox: { size: e.detail.size, limit: e.detail.limit } }));
    connection.addEventListener('failed', (e) => this._onFailed(e.detail));
    connection.addEventListener('refused', (e) => this._onRefused(e.detail));
  }

  /** Calls `listener` after every change; returns the function that stops it. */
  subscribe(listener) {
    this._listeners.add(listener);
    return () => {
      this._listeners.delete(listener);
    };
  }

  /** The state as it is now (the same object until something changes). */
  getSnapshot() {
    return this._snapshot;
  }

  // ---- actions -------------------------------------------------------------

  /**
   * Says `text` in `room`: shown at once as pending, until its ack. Returns
   * the cid; throws OutboxFullError when too many messages are unsent.
   */
  send(room, text) {
    const cid = this.connection.say(room, text);
    this._addPending({ type: 'say', room, text, cid }, Date.now() / 1000);
    this._commit({});
    return cid;
  }

  /** Joins `room` now and after every reconnect (again after a refusal). */
  join(room) {
    this.connection.join(room);
    const r = this._room(room);
    if (r.refused) {
      r.refused = null;
      this._touched.add(room);
    }
    this._commit({});
  }

  /** Leaves `room`: the server hears it, and the room leaves the snapshot. */
  leave(room) {
    this.connection.leave(room);
    this._remove(room);
    this._commit({});
  }

  /** Asks for the page of `room` before its oldest message; false when not connected. */
  loadOlder(room, limit = 50) {
    const r = this._rooms.get(room);
    if (!r || r.loadingOlder) return false;
    const asked = this.connection.history({ room }, { before: r.conv.oldestId, limit });
    if (asked) {
      r.loadingOlder = true;
      this._touched.add(room);
      this._commit({});
    }
    return asked;
  }

  /** Takes a pending (usually failed) message away, and stops sending it. */
  discard(cid) {
    this.connection.discard(cid);
    const room = this._pendingRoom.get(cid);
    this._pendingRoom.delete(cid);
    if (room !== undefined && this._rooms.get(room)?.conv.discard(cid)) {
      this._touched.add(room);
      this._commit({});
    }
  }

  // ---- the connection's events -------------------------------------------

  _onState(detail) {
    const { state, attempt, attempts, cause, delay, reconnectAt, reason, message } = detail;
    if (state !== 'open') {
      for (const r of this._rooms.values()) {
        if (r.joined) {
          r.joined = false;
          this._touched.add(r.name);
        }
      }
    }
    this._commit({
      state,
      status: { state, attempt, attempts, cause, delay, reconnectAt: reconnectAt ?? null, reason: reason ?? null, message: message ?? '' },
    });
  }

  _onFrame(frame) {
    const fields = {};
    let names = this._snapshot.names.learned(frame);
    const r = typeof frame.room === 'string' ? this._rooms.get(frame.room) : undefined;
    switch (frame.type) {
      case 'welcome':
        if (frame.user) {
          fields.user = frame.user;
          names = names.learned({ names: { [frame.user.id]: frame.user.name } });
          this._stampPending(frame.user);
        }
        break;
      case 'joined':
        this._joined(this._room(frame.room), frame);
        break;
      case 'left':
        if (frame.reason === 'removed') this._remove(frame.room);
        break;
      case 'presence':
        if (r) {
          for (const id of frame.joined ?? []) r.members.add(id);
          for (const id of frame.left ?? []) r.members.delete(id);
          this._touched.add(r.name);
        }
        break;
      case 'message':
        if (r && Number.isInteger(frame.id)) {
          r.conv.add(frame); // new, or a later version of one here
          this._touched.add(r.name);
        }
        break;
      case 'edit':
      case 'delete':
        if (r && r.conv.applyEvent(frame)) this._touched.add(r.name);
        break;
      case 'history':
        if (r) {
          r.conv.addAll((frame.messages ?? []).filter((m) => Number.isInteger(m.id)));
          r.conv.more = Boolean(frame.more);
          r.loadingOlder = false;
          this._touched.add(r.name);
        }
        break;
      case 'ack': {
        const room = this._pendingRoom.get(frame.cid);
        this._pendingRoom.delete(frame.cid);
        if (room !== undefined && this._rooms.get(room)?.conv.confirm(frame.cid, frame)) this._touched.add(room);
        break;
      }
      default:
        break;
    }
    if (names !== this._snapshot.names) fields.names = names;
    this._commit(fields);
  }

  _joined(r, frame) {
    r.joined = true;
    r.refused = null;
    r.members = new Set(frame.members ?? []);
    if (typeof frame.topic === 'string') r.topic = frame.topic;
    if (typeof frame.private === 'boolean') r.private = frame.private;
    if (frame.owner !== undefined) r.owner = frame.owner;
    if (frame.truncated) r.conv.reset(); // a gap: older messages are loaded on demand
    const wasEmpty = r.conv.size === 0;
    for (const message of frame.messages ?? []) {
      if (Number.isInteger(message.id)) r.conv.add(message);
    }
    for (const event of frame.events ?? []) r.conv.applyEvent(event);
    if (wasEmpty && !frame.truncated) r.conv.more = r.conv.size > 0;
    this._touched.add(r.name);
  }

  _onFailed({ cid, code, message }) {
    const room = this._pendingRoom.get(cid);
    if (room !== undefined && this._rooms.get(room)?.conv.fail(cid, code, message)) {
      this._touched.add(room);
      this._commit({});
    }
  }

  _onRefused({ room, code, message }) {
    const r = this._rooms.get(room);
    if (!r) return;
    r.joined = false;
    r.refused = { code, message };
    this._touched.add(room);
    this._commit({});
  }

  // ---- internals -------------------------------------------------------------

  /** The record of `room`, made if missing. */
  _room(name) {
    let r = this._rooms.get(name);
    if (!r) {
      r = {
        name, joined: false, members: new Set(), topic: '', private: false, owner: null,
        conv: new Conversation(roomKey(name)), loadingOlder: false, refused: null,
      };
      this._rooms.set(name, r);
      this._touched.add(name);
      this._listChanged = true;
    }
    return r;
  }

  _remove(name) {
    if (!this._rooms.delete(name)) return;
    this._views.delete(name);
    this._touched.delete(name);
    this._listChanged = true;
    for (const [cid, room] of this._pendingRoom) {
      if (room === name) this._pendingRoom.delete(cid);
    }
  }

  _addPending(frame, ts) {
    const user = this._snapshot.user;
    const r = this._room(frame.room);
    r.conv.addPending({ ...frame, from: user ? user.id : null, name: user ? user.name : null, ts });
    this._pendingRoom.set(frame.cid, frame.room);
    this._touched.add(frame.room);
  }

  /** My messages queued before the first welcome get their sender once it is known. */
  _stampPending(user) {
    for (const r of this._rooms.values()) {
      const unstamped = r.conv.messages().filter((m) => m.pending && m.from === null);
      for (const m of unstamped) {
        r.conv.discard(m.cid);
        r.conv.addPending({ ...m, from: user.id, name: user.name });
      }
      if (unstamped.length) this._touched.add(r.name);
    }
  }

  _view(r) {
    return Object.freeze({
      name: r.name,
      joined: r.joined,
      members: [...r.members],
      topic: r.topic,
      private: r.private,
      owner: r.owner,
      messages: r.conv.messages(),
      more: r.conv.more,
      loadingOlder: r.loadingOlder,
      refused: r.refused,
    });
  }

  /** Makes the next snapshot from `fields` and the rooms touched, and tells the listeners. */
  _commit(fields) {
    if (Object.keys(fields).length === 0 && this._touched.size === 0 && !this._listChanged) return;
    for (const name of this._touched) this._views.set(name, this._view(this._rooms.get(name)));
    const rooms = this._touched.size || this._listChanged
      ? [...this._rooms.keys()].map((name) => this._views.get(name))
      : this._snapshot.rooms;
    this._touched.clear();
    this._listChanged = false;
    this._snapshot = Object.freeze({ ...this._snapshot, ...fields, rooms });
    for (const listener of [...this._listeners]) listener();
  }
}

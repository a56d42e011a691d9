/**
 * The chat page's state, and `reduce`: (state, frame or action) -> new
 * state, a pure function tested without a socket or a DOM
 * (tests/js/chat-model.test.mjs). The views render from the state; app.js
 * turns the connection's events and the user's actions into calls of
 * `reduce`, and does what the state asks of the network (joins, history).
 *
 * A state is never changed once made: `reduce` returns a new one that shares
 * every part that did not change, so that a view can tell by identity what
 * there is to draw again (a conversation, the names, the list).
 *
 * State:
 *   me             {id, name} of the logged-in user, or null
 *   names          Names: display names of user ids, from the frames
 *   conversations  Map key -> entry, in the order they were opened:
 *                    {key, kind: 'room'|'dm', name (room, or the partner's id),
 *                     conv (Conversation: messages and my pending ones),
 *                     unread, members (Set of ids, rooms only), loaded,
 *                     loadingOlder}
 *   current        the key of the conversation shown, or null
 *   dmSynced       whether the first dm_sync answer has come (its messages
 *                  are not counted unread)
 *   hidden         whether the page is in the background
 *   online         navigator.onLine
 *   connection     the connection's last statechange: {state, attempt,
 *                  attempts, cause, delay, reconnectAt, reason, message}
 *   flash          {id, text}: the last short notice to show, or null
 *
 * Server frames are reduced by their `type` (welcome, joined, left,
 * presence, message, history, dm_sync, ack, error, bye); the page's own
 * actions have types that no frame has (see ACTIONS).
 */
import { Conversation, conversationKeyOf, dmKey, roomKey } from './conversation.js';
import { Names } from './names.js';
import { statusOf } from './status.js';

/** The page's own action types. */
export const ACTIONS = Object.freeze({
  SESSION: 'page/session', // {user, rooms, pending: [{frame, queuedAt}]}: a chat session starts
  END: 'page/end', // logged out
  SELECT: 'page/select', // {key}
  OPEN_DM: 'page/open-dm', // {user}
  JOIN_ROOM: 'page/join-room', // {room}
  LEAVE_ROOM: 'page/leave-room', // {room}
  CLOSE_DM: 'page/close-dm', // {user}
  SEND: 'page/send', // {key, cid, text, ts}: one of my messages, pending until its ack
  FAILED: 'page/failed', // {cid, code, message}: the server refused it for good
  DISCARD: 'page/discard', // {cid}: the user dismissed a failed message
  HISTORY_REQUESTED: 'page/history-requested', // {key, before}
  CONNECTION: 'page/connection', // the connection's statechange detail
  VISIBILITY: 'page/visibility', // {hidden}
  ONLINE: 'page/online', // {online}
  FLASH: 'page/flash', // {text}
});

const RATE_LIMITED_TEXT = 'You are sending too fast; slow down a little.';

/** The state before any session. */
export function initialState() {
  return {
    me: null,
    names: new Names(null),
    conversations: new Map(),
    current: null,
    dmSynced: false,
    hidden: false,
    online: true,
    connection: {
      state: 'stopped', attempt: 0, attempts: 0, cause: null, delay: null, reconnectAt: null, reason: null, message: '',
    },
    flash: null,
  };
}

function newEntry(key, kind, name) {
  return {
    key,
    kind,
    name,
    conv: new Conversation(key),
    unread: 0,
    members: kind === 'room' ? new Set() : null,
    /** Whether the first page of messages has been received. */
    loaded: false,
    loadingOlder: false,
  };
}

/**
 * Changes to a state, made on copies: `entry(key)` gives an entry to change
 * (its conversation and members copied on first use), `commit()` the new
 * state (the old one when nothing was touched).
 */
class Draft {
  constructor(state) {
    this.base = state;
    this.fields = {};
    this.conversations = null;
    /** Keys of the entries copied, and of those whose conversation was copied too. */
    this.touched = new Set();
    this.convCopied = new Set();
  }

  get state() {
    return { ...this.base, ...this.fields, conversations: this.conversations ?? this.base.conversations };
  }

  get(key) {
    return (this.conversations ?? this.base.conversations).get(key) ?? null;
  }

  set(field, value) {
    this.fields[field] = value;
  }

  _convs() {
    if (this.conversations === null) this.conversations = new Map(this.base.conversations);
    return this.conversations;
  }

  /**
   * The entry `key`, copied for changing, or null. Its conversation is
   * copied too unless `conv` is false (for a change of its other fields
   * only); its members are copied by whoever changes them. Views redraw
   * by identity.
   */
  entry(key, { conv = true } = {}) {
    let entry = this.get(key);
    if (!entry) return null;
    if (!this.touched.has(key)) {
      entry = { ...entry };
      this._convs().set(key, entry);
      this.touched.add(key);
    }
    if (conv && !this.convCopied.has(key)) {
      entry.conv = entry.conv.clone();
      this.convCopied.add(key);
    }
    return entry;
  }

  /** The entry `key`, made if missing. */
  ensure(key, kind, name) {
    if (!this.get(key)) {
      this._convs().set(key, newEntry(key, kind, name));
      this.touched.add(key);
      this.convCopied.add(key);
    }
    return this.entry(key);
  }

  remove(key) {
    if (this.get(key)) this._convs().delete(key);
  }

  commit() {
    if (this.conversations === null && Object.keys(this.fields).length === 0) return this.base;
    return this.state;
  }
}

/** Counts a new message as unread unless it is mine or the user is looking at it. */
function noteUnread(state, entry, message) {
  if (state.me && message.from === state.me.id) return;
  if (entry.key === state.current && !state.hidden) return;
  entry.unread += 1;
}

/** The key to show after `removed` is gone: the first room, else (with `anyKind`) the first one. */
function nextCurrent(draft, anyKind) {
  const entries = [...draft.state.conversations.values()];
  const next = entries.find((e) => e.kind === 'room') ?? (anyKind ? entries[0] : undefined);
  return next ? next.key : null;
}

function flash(state, draft, text) {
  draft.set('flash', { id: (state.flash ? state.flash.id : 0) + 1, text });
}

/** The state after one server frame or page action. Unknown types leave it as it is. */
export function reduce(state, action) {
  if (!action || typeof action !== 'object') return state;
  if (typeof action.type === 'string' && action.type.startsWith('page/')) return reduceAction(state, action);
  if (state.me === null) return state; // no session: frames of a closed one
  const draft = new Draft(state);
  const names = state.names.learned(action);
  if (names !== state.names) draft.set('names', names);
  const me = state.me.id;
  switch (action.type) {
    case 'joined': {
      const entry = draft.entry(roomKey(action.room));
      if (!entry) break; // a room the page has left
      entry.members = new Set(action.members ?? []);
      if (action.truncated) entry.conv.reset();
      const wasEmpty = entry.conv.size === 0;
      for (const message of action.messages ?? []) {
        if (entry.conv.add(message) && entry.loaded) noteUnread(state, entry, message);
      }
      if (wasEmpty && !action.truncated) entry.conv.more = entry.conv.size > 0;
      entry.loaded = true;
      break;
    }
    case 'presence': {
      const entry = draft.entry(roomKey(action.room));
      if (!entry) break;
      entry.members = new Set(entry.members);
      for (const id of action.joined ?? []) entry.members.add(id);
      for (const id of action.left ?? []) entry.members.delete(id);
      break;
    }
    case 'message': {
      if (!Number.isInteger(action.id)) break;
      const key = conversationKeyOf(action, me);
      let entry = draft.entry(key);
      if (!entry) {
        if (action.room !== undefined && action.room !== null) break; // a room the page has left
        entry = draft.ensure(key, 'dm', key.slice('dm:'.length));
        entry.conv.more = true;
      }
      if (entry.conv.add(action)) noteUnread(state, entry, action);
      break;
    }
    case 'history': {
      const key = action.room !== undefined ? roomKey(action.room) : dmKey(action.with);
      const entry = draft.entry(key);
      if (!entry) break;
      entry.conv.addAll((action.messages ?? []).filter((m) => Number.isInteger(m.id)));
      entry.conv.more = Boolean(action.more);
      entry.loaded = true;
      entry.loadingOlder = false;
      break;
    }
    case 'dm_sync': {
      const first = !state.dmSynced;
      draft.set('dmSynced', true);
      if (action.truncated) {
        for (const entry of state.conversations.values()) {
          if (entry.kind === 'dm') draft.entry(entry.key).conv.reset();
        }
      }
      for (const message of action.messages ?? []) {
        if (!Number.isInteger(message.id)) continue;
        const key = conversationKeyOf(message, me);
        const entry = draft.ensure(key, 'dm', key.slice('dm:'.length));
        if (entry.conv.size === 0) entry.conv.more = true;
        if (entry.conv.add(message) && !first) noteUnread(state, entry, message);
      }
      break;
    }
    case 'ack': {
      for (const entry of state.conversations.values()) {
        if (entry.conv.isPending(action.cid)) {
          draft.entry(entry.key).conv.confirm(action.cid, action);
          break;
        }
      }
      break;
    }
    case 'error':
      // One with a cid is the connection's: it sends it again, or reports it as failed.
      if (!action.cid) {
        flash(state, draft, action.code === 'rate_limited'
          ? RATE_LIMITED_TEXT
          : action.message || action.code || 'The server reported an error.');
      }
      break;
    default:
      // welcome, left (the page left the room itself), bye (the connection's),
      // anything newer: only their names.
      break;
  }
  return draft.commit();
}

function reduceAction(state, action) {
  const A = ACTIONS;
  if (action.type === A.SESSION) return startSession(action);
  if (action.type === A.END) return initialState();
  const draft = new Draft(state);
  switch (action.type) {
    case A.SELECT:
      select(draft, action.key);
      break;
    case A.OPEN_DM:
      if (!state.me || action.user === state.me.id) break;
      draft.ensure(dmKey(action.user), 'dm', action.user);
      select(draft, dmKey(action.user));
      break;
    case A.JOIN_ROOM:
      draft.ensure(roomKey(action.room), 'room', action.room);
      select(draft, roomKey(action.room));
      break;
    case A.LEAVE_ROOM: {
      const key = roomKey(action.room);
      if (!draft.get(key)) break;
      draft.remove(key);
      if (state.current === key) draft.set('current', nextCurrent(draft, true));
      break;
    }
    case A.CLOSE_DM: {
      const key = dmKey(action.user);
      const entry = draft.get(key);
      if (!entry || entry.conv.pendingCount > 0) break; // keep unsent messages visible
      draft.remove(key);
      if (state.current === key) draft.set('current', nextCurrent(draft, false));
      break;
    }
    case A.SEND: {
      const entry = draft.entry(action.key);
      if (!entry || !state.me) break;
      const target = entry.kind === 'room' ? { room: entry.name } : { to: entry.name };
      entry.conv.addPending({
        cid: action.cid, from: state.me.id, name: state.me.name, text: action.text, ts: action.ts, ...target,
      });
      break;
    }
    case A.FAILED: {
      for (const entry of state.conversations.values()) {
        if (entry.conv.isPending(action.cid)) {
          draft.entry(entry.key).conv.fail(action.cid, action.code);
          break;
        }
      }
      flash(state, draft, action.message || `Message not sent: ${action.code}`);
      break;
    }
    case A.DISCARD: {
      const current = state.current && state.conversations.get(state.current);
      if (current && current.conv.isPending(action.cid)) draft.entry(current.key).conv.discard(action.cid);
      break;
    }
    case A.HISTORY_REQUESTED: {
      const entry = draft.get(action.key);
      if (entry && entry.loadingOlder !== (action.before !== null)) {
        draft.entry(action.key, { conv: false }).loadingOlder = action.before !== null;
      }
      break;
    }
    case A.CONNECTION: {
      const { state: s, attempt, attempts, cause, delay, reconnectAt, reason, message } = action;
      draft.set('connection', {
        state: s, attempt, attempts, cause, delay, reconnectAt: reconnectAt ?? null, reason: reason ?? null, message: message ?? '',
      });
      break;
    }
    case A.VISIBILITY: {
      if (state.hidden === action.hidden) break;
      draft.set('hidden', action.hidden);
      const current = state.current && state.conversations.get(state.current);
      if (!action.hidden && current && current.unread > 0) draft.entry(current.key, { conv: false }).unread = 0;
      break;
    }
    case A.ONLINE:
      if (state.online !== action.online) draft.set('online', action.online);
      break;
    case A.FLASH:
      flash(state, draft, action.text);
      break;
    default:
      break;
  }
  return draft.commit();
}

function select(draft, key) {
  const entry = draft.get(key);
  if (!entry) return;
  draft.set('current', key);
  if (entry.unread !== 0) draft.entry(key, { conv: false }).unread = 0;
}

/**
 * A new session: a conversation for each room the page keeps (`rooms`) and
 * for each message still in the outbox (shown as pending, its room joined).
 */
function startSession({ user, rooms = [], pending = [], online = true, hidden = false }) {
  const base = { ...initialState(), me: user, names: new Names(user), online, hidden };
  const draft = new Draft(base);
  for (const room of rooms) draft.ensure(roomKey(room), 'room', room);
  for (const { frame, queuedAt } of pending) {
    const entry = frame.type === 'say'
      ? draft.ensure(roomKey(frame.room), 'room', frame.room)
      : draft.ensure(dmKey(frame.to), 'dm', frame.to);
    entry.conv.addPending({ ...frame, from: user.id, name: user.name, ts: queuedAt / 1000 });
  }
  draft.set('current', rooms.length ? roomKey(rooms[0]) : null);
  return draft.commit();
}

// ---- selectors -------------------------------------------------------------

/** The conversation shown, or null. */
export function currentEntry(state) {
  return state.current ? state.conversations.get(state.current) ?? null : null;
}

/** The rooms the page keeps, in order: each is joined on the connection. */
export function roomsOf(state) {
  return [...state.conversations.values()].filter((e) => e.kind === 'room').map((e) => e.name);
}

/** Unread messages over every conversation (for the window title). */
export function totalUnread(state) {
  let n = 0;
  for (const entry of state.conversations.values()) n += entry.unread;
  return n;
}

/** What a conversation is called: a room's name, a direct partner's display name. */
export function labelOf(state, entry) {
  return entry.kind === 'room' ? entry.name : state.names.of(entry.name);
}

/** The user ids to list as members: a room's by name, a direct conversation's two. */
export function memberIds(state) {
  const entry = currentEntry(state);
  if (!entry) return [];
  if (entry.kind === 'room') return [...entry.members].sort((a, b) => state.names.compare(a, b));
  return [state.me.id, entry.name];
}

/** The status indicator's state (see status.js); `Not signed in` without a session. */
export function statusOfState(state) {
  if (!state.me) return null;
  const c = state.connection;
  return statusOf(c.state, { attempt: c.attempt, online: state.online });
}

/** Whether the current conversation offers "load older" and whether it can be used now. */
export function loadOlderOf(state) {
  const entry = currentEntry(state);
  const show = Boolean(entry && entry.conv.more && entry.conv.size > 0);
  return {
    show,
    enabled: show && state.connection.state === 'open' && !entry.loadingOlder,
    loading: show && entry.loadingOlder,
  };
}

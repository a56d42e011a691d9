/**
 * The chat page's state, and `reduce`: (state, frame or action, now) -> new
 * state, a pure function tested without a socket or a DOM
 * (tests/js/chat-model.test.mjs). The views render from the state; app.js
 * turns the connection's events and the user's actions into calls of
 * `reduce`, and does what the state asks of the network (joins, history,
 * read marks).
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
 *                     loadingOlder,
 *                     read (my read mark: the newest id read, or null),
 *                     readServer (the mark the server has, as far as the
 *                       page knows; a higher `read` is to be sent),
 *                     typists (Map user id -> {name, until}: who is typing),
 *                     topic, private, owned (rooms: whether I own it, as
 *                       `joined` says, or I just created it)}
 *   current        the key of the conversation shown, or null
 *   dmSynced       whether the first dm_sync answer has come (its messages
 *                  are not counted unread)
 *   speaks         whether the server speaks the Conversations addition (its
 *                  welcome had `unread`, or a `joined` a read mark): read marks
 *                  and typing are sent only then
 *   hidden         whether the page is in the background
 *   atBottom       whether the newest message of the conversation is in view
 *   online         navigator.onLine
 *   connection     the connection's last statechange: {state, attempt,
 *                  attempts, cause, delay, reconnectAt, reason, message}
 *   flash          {id, text}: the last short notice to show, or null
 *   panel          the drawer open on a narrow screen: none | rooms | members
 *   left           Set of the rooms left in this session (unread counts sent
 *                  before the server heard the leave do not bring them back)
 *   editing        {id, mode: 'edit'|'delete'}: the message of mine being
 *                  edited or about to be deleted, or null
 *   changes        Map cid -> {target, change: 'edit'|'delete', text}: my
 *                  edits and deletions sent and not yet acknowledged
 *   directory      {open, rooms (from the `rooms` frame, or null), creating
 *                  (the room asked for, until `created`), error}
 *
 * Server frames are reduced by their `type` (welcome, joined, left,
 * presence, message, history, dm_sync, ack, error, bye; read, typing, edit,
 * delete, rooms, created, invited, removed); the page's own
 * actions have types that no frame has (see ACTIONS). `now` (ms) is the
 * clock, for typing indicators that expire.
 */
import { Conversation, conversationKeyOf, dmKey, roomKey } from './conversation.js';
import { Names } from './names.js';
import { statusOf } from './status.js';
import { SHOWN_MS, nextExpiry, pruneTypists, withTypist } from './typing.js';

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
  SCROLLED: 'page/scrolled', // {atBottom}
  READ_SENT: 'page/read-sent', // {reads: [{key, id}]}: the page told the server these read marks
  TICK: 'page/tick', // time passed (typing indicators expire)
  PANEL: 'page/panel', // {panel}: none | rooms | members
  EDIT: 'page/edit', // {id, mode: 'edit'|'delete'}: open the editor or the delete question; id null closes
  CHANGE_SENT: 'page/change-sent', // {cid, target, change: 'edit'|'delete', text}
  DIRECTORY: 'page/directory', // {open}
  CREATE: 'page/create', // {room}: asked the server to create it
  JOIN_REFUSED: 'page/join-refused', // {room, code, message}: the server refused a join
});

const RATE_LIMITED_TEXT = 'You are sending too fast; slow down a little.';
const NO_CONNECTION = {
  state: 'stopped', attempt: 0, attempts: 0, cause: null, delay: null, reconnectAt: null, reason: null, message: '',
};

/** The state before any session. */
export function initialState() {
  return {
    me: null,
    names: new Names(null),
    conversations: new Map(),
    current: null,
    dmSynced: false,
    speaks: false,
    hidden: false,
    atBottom: true,
    online: true,
    connection: NO_CONNECTION,
    flash: null,
    panel: 'none',
    left: new Set(),
    editing: null,
    changes: new Map(),
    directory: { open: false, rooms: null, creating: null, error: '' },
  };
}

/** Nobody typing (shared: an entry gets a map of its own when someone types). */
const NO_TYPISTS = new Map();

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
    read: null,
    readServer: null,
    typists: NO_TYPISTS,
    topic: '',
    private: false,
    owned: false,
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

  /** A field of the state as changed so far. */
  value(field) {
    return field in this.fields ? this.fields[field] : this.base[field];
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

/** Counts a message new here as unread unless it is mine or before my read mark. */
function noteUnread(state, entry, message) {
  if (state.me && message.from === state.me.id) return;
  if (entry.read !== null && message.id <= entry.read) return;
  entry.unread += 1;
}

/**
 * Takes a read mark from the server ({read, unread}: `unread`, `joined`, or
 * a `read` from another of my devices). A mark behind mine (I read further
 * while the server could not hear it) keeps mine, to be sent again.
 */
function takeMark(entry, mark, me) {
  if (!Number.isInteger(mark.read)) return;
  // The server's word on what it has (a read of mine it has not seen yet is sent again: harmless).
  entry.readServer = mark.read;
  if (entry.read === null || mark.read >= entry.read) {
    entry.read = mark.read;
    entry.unread = Number.isInteger(mark.unread) ? mark.unread : 0;
  } else {
    entry.unread = entry.conv.countAfter(entry.read, me);
  }
}

/**
 * The user looks at the newest messages of the conversation shown (the page
 * is visible and scrolled to the bottom): they are read. The mark moves to
 * the newest message, and app.js sends it (readsToSend).
 */
function markViewed(draft) {
  const key = draft.value('current');
  if (draft.value('hidden') || !draft.value('atBottom') || key === null) return;
  const entry = draft.get(key);
  if (!entry || !entry.loaded) return;
  const newest = entry.conv.newestId;
  const advance = newest !== null && (entry.read === null || newest > entry.read);
  if (entry.unread === 0 && !advance) return;
  const changed = draft.entry(key, { conv: false });
  changed.unread = 0;
  if (advance) changed.read = newest;
}

/** Sets who is typing in conversation `key` with `change(typists)`; copies the entry only on a change. */
function changeTypists(draft, key, change) {
  const entry = draft.get(key);
  if (!entry) return;
  const typists = change(entry.typists);
  if (typists !== entry.typists) draft.entry(key, { conv: false }).typists = typists;
}

/** Applies an edit or a deletion to its message, wherever the page shows it. */
function applyEvent(draft, key, event) {
  const entry = draft.get(key);
  if (!entry || !entry.conv.has(event.target)) return;
  draft.entry(key).conv.applyEvent(event);
  const editing = draft.value('editing');
  if (event.type === 'delete' && editing && editing.id === event.target) draft.set('editing', null);
}

/** The key to show after `removed` is gone: the first room, else (with `anyKind`) the first one. */
function nextCurrent(draft, anyKind) {
  const entries = [...draft.state.conversations.values()];
  const next = entries.find((e) => e.kind === 'room') ?? (anyKind ? entries[0] : undefined);
  return next ? next.key : null;
}

function flash(draft, text) {
  const last = draft.value('flash');
  draft.set('flash', { id: (last ? last.id : 0) + 1, text });
}

function removeRoom(draft, room) {
  const key = roomKey(room);
  if (!draft.get(key)) return;
  draft.remove(key);
  if (draft.value('current') === key) draft.set('current', nextCurrent(draft, true));
}

/** A room the server says I am in (invited, created, or a member from another device). */
function addRoom(draft, room, { topic, private: isPrivate, owned } = {}) {
  const entry = draft.get(roomKey(room))
    ? draft.entry(roomKey(room), { conv: false })
    : draft.ensure(roomKey(room), 'room', room);
  if (typeof topic === 'string') entry.topic = topic;
  if (typeof isPrivate === 'boolean') entry.private = isPrivate;
  if (owned) entry.owned = true;
  const left = draft.value('left');
  if (left.has(room)) draft.set('left', without(left, room));
  return entry;
}

function without(set, item) {
  const copy = new Set(set);
  copy.delete(item);
  return copy;
}

function setDirectory(draft, fields) {
  draft.set('directory', { ...draft.value('directory'), ...fields });
}

/** The state after one server frame or page action. Unknown types leave it as it is. */
export function reduce(state, action, now = 0) {
  if (!action || typeof action !== 'object') return state;
  if (typeof action.type === 'string' && action.type.startsWith('page/')) {
    if (action.type === ACTIONS.SESSION) return startSession(action);
    if (action.type === ACTIONS.END) return initialState();
    if (state.me === null) return state;
    const draft = new Draft(state);
    reduceAction(draft, action, now);
    markViewed(draft);
    return draft.commit();
  }
  if (state.me === null) return state; // no session: frames of a closed one
  const draft = new Draft(state);
  const names = state.names.learned(action);
  if (names !== state.names) draft.set('names', names);
  reduceFrame(draft, action, now);
  markViewed(draft);
  return draft.commit();
}

function reduceFrame(draft, action, now) {
  const state = draft.base;
  const me = state.me.id;
  switch (action.type) {
    case 'joined': {
      const entry = draft.entry(roomKey(action.room));
      if (!entry) break; // a room the page has left
      entry.members = new Set(action.members ?? []);
      if (typeof action.topic === 'string') entry.topic = action.topic;
      if (typeof action.private === 'boolean') entry.private = action.private;
      if (action.owner !== undefined) entry.owned = action.owner === me;
      if (action.truncated) entry.conv.reset();
      const wasEmpty = entry.conv.size === 0;
      // With a read mark the server counts what is unread; without, the page does.
      const counted = Number.isInteger(action.read);
      for (const message of action.messages ?? []) {
        if (entry.conv.add(message) && entry.loaded && !counted) noteUnread(state, entry, message);
      }
      for (const event of action.events ?? []) entry.conv.applyEvent(event);
      if (wasEmpty && !action.truncated) entry.conv.more = entry.conv.size > 0;
      entry.loaded = true;
      if (counted) {
        takeMark(entry, action, me);
        draft.set('speaks', true);
      }
      break;
    }
    case 'left':
      // The page removes a room it leaves itself; `removed` is the owner's doing.
      if (action.reason === 'removed' && draft.get(roomKey(action.room))) {
        removeRoom(draft, action.room);
        flash(draft, `You were removed from #${action.room}.`);
      }
      break;
    case 'presence': {
      const key = roomKey(action.room);
      const entry = draft.entry(key);
      if (!entry) break;
      entry.members = new Set(entry.members);
      for (const id of action.joined ?? []) entry.members.add(id);
      for (const id of action.left ?? []) entry.members.delete(id);
      changeTypists(draft, key, (t) => (action.left ?? []).reduce((m, id) => withTypist(m, id, '', false), t));
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
      changeTypists(draft, key, (t) => withTypist(t, action.from, '', false)); // a message ends the typing
      break;
    }
    case 'edit':
    case 'delete':
      if (Number.isInteger(action.id)) applyEvent(draft, conversationKeyOf(action, me), action);
      break;
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
      // The first answer, and any after an `unread` frame, are counted by the server.
      const counted = !state.dmSynced || state.speaks;
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
        if (entry.conv.add(message) && !counted) noteUnread(state, entry, message);
      }
      for (const event of action.events ?? []) applyEvent(draft, conversationKeyOf(event, me), event);
      break;
    }
    case 'welcome':
      if (action.unread && typeof action.unread === 'object') takeUnread(draft, action.unread);
      break;
    case 'read': {
      const key = action.room !== undefined && action.room !== null ? roomKey(action.room) : dmKey(action.with);
      if (draft.get(key)) takeMark(draft.entry(key, { conv: false }), { read: action.id, unread: action.unread }, me);
      break;
    }
    case 'typing': {
      if (action.user === me || typeof action.user !== 'string') break;
      const key = action.room !== undefined && action.room !== null ? roomKey(action.room) : dmKey(action.user);
      const name = action.name || draft.value('names').of(action.user);
      changeTypists(draft, key, (t) => withTypist(t, action.user, name, action.typing !== false, now + SHOWN_MS));
      break;
    }
    case 'rooms':
      setDirectory(draft, { rooms: Array.isArray(action.rooms) ? action.rooms : [] });
      break;
    case 'created':
      addRoom(draft, action.room, { topic: action.topic, private: action.private, owned: true });
      select(draft, roomKey(action.room));
      setDirectory(draft, { open: false, creating: null, error: '' });
      break;
    case 'invited':
      if (action.by !== undefined) { // to me: the room is mine to join
        addRoom(draft, action.room, { topic: action.topic, private: true });
        flash(draft, `${action.name || 'Someone'} invited you to #${action.room}.`);
      } else { // to the owner: done
        const names = draft.value('names');
        flash(draft, names.has(action.user)
          ? `Invited ${names.of(action.user)} to #${action.room}.`
          : `Invitation to #${action.room} sent.`);
      }
      break;
    case 'removed': {
      const names = draft.value('names');
      flash(draft, `Removed ${names.has(action.user) ? names.of(action.user) : 'them'} from #${action.room}.`);
      break;
    }
    case 'ack': {
      const change = state.changes.get(action.cid);
      if (change) {
        // My edit or deletion: this connection gets the ack, not the event.
        draft.set('changes', withoutKey(state.changes, action.cid));
        for (const entry of state.conversations.values()) {
          if (entry.conv.has(change.target)) {
            applyEvent(draft, entry.key, {
              type: change.change, id: action.id, target: change.target, text: change.text ?? '', ts: action.ts,
            });
            break;
          }
        }
        break;
      }
      for (const entry of state.conversations.values()) {
        if (entry.conv.isPending(action.cid)) {
          draft.entry(entry.key).conv.confirm(action.cid, action);
          break;
        }
      }
      break;
    }
    case 'error': {
      // One with a cid is the connection's: it sends it again, or reports it as failed.
      if (action.cid) break;
      const { creating } = state.directory;
      if (creating !== null && (action.code === 'room_exists' || action.code === 'bad_request')) {
        setDirectory(draft, {
          creating: null,
          error: action.code === 'room_exists' ? `A room named #${creating} exists already.` : action.message,
        });
        break;
      }
      flash(draft, action.code === 'rate_limited'
        ? RATE_LIMITED_TEXT
        : action.message || action.code || 'The server reported an error.');
      break;
    }
    default:
      // bye (the connection's), anything newer: only their names.
      break;
  }
}

/**
 * The unread counts of `welcome`: {rooms: {room: mark}, direct: {user id:
 * {name, ...mark}}}. They are the server's word for every conversation.
 */
function takeUnread(draft, { rooms = {}, direct = {} }) {
  const state = draft.base;
  const me = state.me.id;
  draft.set('speaks', true);
  for (const [room, mark] of Object.entries(rooms)) {
    // A room joined on another device is joined here too, unless left here.
    if (!draft.get(roomKey(room)) && state.left.has(room)) continue;
    takeMark(addRoom(draft, room), mark, me);
  }
  for (const [user, mark] of Object.entries(direct)) {
    const existed = Boolean(draft.get(dmKey(user)));
    const entry = draft.ensure(dmKey(user), 'dm', user);
    if (!existed) entry.conv.more = true;
    takeMark(entry, mark, me);
  }
  // A direct conversation not listed has nothing unread.
  for (const entry of state.conversations.values()) {
    if (entry.kind === 'dm' && !(entry.name in direct) && entry.unread !== 0) {
      draft.entry(entry.key, { conv: false }).unread = 0;
    }
  }
}

function withoutKey(map, key) {
  const copy = new Map(map);
  copy.delete(key);
  return copy;
}

function reduceAction(draft, action, now) {
  const A = ACTIONS;
  const state = draft.base;
  switch (action.type) {
    case A.SELECT:
      select(draft, action.key);
      break;
    case A.OPEN_DM:
      if (action.user === state.me.id) break;
      draft.ensure(dmKey(action.user), 'dm', action.user);
      select(draft, dmKey(action.user));
      break;
    case A.JOIN_ROOM:
      addRoom(draft, action.room);
      select(draft, roomKey(action.room));
      break;
    case A.LEAVE_ROOM:
      if (!draft.get(roomKey(action.room))) break;
      removeRoom(draft, action.room);
      draft.set('left', new Set(state.left).add(action.room));
      break;
    case A.JOIN_REFUSED:
      removeRoom(draft, action.room);
      // A private room, or the application's refusal (a token's rooms, the join hook) with its reason.
      flash(draft, /\bprivate\b/.test(action.message ?? '')
        ? `#${action.room} is a private room: only members it invited can join.`
        : `You cannot join #${action.room}: ${action.message || action.code}`);
      break;
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
      if (!entry) break;
      const target = entry.kind === 'room' ? { room: entry.name } : { to: entry.name };
      entry.conv.addPending({
        cid: action.cid, from: state.me.id, name: state.me.name, text: action.text, ts: action.ts, ...target,
      });
      break;
    }
    case A.FAILED: {
      if (state.changes.has(action.cid)) {
        draft.set('changes', withoutKey(state.changes, action.cid));
        flash(draft, action.message || `Not changed: ${action.code}`);
        break;
      }
      for (const entry of state.conversations.values()) {
        if (entry.conv.isPending(action.cid)) {
          draft.entry(entry.key).conv.fail(action.cid, action.code, action.message);
          break;
        }
      }
      flash(draft, action.message || `Message not sent: ${action.code}`);
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
      if (s !== 'open') { // typists are told again on the next connection
        for (const entry of state.conversations.values()) changeTypists(draft, entry.key, () => NO_TYPISTS);
      }
      break;
    }
    case A.VISIBILITY:
      if (state.hidden !== action.hidden) draft.set('hidden', action.hidden);
      break;
    case A.ONLINE:
      if (state.online !== action.online) draft.set('online', action.online);
      break;
    case A.FLASH:
      flash(draft, action.text);
      break;
    case A.SCROLLED:
      if (state.atBottom !== action.atBottom) draft.set('atBottom', action.atBottom);
      break;
    case A.READ_SENT:
      for (const { key, id } of action.reads) {
        const entry = draft.get(key);
        if (entry && (entry.readServer === null || id > entry.readServer)) draft.entry(key, { conv: false }).readServer = id;
      }
      break;
    case A.TICK:
      for (const entry of state.conversations.values()) changeTypists(draft, entry.key, (t) => pruneTypists(t, now));
      break;
    case A.PANEL:
      if (state.panel !== action.panel) draft.set('panel', action.panel);
      break;
    case A.EDIT:
      draft.set('editing', action.id === null || action.id === undefined ? null : { id: action.id, mode: action.mode });
      break;
    case A.CHANGE_SENT:
      draft.set('changes', new Map(state.changes).set(action.cid, {
        target: action.target, change: action.change, text: action.text ?? '',
      }));
      draft.set('editing', null);
      break;
    case A.DIRECTORY:
      setDirectory(draft, action.open ? { open: true, error: '' } : { open: false, creating: null, error: '' });
      break;
    case A.CREATE:
      setDirectory(draft, { creating: action.room, error: '' });
      break;
    default:
      break;
  }
}

function select(draft, key) {
  const entry = draft.get(key);
  if (!entry) return;
  draft.set('current', key);
  draft.set('atBottom', true); // the view shows a conversation from its newest message
  draft.set('editing', null);
  draft.set('panel', 'none');
  if (entry.unread !== 0) draft.entry(key, { conv: false }).unread = 0;
}

/**
 * A new session: a conversation for each room the page keeps (`rooms`), and
 * for each frame still in the outbox: a message is shown as pending (its room
 * joined), an edit or a deletion waits for its ack.
 */
function startSession({ user, rooms = [], pending = [], online = true, hidden = false }) {
  const base = { ...initialState(), me: user, names: new Names(user), online, hidden };
  const draft = new Draft(base);
  for (const room of rooms) addRoom(draft, room);
  const changes = new Map();
  for (const { frame, queuedAt } of pending) {
    if (frame.type === 'edit' || frame.type === 'delete') {
      changes.set(frame.cid, { target: frame.target, change: frame.type, text: frame.text ?? '' });
      continue;
    }
    const entry = frame.type === 'say'
      ? draft.ensure(roomKey(frame.room), 'room', frame.room)
      : draft.ensure(dmKey(frame.to), 'dm', frame.to);
    entry.conv.addPending({ ...frame, from: user.id, name: user.name, ts: queuedAt / 1000 });
  }
  if (changes.size) draft.set('changes', changes);
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

/** Whether an operator disconnected the page (4003): nothing it shows of others is live. */
export function kicked(state) {
  return state.connection.state === 'stopped' && state.connection.reason === 'kicked';
}

/**
 * The user ids to list as members: a room's by name, a direct conversation's
 * two; none while disconnected by an operator (who is there is unknown).
 */
export function memberIds(state) {
  const entry = currentEntry(state);
  if (!entry || kicked(state)) return [];
  if (entry.kind === 'room') return [...entry.members].sort((a, b) => state.names.compare(a, b));
  return [state.me.id, entry.name];
}

/**
 * What the member list says about itself: '' while it is live; why it is
 * empty or may be out of date otherwise. `stale`: shown, but not live.
 */
export function membersNoteOf(state) {
  const entry = currentEntry(state);
  if (!entry || entry.kind !== 'room') return { stale: false, note: '' };
  if (kicked(state)) return { stale: true, note: 'Disconnected by an operator: presence is not shown.' };
  if (state.connection.state !== 'open' && entry.loaded) {
    return { stale: true, note: 'Not connected: this list may be out of date.' };
  }
  return { stale: false, note: '' };
}

/** Whether the composer takes text, and if not, why (shown in its place). */
export function composerOf(state) {
  if (kicked(state)) return { disabled: true, reason: 'Disconnected by an operator. Reconnect to write again.' };
  return { disabled: false, reason: '' };
}

/** The names of those typing in the conversation shown, in the order they began. */
export function typingNames(state) {
  const entry = currentEntry(state);
  return entry ? [...entry.typists.values()].map((t) => t.name) : [];
}

/** When (ms) the next typing indicator expires, or null. */
export function nextTypingExpiry(state) {
  let next = null;
  for (const entry of state.conversations.values()) {
    const at = nextExpiry(entry.typists);
    if (at !== null && (next === null || at < next)) next = at;
  }
  return next;
}

/**
 * The read marks to tell the server: [{key, target: {room} | {with}, id}],
 * for conversations read further than the server knows. Only on an open
 * connection to a server that keeps read marks.
 */
export function readsToSend(state) {
  if (!state.speaks || state.connection.state !== 'open') return [];
  const reads = [];
  for (const entry of state.conversations.values()) {
    if (entry.read !== null && entry.loaded && (entry.readServer === null || entry.read > entry.readServer)) {
      const target = entry.kind === 'room' ? { room: entry.name } : { with: entry.name };
      reads.push({ key: entry.key, target, id: entry.read });
    }
  }
  return reads;
}

/** Whether I may invite to and remove from the conversation shown: a private room of mine. */
export function canManage(state) {
  const entry = currentEntry(state);
  return Boolean(entry && entry.kind === 'room' && entry.private && entry.owned && !kicked(state));
}

/** Edits and deletions of mine awaiting their ack: Map message id -> 'edit' | 'delete'. */
export function changesByTarget(state) {
  const byTarget = new Map();
  for (const { target, change } of state.changes.values()) byTarget.set(target, change);
  return byTarget;
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

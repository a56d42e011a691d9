/**
 * The chat page: login, the room and direct-message lists, the members of
 * the current room, the message view and the connection status. All network
 * logic lives in ChatConnection; this module turns its events into DOM and
 * the user's actions into its method calls. Text from the network is only
 * ever set with textContent.
 *
 * Users are keyed by their id (opaque for guests) and shown by display name:
 * the names come with the frames (`names` of joined and presence, `name` and
 * `to_name` of messages) and are kept in session.names.
 */
import * as api from './api.js';
import { ChatConnection, StopReason } from './connection.js';
import { Conversation, conversationKeyOf, dmKey, roomKey } from './conversation.js';
import { renderMessages } from './message-view.js';
import { Names } from './names.js';
import { STATUS_LABELS, countdownText, statusOf } from './status.js';

const ROOM_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const DEFAULT_ROOM = 'general';
const HISTORY_PAGE = 50;
const FLASH_MS = 5000;

const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);

const ui = {
  app: document.querySelector('.app'),
  status: byTestId('status'),
  statusLabel: document.querySelector('.status-label'),
  whoami: byTestId('whoami'),
  logout: byTestId('logout'),
  loginView: byTestId('login-view'),
  loginForm: byTestId('login-form'),
  loginName: byTestId('login-name'),
  loginInfo: byTestId('login-info'),
  loginError: byTestId('login-error'),
  loginSubmit: byTestId('login-submit'),
  chatView: byTestId('chat-view'),
  roomList: byTestId('room-list'),
  roomForm: byTestId('room-form'),
  roomInput: byTestId('room-input'),
  dmList: byTestId('dm-list'),
  dmEmpty: byTestId('dm-empty'),
  memberList: byTestId('member-list'),
  title: byTestId('conversation-title'),
  toast: byTestId('toast'),
  toastText: byTestId('toast-text'),
  toastRetry: byTestId('toast-retry'),
  gaveUp: byTestId('gave-up'),
  gaveUpText: byTestId('gave-up-text'),
  retry: byTestId('retry'),
  kicked: byTestId('kicked'),
  kickedReason: byTestId('kicked-reason'),
  reconnect: byTestId('reconnect'),
  flash: byTestId('flash'),
  scroller: byTestId('message-scroller'),
  loadOlder: byTestId('load-older'),
  empty: byTestId('empty'),
  messageList: byTestId('message-list'),
  composer: byTestId('composer'),
  composerInput: byTestId('composer-input'),
};

/** Client config from the server (null: the connection's DEFAULTS). */
let clientConfig = null;
/** The logged-in session, or null. See startSession(). */
let session = null;
let flashTimer = null;

// ---- session ---------------------------------------------------------------

function roomsStorageKey(userId) {
  return `imserver.rooms.${userId}`;
}

function loadSavedRooms(userId) {
  try {
    const rooms = JSON.parse(localStorage.getItem(roomsStorageKey(userId)) ?? 'null');
    if (Array.isArray(rooms)) return rooms.filter((r) => typeof r === 'string' && ROOM_NAME.test(r));
  } catch {
    // unreadable: fall back to the default room
  }
  return [DEFAULT_ROOM];
}

function saveRooms() {
  if (!session) return;
  try {
    localStorage.setItem(roomsStorageKey(session.user.id), JSON.stringify(session.conn.rooms));
  } catch {
    // storage full or blocked: the rooms are still joined for this page
  }
}

/** Starts (or resumes, for the same user after a 4001) a chat session. */
function startSession(user, token) {
  if (session && session.user.id === user.id) {
    session.conn.token = token;
    showChat();
    if (session.conn.state === 'stopped') session.conn.connect();
    return;
  }
  if (session) endSession();

  const conn = new ChatConnection({
    ...(clientConfig ?? {}),
    token,
    storage_key: `imserver.outbox.${user.id}`,
    refreshToken: async () => {
      const current = await api.me();
      if (current && current.user && current.user.id !== user.id) return null;
      return current ? current.token : null;
    },
  });
  session = {
    user,
    conn,
    /** Display names of user ids, from the frames. */
    names: new Names(user),
    /** key -> {key, kind, name, conv, unread, members, loaded, loadingOlder} */
    conversations: new Map(),
    current: null,
    dmSynced: false,
    countdown: null,
  };

  conn.addEventListener('statechange', (e) => onStateChange(e.detail));
  conn.addEventListener('message', (e) => onFrame(e.detail));
  conn.addEventListener('ack', (e) => onAck(e.detail));
  conn.addEventListener('failed', (e) => onFailed(e.detail));
  conn.addEventListener('error', (e) => onServerError(e.detail));
  conn.addEventListener('stopped', (e) => onStopped(e.detail));

  const rooms = loadSavedRooms(user.id);
  for (const room of rooms) {
    ensureRoom(room);
    conn.join(room);
  }
  // Messages still unsent from before a reload are shown as pending.
  for (const { frame, queuedAt } of conn.pending()) {
    const entry = frame.type === 'say' ? ensureRoom(frame.room, { join: true }) : ensureDm(frame.to);
    entry.conv.addPending({ ...frame, from: user.id, name: user.name, ts: queuedAt / 1000 });
  }
  session.current = rooms.length ? roomKey(rooms[0]) : null;

  ui.whoami.textContent = user.name ?? user.id;
  ui.whoami.title = user.name && user.name !== user.id ? `user id ${user.id}` : '';
  showChat();
  renderAll();
  conn.connect();
}

function endSession() {
  if (!session) return;
  session.conn.close();
  stopCountdown();
  session = null;
  ui.roomList.replaceChildren();
  ui.dmList.replaceChildren();
  ui.memberList.replaceChildren();
  ui.messageList.replaceChildren();
  ui.title.textContent = '';
  ui.whoami.textContent = '';
}

// ---- names -----------------------------------------------------------------

/** The display name of a user id (the id itself until a frame has named it). */
function nameOf(userId) {
  return session ? session.names.of(userId) : userId;
}

// ---- conversations ---------------------------------------------------------

function ensureRoom(name, { join = false } = {}) {
  const key = roomKey(name);
  let entry = session.conversations.get(key);
  if (!entry) {
    entry = newEntry(key, 'room', name);
    entry.members = new Set();
    session.conversations.set(key, entry);
    if (join) session.conn.join(name);
  }
  return entry;
}

function ensureDm(user) {
  const key = dmKey(user);
  let entry = session.conversations.get(key);
  if (!entry) {
    entry = newEntry(key, 'dm', user);
    session.conversations.set(key, entry);
  }
  return entry;
}

function newEntry(key, kind, name) {
  return {
    key,
    kind,
    name,
    conv: new Conversation(key),
    unread: 0,
    members: null,
    /** Whether the first page of messages has been received. */
    loaded: false,
    loadingOlder: false,
  };
}

function currentEntry() {
  return session && session.current ? session.conversations.get(session.current) ?? null : null;
}

function selectConversation(key) {
  const entry = session.conversations.get(key);
  if (!entry) return;
  session.current = key;
  entry.unread = 0;
  if (entry.kind === 'dm' && !entry.loaded) requestHistory(entry, null);
  closePanels();
  renderSidebar();
  renderMembers();
  renderConversation({ toBottom: true });
  if (window.matchMedia('(min-width: 701px)').matches) ui.composerInput.focus();
}

function openDm(user) {
  if (!session || user === session.user.id) return;
  ensureDm(user);
  selectConversation(dmKey(user));
}

function joinRoom(name) {
  const entry = ensureRoom(name);
  session.conn.join(name);
  saveRooms();
  selectConversation(entry.key);
}

function leaveRoom(name) {
  const key = roomKey(name);
  session.conn.leave(name);
  session.conversations.delete(key);
  saveRooms();
  if (session.current === key) {
    const next = [...session.conversations.values()].find((e) => e.kind === 'room')
      ?? session.conversations.values().next().value;
    session.current = next ? next.key : null;
  }
  renderAll({ toBottom: true });
}

function closeDm(user) {
  const key = dmKey(user);
  const entry = session.conversations.get(key);
  if (!entry || entry.conv.pendingCount > 0) return; // keep unsent messages visible
  session.conversations.delete(key);
  if (session.current === key) {
    const next = [...session.conversations.values()].find((e) => e.kind === 'room');
    session.current = next ? next.key : null;
  }
  renderAll({ toBottom: true });
}

/** Asks for the page before `before` (null: the latest page). */
function requestHistory(entry, before) {
  const target = entry.kind === 'room' ? { room: entry.name } : { with: entry.name };
  if (session.conn.history(target, { before, limit: HISTORY_PAGE })) {
    entry.loadingOlder = before !== null;
    renderLoadOlder();
  }
}

function sendMessage(text) {
  const entry = currentEntry();
  if (!entry) return;
  let cid;
  try {
    cid = entry.kind === 'room' ? session.conn.say(entry.name, text) : session.conn.dm(entry.name, text);
  } catch (err) {
    showFlash(err.message);
    return;
  }
  const target = entry.kind === 'room' ? { room: entry.name } : { to: entry.name };
  entry.conv.addPending({
    cid, from: session.user.id, name: session.user.name, text, ts: Date.now() / 1000, ...target,
  });
  ui.composerInput.value = '';
  autosizeComposer();
  renderConversation({ toBottom: true });
}

// ---- connection events -----------------------------------------------------

/** Counts a new message as unread unless the user is looking at it. */
function noteUnread(entry, message) {
  if (message.from === session.user.id) return;
  if (entry.key === session.current && !document.hidden) return;
  entry.unread += 1;
}

function onFrame(frame) {
  session.names.learn(frame);
  switch (frame.type) {
    case 'welcome': {
      const entry = currentEntry();
      if (entry && entry.kind === 'dm' && !entry.loaded) requestHistory(entry, null);
      break;
    }
    case 'joined': {
      if (!session.conn.rooms.includes(frame.room)) break;
      const entry = ensureRoom(frame.room);
      entry.members = new Set(frame.members ?? []);
      if (frame.truncated) entry.conv.reset();
      const wasEmpty = entry.conv.size === 0;
      for (const message of frame.messages ?? []) {
        if (entry.conv.add(message) && entry.loaded) noteUnread(entry, message);
      }
      if (wasEmpty && !frame.truncated) entry.conv.more = entry.conv.size > 0;
      entry.loaded = true;
      renderSidebar();
      if (entry.key === session.current) {
        renderMembers();
        renderConversation();
      }
      break;
    }
    case 'left':
      if (session.conversations.has(roomKey(frame.room)) && !session.conn.rooms.includes(frame.room)) {
        session.conversations.delete(roomKey(frame.room));
        renderAll();
      }
      break;
    case 'presence': {
      const entry = session.conversations.get(roomKey(frame.room));
      if (!entry) break;
      for (const id of frame.joined ?? []) entry.members.add(id);
      for (const id of frame.left ?? []) entry.members.delete(id);
      if (entry.key === session.current) renderMembers();
      break;
    }
    case 'message': {
      const key = conversationKeyOf(frame, session.user.id);
      let entry = session.conversations.get(key);
      if (!entry) {
        if (frame.room !== undefined && frame.room !== null) break; // a room we left
        entry = ensureDm(key.slice('dm:'.length));
        entry.conv.more = true;
      }
      if (entry.conv.add(frame)) {
        noteUnread(entry, frame);
        renderSidebar();
        if (key === session.current) renderConversation();
      }
      break;
    }
    case 'history': {
      const key = frame.room !== undefined ? roomKey(frame.room) : dmKey(frame.with);
      const entry = session.conversations.get(key);
      if (!entry) break;
      entry.conv.addAll(frame.messages ?? []);
      entry.conv.more = Boolean(frame.more);
      entry.loaded = true;
      entry.loadingOlder = false;
      if (entry.kind === 'dm') renderSidebar(); // the partner's name may be known now
      if (key === session.current) renderConversation({ keepPosition: true });
      break;
    }
    case 'dm_sync': {
      const first = !session.dmSynced;
      session.dmSynced = true;
      if (frame.truncated) {
        for (const entry of session.conversations.values()) {
          if (entry.kind === 'dm') entry.conv.reset();
        }
      }
      for (const message of frame.messages ?? []) {
        const entry = ensureDm(conversationKeyOf(message, session.user.id).slice('dm:'.length));
        if (entry.conv.size === 0) entry.conv.more = true;
        if (entry.conv.add(message) && !first) noteUnread(entry, message);
      }
      renderSidebar();
      if (currentEntry() && currentEntry().kind === 'dm') renderConversation();
      break;
    }
    default:
      break; // ack, error, bye, unknown: handled elsewhere or not for the page
  }
}

function entryForSent(sent) {
  if (!sent) return null;
  const key = sent.type === 'say' ? roomKey(sent.room) : dmKey(sent.to);
  return session.conversations.get(key) ?? null;
}

function onAck({ ack, sent }) {
  const entry = entryForSent(sent);
  if (entry && entry.conv.confirm(ack.cid, ack) && entry.key === session.current) renderConversation();
}

function onFailed({ cid, code, message, sent }) {
  const entry = entryForSent(sent);
  if (entry && entry.conv.fail(cid, code) && entry.key === session.current) renderConversation();
  showFlash(message || `Message not sent: ${code}`);
}

function onServerError(frame) {
  if (frame.cid) return; // reported through `failed`, or retried by the connection
  if (frame.code === 'rate_limited') showFlash('You are sending too fast; slow down a little.');
  else showFlash(frame.message || frame.code || 'The server reported an error.');
}

function onStateChange(detail) {
  renderStatus();
  renderNotices(detail);
  renderLoadOlder();
}

function onStopped({ reason }) {
  if (reason === StopReason.AUTH) {
    showLogin('Your session has ended. Please log in again.');
  }
}

// ---- rendering -------------------------------------------------------------

function renderAll(options = {}) {
  renderSidebar();
  renderMembers();
  renderConversation(options);
  renderStatus();
}

function renderStatus() {
  if (!session) {
    ui.status.dataset.state = 'stopped';
    ui.statusLabel.textContent = 'Not signed in';
    return;
  }
  const state = statusOf(session.conn.state, { attempt: session.conn.attempt, online: navigator.onLine });
  ui.status.dataset.state = state;
  ui.statusLabel.textContent = STATUS_LABELS[state];
}

function renderNotices(detail) {
  const { state, reason, message } = detail;
  const waiting = state === 'waiting';
  ui.toast.hidden = !waiting;
  if (waiting) startCountdown(detail);
  else stopCountdown();

  const gaveUp = state === 'stopped' && (reason === StopReason.GAVE_UP || reason === StopReason.SERVER_CLOSED);
  ui.gaveUp.hidden = !gaveUp;
  if (gaveUp) {
    ui.gaveUpText.textContent = reason === StopReason.GAVE_UP
      ? `Could not reconnect after ${detail.attempts} attempts.`
      : 'The server closed the connection.';
  }

  const kicked = state === 'stopped' && reason === StopReason.KICKED;
  ui.kicked.hidden = !kicked;
  if (kicked) {
    ui.kickedReason.textContent = message || 'no reason given';
  }
}

function startCountdown(detail) {
  stopCountdown();
  const tick = () => {
    ui.toastText.textContent = countdownText(detail, Date.now());
  };
  tick();
  session.countdown = setInterval(tick, 250);
}

function stopCountdown() {
  if (session && session.countdown !== null) {
    clearInterval(session.countdown);
    session.countdown = null;
  }
}

/** What a conversation is called: a room's name, a direct partner's display name. */
function labelOf(entry) {
  return entry.kind === 'room' ? entry.name : nameOf(entry.name);
}

function conversationItem(entry, { onLeave, leaveLabel }) {
  const label = labelOf(entry);
  const li = document.createElement('li');
  li.className = 'conv-item';
  li.dataset.key = entry.key;
  li.dataset.testid = entry.kind === 'room' ? 'room-item' : 'dm-item';
  li.dataset.name = label;
  if (entry.kind === 'dm') li.dataset.user = entry.name;
  const open = document.createElement('button');
  open.type = 'button';
  open.className = 'conv-open';
  if (entry.key === session.current) {
    li.classList.add('active');
    open.setAttribute('aria-current', 'true');
  }
  const prefix = document.createElement('span');
  prefix.className = 'conv-prefix';
  prefix.textContent = entry.kind === 'room' ? '#' : '@';
  const name = document.createElement('span');
  name.className = 'conv-name';
  name.textContent = label;
  open.append(prefix, name);
  if (entry.unread > 0) {
    const badge = document.createElement('span');
    badge.className = 'badge';
    badge.dataset.testid = 'unread';
    badge.textContent = entry.unread > 99 ? '99+' : String(entry.unread);
    badge.setAttribute('aria-label', `${entry.unread} unread`);
    open.append(badge);
  }
  open.addEventListener('click', () => selectConversation(entry.key));
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'conv-close';
  close.dataset.testid = entry.kind === 'room' ? 'room-leave' : 'dm-close';
  close.setAttribute('aria-label', `${leaveLabel} ${label}`);
  close.title = `${leaveLabel} ${label}`;
  close.textContent = '×';
  close.addEventListener('click', onLeave);
  li.append(open, close);
  return li;
}

function renderSidebar() {
  if (!session) return;
  const rooms = [];
  const dms = [];
  for (const entry of session.conversations.values()) {
    if (entry.kind === 'room') {
      rooms.push(conversationItem(entry, { onLeave: () => leaveRoom(entry.name), leaveLabel: 'Leave' }));
    } else {
      dms.push(conversationItem(entry, { onLeave: () => closeDm(entry.name), leaveLabel: 'Close' }));
    }
  }
  ui.roomList.replaceChildren(...rooms);
  ui.dmList.replaceChildren(...dms);
  ui.dmEmpty.hidden = dms.length > 0;
  const unread = [...session.conversations.values()].reduce((n, e) => n + e.unread, 0);
  document.title = unread > 0 ? `(${unread}) imserver chat` : 'imserver chat';
}

function renderMembers() {
  if (!session) return;
  const entry = currentEntry();
  let ids = [];
  if (entry && entry.kind === 'room') ids = [...entry.members].sort((a, b) => session.names.compare(a, b));
  else if (entry) ids = [session.user.id, entry.name];
  const items = ids.map((id) => {
    const name = nameOf(id);
    const li = document.createElement('li');
    li.dataset.testid = 'member';
    li.dataset.name = name;
    li.dataset.user = id;
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'member';
    const avatar = document.createElement('span');
    avatar.className = 'avatar';
    avatar.textContent = name.slice(0, 1).toUpperCase();
    avatar.style.setProperty('--hue', String(hueOf(name)));
    const label = document.createElement('span');
    label.className = 'member-name';
    label.textContent = name;
    button.append(avatar, label);
    if (id === session.user.id) {
      const you = document.createElement('span');
      you.className = 'muted small';
      you.textContent = '(you)';
      button.append(you);
      button.disabled = true;
    } else {
      button.title = `Message ${name}`;
      button.addEventListener('click', () => openDm(id));
    }
    li.append(button);
    return li;
  });
  ui.memberList.replaceChildren(...items);
}

/** A stable colour per name, for avatars. */
function hueOf(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function renderConversation({ toBottom = false, keepPosition = false } = {}) {
  if (!session) return;
  const entry = currentEntry();
  const scroller = ui.scroller;
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;

  if (!entry) {
    ui.title.textContent = 'No conversation';
    renderMessages(ui.messageList, [], { me: session.user.id, nameOf });
    ui.empty.hidden = false;
    ui.empty.textContent = 'Join a room to start chatting.';
    ui.composer.hidden = true;
    renderLoadOlder();
    return;
  }
  ui.composer.hidden = false;
  const label = labelOf(entry);
  ui.title.textContent = entry.kind === 'room' ? `#${label}` : `@${label}`;
  ui.title.title = entry.kind === 'dm' && label !== entry.name ? `user id ${entry.name}` : '';
  ui.composerInput.placeholder = entry.kind === 'room' ? `Message #${label}` : `Message @${label}`;
  const messages = entry.conv.messages();
  renderMessages(ui.messageList, messages, { me: session.user.id, nameOf });
  ui.empty.hidden = messages.length > 0;
  ui.empty.textContent = entry.loaded ? 'No messages yet. Say hi!' : 'Loading…';
  renderLoadOlder();

  if (keepPosition && !atBottom) {
    scroller.scrollTop = scroller.scrollHeight - fromBottom;
  } else if (toBottom || atBottom) {
    scroller.scrollTop = scroller.scrollHeight;
  }
}

function renderLoadOlder() {
  const entry = currentEntry();
  const show = Boolean(session && entry && entry.conv.more && entry.conv.size > 0);
  ui.loadOlder.hidden = !show;
  if (!show) return;
  const open = session.conn.state === 'open';
  ui.loadOlder.disabled = !open || entry.loadingOlder;
  ui.loadOlder.textContent = entry.loadingOlder ? 'Loading…' : 'Load older messages';
}

function showFlash(text) {
  ui.flash.textContent = text;
  ui.flash.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => {
    ui.flash.hidden = true;
  }, FLASH_MS);
}

// ---- views -----------------------------------------------------------------

function showLogin(info = '') {
  ui.app.dataset.view = 'login';
  ui.loginView.hidden = false;
  ui.chatView.hidden = true;
  ui.logout.hidden = true;
  ui.whoami.hidden = true;
  ui.loginInfo.textContent = info;
  ui.loginInfo.hidden = !info;
  ui.loginError.hidden = true;
  ui.loginSubmit.disabled = false;
  if (session) ui.loginName.value = session.user.name ?? '';
  renderStatus();
  ui.loginName.focus();
}

function showChat() {
  ui.app.dataset.view = 'chat';
  ui.loginView.hidden = true;
  ui.chatView.hidden = false;
  ui.logout.hidden = false;
  ui.whoami.hidden = false;
  renderStatus();
}

function closePanels() {
  ui.app.dataset.panel = 'none';
}

function togglePanel(name) {
  ui.app.dataset.panel = ui.app.dataset.panel === name ? 'none' : name;
}

function autosizeComposer() {
  const input = ui.composerInput;
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
}

// ---- user actions ----------------------------------------------------------

function bindUi() {
  ui.loginForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = ui.loginName.value.trim();
    ui.loginError.hidden = true;
    ui.loginSubmit.disabled = true;
    try {
      const { token, user } = await api.login(name);
      startSession(user, token);
    } catch (err) {
      ui.loginError.textContent = err instanceof api.ApiError
        ? (err.message || 'That name cannot be used.')
        : 'Cannot reach the server. Please try again.';
      ui.loginError.hidden = false;
      ui.loginName.focus();
    } finally {
      ui.loginSubmit.disabled = false;
    }
  });

  ui.logout.addEventListener('click', async () => {
    ui.logout.disabled = true;
    endSession();
    try {
      await api.logout();
    } catch {
      // the cookie may outlive us; the server refuses it once it expires
    }
    ui.logout.disabled = false;
    ui.loginName.value = '';
    showLogin();
  });

  ui.roomForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const name = ui.roomInput.value.trim().replace(/^#/, '');
    if (!ROOM_NAME.test(name)) {
      showFlash('Room names are 1–64 letters, digits, -, _ or .');
      return;
    }
    ui.roomInput.value = '';
    joinRoom(name);
  });

  ui.composer.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = ui.composerInput.value;
    if (text.trim() === '') return;
    sendMessage(text);
  });
  ui.composerInput.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.composer.requestSubmit();
    }
  });
  ui.composerInput.addEventListener('input', autosizeComposer);

  ui.messageList.addEventListener('click', (event) => {
    const button = event.target.closest('[data-action="dismiss"]');
    const entry = currentEntry();
    if (!button || !entry) return;
    const cid = button.closest('[data-testid="message"]').dataset.cid;
    if (entry.conv.discard(cid)) renderConversation();
  });

  ui.loadOlder.addEventListener('click', () => {
    const entry = currentEntry();
    if (entry && !entry.loadingOlder) requestHistory(entry, entry.conv.oldestId);
  });

  ui.toastRetry.addEventListener('click', () => session && session.conn.retryNow());
  ui.retry.addEventListener('click', () => session && session.conn.retryNow());
  ui.reconnect.addEventListener('click', () => session && session.conn.connect());

  for (const button of document.querySelectorAll('[data-panel-toggle]')) {
    button.addEventListener('click', () => togglePanel(button.dataset.panelToggle));
  }
  byTestId('scrim').addEventListener('click', closePanels);
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') closePanels();
  });

  window.addEventListener('online', renderStatus);
  window.addEventListener('offline', renderStatus);
  document.addEventListener('visibilitychange', () => {
    const entry = currentEntry();
    if (!document.hidden && entry && entry.unread > 0) {
      entry.unread = 0;
      renderSidebar();
    }
  });
}

async function boot() {
  bindUi();
  const [config, current] = await Promise.all([
    api.clientConfig(),
    api.me().catch(() => null),
  ]);
  clientConfig = config;
  if (current && current.user) startSession(current.user, current.token);
  else showLogin();
}

boot();

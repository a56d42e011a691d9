/**
 * The chat page: wires the DOM, the connection and the state together.
 *
 * - The state and every change to it are in model.js (`reduce`, tested
 *   without a DOM); the views that draw it are in chat-view.js,
 *   message-view.js and directory-view.js.
 * - The network is ChatConnection's (connection.js); its reconnect settings
 *   and the text limit are the server's, from GET /api/client-config.
 * - This module turns the connection's events and the user's actions into
 *   actions for `reduce`, draws what changed, and does what the state asks
 *   of the network (join and leave rooms, ask for history, send read
 *   marks); typing signals are TypingSignal's (typing.js).
 *
 * Users are keyed by their id (opaque for guests) and shown by display name.
 */
import * as api from './api.js';
import {
  clearSession, findElements, isAtBottom, renderComposer, renderConversation, renderLoadOlder, renderMembers,
  renderNotices, renderPanels, renderSidebar, renderStatus, renderTyping,
} from './chat-view.js';
import { ChatConnection, StopReason } from './connection.js';
import { renderDirectory } from './directory-view.js';
import {
  ACTIONS, currentEntry, initialState, nextTypingExpiry, readsToSend, reduce, roomsOf,
} from './model.js';
import { countdownText } from './status.js';
import { TypingSignal } from './typing.js';

const ROOM_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const ROOM_NAME_HINT = 'Room names are 1–64 letters, digits, -, _ or .';
const DEFAULT_ROOM = 'general';
const HISTORY_PAGE = 50;
const FLASH_MS = 5000;
/** While /api/client-config cannot be had, it is asked again this often (ms). */
const CONFIG_RETRY_MS = 2000;
const FOCUSABLE = 'button:not([disabled]), input:not([disabled]), textarea:not([disabled])';

class ChatPage {
  constructor(ui) {
    this.ui = ui;
    this.state = initialState();
    /** The connection of the session, or null. */
    this.conn = null;
    /** The server's client settings (GET /api/client-config). */
    this.clientConfig = null;
    this.countdown = null;
    this.flashTimer = null;
    this.typing = new TypingSignal();
    /** The typing indicators' next expiry: its timer and time (ms). */
    this.tickTimer = null;
    this.tickAt = null;
    /** What was last written to localStorage for the session's rooms. */
    this.savedRooms = '';
  }

  get maxChars() {
    return this.clientConfig?.limits?.max_text_chars ?? null;
  }

  // ---- state -----------------------------------------------------------------

  /** Reduces `action` into the state, draws what changed, and does what the new state asks. */
  dispatch(action, hints = {}) {
    const previous = this.state;
    this.state = reduce(previous, action, Date.now());
    this.render(previous, this.state, hints);
    this.effects(previous);
  }

  render(prev, next, { toBottom = false, keepPosition = false, all = false } = {}) {
    const ui = this.ui;
    if (all || prev.connection !== next.connection || prev.online !== next.online || prev.me !== next.me) {
      renderStatus(ui, next);
    }
    if (next.flash !== prev.flash && next.flash) this.showFlash(next.flash.text);
    if (!next.me) return;
    const names = all || prev.names !== next.names;
    const switched = prev.current !== next.current;
    const connection = all || prev.connection !== next.connection;
    const before = currentEntry(prev);
    const entry = currentEntry(next);
    if (names || switched || prev.conversations !== next.conversations) renderSidebar(ui, next);
    if (names || switched || connection || before?.members !== entry?.members || before?.owned !== entry?.owned
        || before?.private !== entry?.private) {
      renderMembers(ui, next);
    }
    if (names || switched || toBottom || keepPosition || connection || before?.conv !== entry?.conv
        || before?.loaded !== entry?.loaded || before?.topic !== entry?.topic || before?.private !== entry?.private
        || prev.editing !== next.editing || prev.changes !== next.changes) {
      renderConversation(ui, next, { toBottom, keepPosition });
    } else {
      renderLoadOlder(ui, next);
    }
    if (names || switched || before?.typists !== entry?.typists) renderTyping(ui, next);
    if (all || switched || connection || names) renderComposer(ui, next, this.maxChars);
    if (all || prev.panel !== next.panel) renderPanels(ui, next);
    if (all || prev.directory !== next.directory || (next.directory.open && prev.conversations !== next.conversations)) {
      renderDirectory(ui, next);
    }
    if (connection) this.renderNotices();
    if (prev.editing !== next.editing && next.editing) this.focusEditor(next.editing);
  }

  /** What the state asks of the network and the clock, after each change. */
  effects(prev) {
    const next = this.state;
    if (!this.conn || !next.me) return;
    if (prev.conversations !== next.conversations) this.syncRooms();
    if (prev.connection !== next.connection && next.connection.state !== 'open') this.typing.reset();
    const sent = readsToSend(next).filter(({ target, id }) => this.conn.read(target, id));
    if (sent.length) this.dispatch({ type: ACTIONS.READ_SENT, reads: sent });
    this.scheduleTick();
  }

  /** The connection joins the rooms the state keeps and leaves the others; they are saved. */
  syncRooms() {
    const wanted = roomsOf(this.state);
    const joined = this.conn.rooms;
    for (const room of wanted) if (!joined.includes(room)) this.conn.join(room);
    for (const room of joined) if (!wanted.includes(room)) this.conn.leave(room);
    this.saveRooms(wanted);
  }

  /** Wakes when the next typing indicator expires, so that it is taken away. */
  scheduleTick() {
    const at = nextTypingExpiry(this.state);
    if (at === this.tickAt) return;
    clearTimeout(this.tickTimer);
    this.tickAt = at;
    if (at !== null) {
      this.tickTimer = setTimeout(() => {
        this.tickAt = null;
        this.dispatch({ type: ACTIONS.TICK });
      }, Math.max(0, at - Date.now()));
    }
  }

  /** The message list was scrolled (or resized): whether its newest message is in view. */
  noteScroll() {
    const atBottom = isAtBottom(this.ui.scroller);
    if (atBottom !== this.state.atBottom) this.dispatch({ type: ACTIONS.SCROLLED, atBottom });
  }

  renderNotices() {
    renderNotices(this.ui, this.state);
    this.stopCountdown();
    const c = this.state.connection;
    if (c.state === 'waiting') {
      const tick = () => {
        this.ui.toastText.textContent = countdownText(c, Date.now());
      };
      tick();
      this.countdown = setInterval(tick, 250);
    }
  }

  stopCountdown() {
    if (this.countdown !== null) {
      clearInterval(this.countdown);
      this.countdown = null;
    }
  }

  showFlash(text) {
    const flash = this.ui.flash;
    flash.textContent = text;
    flash.hidden = false;
    clearTimeout(this.flashTimer);
    this.flashTimer = setTimeout(() => {
      flash.hidden = true;
    }, FLASH_MS);
  }

  // ---- session ---------------------------------------------------------------

  /** Starts (or resumes, for the same user after a 4001) a chat session. */
  startSession(user, token) {
    if (this.conn && this.state.me && this.state.me.id === user.id) {
      this.conn.token = token;
      this.showChat();
      if (this.conn.state === 'stopped') this.conn.connect();
      return;
    }
    if (this.conn) this.endSession();

    const conn = new ChatConnection({
      ...this.clientConfig,
      token,
      storage_key: `imserver.outbox.${user.id}`,
      refreshToken: async () => {
        const current = await api.me();
        if (current && current.user && current.user.id !== user.id) return null;
        return current ? current.token : null;
      },
    });
    this.conn = conn;
    conn.addEventListener('statechange', (e) => {
      if (conn === this.conn) this.dispatch({ ...e.detail, type: ACTIONS.CONNECTION });
    });
    conn.addEventListener('message', (e) => {
      if (conn === this.conn) this.onFrame(e.detail);
    });
    conn.addEventListener('failed', (e) => {
      if (conn === this.conn) this.dispatch({ type: ACTIONS.FAILED, ...e.detail });
    });
    conn.addEventListener('refused', (e) => {
      if (conn === this.conn) this.dispatch({ type: ACTIONS.JOIN_REFUSED, ...e.detail });
    });
    conn.addEventListener('stopped', (e) => {
      if (conn === this.conn && e.detail.reason === StopReason.AUTH) {
        this.showLogin('Your session has ended. Please log in again.');
      }
    });

    this.savedRooms = '';
    this.state = reduce(this.state, {
      type: ACTIONS.SESSION,
      user,
      rooms: loadSavedRooms(user.id),
      pending: conn.pending(), // messages unsent before a reload, shown as pending
      online: navigator.onLine,
      hidden: document.hidden,
    });
    this.syncRooms();

    this.ui.whoami.textContent = user.name ?? user.id;
    this.ui.whoami.title = user.name && user.name !== user.id ? `user id ${user.id}` : '';
    this.showChat();
    this.render(initialState(), this.state, { all: true });
    // A keyboard user starts where the chat is: in the composer.
    (this.ui.composer.hidden ? this.ui.roomInput : this.ui.composerInput).focus();
    conn.connect();
  }

  endSession() {
    if (!this.conn) return;
    const conn = this.conn;
    this.conn = null;
    conn.close();
    this.stopCountdown();
    clearTimeout(this.tickTimer);
    this.tickAt = null;
    this.typing.reset();
    this.state = reduce(this.state, { type: ACTIONS.END });
    clearSession(this.ui);
    renderDirectory(this.ui, this.state);
  }

  saveRooms(rooms) {
    const me = this.state.me;
    const value = JSON.stringify(rooms);
    if (!me || value === this.savedRooms) return;
    this.savedRooms = value;
    try {
      localStorage.setItem(roomsStorageKey(me.id), value);
    } catch {
      // storage full or blocked: the rooms are still joined for this page
    }
  }

  // ---- frames ----------------------------------------------------------------

  onFrame(frame) {
    const hints = frame.type === 'history' ? { keepPosition: true } : {};
    this.dispatch(frame, hints);
    if (frame.type === 'welcome') this.loadFirstPage();
  }

  /** A direct conversation shown before its first page came: ask for it. */
  loadFirstPage() {
    const entry = currentEntry(this.state);
    if (entry && entry.kind === 'dm' && !entry.loaded) this.requestHistory(entry, null);
  }

  /** Asks for the page before `before` (null: the latest page). */
  requestHistory(entry, before) {
    const target = entry.kind === 'room' ? { room: entry.name } : { with: entry.name };
    if (this.conn.history(target, { before, limit: HISTORY_PAGE })) {
      this.dispatch({ type: ACTIONS.HISTORY_REQUESTED, key: entry.key, before });
    }
  }

  // ---- user actions ----------------------------------------------------------

  select(key) {
    if (!this.state.conversations.has(key)) return;
    this.sendTyping(this.typing.stop());
    this.dispatch({ type: ACTIONS.SELECT, key }, { toBottom: true });
    this.afterSelect();
  }

  afterSelect() {
    this.loadFirstPage();
    if (window.matchMedia('(min-width: 701px)').matches) this.ui.composerInput.focus();
  }

  openDm(user) {
    if (!this.state.me || user === this.state.me.id) return;
    this.sendTyping(this.typing.stop());
    this.dispatch({ type: ACTIONS.OPEN_DM, user }, { toBottom: true });
    this.afterSelect();
  }

  joinRoom(room) {
    this.sendTyping(this.typing.stop());
    this.dispatch({ type: ACTIONS.JOIN_ROOM, room }, { toBottom: true });
    this.afterSelect();
  }

  send(text) {
    const entry = currentEntry(this.state);
    if (!entry) return;
    const counter = renderComposer(this.ui, this.state, this.maxChars);
    if (counter.over) { // the server would refuse it: keep the text to shorten
      this.dispatch({ type: ACTIONS.FLASH, text: `Too long to send: ${counter.label}.` });
      this.ui.composerInput.focus();
      return;
    }
    let cid;
    try {
      cid = entry.kind === 'room' ? this.conn.say(entry.name, text) : this.conn.dm(entry.name, text);
    } catch (err) {
      this.dispatch({ type: ACTIONS.FLASH, text: err.message });
      return;
    }
    this.sendTyping(this.typing.stop());
    this.dispatch({ type: ACTIONS.SEND, key: entry.key, cid, text, ts: Date.now() / 1000 }, { toBottom: true });
    this.ui.composerInput.value = '';
    this.composerChanged();
  }

  /** The composer's text changed (typed, sent, cleared): its size, counter and typing signal. */
  composerChanged() {
    const input = this.ui.composerInput;
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
    renderComposer(this.ui, this.state, this.maxChars);
    if (this.state.current) this.sendTyping(this.typing.input(this.state.current, input.value));
  }

  /** Sends typing signals [{key, typing}] to the conversations that are joined. */
  sendTyping(signals) {
    if (!this.conn || !this.state.speaks) return;
    for (const { key, typing } of signals) {
      const entry = this.state.conversations.get(key);
      if (entry && entry.loaded) {
        this.conn.typing(entry.kind === 'room' ? { room: entry.name } : { to: entry.name }, typing);
      }
    }
  }

  /** Sends an edit (with `text`) or a deletion of my message `id` in the conversation shown. */
  changeMessage(change, id, text = '') {
    const entry = currentEntry(this.state);
    const message = entry && entry.conv.get(id);
    if (!message) return;
    if (change === 'edit') {
      if (text === message.text) {
        this.closeEditor();
        return;
      }
      if (text.trim() === '') {
        this.dispatch({ type: ACTIONS.FLASH, text: 'A message cannot be empty: delete it instead.' });
        return;
      }
    }
    const room = entry.kind === 'room' ? entry.name : null;
    let cid;
    try {
      cid = change === 'edit' ? this.conn.edit(room, id, text) : this.conn.deleteMessage(room, id);
    } catch (err) {
      this.dispatch({ type: ACTIONS.FLASH, text: err.message });
      return;
    }
    this.dispatch({ type: ACTIONS.CHANGE_SENT, cid, target: id, change, text });
    this.ui.composerInput.focus();
  }

  closeEditor() {
    this.dispatch({ type: ACTIONS.EDIT, id: null });
    this.ui.composerInput.focus();
  }

  focusEditor({ id, mode }) {
    const row = this.ui.messageList.querySelector(`[data-testid="message"][data-id="${id}"]`);
    const target = row && row.querySelector(mode === 'edit' ? '.message-editor-input' : '[data-action="confirm-delete"]');
    if (!target) return;
    target.focus();
    if (mode === 'edit') target.setSelectionRange(target.value.length, target.value.length);
  }

  openDirectory() {
    if (!this.conn) return;
    this.ui.createForm.reset(); // a new room starts from an empty form
    this.dispatch({ type: ACTIONS.DIRECTORY, open: true });
    if (!this.conn.listRooms()) this.dispatch({ type: ACTIONS.FLASH, text: 'Not connected: the rooms cannot be listed now.' });
  }

  createRoom() {
    const ui = this.ui;
    const room = ui.createName.value.trim().replace(/^#/, '');
    if (!ROOM_NAME.test(room)) {
      ui.createError.textContent = ROOM_NAME_HINT;
      ui.createError.hidden = false;
      ui.createName.focus();
      return;
    }
    if (!this.conn.createRoom(room, { topic: ui.createTopic.value.trim(), isPrivate: ui.createPrivate.checked })) {
      ui.createError.textContent = 'Not connected: try again once the connection is back.';
      ui.createError.hidden = false;
      return;
    }
    this.dispatch({ type: ACTIONS.CREATE, room });
  }

  // ---- views -----------------------------------------------------------------

  showLogin(info = '') {
    const ui = this.ui;
    ui.app.dataset.view = 'login';
    ui.loginView.hidden = false;
    ui.chatView.hidden = true;
    ui.logout.hidden = true;
    ui.whoami.hidden = true;
    ui.loginInfo.textContent = info;
    ui.loginInfo.hidden = !info;
    ui.loginError.hidden = true;
    ui.loginSubmit.disabled = false;
    if (this.state.me) ui.loginName.value = this.state.me.name ?? '';
    renderStatus(ui, this.state);
    ui.loginName.focus();
  }

  showChat() {
    const ui = this.ui;
    ui.app.dataset.view = 'chat';
    ui.loginView.hidden = true;
    ui.chatView.hidden = false;
    ui.logout.hidden = false;
    ui.whoami.hidden = false;
    renderStatus(ui, this.state);
  }

  /**
   * Opens drawer `name` (none: closes) on a narrow screen. Focus goes into an
   * opened drawer, and back to its toggle when it closes.
   */
  setPanel(name) {
    const before = this.state.panel;
    if (before === name) return;
    this.dispatch({ type: ACTIONS.PANEL, panel: name });
    if (name !== 'none') {
      const drawer = this.ui.drawers[name];
      const shown = [...drawer.querySelectorAll(FOCUSABLE)].filter((el) => el.getClientRects().length > 0);
      (drawer.querySelector('[aria-current="true"]') ?? shown[0] ?? drawer).focus();
    } else if (before !== 'none') {
      const toggle = this.ui.toggles.find((t) => t.dataset.panelToggle === before);
      if (toggle && toggle.offsetParent !== null) toggle.focus();
    }
  }

  // ---- wiring ----------------------------------------------------------------

  bind() {
    const ui = this.ui;
    ui.loginForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      const name = ui.loginName.value.trim();
      ui.loginError.hidden = true;
      ui.loginSubmit.disabled = true;
      try {
        const { token, user } = await api.login(name);
        this.startSession(user, token);
      } catch (err) {
        ui.loginError.textContent = api.loginErrorText(err);
        ui.loginError.hidden = false;
        ui.loginName.focus();
      } finally {
        ui.loginSubmit.disabled = false;
      }
    });

    ui.logout.addEventListener('click', async () => {
      ui.logout.disabled = true;
      this.endSession();
      try {
        await api.logout();
      } catch {
        // the cookie may outlive us; the server refuses it once it expires
      }
      ui.logout.disabled = false;
      ui.loginName.value = '';
      this.showLogin();
    });

    ui.roomForm.addEventListener('submit', (event) => {
      event.preventDefault();
      const name = ui.roomInput.value.trim().replace(/^#/, '');
      if (!ROOM_NAME.test(name)) {
        this.dispatch({ type: ACTIONS.FLASH, text: ROOM_NAME_HINT });
        return;
      }
      ui.roomInput.value = '';
      this.joinRoom(name);
    });

    // The conversation lists: open one, or leave a room / close a direct conversation.
    const onListClick = (event) => {
      const item = event.target.closest('.conv-item');
      if (!item || !this.conn) return;
      const entry = this.state.conversations.get(item.dataset.key);
      if (!entry) return;
      if (event.target.closest('.conv-close')) {
        const action = entry.kind === 'room'
          ? { type: ACTIONS.LEAVE_ROOM, room: entry.name }
          : { type: ACTIONS.CLOSE_DM, user: entry.name };
        this.dispatch(action, { toBottom: true });
      } else if (event.target.closest('.conv-open')) {
        this.select(entry.key);
      }
    };
    ui.roomList.addEventListener('click', onListClick);
    ui.dmList.addEventListener('click', onListClick);

    ui.memberList.addEventListener('click', (event) => {
      const item = event.target.closest('[data-testid="member"]');
      if (!item || !this.conn) return;
      const entry = currentEntry(this.state);
      if (event.target.closest('.member-remove') && entry) {
        this.conn.removeMember(entry.name, item.dataset.user);
        return;
      }
      const button = event.target.closest('button.member');
      if (button && !button.disabled) this.openDm(item.dataset.user);
    });
    ui.inviteForm.addEventListener('submit', (event) => {
      event.preventDefault();
      const entry = currentEntry(this.state);
      const user = ui.inviteInput.value.trim();
      if (!entry || !user || !this.conn) return;
      if (this.conn.invite(entry.name, user)) ui.inviteInput.value = '';
      else this.dispatch({ type: ACTIONS.FLASH, text: 'Not connected: try again once the connection is back.' });
    });

    ui.composer.addEventListener('submit', (event) => {
      event.preventDefault();
      const text = ui.composerInput.value;
      if (text.trim() === '' || !this.conn) return;
      this.send(text);
    });
    ui.composerInput.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        ui.composer.requestSubmit();
      }
    });
    ui.composerInput.addEventListener('input', () => this.composerChanged());

    this.bindMessages();
    this.bindDirectory();

    ui.loadOlder.addEventListener('click', () => {
      const entry = currentEntry(this.state);
      if (entry && !entry.loadingOlder) this.requestHistory(entry, entry.conv.oldestId);
    });

    ui.toastRetry.addEventListener('click', () => this.conn && this.conn.retryNow());
    ui.retry.addEventListener('click', () => this.conn && this.conn.retryNow());
    ui.reconnect.addEventListener('click', () => this.conn && this.conn.connect());

    for (const toggle of ui.toggles) {
      toggle.addEventListener('click', () => {
        const name = toggle.dataset.panelToggle;
        this.setPanel(this.state.panel === name ? 'none' : name);
      });
    }
    ui.scrim.addEventListener('click', () => this.setPanel('none'));
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && !ui.directory.open) this.setPanel('none');
    });

    // The newest messages stay in view when the list's box shrinks (a notice,
    // a taller composer) or its contents grow, unless the user scrolled away.
    ui.scroller.addEventListener('scroll', () => this.noteScroll(), { passive: true });
    new ResizeObserver(() => {
      if (this.state.atBottom) ui.scroller.scrollTop = ui.scroller.scrollHeight;
    }).observe(ui.scroller);

    const online = () => this.dispatch({ type: ACTIONS.ONLINE, online: navigator.onLine });
    window.addEventListener('online', online);
    window.addEventListener('offline', online);
    document.addEventListener('visibilitychange', () => {
      this.dispatch({ type: ACTIONS.VISIBILITY, hidden: document.hidden });
    });
  }

  /** The message list: Dismiss a failed message; Edit, Delete, and their editor and question. */
  bindMessages() {
    const ui = this.ui;
    const idOf = (target) => Number(target.closest('[data-testid="message"]').dataset.id);
    ui.messageList.addEventListener('click', (event) => {
      const button = event.target.closest('[data-action]');
      if (!button || !currentEntry(this.state)) return;
      const row = button.closest('[data-testid="message"]');
      switch (button.dataset.action) {
        case 'dismiss':
          this.dispatch({ type: ACTIONS.DISCARD, cid: row.dataset.cid });
          break;
        case 'edit':
        case 'delete':
          this.dispatch({ type: ACTIONS.EDIT, id: idOf(row), mode: button.dataset.action });
          break;
        case 'confirm-delete':
          this.changeMessage('delete', idOf(row));
          break;
        case 'cancel':
          this.closeEditor();
          break;
        default:
          break; // save: the editor's submit
      }
    });
    ui.messageList.addEventListener('submit', (event) => {
      const form = event.target.closest('.message-editor');
      if (!form) return;
      event.preventDefault();
      this.changeMessage('edit', idOf(form), form.querySelector('textarea').value);
    });
    ui.messageList.addEventListener('keydown', (event) => {
      const editor = event.target.closest('.message-editor, .message-confirm');
      if (!editor) return;
      if (event.key === 'Escape') {
        event.stopPropagation();
        this.closeEditor();
      } else if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.target.tagName === 'TEXTAREA') {
        event.preventDefault();
        editor.requestSubmit();
      }
    });
  }

  /** The room directory dialog and its create form. */
  bindDirectory() {
    const ui = this.ui;
    ui.browse.addEventListener('click', () => this.openDirectory());
    ui.directoryClose.addEventListener('click', () => this.dispatch({ type: ACTIONS.DIRECTORY, open: false }));
    // Escape closes the dialog by itself: the state follows.
    ui.directory.addEventListener('close', () => {
      if (this.state.directory.open) this.dispatch({ type: ACTIONS.DIRECTORY, open: false });
    });
    ui.directoryList.addEventListener('click', (event) => {
      const button = event.target.closest('[data-testid="directory-join"]');
      if (!button) return;
      const { room } = button.closest('[data-testid="directory-room"]').dataset;
      this.dispatch({ type: ACTIONS.DIRECTORY, open: false });
      if (this.state.conversations.has(`room:${room}`)) this.select(`room:${room}`);
      else this.joinRoom(room);
    });
    ui.createForm.addEventListener('submit', (event) => {
      event.preventDefault();
      this.createRoom();
    });
  }

  async boot() {
    this.bind();
    const [config, current] = await Promise.all([
      fetchClientConfig(),
      api.me().catch(() => null),
    ]);
    this.clientConfig = config;
    if (current && current.user) this.startSession(current.user, current.token);
    else this.showLogin();
  }
}

// ---- helpers -------------------------------------------------------------------

function roomsStorageKey(userId) {
  return `imserver.rooms.${userId}`;
}

/** The rooms saved for the user (the default room if none). */
function loadSavedRooms(userId) {
  try {
    // Who owns a room is the server's word now (`joined`): the page's old list of its own is dropped.
    localStorage.removeItem(`imserver.owned.${userId}`);
    const value = JSON.parse(localStorage.getItem(roomsStorageKey(userId)) ?? 'null');
    if (Array.isArray(value)) return value.filter((r) => typeof r === 'string' && ROOM_NAME.test(r));
  } catch {
    // unreadable or blocked: as if missing
  }
  return [DEFAULT_ROOM];
}

/** The server's client settings; asked again until the server answers. */
async function fetchClientConfig() {
  for (;;) {
    const config = await api.clientConfig();
    if (config) return config;
    await new Promise((resolve) => {
      setTimeout(resolve, CONFIG_RETRY_MS);
    });
  }
}

new ChatPage(findElements()).boot();

/**
 * The chat page: wires the DOM, the connection and the state together.
 *
 * - The state and every change to it are in model.js (`reduce`, tested
 *   without a DOM); the views that draw it are in chat-view.js.
 * - The network is ChatConnection's (connection.js); its reconnect settings
 *   are the server's, from GET /api/client-config.
 * - This module turns the connection's events and the user's actions into
 *   actions for `reduce`, draws what changed, and does what the state asks
 *   of the network (join and leave rooms, ask for history).
 *
 * Users are keyed by their id (opaque for guests) and shown by display name.
 */
import * as api from './api.js';
import {
  clearSession, findElements, renderConversation, renderLoadOlder, renderMembers, renderNotices,
  renderSidebar, renderStatus,
} from './chat-view.js';
import { ChatConnection, StopReason } from './connection.js';
import { ACTIONS, currentEntry, initialState, reduce, roomsOf } from './model.js';
import { countdownText } from './status.js';

const ROOM_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const DEFAULT_ROOM = 'general';
const HISTORY_PAGE = 50;
const FLASH_MS = 5000;
/** While /api/client-config cannot be had, it is asked again this often (ms). */
const CONFIG_RETRY_MS = 2000;

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
  }

  // ---- state -----------------------------------------------------------------

  /** Reduces `action` into the state and draws what changed. */
  dispatch(action, hints = {}) {
    const previous = this.state;
    this.state = reduce(previous, action);
    this.render(previous, this.state, hints);
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
    const before = currentEntry(prev);
    const entry = currentEntry(next);
    if (names || switched || prev.conversations !== next.conversations) renderSidebar(ui, next);
    if (names || switched || before?.members !== entry?.members) renderMembers(ui, next);
    if (names || switched || toBottom || keepPosition || before?.conv !== entry?.conv
        || before?.loaded !== entry?.loaded) {
      renderConversation(ui, next, { toBottom, keepPosition });
    } else {
      renderLoadOlder(ui, next);
    }
    if (all || prev.connection !== next.connection) this.renderNotices();
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
    conn.addEventListener('stopped', (e) => {
      if (conn === this.conn && e.detail.reason === StopReason.AUTH) {
        this.showLogin('Your session has ended. Please log in again.');
      }
    });

    this.state = reduce(this.state, {
      type: ACTIONS.SESSION,
      user,
      rooms: loadSavedRooms(user.id),
      pending: conn.pending(), // messages unsent before a reload, shown as pending
      online: navigator.onLine,
      hidden: document.hidden,
    });
    for (const room of roomsOf(this.state)) conn.join(room);

    this.ui.whoami.textContent = user.name ?? user.id;
    this.ui.whoami.title = user.name && user.name !== user.id ? `user id ${user.id}` : '';
    this.showChat();
    this.render(initialState(), this.state, { all: true });
    conn.connect();
  }

  endSession() {
    if (!this.conn) return;
    const conn = this.conn;
    this.conn = null;
    conn.close();
    this.stopCountdown();
    this.state = reduce(this.state, { type: ACTIONS.END });
    clearSession(this.ui);
  }

  saveRooms() {
    if (!this.conn || !this.state.me) return;
    try {
      localStorage.setItem(roomsStorageKey(this.state.me.id), JSON.stringify(this.conn.rooms));
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
    this.dispatch({ type: ACTIONS.SELECT, key }, { toBottom: true });
    this.afterSelect();
  }

  afterSelect() {
    this.loadFirstPage();
    this.closePanels();
    if (window.matchMedia('(min-width: 701px)').matches) this.ui.composerInput.focus();
  }

  openDm(user) {
    if (!this.state.me || user === this.state.me.id) return;
    this.dispatch({ type: ACTIONS.OPEN_DM, user }, { toBottom: true });
    this.afterSelect();
  }

  joinRoom(room) {
    this.dispatch({ type: ACTIONS.JOIN_ROOM, room }, { toBottom: true });
    this.conn.join(room);
    this.saveRooms();
    this.afterSelect();
  }

  leaveRoom(room) {
    this.conn.leave(room);
    this.dispatch({ type: ACTIONS.LEAVE_ROOM, room }, { toBottom: true });
    this.saveRooms();
  }

  closeDm(user) {
    this.dispatch({ type: ACTIONS.CLOSE_DM, user }, { toBottom: true });
  }

  send(text) {
    const entry = currentEntry(this.state);
    if (!entry) return;
    let cid;
    try {
      cid = entry.kind === 'room' ? this.conn.say(entry.name, text) : this.conn.dm(entry.name, text);
    } catch (err) {
      this.dispatch({ type: ACTIONS.FLASH, text: err.message });
      return;
    }
    this.dispatch({ type: ACTIONS.SEND, key: entry.key, cid, text, ts: Date.now() / 1000 }, { toBottom: true });
    this.ui.composerInput.value = '';
    this.autosizeComposer();
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

  closePanels() {
    this.ui.app.dataset.panel = 'none';
  }

  togglePanel(name) {
    this.ui.app.dataset.panel = this.ui.app.dataset.panel === name ? 'none' : name;
  }

  autosizeComposer() {
    const input = this.ui.composerInput;
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
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
        this.dispatch({ type: ACTIONS.FLASH, text: 'Room names are 1–64 letters, digits, -, _ or .' });
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
        if (entry.kind === 'room') this.leaveRoom(entry.name);
        else this.closeDm(entry.name);
      } else if (event.target.closest('.conv-open')) {
        this.select(entry.key);
      }
    };
    ui.roomList.addEventListener('click', onListClick);
    ui.dmList.addEventListener('click', onListClick);

    ui.memberList.addEventListener('click', (event) => {
      const button = event.target.closest('button.member');
      if (!button || button.disabled || !this.conn) return;
      this.openDm(button.closest('[data-testid="member"]').dataset.user);
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
    ui.composerInput.addEventListener('input', () => this.autosizeComposer());

    ui.messageList.addEventListener('click', (event) => {
      const button = event.target.closest('[data-action="dismiss"]');
      if (!button || !currentEntry(this.state)) return;
      const cid = button.closest('[data-testid="message"]').dataset.cid;
      this.dispatch({ type: ACTIONS.DISCARD, cid });
    });

    ui.loadOlder.addEventListener('click', () => {
      const entry = currentEntry(this.state);
      if (entry && !entry.loadingOlder) this.requestHistory(entry, entry.conv.oldestId);
    });

    ui.toastRetry.addEventListener('click', () => this.conn && this.conn.retryNow());
    ui.retry.addEventListener('click', () => this.conn && this.conn.retryNow());
    ui.reconnect.addEventListener('click', () => this.conn && this.conn.connect());

    for (const button of document.querySelectorAll('[data-panel-toggle]')) {
      button.addEventListener('click', () => this.togglePanel(button.dataset.panelToggle));
    }
    ui.scrim.addEventListener('click', () => this.closePanels());
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') this.closePanels();
    });

    const online = () => this.dispatch({ type: ACTIONS.ONLINE, online: navigator.onLine });
    window.addEventListener('online', online);
    window.addEventListener('offline', online);
    document.addEventListener('visibilitychange', () => {
      this.dispatch({ type: ACTIONS.VISIBILITY, hidden: document.hidden });
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

function loadSavedRooms(userId) {
  try {
    const rooms = JSON.parse(localStorage.getItem(roomsStorageKey(userId)) ?? 'null');
    if (Array.isArray(rooms)) return rooms.filter((r) => typeof r === 'string' && ROOM_NAME.test(r));
  } catch {
    // unreadable: fall back to the default room
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

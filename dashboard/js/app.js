/**
 * The admin dashboard page: wires the API, the push channel, the state and
 * the views to the DOM of index.html. All logic worth testing lives in the
 * modules it imports; this file only connects them.
 */
import { AdminApi, ApiError } from './api.js';
import { AuditLog } from './audit-view.js';
import { Chart } from './chart-view.js';
import { ClientsTable } from './clients-view.js';
import { ClosedTable } from './closed-view.js';
import { ConfirmDialog } from './confirm.js';
import { el, setAttr, setText } from './dom.js';
import { formatCount, formatDuration, formatRate } from './format.js';
import {
  CAUSE_CHOICES, HEALTH_CHOICES, initialView, isDefault, rangeText, viewMessage, withCursor, withFilter,
  withSort, withoutFilters,
} from './listing.js';
import { RoomMessages } from './messages-view.js';
import {
  initialState, reduce, totals, withView,
} from './model.js';
import { mergeById } from './pages.js';
import { PushChannel, PushState, pushUrl } from './push.js';
import {
  BANS, DEFAULT_DURATION, DURATIONS, InForceList, MUTES,
} from './restrictions.js';
import { knownRooms, validRoom } from './rooms.js';
import { SummaryTables, TABLES } from './summary-view.js';

const SESSION_ENDED = 'Your session has ended. Log in again.';
const TYPING_PAUSE = 250; // ms after the last key in a filter before the view changes

const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);
const byPart = (name, root = document) => root.querySelector(`[data-part="${name}"]`);

const PUSH_LABELS = {
  open: 'Live',
  connecting: 'Connecting…',
  reconnecting: 'Reconnecting…',
  waiting: 'Reconnecting',
  stopped: 'Offline',
};

class Dashboard {
  constructor() {
    this.api = new AdminApi();
    this.push = null;
    this.state = initialState();
    this.renderQueued = false;
    this.countdown = null;
    this.idleTimer = null;
    this.typing = new Map(); // filter name -> its pending timer
    this.shown = { closed: null, stats: null, summary: null, nodes: '' };

    this.views = { login: byPart('login-view'), dashboard: byPart('dashboard-view') };
    this.loginForm = byPart('login-form');
    this.tokenInput = byTestId('admin-token');
    this.loginButton = byTestId('admin-login');
    this.loginError = byTestId('admin-error');
    this.logoutButton = byTestId('logout');
    this.operator = byTestId('operator');
    this.pushState = byTestId('push-state');
    this.uptime = byPart('uptime');
    this.totals = {
      connections: byTestId('total-connections'),
      users: byTestId('total-users'),
      rooms: byTestId('total-rooms'),
      terminations: byTestId('total-terminations'),
      reconnects: byTestId('total-reconnects'),
      mps: byTestId('total-mps'),
    };
    this.charts = {
      connections: this._chart('chart-connections'),
      messages: this._chart('chart-messages'),
    };
    this.clients = new ClientsTable(byTestId('clients-table'), {
      count: byPart('clients-count'),
      empty: byPart('clients-empty'),
      onSort: (key) => this._setView(withSort(this.state.view, key)),
      onDisconnect: (client) => this._askDisconnect(client),
      onDisconnectUser: (client) => this._askDisconnectUser(client),
      onBan: (client) => this._askBan(client),
      onMute: (client) => this._askMute(client),
    });
    this.bans = new InForceList(byTestId('bans-table'), BANS, {
      count: byPart('bans-count'),
      empty: byPart('bans-empty'),
      onLift: (ban) => this._lift(ban),
    });
    this.mutes = new InForceList(byTestId('mutes-table'), MUTES, {
      count: byPart('mutes-count'),
      empty: byPart('mutes-empty'),
      onLift: (mute) => this._unmute(mute),
    });
    const duration = byTestId('duration-input');
    for (const d of DURATIONS) {
      duration.append(el('option', { value: d.key, selected: d.key === DEFAULT_DURATION }, d.label));
    }
    this.closed = new ClosedTable(byTestId('closed-table'), {
      count: byPart('closed-count'),
      empty: byPart('closed-empty'),
    });
    this.audit = { entries: [], more: false };
    this.auditLog = new AuditLog(byTestId('audit-table'), { count: byPart('audit-count'), empty: byPart('audit-empty') });
    byTestId('audit-older').addEventListener('click', () => this._loadAudit(true));
    this.room = { name: null, messages: [], more: false };
    this.roomMessages = new RoomMessages(byTestId('messages-table'), {
      empty: byPart('messages-empty'),
      onDelete: (message) => this._askDelete(message),
    });
    this.roomInput = byTestId('room-messages-input');
    this.roomError = byPart('room-error');
    byPart('room-form').addEventListener('submit', (event) => {
      event.preventDefault();
      this._showRoom(this.roomInput.value.trim());
    });
    byTestId('messages-older').addEventListener('click', () => this._showRoom(this.room.name, true));
    this.dialog = new ConfirmDialog(byPart('confirm-dialog'));

    this.loginForm.addEventListener('submit', (event) => {
      event.preventDefault();
      this._login();
    });
    this.logoutButton.addEventListener('click', () => this._logout());
    byPart('retry-now').addEventListener('click', () => this.push && this.push.retryNow());
    this._wireFilters();
    this.summaryTables = new SummaryTables(
      Object.fromEntries(TABLES.map((t) => [t.name, byTestId(`summary-${t.name}`)])),
      {
        onFilter: (name, value) => this._filterTo(name, value),
        empties: Object.fromEntries(TABLES.map((t) => [t.name, byPart(`summary-${t.name}-empty`)])),
        nodesCard: byPart('summary-nodes-card'),
      },
    );
    this.pager = { first: byTestId('page-first'), prev: byTestId('page-prev'), next: byTestId('page-next'), range: byTestId('page-range') };
    this.pager.first.addEventListener('click', () => this._setView(withCursor(this.state.view, null)));
    this.pager.prev.addEventListener('click', () => this._setView(withCursor(this.state.view, this.state.page.prev)));
    this.pager.next.addEventListener('click', () => this._setView(withCursor(this.state.view, this.state.page.next)));
  }

  /** The search box and the filters: each changes the view (text ones once typing pauses). */
  _wireFilters() {
    this.filterInputs = { q: byTestId('filter') };
    for (const input of document.querySelectorAll('[data-filter]')) this.filterInputs[input.dataset.filter] = input;
    const choices = { health: HEALTH_CHOICES, cause: CAUSE_CHOICES, node: [['', 'Any node']] };
    for (const [name, options] of Object.entries(choices)) {
      this.filterInputs[name].replaceChildren(...options.map(([value, label]) => el('option', { value }, label)));
    }
    for (const [name, input] of Object.entries(this.filterInputs)) {
      const apply = () => {
        clearTimeout(this.typing.get(name));
        this.typing.delete(name);
        this._setView(withFilter(this.state.view, name, input.value));
      };
      if (input.tagName === 'SELECT') {
        input.addEventListener('change', apply);
      } else {
        input.addEventListener('input', () => {
          clearTimeout(this.typing.get(name));
          this.typing.set(name, setTimeout(apply, TYPING_PAUSE));
        });
        input.addEventListener('keydown', (event) => {
          if (event.key === 'Enter') apply();
        });
      }
    }
    byTestId('filter-clear').addEventListener('click', () => {
      for (const input of Object.values(this.filterInputs)) input.value = '';
      this._setView(withoutFilters(this.state.view));
    });
  }

  /** One filter set from elsewhere (a name in the small tables): the others cleared. */
  _filterTo(name, value) {
    for (const [key, input] of Object.entries(this.filterInputs)) {
      if (input.tagName === 'SELECT' && key === name && ![...input.options].some((o) => o.value === value)) {
        input.append(el('option', { value }, value));
      }
      input.value = key === name ? value : '';
    }
    this._setView(withFilter(withoutFilters(this.state.view), name, value));
  }

  /** A new view of the clients: shown at once as asked, and told to the server. */
  _setView(view) {
    if (view === this.state.view) return;
    this.state = withView(this.state, view);
    if (this.push) this.push.send(viewMessage(view));
    this._queueRender();
  }

  _chart(testId) {
    const root = byTestId(testId);
    const card = root.closest('.chart-card');
    return new Chart(root, { max: byPart('y-max', card), span: byPart('span', card) });
  }

  async start() {
    let loggedIn = false;
    try {
      loggedIn = await this.api.session();
    } catch {
      this._showLogin('Cannot reach the server. Reload to try again.');
      return;
    }
    if (loggedIn) this._showDashboard();
    else this._showLogin();
  }

  // --- access ---

  _showLogin(message = '') {
    this._stopPush();
    this.views.dashboard.hidden = true;
    this.views.login.hidden = false;
    this.logoutButton.hidden = true;
    this.operator.hidden = true;
    this.pushState.hidden = true;
    this.uptime.hidden = true;
    this.loginError.hidden = !message;
    setText(this.loginError, message);
    this.tokenInput.value = '';
    this.tokenInput.focus();
  }

  _showDashboard() {
    this.views.login.hidden = true;
    this.views.dashboard.hidden = false;
    this.logoutButton.hidden = false;
    this.operator.hidden = !this.api.operator;
    setText(this.operator, this.api.operator ? `Signed in as ${this.api.operator}` : '');
    this.pushState.hidden = false;
    this.uptime.hidden = false;
    this.state = initialState(initialView());
    for (const input of Object.values(this.filterInputs)) input.value = '';
    this.shown = { closed: null, stats: null, summary: null, nodes: '' };
    this.audit = { entries: [], more: false };
    this._render();
    this._startPush();
    this._loadBans();
    this._loadMutes();
  }

  async _login() {
    const token = this.tokenInput.value.trim();
    if (!token) {
      this._loginFailed('Enter the admin token.');
      return;
    }
    this.loginButton.disabled = true;
    try {
      await this.api.login(token);
      this.loginError.hidden = true;
      this._showDashboard();
    } catch (err) {
      this._loginFailed(err instanceof ApiError && err.status === 401
        ? 'Wrong admin token.' : 'Cannot reach the server. Try again.');
    } finally {
      this.loginButton.disabled = false;
    }
  }

  _loginFailed(message) {
    setText(this.loginError, message);
    this.loginError.hidden = false;
    this.tokenInput.select();
  }

  async _logout() {
    this._stopPush();
    try {
      await this.api.logout();
    } catch {
      // The session is gone from this page either way.
    }
    this._showLogin();
  }

  // --- the push channel ---

  _startPush() {
    this._stopPush();
    const push = new PushChannel(pushUrl(window.location));
    push.addEventListener('message', (event) => {
      const message = event.detail;
      this.state = reduce(this.state, message);
      this._queueRender();
      if (message.type === 'snapshot') {
        // A new channel shows the default view: ask again for this one.
        const view = this.state.view;
        if (view.seq !== 0 || !isDefault(view)) push.send(viewMessage(view));
        // The log from the store on every (re)connect (it may have missed entries, or
        // other nodes' operators acted); this node's new entries as they are made.
        this._loadAudit();
      } else if (message.type === 'audit' && message.entry) {
        this._showAudit(mergeById(this.audit.entries, [message.entry]));
      }
    });
    push.addEventListener('statechange', (event) => this._pushStateChanged(event.detail));
    this.push = push;
    push.start();
    // "Last frame … ago" of the rows in view, once a second, without the server.
    this.idleTimer = setInterval(() => this.clients.showIdle(this._serverNow()), 1000);
  }

  /** Now on the server's clock, as the page estimates it (Unix seconds). */
  _serverNow() {
    return Date.now() / 1000 - this.state.offset;
  }

  _stopPush() {
    if (this.push) {
      const push = this.push;
      this.push = null;
      push.stop();
    }
    clearInterval(this.countdown);
    this.countdown = null;
    clearInterval(this.idleTimer);
    this.idleTimer = null;
  }

  async _pushStateChanged({ state, attempt }) {
    clearInterval(this.countdown);
    this.countdown = null;
    let shown = state;
    if (state === PushState.CONNECTING && attempt > 0) shown = 'reconnecting';
    setAttr(this.pushState, 'data-state', shown);
    document.body.classList.toggle('stale', state !== PushState.OPEN && this.state.ready);
    byPart('retry-now').hidden = state !== PushState.WAITING;
    this._showPushLabel(shown);
    if (state === PushState.WAITING) {
      this.countdown = setInterval(() => this._showPushLabel(shown), 250);
      // An upgrade refused for an ended session looks like any failure: ask.
      const push = this.push;
      try {
        if (!(await this.api.session()) && push === this.push) {
          this._showLogin(SESSION_ENDED);
        }
      } catch {
        // The server is unreachable: keep retrying.
      }
    }
  }

  _showPushLabel(shown) {
    let label = PUSH_LABELS[shown] || shown;
    if (shown === 'waiting' && this.push && this.push.retryAt !== null) {
      const seconds = Math.max(0, Math.ceil((this.push.retryAt - Date.now()) / 1000));
      label = seconds > 0 ? `Reconnecting in ${seconds} s` : 'Reconnecting…';
    }
    setText(byPart('label', this.pushState), label);
  }

  // --- rendering ---

  _queueRender() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    setTimeout(() => {
      this.renderQueued = false;
      this._render();
    }, 0);
  }

  _render() {
    const state = this.state;
    const t = totals(state);
    setText(this.totals.connections, formatCount(t.connections));
    setText(this.totals.users, formatCount(t.users));
    setText(this.totals.rooms, formatCount(t.rooms));
    setText(this.totals.terminations, formatCount(t.terminations));
    setText(this.totals.reconnects, formatCount(t.reconnects));
    setText(this.totals.mps, formatRate(t.mps));
    // In a cluster the totals are every node's, but the message rate is this node's.
    for (const scope of document.querySelectorAll('[data-part="node-scope"]')) scope.hidden = !state.stats.node;
    if (state.stats !== this.shown.stats) {
      this.shown.stats = state.stats;
      const series = state.stats.series;
      this.charts.connections.draw(series.t, series.connections);
      this.charts.messages.draw(series.t, series.messages_per_second);
      setText(this.uptime, state.stats.uptime ? `up ${formatDuration(state.stats.uptime)}` : '');
    }
    const clustered = Boolean(state.stats.node);
    const view = state.view;
    const filtered = Object.keys(view.filters).length > 0;
    this.clients.show(state.page, { view, now: this._serverNow(), clustered, filtered });
    const page = state.page;
    setText(this.pager.range, rangeText(page));
    this.pager.first.disabled = !page.prev && !view.cursor;
    this.pager.prev.disabled = !page.prev;
    this.pager.next.disabled = !page.next;
    byTestId('filter-clear').hidden = !filtered;
    const error = byPart('view-error');
    setText(error, state.viewError);
    error.hidden = !state.viewError;
    if (state.summary !== this.shown.summary) {
      this.shown.summary = state.summary;
      this.summaryTables.update(state.summary, { clustered });
      setText(byPart('glance-window'), formatDuration(state.summary.window || 300));
      this._suggestRooms(state.summary.rooms.map((r) => r.room));
      this._showNodes(state.summary.nodes.map((n) => n.node).filter(Boolean));
    }
    if (state.closed !== this.shown.closed) {
      this.shown.closed = state.closed;
      this.closed.update(state.closed);
    }
  }

  // --- actions ---

  _askDisconnect(client) {
    this.dialog.open({
      title: `Disconnect ${client.name || client.user}?`,
      detail: `Connection ${client.id} from ${client.remote || 'an unknown address'} will be closed `
        + '(code 4003). The user sees the reason below; their client does not reconnect by itself.',
      confirmLabel: 'Disconnect',
      action: (reason) => this._act(() => this.api.disconnectClient(client.id, reason),
        'That connection has already closed.'),
    });
  }

  async _askDisconnectUser(client) {
    // How many: every node's, from the server (the page shows a window of them).
    let count = 0;
    try {
      count = (await this.api.clients({ user: client.user, limit: '1' })).matched;
    } catch {
      count = 0; // unknown: the dialog says "every connection"
    }
    this.dialog.open({
      title: `Disconnect every connection of ${client.name || client.user}?`,
      detail: `${count === 1 ? 'Their only connection' : count ? `All ${count} of their connections` : 'Every connection'}`
        + ' will be closed (code 4003), on every node. The user sees the reason below.',
      confirmLabel: count === 1 ? 'Disconnect user' : count ? `Disconnect ${count} connections` : 'Disconnect user',
      action: (reason) => this._act(() => this.api.disconnectUser(client.user, reason), 'The user is not connected.'),
    });
  }

  _askMute(client) {
    this.dialog.open({
      title: `Mute ${client.name || client.user}?`,
      detail: 'In the room below, this user can still read but not send or edit messages, on every node, '
        + 'until the mute ends or is lifted. They see the reason below when they try.',
      confirmLabel: 'Mute',
      withDuration: true,
      rooms: client.rooms,
      action: async (reason, seconds, room) => {
        await this._act(() => this.api.muteUser(room, client.user, reason, seconds), 'The user is not known.');
        await this._loadMutes();
      },
    });
  }

  async _unmute(mute) {
    try {
      await this._act(() => this.api.liftMute(mute.room, mute.user), 'That mute has already ended.');
    } catch {
      // Shown by the list: read again below.
    }
    await this._loadMutes();
  }

  async _loadMutes() {
    await this._load(() => this.api.mutes(), (mutes) => this.mutes.update(mutes));
  }

  _askDelete(message) {
    this.dialog.open({
      title: `Delete this message by ${message.name || message.from}?`,
      detail: `“${message.text.length > 140 ? `${message.text.slice(0, 140)}…` : message.text}” `
        + `in ${this.room.name} is replaced by “message deleted” for everyone, on every node and in the history.`,
      confirmLabel: 'Delete message',
      reasonLabel: 'Reason (kept in the audit log)',
      action: async (reason) => {
        await this._act(() => this.api.deleteMessage(message.id, reason), 'That message no longer exists.');
        await this._showRoom(this.room.name);
      },
    });
  }

  /** The node filter's choices: the nodes the summary names (the one chosen kept). */
  _showNodes(nodes) {
    byPart('node-filter').hidden = nodes.length === 0;
    const key = nodes.join(' ');
    if (key === this.shown.nodes) return;
    this.shown.nodes = key;
    const select = this.filterInputs.node;
    const chosen = select.value;
    const names = chosen && !nodes.includes(chosen) ? [...nodes, chosen] : nodes;
    select.replaceChildren(el('option', { value: '' }, 'Any node'), ...names.map((n) => el('option', { value: n }, n)));
    select.value = chosen;
  }

  _suggestRooms(names) {
    const rooms = knownRooms(names);
    const list = byPart('room-messages-choices');
    if (list.dataset.rooms !== rooms.join(' ')) {
      list.dataset.rooms = rooms.join(' ');
      list.replaceChildren(...rooms.map((r) => el('option', { value: r })));
    }
  }

  async _showRoom(name, older = false) {
    const error = !validRoom(name) ? 'A room name is 1-64 letters, digits, “-”, “_” or “.”.' : '';
    setText(this.roomError, error);
    this.roomError.hidden = !error;
    if (error) return;
    const before = older && this.room.messages.length ? this.room.messages[this.room.messages.length - 1].id : null;
    await this._load(() => this.api.roomMessages(name, { before }), (page) => {
      const messages = mergeById(older ? this.room.messages : [], page.messages);
      this.room = { name, messages, more: page.more };
      this.roomMessages.update(messages, `No messages in ${name}.`);
      byPart('messages-more').hidden = !page.more;
    });
  }

  async _loadAudit(older = false) {
    const entries = this.audit.entries;
    const before = older && entries.length ? entries[entries.length - 1].id : null;
    await this._load(() => this.api.audit({ before }), (page) => {
      // A first page replaces what is shown; later pages add to it.
      this._showAudit(mergeById(older ? entries : [], page.entries), page.more);
    });
  }

  _showAudit(entries, more = this.audit.more) {
    this.audit = { entries, more };
    this.auditLog.update(entries);
    byPart('audit-more').hidden = !more;
  }

  /** Reads something for a list; a session that ended sends back to the login. */
  async _load(read, show) {
    try {
      show(await read());
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) this._showLogin(SESSION_ENDED);
    }
  }

  _askBan(client) {
    this.dialog.open({
      title: `Ban ${client.name || client.user}?`,
      detail: 'Every connection of this user, on every node, is closed (code 4003), and they cannot '
        + 'connect or log in with this name until the ban ends or is lifted. They see the reason below.',
      confirmLabel: 'Ban',
      withDuration: true,
      action: async (reason, seconds) => {
        await this._act(() => this.api.banUser(client.user, reason, seconds), 'The user is not known.');
        await this._loadBans();
      },
    });
  }

  async _lift(ban) {
    try {
      await this._act(() => this.api.liftBan(ban.user), 'That ban has already ended.');
    } catch {
      // Shown by the list: read again below.
    }
    await this._loadBans();
  }

  async _loadBans() {
    await this._load(() => this.api.bans(), (bans) => this.bans.update(bans));
  }

  async _act(request, notFound) {
    try {
      await request();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        this.dialog.close();
        this._showLogin(SESSION_ENDED);
        return;
      }
      if (err instanceof ApiError && err.status === 404) throw new Error(notFound);
      throw err instanceof ApiError ? err : new Error('Cannot reach the server. Try again.');
    }
  }
}

new Dashboard().start();

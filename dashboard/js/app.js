/**
 * The admin dashboard page: wires the API, the push channel, the state and
 * the views to the DOM of index.html. All logic worth testing lives in the
 * modules it imports; this file only connects them.
 */
import { AdminApi, ApiError } from './api.js';
import { Chart } from './chart-view.js';
import { BAN_DURATIONS, BansList, DEFAULT_DURATION } from './bans.js';
import { ClientsTable } from './clients-view.js';
import { ClosedTable } from './closed-view.js';
import { ConfirmDialog } from './confirm.js';
import { el, setAttr, setText } from './dom.js';
import { formatCount, formatDuration, formatRate } from './format.js';
import { initialState, reduce, totals } from './model.js';
import { PushChannel, PushState, pushUrl } from './push.js';

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
    this.shown = { closed: null, stats: null };

    this.views = { login: byPart('login-view'), dashboard: byPart('dashboard-view') };
    this.loginForm = byPart('login-form');
    this.tokenInput = byTestId('admin-token');
    this.loginButton = byTestId('admin-login');
    this.loginError = byTestId('admin-error');
    this.logoutButton = byTestId('logout');
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
      onDisconnect: (client) => this._askDisconnect(client),
      onDisconnectUser: (client) => this._askDisconnectUser(client),
      onBan: (client) => this._askBan(client),
    });
    this.bans = new BansList(byTestId('bans-table'), {
      count: byPart('bans-count'),
      empty: byPart('bans-empty'),
      onLift: (ban) => this._lift(ban),
    });
    const duration = byTestId('duration-input');
    for (const d of BAN_DURATIONS) {
      duration.append(el('option', { value: d.key, selected: d.key === DEFAULT_DURATION }, d.label));
    }
    this.closed = new ClosedTable(byTestId('closed-table'), {
      count: byPart('closed-count'),
      empty: byPart('closed-empty'),
    });
    this.dialog = new ConfirmDialog(byPart('confirm-dialog'));

    this.loginForm.addEventListener('submit', (event) => {
      event.preventDefault();
      this._login();
    });
    this.logoutButton.addEventListener('click', () => this._logout());
    byTestId('filter').addEventListener('input', (event) => this.clients.setQuery(event.target.value));
    byPart('retry-now').addEventListener('click', () => this.push && this.push.retryNow());
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
    this.pushState.hidden = false;
    this.uptime.hidden = false;
    this.state = initialState();
    this.shown = { closed: null, stats: null };
    this._render();
    this._startPush();
    this._loadBans();
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
      this.state = reduce(this.state, event.detail);
      this._queueRender();
    });
    push.addEventListener('statechange', (event) => this._pushStateChanged(event.detail));
    this.push = push;
    push.start();
  }

  _stopPush() {
    if (this.push) {
      const push = this.push;
      this.push = null;
      push.stop();
    }
    clearInterval(this.countdown);
    this.countdown = null;
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
          this._showLogin('Your session has ended. Log in again.');
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
    this.clients.update(state.clients);
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

  _askDisconnectUser(client) {
    const count = this.state.clients.filter((c) => c.user === client.user).length;
    this.dialog.open({
      title: `Disconnect every connection of ${client.name || client.user}?`,
      detail: `${count === 1 ? 'Their only connection' : `All ${count} of their connections`} will be closed `
        + '(code 4003). The user sees the reason below.',
      confirmLabel: count === 1 ? 'Disconnect user' : `Disconnect ${count} connections`,
      action: (reason) => this._act(() => this.api.disconnectUser(client.user, reason), 'The user is not connected.'),
    });
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
    try {
      this.bans.update(await this.api.bans());
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) this._showLogin('Your session has ended. Log in again.');
    }
  }

  async _act(request, notFound) {
    try {
      await request();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        this.dialog.close();
        this._showLogin('Your session has ended. Log in again.');
        return;
      }
      if (err instanceof ApiError && err.status === 404) throw new Error(notFound);
      throw err instanceof ApiError ? err : new Error('Cannot reach the server. Try again.');
    }
  }
}

new Dashboard().start();

/**
 * The live clients table. Rows are keyed by connection id and updated in
 * place, so a tick every second neither loses the operator's hover or focus
 * nor swallows a click on a button that is being pressed.
 */
import { el, setAttr, setText } from './dom.js';
import {
  describeUserAgent, formatAgo, formatClock, formatCount, formatDateTime, formatDuration, formatRtt,
} from './format.js';
import { COLUMNS, DEFAULT_SORT, nextSort, visibleClients } from './table.js';

/** What each cell shows: {text, sub?, title?} for a client (`now` in Unix seconds). */
const CELLS = {
  id: (c) => ({ text: c.id }),
  // The display name first; the user id under it when it differs (a guest's is opaque).
  user: (c) => ({ text: c.name || c.user, sub: c.name && c.name !== c.user ? c.user : '' }),
  rooms: (c) => ({ text: c.rooms.length ? c.rooms.join(', ') : '—', title: c.rooms.join(', ') }),
  remote: (c) => ({ text: c.remote || '—', title: c.remote }),
  node: (c) => ({ text: c.node || '—', title: c.node }),
  user_agent: (c) => ({ text: describeUserAgent(c.user_agent) || '—', title: c.user_agent }),
  connected_at: (c, now) => ({
    text: formatClock(c.connected_at),
    title: `${formatDateTime(c.connected_at)} (${formatDuration(Math.max(0, now - c.connected_at))} ago)`,
  }),
  idle: (c) => ({ text: formatAgo(c.idle), title: formatDateTime(c.last_seen) }),
  rtt: (c) => ({ text: formatRtt(c.rtt) }),
  frames_in: (c) => ({ text: formatCount(c.frames_in) }),
  frames_out: (c) => ({ text: formatCount(c.frames_out) }),
  reconnect: (c) => ({ text: c.reconnect ? `#${c.reconnect}` : '—' }),
  health: (c) => {
    if (!c.health) return { text: '—', title: 'Known to the node it is connected to' };
    return {
      text: c.health === 'amber' ? 'Late' : 'OK',
      title: c.health === 'amber' ? 'Nothing heard for over half the ping timeout' : 'Heard from recently',
    };
  },
};

export class ClientsTable {
  /**
   * @param {HTMLTableElement} table
   * @param {{onDisconnect: (client) => void, onDisconnectUser: (client) => void,
   *          onBan?: (client) => void, onMute?: (client) => void, count: Element, empty: Element}} hooks
   */
  constructor(table, { onDisconnect, onDisconnectUser, onBan, onMute, count, empty }) {
    this.table = table;
    this.count = count;
    this.empty = empty;
    this.onDisconnect = onDisconnect;
    this.onDisconnectUser = onDisconnectUser;
    this.onBan = onBan;
    this.onMute = onMute;
    this.sort = { ...DEFAULT_SORT };
    this.query = '';
    this.clients = [];
    this.rows = new Map(); // conn id -> {tr, cells: {key: td}, client}
    this.headers = new Map(); // column key -> th
    this._buildHead();
    this.body = el('tbody');
    table.append(this.body);
  }

  _buildHead() {
    const tr = el('tr');
    for (const col of COLUMNS) {
      const button = el('button', { type: 'button', class: 'sort' }, col.label,
        el('span', { class: 'sort-icon', 'aria-hidden': 'true' }));
      button.addEventListener('click', () => {
        this.sort = nextSort(this.sort, col.key);
        this.render();
      });
      const th = el('th', { scope: 'col', class: col.numeric ? 'num' : null, 'data-col': col.key, title: col.title },
        button);
      this.headers.set(col.key, th);
      tr.append(th);
    }
    tr.append(el('th', { scope: 'col', class: 'actions' }, el('span', { class: 'visually-hidden' }, 'Actions')));
    this.table.append(el('thead', {}, tr));
  }

  /** Shows this client list (from the latest push message). */
  update(clients) {
    this.clients = clients;
    this.render();
  }

  setQuery(query) {
    this.query = query;
    this.render();
  }

  render() {
    const now = Date.now() / 1000;
    const shown = visibleClients(this.clients, { query: this.query, sort: this.sort });
    const keep = new Set(shown.map((c) => c.id));
    for (const [id, row] of this.rows) {
      if (!keep.has(id)) {
        row.tr.remove();
        this.rows.delete(id);
      }
    }
    shown.forEach((client, index) => {
      let row = this.rows.get(client.id);
      if (!row) {
        row = this._newRow(client);
        this.rows.set(client.id, row);
      }
      row.client = client;
      this._fill(row, client, now);
      // Move only rows that are out of place: moving a row under the pointer
      // would make a click on it miss.
      if (this.body.children[index] !== row.tr) this.body.insertBefore(row.tr, this.body.children[index] || null);
    });
    for (const [key, th] of this.headers) {
      const sorted = key === this.sort.key;
      if (sorted) setAttr(th, 'aria-sort', this.sort.dir === 'asc' ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    }
    // The node column only when there are nodes: a server alone has none.
    this.table.classList.toggle('no-node', !this.clients.some((c) => c.node));
    const total = this.clients.length;
    setText(this.count, shown.length === total ? formatCount(total) : `${shown.length} of ${total}`);
    this.empty.hidden = shown.length > 0;
    setText(this.empty, total === 0 ? 'No clients are connected.' : 'No client matches the filter.');
  }

  _newRow(client) {
    const tr = el('tr', {
      'data-testid': 'client-row', 'data-conn-id': client.id, 'data-user': client.user, 'data-name': client.name || client.user,
    });
    const cells = {};
    for (const col of COLUMNS) {
      const main = el('span', { class: 'main' });
      const sub = el('span', { class: 'sub' });
      const td = el('td', { class: col.numeric ? 'num' : null, 'data-col': col.key, 'data-label': col.label }, main, sub);
      if (col.key === 'health') td.prepend(el('span', { class: 'dot', 'aria-hidden': 'true' }));
      cells[col.key] = { td, main, sub };
      tr.append(td);
    }
    const row = { tr, cells, client };
    const disconnect = el('button', { type: 'button', class: 'button small danger-ghost', 'data-testid': 'disconnect' },
      'Disconnect');
    const disconnectUser = el('button', { type: 'button', class: 'button small ghost', 'data-testid': 'disconnect-user' },
      'Disconnect user');
    disconnect.addEventListener('click', () => this.onDisconnect(row.client));
    disconnectUser.addEventListener('click', () => this.onDisconnectUser(row.client));
    const optional = (hook, testid, label, look) => {
      if (!hook) return null;
      const button = el('button', { type: 'button', class: `button small ${look}`, 'data-testid': testid }, label);
      button.addEventListener('click', () => hook(row.client));
      return button;
    };
    const mute = optional(this.onMute, 'mute-user', 'Mute', 'ghost');
    const ban = optional(this.onBan, 'ban-user', 'Ban', 'danger-ghost');
    tr.append(el('td', { class: 'actions' }, el('div', { class: 'action-group' }, disconnect, disconnectUser, mute, ban)));
    return row;
  }

  _fill(row, client, now) {
    for (const col of COLUMNS) {
      const { td, main, sub } = row.cells[col.key];
      const shown = CELLS[col.key](client, now);
      setText(main, shown.text);
      setText(sub, shown.sub || '');
      if (shown.title) setAttr(td, 'title', shown.title);
    }
    setAttr(row.tr, 'data-health', client.health ? (client.health === 'amber' ? 'amber' : 'green') : 'unknown');
  }
}

/**
 * The live clients table: the rows of one page of the server's list, in the
 * server's order. Rows are keyed by connection id and a row's cells are
 * written only when the server sent it anew (listing.js keeps unchanged rows
 * as the same objects), so a tick neither loses the operator's hover or
 * focus nor swallows a click on a button that is being pressed. "Last frame
 * … ago" is worked out here once a second (`showIdle`) for the rows in view,
 * one text each, not by re-rendering rows.
 */
import { el, setAttr, setText } from './dom.js';
import {
  describeUserAgent, formatAgo, formatClock, formatCount, formatDateTime, formatDuration, formatRtt,
} from './format.js';
import { idleSeconds } from './listing.js';
import { COLUMNS } from './table.js';

/** What each cell shows: {text, sub?, title?} for a client (`now` in Unix seconds, the server's clock). */
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
  idle: (c, now) => ({ text: formatAgo(idleSeconds(c, now)), title: c.last_seen ? formatDateTime(c.last_seen) : '' }),
  rtt: (c) => ({ text: formatRtt(c.rtt) }),
  frames_in: (c) => ({ text: formatCount(c.frames_in) }),
  frames_out: (c) => ({ text: formatCount(c.frames_out) }),
  reconnect: (c) => ({ text: c.reconnect ? `#${c.reconnect}` : '—', sub: c.reconnect ? (c.cause || '') : '' }),
  health: (c) => {
    if (!c.health) return { text: '—', title: 'Known to the node it is connected to' };
    return {
      text: c.health === 'amber' ? 'Late' : 'OK',
      title: c.health === 'amber' ? 'Nothing heard for over half the ping timeout' : 'Heard from recently',
    };
  },
};

/** The cells with a second line under the first (a user id, a reconnect's cause). */
const TWO_LINES = new Set(['user', 'reconnect']);

export class ClientsTable {
  /**
   * @param {HTMLTableElement} table
   * @param {{onSort: (key) => void, onDisconnect: (client) => void, onDisconnectUser: (client) => void,
   *          onBan?: (client) => void, onMute?: (client) => void, count: Element, empty: Element}} hooks
   */
  constructor(table, { onSort, onDisconnect, onDisconnectUser, onBan, onMute, count, empty }) {
    this.table = table;
    this.count = count;
    this.empty = empty;
    this.onSort = onSort;
    this.onDisconnect = onDisconnect;
    this.onDisconnectUser = onDisconnectUser;
    this.onBan = onBan;
    this.onMute = onMute;
    this.rows = new Map(); // conn id -> {tr, cells: {key: {td, main, sub}}, client}
    this.headers = new Map(); // column key -> th
    this.shownPage = null;
    this._buildHead();
    this.body = el('tbody');
    table.append(this.body);
  }

  _buildHead() {
    const tr = el('tr');
    for (const col of COLUMNS) {
      const button = el('button', { type: 'button', class: 'sort' }, col.label,
        el('span', { class: 'sort-icon', 'aria-hidden': 'true' }));
      button.addEventListener('click', () => this.onSort(col.key));
      const th = el('th', { scope: 'col', class: col.numeric ? 'num' : null, 'data-col': col.key, title: col.title },
        button);
      this.headers.set(col.key, th);
      tr.append(th);
    }
    tr.append(el('th', { scope: 'col', class: 'actions' }, el('span', { class: 'visually-hidden' }, 'Actions')));
    this.table.append(el('thead', {}, tr));
  }

  /**
   * Shows a page (listing.js): its rows in its order, each written only when it
   * is new or changed. `view` gives the sort shown in the header; `now` is the
   * server's clock; `clustered` shows the node column; `filtered` words the counts.
   */
  show(page, { view, now, clustered, filtered }) {
    if (page !== this.shownPage) {
      this.shownPage = page;
      for (const [id, row] of this.rows) {
        if (!page.rows.has(id)) {
          row.tr.remove();
          this.rows.delete(id);
        }
      }
      page.ids.forEach((id, index) => {
        const client = page.rows.get(id);
        let row = this.rows.get(id);
        if (!row) {
          row = this._newRow(client);
          this.rows.set(id, row);
        }
        if (row.client !== client || !row.filled) {
          row.client = client;
          row.filled = true;
          this._fill(row, client, now);
        }
        // Move only rows that are out of place: moving a row under the pointer
        // would make a click on it miss.
        if (this.body.children[index] !== row.tr) this.body.insertBefore(row.tr, this.body.children[index] || null);
      });
    }
    for (const [key, th] of this.headers) {
      if (key === view.sort) setAttr(th, 'aria-sort', view.order === 'asc' ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    }
    // The node column only when there are nodes: a server alone has none.
    this.table.classList.toggle('no-node', !clustered);
    const total = page.totals ? page.totals.connections : page.matched;
    setText(this.count, filtered ? `${formatCount(page.matched)} of ${formatCount(total)}` : formatCount(total));
    this.empty.hidden = page.ids.length > 0 || page.seq < 0;
    setText(this.empty, filtered ? 'No client matches the filter.' : 'No clients are connected.');
  }

  /** "Last frame … ago" of the rows in view, at `now` (the server's clock): one text each. */
  showIdle(now) {
    for (const row of this.rows.values()) {
      const { main } = row.cells.idle;
      setText(main, CELLS.idle(row.client, now).text);
    }
  }

  _newRow(client) {
    const tr = el('tr', {
      'data-testid': 'client-row', 'data-conn-id': client.id, 'data-user': client.user, 'data-name': client.name || client.user,
    });
    // As few boxes as a row needs (a storm brings a page of new rows every second,
    // all laid out again): a cell holds its text, and only the two with a second
    // line have spans; the health dot is the cell's ::before.
    const cells = {};
    for (const col of COLUMNS) {
      const td = el('td', { class: col.numeric ? 'num' : null, 'data-col': col.key, 'data-label': col.label });
      let main = td;
      let sub = null;
      if (TWO_LINES.has(col.key)) {
        main = el('span', { class: 'main' });
        sub = el('span', { class: 'sub' });
        td.append(main, sub);
      }
      cells[col.key] = { td, main, sub };
      tr.append(td);
    }
    const row = { tr, cells, client, filled: false };
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
      if (sub) setText(sub, shown.sub || '');
      if (shown.title) setAttr(td, 'title', shown.title);
    }
    setAttr(row.tr, 'data-health', client.health ? (client.health === 'amber' ? 'amber' : 'green') : 'unknown');
  }
}

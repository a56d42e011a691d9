/**
 * The recently closed connections, newest first. Entries never change once
 * closed, so rows are made once and kept by identity.
 */
import { el, setText } from './dom.js';
import { formatClock, formatDateTime, formatDuration } from './format.js';

const COLUMNS = [
  { label: 'Closed at' }, { label: 'User' }, { label: 'Address' }, { label: 'Lived', num: true },
  { label: 'Closed by' }, { label: 'Reason' }, { label: 'Code', num: true },
];

/** A readable form of the server's close reasons ("heartbeat_timeout" -> "heartbeat timeout"). */
function reasonText(reason) {
  return String(reason || '—').replaceAll('_', ' ');
}

export class ClosedTable {
  /** @param {HTMLTableElement} table  @param {{count: Element, empty: Element}} parts */
  constructor(table, { count, empty }) {
    this.table = table;
    this.count = count;
    this.empty = empty;
    this.rows = new Map(); // entry object -> tr
    table.append(el('thead', {}, el('tr', {}, ...COLUMNS.map((c) => el('th', { scope: 'col', class: c.num ? 'num' : null }, c.label)))));
    this.body = el('tbody');
    table.append(this.body);
  }

  update(entries) {
    const keep = new Set(entries);
    for (const [entry, tr] of this.rows) {
      if (!keep.has(entry)) {
        tr.remove();
        this.rows.delete(entry);
      }
    }
    entries.forEach((entry, index) => {
      let tr = this.rows.get(entry);
      if (!tr) {
        tr = this._row(entry);
        this.rows.set(entry, tr);
      }
      if (this.body.children[index] !== tr) this.body.insertBefore(tr, this.body.children[index] || null);
    });
    setText(this.count, String(entries.length));
    this.empty.hidden = entries.length > 0;
  }

  _row(e) {
    const by = e.closed_by === 'server' ? 'server' : 'client';
    return el('tr', {
      'data-testid': 'closed-row', 'data-conn-id': e.id, 'data-user': e.user, 'data-name': e.name || e.user,
    },
      el('td', { 'data-col': 'closed_at', title: formatDateTime(e.closed_at) }, formatClock(e.closed_at)),
      el('td', { 'data-col': 'user', title: e.name && e.name !== e.user ? e.user : null }, e.name || e.user),
      el('td', { 'data-col': 'remote' }, e.remote || '—'),
      el('td', { 'data-col': 'lived', class: 'num', title: `connected ${formatDateTime(e.connected_at)}` },
        formatDuration(e.lived)),
      el('td', { 'data-col': 'closed_by' }, el('span', { class: `tag ${by}` }, by)),
      el('td', { 'data-col': 'reason' }, reasonText(e.reason)),
      el('td', { 'data-col': 'code', class: 'num' }, e.code === null || e.code === undefined ? '—' : String(e.code)));
  }
}

/**
 * The recently closed connections, newest first. Entries never change once
 * closed, so rows are made once and kept by identity.
 */
import { el, setText } from './dom.js';
import { formatClock, formatDateTime, formatDuration } from './format.js';

const COLUMNS = [
  { key: 'closed_at', label: 'Closed at' }, { key: 'user', label: 'User' }, { key: 'remote', label: 'Address' },
  { key: 'lived', label: 'Lived', num: true }, { key: 'closed_by', label: 'Closed by' },
  { key: 'reason', label: 'Reason' }, { key: 'code', label: 'Code', num: true },
];
const LABELS = Object.fromEntries(COLUMNS.map((c) => [c.key, c.label]));

/**
 * A readable form of why a connection closed: the server's close reason
 * ("heartbeat_timeout" -> "heartbeat timeout"), and what the operator said
 * when one closed it ("kicked: Spamming the room").
 */
export function closedReason(entry) {
  const reason = String(entry.reason || '—').replaceAll('_', ' ');
  return entry.operator_reason ? `${reason}: ${entry.operator_reason}` : reason;
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
    const cell = (col, attrs, ...content) => el('td', { 'data-col': col, 'data-label': LABELS[col], ...attrs }, ...content);
    return el('tr', {
      'data-testid': 'closed-row', 'data-conn-id': e.id, 'data-user': e.user, 'data-name': e.name || e.user,
    },
      cell('closed_at', { title: formatDateTime(e.closed_at) }, formatClock(e.closed_at)),
      cell('user', { title: e.name && e.name !== e.user ? e.user : null }, e.name || e.user),
      cell('remote', {}, e.remote || '—'),
      cell('lived', { class: 'num', title: `connected ${formatDateTime(e.connected_at)}` }, formatDuration(e.lived)),
      cell('closed_by', {}, el('span', { class: `tag ${by}` }, by)),
      cell('reason', { title: e.operator_reason || null }, closedReason(e)),
      cell('code', { class: 'num' }, e.code === null || e.code === undefined ? '—' : String(e.code)));
  }
}

/**
 * The audit log: every operator action, newest first, with who, when, what, to
 * what and why. Pages come from the API; this node's new entries come live over
 * the push channel.
 */
import { el, setText, tableHead } from './dom.js';
import { formatClock, formatDateTime } from './format.js';

/** How each action the server records reads. */
export const ACTION_LABELS = Object.freeze({
  disconnect: 'Disconnect',
  disconnect_user: 'Disconnect user',
  ban: 'Ban',
  unban: 'Lift ban',
  mute: 'Mute',
  unmute: 'Unmute',
  delete_message: 'Delete message',
});

/** An action's label; an action this page does not know reads as the server names it. */
export function actionLabel(action) {
  return ACTION_LABELS[action] || String(action).replaceAll('_', ' ');
}

const COLUMNS = ['When', 'Operator', 'Action', 'Target', 'Reason', 'Detail'];

export class AuditLog {
  /** @param {HTMLTableElement} table @param {{count: Element, empty: Element}} parts */
  constructor(table, { count, empty }) {
    this.table = table;
    this.count = count;
    this.empty = empty;
    this.body = el('tbody');
    table.append(tableHead(COLUMNS), this.body);
    this.entries = [];
  }

  update(entries) {
    this.entries = entries;
    this.body.replaceChildren(...entries.map((e) => el('tr', { 'data-testid': 'audit-row', 'data-action': e.action },
      el('td', { 'data-label': 'When', title: formatDateTime(e.ts) }, formatClock(e.ts)),
      el('td', { 'data-label': 'Operator' }, e.operator),
      el('td', { 'data-label': 'Action' }, actionLabel(e.action)),
      el('td', { 'data-label': 'Target', title: e.target }, e.target),
      el('td', { 'data-label': 'Reason', title: e.reason || null }, e.reason || '—'),
      el('td', { 'data-label': 'Detail', class: 'detail', title: e.detail || null }, e.detail || '—'))));
    setText(this.count, String(entries.length));
    this.empty.hidden = entries.length > 0;
  }
}

/**
 * A room's recent messages as an operator sees them (private rooms too), newest
 * first, each with a Delete action; older pages on demand.
 */
import { el, setText, tableHead } from './dom.js';
import { formatClock, formatDateTime } from './format.js';

/** How a message reads in the list: its text, or what became of it. */
export function messageText(m) {
  return m.deleted ? 'message deleted' : m.text;
}

/** "deleted", "edited" or "" for a message in its latest version. */
export function messageStatus(m) {
  if (m.deleted) return 'deleted';
  return m.edited ? 'edited' : '';
}

const COLUMNS = ['Time', 'From', 'Message', 'Status'];

export class RoomMessages {
  /** @param {HTMLTableElement} table @param {{onDelete: (message) => void, empty: Element}} hooks */
  constructor(table, { onDelete, empty }) {
    this.table = table;
    this.onDelete = onDelete;
    this.empty = empty;
    this.body = el('tbody');
    table.append(tableHead(COLUMNS, { actions: true }), this.body);
    this.messages = [];
  }

  update(messages, emptyText) {
    this.messages = messages;
    this.body.replaceChildren(...messages.map((m) => this._row(m)));
    this.empty.hidden = messages.length > 0;
    setText(this.empty, emptyText);
  }

  _row(m) {
    const status = messageStatus(m);
    const remove = el('button', {
      type: 'button', class: 'button small danger-ghost', 'data-testid': 'delete-message', disabled: m.deleted,
    }, 'Delete');
    remove.addEventListener('click', () => this.onDelete(m));
    return el('tr', { 'data-testid': 'message-row', 'data-id': m.id, 'data-status': status || 'shown' },
      el('td', { 'data-label': 'Time', title: formatDateTime(m.ts) }, formatClock(m.ts)),
      el('td', { 'data-label': 'From', title: m.name !== m.from ? m.from : null }, m.name || m.from),
      el('td', { 'data-label': 'Message', class: m.deleted ? 'message gone' : 'message' }, messageText(m)),
      el('td', { 'data-label': 'Status' }, status || '—'),
      el('td', { class: 'actions' }, remove));
  }
}

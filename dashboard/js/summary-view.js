/**
 * The small tables an operator reads in an incident, from the server's
 * summary (GET /admin/api/summary, and every tick): the users with the most
 * connections and where they are, the rooms with the most members, the
 * terminations by reason and the reconnects by cause over the last minutes,
 * the connections by node. A name in the first column filters the clients
 * table to it. `summaryTables` is pure (unit-tested); `SummaryTables` draws,
 * and only when what it shows changed.
 */
import { el, setText, tableHead } from './dom.js';
import { formatCount } from './format.js';

const readable = (text) => String(text).replaceAll('_', ' ');

/** What each table shows: rows of {key, label, filter: [name, value] | null, cells: [text, ...]}. */
export function summaryTables(summary) {
  const s = summary || {};
  const counted = (counts, filterName) => Object.entries(counts || {})
    .map(([kind, n]) => ({ key: kind, label: readable(kind), filter: filterName ? [filterName, kind] : null, cells: [formatCount(n)] }));
  return {
    users: (s.top_users || []).map((u) => ({
      key: u.user,
      label: u.name || u.user,
      filter: ['user', u.user],
      cells: [formatCount(u.connections),
        Object.entries(u.nodes || {}).map(([node, n]) => (node ? `${node} ${formatCount(n)}` : formatCount(n))).join(' · ')],
    })),
    rooms: (s.rooms || []).map((r) => ({
      key: r.room, label: r.room, filter: ['room', r.room], cells: [formatCount(r.members), formatCount(r.connections)],
    })),
    terminations: counted(s.terminations, null),
    reconnects: counted(s.reconnects, 'cause'),
    nodes: (s.nodes || []).filter((n) => n.node).map((n) => ({
      key: n.node, label: n.node, filter: ['node', n.node], cells: [formatCount(n.connections), formatCount(n.users)],
    })),
  };
}

/** The tables: each name, its caption's columns, and what it says when empty. */
export const TABLES = Object.freeze([
  { name: 'users', columns: ['User', 'Connections', 'Where'], empty: 'No one is connected.' },
  { name: 'rooms', columns: ['Room', 'Members', 'Connections'], empty: 'No room has members.' },
  { name: 'terminations', columns: ['Reason', 'Closed'], empty: 'The server closed none.' },
  { name: 'reconnects', columns: ['Cause', 'Reconnects'], empty: 'No client reconnected.' },
  { name: 'nodes', columns: ['Node', 'Connections', 'Users'], empty: '' },
]);

export class SummaryTables {
  /**
   * @param {Object<string, HTMLTableElement>} tables by name (TABLES)
   * @param {{onFilter: (name, value) => void, empties: Object<string, Element>, nodesCard: Element}} hooks
   */
  constructor(tables, { onFilter, empties, nodesCard }) {
    this.tables = tables;
    this.onFilter = onFilter;
    this.empties = empties;
    this.nodesCard = nodesCard;
    this.bodies = {};
    this.shown = {};
    for (const t of TABLES) {
      const body = el('tbody');
      tables[t.name].append(tableHead(t.columns), body);
      this.bodies[t.name] = body;
    }
  }

  /** Draws the summary; a table whose rows did not change is left alone. */
  update(summary, { clustered }) {
    const data = summaryTables(summary);
    for (const t of TABLES) {
      const rows = data[t.name];
      const text = JSON.stringify(rows);
      if (this.shown[t.name] === text) continue;
      this.shown[t.name] = text;
      this.bodies[t.name].replaceChildren(...rows.map((row) => this._row(t.name, row)));
      const empty = this.empties[t.name];
      if (empty) {
        empty.hidden = rows.length > 0;
        setText(empty, t.empty);
      }
    }
    this.nodesCard.hidden = !clustered;
    this.tables.users.classList.toggle('no-node', !clustered); // "Where" says nothing on a server alone
  }

  _row(table, row) {
    let first = row.label;
    if (row.filter) {
      const [name, value] = row.filter;
      first = el('button', { type: 'button', class: 'link', 'data-testid': `summary-${table}-filter`, title: `Show only these clients` },
        row.label);
      first.addEventListener('click', () => this.onFilter(name, value));
    }
    return el('tr', { 'data-testid': `summary-${table}-row`, 'data-key': row.key },
      el('td', {}, first), ...row.cells.map((text, i) => el('td', { class: i === 0 ? 'num' : null }, text)));
  }
}

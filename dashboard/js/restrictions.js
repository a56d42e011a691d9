/**
 * Bans and mutes, the restrictions an operator puts on a user: the durations
 * an operator picks from, how one in force reads, and the lists of those in
 * force with a Lift action.
 */
import { el, setText, tableHead } from './dom.js';
import { formatDateTime, formatDuration } from './format.js';

/** The durations offered for a ban or a mute; `seconds: null` is until lifted. */
export const DURATIONS = [
  { key: '1h', label: '1 hour', seconds: 3600 },
  { key: '1d', label: '1 day', seconds: 86400 },
  { key: '7d', label: '7 days', seconds: 7 * 86400 },
  { key: '30d', label: '30 days', seconds: 30 * 86400 },
  { key: 'forever', label: 'Until lifted', seconds: null },
];

export const DEFAULT_DURATION = '1d';

/** The seconds of a duration key (null: until lifted); the default for an unknown key. */
export function durationSeconds(key) {
  const found = DURATIONS.find((d) => d.key === key)
    || DURATIONS.find((d) => d.key === DEFAULT_DURATION);
  return found.seconds;
}

/** How long a ban or a mute still holds, as text (`now` in Unix seconds). */
export function describeUntil(item, now) {
  if (item.until === null || item.until === undefined) return 'until lifted';
  const left = Math.max(0, item.until - now);
  return `${formatDuration(left)} left`;
}

const byText = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

/** The bans or mutes still in force at `now`, newest first (then by user and room). */
export function inForce(items, now) {
  return (items || [])
    .filter((b) => b.until === null || b.until === undefined || b.until > now)
    .sort((a, b) => b.at - a.at || byText(a.user, b.user) || byText(a.room || '', b.room || ''));
}

/** The columns both lists end with. */
const COMMON = [
  { label: 'Reason', cell: (item) => ({ text: item.reason, title: item.reason }) },
  { label: 'Ends', cell: (item, now) => ({ text: describeUntil(item, now), title: item.until ? formatDateTime(item.until) : '' }) },
  { label: 'By', cell: (item) => ({ text: item.by || '—' }) },
  { label: 'Since', cell: (item) => ({ text: formatDateTime(item.at) }) },
];

/** What the ban list shows (the rows are `ban-row`, the buttons `lift-ban`). */
export const BANS = {
  row: 'ban-row',
  lift: 'lift-ban',
  liftLabel: 'Lift',
  columns: [{ label: 'User', cell: (ban) => ({ text: ban.user }) }, ...COMMON],
  attrs: (ban) => ({ 'data-user': ban.user }),
};

/** What the mute list shows (the rows are `mute-row`, the buttons `lift-mute`). */
export const MUTES = {
  row: 'mute-row',
  lift: 'lift-mute',
  liftLabel: 'Unmute',
  columns: [
    { label: 'Room', cell: (mute) => ({ text: mute.room }) },
    { label: 'User', cell: (mute) => ({ text: mute.user }) },
    ...COMMON,
  ],
  attrs: (mute) => ({ 'data-user': mute.user, 'data-room': mute.room }),
};

/** A table of the bans or the mutes in force (`kind`: BANS or MUTES), each with a Lift button. */
export class InForceList {
  /** @param {HTMLTableElement} table @param {object} kind @param {{onLift: (item) => void, count: Element, empty: Element}} hooks */
  constructor(table, kind, { onLift, count, empty }) {
    this.table = table;
    this.kind = kind;
    this.onLift = onLift;
    this.count = count;
    this.empty = empty;
    this.body = el('tbody');
    table.append(tableHead(kind.columns.map((c) => c.label), { actions: true }), this.body);
    this.items = [];
  }

  update(items) {
    const now = Date.now() / 1000;
    this.items = inForce(items, now);
    this.body.replaceChildren(...this.items.map((item) => {
      const lift = el('button', { type: 'button', class: 'button small ghost', 'data-testid': this.kind.lift },
        this.kind.liftLabel);
      lift.addEventListener('click', () => this.onLift(item));
      const cells = this.kind.columns.map((c) => {
        const shown = c.cell(item, now);
        return el('td', { 'data-label': c.label, title: shown.title || null }, shown.text);
      });
      return el('tr', { 'data-testid': this.kind.row, ...this.kind.attrs(item) },
        ...cells, el('td', { class: 'actions' }, lift));
    }));
    setText(this.count, String(this.items.length));
    this.empty.hidden = this.items.length > 0;
  }
}

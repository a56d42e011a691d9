/**
 * Bans: the durations an operator picks from, how a ban in force reads, and the
 * small list of bans with a Lift action.
 */
import { el, setText } from './dom.js';
import { formatDateTime, formatDuration } from './format.js';

/** The durations offered for a ban; `seconds: null` is until lifted. */
export const BAN_DURATIONS = [
  { key: '1h', label: '1 hour', seconds: 3600 },
  { key: '1d', label: '1 day', seconds: 86400 },
  { key: '7d', label: '7 days', seconds: 7 * 86400 },
  { key: '30d', label: '30 days', seconds: 30 * 86400 },
  { key: 'forever', label: 'Until lifted', seconds: null },
];

export const DEFAULT_DURATION = '1d';

/** The seconds of a duration key (null: until lifted); the default for an unknown key. */
export function durationSeconds(key) {
  const found = BAN_DURATIONS.find((d) => d.key === key)
    || BAN_DURATIONS.find((d) => d.key === DEFAULT_DURATION);
  return found.seconds;
}

/** How long a ban still holds, as text (`now` in Unix seconds). */
export function describeUntil(ban, now) {
  if (ban.until === null || ban.until === undefined) return 'until lifted';
  const left = Math.max(0, ban.until - now);
  return `${formatDuration(left)} left`;
}

/** The bans still in force at `now`, newest first. */
export function bansInForce(bans, now) {
  return (bans || [])
    .filter((b) => b.until === null || b.until === undefined || b.until > now)
    .sort((a, b) => b.at - a.at || (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
}

export class BansList {
  /** @param {HTMLTableElement} table @param {{onLift: (ban) => void, count: Element, empty: Element}} hooks */
  constructor(table, { onLift, count, empty }) {
    this.table = table;
    this.onLift = onLift;
    this.count = count;
    this.empty = empty;
    this.body = el('tbody');
    const head = el('tr', {},
      el('th', { scope: 'col' }, 'User'), el('th', { scope: 'col' }, 'Reason'),
      el('th', { scope: 'col' }, 'Ends'), el('th', { scope: 'col' }, 'By'),
      el('th', { scope: 'col' }, 'Since'),
      el('th', { scope: 'col', class: 'actions' }, el('span', { class: 'visually-hidden' }, 'Actions')));
    table.append(el('thead', {}, head), this.body);
    this.bans = [];
  }

  update(bans) {
    const now = Date.now() / 1000;
    this.bans = bansInForce(bans, now);
    this.body.replaceChildren(...this.bans.map((ban) => {
      const lift = el('button', { type: 'button', class: 'button small ghost', 'data-testid': 'lift-ban' }, 'Lift');
      lift.addEventListener('click', () => this.onLift(ban));
      return el('tr', { 'data-testid': 'ban-row', 'data-user': ban.user },
        el('td', {}, ban.user), el('td', { title: ban.reason }, ban.reason),
        el('td', { title: ban.until ? formatDateTime(ban.until) : '' }, describeUntil(ban, now)),
        el('td', {}, ban.by || '—'), el('td', {}, formatDateTime(ban.at)),
        el('td', { class: 'actions' }, lift));
    }));
    setText(this.count, String(this.bans.length));
    this.empty.hidden = this.bans.length > 0;
  }
}

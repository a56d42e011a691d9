/**
 * How the connection state is shown to the user: the status indicator and
 * the reconnect countdown. Pure functions, so they are testable without a DOM.
 */

/** The indicator states (the `data-state` of the status element). */
export const Status = Object.freeze({
  CONNECTING: 'connecting',
  CONNECTED: 'connected',
  RECONNECTING: 'reconnecting',
  OFFLINE: 'offline',
  STOPPED: 'stopped',
});

export const STATUS_LABELS = Object.freeze({
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
  stopped: 'Disconnected',
});

/**
 * The indicator state for a ChatConnection state.
 * @param {string} state connecting | open | waiting | stopped
 * @param {{attempt?: number, online?: boolean}} [context] online: navigator.onLine
 */
export function statusOf(state, { attempt = 0, online = true } = {}) {
  switch (state) {
    case 'open':
      return Status.CONNECTED;
    case 'connecting':
      if (!online) return Status.OFFLINE;
      return attempt > 0 ? Status.RECONNECTING : Status.CONNECTING;
    case 'waiting':
      return online ? Status.RECONNECTING : Status.OFFLINE;
    case 'stopped':
      return Status.STOPPED;
    default:
      return Status.STOPPED;
  }
}

/** Whole seconds left until `reconnectAt` (ms), never negative. */
export function secondsUntil(reconnectAt, now) {
  return Math.max(0, Math.ceil((reconnectAt - now) / 1000));
}

/** "Reconnecting in 3 s, attempt 2 of 10" (or "now" once the time is up). */
export function countdownText({ reconnectAt, attempt, attempts }, now) {
  const seconds = secondsUntil(reconnectAt, now);
  const when = seconds > 0 ? `in ${seconds} s` : 'now';
  return `Reconnecting ${when}, attempt ${attempt} of ${attempts}`;
}

/**
 * The admin HTTP API. The session lives in an HttpOnly cookie the page cannot
 * read; what the page keeps is the session's CSRF token, sent as
 * X-CSRF-Token with every POST and DELETE (a JSON body with Content-Type:
 * application/json on every POST, and on a DELETE that carries a reason).
 */

import { ApiError } from '../../static/shared/api-error.js';

export { ApiError };

/** The admin API of one page; holds the CSRF token of the current session. */
export class AdminApi {
  /** @param {{fetch?: typeof fetch, base?: string}} [options] */
  constructor({ fetch: fetchImpl = globalThis.fetch.bind(globalThis), base = '/admin/api' } = {}) {
    this._fetch = fetchImpl;
    this._base = base;
    this.csrf = null;
    this.operator = null; // who the audit log says acts: the session's operator
  }

  async _request(method, path, body) {
    const init = { method, credentials: 'same-origin', headers: {} };
    if (method !== 'GET') {
      if (this.csrf) init.headers['X-CSRF-Token'] = this.csrf;
    }
    if (method === 'POST' || (method === 'DELETE' && body !== undefined)) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body === undefined ? {} : body);
    }
    const res = await this._fetch(`${this._base}${path}`, init);
    let data = null;
    if (res.status !== 204) {
      try {
        data = await res.json();
      } catch {
        data = null;
      }
    }
    if (!res.ok) throw new ApiError(res.status, data && data.error, data && data.message);
    return data;
  }

  /** Whether a session is open: true (and the CSRF token kept) or false on 401. */
  async session() {
    try {
      const data = await this._request('GET', '/session');
      this.csrf = data.csrf;
      this.operator = data.operator || null;
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        this.csrf = null;
        this.operator = null;
        return false;
      }
      throw err;
    }
  }

  /** Logs in with the admin token; throws ApiError 401 when it is wrong. */
  async login(token) {
    const data = await this._request('POST', '/login', { token });
    this.csrf = data.csrf;
    this.operator = data.operator || null;
  }

  async logout() {
    try {
      await this._request('POST', '/logout');
    } finally {
      this.csrf = null;
      this.operator = null;
    }
  }

  /**
   * A page of the cluster's clients: `query` takes the filters, sort, order,
   * limit and cursor the server takes (text values): {clients, matched, totals, next, prev, ...}.
   */
  clients(query = {}) {
    return this._request('GET', `/clients${queryString(query)}`);
  }

  /** The small tables: {top_users, rooms, nodes, terminations, reconnects, window}. */
  summary({ top = null } = {}) {
    return this._request('GET', `/summary${queryString({ top })}`);
  }

  /** Closes one connection with 4003 and `reason`: {disconnected: [id]}. */
  disconnectClient(connId, reason) {
    return this._request('POST', `/clients/${encodeURIComponent(connId)}/disconnect`, { reason });
  }

  /** Closes every connection of `user` with 4003 and `reason`: {disconnected: [ids]}. */
  disconnectUser(user, reason) {
    return this._request('POST', `/users/${encodeURIComponent(user)}/disconnect`, { reason });
  }

  /**
   * Bans `user` (a user id or a guest name held now) with `reason`, for `seconds`
   * (null: until lifted): the ban, with the connections closed on this node.
   */
  banUser(user, reason, seconds) {
    const body = { reason };
    if (seconds !== null && seconds !== undefined) body.seconds = seconds;
    return this._request('POST', `/users/${encodeURIComponent(user)}/ban`, body);
  }

  /** Lifts the ban of `user`: {lifted: id}; ApiError 404 when none is in force. */
  liftBan(user) {
    return this._request('DELETE', `/users/${encodeURIComponent(user)}/ban`);
  }

  /** The bans in force: [{user, reason, until, by, at}]. */
  bans() {
    return this._request('GET', '/bans');
  }

  /**
   * Mutes `user` in `room` with `reason` (shown to the user when it speaks there),
   * for `seconds` (null: until lifted): the mute.
   */
  muteUser(room, user, reason, seconds) {
    const body = { reason };
    if (seconds !== null && seconds !== undefined) body.seconds = seconds;
    return this._request('POST', `/rooms/${encodeURIComponent(room)}/mutes/${encodeURIComponent(user)}`, body);
  }

  /** Lifts the mute of `user` in `room`: {lifted: {room, user}}; ApiError 404 when none is in force. */
  liftMute(room, user) {
    return this._request('DELETE', `/rooms/${encodeURIComponent(room)}/mutes/${encodeURIComponent(user)}`);
  }

  /** The mutes in force: [{room, user, reason, until, by, at}]. */
  mutes() {
    return this._request('GET', '/mutes');
  }

  /** A page of `room`'s messages, newest last: {room, messages, more}; `before`: an id. */
  roomMessages(room, { before = null, limit = null } = {}) {
    return this._request('GET', `/rooms/${encodeURIComponent(room)}/messages${queryString({ before, limit })}`);
  }

  /** Deletes any message, `reason` kept in the audit log: {deleted, id, room, from}. */
  deleteMessage(id, reason) {
    return this._request('DELETE', `/messages/${encodeURIComponent(id)}`, { reason });
  }

  /** A page of the audit log, newest first: {entries, more}; `before`: an entry id. */
  audit({ before = null, limit = null } = {}) {
    return this._request('GET', `/audit${queryString({ before, limit })}`);
  }
}

/** "?a=1&b=2" of the arguments that are set; "" when none is. */
function queryString(args) {
  const set = Object.entries(args).filter(([, v]) => v !== null && v !== undefined);
  return set.length ? `?${new URLSearchParams(set.map(([k, v]) => [k, String(v)]))}` : '';
}

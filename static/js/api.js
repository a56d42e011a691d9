/**
 * The server's HTTP API (login, session, client config). The session itself
 * lives in an HttpOnly cookie; the token returned here is for the WebSocket
 * URL.
 */

import { ApiError } from '../shared/api-error.js';

export { ApiError };

async function request(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let data = null;
  if (res.status !== 204) {
    try {
      data = await res.json();
    } catch {
      data = null;
    }
  }
  return { status: res.status, ok: res.ok, data };
}

/** A refused login: an ApiError that keeps the server's whole answer (a ban's reason and end). */
export class LoginRefused extends ApiError {
  constructor(status, data) {
    super(status, data && data.error, data && data.message);
    this.name = 'LoginRefused';
    this.reason = (data && typeof data.reason === 'string') ? data.reason : '';
    this.until = (data && Number.isFinite(data.until)) ? data.until : null;
  }
}

/**
 * Logs in as guest `name`: {token, user}; throws LoginRefused (400
 * bad_name, 409 name_taken, 403 banned, ...).
 */
export async function login(name) {
  const { status, ok, data } = await request('POST', '/api/login', { name });
  if (!ok) throw new LoginRefused(status, data);
  return data;
}

/** What the login form says when a login failed with `err`. */
export function loginErrorText(err) {
  if (!(err instanceof ApiError)) return 'Cannot reach the server. Please try again.';
  if (err.code === 'banned') {
    const until = err.until === null
      ? ''
      : ` until ${new Date(err.until * 1000).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' })}`;
    return `You are banned from this chat${until}. Reason: ${err.reason || 'none given'}`;
  }
  return err.message || 'That name cannot be used.';
}

/** The current session: {user, token}, or null when not logged in (401). */
export async function me() {
  const { status, ok, data } = await request('GET', '/api/me');
  if (status === 401) return null;
  if (!ok) throw new ApiError(status, data && data.error, data && data.message);
  return data;
}

export async function logout() {
  await request('POST', '/api/logout');
}

/** The reconnect policy and outbox limit; null when unavailable. */
export async function clientConfig() {
  try {
    const { ok, data } = await request('GET', '/api/client-config');
    return ok ? data : null;
  } catch {
    return null;
  }
}

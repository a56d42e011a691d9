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

/** Logs in as guest `name`: {token, user}; throws ApiError (400 bad_name). */
export async function login(name) {
  const { status, ok, data } = await request('POST', '/api/login', { name });
  if (!ok) throw new ApiError(status, data && data.error, data && data.message);
  return data;
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

// What both examples do before their framework starts: a token, the
// server's client settings, and the connection. This is guest mode (a login
// with a random nickname); in jwt mode your application hands the page its
// token, and passes `getToken` so that the connection refreshes it.
import { ChatConnection } from 'imserver-client';

async function json(response) {
  if (!response.ok) throw new Error(`${response.url}: HTTP ${response.status}`);
  return response.json();
}

/** The session cookie's token, or a guest login's. */
async function guestToken() {
  const me = await fetch('/api/me');
  if (me.ok) return (await me.json()).token;
  const name = `guest-${Math.random().toString(36).slice(2, 8)}`;
  const login = await fetch('/api/login', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name }),
  });
  return (await json(login)).token;
}

/** A connection that joins `room` and connects. */
export async function openConnection(room) {
  const [token, config] = await Promise.all([guestToken(), fetch('/api/client-config').then(json)]);
  const connection = new ChatConnection({ ...config, token });
  connection.join(room);
  connection.connect();
  return connection;
}

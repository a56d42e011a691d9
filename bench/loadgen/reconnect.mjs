/**
 * Reconnects after a server restart: many clients connected; the driver
 * restarts the server; every client comes back on its own.
 *
 * settings: {base, ws, clients, per_user, prefix, concurrency, user_tokens,
 *            backoff: {base, factor, cap} (seconds, as the browser client's),
 *            storm_retry_ms, connect_timeout_ms}
 *           `ws` may be a list of servers (nodes of one cluster): every client
 *           starts on the first, and after a lost connection or a failed
 *           attempt tries the next one (round robin). `user_tokens` replaces
 *           the guest logins (servers in `jwt` mode).
 * events:   ready {connected}; armed; result {...} once every client is back
 *           (`back_on`: how many came back to each server)
 * commands: {cmd: "arm", mode, timeout_s}   how clients react to the next close:
 *             retry_after  the browser client: reconnect after the bye's retry_after,
 *                          then capped exponential backoff with full jitter;
 *             backoff      ignore retry_after: the backoff from the first attempt;
 *             storm        ignore retry_after: reconnect at once, retry every
 *                          storm_retry_ms while refused (a naive client);
 *           {cmd: "exit"}
 */

import { connect, connectionTokens, emit, log, nextCommand, now, pool, settings } from './lib.mjs';

const cfg = settings();
const N = cfg.clients;
const policy = { base: 1, factor: 2, cap: 30, ...(cfg.backoff ?? {}) };
const stormRetryMs = cfg.storm_retry_ms ?? 100;
const connectOptions = { handshakeTimeout: cfg.connect_timeout_ms ?? 10000 };
const tokens = await connectionTokens(cfg, cfg.prefix ?? 'rc', N, cfg.per_user ?? 20);
const urls = Array.isArray(cfg.ws) ? cfg.ws : [cfg.ws];

function backoffDelayMs(attempt) {
  return Math.random() * Math.min(policy.cap, policy.base * policy.factor ** (attempt - 1)) * 1000;
}

const clients = Array.from({ length: N }, (_, i) => ({ i, ws: null, attempt: 0, bye: null, at: 0 }));
let mode = null;
let record = null;

function attach(client, ws) {
  client.ws = ws;
  client.bye = null;
  ws.on('message', (data) => {
    if (data.length > 12 && data.toString('latin1', 0, 13) === '{"type":"bye"') {
      const frame = JSON.parse(data);
      if (Number.isFinite(frame.retry_after) && frame.retry_after >= 0) client.bye = frame.retry_after;
    }
  });
  ws.on('close', () => lost(client));
}

function lost(client) {
  client.ws = null;
  if (record === null) return;
  record.closes.push(now());
  if (client.bye !== null) record.byes++;
  let delay;
  client.attempt = 1;
  if (mode === 'storm') delay = 0;
  else if (mode === 'retry_after' && client.bye !== null) delay = client.bye * 1000;
  else delay = backoffDelayMs(1);
  client.cause = client.bye !== null ? 'shutdown' : 'close';
  client.at = (client.at + 1) % urls.length;
  setTimeout(() => reconnect(client), delay);
}

async function reconnect(client) {
  const r = record;
  if (r === null) return; // the run timed out: this client stays away
  const started = now();
  r.attempts.push(started);
  let ws;
  try {
    ws = await connect(`${urls[client.at]}/ws?token=${tokens[client.i]}&reconnect=${client.attempt}&cause=${client.cause}`,
      connectOptions);
  } catch (error) {
    r.failures.push(now());
    const kind = error.message.replace(/\d+\.\d+\.\d+\.\d+:\d+/, 'HOST');
    r.errors[kind] = (r.errors[kind] ?? 0) + 1;
    client.attempt++;
    client.at = (client.at + 1) % urls.length;
    setTimeout(() => reconnect(client), mode === 'storm' ? stormRetryMs : backoffDelayMs(client.attempt));
    return;
  }
  const t = now();
  r.welcomes.push(t);
  r.connect_ms.push(t - started);
  r.max_attempt = Math.max(r.max_attempt, client.attempt);
  r.back_on[client.at]++;
  client.attempt = 0;
  attach(client, ws);
  if (r.welcomes.length === N) r.finish();
}

const opened = await pool(N, cfg.concurrency ?? 64, (i) => connect(`${urls[0]}/ws?token=${tokens[i]}`));
if (opened.failures.length) {
  log(`reconnect: ${opened.failures.length} failed to open: ${opened.failures.slice(0, 5).join('; ')}`);
  process.exit(1);
}
opened.results.forEach((ws, i) => attach(clients[i], ws));
emit('ready', { connected: N });

for (;;) {
  const command = await nextCommand();
  if (command.cmd !== 'arm') break;
  mode = command.mode;
  await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(), command.timeout_s * 1000);
    record = {
      closes: [], attempts: [], failures: [], welcomes: [], connect_ms: [], errors: {}, byes: 0,
      max_attempt: 0, back_on: urls.map(() => 0), finish: () => { clearTimeout(timer); resolve(); },
    };
    emit('armed');
  });
  const r = record;
  record = null;
  emit('result', {
    mode, clients: N, closes: r.closes, attempts: r.attempts.length, failures: r.failures.length,
    welcomes: r.welcomes, connect_ms: r.connect_ms, errors: r.errors, byes: r.byes,
    max_attempt: r.max_attempt, back: r.welcomes.length, back_on: r.back_on,
  });
}
for (const c of clients) c.ws?.terminate();
process.exit(0);

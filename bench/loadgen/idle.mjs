/**
 * Idle connections: open many, then hold them with the app-level heartbeat,
 * and on demand replace some each second (a reconnect storm in miniature).
 *
 * settings: {base, ws, connections, per_user, prefix, concurrency, user_tokens?, lean?, first?}
 *           ws: one server's ws:// URL, or a list: connection i goes to ws[i % length].
 *           user_tokens: tokens the driver signed (servers in jwt mode), else guest logins.
 *           lean: the lean client (lean.mjs: less CPU per socket) instead of `ws`.
 *           first: the number of this process's first connection (several processes
 *           share one set of tokens and servers: a process holds up to ~19,000 sockets).
 * events:   logged_in {users}; opened {connected, failed, failures, seconds};
 *           held {pings, pongs, server_pings, closed, seconds};
 *           churned {closed, opened, failed, seconds}
 * commands: {cmd: "open"}                      open every connection (after the driver's baseline)
 *           {cmd: "hold", seconds, interval_s}  each client sends the text `ping` every
 *                                               interval_s (from a random phase), counts `pong`s
 *           {cmd: "churn", per_second, seconds} each second, close `per_second` connections at
 *                                               random and open as many again as reconnects
 *                                               (reconnect=1, cause=network)
 *           {cmd: "exit"}
 * Both clients answer the server's ping frames by themselves, as a browser does.
 */

import {
  connect, connectionTokens, connectLean, emit, log, nextCommand, now, pool, settings, sleep,
} from './lib.mjs';

const cfg = settings();
const N = cfg.connections;
const first = cfg.first ?? 0;
const servers = Array.isArray(cfg.ws) ? cfg.ws : [cfg.ws];
const all = await connectionTokens(cfg, cfg.prefix ?? 'idle', first + N, cfg.per_user ?? 20);
const tokens = all.slice(first);
emit('logged_in', { users: new Set(tokens).size });

let sockets = [];
let pongs = 0;
let serverPings = 0;
let closed = 0;

function url(i, query = '') {
  return `${servers[(first + i) % servers.length]}/ws?token=${tokens[i]}${query}`;
}

async function open(i, query = '') {
  const ws = cfg.lean ? await connectLean(url(i, query)) : await connect(url(i, query));
  ws.index = i;
  ws.live = true;
  ws.on('message', (data) => { if (data.length === 4 && data.toString() === 'pong') pongs++; });
  if (!cfg.lean) ws.on('ping', () => { serverPings++; });
  ws.on('close', () => {
    if (ws.live) closed++;
    ws.live = false;
  });
  return ws;
}

for (;;) {
  const command = await nextCommand();
  if (command.cmd === 'open') {
    const started = now();
    const opened = await pool(N, cfg.concurrency ?? 64, (i) => open(i));
    sockets = opened.results.filter(Boolean);
    if (opened.failures.length) log(`idle: ${opened.failures.length} failed: ${opened.failures.slice(0, 5).join('; ')}`);
    emit('opened', {
      connected: sockets.length, failed: opened.failures.length,
      failures: opened.failures.slice(0, 5), seconds: (now() - started) / 1000,
    });
  } else if (command.cmd === 'hold') {
    const intervalMs = command.interval_s * 1000;
    const started = now();
    let pings = 0;
    pongs = 0;
    serverPings = 0;
    const closedBefore = closed;
    const timers = [];
    for (const ws of sockets) {
      const ping = () => {
        if (ws.live) {
          ws.send('ping');
          pings++;
        }
      };
      // Each client on its own phase, as browsers that connected at different times.
      timers.push(setTimeout(() => {
        ping();
        timers.push(setInterval(ping, intervalMs));
      }, Math.random() * intervalMs));
    }
    await sleep(command.seconds * 1000);
    for (const timer of timers) clearTimeout(timer);
    emit('held', {
      pings, pongs, server_pings: serverPings, closed: closed - closedBefore,
      seconds: (now() - started) / 1000,
    });
  } else if (command.cmd === 'churn') {
    const started = now();
    let gone = 0;
    let reopened = 0;
    let failed = 0;
    const pending = [];
    for (let second = 0; second < command.seconds; second++) {
      const tick = now();
      for (let k = 0; k < command.per_second && sockets.length; k++) {
        const at = Math.floor(Math.random() * sockets.length);
        const ws = sockets[at];
        sockets[at] = sockets[sockets.length - 1];
        sockets.pop();
        ws.live = false; // closed by us: not counted as closed by the server
        ws.terminate();
        gone++;
        pending.push(open(ws.index, '&reconnect=1&cause=network').then((again) => {
          sockets.push(again);
          reopened++;
        }, () => { failed++; }));
      }
      await sleep(Math.max(0, 1000 - (now() - tick)));
    }
    await Promise.all(pending);
    emit('churned', { closed: gone, opened: reopened, failed, seconds: (now() - started) / 1000 });
  } else {
    break;
  }
}
for (const ws of sockets) {
  ws.live = false;
  ws.terminate();
}
process.exit(0);

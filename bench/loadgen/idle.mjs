/**
 * Idle connections: open many, then hold them with the app-level heartbeat.
 *
 * settings: {base, ws, connections, per_user, prefix, concurrency}
 * events:   logged_in {users}; opened {connected, failed, failures, seconds};
 *           held {pings, pongs, server_pings, closed, seconds}
 * commands: {cmd: "open"}                      open every connection (after the driver's baseline)
 *           {cmd: "hold", seconds, interval_s}  each client sends the text `ping` every
 *                                               interval_s (from a random phase), counts `pong`s
 *           {cmd: "exit"}
 * ws answers the server's ping frames by itself, as a browser does.
 */

import { connect, emit, log, nextCommand, now, pool, settings, tokensFor } from './lib.mjs';

const cfg = settings();
const N = cfg.connections;
const tokens = await tokensFor(cfg.base, cfg.prefix ?? 'idle', N, cfg.per_user ?? 20);
emit('logged_in', { users: new Set(tokens).size });

let sockets = [];
let pongs = 0;
let serverPings = 0;
let closed = 0;

for (;;) {
  const command = await nextCommand();
  if (command.cmd === 'open') {
    const started = now();
    const opened = await pool(N, cfg.concurrency ?? 64, (i) => connect(`${cfg.ws}/ws?token=${tokens[i]}`));
    sockets = opened.results.filter(Boolean);
    for (const ws of sockets) {
      ws.on('message', (data) => { if (data.length === 4 && data.toString() === 'pong') pongs++; });
      ws.on('ping', () => { serverPings++; });
      ws.on('close', () => { closed++; });
    }
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
        if (ws.readyState === ws.OPEN) {
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
    await new Promise((resolve) => setTimeout(resolve, command.seconds * 1000));
    for (const timer of timers) clearTimeout(timer);
    emit('held', {
      pings, pongs, server_pings: serverPings, closed: closed - closedBefore,
      seconds: (now() - started) / 1000,
    });
  } else {
    break;
  }
}
for (const ws of sockets) ws.terminate();
process.exit(0);

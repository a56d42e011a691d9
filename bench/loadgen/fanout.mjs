/**
 * Fan-out load: `receivers` connections in one room and one sender.
 *
 * settings: {base, ws, receivers, per_user, room, prefix, concurrency, lean,
 *            user_tokens, sender_token, by_node}
 *           `ws` may be a list of servers (nodes of one cluster): the receivers
 *           are spread over them in contiguous blocks, the sender is on the
 *           first, and the result has figures per node (`by_node`, also given
 *           for one server when by_node is true). `user_tokens` and
 *           `sender_token` replace the guest logins (servers in `jwt` mode).
 * events:   ready {receivers, setup_s}; done, then result {...}, after each run
 * commands: {cmd: "burst", messages, window, timeout_s}
 *             send `messages` as fast as possible, keeping at most `window`
 *             of them not yet delivered to every receiver (0: all at once);
 *           {cmd: "rate", rate, seconds, timeout_s}
 *             send `rate` messages a second for `seconds`;
 *           {cmd: "exit"}
 *
 * Each message's text carries the run, its number and its send time, so a
 * receiver knows its latency (receive time - send time, one clock) and whether
 * it came in order. Every delivery is counted, per message and per receiver.
 */

import {
  connect, connectionTokens, connectLean, emit, join, log, nextCommand, now, pool, settings, sleep, summarize,
  tokensFor,
} from './lib.mjs';

const cfg = settings();
const N = cfg.receivers;
const room = cfg.room ?? 'bench';
const started = now();
const urls = Array.isArray(cfg.ws) ? cfg.ws : [cfg.ws];
const nodeOf = Int32Array.from({ length: N }, (_, i) => Math.floor((i * urls.length) / N));
const perNode = urls.map((_, g) => nodeOf.filter((n) => n === g).length);
const byNode = cfg.by_node === true || urls.length > 1;

const tokens = await connectionTokens(cfg, `${cfg.prefix ?? 'rx'}`, N, cfg.per_user ?? 20);
const senderToken = cfg.sender_token ?? (await tokensFor(cfg.base, `${cfg.prefix ?? 'rx'}sender`, 1, 1))[0];
const opened = await pool(N, cfg.concurrency ?? 50, async (i) => {
  const url = `${urls[nodeOf[i]]}/ws?token=${tokens[i]}`;
  const ws = await (cfg.lean === false ? connect : connectLean)(url);
  await join(ws, room);
  return ws;
});
if (opened.failures.length) {
  log(`fanout: ${opened.failures.length} receivers failed: ${opened.failures.slice(0, 5).join('; ')}`);
  process.exit(1);
}
const receivers = opened.results;
const sender = await connect(`${urls[0]}/ws?token=${senderToken}`);
await join(sender, room);

// The state of the run in progress; receivers write into it.
let run = null;
let runNumber = 0;
let closed = 0;

const MESSAGE_PREFIX = Buffer.from('{"type":"message",');
const TEXT_KEY = Buffer.from('"text":"');

/**
 * Run, number and send time (x1000) from a bench message frame, read straight
 * from the bytes: JSON.parse of every frame would make the load generator the
 * bottleneck. Returns false for any other frame; anything unexpected falls
 * back to JSON.parse.
 */
const parsed = new Float64Array(3);
function parseBenchMessage(data) {
  let at = -1;
  if (data.length > MESSAGE_PREFIX.length && data.compare(MESSAGE_PREFIX, 0, MESSAGE_PREFIX.length,
    0, MESSAGE_PREFIX.length) === 0) {
    at = data.indexOf(TEXT_KEY, MESSAGE_PREFIX.length);
  } else if (data[0] === 0x7b /* { */ && data.indexOf('"type":"message"') < 0) {
    return false;
  }
  if (at < 0) {
    const frame = JSON.parse(data);
    if (frame.type !== 'message') return false;
    const parts = frame.text.split(' ');
    parsed[0] = Number(parts[0]);
    parsed[1] = Number(parts[1]);
    parsed[2] = Math.round(Number(parts[2]) * 1000);
    return true;
  }
  let field = 0;
  let value = 0;
  for (let i = at + TEXT_KEY.length; i < data.length; i++) {
    const c = data[i];
    if (c >= 0x30 && c <= 0x39) value = value * 10 + (c - 0x30);
    else if (c === 0x20 || c === 0x22) {
      parsed[field++] = value;
      value = 0;
      if (c === 0x22 || field === 3) break;
    } else if (c !== 0x2e /* . */) return false;
  }
  return field === 3;
}

function onData(i, data) {
  const t = now();
  const r = run;
  if (r === null || !parseBenchMessage(data) || parsed[0] !== r.id) return;
  const seq = parsed[1];
  const latency = t - parsed[2] / 1000;
  r.latency[r.count++] = latency;
  r.last = t;
  if (r.firstAt[seq] === 0) r.firstAt[seq] = t;
  if (r.nodes !== null) {
    const node = r.nodes[nodeOf[i]];
    node.latency[node.count++] = latency;
    if (node.firstAt[seq] === 0) node.firstAt[seq] = t;
  }
  r.lastAt[seq] = t;
  if (seq <= r.lastSeq[i]) r.disorder++;
  r.lastSeq[i] = seq;
  if (++r.delivered[seq] === N) {
    r.completed++;
    r.onComplete();
  }
}

receivers.forEach((ws, i) => {
  ws.on('message', (data) => onData(i, data));
  ws.on('close', () => { closed++; });
});
sender.on('close', () => { closed++; });
await sleep(500); // let presence frames from the joins drain
emit('ready', { receivers: N, setup_s: (now() - started) / 1000 });

function newRun(messages) {
  runNumber++;
  return {
    id: runNumber, messages, count: 0, completed: 0, disorder: 0, first: 0, last: 0,
    latency: new Float64Array(messages * N), delivered: new Uint32Array(messages),
    sentAt: new Float64Array(messages), firstAt: new Float64Array(messages), lastAt: new Float64Array(messages),
    lastSeq: new Int32Array(N).fill(-1), onComplete: () => {}, sent: 0, sendLagMax: 0,
    closedBefore: closed,
    nodes: byNode ? perNode.map((count) => ({
      count: 0, latency: new Float64Array(messages * count), firstAt: new Float64Array(messages),
    })) : null,
  };
}

function send(r) {
  const t = now();
  if (r.sent === 0) r.first = t;
  r.sentAt[r.sent] = t;
  sender.send(JSON.stringify({
    type: 'say', room, text: `${r.id} ${r.sent} ${t.toFixed(3)}`, cid: `b${process.pid}-${r.id}-${r.sent}`,
  }));
  r.sent++;
  return t;
}

function finish(r, timeoutMs) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    const check = r.onComplete;
    r.onComplete = () => {
      check();
      if (r.completed === r.messages) {
        clearTimeout(timer);
        resolve();
      }
    };
    if (r.completed === r.messages) {
      clearTimeout(timer);
      resolve();
    }
  });
}

function result(r) {
  const closedNow = closed;
  run = null;
  emit('done'); // the measured window ends here, before the sorting below
  return {
    run: r.id, messages: r.messages, sent: r.sent, deliveries: r.count,
    expected: r.messages * N, complete: r.completed, disorder: r.disorder,
    elapsed_s: (r.last - r.first) / 1000, send_lag_max_ms: r.sendLagMax,
    closed: closedNow - r.closedBefore, latency_ms: summarize(r.latency, r.count),
    // Per message: send to its first delivery (the server's store and loop, and
    // the load generator's reading), and first to last delivery (the fan-out).
    first_ms: summarize(r.firstAt.map((t, i) => (t ? t - r.sentAt[i] : 0)), r.sent),
    spread_ms: summarize(r.lastAt.map((t, i) => (t ? t - r.firstAt[i] : 0)), r.sent),
    by_node: r.nodes === null ? null : r.nodes.map((node, g) => nodeResult(r, node, g)),
  };
}

/** One node's part of a run: its receivers' latency, and per message the time to its first
 * delivery there and how long after the first delivery on the first node (the sender's) that came. */
function nodeResult(r, node, g) {
  const home = r.nodes[0].firstAt;
  return {
    receivers: perNode[g], deliveries: node.count, expected: r.messages * perNode[g],
    latency_ms: summarize(node.latency, node.count),
    first_ms: summarize(node.firstAt.map((t, i) => (t ? t - r.sentAt[i] : 0)), r.sent),
    after_home_ms: summarize(node.firstAt.map((t, i) => (t && home[i] ? t - home[i] : 0)), r.sent),
  };
}

async function burst({ messages, window, timeout_s: timeoutS = 120 }) {
  const r = newRun(messages);
  const limit = window > 0 ? window : messages;
  r.onComplete = () => {
    while (r.sent < messages && r.sent - r.completed < limit) send(r);
  };
  run = r;
  const done = finish(r, timeoutS * 1000);
  r.onComplete();
  await done;
  return result(r);
}

async function rate({ rate: perSecond, seconds, timeout_s: timeoutS = 10 }) {
  const messages = Math.round(perSecond * seconds);
  const r = newRun(messages);
  run = r;
  const start = now() + 20;
  const period = 1000 / perSecond;
  await new Promise((resolve) => {
    const tick = () => {
      while (r.sent < messages && now() >= start + r.sent * period) {
        r.sendLagMax = Math.max(r.sendLagMax, now() - (start + r.sent * period));
        send(r);
      }
      if (r.sent >= messages) resolve();
      else setTimeout(tick, Math.max(0, start + r.sent * period - now()));
    };
    setTimeout(tick, Math.max(0, start - now()));
  });
  await finish(r, timeoutS * 1000);
  return result(r);
}

for (;;) {
  const command = await nextCommand();
  if (command.cmd === 'burst') emit('result', await burst(command));
  else if (command.cmd === 'rate') emit('result', await rate(command));
  else break;
}
for (const ws of [...receivers, sender]) ws.terminate();
process.exit(0);

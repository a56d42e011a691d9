/**
 * Shared parts of the load-generator scripts (driven by `python -m bench`).
 *
 * Every script takes one JSON argument (its settings), talks JSON lines:
 * events out on stdout, commands in on stdin, and logs to stderr only.
 * Times are epoch milliseconds with a fractional part, so that the Python
 * side and every process on this machine share one clock.
 */

import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';

import WebSocket from 'ws';

import { openLean } from './lean.mjs';

/** Epoch milliseconds, sub-millisecond resolution. */
export function now() {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The settings passed as the first argument (a JSON object), or in the file it
 * names after an `@` (large settings: an argument holds at most 128 KB).
 */
export function settings() {
  const arg = process.argv[2] ?? '{}';
  return JSON.parse(arg.startsWith('@') ? readFileSync(arg.slice(1), 'utf8') : arg);
}

/** One event to the Python driver. */
export function emit(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

export function log(...args) {
  process.stderr.write(`${args.join(' ')}\n`);
}

/** Commands from the Python driver: `for await (const cmd of commands())`. */
export async function* commands() {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim()) yield JSON.parse(line);
  }
}

/** The next command, whatever it is (the driver speaks in turn). */
let iterator = null;
export async function nextCommand() {
  iterator ??= commands();
  const { value, done } = await iterator.next();
  return done ? { cmd: 'exit' } : value;
}

/** Guest tokens for `names`, `concurrency` logins at a time. */
export async function loginAll(base, names, concurrency = 16) {
  const tokens = new Array(names.length);
  let next = 0;
  async function worker() {
    while (next < names.length) {
      const i = next++;
      const response = await fetch(`${base}/api/login`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: names[i] }),
      });
      if (response.status !== 200) {
        throw new Error(`login ${names[i]}: HTTP ${response.status} ${await response.text()}`);
      }
      tokens[i] = (await response.json()).token;
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, names.length) }, worker));
  return tokens;
}

/** Tokens for `count` connections, `perUser` connections to each user: tokens[i] is connection i's. */
export async function tokensFor(base, prefix, count, perUser) {
  const users = Math.ceil(count / perUser);
  const names = Array.from({ length: users }, (_, u) => `${prefix}${u}`);
  const tokens = await loginAll(base, names);
  return Array.from({ length: count }, (_, i) => tokens[Math.floor(i / perUser)]);
}

/**
 * Tokens for `count` connections as tokensFor gives them, or, when the driver
 * passed `user_tokens` (tokens it signed itself, for servers in `jwt` mode),
 * user_tokens[floor(i / perUser)] for connection i.
 */
export async function connectionTokens(cfg, prefix, count, perUser) {
  if (!cfg.user_tokens) return tokensFor(cfg.base, prefix, count, perUser);
  const users = Math.ceil(count / perUser);
  if (cfg.user_tokens.length < users) throw new Error(`need ${users} user_tokens, got ${cfg.user_tokens.length}`);
  return Array.from({ length: count }, (_, i) => cfg.user_tokens[Math.floor(i / perUser)]);
}

export const SOCKET_OPTIONS = {
  perMessageDeflate: false,
  skipUTF8Validation: true,
  handshakeTimeout: 30000,
  maxPayload: 64 * 1024 * 1024,
};

/**
 * Open a chat connection; resolves with the socket once the welcome frame
 * has come, rejects when the upgrade fails or the socket closes first.
 */
export function connect(url, options = {}) {
  return welcomed(new WebSocket(url, { ...SOCKET_OPTIONS, ...options }));
}

/** The same with the lean client (lean.mjs): for receivers, where the load generator's CPU counts. */
export async function connectLean(url) {
  return welcomed(await openLean(url, { timeoutMs: SOCKET_OPTIONS.handshakeTimeout }));
}

function welcomed(ws) {
  return new Promise((resolve, reject) => {
    const fail = (why) => {
      ws.removeAllListeners('message');
      ws.terminate();
      reject(why instanceof Error ? why : new Error(String(why)));
    };
    ws.once('error', fail);
    ws.once('unexpected-response', (_req, res) => fail(new Error(`HTTP ${res.statusCode}`)));
    ws.once('close', (code) => fail(new Error(`closed with ${code} before the welcome`)));
    ws.once('message', (data) => {
      ws.removeAllListeners('error');
      ws.removeAllListeners('close');
      ws.removeAllListeners('unexpected-response');
      ws.on('error', () => {});
      const frame = JSON.parse(data);
      if (frame.type === 'welcome') resolve(ws);
      else fail(new Error(`expected welcome, got ${frame.type}`));
    });
  });
}

/** Join `room`; resolves when the `joined` frame has come (other frames are dropped meanwhile). */
export function join(ws, room) {
  return new Promise((resolve) => {
    const onMessage = (data) => {
      const frame = JSON.parse(data);
      if (frame.type === 'joined' && frame.room === room) {
        ws.off('message', onMessage);
        resolve(frame);
      }
    };
    ws.on('message', onMessage);
    ws.send(JSON.stringify({ type: 'join', room }));
  });
}

/**
 * Run `open(i)` for i in [0, count), at most `concurrency` at a time;
 * resolves with the results (undefined where it failed) and the failures.
 */
export async function pool(count, concurrency, open) {
  const results = new Array(count);
  const failures = [];
  let next = 0;
  async function worker() {
    while (next < count) {
      const i = next++;
      try {
        results[i] = await open(i);
      } catch (error) {
        failures.push(`${i}: ${error.message}`);
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { results, failures };
}

/** Percentiles (ms) of the first `count` values of a Float64Array; sorts it in place. */
export function summarize(values, count) {
  const sorted = values.subarray(0, count).sort();
  const at = (q) => (count ? sorted[Math.min(count - 1, Math.floor((q / 100) * count))] : null);
  let sum = 0;
  for (let i = 0; i < count; i++) sum += sorted[i];
  return {
    p50: at(50), p90: at(90), p99: at(99), max: count ? sorted[count - 1] : null,
    mean: count ? sum / count : null,
  };
}

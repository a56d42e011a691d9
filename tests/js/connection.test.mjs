import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ChatConnection, State } from '../../static/js/connection.js';
import { OutboxFullError } from '../../static/js/outbox.js';
import { CLIENT_CONFIG, fakeConnection } from './connection-fixture.mjs';
import { SERVER_TIME, createFakeStorage } from './fakes.mjs';

const SECOND = 1000;

/** A connection wired to fakes (see connection-fixture.mjs), with a record of its events. */
function setup(options = {}) {
  const ctx = fakeConnection(options);
  const { conn } = ctx;
  const events = [];
  for (const type of [
    'statechange', 'welcome', 'ack', 'failed', 'error', 'stopped', 'message', 'outbox', 'refused', 'refreshed',
    'refreshfailed',
  ]) {
    conn.addEventListener(type, (e) => events.push({ type, detail: e.detail }));
  }
  const of = (type) => events.filter((e) => e.type === type).map((e) => e.detail);
  return { ...ctx, events, of };
}

/** Connects and opens with a welcome; returns the socket. */
function connectOpen(ctx, heartbeat) {
  ctx.conn.connect();
  const ws = ctx.WS.last;
  ws.welcome(heartbeat);
  return ws;
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

test('the reconnect settings and the outbox limit are required: no copy of the server defaults', () => {
  const base = { url: 'ws://chat.test/ws', storage: null, window: null, document: null };
  assert.throws(() => new ChatConnection(base), /reconnect is required/);
  assert.throws(() => new ChatConnection({ ...base, reconnect: CLIENT_CONFIG.reconnect }), /outbox_limit/);
  const conn = new ChatConnection({ ...base, ...CLIENT_CONFIG });
  assert.equal(conn.options.reconnect.cap, 30);
});

test('options are merged and bad values are named', () => {
  const { conn } = setup({ reconnect: { ...CLIENT_CONFIG.reconnect, cap: 5 } });
  assert.equal(conn.options.reconnect.cap, 5);
  assert.equal(conn.options.reconnect.base, 1.0);
  assert.throws(() => setup({ reconnect: { ...CLIENT_CONFIG.reconnect, base: -1 } }), /reconnect\.base.*-1/);
  assert.throws(() => setup({ outbox_limit: 'many' }), /outbox_limit/);
});

test('the first connect carries the token and no reconnect or cause', () => {
  const ctx = setup();
  assert.equal(ctx.conn.state, State.STOPPED);
  ctx.conn.connect();
  assert.equal(ctx.WS.instances.length, 1);
  const q = ctx.WS.last.query;
  assert.equal(q.get('token'), 'tok');
  assert.equal(q.has('reconnect'), false);
  assert.equal(q.has('cause'), false);
  assert.equal(ctx.conn.state, State.CONNECTING);
});

test('opens on welcome, then joins its rooms and asks for missed direct messages', () => {
  const ctx = setup();
  ctx.conn.join('general');
  assert.equal(ctx.WS.instances.length, 0, 'join() alone does not connect');
  const ws = connectOpen(ctx);
  assert.equal(ctx.conn.state, State.OPEN);
  assert.deepEqual(ws.frames, [{ type: 'join', room: 'general' }, { type: 'dm_sync' }]);
  assert.equal(ctx.of('welcome').length, 1);
  assert.equal(ctx.conn.user.id, 'alice');
});

test('state changes are announced in order through statechange', () => {
  const ctx = setup();
  const ws = connectOpen(ctx);
  ws.serverClose(1006);
  ctx.time.advance(SECOND);
  ctx.WS.last.welcome();
  assert.deepEqual(ctx.of('statechange').map((d) => d.state),
    ['connecting', 'open', 'waiting', 'connecting', 'open']);
  const waiting = ctx.of('statechange')[2];
  assert.equal(waiting.attempt, 1);
  assert.equal(waiting.attempts, 10);
  assert.equal(waiting.cause, 'close');
  assert.equal(waiting.delay, 500);
  assert.equal(waiting.previous, 'open');
  assert.equal(typeof waiting.reconnectAt, 'number');
});

test('reconnects after a close with reconnect=1&cause=close, after the jittered delay', () => {
  const ctx = setup();
  connectOpen(ctx).serverClose(1006);
  assert.equal(ctx.conn.state, State.WAITING);
  ctx.time.advance(499);
  assert.equal(ctx.WS.instances.length, 1);
  ctx.time.advance(1);
  assert.equal(ctx.WS.instances.length, 2);
  assert.equal(ctx.WS.last.query.get('reconnect'), '1');
  assert.equal(ctx.WS.last.query.get('cause'), 'close');
  assert.equal(ctx.WS.last.query.get('token'), 'tok');
});

test('a socket error gives cause=error, and the count grows over failed attempts', () => {
  const ctx = setup();
  connectOpen(ctx).fail();
  ctx.time.advance(SECOND);
  assert.equal(ctx.WS.last.query.get('cause'), 'error');
  ctx.WS.last.fail();
  ctx.time.advance(SECOND);
  assert.equal(ctx.WS.last.query.get('reconnect'), '2');
});

test('follows the backoff, then gives up after the last attempt', () => {
  const ctx = setup();
  connectOpen(ctx).serverClose(1006);
  const delays = [];
  for (let i = 0; i < 10; i += 1) {
    const waiting = ctx.of('statechange').at(-1);
    assert.equal(waiting.state, 'waiting');
    delays.push(waiting.delay);
    ctx.time.advance(waiting.delay);
    assert.equal(ctx.WS.last.query.get('reconnect'), String(i + 1));
    ctx.WS.last.fail();
  }
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000, 15000, 15000]);
  assert.equal(ctx.conn.state, State.STOPPED);
  assert.deepEqual(ctx.of('stopped'), [{ reason: 'gave_up', message: '' }]);
  ctx.time.advance(3600 * SECOND);
  assert.equal(ctx.WS.instances.length, 11);
  // Retry (the button) starts a fresh series.
  ctx.conn.retryNow();
  assert.equal(ctx.WS.instances.length, 12);
  assert.equal(ctx.WS.last.query.get('reconnect'), '1');
});

test('jitter is applied to every delay, also at the cap', () => {
  const values = [0.9, 0.1, 0.9, 0.1];
  let i = 0;
  const ctx = setup({ random: () => values[i++ % values.length], reconnect: { ...CLIENT_CONFIG.reconnect, cap: 1 },
  });
  connectOpen(ctx).serverClose(1006);
  const delays = [];
  for (let k = 0; k < 4; k += 1) {
    const { delay } = ctx.of('statechange').at(-1);
    delays.push(delay);
    ctx.time.advance(delay);
    ctx.WS.last.fail();
  }
  assert.deepEqual(delays, [900, 100, 900, 100]);
});

test('at most one attempt in flight: online, retryNow and connect while connecting open nothing', () => {
  const ctx = setup();
  connectOpen(ctx).serverClose(1006);
  ctx.browser.goOnline();
  assert.equal(ctx.WS.instances.length, 2, 'online while waiting reconnects at once');
  assert.equal(ctx.WS.last.query.get('cause'), 'network');
  ctx.browser.goOnline();
  ctx.conn.retryNow();
  ctx.conn.connect();
  ctx.browser.show();
  assert.equal(ctx.WS.instances.length, 2);
  ctx.time.advance(5 * SECOND); // the old reconnect timer must be gone too
  assert.equal(ctx.WS.instances.length, 2);
  assert.equal(ctx.WS.live.length, 1);
});

test('each attempt has a connect timeout', () => {
  const ctx = setup();
  ctx.conn.connect();
  const first = ctx.WS.last;
  ctx.time.advance(10 * SECOND - 1);
  assert.equal(ctx.conn.state, State.CONNECTING);
  ctx.time.advance(1);
  assert.equal(first.closeCalls.length, 1, 'the hung attempt is closed');
  assert.equal(ctx.conn.state, State.WAITING);
  ctx.time.advance(SECOND);
  const second = ctx.WS.last;
  assert.notEqual(second, first);
  second.serverOpen(); // opened, but no welcome
  ctx.time.advance(10 * SECOND);
  assert.equal(second.closeCalls.length, 1, 'no welcome in time counts too');
  assert.equal(ctx.WS.live.length, 0);
});

test('4001 stops without reconnecting (the page shows the login)', () => {
  const ctx = setup();
  connectOpen(ctx).serverClose(4001, 'token expired');
  assert.equal(ctx.conn.state, State.STOPPED);
  assert.equal(ctx.of('stopped')[0].reason, 'auth');
  ctx.browser.goOnline();
  ctx.browser.show();
  ctx.time.advance(3600 * SECOND);
  assert.equal(ctx.WS.instances.length, 1);
});

test('4001 right after the upgrade stops as well', () => {
  const ctx = setup();
  ctx.conn.connect();
  ctx.WS.last.serverOpen();
  ctx.WS.last.serverClose(4001);
  ctx.time.advance(3600 * SECOND);
  assert.equal(ctx.WS.instances.length, 1);
  assert.equal(ctx.conn.stopReason, 'auth');
});

test("4003 stops with the operator's reason; connect() reconnects by hand", () => {
  const ctx = setup();
  connectOpen(ctx).serverClose(4003, 'be nice');
  assert.deepEqual(ctx.of('stopped'), [{ reason: 'kicked', message: 'be nice' }]);
  assert.equal(ctx.of('statechange').at(-1).message, 'be nice');
  ctx.browser.goOnline();
  ctx.time.advance(3600 * SECOND);
  assert.equal(ctx.WS.instances.length, 1);
  ctx.conn.connect();
  assert.equal(ctx.WS.instances.length, 2);
  assert.equal(ctx.WS.last.query.get('reconnect'), '1');
});

test('a normal close from the server is not followed by a reconnect', () => {
  const ctx = setup();
  connectOpen(ctx).serverClose(1000);
  ctx.time.advance(3600 * SECOND);
  assert.equal(ctx.WS.instances.length, 1);
  assert.equal(ctx.conn.stopReason, 'server_closed');
});

test('4008 and 1009 reconnect with backoff', () => {
  for (const code of [4008, 1009, 1011]) {
    const ctx = setup();
    connectOpen(ctx).serverClose(code);
    assert.equal(ctx.conn.state, State.WAITING, `code ${code}`);
  }
});

test("after bye the server's retry_after replaces the backoff, cause=shutdown", () => {
  const ctx = setup({ random: () => 0.99 });
  const ws = connectOpen(ctx);
  ws.serverSend({ type: 'bye', reason: 'shutdown', retry_after: 3.2 });
  ws.serverClose(1001);
  const waiting = ctx.of('statechange').at(-1);
  assert.equal(waiting.delay, 3200);
  assert.equal(waiting.cause, 'shutdown');
  ctx.time.advance(3199);
  assert.equal(ctx.WS.instances.length, 1);
  ctx.time.advance(1);
  assert.equal(ctx.WS.instances.length, 2);
  assert.equal(ctx.WS.last.query.get('cause'), 'shutdown');
  // A later plain failure uses the backoff again.
  ctx.WS.last.fail();
  assert.equal(ctx.of('statechange').at(-1).delay, 0.99 * 2000);
});

test('1001 without bye uses the backoff', () => {
  const ctx = setup();
  connectOpen(ctx).serverClose(1001);
  assert.equal(ctx.of('statechange').at(-1).delay, 500);
  assert.equal(ctx.of('statechange').at(-1).cause, 'close');
});

test('the attempt count resets only after the connection stayed up stable_after', () => {
  const ctx = setup();
  connectOpen(ctx);
  ctx.time.advance(5 * SECOND);
  ctx.WS.last.serverClose(1006); // attempt 1
  ctx.time.advance(SECOND);
  ctx.WS.last.welcome();
  ctx.time.advance(5 * SECOND); // up for 5 s only
  ctx.WS.last.serverClose(1006);
  assert.equal(ctx.conn.attempt, 2, 'a short-lived connection does not reset the count');
  assert.equal(ctx.of('statechange').at(-1).delay, 1000);
  ctx.time.advance(SECOND);
  ctx.WS.last.welcome();
  ctx.time.advance(10 * SECOND); // stable
  ctx.WS.last.serverClose(1006);
  assert.equal(ctx.conn.attempt, 1);
  assert.equal(ctx.WS.last.query.get('reconnect'), '2');
  ctx.time.advance(SECOND);
  assert.equal(ctx.WS.last.query.get('reconnect'), '1');
});

test('stability is judged by the wall clock when timers were throttled', () => {
  const ctx = setup();
  connectOpen(ctx).serverClose(1006);
  ctx.time.advance(SECOND);
  ctx.WS.last.fail();
  ctx.time.advance(2 * SECOND);
  ctx.WS.last.welcome();
  assert.equal(ctx.conn.attempt, 2);
  ctx.time.skew(15 * SECOND); // no timer ran in the meantime
  ctx.WS.last.serverClose(1006);
  assert.equal(ctx.conn.attempt, 1);
});

test('the watchdog closes with 4000 and reconnects with cause=watchdog when pongs stop', () => {
  const ctx = setup();
  const ws = connectOpen(ctx, { interval: 10, timeout: 20 });
  ctx.time.advance(10 * SECOND);
  assert.equal(ws.pings, 1);
  ws.serverSend('pong');
  ctx.time.advance(10 * SECOND);
  assert.equal(ws.pings, 2);
  ctx.time.advance(20 * SECOND - 1);
  assert.equal(ctx.conn.state, State.OPEN);
  ctx.time.advance(1);
  assert.deepEqual(ws.closeCalls, [{ code: 4000, reason: undefined }]);
  assert.equal(ctx.conn.state, State.WAITING, 'does not wait for the close handshake');
  ctx.time.advance(SECOND);
  assert.equal(ctx.WS.last.query.get('cause'), 'watchdog');
});

test('the watchdog stays quiet while pongs come back', () => {
  const ctx = setup();
  const ws = connectOpen(ctx, { interval: 10, timeout: 20 });
  for (let i = 0; i < 60; i += 1) {
    ctx.time.advance(10 * SECOND);
    ws.serverSend('pong');
  }
  assert.equal(ws.closeCalls.length, 0);
  assert.equal(ws.pings, 60);
  assert.equal(ctx.conn.state, State.OPEN);
});

test('a watchdog timer that runs 60 s late in a hidden tab probes instead of closing', () => {
  const ctx = setup();
  const ws = connectOpen(ctx, { interval: 10, timeout: 20 });
  ctx.time.advance(10 * SECOND); // ping out
  ctx.browser.hide();
  ctx.time.skew(80 * SECOND);
  ctx.time.runDue();
  assert.equal(ws.closeCalls.length, 0);
  assert.equal(ws.pings, 2, 'a fresh probe ping');
  ws.serverSend('pong');
  ctx.browser.show(); // probes once more
  ws.serverSend('pong');
  ctx.time.advance(SECOND);
  assert.equal(ctx.conn.state, State.OPEN);
});

test('becoming visible probes an open connection and reconnects a waiting one at once', () => {
  const ctx = setup();
  const ws = connectOpen(ctx, { interval: 10, timeout: 20 });
  ctx.browser.hide();
  ctx.browser.show();
  assert.equal(ws.pings, 1, 'probe ping sent at once');
  ctx.time.advance(20 * SECOND);
  assert.deepEqual(ws.closeCalls, [{ code: 4000, reason: undefined }], 'no answer to the probe');
  assert.equal(ctx.conn.state, State.WAITING);
  ctx.browser.hide();
  ctx.browser.show();
  assert.equal(ctx.WS.instances.length, 2);
  assert.equal(ctx.WS.last.query.get('cause'), 'watchdog');
});

test('going offline drops the socket and reconnects with cause=network', () => {
  const ctx = setup();
  const ws = connectOpen(ctx);
  ctx.browser.goOffline();
  assert.equal(ws.closeCalls.length, 1);
  assert.equal(ctx.conn.state, State.WAITING);
  ctx.browser.goOnline();
  assert.equal(ctx.WS.instances.length, 2);
  assert.equal(ctx.WS.last.query.get('cause'), 'network');
});

test('close() closes with 1000 and never reconnects', () => {
  const ctx = setup();
  const ws = connectOpen(ctx);
  ctx.conn.close();
  assert.equal(ws.closeCalls[0].code, 1000);
  assert.equal(ctx.conn.state, State.STOPPED);
  assert.equal(ctx.conn.stopReason, 'closed');
  ws.serverClose(1000);
  ctx.browser.goOnline();
  ctx.time.advance(3600 * SECOND);
  assert.equal(ctx.WS.instances.length, 1);
});

test('say() goes out at once when open and leaves the outbox on its ack', () => {
  const ctx = setup();
  const ws = connectOpen(ctx);
  const cid = ctx.conn.say('general', 'hello');
  assert.deepEqual(ws.frames.at(-1), { type: 'say', room: 'general', text: 'hello', cid });
  assert.equal(ctx.conn.pending().length, 1);
  ws.serverSend({ type: 'ack', cid, id: 7, ts: 1 });
  assert.equal(ctx.conn.pending().length, 0);
  assert.deepEqual(ctx.of('ack')[0], {
    ack: { type: 'ack', cid, id: 7, ts: 1 },
    sent: { type: 'say', room: 'general', text: 'hello', cid },
  });
});

test('unacknowledged messages are re-sent with their original cid after each reconnect', () => {
  const ctx = setup();
  ctx.conn.join('general');
  const first = connectOpen(ctx);
  const a = ctx.conn.say('general', 'one');
  first.serverClose(1006);
  const b = ctx.conn.dm('bob', 'two'); // while waiting: queued only
  ctx.time.advance(SECOND);
  const second = ctx.WS.last;
  assert.equal(second.sent.length, 0, 'nothing is sent before the welcome');
  second.welcome();
  assert.deepEqual(second.frames, [
    { type: 'join', room: 'general' },
    { type: 'dm_sync' },
    { type: 'say', room: 'general', text: 'one', cid: a },
    { type: 'dm', to: 'bob', text: 'two', cid: b },
  ]);
  second.serverSend({ type: 'ack', cid: a, id: 10, ts: 1 });
  second.serverClose(1006);
  ctx.time.advance(5 * SECOND);
  ctx.WS.last.welcome();
  const resent = ctx.WS.last.frames.filter((f) => f.cid);
  assert.deepEqual(resent, [{ type: 'dm', to: 'bob', text: 'two', cid: b }]);
});

test('the outbox survives a reload through storage', () => {
  const storage = createFakeStorage();
  const before = setup({ storage, storage_key: 'imserver.outbox.alice' });
  const cid = before.conn.say('general', 'typed while offline');
  const after = setup({ storage, storage_key: 'imserver.outbox.alice', createId: () => 'new' });
  assert.deepEqual(after.conn.pending().map((e) => e.frame.cid), [cid]);
  const ws = connectOpen(after);
  assert.deepEqual(ws.frames.at(-1), { type: 'say', room: 'general', text: 'typed while offline', cid });
});

test('a full outbox refuses say() with a clear error instead of dropping', () => {
  const ctx = setup({ outbox_limit: 2 });
  ctx.conn.say('general', 'a');
  ctx.conn.say('general', 'b');
  assert.throws(() => ctx.conn.say('general', 'c'), (err) => err instanceof OutboxFullError && err.code === 'outbox_full');
  assert.deepEqual(ctx.conn.pending().map((e) => e.frame.text), ['a', 'b']);
});

test('a final error removes the message from the outbox and reports the failure', () => {
  const ctx = setup();
  const ws = connectOpen(ctx);
  const cid = ctx.conn.say('general', 'x'.repeat(5000));
  ws.serverSend({ type: 'error', code: 'too_long', message: 'too long', cid });
  assert.deepEqual(ctx.of('failed'), [{
    cid, code: 'too_long', message: 'too long', sent: { type: 'say', room: 'general', text: 'x'.repeat(5000), cid },
  }]);
  assert.equal(ctx.conn.pending().length, 0);
  assert.equal(ctx.of('error').length, 1);
});

test('a message refused for a passing reason (unavailable) stays queued and is sent again later', () => {
  const ctx = setup();
  const ws = connectOpen(ctx);
  const cid = ctx.conn.say('general', 'hi');
  ws.serverSend({ type: 'error', code: 'unavailable', message: 'store down', cid });
  assert.equal(ctx.conn.pending().length, 1);
  ctx.time.advance(2 * SECOND);
  assert.equal(ws.frames.filter((f) => f.cid === cid).length, 2);
  ws.serverSend({ type: 'ack', cid, id: 3, ts: 1 });
  ctx.time.advance(10 * SECOND);
  assert.equal(ws.frames.filter((f) => f.cid === cid).length, 2);
});

test('a rate_limited message stays queued and is sent again later', () => {
  const ctx = setup();
  const ws = connectOpen(ctx);
  const cid = ctx.conn.say('general', 'hi');
  ws.serverSend({ type: 'error', code: 'rate_limited', message: 'slow down', cid });
  assert.equal(ctx.of('failed').length, 0);
  assert.equal(ctx.conn.pending().length, 1);
  ctx.time.advance(2 * SECOND);
  assert.equal(ws.frames.filter((f) => f.cid === cid).length, 2);
});

test('re-joins each room with since = the highest id received, and syncs DMs since the highest DM id', () => {
  const ctx = setup();
  ctx.conn.join('general');
  ctx.conn.join('random');
  const ws = connectOpen(ctx);
  ws.serverSend({ type: 'joined', room: 'general', members: ['alice'], messages: [{ id: 5 }, { id: 7 }], truncated: false });
  ws.serverSend({ type: 'joined', room: 'random', members: ['alice'], messages: [], truncated: false });
  ws.serverSend({ type: 'message', id: 9, room: 'general', from: 'bob', text: 'x', ts: 1 });
  ws.serverSend({ type: 'dm_sync', messages: [{ id: 3, from: 'bob', to: 'alice' }, { id: 8, from: 'alice', to: 'bob' }], truncated: false });
  ws.serverSend({ type: 'message', id: 11, from: 'bob', to: 'alice', text: 'psst', ts: 1 });
  // Neither an older history page nor my own ack moves the mark.
  ws.serverSend({ type: 'history', room: 'general', messages: [{ id: 2 }], more: false });
  ws.serverSend({ type: 'history', with: 'carol', messages: [{ id: 40 }], more: false });
  ws.serverSend({ type: 'ack', cid: 'zz', id: 50, ts: 1 });
  ws.serverClose(1006);
  ctx.time.advance(SECOND);
  ctx.WS.last.welcome();
  assert.deepEqual(ctx.WS.last.frames, [
    { type: 'join', room: 'general', since: 9 },
    { type: 'join', room: 'random' },
    { type: 'dm_sync', since: 11 },
  ]);
});

test('live messages that arrive before the recovery answer do not move since', () => {
  const ctx = setup();
  ctx.conn.join('general');
  const first = connectOpen(ctx);
  first.serverSend({ type: 'joined', room: 'general', members: [], messages: [{ id: 5 }], truncated: false });
  first.serverSend({ type: 'dm_sync', messages: [{ id: 4 }], truncated: false });
  first.serverClose(1006);
  ctx.time.advance(SECOND);
  const second = ctx.WS.last;
  second.welcome();
  // The joined/dm_sync answers are still on their way when these arrive:
  second.serverSend({ type: 'message', id: 20, room: 'general', from: 'bob', text: 'x', ts: 1 });
  second.serverSend({ type: 'message', id: 21, from: 'bob', to: 'alice', text: 'x', ts: 1 });
  second.serverClose(1006);
  ctx.time.advance(5 * SECOND);
  ctx.WS.last.welcome();
  assert.deepEqual(ctx.WS.last.frames, [{ type: 'join', room: 'general', since: 5 }, { type: 'dm_sync', since: 4 }]);
});

test('join and leave while open; a left room is not re-joined', () => {
  const ctx = setup();
  const ws = connectOpen(ctx);
  ctx.conn.join('dev');
  ctx.conn.join('dev');
  ctx.conn.leave('dev');
  assert.deepEqual(ws.frames.slice(1), [{ type: 'join', room: 'dev' }, { type: 'leave', room: 'dev' }]);
  ws.serverClose(1006);
  ctx.time.advance(SECOND);
  ctx.WS.last.welcome();
  assert.deepEqual(ctx.WS.last.frames, [{ type: 'dm_sync' }]);
});

test('a join() made in a statechange listener on open is sent once', () => {
  const ctx = setup();
  ctx.conn.addEventListener('statechange', (e) => {
    if (e.detail.state === 'open') ctx.conn.join('general');
  });
  const ws = connectOpen(ctx);
  assert.deepEqual(ws.frames.filter((f) => f.type === 'join'), [{ type: 'join', room: 'general' }]);
});

test('history is requested only while open', () => {
  const ctx = setup();
  assert.equal(ctx.conn.history({ room: 'general' }, { before: 10 }), false);
  const ws = connectOpen(ctx);
  assert.equal(ctx.conn.history({ with: 'bob' }, { before: 10, limit: 20 }), true);
  assert.deepEqual(ws.frames.at(-1), { type: 'history', with: 'bob', before: 10, limit: 20 });
});

test('every server frame is emitted as a message event; ping and pong are not', () => {
  const ctx = setup();
  const ws = connectOpen(ctx);
  ws.serverSend('pong');
  ws.serverSend({ type: 'presence', room: 'general', joined: ['carol'], left: [] });
  assert.deepEqual(ctx.of('message').map((f) => f.type), ['welcome', 'presence']);
});

test('a failed upgrade asks refreshToken: null stops with auth', async () => {
  const ctx = setup({ refreshToken: async () => null });
  ctx.conn.connect();
  ctx.WS.last.fail(); // e.g. HTTP 401 on the upgrade, which the browser hides
  await flush();
  assert.equal(ctx.conn.state, State.STOPPED);
  assert.equal(ctx.conn.stopReason, 'auth');
  ctx.time.advance(3600 * SECOND);
  assert.equal(ctx.WS.instances.length, 1);
});

test('a failed upgrade asks refreshToken: a new token is used for the next attempt', async () => {
  const ctx = setup({ refreshToken: async () => 'fresh' });
  ctx.conn.connect();
  ctx.WS.last.fail();
  await flush();
  ctx.time.advance(SECOND);
  assert.equal(ctx.WS.last.query.get('token'), 'fresh');
});

// ---- conversations ----------------------------------------------------------

/** Gives up: every attempt after the first connection fails. */
function giveUp(ctx) {
  connectOpen(ctx).serverClose(1006);
  while (ctx.conn.state !== State.STOPPED) {
    ctx.time.advance(ctx.of('statechange').at(-1).delay);
    ctx.WS.last.fail();
  }
  assert.equal(ctx.conn.stopReason, 'gave_up');
}

test('after giving up, the network coming back starts over at once', () => {
  const ctx = setup();
  giveUp(ctx);
  const sockets = ctx.WS.instances.length;
  ctx.browser.goOnline();
  assert.equal(ctx.WS.instances.length, sockets + 1);
  assert.equal(ctx.WS.last.query.get('reconnect'), '1');
  assert.equal(ctx.WS.last.query.get('cause'), 'network');
  ctx.WS.last.welcome();
  assert.equal(ctx.conn.state, State.OPEN);
});

test('after giving up, the page being shown again starts over at once', () => {
  const ctx = setup();
  giveUp(ctx);
  const sockets = ctx.WS.instances.length;
  ctx.browser.hide();
  assert.equal(ctx.WS.instances.length, sockets, 'not while hidden');
  ctx.browser.show();
  assert.equal(ctx.WS.instances.length, sockets + 1);
  assert.equal(ctx.WS.last.query.get('reconnect'), '1');
  ctx.browser.window.dispatchEvent(new Event('pageshow'));
  assert.equal(ctx.WS.instances.length, sockets + 1, 'one attempt at a time');
});

test('a stop for any other reason stays stopped when the network or the page comes back', () => {
  for (const [code, reason] of [[4003, 'kicked'], [4001, 'auth'], [1000, 'server_closed']]) {
    const ctx = setup();
    connectOpen(ctx).serverClose(code, 'bye');
    assert.equal(ctx.conn.stopReason, reason);
    ctx.browser.goOnline();
    ctx.browser.show();
    ctx.browser.window.dispatchEvent(new Event('pageshow'));
    assert.equal(ctx.WS.instances.length, 1, reason);
  }
  const closed = setup();
  connectOpen(closed);
  closed.conn.close();
  closed.browser.goOnline();
  closed.browser.show();
  assert.equal(closed.WS.instances.length, 1, 'closed by the page');
});

test('edits and deletions are queued like messages, sent again after a reconnect, until their ack', () => {
  const ctx = setup();
  const ws = connectOpen(ctx);
  const e = ctx.conn.edit('general', 5, 'hello all');
  const d = ctx.conn.deleteMessage(null, 6);
  assert.deepEqual(ws.frames.slice(-2), [
    { type: 'edit', room: 'general', target: 5, text: 'hello all', cid: e },
    { type: 'delete', target: 6, cid: d },
  ]);
  ws.serverClose(1006);
  ctx.time.advance(ctx.of('statechange').at(-1).delay);
  ctx.WS.last.welcome();
  assert.deepEqual(ctx.WS.last.frames.filter((f) => f.cid).map((f) => f.cid), [e, d]);
  ctx.WS.last.serverSend({ type: 'ack', cid: e, id: 9, ts: 1 });
  assert.deepEqual(ctx.conn.pending().map((p) => p.frame.cid), [d]);
});

test('muted, forbidden, not_found and deleted are final: reported once, never sent again', () => {
  for (const code of ['muted', 'forbidden', 'not_found', 'deleted']) {
    const ctx = setup();
    const ws = connectOpen(ctx);
    const cid = code === 'muted' ? ctx.conn.say('general', 'hi') : ctx.conn.edit('general', 5, 'x');
    ws.serverSend({ type: 'error', code, message: `because ${code}`, cid });
    assert.deepEqual(ctx.of('failed').map((f) => [f.cid, f.code, f.message]), [[cid, code, `because ${code}`]]);
    assert.equal(ctx.conn.pending().length, 0);
    ctx.time.advance(60 * SECOND);
    assert.equal(ws.frames.filter((f) => f.cid === cid).length, 1, code);
  }
});

test('read marks, typing and the room commands are sent only while open, never queued', () => {
  const ctx = setup();
  assert.equal(ctx.conn.read({ room: 'general' }, 5), false);
  assert.equal(ctx.conn.typing({ room: 'general' }, true), false);
  const ws = connectOpen(ctx);
  assert.equal(ctx.conn.read({ room: 'general' }, 5), true);
  ctx.conn.read({ with: 'g:bob' }, 7);
  ctx.conn.typing({ room: 'general' }, true);
  ctx.conn.typing({ to: 'g:bob' }, false);
  ctx.conn.listRooms();
  ctx.conn.createRoom('design', { topic: 'logo', isPrivate: true });
  ctx.conn.invite('design', 'bob');
  ctx.conn.removeMember('design', 'g:bob');
  assert.deepEqual(ws.frames.slice(-8), [
    { type: 'read', room: 'general', id: 5 },
    { type: 'read', with: 'g:bob', id: 7 },
    { type: 'typing', room: 'general', typing: true },
    { type: 'typing', to: 'g:bob', typing: false },
    { type: 'rooms' },
    { type: 'create', room: 'design', topic: 'logo', private: true },
    { type: 'invite', room: 'design', user: 'bob' },
    { type: 'remove', room: 'design', user: 'g:bob' },
  ]);
  assert.equal(ctx.conn.pending().length, 0);
});

test('a join refused as forbidden is reported as refused, and the room is not joined again', () => {
  const ctx = setup();
  ctx.conn.join('general');
  ctx.conn.join('secret');
  const ws = connectOpen(ctx);
  // The error names its room: the answers need not come in the order of the joins.
  ws.serverSend({ type: 'error', code: 'forbidden', room: 'secret', message: 'room secret is private: only its members may read it' });
  ws.serverSend({ type: 'joined', room: 'general', members: [], messages: [], truncated: false });
  assert.deepEqual(ctx.of('refused'), [{ room: 'secret', code: 'forbidden', message: 'room secret is private: only its members may read it' }]);
  assert.equal(ctx.of('message').filter((f) => f.type === 'error').length, 0, 'not also a plain error');
  assert.deepEqual(ctx.conn.rooms, ['general']);
  // A forbidden for a room with no join waiting, or with no room, is an ordinary error.
  ws.serverSend({ type: 'error', code: 'forbidden', room: 'design', message: 'only the owner of room design may do that' });
  ws.serverSend({ type: 'error', code: 'forbidden', message: 'no room named' });
  assert.equal(ctx.of('message').filter((f) => f.type === 'error').length, 2);
  ws.serverClose(1006);
  ctx.time.advance(ctx.of('statechange').at(-1).delay);
  ctx.WS.last.welcome();
  assert.deepEqual(ctx.WS.last.frames.filter((f) => f.type === 'join').map((f) => f.room), ['general']);
});

test('a join the application could not decide on (unavailable) is an error, and is sent again later', () => {
  const ctx = setup();
  ctx.conn.join('team-x');
  const ws = connectOpen(ctx);
  ws.serverSend({ type: 'error', code: 'unavailable', room: 'team-x', message: 'the application did not answer' });
  assert.equal(ctx.of('error').length, 1);
  assert.equal(ctx.of('refused').length, 0);
  assert.deepEqual(ctx.conn.rooms, ['team-x']);
  ctx.time.advance(2 * SECOND);
  assert.deepEqual(ws.frames.filter((f) => f.type === 'join').map((f) => f.room), ['team-x', 'team-x']);
  // A room left in the meantime is not joined again.
  ws.serverSend({ type: 'error', code: 'unavailable', room: 'team-x', message: 'the application did not answer' });
  ctx.conn.leave('team-x');
  ctx.time.advance(2 * SECOND);
  assert.equal(ws.frames.filter((f) => f.type === 'join').length, 2);
});

test('removed from a room: it is not joined again', () => {
  const ctx = setup();
  ctx.conn.join('design');
  const ws = connectOpen(ctx);
  ws.serverSend({ type: 'joined', room: 'design', members: [], messages: [{ id: 4 }], truncated: false });
  ws.serverSend({ type: 'left', room: 'design', reason: 'removed' });
  assert.deepEqual(ctx.conn.rooms, []);
  assert.equal(ctx.conn.highestId('design'), null);
  ctx.conn.leave('design');
  assert.equal(ws.frames.filter((f) => f.type === 'leave').length, 0, 'nothing to leave');
});

test('a room left while away is left on the server on the next connection', () => {
  const ctx = setup();
  ctx.conn.join('general');
  ctx.conn.join('dev');
  const ws = connectOpen(ctx);
  ws.serverClose(1006);
  ctx.conn.leave('dev');
  ctx.conn.join('tmp');
  ctx.conn.leave('tmp');
  ctx.conn.join('tmp');
  ctx.time.advance(ctx.of('statechange').at(-1).delay);
  ctx.WS.last.welcome();
  const sent = ctx.WS.last.frames.filter((f) => f.type === 'leave' || f.type === 'join').map((f) => `${f.type} ${f.room}`);
  assert.deepEqual(sent, ['leave dev', 'join general', 'join tmp']);
});

test('edits and deletions count as seen: a re-join asks only for what came after them', () => {
  const ctx = setup();
  ctx.conn.join('general');
  const ws = connectOpen(ctx);
  ws.serverSend({ type: 'joined', room: 'general', members: [], messages: [{ id: 4 }], events: [{ type: 'edit', id: 6, target: 4 }], truncated: false });
  ws.serverSend({ type: 'delete', id: 8, target: 4, room: 'general', from: 'g:bob', text: '' });
  ws.serverSend({ type: 'dm_sync', messages: [{ id: 10 }], events: [{ type: 'edit', id: 12, target: 10 }], truncated: false });
  ws.serverSend({ type: 'edit', id: 14, target: 10, from: 'g:bob', to: 'alice', text: 'x' });
  assert.equal(ctx.conn.highestId('general'), 8);
  assert.equal(ctx.conn.highestDmId, 14);
});

// ---- token refresh ------------------------------------------------------------

/** A heartbeat long enough that the fake server need not answer pings. */
const QUIET = { interval: 3600, timeout: 7200 };

/** A getToken that resolves to `fresh-1`, `fresh-2`, ... or fails while `failing` is set. */
function tokenSource() {
  const source = {
    calls: 0,
    failing: false,
    getToken: async () => {
      source.calls += 1;
      if (source.failing) throw new Error('the application is down');
      return `fresh-${source.calls}`;
    },
  };
  return source;
}

const refreshes = (ws) => ws.frames.filter((f) => f.type === 'refresh');

/** A connection with getToken, welcomed with a token `life` seconds from expiry. */
function withToken(life) {
  const app = tokenSource();
  const ctx = setup({ getToken: app.getToken });
  const ws = connectOpen(ctx, { ...QUIET, expires: SERVER_TIME + life });
  return { app, ctx, ws };
}

/** withToken(600) at the time of its first refresh (525 s later); getToken fails if `failing`. */
async function atFirstRefresh({ failing = false } = {}) {
  const opened = withToken(600);
  opened.app.failing = failing;
  opened.ctx.time.advance(525 * SECOND);
  await flush();
  return opened;
}

test('with getToken, a fresh token is sent before expiry and is the token of the next connect', async () => {
  const { app, ctx, ws } = withToken(600);
  // 600 s to live: a lead of 60 s, and random() = 0.5 adds a quarter of it.
  ctx.time.advance(525 * SECOND - 1);
  await flush();
  assert.equal(app.calls, 0);
  ctx.time.advance(1);
  await flush();
  assert.deepEqual(refreshes(ws), [{ type: 'refresh', token: 'fresh-1' }]);
  assert.equal(ctx.conn.token, 'tok', 'not before the server took it');
  ws.serverSend({ type: 'refreshed', expires: SERVER_TIME + 1200 });
  assert.equal(ctx.conn.token, 'fresh-1');
  assert.deepEqual(ctx.of('refreshed'), [{ expires: SERVER_TIME + 1200 }]);
  // The same connection, refreshed again 75 s before the new expiry.
  ctx.time.advance(600 * SECOND);
  await flush();
  assert.deepEqual(refreshes(ws).map((f) => f.token), ['fresh-1', 'fresh-2']);
  assert.equal(ctx.WS.instances.length, 1);
  ws.serverClose(1006);
  ctx.time.advance(SECOND);
  assert.equal(ctx.WS.last.query.get('token'), 'fresh-1');
});

test('a short-lived token is refreshed a tenth of its life early; without getToken or expires, never', async () => {
  const { app, ctx, ws } = withToken(100);
  ctx.time.advance(87.5 * SECOND - 1);
  await flush();
  assert.equal(refreshes(ws).length, 0);
  ctx.time.advance(1);
  await flush();
  assert.equal(refreshes(ws).length, 1);

  const quiet = setup({ getToken: app.getToken });
  connectOpen(quiet, QUIET); // no expires: the token never expires
  const alone = setup();
  const ws2 = connectOpen(alone, { ...QUIET, expires: SERVER_TIME + 100 });
  quiet.time.advance(3600 * SECOND);
  alone.time.advance(99 * SECOND);
  await flush();
  assert.equal(app.calls, 1);
  assert.equal(refreshes(ws2).length, 0);
});

test('a refused fresh token is told as refreshfailed, not as an error, and another is tried after the backoff', async () => {
  const { ctx, ws } = await atFirstRefresh();
  ws.serverSend({ type: 'error', code: 'bad_token', message: 'token expired' });
  assert.deepEqual(ctx.of('refreshfailed'), [{ code: 'bad_token', message: 'token expired', delay: 500 }]);
  assert.equal(ctx.of('error').length, 0);
  assert.equal(ctx.of('message').filter((f) => f.type === 'error').length, 0);
  assert.equal(ctx.conn.token, 'tok');
  ctx.time.advance(500);
  await flush();
  // Another user's token: forbidden (with no room: not a join's answer).
  ws.serverSend({ type: 'error', code: 'forbidden', message: "the new token is another user's" });
  assert.deepEqual(ctx.of('refreshfailed').map((d) => [d.code, d.delay]), [['bad_token', 500], ['forbidden', 1000]]);
  ctx.time.advance(1000);
  await flush();
  assert.deepEqual(refreshes(ws).map((f) => f.token), ['fresh-1', 'fresh-2', 'fresh-3']);
  ws.serverSend({ type: 'refreshed', expires: SERVER_TIME + 1200 });
  assert.equal(ctx.conn.token, 'fresh-3');
  assert.equal(ctx.of('refreshed').length, 1);
});

test('getToken failing, or giving the token in use again, is retried after the backoff', async () => {
  const { app, ctx, ws } = await atFirstRefresh({ failing: true });
  assert.deepEqual(ctx.of('refreshfailed'), [{ code: 'token_unavailable', message: 'the application is down', delay: 500 }]);
  assert.equal(refreshes(ws).length, 0);
  app.failing = false;
  ctx.time.advance(500);
  await flush();
  assert.equal(refreshes(ws).length, 1);
  // The server took it, but it expires no later: no time bought, and no loop of refreshes.
  ws.serverSend({ type: 'refreshed', expires: SERVER_TIME + 600 });
  await flush();
  assert.equal(ctx.of('refreshfailed').at(-1).code, 'bad_token');
  assert.equal(refreshes(ws).length, 1);
  ctx.time.advance(1000);
  await flush();
  assert.equal(refreshes(ws).length, 2);
});

test('a refresh lost with its socket is not taken; the next welcome plans the refresh anew', async () => {
  const { ctx, ws } = await atFirstRefresh();
  assert.equal(refreshes(ws).length, 1);
  ws.serverClose(1006);
  ctx.time.advance(SECOND);
  assert.equal(ctx.WS.last.query.get('token'), 'tok');
  const ws2 = ctx.WS.last;
  ws2.welcome({ ...QUIET, expires: SERVER_TIME + 600 });
  ctx.time.advance(524 * SECOND);
  await flush();
  assert.equal(refreshes(ws2).length, 0);
  ctx.time.advance(SECOND);
  await flush();
  assert.equal(refreshes(ws2).length, 1);
});

test('a token that expired while the page slept is replaced before the next connect, not a stop', async () => {
  const app = tokenSource();
  const ctx = setup({ getToken: app.getToken });
  const ws = connectOpen(ctx, { ...QUIET, expires: SERVER_TIME + 600 });
  ctx.time.skew(700 * SECOND); // asleep: no timer ran
  ws.serverClose(4001, 'token expired');
  assert.equal(ctx.conn.state, State.WAITING);
  await flush();
  assert.equal(ctx.WS.instances.length, 2, 'tried again at once with the fresh token');
  assert.equal(ctx.WS.last.query.get('token'), 'fresh-1');
  ctx.WS.last.welcome({ ...QUIET, expires: SERVER_TIME + 600 });
  assert.equal(ctx.of('stopped').length, 0);
  // Without getToken, the server's 4001 is the end of the session.
  const plain = setup();
  const ws3 = connectOpen(plain, { ...QUIET, expires: SERVER_TIME + 600 });
  plain.time.skew(700 * SECOND);
  ws3.serverClose(4001, 'token expired');
  assert.deepEqual(plain.of('stopped').map((d) => d.reason), ['auth']);
});

test('an expiry beyond the longest timer does not fire a refresh at once', async () => {
  const app = tokenSource();
  const ctx = setup({ getToken: app.getToken });
  const days = 60;
  const heartbeat = { interval: 2 * days * 86400, timeout: 4 * days * 86400 }; // no ping in the way
  const ws = connectOpen(ctx, { ...heartbeat, expires: SERVER_TIME + days * 86400 });
  ctx.time.advance(2 ** 31); // past the first, clamped timer
  await flush();
  assert.equal(refreshes(ws).length, 0);
  ctx.time.advance((days * 86400 - 75) * SECOND - 2 ** 31);
  await flush();
  assert.equal(refreshes(ws).length, 1);
});

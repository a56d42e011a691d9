import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ReconnectingSocket, SocketState, checkPolicy } from '../../static/shared/socket.js';
import { createFakeTime, createFakeWebSocket, seeded } from './fakes.mjs';

const URL = 'ws://example.test/socket';
const POLICY = { base: 1, factor: 2, cap: 8, stableAfter: 5, connectTimeout: 4 };

function setup(options = {}) {
  const time = createFakeTime();
  const WebSocket = createFakeWebSocket();
  const socket = new ReconnectingSocket({
    url: URL,
    policy: POLICY,
    WebSocket,
    now: time.now,
    setTimeout: time.setTimeout,
    clearTimeout: time.clearTimeout,
    random: () => 0.5,
    ...options,
  });
  const changes = [];
  const messages = [];
  socket.addEventListener('statechange', (e) => changes.push(e.detail));
  socket.addEventListener('message', (e) => messages.push(e.detail.data));
  const states = () => changes.map((d) => d.state);
  return { time, WebSocket, socket, changes, states, messages };
}

test('a policy is required and checked, with the caller’s names in errors', () => {
  assert.throws(() => checkPolicy(undefined), /policy is required/);
  assert.throws(() => checkPolicy({ ...POLICY, base: 0 }), /option base/);
  assert.throws(() => checkPolicy({ ...POLICY, factor: 0.5 }), /option factor/);
  assert.throws(() => checkPolicy({ ...POLICY, cap: -1 }, { cap: 'reconnect.cap' }), /reconnect\.cap.*-1/);
  assert.throws(() => checkPolicy({ ...POLICY, attempts: 1.5 }), /attempts/);
  assert.throws(() => checkPolicy({ ...POLICY, connectTimeout: Infinity }), /connectTimeout/);
  assert.equal(checkPolicy(POLICY).attempts, Infinity, 'never gives up unless told');
  assert.throws(() => new ReconnectingSocket({ url: URL }), /policy is required/);
});

test('start opens one socket; open, send and messages; start again does nothing', () => {
  const { WebSocket, socket, states, messages } = setup();
  assert.equal(socket.send('early'), false, 'nothing to send on');
  socket.start();
  socket.start();
  assert.equal(WebSocket.instances.length, 1);
  assert.equal(WebSocket.last.url, URL);
  assert.equal(socket.state, SocketState.CONNECTING);
  assert.equal(socket.send('too early'), false);
  WebSocket.last.serverOpen();
  assert.equal(socket.state, SocketState.OPEN);
  assert.equal(socket.send('hello'), true);
  assert.deepEqual(WebSocket.last.sent, ['hello']);
  WebSocket.last.serverSend('any text, not parsed');
  assert.deepEqual(messages, ['any text, not parsed']);
  assert.deepEqual(states(), ['connecting', 'open']);
});

test('backoff delays stay within the full-jitter bounds [0, min(cap, base * factor^(n-1)))', () => {
  const random = seeded(11);
  const { time, WebSocket, socket, changes } = setup({ random });
  socket.start();
  const ceilings = [1, 2, 4, 8, 8, 8, 8, 8, 8, 8, 8, 8];
  const seen = [];
  for (const [i, ceiling] of ceilings.entries()) {
    WebSocket.last.fail();
    const waiting = changes.at(-1);
    assert.equal(waiting.state, 'waiting');
    assert.equal(waiting.attempt, i + 1);
    assert.ok(waiting.delay >= 0 && waiting.delay < ceiling * 1000, `attempt ${i + 1}: ${waiting.delay} ms`);
    assert.equal(socket.retryAt, time.now() + waiting.delay);
    seen.push(waiting.delay);
    time.advance(waiting.delay);
    assert.equal(WebSocket.instances.length, i + 2, 'the next attempt starts when the delay is over');
  }
  assert.ok(new Set(seen).size > 1, 'the delays are jittered');
});

test('the ceiling itself with random() -> 1: exponential, then capped', () => {
  const { WebSocket, socket, changes } = setup({ random: () => 1 });
  socket.start();
  const delays = [];
  for (let i = 0; i < 6; i += 1) {
    WebSocket.last.fail();
    delays.push(changes.at(-1).delay);
    socket.retryNow();
  }
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 8000, 8000]);
});

test('one attempt at a time: retryNow, start and timers never open a second socket', () => {
  const { time, WebSocket, socket } = setup();
  socket.start();
  WebSocket.last.fail();
  socket.retryNow('manual');
  assert.equal(WebSocket.instances.length, 2);
  assert.equal(socket.cause, 'manual');
  socket.retryNow();
  socket.start();
  time.advance(60_000); // the cancelled retry timer must not fire; the connect timeout closes this one
  const live = WebSocket.instances.filter((ws) => ws.readyState < 2 && ws.closeCalls.length === 0);
  assert.ok(live.length <= 1, `${live.length} sockets at once`);
  for (let i = 0; i < WebSocket.instances.length - 1; i += 1) {
    assert.ok(WebSocket.instances[i].readyState >= 2, `socket ${i} is done before the next one`);
  }
});

test('the connect timeout ends a hung attempt; a late open is not listened to', () => {
  const { time, WebSocket, socket } = setup();
  socket.start();
  const first = WebSocket.last;
  time.advance(POLICY.connectTimeout * 1000 - 1);
  assert.equal(socket.state, SocketState.CONNECTING);
  time.advance(1);
  assert.equal(socket.state, SocketState.WAITING);
  assert.equal(first.closeCalls.length, 1);
  first.serverOpen();
  assert.equal(socket.state, SocketState.WAITING);
});

test('stop closes the socket, cancels every timer and never reconnects', () => {
  const { time, WebSocket, socket, changes } = setup();
  socket.start();
  WebSocket.last.serverOpen();
  socket.stop({ code: 1000 });
  assert.deepEqual(WebSocket.last.closeCalls, [{ code: 1000, reason: undefined }]);
  assert.equal(socket.state, SocketState.STOPPED);
  assert.equal(changes.at(-1).reason, 'closed');
  assert.equal(time.pendingTimers, 0);
  WebSocket.last.serverClose(1000); // the close event after stop() changes nothing
  time.advance(3_600_000);
  assert.equal(WebSocket.instances.length, 1);

  socket.start(); // stop() while waiting cancels the retry
  WebSocket.last.fail();
  assert.equal(socket.state, SocketState.WAITING);
  socket.stop({ reason: 'auth', message: 'session gone' });
  assert.equal(socket.stopReason, 'auth');
  assert.equal(changes.at(-1).message, 'session gone');
  assert.equal(time.pendingTimers, 0);
  time.advance(3_600_000);
  assert.equal(WebSocket.instances.length, 2);
});

test('gives up after `attempts` failed attempts in a row', () => {
  const { time, WebSocket, socket, changes } = setup({ policy: { ...POLICY, attempts: 3 } });
  socket.start();
  for (let i = 0; i < 4; i += 1) {
    WebSocket.last.fail();
    time.advance(10_000);
  }
  assert.equal(WebSocket.instances.length, 4, 'the first connect and 3 reconnects');
  assert.equal(socket.state, SocketState.STOPPED);
  assert.equal(socket.stopReason, 'gave_up');
  assert.equal(changes.at(-1).attempts, 3);
});

test('the url function gets the attempt number and the cause', () => {
  const calls = [];
  const { WebSocket, socket } = setup({ url: (attempt, cause) => { calls.push([attempt, cause]); return URL; } });
  socket.start();
  WebSocket.last.fail();
  socket.retryNow();
  WebSocket.last.serverOpen();
  socket.reconnect('watchdog', 4000);
  assert.deepEqual(WebSocket.last.closeCalls, [{ code: 4000, reason: undefined }]);
  socket.retryNow();
  assert.deepEqual(calls, [[0, null], [1, 'error'], [2, 'watchdog']], 'a short-lived open does not reset the count');
});

test('onClose decides: stop with a reason, or a fixed delay with a cause', () => {
  const infos = [];
  const decide = (info) => {
    infos.push(info);
    if (info.code === 4003) return { stop: 'kicked', message: info.reason };
    if (info.code === 1001) return { cause: 'shutdown', delay: 3200 };
    return undefined;
  };
  const { time, WebSocket, socket, changes } = setup({ onClose: decide, random: () => 0.99 });
  socket.start();
  WebSocket.last.serverOpen();
  WebSocket.last.serverClose(1001);
  assert.equal(changes.at(-1).delay, 3200);
  assert.equal(changes.at(-1).cause, 'shutdown');
  time.advance(3200);
  assert.equal(WebSocket.instances.length, 2);
  WebSocket.last.serverOpen();
  WebSocket.last.serverClose(4003, 'be nice');
  assert.equal(socket.state, SocketState.STOPPED);
  assert.equal(socket.stopReason, 'kicked');
  assert.equal(changes.at(-1).message, 'be nice');
  assert.deepEqual(infos.map((i) => [i.code, i.opened, i.ready]), [[1001, true, true], [4003, true, true]]);
});

test('with awaitReady the socket is open only after markOpen(), and the connect timeout runs until then', () => {
  const { time, WebSocket, socket } = setup({ awaitReady: true });
  socket.start();
  WebSocket.last.serverOpen();
  assert.equal(socket.state, SocketState.CONNECTING);
  assert.equal(socket.send('hello'), true, 'the handshake may be sent');
  time.advance(POLICY.connectTimeout * 1000);
  assert.equal(socket.state, SocketState.WAITING, 'no handshake in time');
  socket.retryNow();
  WebSocket.last.serverOpen();
  socket.markOpen();
  assert.equal(socket.state, SocketState.OPEN);
  time.advance(60_000);
  assert.equal(socket.state, SocketState.OPEN);
});

test('the attempt count starts again after stableAfter open, by timer or by the wall clock', () => {
  const { time, WebSocket, socket } = setup();
  socket.start();
  WebSocket.last.fail();
  socket.retryNow();
  WebSocket.last.serverOpen();
  time.advance(1000);
  WebSocket.last.serverClose(1006);
  assert.equal(socket.attempt, 2, 'open, but not for long');
  socket.retryNow();
  WebSocket.last.serverOpen();
  time.skew(POLICY.stableAfter * 1000); // a throttled tab: the stable timer did not run
  WebSocket.last.serverClose(1006);
  assert.equal(socket.attempt, 1);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { DEFAULTS, PushChannel, PushState, pushUrl, retryDelay } from '../../dashboard/js/push.js';
import { createFakeTime, createFakeWebSocket } from './fakes.mjs';

const URL = 'ws://example.test/admin/ws';

function setup(options = {}) {
  const time = createFakeTime();
  const WebSocket = createFakeWebSocket();
  const push = new PushChannel(URL, {
    WebSocket, setTimeout: time.setTimeout, clearTimeout: time.clearTimeout, now: time.now,
    random: () => 0.5, ...options,
  });
  const states = [];
  const messages = [];
  push.addEventListener('statechange', (e) => states.push(e.detail.state));
  push.addEventListener('message', (e) => messages.push(e.detail));
  return { time, WebSocket, push, states, messages };
}

test('the URL follows the page: ws for http, wss for https', () => {
  assert.equal(pushUrl({ protocol: 'http:', host: '127.0.0.1:8080' }), 'ws://127.0.0.1:8080/admin/ws');
  assert.equal(pushUrl({ protocol: 'https:', host: 'chat.example.com' }), 'wss://chat.example.com/admin/ws');
});

test('retry delays: full jitter under a capped exponential ceiling', () => {
  const policy = { base: 0.5, factor: 2, cap: 15 };
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 50].map((n) => retryDelay(n, policy, () => 1)), [0.5, 1, 2, 4, 8, 15, 15, 15]);
  assert.equal(retryDelay(3, policy, () => 0), 0);
  assert.equal(retryDelay(3, policy, () => 0.25), 0.5);
  assert.equal(DEFAULTS.cap, 15);
});

test('start connects; messages arrive parsed; text that is not JSON is ignored', () => {
  const { WebSocket, push, states, messages } = setup();
  push.start();
  push.start(); // no second socket
  assert.equal(WebSocket.instances.length, 1);
  assert.equal(WebSocket.last.url, URL);
  WebSocket.last.serverOpen();
  assert.equal(push.state, PushState.OPEN);
  WebSocket.last.serverSend({ type: 'snapshot', clients: [] });
  WebSocket.last.serverSend('not json');
  assert.deepEqual(messages, [{ type: 'snapshot', clients: [] }]);
  assert.deepEqual(states, ['connecting', 'open']);
});

test('a drop waits a jittered, growing delay, then connects again', () => {
  const { time, WebSocket, push, states } = setup({ random: () => 1 }); // the ceiling itself
  push.start();
  const delays = [];
  for (let i = 0; i < 7; i += 1) {
    WebSocket.last.fail();
    assert.equal(push.state, PushState.WAITING);
    delays.push((push.retryAt - time.now()) / 1000);
    time.advance(push.retryAt - time.now() - 1);
    assert.equal(WebSocket.instances.length, i + 1, 'not before the delay');
    time.advance(1);
    assert.equal(WebSocket.instances.length, i + 2);
  }
  assert.deepEqual(delays, [0.5, 1, 2, 4, 8, 15, 15]);
  assert.deepEqual(states.slice(0, 4), ['connecting', 'waiting', 'connecting', 'waiting']);
});

test('the attempt count starts again only after the channel stayed open', () => {
  const { time, WebSocket, push } = setup();
  const untilRetry = () => time.advance(push.retryAt - time.now());
  push.start();
  WebSocket.last.fail();
  untilRetry();
  WebSocket.last.serverOpen();
  time.advance(1_000); // open, but not for long
  WebSocket.last.serverClose(1006);
  assert.equal(push.attempt, 2);
  untilRetry();
  WebSocket.last.serverOpen();
  time.advance(DEFAULTS.stableAfter * 1000);
  assert.equal(push.attempt, 0);
  WebSocket.last.serverClose(1001);
  assert.equal(push.attempt, 1);
});

test('an attempt that does not open in time is closed and counts as failed', () => {
  const { time, WebSocket, push } = setup();
  push.start();
  const first = WebSocket.last;
  time.advance(DEFAULTS.connectTimeout * 1000);
  assert.equal(push.state, PushState.WAITING);
  assert.equal(first.closeCalls.length, 1);
  first.serverOpen(); // too late: no longer listened to
  assert.equal(push.state, PushState.WAITING);
});

test('stop closes the socket, cancels every timer and does not reconnect', () => {
  const { time, WebSocket, push, states } = setup();
  push.start();
  WebSocket.last.serverOpen();
  push.stop();
  assert.equal(push.state, PushState.STOPPED);
  assert.equal(WebSocket.last.closeCalls.length, 1);
  assert.equal(time.pendingTimers, 0);
  time.advance(60_000);
  assert.equal(WebSocket.instances.length, 1);
  assert.deepEqual(states, ['connecting', 'open', 'stopped']);

  push.start(); // and it can start again
  assert.equal(WebSocket.instances.length, 2);
  WebSocket.last.fail();
  push.stop();
  assert.equal(time.pendingTimers, 0, 'the retry timer is gone too');
});

test('retryNow skips the wait', () => {
  const { WebSocket, push } = setup();
  push.retryNow(); // not waiting: nothing
  assert.equal(WebSocket.instances.length, 0);
  push.start();
  WebSocket.last.fail();
  push.retryNow();
  assert.equal(WebSocket.instances.length, 2);
  assert.equal(push.state, PushState.CONNECTING);
});

test('send: JSON while open, false (nothing sent) otherwise', () => {
  const { WebSocket, push } = setup();
  assert.equal(push.send({ type: 'view', seq: 1 }), false);
  push.start();
  const ws = WebSocket.instances[0];
  ws.serverOpen();
  assert.equal(push.send({ type: 'view', seq: 1, query: { q: 'ann' } }), true);
  assert.deepEqual(ws.frames, [{ type: 'view', seq: 1, query: { q: 'ann' } }]);
});

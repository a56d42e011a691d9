import { test } from 'node:test';
import assert from 'node:assert/strict';

import { countdownText, secondsUntil, statusOf } from '../../static/js/status.js';

test('maps connection states to indicator states', () => {
  assert.equal(statusOf('connecting'), 'connecting');
  assert.equal(statusOf('connecting', { attempt: 2 }), 'reconnecting');
  assert.equal(statusOf('open', { attempt: 3 }), 'connected');
  assert.equal(statusOf('waiting', { attempt: 1 }), 'reconnecting');
  assert.equal(statusOf('waiting', { attempt: 1, online: false }), 'offline');
  assert.equal(statusOf('stopped'), 'stopped');
});

test('the countdown rounds up and reads naturally', () => {
  const now = 1_000_000;
  assert.equal(countdownText({ reconnectAt: now + 2500, attempt: 2, attempts: 10 }, now),
    'Reconnecting in 3 s, attempt 2 of 10');
  assert.equal(countdownText({ reconnectAt: now - 5, attempt: 1, attempts: 10 }, now),
    'Reconnecting now, attempt 1 of 10');
  assert.equal(secondsUntil(now + 1, now), 1);
  assert.equal(secondsUntil(now - 9999, now), 0);
});

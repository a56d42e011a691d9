import { test } from 'node:test';
import assert from 'node:assert/strict';

import { backoffCeiling, backoffDelay } from '../../static/shared/backoff.js';
import { seeded } from './fakes.mjs';

const policy = { base: 1, factor: 2, cap: 30 };

test('the ceiling grows exponentially from base and stops at cap', () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 10, 50].map((n) => backoffCeiling(n, policy)),
    [1, 2, 4, 8, 16, 30, 30, 30, 30],
  );
  assert.equal(backoffCeiling(5000, policy), 30, 'huge attempts overflow to Infinity, then cap');
});

test('the ceiling refuses attempt numbers below 1', () => {
  assert.throws(() => backoffCeiling(0, policy), RangeError);
  assert.throws(() => backoffCeiling(1.5, policy), RangeError);
});

test('full jitter: the delay is random() times the ceiling, including at the cap', () => {
  assert.equal(backoffDelay(3, policy, () => 0), 0);
  assert.equal(backoffDelay(3, policy, () => 0.5), 2);
  assert.equal(backoffDelay(20, policy, () => 0.25), 7.5);
  assert.ok(backoffDelay(20, policy, () => 0.999999) < 30);
});

test('over many attempts the delays stay within [0, ceiling) and never exceed the cap', () => {
  const random = seeded(42);
  for (let attempt = 1; attempt <= 40; attempt += 1) {
    const ceiling = backoffCeiling(attempt, policy);
    for (let i = 0; i < 200; i += 1) {
      const d = backoffDelay(attempt, policy, random);
      assert.ok(d >= 0 && d < ceiling, `attempt ${attempt}: ${d} outside [0, ${ceiling})`);
      assert.ok(d <= policy.cap);
    }
  }
});

test('at the cap, delays stay spread over the whole window (no collapse to the cap)', () => {
  const random = seeded(7);
  const delays = Array.from({ length: 2000 }, () => backoffDelay(30, policy, random));
  const atCap = delays.filter((d) => d === policy.cap).length;
  assert.equal(atCap, 0);
  // Every sixth of the window gets a fair share of the clients.
  const buckets = new Array(6).fill(0);
  for (const d of delays) buckets[Math.floor(d / 5)] += 1;
  for (const count of buckets) assert.ok(count > 2000 / 6 * 0.7, `uneven spread: ${buckets}`);
  const mean = delays.reduce((a, b) => a + b, 0) / delays.length;
  assert.ok(Math.abs(mean - 15) < 1.5, `mean ${mean} should be near cap/2`);
});

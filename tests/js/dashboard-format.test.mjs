import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  describeUserAgent, formatAgo, formatAxis, formatClock, formatCount, formatDateTime, formatDuration,
  formatRate, formatRtt,
} from '../../dashboard/js/format.js';

test('durations: a decimal under 10 s, then whole units, two at most', () => {
  const cases = [
    [0, '0.0 s'], [0.35, '0.3 s'], [9.99, '9.9 s'], [10, '10 s'], [59.9, '59 s'],
    [60, '1 min'], [65, '1 min 5 s'], [3599, '59 min 59 s'], [3600, '1 h'], [3725, '1 h 2 min'],
    [86400, '1 d'], [90061, '1 d 1 h'], [30 * 86400 + 5, '30 d'],
  ];
  for (const [seconds, text] of cases) assert.equal(formatDuration(seconds), text, `${seconds} s`);
});

test('durations: missing or impossible values are a dash', () => {
  for (const value of [null, undefined, -1, Number.NaN, Infinity]) assert.equal(formatDuration(value), '—');
  assert.equal(formatAgo(null), '—');
  assert.equal(formatAgo(0.42), '0.4 s ago');
  assert.equal(formatAgo(125), '2 min 5 s ago');
});

test('round trips are given in seconds and shown in ms with sensible precision', () => {
  assert.equal(formatRtt(0.000421), '0.42 ms');
  assert.equal(formatRtt(0.0123), '12.3 ms');
  assert.equal(formatRtt(0.25), '250 ms');
  assert.equal(formatRtt(1.5), '1500 ms');
  assert.equal(formatRtt(null), '—');
});

test('clock times are local HH:MM:SS, date-times local YYYY-MM-DD HH:MM:SS', () => {
  const t = new Date(2026, 10, 6, 9, 5, 7).getTime() / 1000;
  assert.equal(formatClock(t), '09:05:07');
  assert.equal(formatDateTime(t), '2026-11-06 09:05:07');
  assert.equal(formatClock(Number.NaN), '—');
  assert.equal(formatDateTime(undefined), '');
});

test('rates, counts and axis labels', () => {
  assert.equal(formatRate(0), '0.00');
  assert.equal(formatRate(3.4), '3.40');
  assert.equal(formatRate(12.345), '12.3');
  assert.equal(formatCount(12345.4), '12,345');
  assert.equal(formatCount(undefined), '—');
  assert.deepEqual([25, 2.5, 0.25, 1000, 0.1 + 0.2].map(formatAxis), ['25', '2.5', '0.25', '1,000', '0.3']);
});

test('user agents: browser, major version and system; anything else as it is', () => {
  const cases = [
    ['Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0', 'Firefox 133 · Linux'],
    ['Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15',
      'Safari 18 · macOS'],
    ['Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
      'Safari 17 · iOS'],
    ['Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36',
      'Chrome 131 · Android'],
    ['Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0',
      'Edge 131 · Windows'],
    ['Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
      'Chrome 131 · ChromeOS'],
    ['Python/3.11 websockets/12.0', 'Python/3.11 websockets/12.0'],
    ['', ''],
  ];
  for (const [ua, text] of cases) assert.equal(describeUserAgent(ua), text, ua);
  assert.equal(describeUserAgent(undefined), '');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Watchdog } from '../../static/js/watchdog.js';
import { createFakeTime } from './fakes.mjs';

const SECOND = 1000;

function setup({ interval = 10 * SECOND, timeout = 20 * SECOND, hidden = false } = {}) {
  const time = createFakeTime();
  const log = { pings: [], dead: [] };
  const page = { hidden };
  const watchdog = new Watchdog({
    interval,
    timeout,
    sendPing: () => log.pings.push(time.now()),
    onDead: () => log.dead.push(time.now()),
    now: time.now,
    setTimeout: time.setTimeout,
    clearTimeout: time.clearTimeout,
    isHidden: () => page.hidden,
  });
  return { time, log, page, watchdog, start: time.now() };
}

test('pings every interval while pongs come back, and never fires', () => {
  const { time, log, watchdog, start } = setup();
  watchdog.start();
  for (let i = 0; i < 30; i += 1) {
    time.advance(10 * SECOND);
    watchdog.alive(); // the pong
  }
  assert.equal(log.dead.length, 0);
  assert.equal(log.pings.length, 30);
  assert.deepEqual(log.pings.slice(0, 3), [start + 10 * SECOND, start + 20 * SECOND, start + 30 * SECOND]);
});

test('fires when a ping has no answer within the timeout, measured from the ping', () => {
  const { time, log, watchdog, start } = setup();
  watchdog.start();
  time.advance(10 * SECOND); // ping at +10 s
  assert.equal(log.pings.length, 1);
  time.advance(20 * SECOND - 1);
  assert.equal(log.dead.length, 0, 'not before the timeout');
  time.advance(1);
  assert.deepEqual(log.dead, [start + 30 * SECOND]);
  time.advance(120 * SECOND);
  assert.equal(log.dead.length, 1, 'fires once, then stays stopped');
});

test('any frame after the ping counts as its answer', () => {
  const { time, log, watchdog } = setup();
  watchdog.start();
  time.advance(10 * SECOND);
  time.advance(19 * SECOND);
  watchdog.alive(); // e.g. a chat message, not a pong
  time.advance(5 * SECOND);
  assert.equal(log.dead.length, 0);
});

test('a timer that fires 60 s late in a hidden tab probes instead of killing', () => {
  const { time, log, page, watchdog } = setup();
  watchdog.start();
  time.advance(10 * SECOND); // ping sent at +10 s
  page.hidden = true;
  time.skew(80 * SECOND); // the tab was throttled: the +30 s timer runs at +90 s
  time.runDue();
  assert.equal(log.dead.length, 0, 'must not declare the connection dead');
  assert.equal(log.pings.length, 2, 'must send a fresh probe ping');
  watchdog.alive(); // the answer was there all along
  for (let i = 0; i < 30; i += 1) {
    time.advance(10 * SECOND);
    watchdog.alive();
  }
  assert.equal(log.dead.length, 0);
});

test('a late timer probes even when the page looks visible (e.g. after sleep)', () => {
  const { time, log, watchdog } = setup();
  watchdog.start();
  time.advance(10 * SECOND);
  time.skew(60 * SECOND);
  time.runDue();
  assert.equal(log.dead.length, 0);
  assert.equal(log.pings.length, 2);
});

test('an unanswered probe is final, even if its timer is late too', () => {
  const { time, log, page, watchdog } = setup();
  watchdog.start();
  time.advance(10 * SECOND);
  page.hidden = true;
  time.skew(80 * SECOND);
  time.runDue(); // probe at +90 s
  const probeAt = time.now();
  time.skew(60 * SECOND); // the probe's timer is throttled as well
  time.runDue();
  assert.equal(log.dead.length, 1);
  assert.ok(log.dead[0] - probeAt >= 20 * SECOND);
});

test('a late timer that finds the pong arrived just sends the next ping', () => {
  const { time, log, watchdog } = setup();
  watchdog.start();
  time.advance(10 * SECOND);
  watchdog.alive();
  time.skew(90 * SECOND);
  time.runDue();
  assert.equal(log.dead.length, 0);
  assert.equal(log.pings.length, 2);
});

test('probe() sends a ping at once and gives it the full timeout', () => {
  const { time, log, watchdog, start } = setup();
  watchdog.start();
  time.advance(3 * SECOND);
  watchdog.probe();
  assert.deepEqual(log.pings, [start + 3 * SECOND]);
  watchdog.probe(); // a second probe while one is out changes nothing
  assert.equal(log.pings.length, 1);
  time.advance(20 * SECOND - 1);
  assert.equal(log.dead.length, 0);
  time.advance(1);
  assert.deepEqual(log.dead, [start + 23 * SECOND]);
});

test('a probe answered in time lets the cycle continue', () => {
  const { time, log, watchdog } = setup();
  watchdog.start();
  watchdog.probe();
  time.advance(1 * SECOND);
  watchdog.alive();
  time.advance(100 * SECOND);
  for (let i = 0; i < 5; i += 1) watchdog.alive();
  assert.ok(log.pings.length >= 2);
});

test('stop() cancels everything', () => {
  const { time, log, watchdog } = setup();
  watchdog.start();
  time.advance(10 * SECOND);
  watchdog.stop();
  assert.equal(time.pendingTimers, 0);
  time.advance(100 * SECOND);
  assert.equal(log.dead.length, 0);
  assert.equal(log.pings.length, 1);
});

test('a wall clock set backwards does not park the timer for hours', () => {
  const { time, log, watchdog } = setup();
  watchdog.start();
  time.advance(10 * SECOND); // ping out
  time.shiftWallClock(-3600 * SECOND); // NTP moved the clock back an hour
  time.advance(60 * SECOND);
  // It must not go silent for an hour: the unanswered ping is judged.
  assert.equal(log.dead.length, 1);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  WINDOW_SECONDS, areaPath, chartPoints, linePath, niceCeiling, spanLabel,
} from '../../dashboard/js/charts.js';

test('niceCeiling: the next 1, 2, 2.5 or 5 times a power of ten, at least the minimum', () => {
  const cases = [[0, 1], [0.4, 1], [1, 1], [1.2, 2], [2, 2], [2.1, 2.5], [3, 5], [7, 10], [10, 10],
    [11, 20], [21, 25], [26, 50], [51, 100], [999, 1000], [1001, 2000]];
  for (const [value, nice] of cases) assert.equal(niceCeiling(value), nice, `${value}`);
  assert.equal(niceCeiling(0.3, 0.1), 0.5);
  assert.equal(niceCeiling(0.1 + 0.2, 0.1), 0.5);
  assert.equal(niceCeiling(Number.NaN), 1);
});

test('points span the box: oldest at x=0, newest at x=width, 0 at the bottom, the max at the top', () => {
  const { points, yMax, tMin, tMax } = chartPoints([100, 101, 102, 104], [0, 5, 10, 2.5], { width: 200, height: 50 });
  assert.equal(yMax, 10);
  assert.deepEqual([tMin, tMax], [100, 104]);
  assert.deepEqual(points, [[0, 50], [50, 25], [100, 0], [200, 37.5]]);
});

test('only the last 15 minutes are drawn', () => {
  const times = [0, 50, 100, 100 + WINDOW_SECONDS];
  const { points, tMin } = chartPoints(times, [1000, 1, 2, 4], { width: 90, height: 10 });
  assert.equal(tMin, 100, 'the old sample (and its large value) is out of the window');
  assert.deepEqual(points, [[0, 6], [90, 2]], 'scaled to niceCeiling(4) = 5, not to 1000');
});

test('odd input: nothing, one sample, holes and negative values', () => {
  assert.deepEqual(chartPoints([], [], { width: 10, height: 10 }).points, []);
  assert.equal(chartPoints([], [], { width: 10, height: 10 }).tMin, null);
  assert.deepEqual(chartPoints([5], [1], { width: 10, height: 10 }).points, [[0, 0], [10, 0]], 'a flat line');
  assert.deepEqual(chartPoints([1, 2, 3], [1, null, 1], { width: 10, height: 10 }).points, [[0, 0], [10, 0]]);
  assert.deepEqual(chartPoints([1, 2], [-3, 1], { width: 10, height: 10 }).points, [[0, 10], [10, 0]]);
  assert.deepEqual(chartPoints([1, 2, 3], [1, 1], { width: 10, height: 10 }).points, [[0, 0], [10, 0]],
    'arrays of different lengths: the common part');
});

test('coordinates are rounded to a tenth to keep the path short', () => {
  const { points } = chartPoints([0, 1, 3], [1, 2, 3], { width: 100, height: 100 });
  assert.deepEqual(points, [[0, 80], [33.3, 60], [100, 40]]);
});

test('paths', () => {
  assert.equal(linePath([]), '');
  assert.equal(linePath([[0, 10], [5, 8], [10, 9]]), 'M0,10L5,8L10,9');
  assert.equal(areaPath([[0, 10], [10, 4]], 20), 'M0,10L10,4L10,20L0,20Z');
  assert.equal(areaPath([], 20), '');
});

test('span labels', () => {
  assert.equal(spanLabel(null, null), 'no data yet');
  assert.equal(spanLabel(100, 142), 'last 42 s');
  assert.equal(spanLabel(0, 900), 'last 15 min');
  assert.equal(spanLabel(0, 89), 'last 1 min');
});

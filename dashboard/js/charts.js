/**
 * The math behind the two small charts: time series -> SVG path data.
 * Pure functions; chart-view.js puts the results into the DOM.
 */

/** The charts show at most this much history (the server keeps 15 minutes). */
export const WINDOW_SECONDS = 900;

/**
 * A round upper bound for the y axis: the smallest of 1, 2, 2.5, 5 times a
 * power of ten that is >= value, and at least `min`.
 */
export function niceCeiling(value, min = 1) {
  const v = Math.max(Number.isFinite(value) ? value : 0, min);
  const power = 10 ** Math.floor(Math.log10(v));
  for (const step of [1, 2, 2.5, 5, 10]) {
    // A tiny tolerance so that 0.3 (0.30000000000000004) is not pushed to the next step.
    if (step * power >= v * (1 - 1e-12)) return step * power;
  }
  return 10 * power;
}

const round = (n) => Math.round(n * 10) / 10;

/**
 * Where each sample goes in a `width` x `height` box.
 *
 * The x axis runs from the oldest sample within WINDOW_SECONDS of the newest
 * to the newest, so a freshly started server still gets a full-width chart;
 * the y axis from 0 (bottom) to niceCeiling(max value). Samples whose time or
 * value is not a number are left out.
 *
 * Returns {points: [[x, y], ...], yMax, tMin, tMax}.
 */
export function chartPoints(times, values, { width, height, window = WINDOW_SECONDS } = {}) {
  const pairs = [];
  const n = Math.min(times.length, values.length);
  for (let i = 0; i < n; i += 1) {
    if (Number.isFinite(times[i]) && Number.isFinite(values[i])) pairs.push([times[i], values[i]]);
  }
  if (pairs.length === 0) return { points: [], yMax: niceCeiling(0), tMin: null, tMax: null };
  const tMax = pairs[pairs.length - 1][0];
  const inWindow = pairs.filter(([t]) => t >= tMax - window);
  const tMin = inWindow[0][0];
  const yMax = niceCeiling(Math.max(...inWindow.map(([, v]) => v)));
  const span = tMax - tMin;
  const points = inWindow.map(([t, v]) => [
    round(span > 0 ? ((t - tMin) / span) * width : width),
    round(height - (Math.max(0, v) / yMax) * height),
  ]);
  if (points.length === 1) points.unshift([0, points[0][1]]); // one sample: a flat line
  return { points, yMax, tMin, tMax };
}

/** SVG path data for a line through `points`: "M0,10L5,8L10,9"; "" for none. */
export function linePath(points) {
  return points.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${x},${y}`).join('');
}

/** SVG path data for the area between the line and the bottom edge at `height`. */
export function areaPath(points, height) {
  if (points.length === 0) return '';
  const first = points[0];
  const last = points[points.length - 1];
  return `${linePath(points)}L${last[0]},${height}L${first[0]},${height}Z`;
}

/** The span a chart covers, as short text: "last 15 min", "last 42 s". */
export function spanLabel(tMin, tMax) {
  if (tMin === null || tMax === null) return 'no data yet';
  const seconds = Math.round(tMax - tMin);
  if (seconds >= 60) return `last ${Math.round(seconds / 60)} min`;
  return `last ${seconds} s`;
}

/**
 * The composer's length limit: the server refuses a text longer than
 * `limits.max_text_chars` (GET /api/client-config) with `too_long`, so the
 * page counts as the server does and refuses before sending, keeping the
 * text for the user to shorten.
 */

/**
 * The length of `text` as the server counts it: in code points (Python's
 * len), not in UTF-16 units (JavaScript's length), so that an emoji is one.
 */
export function textLength(text) {
  return Array.from(text).length;
}

/** How close to the limit the counter appears: the last tenth, and at least 20 characters. */
export function counterThreshold(max) {
  return Math.max(20, Math.ceil(max / 10));
}

/**
 * What the counter shows for `text` under the limit `max` (null: no limit
 * known): {show, over, remaining, label}. `label` is for the screen and for
 * screen readers alike ("12 characters left", "30 characters too many").
 */
export function counterOf(text, max) {
  if (!Number.isInteger(max) || max < 1) return { show: false, over: false, remaining: null, label: '' };
  const remaining = max - textLength(text);
  const over = remaining < 0;
  const show = remaining <= counterThreshold(max);
  let label = '';
  if (over) label = `${-remaining} ${plural(-remaining, 'character')} too many (limit ${max})`;
  else if (show) label = `${remaining} ${plural(remaining, 'character')} left`;
  return { show, over, remaining, label };
}

function plural(n, word) {
  return n === 1 ? word : `${word}s`;
}

/**
 * Reconnect delays: capped exponential backoff with full jitter.
 *
 * Full jitter (a uniform delay between 0 and the ceiling) is applied to the
 * capped ceiling as well, so that clients which have all reached the cap stay
 * spread over the whole window instead of coming back in lock step.
 * See https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
 */

/**
 * The upper bound of the delay before reconnect attempt `attempt` (1-based),
 * in the policy's unit (seconds): min(cap, base * factor^(attempt-1)).
 */
export function backoffCeiling(attempt, { base, factor, cap }) {
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw new RangeError(`attempt must be an integer >= 1, got ${attempt}`);
  }
  // Math.min before the power would overflow to Infinity for large attempts;
  // Infinity compares fine, so the cap still wins.
  return Math.min(cap, base * factor ** (attempt - 1));
}

/**
 * The delay before reconnect attempt `attempt`: random() * ceiling.
 * `random` returns a number in [0, 1), like Math.random.
 */
export function backoffDelay(attempt, policy, random = Math.random) {
  return random() * backoffCeiling(attempt, policy);
}

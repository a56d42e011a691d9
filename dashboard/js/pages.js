/**
 * Lists read a page at a time from the API (a room's messages, the audit log),
 * with items that may come again (a page read anew, an item pushed live).
 */

/** `shown` with `incoming` merged in: each item once by id (the incoming version wins), newest (highest id) first. */
export function mergeById(shown, incoming) {
  const byId = new Map((shown || []).map((item) => [item.id, item]));
  for (const item of incoming || []) byId.set(item.id, item);
  return [...byId.values()].sort((a, b) => b.id - a.id);
}

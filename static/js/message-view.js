/**
 * Drawing the message list. Rows are keyed (by id, or by cid while pending)
 * and reused, so that a re-render after each frame keeps the DOM, the
 * scroll position and any text selection stable. Text from the network only
 * ever goes through textContent.
 */

/** Messages from the same sender within this many seconds are grouped. */
const GROUP_SECONDS = 5 * 60;

function rowKey(message) {
  return message.id !== null && message.id !== undefined ? `id:${message.id}` : `cid:${message.cid}`;
}

/** "14:03", with the date in front when not today. */
export function formatTime(ts, now = new Date()) {
  const date = new Date(ts * 1000);
  const time = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (date.toDateString() === now.toDateString()) return time;
  return `${date.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`;
}

function createRow(doc) {
  const row = doc.createElement('li');
  row.className = 'message';
  row.dataset.testid = 'message';
  const meta = doc.createElement('div');
  meta.className = 'message-meta';
  const from = doc.createElement('span');
  from.className = 'message-from';
  const time = doc.createElement('time');
  time.className = 'message-time';
  const marker = doc.createElement('span');
  marker.className = 'message-marker';
  meta.append(from, time, marker);
  const text = doc.createElement('div');
  text.className = 'message-text';
  row.append(meta, text);
  return row;
}

function createDismissButton(doc) {
  const button = doc.createElement('button');
  button.type = 'button';
  button.className = 'message-dismiss';
  button.dataset.action = 'dismiss';
  button.dataset.testid = 'message-dismiss';
  button.textContent = 'Dismiss';
  return button;
}

/** Who sent a message, as shown: its display name (the id when none is known). */
export function senderName(message, nameOf) {
  if (typeof message.name === 'string' && message.name) return message.name;
  return nameOf ? nameOf(message.from) : message.from;
}

function updateRow(row, message, { me, continued, nameOf }) {
  const [meta, text] = row.children;
  const [from, time, marker, dismiss] = meta.children;
  row.dataset.key = rowKey(message);
  row.dataset.id = message.id ?? '';
  row.dataset.cid = message.cid ?? '';
  row.dataset.pending = String(Boolean(message.pending));
  row.classList.toggle('mine', message.from === me);
  row.classList.toggle('pending', Boolean(message.pending) && !message.failed);
  row.classList.toggle('failed', Boolean(message.failed));
  row.classList.toggle('continued', continued);
  const sender = senderName(message, nameOf);
  if (from.textContent !== sender) from.textContent = sender;
  row.dataset.from = message.from ?? '';
  const stamp = Number.isFinite(message.ts) ? formatTime(message.ts) : '';
  if (time.textContent !== stamp) time.textContent = stamp;
  if (Number.isFinite(message.ts)) time.dateTime = new Date(message.ts * 1000).toISOString();
  let mark = '';
  if (message.failed) mark = `Not sent (${message.failed})`;
  else if (message.pending) mark = 'Sending…';
  marker.textContent = mark;
  marker.hidden = !mark;
  // Only a failed message can be dismissed; the button exists only then, so
  // that it is not part of the text of ordinary rows.
  if (message.failed && !dismiss) meta.append(createDismissButton(row.ownerDocument));
  else if (!message.failed && dismiss) dismiss.remove();
  if (text.textContent !== message.text) text.textContent = message.text;
}

/**
 * Makes `list` (an <ol>) show `messages` in order, reusing existing rows.
 * @param {HTMLElement} list
 * @param {Array<object>} messages from Conversation.messages()
 * @param {{me: string, nameOf?: (userId: string) => string}} context: my user id, and
 *   the display name of a user id for messages that carry no name
 */
export function renderMessages(list, messages, { me, nameOf }) {
  const doc = list.ownerDocument;
  const existing = new Map();
  for (const child of list.children) existing.set(child.dataset.key, child);
  const keep = new Set();
  let cursor = list.firstElementChild;
  let previous = null;
  for (const message of messages) {
    const key = rowKey(message);
    let row = existing.get(key);
    if (!row) row = createRow(doc);
    const continued = previous !== null && previous.from === message.from
      && !previous.failed && !message.failed
      && Number.isFinite(message.ts) && Number.isFinite(previous.ts)
      && message.ts - previous.ts < GROUP_SECONDS;
    updateRow(row, message, { me, continued, nameOf });
    keep.add(row);
    if (row === cursor) {
      cursor = cursor.nextElementSibling;
    } else {
      list.insertBefore(row, cursor);
    }
    previous = message;
  }
  for (const child of [...list.children]) {
    if (!keep.has(child)) child.remove();
  }
}

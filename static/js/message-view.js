/**
 * Drawing the message list. Rows are keyed (by id, or by cid while pending)
 * and reused, so that a re-render after each frame keeps the DOM, the
 * scroll position, any text selection and an open editor stable. Text from
 * the network only ever goes through textContent; links are built with DOM
 * APIs from linkParts() (links.js).
 *
 * A row:
 *
 *     li.message [data-id, data-cid, data-pending, data-from, data-deleted]
 *       div.message-meta     sender, time, marker ("Sending…", "Not sent (…)"), Dismiss
 *       div.message-body     span.message-text (the text, its links), span.message-edited
 *       div.message-error    the server's reason for a refusal (muted…)
 *       div.message-actions  Edit, Delete: on my own confirmed messages
 *       form.message-editor  while editing it; div.message-confirm while deleting it
 *
 * Buttons carry data-action (dismiss, edit, delete, save, cancel, confirm-delete);
 * app.js listens on the list.
 */
import { linkParts } from './links.js';

/** Messages from the same sender within this many seconds are grouped. */
const GROUP_SECONDS = 5 * 60;
/** What a deleted message shows instead of its text. */
export function deletedText(message) {
  return message.by === 'operator' ? 'message deleted by an operator' : 'message deleted';
}

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

function element(doc, tag, className, text) {
  const node = doc.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function button(doc, action, label, { className = 'message-action', testid = `message-${action}`, type = 'button' } = {}) {
  const node = element(doc, 'button', className, label);
  node.type = type;
  node.dataset.action = action;
  node.dataset.testid = testid;
  return node;
}

function createRow(doc) {
  const row = element(doc, 'li', 'message');
  row.dataset.testid = 'message';
  const meta = element(doc, 'div', 'message-meta');
  meta.append(element(doc, 'span', 'message-from'), element(doc, 'time', 'message-time'),
    element(doc, 'span', 'message-marker'));
  const body = element(doc, 'div', 'message-body');
  const edited = element(doc, 'span', 'message-edited', '(edited)');
  edited.dataset.testid = 'message-edited';
  body.append(element(doc, 'span', 'message-text'), edited);
  row.append(meta, body);
  return row;
}

/** Who sent a message, as shown: its display name (the id when none is known). */
export function senderName(message, nameOf) {
  if (typeof message.name === 'string' && message.name) return message.name;
  return nameOf ? nameOf(message.from) : message.from;
}

/** Puts `text` into `node` as text and safe links, unless it shows that text already. */
export function renderText(node, text) {
  if (node.textContent === text && node.firstChild) return;
  const doc = node.ownerDocument;
  const parts = linkParts(text).map((part) => {
    if (!part.href) return doc.createTextNode(part.text);
    const link = element(doc, 'a', 'message-link', part.text);
    link.href = part.href;
    link.rel = 'noopener noreferrer';
    link.target = '_blank';
    return link;
  });
  node.replaceChildren(...parts);
}

/** The single child of `parent` with class `className`, made by `make()` or removed as `wanted` says. */
function part(parent, className, wanted, make) {
  let node = parent.querySelector(`:scope > .${className}`);
  if (wanted && !node) {
    node = make();
    parent.append(node);
  } else if (!wanted && node) {
    node.remove();
    node = null;
  }
  return node;
}

function createActions(doc) {
  const actions = element(doc, 'div', 'message-actions');
  actions.append(button(doc, 'edit', 'Edit'), button(doc, 'delete', 'Delete'));
  return actions;
}

function createEditor(doc, text) {
  const form = element(doc, 'form', 'message-editor');
  form.dataset.testid = 'message-editor';
  const input = element(doc, 'textarea', 'message-editor-input');
  input.dataset.testid = 'message-editor-input';
  input.setAttribute('aria-label', 'Edit message');
  input.rows = 2;
  input.value = text;
  const hint = element(doc, 'span', 'muted small', 'Enter to save, Escape to cancel');
  form.append(input, button(doc, 'save', 'Save', { className: 'button primary', type: 'submit' }),
    button(doc, 'cancel', 'Cancel', { className: 'button' }), hint);
  return form;
}

function createConfirm(doc) {
  const box = element(doc, 'div', 'message-confirm');
  box.dataset.testid = 'message-confirm';
  box.setAttribute('role', 'group');
  box.setAttribute('aria-label', 'Delete this message?');
  box.append(element(doc, 'span', '', 'Delete this message?'),
    button(doc, 'confirm-delete', 'Delete', { className: 'button danger' }),
    button(doc, 'cancel', 'Cancel', { className: 'button' }));
  return box;
}

function markerOf(message, change) {
  if (message.failed) return `Not sent (${message.failed})`;
  if (message.pending) return 'Sending…';
  if (change === 'edit') return 'Saving…';
  if (change === 'delete') return 'Deleting…';
  return '';
}

function updateRow(row, message, { me, continued, nameOf, editing, changes, canChange }) {
  const doc = row.ownerDocument;
  const [meta, body] = row.children;
  const [from, time, marker] = meta.children;
  const [text, edited] = body.children;
  const mine = message.from === me;
  const confirmed = Number.isInteger(message.id);
  row.dataset.key = rowKey(message);
  row.dataset.id = message.id ?? '';
  row.dataset.cid = message.cid ?? '';
  row.dataset.pending = String(Boolean(message.pending));
  row.dataset.deleted = String(Boolean(message.deleted));
  row.classList.toggle('mine', mine);
  row.classList.toggle('pending', Boolean(message.pending) && !message.failed);
  row.classList.toggle('failed', Boolean(message.failed));
  row.classList.toggle('deleted', Boolean(message.deleted));
  row.classList.toggle('continued', continued);
  const sender = senderName(message, nameOf);
  if (from.textContent !== sender) from.textContent = sender;
  row.dataset.from = message.from ?? '';
  const stamp = Number.isFinite(message.ts) ? formatTime(message.ts) : '';
  if (time.textContent !== stamp) time.textContent = stamp;
  if (Number.isFinite(message.ts)) time.dateTime = new Date(message.ts * 1000).toISOString();
  const mark = markerOf(message, confirmed ? changes.get(message.id) : undefined);
  marker.textContent = mark;
  marker.hidden = !mark;
  // Only a failed message can be dismissed; the button exists only then, so
  // that it is not part of the text of ordinary rows.
  part(meta, 'message-dismiss', Boolean(message.failed),
    () => button(doc, 'dismiss', 'Dismiss', { className: 'message-dismiss' }));
  renderText(text, message.deleted ? deletedText(message) : message.text);
  edited.hidden = !message.edited || Boolean(message.deleted);
  if (message.edited && Number.isFinite(message.edited)) {
    edited.title = `edited ${formatTime(message.edited)}`;
  }
  const reason = part(row, 'message-error', Boolean(message.failed && message.failedReason),
    () => element(doc, 'div', 'message-error'));
  if (reason && reason.textContent !== message.failedReason) reason.textContent = message.failedReason;

  const changeable = mine && confirmed && !message.deleted && canChange;
  const mode = changeable && editing && editing.id === message.id ? editing.mode : null;
  part(row, 'message-actions', changeable && mode === null, () => createActions(doc));
  part(row, 'message-editor', mode === 'edit', () => createEditor(doc, message.text));
  part(row, 'message-confirm', mode === 'delete', () => createConfirm(doc));
}

/**
 * Makes `list` (an <ol>) show `messages` in order, reusing existing rows.
 * @param {HTMLElement} list
 * @param {Array<object>} messages from Conversation.messages()
 * @param {object} context
 * @param {string} context.me my user id
 * @param {(userId: string) => string} [context.nameOf] the display name of a
 *   user id, for messages that carry no name
 * @param {{id: number, mode: string}|null} [context.editing] the message of mine
 *   being edited (mode `edit`) or about to be deleted (`delete`)
 * @param {Map<number, string>} [context.changes] my edits and deletions
 *   awaiting their ack, by message id
 * @param {boolean} [context.canChange] whether my messages offer Edit and Delete
 */
export function renderMessages(list, messages, {
  me, nameOf, editing = null, changes = new Map(), canChange = true,
}) {
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
    updateRow(row, message, {
      me, continued, nameOf, editing, changes, canChange,
    });
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

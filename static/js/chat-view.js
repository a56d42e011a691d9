/**
 * The chat page's views: each draws one part of the page from the state
 * (model.js) and nothing else. They attach no listeners: app.js listens on
 * the lists once (the items carry data-key, data-user) and turns clicks into
 * actions. Text from the network is only ever set with textContent.
 */
import { counterOf } from './composer.js';
import { renderMessages } from './message-view.js';
import {
  canManage, changesByTarget, composerOf, currentEntry, labelOf, loadOlderOf, memberIds, membersNoteOf,
  statusOfState, totalUnread, typingNames,
} from './model.js';
import { STATUS_LABELS } from './status.js';
import { typingText } from './typing.js';

/** The elements of index.html the views draw into, found once the page is there. */
export function findElements(doc = document) {
  const byTestId = (id) => doc.querySelector(`[data-testid="${id}"]`);
  return {
    app: doc.querySelector('.app'),
    status: byTestId('status'),
    statusLabel: doc.querySelector('.status-label'),
    whoami: byTestId('whoami'),
    logout: byTestId('logout'),
    loginView: byTestId('login-view'),
    loginForm: byTestId('login-form'),
    loginName: byTestId('login-name'),
    loginInfo: byTestId('login-info'),
    loginError: byTestId('login-error'),
    loginSubmit: byTestId('login-submit'),
    chatView: byTestId('chat-view'),
    roomList: byTestId('room-list'),
    roomForm: byTestId('room-form'),
    roomInput: byTestId('room-input'),
    browse: byTestId('browse-rooms'),
    dmList: byTestId('dm-list'),
    dmEmpty: byTestId('dm-empty'),
    memberList: byTestId('member-list'),
    membersNote: byTestId('members-note'),
    inviteForm: byTestId('invite-form'),
    inviteInput: byTestId('invite-input'),
    title: byTestId('conversation-title'),
    topic: byTestId('topic'),
    typing: byTestId('typing'),
    toast: byTestId('toast'),
    toastText: byTestId('toast-text'),
    toastRetry: byTestId('toast-retry'),
    gaveUp: byTestId('gave-up'),
    gaveUpText: byTestId('gave-up-text'),
    retry: byTestId('retry'),
    kicked: byTestId('kicked'),
    kickedReason: byTestId('kicked-reason'),
    reconnect: byTestId('reconnect'),
    flash: byTestId('flash'),
    scroller: byTestId('message-scroller'),
    loadOlder: byTestId('load-older'),
    empty: byTestId('empty'),
    messageList: byTestId('message-list'),
    composer: byTestId('composer'),
    composerInput: byTestId('composer-input'),
    composerSend: byTestId('composer-send'),
    counter: byTestId('counter'),
    scrim: byTestId('scrim'),
    toggles: [...doc.querySelectorAll('[data-panel-toggle]')],
    drawers: { rooms: doc.getElementById('sidebar'), members: doc.getElementById('members') },
    directory: byTestId('directory'),
    directoryClose: byTestId('directory-close'),
    directoryStatus: byTestId('directory-status'),
    directoryList: byTestId('directory-list'),
    createForm: byTestId('create-form'),
    createName: byTestId('create-name'),
    createTopic: byTestId('create-topic'),
    createPrivate: byTestId('create-private'),
    createError: byTestId('create-error'),
    createSubmit: byTestId('create-submit'),
  };
}

export function renderStatus(ui, state) {
  const status = statusOfState(state);
  if (status === null) {
    ui.status.dataset.state = 'stopped';
    ui.statusLabel.textContent = 'Not signed in';
    return;
  }
  ui.status.dataset.state = status;
  ui.statusLabel.textContent = STATUS_LABELS[status];
}

/**
 * The notices of the connection: the reconnect toast (its countdown text is
 * app.js's, it ticks), "could not reconnect" and "disconnected by an operator".
 */
export function renderNotices(ui, state) {
  const { state: s, reason, message, attempts } = state.connection;
  ui.toast.hidden = s !== 'waiting';

  const gaveUp = s === 'stopped' && (reason === 'gave_up' || reason === 'server_closed');
  ui.gaveUp.hidden = !gaveUp;
  if (gaveUp) {
    ui.gaveUpText.textContent = reason === 'gave_up'
      ? `Could not reconnect after ${attempts} attempts.`
      : 'The server closed the connection.';
  }

  const kicked = s === 'stopped' && reason === 'kicked';
  ui.kicked.hidden = !kicked;
  if (kicked) ui.kickedReason.textContent = message || 'no reason given';
}

const SVG = 'http://www.w3.org/2000/svg';

/** A padlock, for private rooms (decoration: the text says "private" too). */
function lockIcon(doc) {
  const svg = doc.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.classList.add('lock');
  const body = doc.createElementNS(SVG, 'rect');
  for (const [k, v] of Object.entries({ x: 5, y: 11, width: 14, height: 10, rx: 2 })) body.setAttribute(k, String(v));
  const shackle = doc.createElementNS(SVG, 'path');
  shackle.setAttribute('d', 'M8 11V8a4 4 0 0 1 8 0v3');
  svg.append(body, shackle);
  return svg;
}

function conversationItem(state, entry, doc) {
  const label = labelOf(state, entry);
  const leaveLabel = entry.kind === 'room' ? 'Leave' : 'Close';
  const li = doc.createElement('li');
  li.className = 'conv-item';
  li.dataset.key = entry.key;
  li.dataset.testid = entry.kind === 'room' ? 'room-item' : 'dm-item';
  li.dataset.name = label;
  if (entry.kind === 'dm') li.dataset.user = entry.name;
  const open = doc.createElement('button');
  open.type = 'button';
  open.className = 'conv-open';
  if (entry.key === state.current) {
    li.classList.add('active');
    open.setAttribute('aria-current', 'true');
  }
  const prefix = doc.createElement('span');
  prefix.className = 'conv-prefix';
  prefix.textContent = entry.kind === 'room' ? '#' : '@';
  if (entry.private) {
    prefix.replaceChildren(lockIcon(doc));
    prefix.title = 'private room';
    li.dataset.private = 'true';
  }
  const name = doc.createElement('span');
  name.className = 'conv-name';
  name.textContent = label;
  open.append(prefix, name);
  if (entry.private) {
    const hint = doc.createElement('span');
    hint.className = 'visually-hidden';
    hint.textContent = ' (private)';
    open.append(hint);
  }
  if (entry.unread > 0) {
    const badge = doc.createElement('span');
    badge.className = 'badge';
    badge.dataset.testid = 'unread';
    badge.textContent = entry.unread > 99 ? '99+' : String(entry.unread);
    badge.setAttribute('aria-label', `${entry.unread} unread`);
    open.append(badge);
  }
  const close = doc.createElement('button');
  close.type = 'button';
  close.className = 'conv-close';
  close.dataset.testid = entry.kind === 'room' ? 'room-leave' : 'dm-close';
  close.setAttribute('aria-label', `${leaveLabel} ${label}`);
  close.title = `${leaveLabel} ${label}`;
  close.textContent = '×';
  li.append(open, close);
  return li;
}

/** The room and direct-message lists, and the unread count in the window title. */
export function renderSidebar(ui, state) {
  const doc = ui.roomList.ownerDocument;
  const rooms = [];
  const dms = [];
  for (const entry of state.conversations.values()) {
    (entry.kind === 'room' ? rooms : dms).push(conversationItem(state, entry, doc));
  }
  ui.roomList.replaceChildren(...rooms);
  ui.dmList.replaceChildren(...dms);
  ui.dmEmpty.hidden = dms.length > 0;
  const unread = totalUnread(state);
  doc.title = unread > 0 ? `(${unread}) imserver chat` : 'imserver chat';
}

/** A stable colour per name, for avatars. */
export function hueOf(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

export function renderMembers(ui, state) {
  const doc = ui.memberList.ownerDocument;
  const { stale, note } = membersNoteOf(state);
  ui.memberList.classList.toggle('stale', stale);
  ui.memberList.dataset.stale = String(stale);
  ui.membersNote.textContent = note;
  ui.membersNote.hidden = !note;
  const manage = canManage(state);
  ui.inviteForm.hidden = !manage;
  const items = memberIds(state).map((id) => {
    const name = state.names.of(id);
    const li = doc.createElement('li');
    li.dataset.testid = 'member';
    li.dataset.name = name;
    li.dataset.user = id;
    const button = doc.createElement('button');
    button.type = 'button';
    button.className = 'member';
    const avatar = doc.createElement('span');
    avatar.className = 'avatar';
    avatar.textContent = name.slice(0, 1).toUpperCase();
    avatar.style.setProperty('--hue', String(hueOf(name)));
    const label = doc.createElement('span');
    label.className = 'member-name';
    label.textContent = name;
    button.append(avatar, label);
    if (id === state.me.id) {
      const you = doc.createElement('span');
      you.className = 'muted small';
      you.textContent = '(you)';
      button.append(you);
      button.disabled = true;
    } else {
      button.title = `Message ${name}`;
    }
    li.append(button);
    if (manage && id !== state.me.id) {
      const remove = doc.createElement('button');
      remove.type = 'button';
      remove.className = 'member-remove';
      remove.dataset.testid = 'member-remove';
      remove.textContent = 'Remove';
      remove.setAttribute('aria-label', `Remove ${name} from the room`);
      li.append(remove);
    }
    return li;
  });
  ui.memberList.replaceChildren(...items);
}

export function renderLoadOlder(ui, state) {
  const { show, enabled, loading } = loadOlderOf(state);
  ui.loadOlder.hidden = !show;
  if (!show) return;
  ui.loadOlder.disabled = !enabled;
  ui.loadOlder.textContent = loading ? 'Loading…' : 'Load older messages';
}

/**
 * The open conversation: title, messages, composer. `toBottom` scrolls to the
 * newest message; `keepPosition` keeps what is in view when older messages
 * come in above; otherwise a view at the bottom (state.atBottom) stays at
 * the bottom.
 */
export function renderConversation(ui, state, { toBottom = false, keepPosition = false } = {}) {
  const entry = currentEntry(state);
  const scroller = ui.scroller;
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  // The state's word, not a measure now: a notice that just appeared may
  // have shrunk the list's box without the user scrolling anywhere.
  const { atBottom } = state;
  const context = {
    me: state.me.id,
    nameOf: (id) => state.names.of(id),
    editing: state.editing,
    changes: changesByTarget(state),
    canChange: !composerOf(state).disabled,
  };

  if (!entry) {
    ui.title.textContent = 'No conversation';
    ui.topic.hidden = true;
    renderMessages(ui.messageList, [], context);
    ui.empty.hidden = false;
    ui.empty.textContent = 'Join a room to start chatting.';
    ui.composer.hidden = true;
    renderLoadOlder(ui, state);
    return;
  }
  ui.composer.hidden = false;
  const label = labelOf(state, entry);
  ui.title.textContent = entry.kind === 'room' ? `#${label}` : `@${label}`;
  ui.title.title = entry.kind === 'dm' && label !== entry.name ? `user id ${entry.name}` : '';
  ui.topic.textContent = entry.private ? `Private room${entry.topic ? ` · ${entry.topic}` : ''}` : entry.topic;
  ui.topic.hidden = !ui.topic.textContent;
  const messages = entry.conv.messages();
  renderMessages(ui.messageList, messages, context);
  ui.empty.hidden = messages.length > 0;
  ui.empty.textContent = entry.loaded ? 'No messages yet. Say hi!' : 'Loading…';
  renderLoadOlder(ui, state);

  if (keepPosition && !atBottom) {
    scroller.scrollTop = scroller.scrollHeight - fromBottom;
  } else if (toBottom || atBottom) {
    scroller.scrollTop = scroller.scrollHeight;
  }
}

/** Whether the newest message is in view (within a few pixels of the bottom). */
export function isAtBottom(scroller) {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
}

/** "alice is typing…" under the messages of the conversation shown. */
export function renderTyping(ui, state) {
  const text = typingText(typingNames(state));
  if (ui.typing.textContent !== text) ui.typing.textContent = text;
}

/** The composer: enabled or not (and why), and its length counter under `maxChars`. */
export function renderComposer(ui, state, maxChars) {
  const { disabled, reason } = composerOf(state);
  ui.composerInput.disabled = disabled;
  ui.composerSend.disabled = disabled;
  const entry = currentEntry(state);
  if (disabled) {
    ui.composerInput.placeholder = reason;
  } else if (entry) {
    ui.composerInput.placeholder = `Message ${entry.kind === 'room' ? '#' : '@'}${labelOf(state, entry)}`;
  }
  const counter = counterOf(ui.composerInput.value, maxChars);
  ui.counter.textContent = counter.label;
  ui.counter.hidden = !counter.show;
  ui.counter.classList.toggle('over', counter.over);
  ui.composerInput.setAttribute('aria-invalid', String(counter.over));
  return counter;
}

/** The drawers of a narrow screen: which one is open, and each toggle's aria-expanded. */
export function renderPanels(ui, state) {
  ui.app.dataset.panel = state.panel;
  for (const toggle of ui.toggles) {
    toggle.setAttribute('aria-expanded', String(state.panel === toggle.dataset.panelToggle));
  }
}

/** Empties what a session drew (after a logout). */
export function clearSession(ui) {
  ui.roomList.replaceChildren();
  ui.dmList.replaceChildren();
  ui.memberList.replaceChildren();
  ui.messageList.replaceChildren();
  ui.title.textContent = '';
  ui.topic.textContent = '';
  ui.typing.textContent = '';
  ui.whoami.textContent = '';
}

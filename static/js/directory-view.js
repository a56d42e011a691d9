/**
 * The room directory dialog ("Browse rooms"): the rooms of the `rooms`
 * frame with their topics and member counts, a Join (or Open) button each,
 * and the form that creates a room. Drawn from the model's `directory` and
 * conversations; app.js listens on the list (items carry data-room) and the
 * form.
 */
import { roomKey } from './conversation.js';

function item(doc, room, joinedHere) {
  const li = doc.createElement('li');
  li.className = 'directory-room';
  li.dataset.testid = 'directory-room';
  li.dataset.room = room.room;
  const heading = doc.createElement('div');
  heading.className = 'directory-room-heading';
  const name = doc.createElement('span');
  name.className = 'directory-room-name';
  name.textContent = `#${room.room}`;
  heading.append(name);
  if (room.private) {
    const lock = doc.createElement('span');
    lock.className = 'tag';
    lock.textContent = 'private';
    heading.append(lock);
  }
  const count = doc.createElement('span');
  count.className = 'directory-room-members muted small';
  count.dataset.testid = 'directory-members';
  count.textContent = `${room.members} ${room.members === 1 ? 'member' : 'members'}`;
  heading.append(count);
  const topic = doc.createElement('p');
  topic.className = 'directory-room-topic';
  topic.dataset.testid = 'directory-topic';
  topic.textContent = room.topic || 'No topic';
  topic.classList.toggle('muted', !room.topic);
  const action = doc.createElement('button');
  action.type = 'button';
  action.className = joinedHere ? 'button' : 'button primary';
  action.dataset.testid = 'directory-join';
  action.textContent = joinedHere ? 'Open' : 'Join';
  action.setAttribute('aria-label', `${joinedHere ? 'Open' : 'Join'} #${room.room}`);
  li.append(heading, topic, action);
  return li;
}

/** Opens or closes the dialog, and draws the list, its status and the create form's error. */
export function renderDirectory(ui, state) {
  const { open, rooms, creating, error } = state.directory;
  const dialog = ui.directory;
  if (!open) {
    if (dialog.open) dialog.close();
    return;
  }
  if (!dialog.open) dialog.showModal();
  const doc = dialog.ownerDocument;
  if (rooms === null) {
    ui.directoryStatus.textContent = 'Loading rooms…';
  } else {
    ui.directoryStatus.textContent = rooms.length === 0
      ? 'No rooms yet: create the first one.'
      : `${rooms.length} ${rooms.length === 1 ? 'room' : 'rooms'}, the busiest first`;
  }
  ui.directoryList.replaceChildren(...(rooms ?? []).map(
    (room) => item(doc, room, state.conversations.has(roomKey(room.room))),
  ));
  ui.createSubmit.disabled = creating !== null;
  ui.createError.textContent = error;
  ui.createError.hidden = !error;
}

/** Room names, as the server takes them (imserver/core/protocol.py's ROOM_RE). */

const ROOM = /^[A-Za-z0-9_.-]{1,64}$/;

/** Whether `name` is a room name: 1-64 letters, digits, '-', '_' or '.'. */
export function validRoom(name) {
  return typeof name === 'string' && ROOM.test(name);
}

/** Room names sorted, each once (a room field's suggestions: the summary's rooms, a client's). */
export function knownRooms(names) {
  return [...new Set((names || []).filter(validRoom))].sort();
}

/** Room names, as the server takes them (imserver/core/protocol.py's ROOM_RE). */

const ROOM = /^[A-Za-z0-9_.-]{1,64}$/;

/** Whether `name` is a room name: 1-64 letters, digits, '-', '_' or '.'. */
export function validRoom(name) {
  return typeof name === 'string' && ROOM.test(name);
}

/** The rooms the clients are in, sorted, each once (for a room field's suggestions). */
export function knownRooms(clients) {
  return [...new Set((clients || []).flatMap((c) => c.rooms || []))].sort();
}

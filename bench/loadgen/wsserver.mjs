/**
 * The comparison server of the benchmarks: a broadcast chat server on `ws`, as
 * one would first write it (the "seed design"), speaking enough of imserver's
 * protocol (/work/shared/PROTOCOL.md) for the load generators to drive it.
 *
 *     node wsserver.mjs [PORT]        (or PORT in the environment; 0 = OS-chosen)
 *
 * Prints `listening on http://127.0.0.1:PORT` once it listens, as imserver does.
 *
 * - POST /api/login {"name"} -> {"token", "user": {"id", "name"}} (the id is the name);
 * - GET /ws?token=... upgrades (401 for an unknown token), then a `welcome` frame;
 * - text `ping` -> `pong`; `join` -> `joined` (no history) and `presence` to the
 *   room when a user's first socket joins; `leave` -> `left`;
 * - `say` -> `ack` to the sender, `message` to every other socket in the room:
 *   the frame serialized once and sent to each;
 * - GET /healthz -> {"connections": n}.
 *
 * Nothing is stored: a message exists only in the frames sent. The heartbeat
 * is the one from the `ws` README: every 30 s, terminate each socket that has
 * not answered the previous sweep's ping, then ping the rest.
 */

import { randomBytes } from 'node:crypto';
import http from 'node:http';

import { WebSocketServer } from 'ws';

const HEARTBEAT_MS = 30_000;
const MAX_BODY = 64 * 1024;
const MAX_TEXT = 4000;
const NAME = /^[A-Za-z0-9_.-]{1,32}$/;
const ROOM = /^[A-Za-z0-9_.-]{1,64}$/;

const usersByToken = new Map(); // token -> {id, name}
const rooms = new Map(); // room -> {sockets: Set<ws>, members: Map<user id, sockets of that user>}
let connections = 0;
let messages = 0;

/** A frame the protocol refuses: answered with an `error` frame, the socket kept. */
class BadFrame extends Error {
  constructor(code, message, cid = undefined) {
    super(message);
    this.code = code;
    this.cid = typeof cid === 'string' ? cid : undefined;
  }
}

function reply(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) });
  res.end(data);
}

function login(req, res) {
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY) req.destroy();
    else chunks.push(chunk);
  });
  req.on('end', () => {
    let name;
    try {
      name = JSON.parse(Buffer.concat(chunks).toString()).name;
    } catch {
      name = undefined;
    }
    if (typeof name !== 'string' || !NAME.test(name)) {
      reply(res, 400, { error: 'bad_name', message: 'a name is 1-32 letters, digits, -, _ or .' });
      return;
    }
    const user = { id: name, name };
    const token = randomBytes(18).toString('base64url');
    usersByToken.set(token, user);
    reply(res, 200, { token, user });
  });
}

const server = http.createServer((req, res) => {
  const { pathname } = new URL(req.url, 'http://host');
  if (req.method === 'POST' && pathname === '/api/login') login(req, res);
  else if (req.method === 'GET' && pathname === '/healthz') reply(res, 200, { connections: wss.clients.size });
  else reply(res, 404, { error: 'not_found' });
});

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_BODY });

server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://host');
  const user = usersByToken.get(url.searchParams.get('token'));
  if (url.pathname !== '/ws' || user === undefined) {
    socket.end(`HTTP/1.1 ${user === undefined ? '401 Unauthorized' : '404 Not Found'}\r\n` +
      'Connection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, user));
});

wss.on('connection', (ws, user) => {
  ws.isAlive = true;
  ws.user = user;
  ws.rooms = new Set();
  ws.on('pong', () => { ws.isAlive = true; });
  ws.on('error', () => {});
  ws.on('close', () => {
    for (const room of ws.rooms) leave(ws, room);
  });
  ws.on('message', (data, isBinary) => {
    try {
      onFrame(ws, data, isBinary);
    } catch (error) {
      if (!(error instanceof BadFrame)) console.error(error);
      const { code, message } = error instanceof BadFrame ? error : { code: 'bad_request', message: 'bad frame' };
      ws.send(JSON.stringify({ type: 'error', code, message, cid: error.cid }));
    }
  });
  ws.send(JSON.stringify({
    type: 'welcome', conn: `c${++connections}`, user, heartbeat: { interval: 30, timeout: 60 },
    server_time: Date.now() / 1000,
  }));
});

function onFrame(ws, data, isBinary) {
  if (isBinary) throw new BadFrame('bad_request', 'binary frames are not part of the protocol');
  const text = data.toString();
  if (text === 'ping') {
    ws.send('pong');
    return;
  }
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    throw new BadFrame('bad_request', 'not JSON');
  }
  if (frame === null || typeof frame !== 'object') throw new BadFrame('bad_request', 'not a JSON object');
  if (frame.type === 'join') join(ws, roomOf(frame));
  else if (frame.type === 'leave') {
    const room = roomOf(frame);
    leave(ws, room);
    ws.send(JSON.stringify({ type: 'left', room }));
  } else if (frame.type === 'say') say(ws, frame);
  else throw new BadFrame('bad_request', `unknown type ${JSON.stringify(frame.type)}`);
}

function roomOf(frame) {
  if (typeof frame.room !== 'string' || !ROOM.test(frame.room)) {
    throw new BadFrame('bad_request', 'bad room', frame.cid);
  }
  return frame.room;
}

function broadcast(room, frame, except) {
  const data = JSON.stringify(frame);
  for (const ws of rooms.get(room)?.sockets ?? []) {
    if (ws !== except) ws.send(data);
  }
}

function join(ws, name) {
  let room = rooms.get(name);
  if (room === undefined) {
    room = { sockets: new Set(), members: new Map() };
    rooms.set(name, room);
  }
  if (!ws.rooms.has(name)) {
    ws.rooms.add(name);
    room.sockets.add(ws);
    const tabs = room.members.get(ws.user.id) ?? 0;
    room.members.set(ws.user.id, tabs + 1);
    if (tabs === 0) broadcast(name, { type: 'presence', room: name, joined: [ws.user.id], left: [] }, ws);
  }
  ws.send(JSON.stringify({ type: 'joined', room: name, members: [...room.members.keys()], messages: [],
    truncated: false }));
}

function leave(ws, name) {
  const room = rooms.get(name);
  if (!ws.rooms.delete(name) || room === undefined) return;
  room.sockets.delete(ws);
  const tabs = room.members.get(ws.user.id) - 1;
  if (tabs > 0) {
    room.members.set(ws.user.id, tabs);
    return;
  }
  room.members.delete(ws.user.id);
  if (room.sockets.size === 0) rooms.delete(name);
  else broadcast(name, { type: 'presence', room: name, joined: [], left: [ws.user.id] });
}

function say(ws, frame) {
  const { text, cid } = frame;
  const room = roomOf(frame);
  const fail = (code, message) => new BadFrame(code, message, cid);
  if (typeof text !== 'string' || text.length === 0) throw fail('bad_request', 'bad text');
  if (text.length > MAX_TEXT) throw fail('too_long', `text longer than ${MAX_TEXT} characters`);
  if (cid !== undefined && typeof cid !== 'string') throw fail('bad_request', 'bad cid');
  if (!ws.rooms.has(room)) throw fail('not_in_room', `not in ${room}`);
  const id = ++messages;
  const ts = Date.now() / 1000;
  ws.send(JSON.stringify({ type: 'ack', cid, id, ts }));
  broadcast(room, { type: 'message', id, room, from: ws.user.id, text, ts, cid }, ws);
}

setInterval(() => {
  for (const ws of wss.clients) {
    if (ws.isAlive === false) {
      ws.terminate();
      continue;
    }
    ws.isAlive = false;
    ws.ping();
  }
}, HEARTBEAT_MS);

process.on('SIGTERM', () => process.exit(0));

server.listen(Number(process.argv[2] ?? process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});

// The load generator's lean WebSocket client (bench/loadgen/lean.mjs): its frame
// parsing and replies, on a fake socket fed the bytes a server would send.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { setImmediate as nextTurn } from 'node:timers/promises';

import { LeanSocket } from '../../bench/loadgen/lean.mjs';

class FakeSocket extends EventEmitter {
  written = [];
  ended = false;
  destroyed = false;
  setNoDelay() {}
  pause() {}
  resume() {}
  write(bytes) { this.written.push(Buffer.from(bytes)); }
  end() { this.ended = true; }
  destroy() { this.destroyed = true; }
}

function serverFrame(opcode, payload, { fin = true } = {}) {
  const body = Buffer.from(payload);
  const length = body.length;
  const header = length < 126 ? Buffer.from([0, length])
    : length < 65536 ? Buffer.from([0, 126, length >> 8, length & 0xff])
      : Buffer.concat([Buffer.from([0, 127]), Buffer.alloc(8)]);
  if (length >= 65536) header.writeBigUInt64BE(BigInt(length), 2);
  header[0] = (fin ? 0x80 : 0) | opcode;
  return Buffer.concat([header, body]);
}

/** Unmask one client frame: [opcode, payload]. */
function clientFrame(bytes) {
  assert.equal(bytes[1] & 0x80, 0x80, 'client frames are masked');
  let length = bytes[1] & 0x7f;
  let at = 2;
  if (length === 126) { length = bytes.readUInt16BE(2); at = 4; }
  const mask = bytes.subarray(at, at + 4);
  const payload = Buffer.from(bytes.subarray(at + 4, at + 4 + length)).map((b, i) => b ^ mask[i & 3]);
  return [bytes[0] & 0x0f, Buffer.from(payload).toString()];
}

async function open(head = Buffer.alloc(0)) {
  const socket = new FakeSocket();
  const client = new LeanSocket(socket, head);
  const messages = [];
  const closes = [];
  client.on('message', (data) => messages.push(Buffer.from(data).toString()));
  client.on('close', (code) => closes.push(code));
  client.on('error', () => {});
  await nextTurn();
  return { socket, client, messages, closes };
}

test('messages come whole however the bytes are cut, the upgrade head first', async () => {
  const texts = ['{"type":"welcome"}', 'x'.repeat(300), 'y'.repeat(70000), ''];
  const stream = Buffer.concat(texts.map((t) => serverFrame(0x1, t)));
  for (const cut of [1, 2, 3, 7, 4096, stream.length]) {
    const { socket, messages } = await open(stream.subarray(0, 5));
    for (let at = 5; at < stream.length; at += cut) socket.emit('data', stream.subarray(at, at + cut));
    assert.deepEqual(messages, texts, `cut every ${cut} bytes`);
  }
});

test('a fragmented message is joined; a ping between its fragments is answered with a masked pong', async () => {
  const { socket, messages } = await open();
  socket.emit('data', Buffer.concat([
    serverFrame(0x1, 'hel', { fin: false }), serverFrame(0x9, 'beat'), serverFrame(0x0, 'lo', { fin: false }),
    serverFrame(0x0, '!'),
  ]));
  assert.deepEqual(messages, ['hello!']);
  assert.deepEqual(socket.written.map(clientFrame), [[0xa, 'beat']]);
});

test('send() writes one masked text frame', async () => {
  const { socket, client } = await open();
  client.send('{"type":"join","room":"bench"}');
  assert.deepEqual(socket.written.map(clientFrame), [[0x1, '{"type":"join","room":"bench"}']]);
});

test('a close frame is answered with its code, and the client reports it', async () => {
  const { socket, closes } = await open();
  const payload = Buffer.from([0x03, 0xe9]); // 1001
  socket.emit('data', serverFrame(0x8, payload));
  assert.deepEqual(closes, [1001]);
  assert.equal(socket.ended, true);
  const [opcode] = clientFrame(socket.written[0]);
  assert.equal(opcode, 0x8);
});

test('protocol violations drop the connection', async () => {
  const violations = [
    Buffer.from([0x81, 0x81, 1, 2, 3, 4, 0x61]), // masked by the server
    Buffer.from([0xc1, 0x01, 0x61]), // a reserved bit
    serverFrame(0x0, 'orphan'), // a continuation with no message
    serverFrame(0x3, 'x'), // an unknown opcode
    serverFrame(0x9, 'p', { fin: false }), // a fragmented control frame
  ];
  for (const bytes of violations) {
    const { socket, messages, closes } = await open();
    socket.emit('data', Buffer.concat([bytes, serverFrame(0x1, 'after')]));
    assert.equal(socket.destroyed, true);
    assert.deepEqual(messages, []);
    assert.deepEqual(closes, [1006]);
  }
});

/**
 * A lean WebSocket client for the fan-out receivers (RFC 6455, no extensions).
 *
 * The `ws` library reads each frame through a Writable stream and its event
 * machinery. With 1000 receivers in one Node thread, the load generator then
 * needed more CPU per delivery than the server (11-13 µs against 10-11 at 20
 * messages/s on a 2-core VM), and it is part of every latency measured. This
 * client parses server frames straight from the socket's chunks (a whole
 * frame is a subarray, no copy): 9-10 µs, most of it Node's socket reading.
 * It still answers pings and closes, so the server sees an ordinary client.
 * The sender keeps using `ws`.
 *
 * It speaks the subset of `ws` the scripts use: on/off/once('message', Buffer),
 * 'close', send(text), terminate().
 */

import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import http from 'node:http';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export class LeanSocket extends EventEmitter {
  #socket;
  #rest = null; // the start of a frame not yet whole
  #fragments = null; // a message arriving in fragments
  #closed = false;

  constructor(socket, head) {
    super();
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this.#feed(chunk));
    socket.on('error', () => {});
    socket.on('close', () => this.#gone(1006));
    // The welcome may have come with the upgrade response (in `head`): hold
    // everything until whoever awaits this socket has put its listeners on.
    socket.pause();
    setImmediate(() => {
      if (head.length) this.#feed(head);
      socket.resume();
    });
  }

  send(text) {
    this.#write(0x1, Buffer.from(text));
  }

  terminate() {
    this.#socket.destroy();
    this.#gone(1006);
  }

  #gone(code) {
    if (this.#closed) return;
    this.#closed = true;
    this.emit('close', code);
  }

  #fail(why) {
    if (this.listenerCount('error')) this.emit('error', new Error(why));
    else process.stderr.write(`lean client: ${why}\n`);
    this.terminate();
  }

  #feed(chunk) {
    const data = this.#rest ? Buffer.concat([this.#rest, chunk]) : chunk;
    let at = 0;
    while (!this.#closed && data.length - at >= 2) {
      const b0 = data[at];
      const b1 = data[at + 1];
      if (b1 & 0x80) return this.#fail('masked frame from the server');
      let length = b1 & 0x7f;
      let header = 2;
      if (length === 126) {
        if (data.length - at < 4) break;
        length = data.readUInt16BE(at + 2);
        header = 4;
      } else if (length === 127) {
        if (data.length - at < 10) break;
        length = Number(data.readBigUInt64BE(at + 2));
        header = 10;
      }
      if (data.length - at < header + length) break;
      const payload = data.subarray(at + header, at + header + length);
      at += header + length;
      this.#frame(b0, payload);
    }
    this.#rest = at < data.length ? Buffer.from(data.subarray(at)) : null;
  }

  #frame(b0, payload) {
    if (b0 & 0x70) return this.#fail('reserved bits set');
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    if (opcode >= 0x8) {
      if (!fin || payload.length > 125) return this.#fail('bad control frame');
      if (opcode === 0x9) this.#write(0xa, payload);
      else if (opcode === 0x8) {
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        this.#write(0x8, payload.subarray(0, 2));
        this.#socket.end();
        this.#gone(code);
      } else if (opcode !== 0xa) this.#fail(`unknown control opcode ${opcode}`);
      return;
    }
    if (opcode === 0x0) {
      if (this.#fragments === null) return this.#fail('continuation without a message');
      this.#fragments.push(payload);
    } else if (opcode === 0x1 || opcode === 0x2) {
      if (this.#fragments !== null) return this.#fail('new message inside a fragmented one');
      if (fin) {
        this.emit('message', payload);
        return;
      }
      this.#fragments = [payload];
    } else {
      return this.#fail(`unknown opcode ${opcode}`);
    }
    if (fin) {
      const message = Buffer.concat(this.#fragments);
      this.#fragments = null;
      this.emit('message', message);
    }
  }

  #write(opcode, payload) {
    if (this.#closed) return;
    const length = payload.length;
    const header = length < 126 ? 2 : length < 65536 ? 4 : 10;
    const frame = Buffer.allocUnsafe(header + 4 + length);
    frame[0] = 0x80 | opcode;
    if (header === 2) frame[1] = 0x80 | length;
    else if (header === 4) {
      frame[1] = 0x80 | 126;
      frame.writeUInt16BE(length, 2);
    } else {
      frame[1] = 0x80 | 127;
      frame.writeBigUInt64BE(BigInt(length), 2);
    }
    const mask = randomBytes(4);
    mask.copy(frame, header);
    for (let i = 0; i < length; i++) frame[header + 4 + i] = payload[i] ^ mask[i & 3];
    this.#socket.write(frame);
  }
}

/** Upgrade `url` (ws://...); resolves with the LeanSocket once the server has accepted. */
export function openLean(url, { timeoutMs = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString('base64');
    const request = http.request(url.replace(/^ws/, 'http'), {
      headers: {
        Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': key,
      },
    });
    request.setTimeout(timeoutMs, () => request.destroy(new Error('handshake timed out')));
    request.on('error', reject);
    request.on('response', (response) => {
      response.resume();
      reject(new Error(`HTTP ${response.statusCode}`));
    });
    request.on('upgrade', (response, socket, head) => {
      request.setTimeout(0);
      const accept = createHash('sha1').update(key + GUID).digest('base64');
      if (response.headers['sec-websocket-accept'] !== accept) {
        socket.destroy();
        reject(new Error('bad Sec-WebSocket-Accept'));
        return;
      }
      socket.setTimeout(0);
      resolve(new LeanSocket(socket, head));
    });
    request.end();
  });
}

// useChat (static/sdk/react.js) in React itself: react-dom rendering into jsdom,
// over a ChatConnection on a fake WebSocket.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { fakeConnection } from './connection-fixture.mjs';
import { devDepsOr, installDom } from './dev-deps.mjs';

const BOB = 'g:bob';

test('useChat renders the connection, the room and my messages from pending to acknowledged', async (t) => {
  if (!devDepsOr(t, ['react', 'react-dom/client', 'jsdom'])) return;
  const window = await installDom();
  globalThis.IS_REACT_ACT_ENVIRONMENT = true; // act() is how a test waits for React
  const { act, createElement: h, useState } = await import('react');
  const { createRoot } = await import('react-dom/client');
  const { useChat } = await import('../../static/sdk/react.js');

  const { conn, WS } = fakeConnection();
  const renders = { count: 0 };
  function Room({ connection, name }) {
    renders.count += 1;
    const chat = useChat(connection);
    const [draft, setDraft] = useState('hello');
    const room = chat.rooms.find((r) => r.name === name);
    return h('section', null,
      h('p', { id: 'state' }, chat.state),
      h('p', { id: 'members' }, room ? room.members.map((id) => chat.names.of(id)).join(',') : ''),
      h('ul', null, (room ? room.messages : []).map((m) => h('li', {
        key: m.cid ?? m.id, 'data-state': m.failed ? 'failed' : m.pending ? 'pending' : 'sent',
      }, `${m.name}: ${m.text}`))),
      h('button', { id: 'send', onClick: () => { chat.send(name, draft); setDraft(''); } }, 'Send'));
  }
  /** Another component on the same connection sees the same state. */
  function Status({ connection }) {
    return h('p', { id: 'status' }, useChat(connection).status.state);
  }

  const container = window.document.createElement('div');
  window.document.body.append(container);
  const root = createRoot(container);
  await act(async () => {
    root.render(h('div', null, h(Room, { connection: conn, name: 'general' }), h(Status, { connection: conn })));
  });
  const $ = (selector) => container.querySelector(selector);
  const items = () => [...container.querySelectorAll('li')].map((li) => `${li.textContent} [${li.dataset.state}]`);
  assert.equal($('#state').textContent, 'stopped');

  await act(async () => {
    conn.join('general');
    conn.connect();
  });
  assert.equal($('#state').textContent, 'connecting');
  const ws = WS.last;
  await act(async () => {
    ws.welcome({ interval: 3600, timeout: 7200 });
    ws.serverSend({
      type: 'joined', room: 'general', members: ['alice', BOB], names: { alice: 'alice', [BOB]: 'bob' },
      messages: [{ id: 1, room: 'general', from: BOB, name: 'bob', text: 'hi', ts: 1 }], truncated: false,
    });
  });
  assert.equal($('#state').textContent, 'open');
  assert.equal($('#status').textContent, 'open');
  assert.equal($('#members').textContent, 'alice,bob');
  assert.deepEqual(items(), ['bob: hi [sent]']);

  await act(async () => {
    $('#send').dispatchEvent(new window.MouseEvent('click', { bubbles: true }));
  });
  const say = ws.frames.at(-1);
  assert.deepEqual(say, { type: 'say', room: 'general', text: 'hello', cid: 'cid-1' });
  assert.deepEqual(items(), ['bob: hi [sent]', 'alice: hello [pending]']);

  await act(async () => {
    ws.serverSend({ type: 'ack', cid: say.cid, id: 2, ts: 2 });
  });
  assert.deepEqual(items(), ['bob: hi [sent]', 'alice: hello [sent]']);

  // A frame that changes nothing the hook shows renders nothing again.
  const before = renders.count;
  await act(async () => {
    ws.serverSend('pong');
  });
  assert.equal(renders.count, before);

  await act(async () => {
    ws.serverClose(1006);
  });
  assert.equal($('#state').textContent, 'waiting');
  await act(async () => root.unmount());
});

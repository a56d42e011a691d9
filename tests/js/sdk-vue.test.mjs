// useChat (static/sdk/vue.js) in Vue itself: @vue/test-utils mounting into
// jsdom, over a ChatConnection on a fake WebSocket.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { fakeConnection } from './connection-fixture.mjs';
import { devDepsOr, installDom } from './dev-deps.mjs';

const BOB = 'g:bob';

test('useChat gives refs of the connection, the room and my messages from pending to acknowledged', async (t) => {
  if (!devDepsOr(t, ['vue', '@vue/test-utils', 'jsdom'])) return;
  await installDom();
  const { defineComponent, h, nextTick, ref } = await import('vue');
  const { mount } = await import('@vue/test-utils');
  const { useChat } = await import('../../static/sdk/vue.js');
  const { chatStore } = await import('../../static/sdk/store.js');

  const { conn, WS } = fakeConnection();
  let listening = 0;
  const store = chatStore(conn);
  const subscribe = store.subscribe;
  store.subscribe = (listener) => { // counts the component's subscription
    listening += 1;
    const stop = subscribe(listener);
    return () => {
      listening -= 1;
      stop();
    };
  };

  const Room = defineComponent({
    props: { connection: { type: Object, required: true }, name: { type: String, required: true } },
    setup(props) {
      const { state, rooms, names, send } = useChat(props.connection);
      const draft = ref('hello');
      return () => {
        const room = rooms.value.find((r) => r.name === props.name);
        return h('section', [
          h('p', { id: 'state' }, state.value),
          h('p', { id: 'members' }, room ? room.members.map((id) => names.value.of(id)).join(',') : ''),
          h('ul', (room ? room.messages : []).map((m) => h('li', {
            key: m.cid ?? m.id, 'data-state': m.failed ? 'failed' : m.pending ? 'pending' : 'sent',
          }, `${m.name}: ${m.text}`))),
          h('button', { id: 'send', onClick: () => { send(props.name, draft.value); draft.value = ''; } }, 'Send'),
        ]);
      };
    },
  });

  const wrapper = mount(Room, { props: { connection: conn, name: 'general' } });
  const items = () => wrapper.findAll('li').map((li) => `${li.text()} [${li.attributes('data-state')}]`);
  assert.equal(wrapper.find('#state').text(), 'stopped');
  assert.equal(listening, 1);

  conn.join('general');
  conn.connect();
  await nextTick();
  assert.equal(wrapper.find('#state').text(), 'connecting');
  const ws = WS.last;
  ws.welcome({ interval: 3600, timeout: 7200 });
  ws.serverSend({
    type: 'joined', room: 'general', members: ['alice', BOB], names: { alice: 'alice', [BOB]: 'bob' },
    messages: [{ id: 1, room: 'general', from: BOB, name: 'bob', text: 'hi', ts: 1 }], truncated: false,
  });
  await nextTick();
  assert.equal(wrapper.find('#state').text(), 'open');
  assert.equal(wrapper.find('#members').text(), 'alice,bob');
  assert.deepEqual(items(), ['bob: hi [sent]']);

  await wrapper.find('#send').trigger('click');
  const say = ws.frames.at(-1);
  assert.deepEqual(say, { type: 'say', room: 'general', text: 'hello', cid: 'cid-1' });
  assert.deepEqual(items(), ['bob: hi [sent]', 'alice: hello [pending]']);

  ws.serverSend({ type: 'ack', cid: say.cid, id: 2, ts: 2 });
  await nextTick();
  assert.deepEqual(items(), ['bob: hi [sent]', 'alice: hello [sent]']);

  ws.serverClose(1006);
  await nextTick();
  assert.equal(wrapper.find('#state').text(), 'waiting');
  wrapper.unmount();
  assert.equal(listening, 0, 'the component stopped listening with its scope');
});

// A TypeScript application of imserver-client, checked with `tsc --noEmit`
// against the package as installed from its tarball (tests/js/sdk-package.test.mjs).
// The lines under @ts-expect-error must stay errors: the types are not `any`.
import {
  ChatConnection, OutboxFullError, State, chatStore, type ChatMessage, type ChatRoom, type ConnectionState,
} from 'imserver-client';
import { useChat as useReactChat } from 'imserver-client/react';
import { useChat as useVueChat } from 'imserver-client/vue';

const reconnect = { base: 1, factor: 2, cap: 30, attempts: 10, stable_after: 10, connect_timeout: 10 };

const connection = new ChatConnection({
  reconnect,
  outbox_limit: 200,
  url: 'wss://chat.example.com/ws',
  token: 'a JWT from the application',
  getToken: async () => (await fetch('/api/chat-token')).text(),
});
connection.addEventListener('statechange', (event) => {
  const state: ConnectionState = event.detail.state;
  const at: number | null = event.detail.reconnectAt;
  console.log(state, at);
});
connection.addEventListener('refreshfailed', (event) => {
  const code: 'token_unavailable' | 'bad_token' | 'forbidden' = event.detail.code;
  console.log(code, event.detail.delay);
});
connection.addEventListener('refused', (event) => console.log(event.detail.room));
connection.join('general');
connection.connect();
try {
  const cid: string = connection.say('general', 'hi');
  console.log(cid);
} catch (err) {
  if (err instanceof OutboxFullError) console.log(err.limit);
}
const open: boolean = connection.state === State.OPEN;
console.log(open, connection.history({ room: 'general' }, { before: 10 }));

// @ts-expect-error outbox_limit is required
new ChatConnection({ reconnect });
// @ts-expect-error getToken resolves to a token string
new ChatConnection({ reconnect, outbox_limit: 1, getToken: async () => 42 });
// @ts-expect-error refreshed tells when the token expires, not the token
connection.addEventListener('refreshed', (event: CustomEvent<{ token: number }>) => event);

const snapshot = chatStore(connection).getSnapshot();
const room: ChatRoom | undefined = snapshot.rooms.find((r) => r.name === 'general');
const first: ChatMessage | undefined = room?.messages[0];
const pending: boolean | undefined = first?.pending;
console.log(pending, snapshot.names.of('g:x'), snapshot.status.attempt);

export function ReactRoom(): string {
  const chat = useReactChat(connection);
  chat.send('general', 'hello');
  // @ts-expect-error a room is named by a string
  chat.send(1, 'hello');
  return `${chat.state} ${chat.rooms.length} ${chat.outbox.size}`;
}

export function vueSetup(): number {
  const { rooms, state, user, send } = useVueChat(connection);
  const now: ConnectionState = state.value;
  send('general', now);
  // @ts-expect-error a ref's value, not the ref, is the list
  rooms.length;
  return rooms.value.length + (user.value ? 1 : 0);
}

/**
 * useChat for Vue: the state of a ChatConnection as Vue refs (a shallowRef
 * of the connection's ChatStore snapshot, see store.js, and computed refs
 * of its parts).
 *
 *     const { state, rooms, send } = useChat(connection);
 *     // in a template: rooms[0].messages, state === 'open', send('general', text)
 *
 * Called in a component's setup (or any effect scope), it stops listening
 * when the scope ends. The connection's life (connect(), close()) is the
 * application's.
 */
import { computed, getCurrentScope, onScopeDispose, shallowRef } from 'vue';

import { chatStore } from './store.js';

/** Refs of `connection`'s state, with its actions (send, join, leave, loadOlder, discard). */
export function useChat(connection) {
  const store = chatStore(connection);
  const snapshot = shallowRef(store.getSnapshot());
  const stop = store.subscribe(() => {
    snapshot.value = store.getSnapshot();
  });
  if (getCurrentScope()) onScopeDispose(stop);
  const part = (key) => computed(() => snapshot.value[key]);
  return {
    snapshot,
    state: part('state'),
    status: part('status'),
    user: part('user'),
    names: part('names'),
    outbox: part('outbox'),
    rooms: part('rooms'),
    ...store.actions,
  };
}

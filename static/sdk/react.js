/**
 * useChat for React: the state of a ChatConnection in React's own store
 * (useSyncExternalStore over the connection's ChatStore, see store.js).
 *
 *     const chat = useChat(connection);
 *     chat.state;            // 'connecting' | 'open' | 'waiting' | 'stopped'
 *     chat.rooms;            // [{name, members, messages: [{..., pending}], ...}]
 *     chat.send('general', 'hi');
 *
 * Components that call useChat with the same connection share one store.
 * The connection's life (connect(), close()) is the application's.
 */
import { useMemo, useSyncExternalStore } from 'react';

import { chatStore } from './store.js';

/** The snapshot of `connection`'s store, with its actions (send, join, leave, loadOlder, discard). */
export function useChat(connection) {
  const store = chatStore(connection);
  const snapshot = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
  return useMemo(() => ({ ...snapshot, ...store.actions }), [snapshot, store]);
}

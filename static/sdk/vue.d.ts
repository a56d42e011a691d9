import type { ComputedRef, ShallowRef } from 'vue';

import type { ChatActions, ChatConnection, ChatSnapshot } from './index.js';

/** What useChat returns: refs of the store's snapshot and its parts, and its actions. */
export interface UseChat extends ChatActions {
  snapshot: Readonly<ShallowRef<ChatSnapshot>>;
  state: ComputedRef<ChatSnapshot['state']>;
  status: ComputedRef<ChatSnapshot['status']>;
  user: ComputedRef<ChatSnapshot['user']>;
  names: ComputedRef<ChatSnapshot['names']>;
  outbox: ComputedRef<ChatSnapshot['outbox']>;
  rooms: ComputedRef<ChatSnapshot['rooms']>;
}

/** Refs of `connection`'s state; stops listening when the calling scope ends. */
export declare function useChat(connection: ChatConnection): UseChat;

import type { ChatActions, ChatConnection, ChatSnapshot } from './index.js';

/** What useChat returns: the store's snapshot and its actions. */
export type UseChat = ChatSnapshot & ChatActions;

/** The state of `connection` in React's store (useSyncExternalStore), with its actions. */
export declare function useChat(connection: ChatConnection): UseChat;

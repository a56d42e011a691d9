// Types of imserver-client (hand-written; the modules are plain JavaScript).
// The protocol they speak is docs/PROTOCOL.md of imserver.

/** The connection's state; changes are announced by `statechange`. */
export type ConnectionState = 'connecting' | 'open' | 'waiting' | 'stopped';

export declare const State: Readonly<{
  CONNECTING: 'connecting';
  OPEN: 'open';
  WAITING: 'waiting';
  STOPPED: 'stopped';
}>;

/** Why a reconnect attempt is made (sent to the server as `cause`). */
export type ReconnectCause = 'close' | 'error' | 'watchdog' | 'network' | 'shutdown';

export declare const Cause: Readonly<{
  CLOSE: 'close';
  ERROR: 'error';
  WATCHDOG: 'watchdog';
  NETWORK: 'network';
  SHUTDOWN: 'shutdown';
}>;

/** Why the connection stopped for good (until connect() or retryNow()). */
export type StopReasonValue = 'auth' | 'kicked' | 'gave_up' | 'server_closed' | 'closed';

export declare const StopReason: Readonly<{
  AUTH: 'auth';
  KICKED: 'kicked';
  GAVE_UP: 'gave_up';
  SERVER_CLOSED: 'server_closed';
  CLOSED: 'closed';
}>;

export declare const CloseCode: Readonly<{
  NORMAL: 1000;
  GOING_AWAY: 1001;
  WATCHDOG: 4000;
  UNAUTHENTICATED: 4001;
  KICKED: 4003;
}>;

/** The `reconnect` settings of GET /api/client-config (seconds). */
export interface ReconnectSettings {
  base: number;
  factor: number;
  cap: number;
  /** Failed attempts in a row before giving up. */
  attempts: number;
  stable_after: number;
  connect_timeout: number;
}

/** A user as the server names it: an id (opaque for guests) and a display name. */
export interface User {
  id: string;
  name: string;
}

/** A WebSocket constructor (the browser's, or a stand-in). */
export type WebSocketLike = new (url: string) => {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  onclose: ((event: { code: number; reason: string; wasClean: boolean }) => void) | null;
};

export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface ChatConnectionOptions {
  /** The `reconnect` of GET /api/client-config. */
  reconnect: ReconnectSettings;
  /** The `outbox_limit` of GET /api/client-config: the most unacknowledged messages kept. */
  outbox_limit: number;
  /** The WebSocket endpoint without query; default: /ws on the page's origin. */
  url?: string | null;
  /** The token (a JWT of the application, or /api/login's), sent as ?token=. */
  token?: string | null;
  /** The application's way to mint a fresh token for the same user (token refresh). */
  getToken?: () => Promise<string>;
  /** Asked after a socket failed before opening: a fresh token, or null when the session is gone. */
  refreshToken?: () => Promise<string | null>;
  /** Seconds before expiry that a refresh is sent (or a tenth of the lifetime, if shorter); default 60. */
  refresh_lead?: number;
  /** Used only when the welcome carries none (seconds). */
  heartbeat?: { interval?: number; timeout?: number };
  /** Seconds before re-sending a frame refused for a passing reason; default 2. */
  resend_delay?: number;
  /** Storage key of the outbox; make it per user. Default 'imserver.outbox'. */
  storage_key?: string;
  /** Where the outbox is kept across reloads; default sessionStorage, null: nowhere. */
  storage?: StorageLike | null;
  WebSocket?: WebSocketLike;
  now?: () => number;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (id: any) => void;
  random?: () => number;
  createId?: () => string;
  /** Source of online, offline, pageshow; default window, null: none. */
  window?: EventTarget | null;
  /** Source of visibilitychange (with .hidden); default document, null: none. */
  document?: (EventTarget & { hidden: boolean }) | null;
}

/** A frame from the server: each has a `type` (see the protocol). */
export interface ServerFrame {
  type: string;
  [field: string]: unknown;
}

/** A frame the connection keeps until its ack: say, dm, edit or delete, with its cid. */
export interface QueuedFrame {
  type: 'say' | 'dm' | 'edit' | 'delete';
  cid: string;
  room?: string;
  to?: string;
  target?: number;
  text?: string;
}

export interface StateChange {
  state: ConnectionState;
  previous: ConnectionState;
  /** The current or next reconnect attempt (0: the first connect). */
  attempt: number;
  attempts: number;
  cause: ReconnectCause | null;
  /** ms until the next attempt, while waiting. */
  delay: number | null;
  /** When the next attempt is due (ms of now()), while waiting. */
  reconnectAt: number | null;
  /** Why it stopped, when stopped. */
  reason: StopReasonValue | null;
  message: string;
}

export interface ChatConnectionEventMap {
  statechange: CustomEvent<StateChange>;
  welcome: CustomEvent<ServerFrame>;
  message: CustomEvent<ServerFrame>;
  ack: CustomEvent<{ ack: ServerFrame; sent: QueuedFrame | null }>;
  failed: CustomEvent<{ cid: string; code: string; message: string; sent: QueuedFrame }>;
  error: CustomEvent<ServerFrame>;
  outbox: CustomEvent<{ size: number; limit: number }>;
  refused: CustomEvent<{ room: string; code: string; message: string }>;
  refreshed: CustomEvent<{ expires: number | null }>;
  refreshfailed: CustomEvent<{ code: 'token_unavailable' | 'bad_token' | 'forbidden'; message: string; delay: number }>;
  stopped: CustomEvent<{ reason: StopReasonValue; message: string }>;
}

export type HistoryTarget = { room: string } | { with: string };

/**
 * One user's link to the chat server, kept alive across network failures,
 * server restarts and background tabs: reconnects with backoff, re-joins
 * its rooms with `since`, resends unacknowledged messages with their cid,
 * and refreshes its token with `getToken`.
 */
export declare class ChatConnection extends EventTarget {
  constructor(options: ChatConnectionOptions);
  /** The options as given, merged over DEFAULTS. */
  readonly options: Readonly<ChatConnectionOptions>;
  /** The reconnect policy in use (seconds). */
  readonly policy: Readonly<{
    base: number; factor: number; cap: number; attempts: number; stableAfter: number; connectTimeout: number;
  }>;
  /** The token of the next connect (a refresh replaces it). */
  token: string | null;
  readonly state: ConnectionState;
  readonly attempt: number;
  readonly stopReason: StopReasonValue | null;
  readonly outboxLimit: number;
  /** The user of the last welcome, or null before it. */
  readonly user: User | null;
  /** The rooms this connection keeps joined. */
  readonly rooms: string[];
  readonly highestDmId: number | null;

  /** Unacknowledged frames, oldest first. */
  pending(): Array<{ frame: QueuedFrame; queuedAt: number }>;
  highestId(room: string): number | null;

  connect(): void;
  retryNow(cause?: ReconnectCause | null): void;
  close(): void;

  join(room: string): void;
  leave(room: string): void;
  /** Returns the cid; throws OutboxFullError when the outbox is full. */
  say(room: string, text: string): string;
  dm(to: string, text: string): string;
  edit(room: string | null, id: number, text: string): string;
  deleteMessage(room: string | null, id: number): string;
  discard(cid: string): void;
  /** These return false when not connected (nothing is queued). */
  history(target: HistoryTarget, options?: { before?: number | null; limit?: number }): boolean;
  read(target: HistoryTarget, id: number): boolean;
  typing(target: { room: string } | { to: string }, typing: boolean): boolean;
  listRooms(): boolean;
  createRoom(room: string, options?: { topic?: string; isPrivate?: boolean }): boolean;
  invite(room: string, user: string): boolean;
  removeMember(room: string, user: string): boolean;

  addEventListener<K extends keyof ChatConnectionEventMap>(
    type: K, listener: (event: ChatConnectionEventMap[K]) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof ChatConnectionEventMap>(
    type: K, listener: (event: ChatConnectionEventMap[K]) => void, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions): void;
}

export declare const DEFAULTS: Readonly<{
  heartbeat: Readonly<{ interval: number; timeout: number }>;
  resend_delay: number;
  url: null;
  token: null;
  storage_key: string;
  refresh_lead: number;
}>;

/** Thrown by say(), dm(), edit(), deleteMessage() and send() when the outbox is full. */
export declare class OutboxFullError extends Error {
  readonly code: 'outbox_full';
  readonly limit: number;
}

// ---- the store behind useChat -------------------------------------------------

/** A message as the store shows it: the server's frame, and my own while pending. */
export interface ChatMessage {
  /** null while pending. */
  id: number | null;
  cid?: string;
  room: string;
  /** The sender's user id (null: mine, sent before the first welcome). */
  from: string | null;
  name: string | null;
  text: string;
  /** Epoch seconds. */
  ts: number;
  edited?: number | boolean;
  deleted?: boolean;
  /** Sent, no ack yet. */
  pending: boolean;
  /** The error code of a message refused for good, or null. */
  failed: string | null;
  failedReason?: string;
}

export interface ChatRoom {
  name: string;
  /** The server's `joined` answer came on the current connection. */
  joined: boolean;
  /** User ids; see ChatSnapshot.names for their names. */
  members: string[];
  topic: string;
  private: boolean;
  /** The owner's user id, or null (a room made by joining it). */
  owner: string | null;
  messages: ChatMessage[];
  /** Older messages are on the server (loadOlder). */
  more: boolean;
  loadingOlder: boolean;
  /** The server would not let me in; the room is not joined again. */
  refused: { code: string; message: string } | null;
}

export interface Names {
  /** The display name of `id` (the id itself when no frame has named it). */
  of(id: string): string;
  has(id: string): boolean;
}

export interface ChatSnapshot {
  readonly state: ConnectionState;
  readonly status: Omit<StateChange, 'previous'>;
  readonly user: User | null;
  readonly names: Names;
  readonly outbox: { size: number; limit: number };
  readonly rooms: readonly ChatRoom[];
}

export interface ChatActions {
  /** Says `text` in `room`; pending until its ack. Returns the cid. */
  send(room: string, text: string): string;
  join(room: string): void;
  leave(room: string): void;
  /** Asks for the page before the room's oldest message; false when not connected. */
  loadOlder(room: string, limit?: number): boolean;
  /** Takes a pending (usually failed) message away. */
  discard(cid: string): void;
}

/** The state of one connection as immutable snapshots (for useSyncExternalStore and the like). */
export declare class ChatStore {
  constructor(connection: ChatConnection);
  readonly connection: ChatConnection;
  /** The actions bound to this store, to hand out. */
  readonly actions: Readonly<ChatActions>;
  subscribe(listener: () => void): () => void;
  getSnapshot(): ChatSnapshot;
}
// The store has the actions as methods too.
export interface ChatStore extends ChatActions {}

/** The one store of `connection`, made on the first call. */
export declare function chatStore(connection: ChatConnection): ChatStore;

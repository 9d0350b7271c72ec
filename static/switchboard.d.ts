// Types for switchboard.js, the Switchboard chat client (see docs/client.md).

/** A signed-in user as the server describes it. */
export interface User {
  id: string;
  username: string;
  guest: boolean;
}

/** A room's message (contract: the message object). */
export interface Message {
  type: "message";
  room: string;
  seq: number;
  id: string;
  user: string;
  body: string;
  sent_at: string;
  client_msg_id: string | null;
  /** Present once the message was edited: when, and `body` is the latest text. */
  edited_at?: string;
  /** Present (true) once the message was deleted; `body` is then empty. */
  deleted?: boolean;
}

/** An edit of message `id`: its own seq in the room's sequence. */
export interface MessageEdited {
  type: "message_edited";
  room: string;
  seq: number;
  id: string;
  body: string;
  edited_at: string;
}

/** A delete of message `id`: its own seq in the room's sequence. */
export interface MessageDeleted {
  type: "message_deleted";
  room: string;
  seq: number;
  id: string;
}

/** The user's read marker moved on another of their connections. */
export interface ReadState {
  type: "read";
  room: string;
  last_read: number;
  unread: number;
}

/** A room as the HTTP API describes it. */
export interface Room {
  name: string;
  topic: string;
  private: boolean;
  member_count: number;
  online_count: number;
  last_seq: number;
  kind: "room" | "dm";
  /** The other person, for a direct-message room. */
  with?: string;
  /** For rooms the caller is a member of. */
  last_read?: number;
  unread?: number;
}

/** What `send` resolves with once the message is stored. */
export interface Ack {
  type: "ack";
  room: string;
  client_msg_id: string;
  seq: number;
  id: string;
}

export interface Joined {
  type: "joined";
  room: string;
  last_seq: number;
  online?: string[];
  recovered?: boolean;
}

export interface Session {
  token: string;
  user: User;
}

/** A send, edit or delete in the outbox: pending until acked, sent once stored, failed when refused. */
export interface Outgoing {
  readonly id: string;
  readonly room: string;
  /** The text sent, or the edit's new text ("" for a delete). */
  readonly body: string;
  readonly kind: "send" | "edit" | "delete";
  /** The id of the message edited or deleted; null for a send. */
  readonly target: string | null;
  readonly state: "pending" | "sent" | "failed";
  /** The last refusal, while failed. */
  readonly error: { code: string; message: string } | null;
  readonly attempts: number;
  /** When the next automatic retry is due (ms since the epoch), 0 for none. */
  readonly retryAt: number;
  readonly ack: Ack | null;
}

export interface SwitchboardOptions {
  /** A session token (from `signIn`, `guest`, or the HTTP API). */
  token: string;
  /** The server's base URL, e.g. `http://127.0.0.1:8080`; default: the page's origin. */
  url?: string;
  /** A WebSocket class where there is no global one (Node before 22: the `ws` package). */
  WebSocket?: unknown;
  backoffMin?: number;
  backoffMax?: number;
  retryMin?: number;
  retryMax?: number;
  maxRetries?: number;
}

/** Where a server to sign in to is: default the page's origin. */
export interface ServerOptions {
  url?: string;
}

export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "closed";

export interface SwitchboardEvents {
  message: CustomEvent<Message>;
  message_edited: CustomEvent<MessageEdited>;
  message_deleted: CustomEvent<MessageDeleted>;
  read: CustomEvent<ReadState>;
  joined: CustomEvent<Joined>;
  presence: CustomEvent<{ type: "presence"; room: string; user: string; state: "online" | "offline" }>;
  typing: CustomEvent<{ type: "typing"; room: string; user: string }>;
  status: CustomEvent<{ state: ConnectionState; retryInMs?: number; at?: number }>;
  outbox: CustomEvent<Outgoing>;
  error: CustomEvent<{ code: string; message: string; ref?: string }>;
}

export class SwitchboardError extends Error {
  constructor(code: string, message: string, status?: number);
  /** The contract's error code (`forbidden`, `unavailable`, …). */
  code: string;
  /** The HTTP status, for HTTP calls. */
  status?: number;
}

export class Switchboard extends EventTarget {
  constructor(options: SwitchboardOptions);

  static guest(username: string, options?: ServerOptions): Promise<Session>;
  static signIn(username: string, password: string, options?: ServerOptions): Promise<Session>;
  static signUp(username: string, password: string, options?: ServerOptions): Promise<{ id: string; username: string }>;

  readonly url: string;
  readonly token: string;
  readonly state: ConnectionState;
  readonly user: User | null;
  /** Every send not yet forgotten, by client_msg_id, in send order. */
  readonly outbox: Map<string, Outgoing>;

  connect(): void;
  close(): void;
  reconnectNow(): void;
  join(room: string, options?: { since?: number }): Promise<Joined>;
  leave(room: string): void;
  typing(room: string): void;
  send(room: string, body: string, options?: { clientMsgId?: string }): Promise<Ack>;
  /** The author edits a message; the ack carries the edit's seq. */
  edit(room: string, id: string, body: string, options?: { clientMsgId?: string }): Promise<Ack>;
  /** Deletes a message (the author; the room's owner or an admin: anyone's). */
  delete(room: string, id: string, options?: { clientMsgId?: string }): Promise<Ack>;
  /** Opens the direct-message room with `username` (join it to talk). */
  dm(username: string): Promise<Room>;
  /** Marks the room read up to `seq`; the marker never moves back. */
  markRead(room: string, seq: number): Promise<void>;
  retry(id: string): void;
  discard(id: string): void;
  history(room: string, page?: { before?: number; after?: number; limit?: number }): Promise<{ messages: Omit<Message, "type">[]; has_more: boolean }>;
  request(method: string, path: string, body?: unknown): Promise<any>;

  addEventListener<K extends keyof SwitchboardEvents>(type: K, listener: (event: SwitchboardEvents[K]) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof SwitchboardEvents>(type: K, listener: (event: SwitchboardEvents[K]) => void, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

// Switchboard client: the chat protocol without the page. An ES module with
// no dependencies and no build step; it runs in browsers and in Node (pass
// the `ws` package as `WebSocket` where there is no global one).
//
//   import { Switchboard } from "/static/switchboard.js";
//   const sb = new Switchboard({ token });
//   sb.addEventListener("message", (e) => console.log(e.detail.user, e.detail.body));
//   await sb.join("general");
//   await sb.send("general", "hello");
//
// What it takes care of: a single-use ticket per connection (the token never
// goes into a URL), reconnecting with jittered back-off (and when a draining
// server says `reconnect`), rejoining every room with `since` so exactly the
// missed messages are replayed, paging a gap too long to replay from
// history, delivering each room's messages once and in seq order, and an
// outbox: every send has a `client_msg_id`, is resent after a reconnect until
// acked, and a refused one is retried with back-off; each says whether it is
// pending, sent or failed. Edits and deletes go through the same outbox.
// Messages, edits and deletes of a room are its events, delivered once each
// in seq order (`message`, `message_edited`, `message_deleted`).

const RETRYABLE = new Set(["unavailable", "rate_limited", "internal"]);

/** A send, edit or delete in the outbox. */
class Outgoing {
  constructor(id, room, body, kind = "send", target = null) {
    this.id = id;
    this.room = room;
    this.body = body;
    /** "send", "edit" or "delete"; `target` is the id of the message edited or deleted. */
    this.kind = kind;
    this.target = target;
    /** "pending" (not acked yet), "sent" (acked: stored), "failed" (refused; see `error`). */
    this.state = "pending";
    this.error = null; // {code, message} of the last refusal
    this.attempts = 0;
    this.retryAt = 0; // ms timestamp of the next automatic retry, 0: none
    this.ack = null;
    this.timer = null;
    this.promise = new Promise((resolve, reject) => { this.resolve = resolve; this.reject = reject; });
    // A caller may ignore the promise and follow events instead.
    this.promise.catch(() => {});
  }
}

export class SwitchboardError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

function newId() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  let s = "";
  for (let i = 0; i < 32; i++) s += Math.floor(Math.random() * 16).toString(16);
  return s;
}

function baseUrl(url) {
  const base = url || (globalThis.location && globalThis.location.origin);
  if (!base) throw new TypeError("Switchboard: pass the server's base URL as `url` (there is no page origin here)");
  return base.replace(/\/$/, "");
}

async function call(base, token, method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(`${base}/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) {
    const e = data && data.error;
    throw new SwitchboardError(e ? e.code : "http_" + res.status, e ? e.message : res.statusText, res.status);
  }
  return data;
}

export class Switchboard extends EventTarget {
  /**
   * @param {object} o
   * @param {string} o.token  a session token (from sign-in or guest sign-in)
   * @param {string} [o.url]  the server's base URL; default: this page's origin
   * @param {typeof WebSocket} [o.WebSocket]  a WebSocket class (Node: the `ws` package)
   * @param {number} [o.backoffMin=500] @param {number} [o.backoffMax=15000]  reconnect waits, ms
   * @param {number} [o.retryMin=2000] @param {number} [o.retryMax=30000]  refused-send retry waits, ms
   * @param {number} [o.maxRetries=5]  automatic retries of a refused send before it stays failed
   */
  constructor(o) {
    super();
    this.token = o.token;
    this.url = baseUrl(o.url);
    this.WebSocket = o.WebSocket || globalThis.WebSocket;
    this.backoffMin = o.backoffMin ?? 500;
    this.backoffMax = o.backoffMax ?? 15000;
    this.retryMin = o.retryMin ?? 2000;
    this.retryMax = o.retryMax ?? 30000;
    this.maxRetries = o.maxRetries ?? 5;
    this.user = null;
    this.state = "idle"; // idle | connecting | connected | reconnecting | closed
    this.rooms = new Map(); // name -> {lastSeq, synced, live, healing, buffered, waiters}
    this.outbox = new Map(); // client_msg_id -> Outgoing, in send order
    this.ws = null;
    this.backoff = this.backoffMin;
    this.timer = null;
    this.reconnectAt = 0;
  }

  // ---------- HTTP ----------

  /** One API call; throws SwitchboardError with the server's code and message. */
  request(method, path, body) {
    return call(this.url, this.token, method, path, body);
  }

  /**
   * Signs in as a guest: `{token, user}`. `url` is the server's base URL
   * (default: this page's origin), as for the constructor.
   */
  static guest(username, { url } = {}) {
    return call(baseUrl(url), null, "POST", "/sessions/guest", { username });
  }

  /** Signs in with a password: `{token, user}`. */
  static signIn(username, password, { url } = {}) {
    return call(baseUrl(url), null, "POST", "/sessions", { username, password });
  }

  /** Creates an account (`{id, username}`); sign in with `signIn` after. */
  static signUp(username, password, { url } = {}) {
    return call(baseUrl(url), null, "POST", "/users", { username, password });
  }

  /**
   * Opens the direct-message room with `username` (the same room every
   * time, from either side): resolves with the room object
   * (`kind: "dm"`, `with`); `join` it to talk.
   */
  dm(username) {
    return this.request("POST", "/dms", { username });
  }

  /**
   * Marks `room` read up to `seq` (the marker never moves back). The user's
   * other connections get a `read` event.
   */
  markRead(room, seq) {
    const r = this.rooms.get(room);
    if (r && r.live && this.frame({ type: "read", room, seq })) return Promise.resolve();
    return this.request("PUT", `/rooms/${encodeURIComponent(room)}/read`, { seq }).then(() => {});
  }

  /** A page of a room's history: `{messages (ascending seq), has_more}`. */
  history(room, { before, after, limit } = {}) {
    const q = new URLSearchParams();
    if (before !== undefined) q.set("before", before);
    if (after !== undefined) q.set("after", after);
    if (limit !== undefined) q.set("limit", limit);
    return this.request("GET", `/rooms/${encodeURIComponent(room)}/messages?${q}`);
  }

  // ---------- connection ----------

  /** Starts connecting (and keeps reconnecting until `close()`). */
  connect() {
    if (this.state === "connecting" || this.state === "connected") return;
    clearTimeout(this.timer);
    this.open();
  }

  /** Stops: closes the socket, no reconnect; pending sends stay in the outbox. */
  close() {
    this.setState("closed");
    this.lost();
    clearTimeout(this.timer);
    for (const m of this.outbox.values()) clearTimeout(m.timer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      ws.close();
    }
  }

  setState(state, detail = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("status", { detail: { state, ...detail } }));
  }

  async open() {
    this.setState("connecting");
    let ticket;
    try {
      ticket = (await this.request("POST", "/sessions/ticket")).ticket;
    } catch (e) {
      if (this.state === "closed") return;
      if (e.status === 401) { this.fail("unauthorized", e.message); return; }
      this.retryLater(this.nextBackoff());
      return;
    }
    if (this.state === "closed") return;
    const ws = new this.WebSocket(`${this.url.replace(/^http/, "ws")}/ws?ticket=${encodeURIComponent(ticket)}`);
    this.ws = ws;
    ws.onmessage = (ev) => {
      let frame;
      try { frame = JSON.parse(typeof ev.data === "string" ? ev.data : String(ev.data)); } catch { return; }
      this.onFrame(frame);
    };
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.lost();
      if (ev.code === 1008 && ev.reason === "token revoked") { this.fail("unauthorized", "signed out"); return; }
      this.retryLater(this.nextBackoff());
    };
  }

  /** The token is no good: stop for good and say why. */
  fail(code, message) {
    this.close();
    this.dispatchEvent(new CustomEvent("error", { detail: { code, message } }));
  }

  nextBackoff() {
    const b = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.backoffMax);
    return b;
  }

  /** Half of each wait is random, so a restarted server is not hit by every client at once. */
  retryLater(delay) {
    if (this.state === "closed") return;
    const wait = Math.round(delay / 2 + Math.random() * delay / 2);
    this.reconnectAt = Date.now() + wait;
    this.setState("reconnecting", { retryInMs: wait, at: this.reconnectAt });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), wait);
  }

  /** Reconnects at once (the network came back, the tab became visible). */
  reconnectNow() {
    if (this.state !== "reconnecting") return;
    this.backoff = this.backoffMin;
    clearTimeout(this.timer);
    this.open();
  }

  lost() {
    for (const r of this.rooms.values()) r.live = false;
  }

  frame(f) {
    if (this.ws && this.ws.readyState === 1) {
      this.ws.send(JSON.stringify(f));
      return true;
    }
    return false;
  }

  // ---------- rooms ----------

  room(name) {
    let r = this.rooms.get(name);
    if (!r) {
      r = { name, lastSeq: 0, synced: false, live: false, healing: false, buffered: [], waiters: [] };
      this.rooms.set(name, r);
    }
    return r;
  }

  /**
   * Joins a room (a public one is created on first join). With `since`, the
   * messages after that seq are delivered first. Resolves with the `joined`
   * frame; rejects with the server's error (forbidden, not_found…).
   */
  join(name, { since } = {}) {
    const r = this.room(name);
    if (since !== undefined) { r.lastSeq = since; r.synced = true; }
    r.wanted = true;
    const p = new Promise((resolve, reject) => r.waiters.push({ resolve, reject }));
    if (!r.live) this.frame(this.joinFrame(r));
    else { const w = r.waiters.shift(); w.resolve({ type: "joined", room: name, last_seq: r.lastSeq }); }
    return p;
  }

  joinFrame(r) {
    return r.synced ? { type: "join", room: r.name, since: r.lastSeq } : { type: "join", room: r.name };
  }

  /** Stops receiving a room (membership is the HTTP API's business). */
  leave(name) {
    const r = this.rooms.get(name);
    if (!r) return;
    this.rooms.delete(name);
    this.frame({ type: "leave", room: name });
    for (const w of r.waiters) w.reject(new SwitchboardError("left", "left the room before it was joined"));
  }

  /** Tells the room's other members this user is typing. */
  typing(room) {
    this.frame({ type: "typing", room });
  }

  // ---------- sending ----------

  /**
   * Sends a message; resolves with the ack (`{seq, id, client_msg_id}`) once
   * it is stored, rejects only if it finally failed (see `retry`). The entry
   * is in `outbox` until then, with its state.
   */
  send(room, body, { clientMsgId } = {}) {
    return this.enqueue(new Outgoing(clientMsgId || newId(), room, body));
  }

  /**
   * Edits one of the user's messages: like `send`, it waits in the outbox
   * until acked (`{seq, id}`: the edit's own seq) and is resent after a
   * reconnect with the same client_msg_id.
   */
  edit(room, id, body, { clientMsgId } = {}) {
    return this.enqueue(new Outgoing(clientMsgId || newId(), room, body, "edit", id));
  }

  /** Deletes a message (the user's own; the room's owner or an admin: anyone's), through the outbox. */
  delete(room, id, { clientMsgId } = {}) {
    return this.enqueue(new Outgoing(clientMsgId || newId(), room, "", "delete", id));
  }

  enqueue(m) {
    this.outbox.set(m.id, m);
    this.changed(m);
    this.transmit(m);
    return m.promise;
  }

  /** Sends a failed message again now (the same client_msg_id: stored at most once). */
  retry(id) {
    const m = this.outbox.get(id);
    if (!m || m.state === "sent") return;
    clearTimeout(m.timer);
    m.retryAt = 0;
    m.state = "pending";
    this.changed(m);
    this.transmit(m);
  }

  /** Drops a failed message from the outbox (the user gave up on it). */
  discard(id) {
    const m = this.outbox.get(id);
    if (!m || m.state !== "failed") return;
    clearTimeout(m.timer);
    this.outbox.delete(id);
    m.reject(new SwitchboardError("discarded", "discarded"));
  }

  // A send goes out only on a connection where its room is joined, so it
  // follows the rejoin's replay; the rest wait for `joined`.
  transmit(m) {
    const r = this.rooms.get(m.room);
    if (!r || !r.live) {
      if (!r) this.join(m.room).catch(() => {});
      return;
    }
    m.attempts++;
    if (m.kind === "edit") this.frame({ type: "edit", room: m.room, id: m.target, body: m.body, client_msg_id: m.id });
    else if (m.kind === "delete") this.frame({ type: "delete", room: m.room, id: m.target, client_msg_id: m.id });
    else this.frame({ type: "send", room: m.room, body: m.body, client_msg_id: m.id });
  }

  changed(m) {
    this.dispatchEvent(new CustomEvent("outbox", { detail: m }));
  }

  refused(m, code, message) {
    m.state = "failed";
    m.error = { code, message };
    if (RETRYABLE.has(code) && m.attempts <= this.maxRetries) {
      const base = Math.min(this.retryMin * 2 ** Math.max(0, m.attempts - 1), this.retryMax);
      const wait = Math.round(base / 2 + Math.random() * base / 2);
      m.retryAt = Date.now() + wait;
      m.timer = setTimeout(() => { m.retryAt = 0; m.state = "pending"; this.changed(m); this.transmit(m); }, wait);
    } else {
      m.retryAt = 0;
    }
    this.changed(m);
  }

  // ---------- frames ----------

  onFrame(f) {
    switch (f.type) {
      case "hello":
        this.user = f.user;
        this.backoff = this.backoffMin;
        this.setState("connected", { user: f.user, instance: f.instance });
        for (const r of this.rooms.values()) this.frame(this.joinFrame(r));
        break;
      case "joined": this.onJoined(f); break;
      case "message":
      case "message_edited":
      case "message_deleted":
        this.onMessage(f);
        break;
      case "read": this.dispatchEvent(new CustomEvent("read", { detail: f })); break;
      case "ack": {
        const m = this.outbox.get(f.client_msg_id);
        if (!m) break;
        clearTimeout(m.timer);
        m.state = "sent";
        m.ack = f;
        m.error = null;
        this.outbox.delete(m.id);
        this.changed(m);
        m.resolve(f);
        break;
      }
      case "presence": this.dispatchEvent(new CustomEvent("presence", { detail: f })); break;
      case "typing": this.dispatchEvent(new CustomEvent("typing", { detail: f })); break;
      case "reconnect": {
        // The instance is draining: come back after its jittered delay.
        const ws = this.ws;
        this.ws = null;
        this.lost();
        if (ws) { ws.onclose = null; ws.close(); }
        this.backoff = this.backoffMin;
        this.retryLater(Math.max(f.after_ms || 0, 100) * 2);
        break;
      }
      case "error": this.onError(f); break;
      default: break;
    }
  }

  async onJoined(f) {
    const r = this.rooms.get(f.room);
    if (!r) return; // left meanwhile
    const baseline = r.synced ? r.lastSeq : f.last_seq;
    r.live = true;
    r.synced = true;
    if (f.recovered === false) {
      // Too much was missed to replay: page the gap while live messages wait.
      r.healing = true;
      r.lastSeq = baseline;
      this.resolveJoin(r, f);
      await this.heal(r, baseline, f.last_seq);
    } else {
      r.lastSeq = Math.max(r.lastSeq, baseline);
      this.resolveJoin(r, f);
    }
    // Sends waiting for this room go out after the replay request.
    for (const m of this.outbox.values()) if (m.room === r.name && m.state === "pending") this.transmit(m);
  }

  resolveJoin(r, f) {
    this.dispatchEvent(new CustomEvent("joined", { detail: f }));
    for (const w of r.waiters.splice(0)) w.resolve(f);
  }

  async heal(r, from, upto) {
    let after = from;
    try {
      while (after < upto) {
        const page = await this.history(r.name, { after, limit: 200 });
        for (const m of page.messages) this.deliver(r, { type: "message", ...m });
        if (!page.messages.length || !page.has_more) break;
        after = page.messages[page.messages.length - 1].seq;
      }
    } catch (e) {
      this.dispatchEvent(new CustomEvent("error", { detail: { code: e.code || "unavailable", message: e.message, ref: r.name } }));
    }
    // History showed every message as it is now, edits up to `upto` included.
    r.lastSeq = Math.max(r.lastSeq, upto);
    r.healing = false;
    for (const m of r.buffered.splice(0)) this.deliver(r, m);
  }

  onMessage(f) {
    const r = this.rooms.get(f.room);
    if (!r) return;
    if (r.healing) { r.buffered.push(f); return; }
    this.deliver(r, f);
  }

  // Once per seq, in order: replays and the live stream may overlap. The
  // event is named by the frame: message, message_edited, message_deleted.
  deliver(r, m) {
    if (m.seq <= r.lastSeq) return;
    r.lastSeq = m.seq;
    this.dispatchEvent(new CustomEvent(m.type || "message", { detail: m }));
  }

  onError(f) {
    if (f.code === "unauthorized") { this.fail(f.code, f.message); return; }
    const m = f.ref && this.outbox.get(f.ref);
    if (m) { this.refused(m, f.code, f.message); return; }
    const r = f.ref && this.rooms.get(f.ref);
    if (r && (f.code === "forbidden" || f.code === "not_found")) {
      this.rooms.delete(r.name);
      const err = new SwitchboardError(f.code, f.message);
      for (const w of r.waiters.splice(0)) w.reject(err);
      // Its waiting sends cannot go anywhere now.
      for (const o of this.outbox.values()) if (o.room === r.name && o.state === "pending") this.refused(o, f.code, f.message);
    }
    this.dispatchEvent(new CustomEvent("error", { detail: f }));
  }
}

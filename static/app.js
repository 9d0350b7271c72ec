// Switchboard browser client: plain JS, no build step.
//
// Messages are kept per room, ordered by seq and de-duplicated, so replays,
// history pages and the live stream can overlap safely. The DOM holds only a
// window of at most WINDOW_MAX messages around what is on screen, so a room
// with tens of thousands of messages scrolls and types as fast as an empty
// one; bursts are rendered once per animation frame. Text is only ever set
// with textContent (no HTML injection).
"use strict";

const API = "/api/v1";
const WINDOW = 100; // message nodes rendered when following the newest (fills any screen)
const STEP = 100; // nodes added per scroll step
const WINDOW_MAX = WINDOW + STEP;
const MAX_KEPT = 20000; // messages kept in memory per room; older ones reload from history
const TRIM_SLACK = 2000; // trim in chunks: a splice per message would be O(n) each
const EDGE_PX = 400; // scrolling this close to an edge extends the window
const BACKOFF_MIN = 500;
const BACKOFF_MAX = 15000;
const $ = (id) => document.getElementById(id);

const state = {
  connecting: false,
  token: localStorage.getItem("sb_token"),
  user: null,
  ws: null,
  connected: false,
  backoff: BACKOFF_MIN,
  reconnectTimer: null,
  rooms: new Map(), // name -> Room
  current: null,
  outbox: new Map(), // client_msg_id -> {room, body}
  typingSentAt: 0,
  hiddenUnread: 0, // live messages in the open room while the tab is hidden
};

// The rendered window of the open room: seqs of its first and last nodes.
const view = { first: -1, last: -1, follow: true, rebuild: true, unseen: 0 };

function newRoom(name) {
  return {
    // wanted: the user is in it; synced: lastSeq is a baseline for `since`;
    // live: joined on the current connection.
    name, wanted: false, synced: false, live: false, lastSeq: 0, messages: [], seqs: new Set(),
    unread: 0, hasMore: true, loadingOlder: false, online: new Set(), typing: new Map(),
  };
}

function room(name) {
  if (!state.rooms.has(name)) state.rooms.set(name, newRoom(name));
  return state.rooms.get(name);
}

const currentRoom = () => (state.current ? room(state.current) : null);

// Index of the first message with seq >= `seq`.
function lowerBound(list, seq) {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid].seq < seq) lo = mid + 1; else hi = mid;
  }
  return lo;
}

// ---------- HTTP ----------
async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const res = await fetch(API + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) {
    const err = new Error((data && data.error && data.error.message) || res.statusText);
    err.status = res.status;
    err.code = data && data.error && data.error.code;
    throw err;
  }
  return data;
}

function showError(text) {
  $("chat-error").textContent = text;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { $("chat-error").textContent = ""; }, 6000);
}

// ---------- auth ----------
async function authenticate(kind) {
  const username = $("username").value.trim();
  const password = $("password").value;
  $("auth-error").textContent = "";
  try {
    let session;
    if (kind === "guest") {
      session = await api("POST", "/sessions/guest", { username: username || "guest" });
    } else {
      if (kind === "signup") await api("POST", "/users", { username, password });
      session = await api("POST", "/sessions", { username, password });
    }
    state.token = session.token;
    localStorage.setItem("sb_token", state.token);
    await enterChat(session.user);
  } catch (e) {
    $("auth-error").textContent = e.message;
  }
}

async function enterChat(user) {
  state.user = user;
  $("auth-view").hidden = true;
  $("chat-view").hidden = false;
  $("logout").hidden = false;
  connect();
  refreshRooms();
  const last = localStorage.getItem("sb_room");
  if (last) joinRoom(last);
  else $("room-input").focus();
}

async function logout() {
  try { await api("DELETE", "/sessions"); } catch (_) { /* already gone */ }
  localStorage.removeItem("sb_token");
  location.reload();
}

// ---------- WebSocket ----------
function setStatus(text) {
  $("conn").textContent = text;
  $("conn").className = "conn " + (state.connected ? "ok" : "bad");
}

// The token never goes into a URL (proxies log request lines): each connect
// first trades it for a single-use ticket.
async function connect() {
  clearTimeout(state.reconnectTimer);
  if (state.connecting || (state.ws && state.ws.readyState <= WebSocket.OPEN)) return;
  state.connecting = true;
  let ticket;
  try {
    ticket = (await api("POST", "/sessions/ticket")).ticket;
  } catch (e) {
    state.connecting = false;
    if (e.status === 401) { logout(); return; }
    scheduleReconnect(state.backoff);
    state.backoff = Math.min(state.backoff * 2, BACKOFF_MAX);
    return;
  }
  state.connecting = false;
  if (state.ws && state.ws.readyState <= WebSocket.OPEN) return;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws?ticket=${encodeURIComponent(ticket)}`);
  state.ws = ws;
  ws.onmessage = (ev) => {
    let frame;
    try { frame = JSON.parse(ev.data); } catch (_) { return; }
    onFrame(frame);
  };
  ws.onclose = (ev) => {
    if (state.ws !== ws) return;
    state.ws = null;
    lostConnection();
    if (ev.code === 1008 && ev.reason === "token revoked") { logout(); return; }
    scheduleReconnect(state.backoff);
    state.backoff = Math.min(state.backoff * 2, BACKOFF_MAX);
  };
}

function lostConnection() {
  state.connected = false;
  for (const r of state.rooms.values()) { r.online.clear(); r.live = false; }
  renderOnline();
}

// Exponential back-off, half of each wait random, so a restarted server is not hit by
// every client in the same millisecond.
function scheduleReconnect(delay) {
  const wait = delay / 2 + Math.random() * delay / 2;
  setStatus(`Reconnecting in ${Math.max(1, Math.round(wait / 1000))} s…`);
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = setTimeout(connect, wait);
}

function reconnectNow() {
  if (!state.token || state.connected || !$("auth-view").hidden) return;
  state.backoff = BACKOFF_MIN;
  connect();
}

function send(frame) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify(frame));
    return true;
  }
  return false;
}

function onFrame(f) {
  switch (f.type) {
    case "hello":
      state.connected = true;
      state.backoff = BACKOFF_MIN;
      setStatus(`Connected as ${f.user.username}`);
      // Rejoin with since: the server replays exactly what we missed.
      for (const r of state.rooms.values()) if (r.wanted) send(joinFrame(r));
      // Resend unacknowledged messages; client_msg_id makes this idempotent.
      for (const [id, m] of state.outbox) send({ type: "send", room: m.room, body: m.body, client_msg_id: id });
      break;
    case "joined": onJoined(f); break;
    case "message": addMessages(f.room, [f], true); break;
    case "ack": state.outbox.delete(f.client_msg_id); break;
    case "presence": {
      const r = room(f.room);
      if (f.state === "online") r.online.add(f.user); else r.online.delete(f.user);
      if (f.room === state.current) renderOnline();
      break;
    }
    case "typing": {
      const r = room(f.room);
      r.typing.set(f.user, Date.now() + 3000);
      if (f.room === state.current) renderTyping();
      break;
    }
    case "reconnect": {
      // The instance is draining: come back (through the load balancer)
      // after the server's jittered delay, then rejoin with since.
      const ws = state.ws;
      state.ws = null;
      lostConnection();
      if (ws) { ws.onclose = null; ws.close(); }
      scheduleReconnect(Math.max(f.after_ms, 100) * 2);
      break;
    }
    case "error":
      if (f.code === "unauthorized") { logout(); return; }
      if (state.outbox.has(f.ref) && f.code !== "unavailable") state.outbox.delete(f.ref);
      if (f.ref && state.rooms.has(f.ref) && (f.code === "not_found" || f.code === "forbidden")) {
        Object.assign(room(f.ref), { wanted: false, live: false });
      }
      showError(`${f.message}${f.ref ? " (" + f.ref + ")" : ""}`);
      break;
    default: break;
  }
}

async function onJoined(f) {
  const r = room(f.room);
  const first = !r.synced;
  r.synced = true;
  r.wanted = true;
  r.live = true;
  r.online = new Set(f.online);
  if (f.room === state.current) renderOnline();
  renderRooms();
  if (first && r.messages.length === 0) {
    r.lastSeq = Math.max(r.lastSeq, f.last_seq);
    await loadNewest(r, f.last_seq);
  } else if (f.recovered === false) {
    // Too much was missed for a replay: page the gap from history while the
    // live stream continues after last_seq.
    const from = r.lastSeq;
    r.lastSeq = Math.max(r.lastSeq, f.last_seq);
    await loadGap(r, from, f.last_seq);
  }
}

// With a baseline, `since` makes the server replay exactly what was missed.
function joinFrame(r) {
  return r.synced ? { type: "join", room: r.name, since: r.lastSeq } : { type: "join", room: r.name };
}

// ---------- history ----------
async function loadNewest(r, upto) {
  try {
    const page = await api("GET", `/rooms/${r.name}/messages?limit=50&before=${upto + 1}`);
    r.hasMore = page.has_more;
    addMessages(r.name, page.messages, false);
  } catch (e) { showError(e.message); }
}

async function loadGap(r, from, upto) {
  let after = from;
  while (after < upto) {
    const page = await api("GET", `/rooms/${r.name}/messages?after=${after}&limit=200`).catch(() => null);
    if (!page || page.messages.length === 0) break;
    addMessages(r.name, page.messages, false);
    after = page.messages[page.messages.length - 1].seq;
    if (!page.has_more) break;
  }
}

async function loadOlder(r) {
  if (r.loadingOlder || !r.hasMore || r.messages.length === 0) return;
  r.loadingOlder = true;
  $("messages").setAttribute("aria-busy", "true");
  try {
    const page = await api("GET", `/rooms/${r.name}/messages?limit=50&before=${r.messages[0].seq}`);
    r.hasMore = page.has_more;
    addMessages(r.name, page.messages, false);
  } catch (e) {
    showError(e.message);
  } finally {
    r.loadingOlder = false;
    $("messages").removeAttribute("aria-busy");
  }
  if (r.name === state.current) { extendUp(); fillViewport(r); }
}

// A short room does not scroll, so no scroll event asks for more: fetch
// older pages until the log overflows or the room's start is reached.
function fillViewport(r) {
  const list = $("messages");
  if (view.first !== -1 && !r.loadingOlder && r.hasMore && list.scrollHeight <= list.clientHeight) extendUp();
}

// ---------- messages (model) ----------
function addMessages(name, msgs, live) {
  const r = room(name);
  const open = name === state.current;
  let added = 0;
  for (const m of msgs) {
    if (r.seqs.has(m.seq)) continue;
    r.seqs.add(m.seq);
    const list = r.messages;
    if (list.length === 0 || m.seq > list[list.length - 1].seq) list.push(m);
    else list.splice(lowerBound(list, m.seq), 0, m);
    // The server streams a joined room in seq order without gaps, so the
    // newest live seq is exactly what to pass as `since` after a reconnect.
    if (live) {
      r.lastSeq = Math.max(r.lastSeq, m.seq);
      r.typing.delete(m.user);
    }
    // Landing inside the rendered window (a healed gap): render it again.
    if (open && m.seq > view.first && m.seq < view.last) view.rebuild = true;
    added++;
  }
  if (!added) return;
  if (open) {
    if (live && !view.follow) view.unseen += added;
    if (live && document.hidden) { state.hiddenUnread += added; renderTitle(); }
    trimMemory(r);
    scheduleRender();
  } else if (live) {
    r.unread += added;
    trimMemory(r);
    scheduleRoomsRender(); // a busy background room must not rebuild the list per message
  }
}

// Memory stays bounded too: the oldest messages go (history reloads them).
function trimMemory(r) {
  const excess = r.messages.length - MAX_KEPT;
  if (excess <= TRIM_SLACK || (r.name === state.current && !view.follow)) return;
  for (const m of r.messages.splice(0, excess)) r.seqs.delete(m.seq);
  r.hasMore = true;
}

// ---------- messages (DOM window) ----------
let renderPending = false;
function scheduleRender() {
  // One DOM update per animation frame, however many messages arrived.
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(flush);
}

function flush() {
  renderPending = false;
  const r = currentRoom();
  const list = $("messages");
  if (!r) { list.replaceChildren(); return; }
  const msgs = r.messages;
  if (view.rebuild || view.first === -1) {
    rebuild(r);
  } else {
    const next = lowerBound(msgs, view.last + 1); // first message after the window
    const pending = msgs.length - next;
    if (pending > 0 && view.follow && pending > WINDOW) {
      rebuild(r); // a burst: render only the newest window
    } else if (pending > 0 && view.follow) {
      appendRange(msgs, next, msgs.length);
      trimTop(WINDOW);
      list.scrollTop = list.scrollHeight;
    } else if (pending > 0 && list.childElementCount < WINDOW_MAX) {
      // Reading further up: fill the window below without moving the view.
      appendRange(msgs, next, Math.min(msgs.length, next + WINDOW_MAX - list.childElementCount));
    }
  }
  renderJump(r);
  fillViewport(r);
}

// Renders a fresh window: the newest messages when following, else around
// the message at the top of the screen, keeping it where it was.
function rebuild(r) {
  view.rebuild = false;
  const list = $("messages");
  const msgs = r.messages;
  let from;
  let anchor = null;
  if (view.follow || view.first === -1) {
    from = Math.max(0, msgs.length - WINDOW);
  } else {
    anchor = firstVisible(list);
    const at = anchor ? lowerBound(msgs, anchor.seq) : msgs.length - WINDOW;
    from = Math.max(0, Math.min(at - STEP, msgs.length - WINDOW));
  }
  const to = Math.min(msgs.length, from + WINDOW_MAX);
  const frag = document.createDocumentFragment();
  for (let i = from; i < to; i++) frag.appendChild(messageNode(msgs[i]));
  list.replaceChildren(frag);
  setBounds(list);
  if (anchor) restore(list, anchor);
  else list.scrollTop = list.scrollHeight;
}

function setBounds(list) {
  view.first = list.firstElementChild ? Number(list.firstElementChild.dataset.seq) : -1;
  view.last = list.lastElementChild ? Number(list.lastElementChild.dataset.seq) : -1;
}

function appendRange(msgs, from, to) {
  if (from >= to) return;
  const list = $("messages");
  const frag = document.createDocumentFragment();
  for (let i = from; i < to; i++) frag.appendChild(messageNode(msgs[i]));
  list.appendChild(frag);
  setBounds(list);
}

function trimTop(keep) {
  const list = $("messages");
  while (list.childElementCount > keep) list.firstElementChild.remove();
  setBounds(list);
}

function trimBottom(keep) {
  const list = $("messages");
  while (list.childElementCount > keep) list.lastElementChild.remove();
  setBounds(list);
}

// The first message node on screen, and how far below the top it sits.
function firstVisible(list) {
  const top = list.scrollTop;
  for (const node of list.children) {
    if (node.offsetTop + node.offsetHeight > top) return { seq: Number(node.dataset.seq), offset: node.offsetTop - top };
  }
  return null;
}

function restore(list, anchor) {
  const node = list.querySelector(`[data-seq="${anchor.seq}"]`);
  if (node) list.scrollTop = node.offsetTop - anchor.offset;
}

// Scrolled near the top: show earlier messages from memory, else fetch a page.
function extendUp() {
  const r = currentRoom();
  const list = $("messages");
  if (!r || view.first === -1) return;
  const at = lowerBound(r.messages, view.first);
  if (at === 0) { loadOlder(r); return; }
  const anchor = firstVisible(list);
  const frag = document.createDocumentFragment();
  for (let i = Math.max(0, at - STEP); i < at; i++) frag.appendChild(messageNode(r.messages[i]));
  list.prepend(frag);
  trimBottom(WINDOW_MAX);
  if (anchor) restore(list, anchor);
  view.follow = false;
  renderJump(r);
}

// Scrolled near the bottom of a window that does not reach the newest.
function extendDown() {
  const r = currentRoom();
  const list = $("messages");
  if (!r || view.last === -1) return;
  const next = lowerBound(r.messages, view.last + 1);
  if (next >= r.messages.length) return;
  const anchor = firstVisible(list);
  appendRange(r.messages, next, Math.min(r.messages.length, next + STEP));
  trimTop(WINDOW_MAX);
  if (anchor) restore(list, anchor);
}

let scrollQueued = false;
function onScroll() {
  if (scrollQueued) return;
  scrollQueued = true;
  requestAnimationFrame(() => {
    scrollQueued = false;
    const r = currentRoom();
    const list = $("messages");
    if (!r) return;
    const newest = r.messages.length ? r.messages[r.messages.length - 1].seq : -1;
    const fromBottom = list.scrollHeight - list.scrollTop - list.clientHeight;
    const atEnd = view.last === newest;
    view.follow = atEnd && fromBottom < 40;
    if (view.follow) view.unseen = 0;
    if (list.scrollTop < EDGE_PX) extendUp();
    else if (fromBottom < EDGE_PX && !atEnd) extendDown();
    renderJump(r);
  });
}

function jumpToLatest() {
  view.follow = true;
  view.unseen = 0;
  view.rebuild = true;
  scheduleRender();
  $("message-input").focus();
}

function renderJump(r) {
  const newest = r && r.messages.length ? r.messages[r.messages.length - 1].seq : -1;
  const behind = !view.follow && (view.unseen > 0 || view.last !== newest);
  const b = $("jump");
  b.hidden = !behind;
  if (behind) b.textContent = view.unseen > 0 ? `${view.unseen} new ↓` : "Latest ↓";
}

// Cloning one prepared node is cheaper than building four elements per message.
const messageTemplate = (() => {
  const div = document.createElement("div");
  div.className = "msg";
  const who = document.createElement("span");
  who.className = "who";
  const body = document.createElement("span");
  body.className = "body";
  div.append(who, " ", document.createElement("time"), " ", body);
  return div;
})();

function messageNode(m) {
  const div = messageTemplate.cloneNode(true);
  if (m.user === (state.user && state.user.username)) div.classList.add("mine");
  div.dataset.seq = m.seq;
  const [who, time, body] = div.children;
  who.textContent = m.user;
  time.dateTime = m.sent_at;
  time.textContent = clock(m.sent_at);
  body.textContent = m.body;
  return div;
}
const timeFormat = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit" });
const clocks = new Map(); // "2026-11-26T17:05" -> "17:05": Intl formatting is slow per node
function clock(iso) {
  const minute = iso.slice(0, 16);
  let text = clocks.get(minute);
  if (text === undefined) {
    if (clocks.size > 10000) clocks.clear();
    text = timeFormat.format(new Date(iso));
    clocks.set(minute, text);
  }
  return text;
}

// ---------- rooms ----------
async function refreshRooms() {
  try {
    const data = await api("GET", "/rooms");
    for (const r of data.rooms) room(r.name);
    renderRooms();
  } catch (e) {
    if (e.status === 401) logout();
  }
}

let roomsPending = false;
function scheduleRoomsRender() {
  if (roomsPending) return;
  roomsPending = true;
  requestAnimationFrame(() => { roomsPending = false; renderRooms(); });
}

function renderRooms() {
  const ul = $("room-list");
  const frag = document.createDocumentFragment();
  for (const r of [...state.rooms.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = r.name;
    b.dataset.room = r.name;
    if (r.name === state.current) { b.className = "current"; b.setAttribute("aria-current", "page"); }
    if (r.unread) {
      // Outside the accessible name (which stays the room name).
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.setAttribute("aria-hidden", "true");
      badge.textContent = r.unread > 99 ? "99+" : String(r.unread);
      b.appendChild(badge);
      b.setAttribute("aria-description", `${r.unread} unread`);
    }
    li.appendChild(b);
    frag.appendChild(li);
  }
  ul.replaceChildren(frag);
  renderTitle();
}

function renderTitle() {
  let unread = state.hiddenUnread;
  for (const r of state.rooms.values()) unread += r.unread;
  document.title = unread ? `(${unread > 999 ? "999+" : unread}) Switchboard` : "Switchboard";
}

function joinRoom(name) {
  name = name.trim().toLowerCase();
  if (!/^[a-z0-9_-]{1,64}$/.test(name)) {
    showError("Room names are 1-64 of a-z, 0-9, _ and -");
    return;
  }
  const r = room(name);
  const switching = state.current !== name;
  state.current = name;
  localStorage.setItem("sb_room", name);
  r.unread = 0;
  r.wanted = true;
  $("room-title").textContent = "#" + name;
  $("message-input").disabled = false;
  $("send").disabled = false;
  if (!r.live) send(joinFrame(r));
  if (switching) Object.assign(view, { first: -1, last: -1, follow: true, rebuild: true, unseen: 0 });
  renderRooms();
  renderOnline();
  renderTyping();
  scheduleRender();
  $("message-input").focus();
}

function renderOnline() {
  const r = currentRoom();
  const frag = document.createDocumentFragment();
  for (const u of r ? [...r.online].sort() : []) {
    const li = document.createElement("li");
    li.textContent = u;
    frag.appendChild(li);
  }
  $("online").replaceChildren(frag);
}

function renderTyping() {
  const r = currentRoom();
  const now = Date.now();
  const names = [];
  if (r) for (const [u, until] of r.typing) { if (until > now) names.push(u); else r.typing.delete(u); }
  const text = names.map((n) => `${n} is typing`).join(", ");
  if ($("typing").textContent !== text) $("typing").textContent = text;
}
setInterval(renderTyping, 1000);

function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

function sendMessage() {
  const input = $("message-input");
  const body = input.value;
  if (!state.current || !body.trim()) return;
  const id = newId();
  state.outbox.set(id, { room: state.current, body });
  send({ type: "send", room: state.current, body, client_msg_id: id });
  input.value = "";
  if (!view.follow) jumpToLatest();
}

// ---------- wiring ----------
$("auth-form").addEventListener("submit", (e) => { e.preventDefault(); authenticate("signin"); });
$("signup").addEventListener("click", () => authenticate("signup"));
$("guest").addEventListener("click", () => authenticate("guest"));
$("logout").addEventListener("click", logout);
$("join-form").addEventListener("submit", (e) => {
  e.preventDefault();
  joinRoom($("room-input").value);
  $("room-input").value = "";
  refreshRooms();
});
$("room-list").addEventListener("click", (e) => {
  const b = e.target.closest("button[data-room]");
  if (b) joinRoom(b.dataset.room);
});
$("send-form").addEventListener("submit", (e) => { e.preventDefault(); sendMessage(); });
$("message-input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendMessage(); return; }
  const now = Date.now();
  if (state.current && now - state.typingSentAt > 2000) {
    state.typingSentAt = now;
    send({ type: "typing", room: state.current });
  }
});
$("messages").addEventListener("scroll", onScroll, { passive: true });
$("jump").addEventListener("click", jumpToLatest);
window.addEventListener("online", reconnectNow);
document.addEventListener("visibilitychange", () => {
  if (document.hidden) return;
  state.hiddenUnread = 0;
  renderTitle();
  reconnectNow();
});

(async function start() {
  if (!state.token) { $("username").focus(); return; }
  setStatus("Connecting…");
  try {
    const me = await api("GET", "/me");
    await enterChat(me);
  } catch (_) {
    localStorage.removeItem("sb_token");
    state.token = null;
    setStatus("Signed out");
  }
})();

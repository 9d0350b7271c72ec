// Switchboard browser client: plain JS, no build step.
// Messages are kept per room ordered by seq and de-duplicated, so replays,
// history pages and the live stream can overlap safely. Text is only ever set
// with textContent (no HTML injection).
"use strict";

const API = "/api/v1";
const MAX_RENDERED = 500; // DOM nodes kept for the open room; older ones reload on scroll
const $ = (id) => document.getElementById(id);

const state = {
  token: localStorage.getItem("sb_token"),
  user: null,
  ws: null,
  connected: false,
  backoff: 500,
  reconnectTimer: null,
  rooms: new Map(), // name -> Room
  current: null,
  outbox: new Map(), // client_msg_id -> {room, body}
  typingSentAt: 0,
};

function newRoom(name) {
  return {
    name, joined: false, lastSeq: 0, messages: [], seqs: new Set(),
    unread: 0, hasMore: true, loadingOlder: false, online: new Set(), typing: new Map(),
  };
}

function room(name) {
  if (!state.rooms.has(name)) state.rooms.set(name, newRoom(name));
  return state.rooms.get(name);
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
  $("room-input").focus();
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

function connect() {
  clearTimeout(state.reconnectTimer);
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws?token=${encodeURIComponent(state.token)}`);
  state.ws = ws;
  ws.onopen = () => { state.backoff = 500; };
  ws.onmessage = (ev) => {
    let frame;
    try { frame = JSON.parse(ev.data); } catch (_) { return; }
    onFrame(frame);
  };
  ws.onclose = (ev) => {
    if (state.ws !== ws) return;
    state.connected = false;
    for (const r of state.rooms.values()) r.online.clear();
    renderOnline();
    if (ev.code === 1008 && ev.reason === "token revoked") { logout(); return; }
    scheduleReconnect(state.backoff);
    state.backoff = Math.min(state.backoff * 2, 15000);
  };
}

function scheduleReconnect(delay) {
  const jittered = delay / 2 + Math.random() * delay / 2;
  setStatus(`Reconnecting in ${Math.ceil(jittered / 1000)} s…`);
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = setTimeout(connect, jittered);
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
      setStatus(`Connected as ${f.user.username}`);
      // Rejoin with since: the server replays exactly what we missed.
      for (const r of state.rooms.values()) {
        if (r.joined) send({ type: "join", room: r.name, since: r.lastSeq });
      }
      // Resend unacknowledged messages; client_msg_id makes this idempotent.
      for (const [id, m] of state.outbox) send({ type: "send", room: m.room, body: m.body, client_msg_id: id });
      break;
    case "joined": onJoined(f); break;
    case "message": addMessages(f.room, [f], true); break;
    case "ack": state.outbox.delete(f.client_msg_id); markAcked(f.client_msg_id); break;
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
    case "reconnect":
      // The instance is draining: come back through the load balancer later.
      state.connected = false;
      setStatus("Reconnecting…");
      state.ws.onclose = null;
      state.ws.close();
      scheduleReconnect(Math.max(f.after_ms, 100) * 2);
      break;
    case "error":
      if (f.code === "unauthorized") { logout(); return; }
      if (state.outbox.has(f.ref) && f.code !== "unavailable") state.outbox.delete(f.ref);
      $("chat-error").textContent = `${f.message}${f.ref ? " (" + f.ref + ")" : ""}`;
      setTimeout(() => { $("chat-error").textContent = ""; }, 5000);
      break;
    default: break;
  }
}

async function onJoined(f) {
  const r = room(f.room);
  const firstJoin = !r.joined;
  r.joined = true;
  r.online = new Set(f.online);
  if (f.room === state.current) renderOnline();
  renderRooms();
  if (firstJoin && r.messages.length === 0) {
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

// ---------- history ----------
async function loadNewest(r, upto) {
  try {
    const page = await api("GET", `/rooms/${r.name}/messages?limit=50&before=${upto + 1}`);
    r.hasMore = page.has_more;
    addMessages(r.name, page.messages, false);
  } catch (e) { $("chat-error").textContent = e.message; }
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

async function loadOlder() {
  const r = state.current && room(state.current);
  if (!r || r.loadingOlder || !r.hasMore || r.messages.length === 0) return;
  r.loadingOlder = true;
  const list = $("messages");
  const before = list.scrollHeight;
  try {
    const page = await api("GET", `/rooms/${r.name}/messages?limit=50&before=${r.messages[0].seq}`);
    r.hasMore = page.has_more;
    addMessages(r.name, page.messages, false, true);
    list.scrollTop = list.scrollHeight - before;
  } finally {
    r.loadingOlder = false;
  }
}

// ---------- messages ----------
function addMessages(name, msgs, live, older) {
  const r = room(name);
  let added = 0;
  for (const m of msgs) {
    if (r.seqs.has(m.seq)) continue;
    r.seqs.add(m.seq);
    const list = r.messages;
    if (list.length === 0 || m.seq > list[list.length - 1].seq) list.push(m);
    else {
      let i = list.length;
      while (i > 0 && list[i - 1].seq > m.seq) i--;
      list.splice(i, 0, m);
    }
    // The server streams a joined room in seq order without gaps, so the
    // newest live seq is exactly what to pass as `since` after a reconnect.
    if (live) {
      r.lastSeq = Math.max(r.lastSeq, m.seq);
      r.typing.delete(m.user);
    }
    added++;
  }
  if (!added) return;
  if (name === state.current) scheduleRender(older);
  else if (live) { r.unread += added; renderRooms(); }
}

let renderPending = false;
let renderKeepTop = false;
function scheduleRender(older) {
  // One DOM update per animation frame, however many messages arrived.
  renderKeepTop = renderKeepTop || !!older;
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => {
    renderPending = false;
    renderMessages(renderKeepTop);
    renderKeepTop = false;
  });
}

function renderMessages(keepTop) {
  const r = state.current && room(state.current);
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const frag = document.createDocumentFragment();
  const start = keepTop ? 0 : Math.max(0, r ? r.messages.length - MAX_RENDERED : 0);
  for (const m of r ? r.messages.slice(start) : []) frag.appendChild(messageNode(m));
  list.replaceChildren(frag);
  if (atBottom && !keepTop) list.scrollTop = list.scrollHeight;
}

function messageNode(m) {
  const div = document.createElement("div");
  div.className = "msg" + (m.user === (state.user && state.user.username) ? " mine" : "");
  div.dataset.seq = m.seq;
  if (m.client_msg_id) div.dataset.cmid = m.client_msg_id;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = m.user;
  const time = document.createElement("time");
  time.dateTime = m.sent_at;
  time.textContent = new Date(m.sent_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const body = document.createElement("span");
  body.className = "body";
  body.textContent = m.body;
  div.append(who, " ", time, " ", body);
  return div;
}

function markAcked(cmid) {
  const node = document.querySelector(`[data-cmid="${CSS.escape(cmid || "")}"]`);
  if (node) node.classList.add("acked");
}

// ---------- rooms ----------
async function refreshRooms() {
  try {
    const data = await api("GET", "/rooms");
    for (const r of data.rooms) room(r.name);
    renderRooms(data.rooms);
  } catch (e) {
    if (e.status === 401) logout();
  }
}

function renderRooms() {
  const ul = $("room-list");
  const frag = document.createDocumentFragment();
  for (const r of [...state.rooms.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = r.name;
    b.className = r.name === state.current ? "current" : "";
    if (r.name === state.current) b.setAttribute("aria-current", "page");
    if (r.unread) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.setAttribute("aria-hidden", "true");
      badge.textContent = r.unread > 99 ? "99+" : String(r.unread);
      b.appendChild(badge);
      b.setAttribute("aria-description", `${r.unread} unread`);
    }
    b.addEventListener("click", () => joinRoom(r.name));
    li.appendChild(b);
    frag.appendChild(li);
  }
  ul.replaceChildren(frag);
}

function joinRoom(name) {
  name = name.trim().toLowerCase();
  if (!/^[a-z0-9_-]{1,64}$/.test(name)) {
    $("chat-error").textContent = "Room names are 1-64 of a-z, 0-9, _ and -";
    return;
  }
  const r = room(name);
  state.current = name;
  localStorage.setItem("sb_room", name);
  r.unread = 0;
  $("room-title").textContent = "#" + name;
  $("message-input").disabled = false;
  $("send").disabled = false;
  if (!r.joined) send({ type: "join", room: name });
  renderRooms();
  renderOnline();
  renderTyping();
  scheduleRender();
  $("message-input").focus();
}

function renderOnline() {
  const r = state.current && room(state.current);
  const frag = document.createDocumentFragment();
  for (const u of r ? [...r.online].sort() : []) {
    const li = document.createElement("li");
    li.textContent = u;
    frag.appendChild(li);
  }
  $("online").replaceChildren(frag);
}

function renderTyping() {
  const r = state.current && room(state.current);
  const now = Date.now();
  const names = [];
  if (r) for (const [u, until] of r.typing) { if (until > now) names.push(u); else r.typing.delete(u); }
  $("typing").textContent = names.length ? names.map((n) => `${n} is typing`).join(", ") : "";
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
$("send-form").addEventListener("submit", (e) => { e.preventDefault(); sendMessage(); });
$("message-input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); sendMessage(); return; }
  const now = Date.now();
  if (state.current && now - state.typingSentAt > 2000) {
    state.typingSentAt = now;
    send({ type: "typing", room: state.current });
  }
});
$("messages").addEventListener("scroll", () => { if ($("messages").scrollTop < 60) loadOlder(); });

(async function start() {
  if (!state.token) { $("username").focus(); return; }
  try {
    const me = await api("GET", "/me");
    await enterChat(me);
  } catch (_) {
    localStorage.removeItem("sb_token");
    state.token = null;
  }
})();

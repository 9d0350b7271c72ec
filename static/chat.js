// The chat page: signs in, then joins what the user picks through the
// Switchboard client (switchboard.js), keeps the model (chat-state.js) and
// draws it (chat-views.js). No build step.

import { Switchboard } from "./switchboard.js";
import { state, view, room, currentRoom, insert, amend, trimMemory, validRoomName, displayName } from "./chat-state.js";
import {
  $, setStatus, showError, scheduleRender, flush, setOlderLoader, onScroll, jumpToLatest, renderRooms,
  scheduleRoomsRender, renderTitle, renderOutbox, renderMembers, renderBrowser, renderTyping, fillViewport, extendUp,
  refreshMessage,
} from "./chat-views.js";

const BROWSE_PAGE = 20;
const ROOMS_POLL_MS = 20000; // new DMs and private rooms one was added to show up by themselves

// ---------- HTTP ----------
async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const res = await fetch("/api/v1" + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
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
  $("show-rooms").hidden = false;
  $("show-members").hidden = false;
  $("private-label").hidden = !!user.guest;
  $("room-private").hidden = !!user.guest;
  if ("Notification" in window && Notification.permission === "default") $("notify").hidden = false;
  startClient();
  await loadJoinedRooms();
  setInterval(loadJoinedRooms, ROOMS_POLL_MS);
  browse(false);
  const last = localStorage.getItem("sb_room");
  const first = last && state.rooms.has(last) ? last : [...state.rooms.keys()].sort()[0];
  if (first) openRoom(first);
  // A newcomer lands in `general` (the server's default room), if it exists.
  else if (await api("GET", "/rooms?q=general&limit=1").then((p) => p.rooms.some((r) => r.name === "general"), () => false)) {
    joinRoom("general");
  } else moveFocus($("room-input"), false);
}

async function logout() {
  try { await api("DELETE", "/sessions"); } catch (_) { /* already gone */ }
  localStorage.removeItem("sb_token");
  location.reload();
}

// ---------- the client ----------
function startClient() {
  const c = new Switchboard({ token: state.token });
  state.client = c;
  c.addEventListener("status", (e) => onStatus(e.detail));
  c.addEventListener("joined", (e) => onJoined(e.detail));
  c.addEventListener("message", (e) => onMessage(e.detail));
  c.addEventListener("message_edited", (e) => onAmend(e.detail));
  c.addEventListener("message_deleted", (e) => onAmend(e.detail));
  c.addEventListener("read", (e) => onRead(e.detail));
  c.addEventListener("outbox", () => drawOutbox());
  c.addEventListener("presence", (e) => {
    const f = e.detail;
    const r = state.rooms.get(f.room);
    if (!r) return;
    if (f.state === "online") r.online.add(f.user); else r.online.delete(f.user);
    if (f.room === state.current) drawMembers();
  });
  c.addEventListener("typing", (e) => {
    const r = state.rooms.get(e.detail.room);
    if (!r) return;
    r.typing.set(e.detail.user, Date.now() + 3000);
    if (e.detail.room === state.current) renderTyping();
  });
  c.addEventListener("error", (e) => onError(e.detail));
  c.connect();
}

function onStatus(s) {
  state.connected = s.state === "connected";
  if (s.state === "connected") setStatus(`Connected as ${s.user.username}`, { ok: true });
  else if (s.state === "reconnecting") {
    for (const r of state.rooms.values()) r.online.clear();
    drawMembers();
    setStatus("Reconnecting…", { at: s.at });
  } else if (s.state === "connecting") setStatus(state.connected ? "Connected" : "Connecting…");
}

async function onJoined(f) {
  const r = state.rooms.get(f.room);
  if (!r) return;
  r.online = new Set(f.online);
  if (f.room === state.current) drawMembers();
  renderRooms();
  if (!r.synced) {
    r.synced = true;
    await loadNewest(r, f.last_seq);
  }
  if (f.room === state.current) markRead();
}

function onMessage(m) {
  const r = state.rooms.get(m.room);
  if (!r) return;
  r.typing.delete(m.user);
  addMessages(r, [m], true);
  if (m.room !== state.current || document.hidden) notify(m);
  else markRead();
}

// An edit or delete: the message changes where it is.
function onAmend(f) {
  const r = state.rooms.get(f.room);
  if (!r || !amend(r, f)) return;
  if (f.room === state.current) refreshMessage(r, f.id);
}

// The marker moved on another device: its count stands here too.
function onRead(f) {
  const r = state.rooms.get(f.room);
  if (!r || (f.room === state.current && !document.hidden)) return;
  r.unread = f.unread;
  renderRooms();
}

// The open, visible room is read up to its newest message (once per change,
// a little after a burst).
let markTimer = null;
function markRead() {
  clearTimeout(markTimer);
  markTimer = setTimeout(() => {
    const name = state.current;
    const r = currentRoom();
    const joined = name && state.client.rooms.get(name);
    if (!r || !joined || document.hidden) return;
    const seq = joined.lastSeq;
    if (seq > 0 && seq > (r.readSeq || 0)) {
      r.readSeq = seq;
      state.client.markRead(name, seq).catch(() => { r.readSeq = 0; });
    }
  }, 300);
}

function onError(f) {
  if (f.code === "unauthorized") { logout(); return; }
  // Removed from a room (by its owner, or left elsewhere): it goes.
  if (f.ref && state.rooms.has(f.ref) && (f.code === "forbidden" || f.code === "not_found")) dropRoom(f.ref);
  if (f.message) showError(`${f.message}${f.ref && !state.client.outbox.has(f.ref) ? " (" + f.ref + ")" : ""}`);
}

// ---------- history ----------
async function loadNewest(r, upto) {
  try {
    const page = await state.client.history(r.name, { limit: 50, before: upto + 1 });
    r.hasMore = page.has_more;
    addMessages(r, page.messages, false);
    if (r.name === state.current) view.rebuild = true;
    scheduleRender();
  } catch (e) { showError(e.message); }
}

async function loadOlder(r) {
  if (r.loadingOlder || !r.hasMore || r.messages.length === 0) return;
  r.loadingOlder = true;
  $("messages").setAttribute("aria-busy", "true");
  try {
    const page = await state.client.history(r.name, { limit: 50, before: r.messages[0].seq });
    r.hasMore = page.has_more;
    insert(r, page.messages);
  } catch (e) {
    showError(e.message);
  } finally {
    r.loadingOlder = false;
    $("messages").removeAttribute("aria-busy");
  }
  if (r.name === state.current) { extendUp(); fillViewport(r); }
}
setOlderLoader(loadOlder);

// ---------- messages ----------
function addMessages(r, msgs, live) {
  const open = r.name === state.current;
  const added = insert(r, msgs);
  if (!added) return;
  // Landing inside the rendered window (a healed gap, an older page): render it again.
  if (open && msgs.some((m) => m.seq > view.first && m.seq < view.last)) view.rebuild = true;
  if (open) {
    if (live && !view.follow) view.unseen += added;
    if (live && document.hidden) { state.hiddenUnread += added; renderTitle(); }
    trimMemory(r, !view.follow);
    scheduleRender();
  } else if (live) {
    r.unread += added;
    trimMemory(r, false);
    scheduleRoomsRender(); // a busy background room must not rebuild the list per message
  }
}

// A desktop notification for a message the user is not looking at, if allowed.
function notify(m) {
  if (!("Notification" in window) || Notification.permission !== "granted" || m.user === state.user.username) return;
  try {
    const n = new Notification(`#${m.room}`, { body: `${m.user}: ${m.body}`.slice(0, 200), tag: `sb-${m.room}` });
    n.onclick = () => { window.focus(); openRoom(m.room, { byUser: true }); n.close(); };
  } catch (_) { /* not allowed in this context */ }
}

function drawOutbox() {
  renderOutbox(state.client.outbox.values(), (id) => state.client.retry(id), (id) => { state.client.discard(id); drawOutbox(); });
}

function sendMessage() {
  const input = $("message-input");
  const body = input.value;
  if (!state.current || !body.trim()) return;
  // The outbox holds it (shown as pending, or Not sent with Retry) until
  // it is stored: nothing typed is lost.
  state.client.send(state.current, body).catch(() => {});
  input.value = "";
  state.lastText = "";
  if (!view.follow) jumpToLatest();
}

// ---------- rooms ----------
async function loadJoinedRooms() {
  try {
    let after = "";
    do {
      const page = await api("GET", `/rooms?joined=true&limit=200${after ? "&after=" + after : ""}`);
      for (const info of page.rooms) addRoom(info);
      after = page.next || "";
    } while (after);
    renderRooms();
    if (state.current && !state.rooms.has(state.current)) dropRoom(state.current);
  } catch (e) {
    if (e.status === 401) logout();
  }
}

function addRoom(info) {
  const known = state.rooms.has(info.name);
  const r = room(info.name);
  r.private = !!info.private;
  r.kind = info.kind || "room";
  r.with = info.with || null;
  if (info.name !== state.current && info.unread !== undefined) r.unread = info.unread;
  if (!known) state.client.join(info.name).catch(() => {});
  return r;
}

function dropRoom(name) {
  state.client.leave(name);
  state.rooms.delete(name);
  if (state.current === name) {
    state.current = null;
    localStorage.removeItem("sb_room");
    $("room-title").textContent = "Pick or join a room";
    $("message-input").disabled = true;
    $("send").disabled = true;
    $("leave").hidden = true;
    Object.assign(view, { first: -1, last: -1, follow: true, rebuild: true, unseen: 0 });
    scheduleRender();
    drawMembers();
    drawOutbox();
  }
  renderRooms();
}

async function joinRoom(name, { makePrivate = false, byUser = false } = {}) {
  name = name.trim().toLowerCase();
  if (!validRoomName(name)) {
    showError("Room names are 1-64 of a-z, 0-9, _ and -");
    return;
  }
  // A public room is created by its first join; a private one is created
  // here, and joining an existing one needs membership.
  if (makePrivate) {
    try {
      await api("POST", "/rooms", { name, private: true });
    } catch (e) {
      showError(e.message);
      return;
    }
  }
  const r = room(name);
  r.private = makePrivate;
  try {
    await state.client.join(name);
  } catch (e) {
    dropRoom(name);
    showError(e.message);
    return;
  }
  if (!makePrivate) {
    const info = await api("GET", `/rooms/${name}`).catch(() => null);
    r.private = !!(info && info.private);
  }
  // The landing join (not the user's) opens its room only when none is
  // open: if its answer comes after the user opened another room, it must
  // not take them away from it.
  if (byUser || !state.current) openRoom(name, { byUser });
  else renderRooms();
}

// Focus moves only on the user's own action (opening or joining a room),
// and never out of another field that holds text: a join that completes
// while the user types a room name must not split it into the composer.
function moveFocus(target, byUser) {
  const active = document.activeElement;
  const elsewhere = active && active !== document.body && active !== target;
  if (elsewhere && !byUser) return;
  if (elsewhere && active.matches("input, textarea") && active.value) return;
  target.focus();
}

// On a phone one pane shows at a time: the room list, the log or the members.
function setPane(pane) {
  $("chat-view").dataset.pane = pane;
  $("show-rooms").setAttribute("aria-expanded", String(pane === "rooms"));
  $("show-members").setAttribute("aria-expanded", String(pane === "members"));
}

function openRoom(name, { byUser = false } = {}) {
  const r = state.rooms.get(name);
  if (!r) return;
  const switching = state.current !== name;
  state.current = name;
  localStorage.setItem("sb_room", name);
  r.unread = 0;
  $("room-title").textContent = r.kind === "dm" ? `@${displayName(r)}` : "#" + name + (r.private ? " (private)" : "");
  if (switching) view.editing = null;
  markRead();
  $("message-input").disabled = false;
  $("send").disabled = false;
  // A DM has no members to change: nobody leaves it.
  $("leave").hidden = r.kind === "dm";
  if (switching) Object.assign(view, { first: -1, last: -1, follow: true, rebuild: true, unseen: 0 });
  renderRooms();
  loadMembers(r);
  renderTyping();
  drawOutbox();
  scheduleRender();
  if (byUser) setPane("log");
  moveFocus($("message-input"), byUser);
}

async function loadMembers(r) {
  drawMembers();
  try {
    const data = await api("GET", `/rooms/${r.name}/members`);
    r.members = data.members;
    const owner = data.members.find((m) => m.owner);
    r.owner = owner ? owner.username : null;
    for (const m of data.members) if (m.online) r.online.add(m.username);
  } catch (_) {
    r.members = null;
  }
  if (r.name === state.current) drawMembers();
}

function drawMembers() {
  renderMembers({ onRemove: removeMember, onMessage: openDm, onBan: banMember });
}

// Opens (creating it the first time) the direct-message room with a member.
async function openDm(username) {
  try {
    const info = await state.client.dm(username);
    addRoom(info);
    await state.client.join(info.name);
    renderRooms();
    openRoom(info.name, { byUser: true });
  } catch (e) { showError(e.message); }
}

async function banMember(username) {
  const r = currentRoom();
  if (!r) return;
  try {
    await api("POST", `/rooms/${r.name}/bans`, { username });
    await loadMembers(r);
  } catch (e) { showError(e.message); }
}

// Edit and Delete on a message, and its edit form.
function messageAction(action, id, form) {
  const name = state.current;
  if (!name) return;
  if (action === "edit") {
    Object.assign(view, { editing: id, editText: null });
    refreshMessage(currentRoom(), id);
    // The user's own click: the one focus policy (moveFocus) still keeps
    // it out of another field that holds text.
    const input = document.getElementById(`edit-${id}`);
    if (input) moveFocus(input, true);
  } else if (action === "cancel") {
    view.editing = null;
    refreshMessage(currentRoom(), id);
  } else if (action === "delete") {
    state.client.delete(name, id).catch(() => {});
  } else if (action === "save") {
    const body = form.querySelector("textarea").value;
    if (!body.trim()) { showError("A message cannot be empty: use Delete to remove it"); return; }
    view.editing = null;
    refreshMessage(currentRoom(), id);
    // The outbox holds it until stored, like a send.
    state.client.edit(name, id, body).catch(() => {});
  }
}

async function removeMember(username) {
  const r = currentRoom();
  if (!r) return;
  try {
    await api("DELETE", `/rooms/${r.name}/members/${encodeURIComponent(username)}`);
    await loadMembers(r);
  } catch (e) { showError(e.message); }
}

async function addMember() {
  const r = currentRoom();
  const input = $("member-input");
  const username = input.value.trim();
  if (!r || !username) return;
  try {
    await api("POST", `/rooms/${r.name}/members`, { username });
    input.value = "";
    await loadMembers(r);
  } catch (e) { showError(e.message); }
}

async function leaveRoom() {
  const name = state.current;
  if (!name) return;
  try {
    await api("DELETE", `/rooms/${name}/members/${encodeURIComponent(state.user.username)}`);
  } catch (e) {
    // 404: not a member anyway. The owner stays (the server says so).
    if (e.status !== 404) { showError(e.status === 400 ? `You own #${name}: its owner cannot leave it` : e.message); return; }
  }
  dropRoom(name);
  browse(false);
}

// The room browser: public rooms by name prefix, a page at a time.
let browseNext = null;
async function browse(more) {
  const q = $("browse-input").value.trim().toLowerCase();
  const params = new URLSearchParams({ limit: String(BROWSE_PAGE) });
  if (q) params.set("q", q);
  if (more && browseNext) params.set("after", browseNext);
  try {
    const page = await api("GET", `/rooms?${params}`);
    browseNext = page.next;
    renderBrowser(page.rooms.filter((r) => !state.rooms.has(r.name)), page.next, more, (name) => joinRoom(name, { byUser: true }));
  } catch (e) {
    if (e.status === 401) logout();
  }
}

// ---------- wiring ----------
$("auth-form").addEventListener("submit", (e) => { e.preventDefault(); authenticate("signin"); });
$("signup").addEventListener("click", () => authenticate("signup"));
$("guest").addEventListener("click", () => authenticate("guest"));
$("logout").addEventListener("click", logout);
$("join-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const makePrivate = $("room-private").checked;
  joinRoom($("room-input").value, { makePrivate, byUser: true });
  $("room-input").value = "";
  $("room-private").checked = false;
});
for (const list of ["room-list", "dm-list"]) {
  $(list).addEventListener("click", (e) => {
    const b = e.target.closest("button[data-room]");
    if (b) openRoom(b.dataset.room, { byUser: true });
  });
}
$("show-rooms").addEventListener("click", () => setPane($("chat-view").dataset.pane === "rooms" ? "log" : "rooms"));
$("show-members").addEventListener("click", () => setPane($("chat-view").dataset.pane === "members" ? "log" : "members"));
$("leave").addEventListener("click", leaveRoom);
$("add-member").addEventListener("submit", (e) => { e.preventDefault(); addMember(); });
$("browse-form").addEventListener("submit", (e) => { e.preventDefault(); browse(false); });
$("browse-input").addEventListener("input", () => browse(false));
$("browse-more").addEventListener("click", () => browse(true));
$("notify").addEventListener("click", async () => {
  await Notification.requestPermission();
  $("notify").hidden = Notification.permission !== "default";
});
$("send-form").addEventListener("submit", (e) => { e.preventDefault(); sendMessage(); });
$("message-input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendMessage(); }
});
// Typing notices only for keys that change the text (not arrows, not Tab).
$("message-input").addEventListener("input", (e) => {
  const text = e.target.value;
  if (text === state.lastText) return;
  state.lastText = text;
  const now = Date.now();
  if (state.current && text && now - state.typingSentAt > 2000) {
    state.typingSentAt = now;
    state.client.typing(state.current);
  }
});
$("messages").addEventListener("scroll", onScroll, { passive: true });
$("messages").addEventListener("click", (e) => {
  const b = e.target.closest("button[data-action]");
  const msg = b && b.closest(".msg");
  if (msg) messageAction(b.dataset.action, msg.dataset.id, b.closest("form"));
});
$("messages").addEventListener("submit", (e) => {
  const msg = e.target.closest(".msg");
  if (!msg) return;
  e.preventDefault();
  messageAction("save", msg.dataset.id, e.target);
});
$("messages").addEventListener("input", (e) => { if (e.target.closest("form.edit")) view.editText = e.target.value; });
$("messages").addEventListener("keydown", (e) => {
  const form = e.target.closest("form.edit");
  if (!form) return;
  if (e.key === "Escape") messageAction("cancel", form.closest(".msg").dataset.id);
  else if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
});
$("jump").addEventListener("click", jumpToLatest);
window.addEventListener("online", () => state.client && state.client.reconnectNow());
document.addEventListener("visibilitychange", () => {
  if (document.hidden) return;
  state.hiddenUnread = 0;
  renderTitle();
  markRead();
  if (state.client) state.client.reconnectNow();
});
setInterval(renderTyping, 1000);

// For tests and the curious: the page's model and hot paths.
window.switchboardPage = { state, view, flush, onMessage, onAmend };

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

// The chat page's DOM. The message log holds only a window of at most
// WINDOW_MAX messages around what is on screen, so a room with tens of
// thousands of messages scrolls and types as fast as an empty one; bursts are
// rendered once per animation frame. Text is only ever set with textContent
// (no HTML injection).

import { state, view, currentRoom, lowerBound, displayName } from "./chat-state.js";

const WINDOW = 100; // message nodes rendered when following the newest (fills any screen)
const STEP = 100; // nodes added per scroll step
const WINDOW_MAX = WINDOW + STEP;
const EDGE_PX = 400; // scrolling this close to an edge extends the window

export const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  const { dataset, ...rest } = props;
  Object.assign(e, rest);
  if (dataset) Object.assign(e.dataset, dataset);
  e.append(...children);
  return e;
}

// ---------- status and errors ----------

let countdown = null;
/** The connection state; while reconnecting, the countdown ticks. */
export function setStatus(text, { ok = false, at = 0 } = {}) {
  clearInterval(countdown);
  const conn = $("conn");
  conn.className = "conn " + (ok ? "ok" : "bad");
  if (!at) { conn.textContent = text; return; }
  const tick = () => {
    const s = Math.max(0, Math.ceil((at - Date.now()) / 1000));
    conn.textContent = s > 0 ? `Reconnecting in ${s} s…` : "Reconnecting…";
    if (s === 0) clearInterval(countdown);
  };
  tick();
  countdown = setInterval(tick, 1000);
}

export function showError(text) {
  $("chat-error").textContent = text;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { $("chat-error").textContent = ""; }, 6000);
}

// ---------- the message log (a window over the model) ----------

let renderPending = false;
let onNeedOlder = () => {};
/** `loadOlder(room)`: fetches the page before the oldest kept message. */
export function setOlderLoader(fn) { onNeedOlder = fn; }

export function scheduleRender() {
  // One DOM update per animation frame, however many messages arrived.
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(flush);
}

export function flush() {
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
      appendRange(r, next, msgs.length);
      trimTop(WINDOW);
      list.scrollTop = list.scrollHeight;
    } else if (pending > 0 && list.childElementCount < WINDOW_MAX) {
      // Reading further up: fill the window below without moving the view.
      appendRange(r, next, Math.min(msgs.length, next + WINDOW_MAX - list.childElementCount));
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
  for (let i = from; i < to; i++) frag.appendChild(messageNode(r, i));
  list.replaceChildren(frag);
  setBounds(list);
  if (anchor) restore(list, anchor);
  else list.scrollTop = list.scrollHeight;
}

function setBounds(list) {
  view.first = list.firstElementChild ? Number(list.firstElementChild.dataset.seq) : -1;
  view.last = list.lastElementChild ? Number(list.lastElementChild.dataset.seq) : -1;
}

function appendRange(r, from, to) {
  if (from >= to) return;
  const list = $("messages");
  const frag = document.createDocumentFragment();
  for (let i = from; i < to; i++) frag.appendChild(messageNode(r, i));
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

// A short room does not scroll, so no scroll event asks for more: fetch
// older pages until the log overflows or the room's start is reached.
export function fillViewport(r) {
  const list = $("messages");
  if (view.first !== -1 && !r.loadingOlder && r.hasMore && list.scrollHeight <= list.clientHeight) extendUp();
}

// Scrolled near the top: show earlier messages from memory, else fetch a page.
export function extendUp() {
  const r = currentRoom();
  const list = $("messages");
  if (!r || view.first === -1) return;
  const at = lowerBound(r.messages, view.first);
  if (at === 0) { onNeedOlder(r); return; }
  const anchor = firstVisible(list);
  const frag = document.createDocumentFragment();
  for (let i = Math.max(0, at - STEP); i < at; i++) frag.appendChild(messageNode(r, i));
  const oldFirst = list.firstElementChild;
  list.prepend(frag);
  if (oldFirst) refreshDivider(r, oldFirst);
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
  appendRange(r, next, Math.min(r.messages.length, next + STEP));
  trimTop(WINDOW_MAX);
  if (anchor) restore(list, anchor);
}

let scrollQueued = false;
export function onScroll() {
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

export function jumpToLatest() {
  view.follow = true;
  view.unseen = 0;
  view.rebuild = true;
  scheduleRender();
  $("message-input").focus();
}

export function renderJump(r) {
  const newest = r && r.messages.length ? r.messages[r.messages.length - 1].seq : -1;
  const behind = !view.follow && (view.unseen > 0 || view.last !== newest);
  const b = $("jump");
  b.hidden = !behind;
  if (behind) b.textContent = view.unseen > 0 ? `${view.unseen} new ↓` : "Latest ↓";
}

// ---------- one message, and day dividers ----------

// Cloning one prepared node is cheaper than building the elements per message.
const messageTemplate = (() => {
  const div = el("div", { className: "msg" });
  div.append(el("span", { className: "who" }), " ", el("time"), " ", el("span", { className: "body" }));
  return div;
})();

const dayFormat = new Intl.DateTimeFormat([], { weekday: "short", day: "numeric", month: "short", year: "numeric" });
const fullFormat = new Intl.DateTimeFormat([], { dateStyle: "full", timeStyle: "medium" });
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

/** The local calendar day of a timestamp, as a comparable key. */
export function dayKey(iso) {
  const d = new Date(iso);
  return d.getFullYear() * 10000 + (d.getMonth() + 1) * 100 + d.getDate();
}

/** "Today", "Yesterday" or the date. */
export function dayLabel(iso, now = new Date()) {
  const key = dayKey(iso);
  if (key === dayKey(now.toISOString())) return "Today";
  const y = new Date(now);
  y.setDate(y.getDate() - 1);
  if (key === dayKey(y.toISOString())) return "Yesterday";
  return dayFormat.format(new Date(iso));
}

// A message starts a day when the one before it (in the room, not the
// window) is from another day, or it is the room's first.
function startsDay(r, i) {
  const m = r.messages[i];
  if (i > 0) return dayKey(r.messages[i - 1].sent_at) !== dayKey(m.sent_at);
  return !r.hasMore;
}

function dividerNode(iso) {
  return el("p", { className: "day", role: "separator", textContent: dayLabel(iso) });
}

function messageNode(r, i) {
  const m = r.messages[i];
  const div = messageTemplate.cloneNode(true);
  const me = state.user && state.user.username;
  const mine = m.user === me;
  if (mine) div.classList.add("mine");
  div.dataset.seq = m.seq;
  div.dataset.id = m.id;
  const [who, time, body] = div.children;
  who.textContent = m.user;
  time.dateTime = m.sent_at;
  time.textContent = clock(m.sent_at);
  time.title = fullFormat.format(new Date(m.sent_at));
  body.textContent = m.body;
  if (m.deleted) div.append(" ", el("span", { className: "mark", textContent: "deleted" }));
  else if (m.edited_at) {
    const mark = el("span", { className: "mark", textContent: "edited" });
    mark.title = fullFormat.format(new Date(m.edited_at));
    div.append(" ", mark);
  }
  if (!m.deleted && view.editing === m.id) div.append(editForm(m));
  else if (!m.deleted && (mine || r.owner === me)) {
    const actions = el("span", { className: "actions" });
    if (mine) actions.append(el("button", { type: "button", className: "quiet", textContent: "Edit", dataset: { action: "edit" } }), " ");
    actions.append(el("button", { type: "button", className: "quiet", textContent: "Delete", dataset: { action: "delete" } }));
    div.append(" ", actions);
  }
  if (startsDay(r, i)) div.prepend(dividerNode(m.sent_at));
  return div;
}

// Editing one's message in place: textbox "Edit message", Save, Cancel.
function editForm(m) {
  const form = el("form", { className: "edit" });
  form.dataset.action = "save";
  const label = el("label", { className: "visually-hidden", textContent: "Edit message", htmlFor: `edit-${m.id}` });
  const input = el("textarea", { id: `edit-${m.id}`, rows: 2, maxLength: 4000, value: m.body });
  input.value = view.editText ?? m.body;
  const save = el("button", { type: "submit", textContent: "Save" });
  const cancel = el("button", { type: "button", className: "quiet", textContent: "Cancel", dataset: { action: "cancel" } });
  form.append(label, input, save, " ", cancel);
  return form;
}

/** Draws one held message again (edited, deleted, or its edit form opened
 * or closed), if it is in the rendered window. */
export function refreshMessage(r, id) {
  if (!r || r.name !== state.current) return;
  const node = $("messages").querySelector(`.msg[data-id="${CSS.escape(id)}"]`);
  if (!node) return;
  const i = lowerBound(r.messages, Number(node.dataset.seq));
  if (r.messages[i] && r.messages[i].id === id) node.replaceWith(messageNode(r, i));
}

// After older messages were loaded, the node that was first may no longer
// start its day (or now does).
function refreshDivider(r, node) {
  const i = lowerBound(r.messages, Number(node.dataset.seq));
  const has = node.firstElementChild && node.firstElementChild.classList.contains("day");
  const wants = startsDay(r, i);
  if (has && !wants) node.firstElementChild.remove();
  else if (!has && wants) node.prepend(dividerNode(r.messages[i].sent_at));
}

// ---------- the outbox: sends not yet stored ----------

/** Pending and refused sends of the open room, below the log. */
export function renderOutbox(entries, onRetry, onDiscard) {
  const frag = document.createDocumentFragment();
  for (const m of entries) {
    if (m.room !== state.current || m.state === "sent") continue;
    const li = el("li", { className: m.state === "failed" ? "out failed" : "out pending" });
    li.dataset.id = m.id;
    const what = m.kind === "edit" ? `Edit: ${m.body}` : m.kind === "delete" ? "Delete a message" : m.body;
    li.append(el("span", { className: "body", textContent: what }), " ");
    if (m.state === "failed") {
      const why = m.error ? ` (${m.error.message})` : "";
      li.append(el("span", { className: "state", textContent: "Not sent" }), el("span", { className: "why", textContent: why }), " ");
      const retry = el("button", { type: "button", textContent: "Retry" });
      retry.addEventListener("click", () => onRetry(m.id));
      const drop = el("button", { type: "button", textContent: "Discard", className: "quiet" });
      drop.setAttribute("aria-label", "Discard unsent message");
      drop.addEventListener("click", () => onDiscard(m.id));
      li.append(retry, " ", drop);
    } else {
      li.append(el("span", { className: "state", textContent: "Sending…" }));
    }
    frag.appendChild(li);
  }
  $("outbox").replaceChildren(frag);
}

// ---------- rooms, members, the room browser ----------

let roomsPending = false;
export function scheduleRoomsRender() {
  if (roomsPending) return;
  roomsPending = true;
  requestAnimationFrame(() => { roomsPending = false; renderRooms(); });
}

export function renderRooms() {
  const frag = document.createDocumentFragment();
  const dms = document.createDocumentFragment();
  const all = [...state.rooms.values()].sort((a, b) => displayName(a).localeCompare(displayName(b)));
  for (const r of all) {
    // A DM is listed apart, under the other person's name.
    const b = el("button", { type: "button", textContent: displayName(r) });
    b.dataset.room = r.name;
    if (r.name === state.current) { b.className = "current"; b.setAttribute("aria-current", "page"); }
    if (r.private && r.kind !== "dm") {
      // Outside the accessible name.
      const lock = el("span", { className: "lock", textContent: "private" });
      lock.setAttribute("aria-hidden", "true");
      b.appendChild(lock);
      b.setAttribute("aria-description", "private");
    }
    const li = el("li", {}, b);
    if (r.unread) {
      // Beside the button: its accessible name stays the room's name.
      const text = `${r.unread > 99 ? "99+" : r.unread} unread`;
      li.append(el("span", { className: "badge", textContent: text }));
      // Said when the button is focused, too.
      b.setAttribute("aria-description", `${r.private && r.kind !== "dm" ? "private, " : ""}${text}`);
    }
    (r.kind === "dm" ? dms : frag).appendChild(li);
  }
  $("room-list").replaceChildren(frag);
  $("dm-list").replaceChildren(dms);
  $("dms").hidden = !$("dm-list").childElementCount;
  renderTitle();
}

export function renderTitle() {
  let unread = state.hiddenUnread;
  for (const r of state.rooms.values()) unread += r.unread;
  document.title = unread ? `(${unread > 999 ? "999+" : unread}) Switchboard` : "Switchboard";
}

/** The open room's members with online state; the owner of a private room
 * manages them, the owner of any room bans; anyone signed in may message
 * a member directly. */
export function renderMembers({ onRemove, onMessage, onBan }) {
  const r = currentRoom();
  const me = state.user && state.user.username;
  const manage = !!(r && r.private && r.owner === me && r.kind !== "dm");
  const moderate = !!(r && r.owner === me && r.kind !== "dm");
  const canDm = !!(state.user && !state.user.guest && r && r.kind !== "dm");
  $("add-member").hidden = !manage;
  const frag = document.createDocumentFragment();
  // The member list as last fetched, plus whoever came online since (a
  // public room's members are whoever joined it).
  const members = r ? [...(r.members || [])] : [];
  if (r) for (const u of r.online) if (!members.some((m) => m.username === u)) members.push({ username: u, owner: false });
  for (const m of [...members].sort((a, b) => a.username.localeCompare(b.username))) {
    const online = r.online.has(m.username);
    const li = el("li", { className: online ? "online" : "offline" });
    li.append(el("span", { className: "name", textContent: m.username }));
    li.append(el("span", { className: "presence", textContent: online ? " online" : " offline" }));
    if (m.owner) li.append(el("span", { className: "owner", textContent: " (owner)" }));
    const other = m.username !== me;
    const button = (text, run) => {
      const b = el("button", { type: "button", className: "quiet", textContent: text });
      b.addEventListener("click", () => run(m.username));
      li.append(" ", b);
    };
    if (canDm && other) button(`Message ${m.username}`, onMessage);
    if (manage && other) button(`Remove ${m.username}`, onRemove);
    if (moderate && other) button(`Ban ${m.username}`, onBan);
    frag.appendChild(li);
  }
  $("members").replaceChildren(frag);
}

/** One page of the room browser; `append` for "More". */
export function renderBrowser(rooms, next, append, onJoin) {
  const frag = document.createDocumentFragment();
  for (const r of rooms) {
    // Named by the room alone: "Join" is the join form's button.
    const b = el("button", { type: "button", textContent: r.name, title: `Join ${r.name}` });
    b.addEventListener("click", () => onJoin(r.name));
    const count = el("span", { className: "count", textContent: ` ${r.member_count} ${r.member_count === 1 ? "member" : "members"}` });
    frag.appendChild(el("li", {}, b, count));
  }
  if (append) $("browse-list").appendChild(frag); else $("browse-list").replaceChildren(frag);
  $("browse-more").hidden = !next;
}

export function renderTyping() {
  const r = currentRoom();
  const now = Date.now();
  const names = [];
  if (r) for (const [u, until] of r.typing) { if (until > now) names.push(u); else r.typing.delete(u); }
  const text = names.map((n) => `${n} is typing`).join(", ");
  if ($("typing").textContent !== text) $("typing").textContent = text;
}

// What the chat page knows, without the DOM: the signed-in user, the rooms
// the user is in (each one's messages by seq, members, who is online and
// typing) and the view's position in the open room.

export const MAX_KEPT = 20000; // messages kept in memory per room; older ones reload from history
const TRIM_SLACK = 2000; // trim in chunks: a splice per message would be O(n) each

export const state = {
  token: localStorage.getItem("sb_token"),
  user: null,
  client: null, // the Switchboard client
  connected: false,
  rooms: new Map(), // name -> Room (the rooms the user is in)
  current: null,
  hiddenUnread: 0, // live messages in the open room while the tab is hidden
  lastText: "", // the compose box's text, to send typing only when it changes
  typingSentAt: 0,
};

// The rendered window of the open room: seqs of its first and last nodes.
// `editing`: the id of the message whose edit form is open, `editText` what
// is typed in it (kept when the window is drawn again).
export const view = { first: -1, last: -1, follow: true, rebuild: true, unseen: 0, editing: null, editText: null };

export function newRoom(name) {
  return {
    // synced: the history's newest page is loaded (the client tracks `since`).
    name, synced: false, messages: [], seqs: new Set(), byId: new Map(), unread: 0, hasMore: true, loadingOlder: false,
    online: new Set(), typing: new Map(), members: null, owner: null, private: false,
    // kind "dm": a direct-message room, shown as `with` (the other person).
    kind: "room", with: null,
  };
}

export function room(name) {
  if (!state.rooms.has(name)) state.rooms.set(name, newRoom(name));
  return state.rooms.get(name);
}

export const currentRoom = () => (state.current ? state.rooms.get(state.current) || null : null);

// Index of the first message with seq >= `seq`.
export function lowerBound(list, seq) {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid].seq < seq) lo = mid + 1; else hi = mid;
  }
  return lo;
}

/** Adds messages once each, in seq order; returns how many were new. A
 * message already held takes the state history now gives it (edited,
 * deleted). */
export function insert(r, msgs) {
  let added = 0;
  for (const m of msgs) {
    if (r.seqs.has(m.seq)) {
      const held = r.byId.get(m.id);
      if (held) Object.assign(held, { body: m.body, edited_at: m.edited_at, deleted: m.deleted });
      continue;
    }
    r.seqs.add(m.seq);
    r.byId.set(m.id, m);
    const list = r.messages;
    if (list.length === 0 || m.seq > list[list.length - 1].seq) list.push(m);
    else list.splice(lowerBound(list, m.seq), 0, m);
    added++;
  }
  return added;
}

// Memory stays bounded too: the oldest messages go (history reloads them).
export function trimMemory(r, reading) {
  const excess = r.messages.length - MAX_KEPT;
  if (excess <= TRIM_SLACK || reading) return;
  for (const m of r.messages.splice(0, excess)) { r.seqs.delete(m.seq); r.byId.delete(m.id); }
  r.hasMore = true;
}

/** An edit or delete of a held message; true when it changed one. (One
 * not held is older than memory: history shows it as it is now.) */
export function amend(r, event) {
  const m = r.byId.get(event.id);
  if (!m) return false;
  if (event.type === "message_deleted") Object.assign(m, { body: "", deleted: true });
  else if (!m.deleted) Object.assign(m, { body: event.body, edited_at: event.edited_at });
  return true;
}

/** The name a room is listed under: the other person, for a DM. */
export const displayName = (r) => (r.kind === "dm" && r.with ? r.with : r.name);

export const validRoomName = (name) => /^[a-z0-9_-]{1,64}$/.test(name);

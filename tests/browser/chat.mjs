// The chat page in real browsers, end to end, found only by the ARIA roles
// and names of PROTOCOL.md:
//  1. page load, cold and warm (Navigation/Resource/Paint Timing) -> $PAGE_LOAD_JSON
//  2. a registered user and a guest in two browser contexts join a room,
//     see each other's presence and typing, exchange messages both ways;
//     a message body with HTML shows as text
//  3. the server is restarted (SIGTERM, then kill -9) by the Rust harness,
//     which posts messages while the pages are away: both pages show
//     "Reconnecting", come back "Connected" and show those messages in
//     order, once
//  4. scroll-back in a room with $SEEDED older messages pages in history
//  5. a burst of $BURST messages into an open room: the DOM stays bounded,
//     typing and scrolling stay responsive (figures, not thresholds)
// Talks to the harness over stdio: prints "RESTART <graceful|kill>", waits
// for a line on stdin. The last stdout line is the JSON report.
import { createInterface } from "node:readline";
import { writeFileSync } from "node:fs";
import { BASE_URL, run, until, audit as auditPage } from "./lib.mjs";
import { pageLoad } from "./pageload.mjs";

const ROOM = process.env.ROOM || "e2e";
const HISTORY_ROOM = process.env.HISTORY_ROOM || "history";
const SEEDED = Number(process.env.SEEDED || 0);
const BURST = Number(process.env.BURST || 0);
const report = { steps: [] };
const step = (name) => { report.steps.push(name); console.error(`[chat] ${name}`); };

const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();
async function askHarness(what) {
  console.log(`RESTART ${what}`);
  const { value, done } = await lines.next();
  if (done || !value.startsWith("RESTARTED")) throw new Error(`harness answered ${value}`);
  return value;
}

// ---------- accessibility audit (axe-core, WCAG 2.x A and AA rules) ----------
async function audit(page, what) {
  step(await auditPage(page, what));
}

// ---------- helpers over the accessible page ----------
async function status(page) {
  return page.getByRole("status").first().textContent();
}

// The username the page is connected as, from its status.
async function connectedAs(page) {
  const text = await until("Connected", async () => { const s = await status(page); return s.includes("Connected") && s; });
  return text.replace(/^.*Connected as\s*/, "").trim();
}

async function join(page, room) {
  await page.getByRole("textbox", { name: "Room" }).fill(room);
  await page.getByRole("button", { name: "Join" }).click();
  await page.getByRole("navigation", { name: "Rooms" }).getByRole("button", { name: room, exact: true }).waitFor();
}

// Every message in the log as {seq, user, body}, in DOM order.
function logOf(page) {
  return page.getByRole("log", { name: "Messages" }).evaluate((log) =>
    [...log.children].map((n) => ({ seq: Number(n.dataset.seq), user: n.querySelector(".who")?.textContent, body: n.querySelector(".body")?.textContent })));
}

async function waitForBodies(page, bodies, what) {
  return until(what, async () => {
    const log = await logOf(page);
    return bodies.every((b) => log.some((m) => m.body === b)) && log;
  });
}

function assertOrderedOnce(log, bodies, who) {
  for (let i = 1; i < log.length; i++) {
    if (!(log[i].seq > log[i - 1].seq)) throw new Error(`${who}: seq ${log[i].seq} after ${log[i - 1].seq}`);
  }
  const positions = bodies.map((b) => {
    const hits = log.filter((m) => m.body === b);
    if (hits.length !== 1) throw new Error(`${who}: "${b}" shown ${hits.length} times`);
    return log.indexOf(hits[0]);
  });
  for (let i = 1; i < positions.length; i++) {
    if (positions[i] <= positions[i - 1]) throw new Error(`${who}: "${bodies[i]}" shown before "${bodies[i - 1]}"`);
  }
}

// Records every status text (the outage can be shorter than a poll).
async function watchStatus(page) {
  await page.evaluate(() => {
    window.__statuses = [document.querySelector("[role=status]").textContent];
    new MutationObserver(() => window.__statuses.push(document.querySelector("[role=status]").textContent))
      .observe(document.querySelector("[role=status]"), { childList: true, characterData: true, subtree: true });
  });
}

async function restart(mode, pages, bodies) {
  for (const p of pages) await watchStatus(p);
  await askHarness(mode);
  for (const [i, p] of pages.entries()) {
    await until(`page ${i} reconnected after ${mode} restart`, async () => {
      const seen = await p.evaluate(() => window.__statuses);
      return seen.some((s) => s.includes("Reconnecting")) && (await status(p)).includes("Connected");
    }, 30000);
    const log = await waitForBodies(p, bodies, `messages sent during the ${mode} restart on page ${i}`);
    assertOrderedOnce(log, bodies, `page ${i} after ${mode} restart`);
  }
  step(`${mode} restart: both pages showed Reconnecting, reconnected and replayed ${bodies.length} messages in order, once`);
}

// ---------- the scenario ----------
await run("chat page", async (browser) => {
  report.page_load = await pageLoad(browser, 5);
  if (process.env.PAGE_LOAD_JSON) writeFileSync(process.env.PAGE_LOAD_JSON, JSON.stringify(report.page_load, null, 2));
  const { cold, warm } = report.page_load.median;
  step(`page load (median of 5): cold FCP ${cold.first_contentful_paint_ms} ms, ${cold.total_transfer_bytes} B; warm FCP ${warm.first_contentful_paint_ms} ms, ${warm.total_transfer_bytes} B`);

  // 2. a registered user and a guest
  const alice = await (await browser.newContext()).newPage();
  await alice.goto(`${BASE_URL}/`);
  await audit(alice, "the sign-in form");
  await alice.getByRole("textbox", { name: "Username" }).fill("alice");
  await alice.getByLabel("Password").fill("correct horse battery");
  await alice.getByRole("button", { name: "Sign up" }).click();
  const aliceName = await connectedAs(alice);

  const guest = await (await browser.newContext()).newPage();
  await guest.goto(`${BASE_URL}/`);
  await guest.getByRole("textbox", { name: "Username" }).fill("visitor");
  await guest.getByRole("button", { name: "Continue as guest" }).click();
  const guestName = await connectedAs(guest);
  step(`signed in: ${aliceName} (password) and ${guestName} (guest)`);

  await join(alice, ROOM);
  await join(guest, ROOM);
  const focused = await alice.evaluate(() => document.activeElement && document.activeElement.labels && document.activeElement.labels[0]?.textContent);
  if (focused !== "Message") throw new Error(`after joining, focus is on ${focused}, not the Message box`);

  // presence, both ways
  for (const [page, other] of [[alice, guestName], [guest, aliceName]]) {
    await page.getByRole("list", { name: "Members" }).getByText(other, { exact: true }).waitFor();
  }
  step("presence shown both ways");

  // typing
  await alice.getByRole("textbox", { name: "Message" }).press("h");
  await guest.getByText(`${aliceName} is typing`).waitFor();
  step("typing notice shown");

  // messages both ways: Enter on one side, the Send button on the other
  await alice.getByRole("textbox", { name: "Message" }).fill("hello from alice");
  await alice.getByRole("textbox", { name: "Message" }).press("Enter");
  await guest.getByRole("textbox", { name: "Message" }).fill("hi from the guest");
  await guest.getByRole("button", { name: "Send" }).click();
  for (const page of [alice, guest]) {
    const log = await waitForBodies(page, ["hello from alice", "hi from the guest"], "both messages");
    assertOrderedOnce(log, ["hello from alice", "hi from the guest"], "exchange");
    const alices = log.find((m) => m.body === "hello from alice");
    if (alices.user !== aliceName) throw new Error(`message shown as from ${alices.user}`);
  }
  step("messages exchanged both ways");

  // HTML in a body is text
  const html = `<img src=x onerror="window.__pwned=1"><b>bold</b><script>window.__pwned=2</script>`;
  await alice.getByRole("textbox", { name: "Message" }).fill(html);
  await alice.getByRole("textbox", { name: "Message" }).press("Enter");
  for (const page of [alice, guest]) {
    await waitForBodies(page, [html], "the HTML message");
    const injected = await page.getByRole("log", { name: "Messages" }).evaluate((log) => log.querySelectorAll("img, b, script").length);
    const pwned = await page.evaluate(() => window.__pwned);
    if (injected || pwned) throw new Error(`HTML was interpreted: ${injected} elements, __pwned=${pwned}`);
  }
  step("an HTML body is shown as text");
  await audit(guest, "the chat view with messages");
  if (process.env.SCREENSHOT) await guest.screenshot({ path: process.env.SCREENSHOT });

  // 3. restarts
  await restart("graceful", [alice, guest], [1, 2, 3, 4, 5].map((i) => `while away ${i}`));
  await restart("kill", [alice, guest], [1, 2, 3].map((i) => `after the crash ${i}`));
  for (const page of [alice, guest]) {
    const log = await logOf(page);
    const seqs = log.map((m) => m.seq);
    for (let i = 1; i < seqs.length; i++) if (seqs[i] !== seqs[i - 1] + 1) throw new Error(`gap or duplicate in the log: ${seqs}`);
  }
  step("after both restarts the logs are gap-free");

  // 4. scroll-back
  if (SEEDED) {
    await join(alice, HISTORY_ROOM);
    const log = alice.getByRole("log", { name: "Messages" });
    await waitForBodies(alice, [`seed ${SEEDED}`], "the newest seeded message");
    let pages = 0;
    alice.on("request", (r) => { if (r.url().includes(`/rooms/${HISTORY_ROOM}/messages?`) && r.url().includes("before=")) pages++; });
    const first = await until("scroll-back to the first message", async () => {
      await log.evaluate((l) => { l.scrollTop = 0; });
      const shown = await logOf(alice);
      return shown[0] && shown[0].body === "seed 1" && shown;
    }, 60000, 150);
    for (let i = 1; i < first.length; i++) if (first[i].seq !== first[i - 1].seq + 1) throw new Error("scroll-back window has a gap");
    const nodes = first.length;
    if (nodes > 300) throw new Error(`${nodes} message nodes in the DOM`);
    report.scroll_back = { seeded: SEEDED, history_requests: pages, dom_nodes_at_top: nodes };
    step(`scroll-back reached seed 1 after ${pages} history requests with ${nodes} nodes in the DOM`);
  }

  // unread counts: a message in a room that is not open
  if (SEEDED) {
    await guest.getByRole("textbox", { name: "Message" }).fill("while alice reads history");
    await guest.getByRole("textbox", { name: "Message" }).press("Enter");
    const e2e = alice.getByRole("navigation", { name: "Rooms" }).getByRole("button", { name: ROOM, exact: true });
    await until("an unread count on the other room", async () => (await e2e.getAttribute("aria-description")) === "1 unread");
    const title = await alice.title();
    if (title !== "(1) Switchboard") throw new Error(`title ${title}`);
    await e2e.click();
    await waitForBodies(alice, ["while alice reads history"], "the unread message once the room is open");
    await until("the count cleared", async () => (await e2e.getAttribute("aria-description")) === null);
    step("unread count shown on the room and in the title, cleared on opening it");
  }

  // 5. a burst into the open room
  if (BURST) report.burst = await burst(alice, guest);

  report.ok = true;
});

async function burst(viewer, senderPage) {
  const room = "burst";
  await join(viewer, room);
  await viewer.evaluate(() => {
    window.__longest = 0;
    window.__longTasks = 0;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) { window.__longTasks++; window.__longest = Math.max(window.__longest, e.duration); }
    }).observe({ type: "longtask", buffered: false });
  });
  // Main-thread time the viewer spends on the burst (Chromium's counters).
  const cdp = await viewer.context().newCDPSession(viewer);
  await cdp.send("Performance.enable");
  const counters = async () => Object.fromEntries((await cdp.send("Performance.getMetrics")).metrics.map((m) => [m.name, m.value]));
  const c0 = await counters();
  const t0 = Date.now();
  // Sent from the other context over its own WebSocket, as fast as acks allow
  // (at most 2,000 unacknowledged).
  const sending = senderPage.evaluate(async ({ room, count }) => {
    const t = await fetch("/api/v1/sessions/ticket", { method: "POST", headers: { Authorization: `Bearer ${localStorage.getItem("sb_token")}` } });
    const { ticket } = await t.json();
    const ws = new WebSocket(`${location.origin.replace("http", "ws")}/ws?ticket=${encodeURIComponent(ticket)}`);
    await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
    let acked = 0;
    let joined;
    const joinedP = new Promise((ok) => { joined = ok; });
    let wake = () => {};
    ws.onmessage = (ev) => {
      const f = JSON.parse(ev.data);
      if (f.type === "joined") joined();
      if (f.type === "ack") { acked++; wake(); }
      if (f.type === "error") console.log("burst error", ev.data);
    };
    ws.send(JSON.stringify({ type: "join", room }));
    await joinedP;
    for (let i = 1; i <= count; i++) {
      while (i - acked > 2000) await new Promise((ok) => { wake = ok; });
      ws.send(JSON.stringify({ type: "send", room, body: `burst ${i}`, client_msg_id: `b-${i}` }));
    }
    while (acked < count) await new Promise((ok) => { wake = ok; });
    ws.close();
    return acked;
  }, { room, count: BURST });

  // Typing while the burst arrives: delay from key event to its handler.
  const input = viewer.getByRole("textbox", { name: "Message" });
  await viewer.evaluate(() => {
    window.__inputDelays = [];
    document.getElementById("message-input").addEventListener("input", (e) => window.__inputDelays.push(performance.now() - e.timeStamp));
  });
  await input.pressSequentially("typing during the burst", { delay: 30 });
  const acked = await sending;
  const lastSeq = await until("the whole burst in the viewer", () => viewer.evaluate(({ room, count }) => {
    const r = window.switchboardPage.state.rooms.get(room);
    const last = r && r.messages[r.messages.length - 1];
    return !!last && last.body === `burst ${count}` && last.seq;
  }, { room, count: BURST }), 120000, 100);
  const elapsed = Date.now() - t0;
  const c1 = await counters();
  const mainThread = Object.fromEntries(["TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration"]
    .map((k) => [k.replace("Duration", "_ms").toLowerCase(), Math.round((c1[k] - c0[k]) * 1000)]));
  const model = await viewer.evaluate((room) => {
    const r = window.switchboardPage.state.rooms.get(room);
    const m = r.messages;
    let contiguous = true;
    for (let i = 1; i < m.length; i++) if (m[i].seq !== m[i - 1].seq + 1) contiguous = false;
    return { kept: m.length, contiguous, dom_nodes: document.querySelector("[role=log]").childElementCount };
  }, room);
  if (!model.contiguous) throw new Error("the kept messages have a gap");
  if (model.dom_nodes > 300) throw new Error(`${model.dom_nodes} message nodes in the DOM`);
  const inputDelays = await viewer.evaluate(() => window.__inputDelays);
  // Scrolling up through the kept messages: time from a scroll until the
  // window has moved and painted (the client extends it in the frame after
  // the scroll event, so two frames at best), and long tasks meanwhile.
  const scroll = await viewer.evaluate(async () => {
    const log = document.querySelector("[role=log]");
    const before = window.__longTasks;
    const frames = [];
    for (let i = 0; i < 40; i++) {
      const t = performance.now();
      log.scrollTop = Math.max(0, log.scrollTop - 3000);
      await new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(ok)));
      frames.push(performance.now() - t);
    }
    return {
      steps: frames.length, max_ms: Math.max(...frames), median_ms: frames.sort((a, b) => a - b)[frames.length >> 1],
      long_tasks: window.__longTasks - before, dom_nodes: log.childElementCount, first_seq_shown: Number(log.firstElementChild.dataset.seq),
    };
  });
  if (scroll.dom_nodes > 300) throw new Error(`${scroll.dom_nodes} message nodes after scrolling`);
  const longTasks = await viewer.evaluate(() => ({ count: window.__longTasks, longest_ms: window.__longest }));
  const sorted = [...inputDelays].sort((a, b) => a - b);
  const result = {
    messages: BURST, acked, last_seq: lastSeq, seconds: elapsed / 1000, kept_in_memory: model.kept, dom_nodes: model.dom_nodes,
    input_delay_ms: { count: sorted.length, median: sorted[sorted.length >> 1], max: sorted[sorted.length - 1] },
    long_tasks: longTasks, main_thread: mainThread, scroll_frame_ms: scroll,
  };
  step(`burst of ${BURST}: ${JSON.stringify(result)}`);
  return result;
}

console.log(JSON.stringify(report));
process.exit(process.exitCode || 0);

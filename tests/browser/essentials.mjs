// The chat page's v1.2 controls in real browsers, found by the contract's
// roles and names (tests/api/browser.rs starts the server), on pages whose
// landing join of `general` is answered after the user's own first join:
//  1. Edit (textbox "Edit message" + Save) and Delete on one's messages;
//     "edited" / "deleted" shown on every page; the owner may Delete others'
//  2. "<n> unread" beside a room with news, cleared by opening it (and the
//     server's marker moves)
//  3. "Message <username>" opens a DM, listed apart under the other
//     person's name, on both sides
//  4. "Ban <username>": the banned user's page drops the room at once
// axe-core on each new view; screenshots of each. The last stdout line is
// the JSON report.
import { BASE_URL, run, until, audit as auditPage } from "./lib.mjs";

const SHOTS = process.env.SCREENSHOT_DIR || ".";
const report = { steps: [] };
const step = (name) => { report.steps.push(name); console.error(`[essentials] ${name}`); };

async function audit(page, what) {
  step(await auditPage(page, what));
}

async function signUp(browser, name, { beforeConnect } = {}) {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  if (beforeConnect) await beforeConnect(page);
  await page.goto(`${BASE_URL}/`);
  await page.getByRole("textbox", { name: "Username" }).fill(name);
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByRole("button", { name: "Sign up" }).click();
  await connected(page, name);
  return page;
}

const connected = (page, name) =>
  until(`${name} connected`, async () => (await page.getByRole("status").first().textContent()).includes("Connected"));
const rooms = (page) => page.getByRole("navigation", { name: "Rooms" });
const dms = (page) => page.getByRole("navigation", { name: "Direct messages" });
const roomButton = (page, room) => rooms(page).getByRole("button", { name: room, exact: true });
const log = (page) => page.getByRole("log", { name: "Messages" });
const members = (page) => page.getByRole("list", { name: "Members" });
const message = (page, body) => log(page).locator(".msg").filter({ hasText: body });

async function join(page, room) {
  await page.getByRole("textbox", { name: "Room" }).fill(room);
  await page.getByRole("button", { name: "Join", exact: true }).click();
  await roomButton(page, room).waitFor();
  await until(`${room} open`, async () => (await page.locator("#room-title").textContent()).includes(room));
}

async function say(page, body) {
  const input = page.getByRole("textbox", { name: "Message" });
  await input.fill(body);
  await input.press("Enter");
  await message(page, body).waitFor();
}

async function unreadOf(page, room) {
  return page.evaluate(async (room) => {
    const res = await fetch("/api/v1/rooms?joined=true", { headers: { Authorization: `Bearer ${localStorage.getItem("sb_token")}` } });
    const r = (await res.json()).rooms.find((x) => x.name === room);
    return r ? r.unread : null;
  }, room);
}

// The server may answer two rooms' joins in either order. This holds the
// frames of `general` (the room a newcomer lands in) until `release()`,
// called once the user's own join of `plaza` is open: the landing join then
// answers last, as it did on a loaded machine.
function holdGeneral() {
  let release;
  const released = new Promise((done) => { release = done; });
  const install = (page) => page.routeWebSocket(/\/ws/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => server.send(m));
    let held = [];
    let holding = true;
    released.then(() => {
      holding = false;
      for (const h of held) ws.send(h);
      held = [];
    });
    server.onMessage((m) => {
      const text = typeof m === "string" ? m : "";
      if (holding && text.includes('"room":"general"')) return void held.push(m);
      ws.send(m);
    });
  });
  return { install, release };
}

await run("chat page v1.2", async (browser) => {
  const general = holdGeneral();
  const alice = await signUp(browser, "alice", { beforeConnect: general.install });
  // The landing join's room is read once its answer is in; it must not
  // take alice away from the room she opened meanwhile.
  const landed = alice.waitForResponse((r) => new URL(r.url()).pathname === "/api/v1/rooms/general");
  await join(alice, "plaza"); // alice creates it, so she owns it
  general.release();
  await landed;
  // The page acts on that answer within the tasks that follow it; ten
  // rendered frames later it has.
  await alice.evaluate(() => new Promise((done) => {
    let frames = 0;
    const next = () => (++frames === 10 ? done() : requestAnimationFrame(next));
    requestAnimationFrame(next);
  }));
  const title = await alice.locator("#room-title").textContent();
  if (!title.includes("plaza")) throw new Error(`the landing join took alice from plaza to ${title}`);
  step("a late answer to the landing join leaves the room the user opened");
  const bob = await signUp(browser, "bob");
  await join(bob, "plaza");

  // 1. Edit and delete.
  await say(bob, "helo wrold");
  await message(alice, "helo wrold").waitFor();
  const mine = message(bob, "helo wrold");
  await mine.getByRole("button", { name: "Edit", exact: true }).click();
  const editBox = bob.getByRole("textbox", { name: "Edit message" });
  await editBox.waitFor();
  await audit(bob, "a message being edited");
  await editBox.fill("hello world");
  await bob.getByRole("button", { name: "Save", exact: true }).click();
  for (const page of [alice, bob]) {
    const m = message(page, "hello world");
    await m.getByText("edited", { exact: true }).waitFor();
  }
  if (await message(alice, "helo wrold").count()) throw new Error("alice still shows the old text");
  step("Edit + Save changed the message on both pages, marked edited");
  await say(bob, "oops, wrong room");
  await message(alice, "oops, wrong room").waitFor();
  await message(bob, "oops, wrong room").getByRole("button", { name: "Delete", exact: true }).click();
  for (const page of [alice, bob]) {
    await until("the deleted mark", async () => (await log(page).getByText("deleted", { exact: true }).count()) === 1);
  }
  if (await message(alice, "oops, wrong room").count()) throw new Error("a deleted message's text is still shown");
  step("Delete removed the text on both pages, marked deleted");
  // The owner gets Delete (not Edit) on others' messages.
  const others = message(alice, "hello world");
  if ((await others.getByRole("button", { name: "Delete", exact: true }).count()) !== 1) throw new Error("the owner has no Delete on others' messages");
  if (await others.getByRole("button", { name: "Edit", exact: true }).count()) throw new Error("Edit on someone else's message");
  await say(alice, "the owner's own message");
  await audit(alice, "edited and deleted messages");
  await alice.screenshot({ path: `${SHOTS}/essentials-edited.png` });

  // 2. Unread beside a room, cleared by opening it.
  await join(alice, "quiet");
  await say(bob, "news one");
  await say(bob, "news two");
  const badge = rooms(alice).getByText("2 unread", { exact: true });
  await badge.waitFor();
  await audit(alice, "unread badges");
  await alice.screenshot({ path: `${SHOTS}/essentials-unread.png` });
  await roomButton(alice, "plaza").click();
  await message(alice, "news two").waitFor();
  await until("the badge cleared", async () => (await rooms(alice).getByText(/unread/).count()) === 0);
  await until("the server's marker moved", async () => (await unreadOf(alice, "plaza")) === 0);
  step("2 unread beside plaza; opening it cleared the badge and the server's count");

  // 3. A direct message, listed apart under the other person's name.
  await members(alice).getByRole("button", { name: "Message bob", exact: true }).waitFor();
  await members(alice).getByRole("button", { name: "Message bob", exact: true }).click();
  await dms(alice).getByRole("button", { name: "bob", exact: true }).waitFor();
  await until("the DM open", async () => (await alice.locator("#room-title").textContent()).includes("@bob"));
  await say(alice, "psst, bob");
  await audit(alice, "a direct message");
  await alice.screenshot({ path: `${SHOTS}/essentials-dm.png` });
  // Bob's page finds it (on load, or within its room-list poll).
  await bob.reload();
  await connected(bob, "bob");
  const dmOnBob = dms(bob).getByRole("button", { name: "alice", exact: true });
  await dmOnBob.waitFor();
  await dms(bob).getByText("1 unread", { exact: true }).waitFor();
  await dmOnBob.click();
  await message(bob, "psst, bob").waitFor();
  step("Message bob opened a DM listed as bob for alice and alice for bob, with its unread count");

  // 4. The owner bans bob: his page drops plaza at once.
  await roomButton(alice, "plaza").click();
  const ban = members(alice).getByRole("button", { name: "Ban bob", exact: true });
  await ban.waitFor();
  await audit(alice, "the owner's member list");
  await ban.click();
  await until("plaza gone from bob's rooms", async () => (await roomButton(bob, "plaza").count()) === 0, 10000);
  step("Ban bob took plaza off bob's page at once");
});

report.ok = process.exitCode !== 1;
console.log(JSON.stringify(report));

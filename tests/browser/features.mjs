// The chat page's v2 behaviours in real browsers, found by the contract's
// roles and names (tests/api/browser.rs starts the server):
//  1. a send refused by the rate limit shows "Not sent"; Retry stores it once
//  2. a private room: created with Private, a member added, who sees it;
//     removed, and then no longer sees it
//  3. Leave takes a room off the Rooms list, for good
//  4. day dividers on older messages (seeded by the harness in ARCHIVE_ROOM)
// axe-core on every new view; screenshots of the member panel and of a
// failed send. The last stdout line is the JSON report.
import { BASE_URL, run, until, audit as auditPage } from "./lib.mjs";

const ARCHIVE_ROOM = process.env.ARCHIVE_ROOM || "archive";
const SHOTS = process.env.SCREENSHOT_DIR || ".";
const report = { steps: [] };
const step = (name) => { report.steps.push(name); console.error(`[features] ${name}`); };

async function audit(page, what) {
  step(await auditPage(page, what));
}

async function signUp(browser, name) {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${BASE_URL}/`);
  await page.getByRole("textbox", { name: "Username" }).fill(name);
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByRole("button", { name: "Sign up" }).click();
  await until(`${name} connected`, async () => (await page.getByRole("status").first().textContent()).includes("Connected"));
  return page;
}

const rooms = (page) => page.getByRole("navigation", { name: "Rooms" });
const roomButton = (page, room) => rooms(page).getByRole("button", { name: room, exact: true });

async function join(page, room, { private: priv = false } = {}) {
  await page.getByRole("textbox", { name: "Room" }).fill(room);
  if (priv) await page.getByRole("checkbox", { name: "Private" }).check();
  await page.getByRole("button", { name: "Join", exact: true }).click();
  await roomButton(page, room).waitFor();
}

const bodies = (page) => page.getByRole("log", { name: "Messages" }).evaluate((log) =>
  [...log.children].map((n) => n.querySelector(".body")?.textContent));

async function historyBodies(page, room) {
  return page.evaluate(async (room) => {
    const res = await fetch(`/api/v1/rooms/${room}/messages?limit=200`, { headers: { Authorization: `Bearer ${localStorage.getItem("sb_token")}` } });
    return (await res.json()).messages.map((m) => m.body);
  }, room);
}

await run("chat page v2", async (browser) => {
  // 1. refused, shown, retried once
  const alice = await signUp(browser, "alice");
  await join(alice, "busy");
  const input = alice.getByRole("textbox", { name: "Message" });
  // RATE_LIMIT_BURST 1: the second of two quick sends is refused. Both are
  // typed and sent through the page's own handlers in one go: typed one
  // command at a time, a loaded machine can take the second past the
  // limit's one-second refill.
  await input.click();
  await alice.evaluate(() => {
    const box = document.getElementById("message-input");
    for (const text of ["first, accepted", "second, refused at first"]) {
      box.value = text;
      box.dispatchEvent(new Event("input", { bubbles: true }));
      box.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true, cancelable: true }));
    }
  });
  // "Not sent" and the refused text together, in one entry (read in one go:
  // the client retries on its own 1-2 s later, and on a loaded machine a
  // second look may come after that retry was stored).
  const failed = alice.locator(".outbox li.failed", { hasText: "second, refused at first" }).getByText("Not sent");
  await failed.waitFor();
  if ((await input.inputValue()) !== "") throw new Error("the compose box should be free for the next message");
  await audit(alice, "a failed send");
  await alice.screenshot({ path: `${SHOTS}/failed-send.png` });
  // Retry (again if the limit refuses the retry too: the client waits between tries).
  await until("the retried message stored", async () => {
    const retry = alice.getByRole("button", { name: "Retry" });
    if (await retry.count()) await retry.first().click().catch(() => {});
    return (await bodies(alice)).includes("second, refused at first");
  }, 20000, 300);
  const stored = (await historyBodies(alice, "busy")).filter((b) => b === "second, refused at first");
  if (stored.length !== 1) throw new Error(`the retried message is stored ${stored.length} times`);
  const inLog = (await bodies(alice)).filter((b) => b === "second, refused at first");
  if (inLog.length !== 1) throw new Error(`the retried message is shown ${inLog.length} times`);
  await until("the outbox emptied", async () => (await alice.getByText("Not sent").count()) === 0);
  step("a refused send showed Not sent with the text kept; Retry stored it once");

  // 2. a private room, its members managed by the owner
  const bob = await signUp(browser, "bobby");
  await join(alice, "secret", { private: true });
  await alice.getByRole("textbox", { name: "Add member" }).fill("bobby");
  await alice.getByRole("button", { name: "Add", exact: true }).click();
  const members = alice.getByRole("list", { name: "Members" });
  await members.getByText("bobby", { exact: true }).waitFor();
  await audit(alice, "the member panel of a private room");
  await alice.screenshot({ path: `${SHOTS}/members.png` });
  // bob finds it in the room browser and joins it
  await bob.getByRole("searchbox", { name: "Find rooms" }).fill("sec");
  await bob.locator("#browse-list").getByRole("button", { name: "secret", exact: true }).click();
  await roomButton(bob, "secret").waitFor();
  await members.getByText("bobby", { exact: true }).waitFor();
  await until("bob online in alice's member list", async () =>
    (await members.locator("li", { hasText: "bobby" }).textContent()).includes("online"));
  await audit(bob, "the room browser and a joined private room");
  step("a private room: created with Private, bobby added, found in the browser and joined, shown online");
  // removed: bob's page drops it at once and cannot find it any more
  await alice.getByRole("button", { name: "Remove bobby" }).click();
  await until("the room gone from bob's list", async () => (await roomButton(bob, "secret").count()) === 0);
  await bob.getByRole("searchbox", { name: "Find rooms" }).fill("secre");
  await until("the browser without it", async () =>
    (await bob.locator("#browse-list").getByRole("button", { name: "secret", exact: true }).count()) === 0);
  step("removed: the private room left bobby's list at once and his room browser");

  // 3. leave (a room someone else made: its owner cannot leave it)
  await join(alice, "lobby");
  await join(bob, "lobby");
  await bob.getByRole("button", { name: "Leave" }).click();
  await until("lobby gone from the list", async () => (await roomButton(bob, "lobby").count()) === 0);
  await bob.reload();
  await until("bob reconnected", async () => (await bob.getByRole("status").first().textContent()).includes("Connected"));
  if (await roomButton(bob, "lobby").count()) throw new Error("lobby came back after a reload");
  step("Leave took lobby off the list, still gone after a reload");

  // 4. day dividers
  await join(bob, ARCHIVE_ROOM);
  const log = bob.getByRole("log", { name: "Messages" });
  const dividers = await until("day dividers", async () => {
    const d = await log.getByRole("separator").allTextContents();
    return d.length >= 3 && d;
  });
  if (dividers[dividers.length - 1] !== "Today" || dividers[dividers.length - 2] !== "Yesterday" || /Today|Yesterday/.test(dividers[0])) {
    throw new Error(`dividers: ${JSON.stringify(dividers)}`);
  }
  const title = await log.locator("time").first().getAttribute("title");
  if (!title || title.length < 12) throw new Error(`no full timestamp on hover: ${title}`);
  await audit(bob, "a room with day dividers");
  report.dividers = dividers;
  report.full_time_title = title;
  step(`day dividers: ${dividers.join(" | ")}; full time on hover: ${title}`);
  report.ok = true;
});

console.log(JSON.stringify(report));
process.exit(process.exitCode || 0);

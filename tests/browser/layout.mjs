// The chat page and /admin at a laptop's size and at a phone's, and where
// keyboard focus goes (tests/api/browser.rs starts the server):
//  1. focus: a guest types a room name slowly while the default room's
//     `joined` is held back; every keystroke lands in `Room`
//  2. 1280×800 and 390×844: no horizontal overflow on either page, and
//     every control the contract names is reachable by role and name (on a
//     phone the room and member lists are behind `Room list` / `Member
//     list`); axe-core on each view; screenshots of both pages at both sizes
// The last stdout line is the JSON report.
import { BASE_URL, run, until, audit } from "./lib.mjs";

const SHOTS = process.env.SCREENSHOT_DIR || ".";
const { ADMIN_USER, ADMIN_PASSWORD } = process.env;
const report = { steps: [], sizes: {} };
const step = (name) => { report.steps.push(name); console.error(`[layout] ${name}`); };

// Names of this run's own (a server may have seen an earlier run).
const RUN = Math.random().toString(36).slice(2, 7);

const SIZES = [
  { name: "1280x800", width: 1280, height: 800, phone: false },
  { name: "390x844", width: 390, height: 844, phone: true },
];

async function overflow(page) {
  return page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth }));
}

async function assertFits(page, what) {
  const o = await overflow(page);
  if (o.scrollWidth > o.innerWidth) throw new Error(`${what}: ${o.scrollWidth} px wide in a ${o.innerWidth} px window`);
  return o;
}

// Visible, inside the window horizontally, and found by role and name.
async function reachable(locator, page, what) {
  await locator.waitFor({ state: "visible", timeout: 10000 });
  const box = await locator.boundingBox();
  const width = await page.evaluate(() => window.innerWidth);
  if (!box || box.x < 0 || box.x + box.width > width + 0.5) {
    throw new Error(`${what} is outside the window: ${JSON.stringify(box)} in ${width} px`);
  }
}

const signUpIn = async (page, name) => {
  await page.getByRole("textbox", { name: "Username" }).fill(name);
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByRole("button", { name: "Sign up" }).click();
  await until(`${name} connected`, async () => (await page.getByRole("status").first().textContent()).includes("Connected"));
};

let current = null;
await run("layout and focus", async (browser) => {
 try {
  // 1. Focus stays where the user types.
  {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    let hold = true;
    const held = [];
    let release = () => {};
    await page.routeWebSocket(/\/ws/, (ws) => {
      const server = ws.connectToServer();
      ws.onMessage((m) => server.send(m));
      server.onMessage((m) => {
        const type = (() => { try { return JSON.parse(m).type; } catch (_) { return null; } })();
        if (hold && (held.length || type === "joined")) held.push(m);
        else ws.send(m);
      });
      release = () => { hold = false; for (const m of held.splice(0)) ws.send(m); };
    });
    await page.goto(`${BASE_URL}/`);
    await page.getByRole("textbox", { name: "Username" }).fill(`typist${RUN}`);
    await page.getByRole("button", { name: "Continue as guest" }).click();
    await until("the default room's join to be held back", async () => held.length > 0);
    const roomBox = page.getByRole("textbox", { name: "Room" });
    await roomBox.click();
    const typed = "bc-nav-12e545-16";
    await roomBox.pressSequentially(typed.slice(0, 5), { delay: 60 });
    release();
    await page.getByRole("navigation", { name: "Rooms" }).getByRole("button", { name: "general", exact: true }).waitFor();
    await roomBox.pressSequentially(typed.slice(5), { delay: 60 });
    const where = await page.evaluate(() => ({
      room: document.getElementById("room-input").value,
      message: document.getElementById("message-input").value,
      focused: document.activeElement && document.activeElement.id,
    }));
    if (where.room !== typed || where.message !== "" || where.focused !== "room-input") {
      throw new Error(`keystrokes went astray: ${JSON.stringify(where)}`);
    }
    // The user's own action (Enter in Room: join) does move focus to the composer.
    await roomBox.press("Enter");
    await until("the composer to take focus after the user's join", () =>
      page.evaluate(() => document.activeElement && document.activeElement.id === "message-input"));
    report.focus = where;
    step("focus: every keystroke stayed in Room while the default room's join arrived; the user's own join moved it");
    await page.context().close();
  }

  // 2. Both pages at both sizes.
  for (const size of SIZES) {
    const context = await browser.newContext({ viewport: { width: size.width, height: size.height } });
    const page = await context.newPage();
    current = page;
    const figures = { size: size.name };
    await page.goto(`${BASE_URL}/`);
    for (const [role, name] of [["textbox", "Username"], ["textbox", "Password"], ["button", "Sign in"], ["button", "Sign up"], ["button", "Continue as guest"]]) {
      await reachable(role === "textbox" && name === "Password" ? page.getByLabel("Password") : page.getByRole(role, { name, exact: true }), page, `${name} (${size.name})`);
    }
    await assertFits(page, `sign-in page at ${size.name}`);
    const owner = `owner${size.width}${RUN}`;
    const friend = `friend${size.width}${RUN}`;
    await page.evaluate(async (friend) => {
      await fetch("/api/v1/users", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ username: friend, password: "correct horse battery" }) });
    }, friend);
    await signUpIn(page, owner);
    // (On a phone the room list is hidden until asked for: the title says where the user is.)
    await until("the default room open", async () => (await page.locator("#room-title").textContent()).includes("general"));
    const log = page.getByRole("log", { name: "Messages" });
    for (const [what, locator] of [
      ["status", page.getByRole("status").first()],
      ["log Messages", log],
      ["textbox Message", page.getByRole("textbox", { name: "Message", exact: true })],
      ["button Send", page.getByRole("button", { name: "Send", exact: true })],
      ["button Leave", page.getByRole("button", { name: "Leave", exact: true })],
      ["button Sign out", page.getByRole("button", { name: "Sign out", exact: true })],
    ]) await reachable(locator, page, `${what} (${size.name})`);
    await page.getByRole("textbox", { name: "Message", exact: true }).fill(`hello from a ${size.name} screen`);
    await page.getByRole("button", { name: "Send", exact: true }).click();
    await until("the message in the log", async () => (await log.textContent()).includes(`hello from a ${size.name} screen`));
    figures.chat = await assertFits(page, `chat page at ${size.name}`);
    await page.screenshot({ path: `${SHOTS}/chat-${size.name}.png` });
    step(await audit(page, `the chat page at ${size.name}`));

    // The room list: a column on a laptop, behind `Room list` on a phone.
    if (size.phone) {
      if (await page.getByRole("navigation", { name: "Rooms" }).isVisible()) throw new Error("a phone shows the room list beside the log");
      await page.getByRole("button", { name: "Room list" }).click();
    }
    const nav = page.getByRole("navigation", { name: "Rooms" });
    await reachable(nav, page, `navigation Rooms (${size.name})`);
    await reachable(page.getByRole("textbox", { name: "Room", exact: true }), page, `textbox Room (${size.name})`);
    await reachable(page.getByRole("checkbox", { name: "Private" }), page, `checkbox Private (${size.name})`);
    await reachable(page.getByRole("button", { name: "Join", exact: true }), page, `button Join (${size.name})`);
    await assertFits(page, `the room list at ${size.name}`);
    if (size.phone) {
      await page.screenshot({ path: `${SHOTS}/chat-${size.name}-rooms.png` });
      step(await audit(page, `the room list at ${size.name}`));
    }
    // A private room of this owner's: joining it brings the log back.
    const priv = `den${size.width}${RUN}`;
    await page.getByRole("textbox", { name: "Room", exact: true }).fill(priv);
    await page.getByRole("checkbox", { name: "Private" }).check();
    await page.getByRole("button", { name: "Join", exact: true }).click();
    await until("the private room open", async () => (await page.locator("#room-title").textContent()).includes(priv));
    await reachable(log, page, `the log after joining (${size.name})`);

    // The members list: a column on a laptop, behind `Member list` on a phone.
    if (size.phone) await page.getByRole("button", { name: "Member list" }).click();
    const members = page.getByRole("list", { name: "Members" });
    await reachable(members, page, `list Members (${size.name})`);
    await reachable(page.getByRole("textbox", { name: "Add member" }), page, `textbox Add member (${size.name})`);
    await page.getByRole("textbox", { name: "Add member" }).fill(friend);
    await page.getByRole("button", { name: "Add", exact: true }).click();
    await reachable(page.getByRole("button", { name: `Remove ${friend}` }), page, `button Remove ${friend} (${size.name})`);
    figures.members = await assertFits(page, `the members list at ${size.name}`);
    if (size.phone) {
      await page.screenshot({ path: `${SHOTS}/chat-${size.name}-members.png` });
      step(await audit(page, `the members list at ${size.name}`));
      await page.getByRole("button", { name: "Member list" }).click();
      await reachable(log, page, `the log again (${size.name})`);
    }
    step(`chat page at ${size.name}: every contract control reachable, no horizontal overflow`);

    // /admin at the same size.
    const admin = await context.newPage();
    await admin.goto(`${BASE_URL}/admin`);
    await reachable(admin.getByLabel("Username"), admin, `/admin Username (${size.name})`);
    await reachable(admin.getByLabel("Password"), admin, `/admin Password (${size.name})`);
    await reachable(admin.getByRole("button", { name: "Sign in" }), admin, `/admin Sign in (${size.name})`);
    await admin.getByLabel("Username").fill(ADMIN_USER);
    await admin.getByLabel("Password").fill(ADMIN_PASSWORD);
    await admin.getByRole("button", { name: "Sign in" }).click();
    await admin.getByRole("heading", { name: "Cluster" }).waitFor();
    await until("/admin's figures", () => admin.evaluate(() => document.querySelectorAll("#instances tr").length > 0));
    figures.admin = await assertFits(admin, `/admin at ${size.name}`);
    // Every tile and chart inside the window; the tables scroll in their own box.
    const outside = await admin.evaluate(() => [...document.querySelectorAll("#tiles > div, .charts figure")]
      .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5).length);
    if (outside) throw new Error(`${outside} tiles or charts are cut off at ${size.name}`);
    await admin.screenshot({ path: `${SHOTS}/admin-${size.name}.png`, fullPage: true });
    step(await audit(admin, `/admin at ${size.name}`));
    report.sizes[size.name] = figures;
    await context.close();
  }
  report.ok = true;
 } catch (e) {
  if (current) await current.screenshot({ path: `${SHOTS}/layout-failure.png` }).catch(() => {});
  throw e;
 }
});
console.log(JSON.stringify(report));

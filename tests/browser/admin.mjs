// /admin in a real browser: sign in as an admin, generate traffic from a
// second browser context, and see the figures and charts move. Writes a
// screenshot to $SCREENSHOT and the figures before/after as JSON on stdout.
import { BASE_URL, run, until } from "./lib.mjs";

const { ADMIN_USER, ADMIN_PASSWORD, SCREENSHOT } = process.env;

// The value of a cluster tile, by its label.
const tile = (page, label) => page.evaluate((label) => {
  for (const d of document.querySelectorAll("#tiles > div")) {
    if (d.querySelector("dt").textContent === label) return d.querySelector("dd").firstChild.textContent;
  }
  return null;
}, label);

async function figures(page) {
  return {
    instances: await tile(page, "Instances"),
    connections: Number(await tile(page, "Connections")),
    messages_per_second: await tile(page, "Messages / s"),
    messages_1m: await page.evaluate(() => {
      for (const d of document.querySelectorAll("#tiles > div")) {
        if (d.querySelector("dt").textContent === "Messages / s") return d.querySelector("dd small").textContent.trim();
      }
      return null;
    }),
    delivery: await tile(page, "Delivery p50 / p95 / p99"),
    top_room: await page.evaluate(() => document.querySelector("#top-rooms td")?.textContent ?? null),
    instance_rows: await page.locator("#instances tr").count(),
    chart_points: await page.evaluate(() => document.getElementById("cap-messages").textContent),
  };
}

await run("admin page", async (browser) => {
  const admin = await (await browser.newContext()).newPage();
  await admin.goto(`${BASE_URL}/admin`);
  // Not signed in: the form, nothing else.
  await admin.getByRole("button", { name: "Sign in" }).waitFor();
  await admin.getByLabel("Username").fill(ADMIN_USER);
  await admin.getByLabel("Password").fill(ADMIN_PASSWORD);
  await admin.getByRole("button", { name: "Sign in" }).click();
  await admin.getByRole("heading", { name: "Cluster" }).waitFor();
  await until("the first figures", async () => (await tile(admin, "Connections")) !== null);
  const before = await figures(admin);

  // Traffic from another browser: three guests on WebSockets in one room.
  const chat = await (await browser.newContext()).newPage();
  await chat.goto(`${BASE_URL}/`);
  const sent = await chat.evaluate(async () => {
    const sockets = [];
    for (let i = 0; i < 3; i++) {
      const r = await fetch("/api/v1/sessions/guest", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ username: `load${i}` }),
      });
      const { token } = await r.json();
      const t = await fetch("/api/v1/sessions/ticket", { method: "POST", headers: { Authorization: `Bearer ${token}` } });
      const { ticket } = await t.json();
      const ws = new WebSocket(`${location.origin.replace("http", "ws")}/ws?ticket=${encodeURIComponent(ticket)}`);
      await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
      ws.send(JSON.stringify({ type: "join", room: "browser-traffic" }));
      sockets.push(ws);
    }
    window.keep = sockets; // stay connected while the admin page watches
    let acks = 0;
    for (const ws of sockets) ws.addEventListener("message", (e) => { if (JSON.parse(e.data).type === "ack") acks++; });
    for (let n = 0; n < 20; n++) {
      sockets.forEach((ws, i) => ws.send(JSON.stringify({ type: "send", room: "browser-traffic", body: `hello ${i}.${n}`, client_msg_id: `b${i}-${n}` })));
      await new Promise((r) => setTimeout(r, 100));
    }
    const deadline = Date.now() + 10000;
    while (acks < 60 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    return acks;
  });
  if (sent !== 60) throw new Error(`only ${sent} of 60 sends were acknowledged`);

  const after = await until("the admin figures to show the traffic", async () => {
    const f = await figures(admin);
    const ok = f.connections >= before.connections + 3 && f.top_room === "browser-traffic"
      && !/^–/.test(f.delivery) && f.messages_1m !== before.messages_1m;
    return ok && f;
  });
  // The status line says the page is live.
  const status = await admin.locator("#conn").textContent();
  if (!status.startsWith("Live")) throw new Error(`status: ${status}`);
  // Let the charts collect a few more points, then keep a picture.
  await admin.waitForTimeout(2500);
  await admin.setViewportSize({ width: 1400, height: 1000 });
  await admin.screenshot({ path: SCREENSHOT, fullPage: true });
  console.log(JSON.stringify({ before, after, status }));
});

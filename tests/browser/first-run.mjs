// A newcomer's first minute, in a real browser, against any running server:
// continue as a guest, land in `general`, send a message, see it in the log.
//   BASE_URL=http://localhost:8080 node first-run.mjs send "hello"
//   BASE_URL=http://localhost:8080 node first-run.mjs expect "hello"   (after a restart)
// Prints what it did; a screenshot goes to SCREENSHOT (default first-run.png).
import { run, until, BASE_URL } from "./lib.mjs";

const [mode, body] = process.argv.slice(2);
if (!["send", "expect"].includes(mode) || !body) {
  console.error('usage: node first-run.mjs send|expect "message body"');
  process.exit(2);
}

const bodies = (page) =>
  page.getByRole("log", { name: "Messages" }).evaluate((log) => [...log.children].map((n) => n.querySelector(".body")?.textContent));

await run(`first run (${mode})`, async (browser) => {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${BASE_URL}/`);
  await page.getByRole("textbox", { name: "Username" }).fill(`newcomer${Math.floor(Math.random() * 1e6)}`);
  await page.getByRole("button", { name: "Continue as guest" }).click();
  const status = await until("Connected", async () => {
    const s = await page.getByRole("status").first().textContent();
    return s.includes("Connected") && s;
  });
  console.log(`status: ${status.trim()}`);
  await page.getByRole("navigation", { name: "Rooms" }).getByRole("button", { name: "general", exact: true }).click();
  if (mode === "send") {
    await page.getByRole("textbox", { name: "Message" }).fill(body);
    await page.getByRole("button", { name: "Send" }).click();
  }
  const log = await until(`"${body}" in the log`, async () => {
    const all = await bodies(page);
    return all.includes(body) && all;
  });
  console.log(`general: ${log.length} message(s), the last: ${JSON.stringify(log[log.length - 1])}`);
  await page.screenshot({ path: process.env.SCREENSHOT || "first-run.png" });
});

// Shared by the real-browser tests: Debian's chromium driven by playwright-core.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

// axe-core, injected through DevTools: the page's CSP (rightly) refuses inline scripts.
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/** Fails on any WCAG 2.1 A/AA violation on the page as it is now. */
export async function audit(page, what) {
  await page.evaluate(AXE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } });
    return result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  });
  if (violations.length) throw new Error(`accessibility violations on ${what}:\n${violations.join("\n")}`);
  return `axe-core: no WCAG 2.1 A/AA violations on ${what}`;
}

export const BASE_URL = process.env.BASE_URL;
if (!BASE_URL) { console.error("BASE_URL is required"); process.exit(2); }

export async function launch() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  // Every page of every context is watched, so a failure can say what each
  // page's socket last carried.
  const newContext = browser.newContext.bind(browser);
  browser.newContext = async (...args) => {
    const context = await newContext(...args);
    context.on("page", watch);
    return context;
  };
  return browser;
}

// The last WebSocket frames, socket events and console lines of each page,
// printed when a test fails (a missing message then shows whether the frame
// reached the page, and what the socket did around it).
const KEPT = 60;
const watched = [];

function watch(page) {
  const events = [];
  const note = (line) => {
    events.push(`${new Date().toISOString().slice(11, 23)} ${line}`);
    if (events.length > KEPT) events.shift();
  };
  const entry = { events, who: "" };
  watched.push(entry);
  const cut = (payload) => (typeof payload === "string" ? payload : "<binary>").slice(0, 200);
  page.on("websocket", (ws) => {
    note(`ws open ${ws.url().replace(/([?&](ticket|token)=)[^&]+/, "$1…")}`);
    ws.on("framesent", (f) => note(`ws > ${cut(f.payload)}`));
    ws.on("framereceived", (f) => {
      note(`ws < ${cut(f.payload)}`);
      if (!entry.who && typeof f.payload === "string" && f.payload.includes('"type":"hello"')) {
        try { entry.who = JSON.parse(f.payload).user.username; } catch (_) { /* not JSON */ }
      }
    });
    ws.on("socketerror", (e) => note(`ws error ${e}`));
    ws.on("close", () => note("ws closed"));
  });
  page.on("console", (m) => note(`console.${m.type()} ${m.text().slice(0, 200)}`));
  page.on("pageerror", (e) => note(`pageerror ${e}`));
}

function dumpWatched() {
  for (const [i, { events, who }] of watched.entries()) {
    console.error(`[browser] page ${i + 1}${who ? ` (${who})` : ""}, its last ${events.length} events:`);
    for (const e of events) console.error(`  ${e}`);
  }
}

// Polls `fn` until it returns a truthy value, or fails with `what`.
export async function until(what, fn, timeoutMs = 20000, everyMs = 200) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

// Runs a test body; screenshots on failure; exit code says pass/fail.
export async function run(name, body) {
  const browser = await launch();
  try {
    await body(browser);
    console.error(`[browser] ${name}: ok`);
  } catch (err) {
    console.error(`[browser] ${name}: FAILED: ${err && err.stack || err}`);
    dumpWatched();
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

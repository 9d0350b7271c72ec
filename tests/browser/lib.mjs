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
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
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
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

// Page-load figures of the chat page: a cold load in a fresh browser context
// (empty cache) then a warm load in the same context, `runs` times; each
// from Navigation, Resource and Paint Timing. Checks what must hold whatever
// the timings: compressed responses, immutable assets, < 50 KB cold, and no
// asset fetched again when warm.
import { BASE_URL } from "./lib.mjs";

async function measure(page) {
  return page.evaluate(async () => {
    await new Promise((ok) => (document.readyState === "complete" ? ok() : addEventListener("load", ok)));
    // Paint entries can be queued after load in headless mode: wait for FCP.
    const fcp = await new Promise((ok) => {
      const found = performance.getEntriesByName("first-contentful-paint")[0];
      if (found) return ok(found);
      new PerformanceObserver((list) => {
        const e = list.getEntriesByName("first-contentful-paint")[0];
        if (e) ok(e);
      }).observe({ type: "paint", buffered: true });
      setTimeout(() => ok(null), 3000);
    });
    const nav = performance.getEntriesByType("navigation")[0];
    const resources = performance.getEntriesByType("resource").map((r) => ({
      name: new URL(r.name).pathname, transfer_bytes: r.transferSize, encoded_bytes: r.encodedBodySize, decoded_bytes: r.decodedBodySize,
    }));
    const round = (x) => Math.round(x * 10) / 10;
    return {
      first_contentful_paint_ms: fcp ? round(fcp.startTime) : null,
      dom_content_loaded_ms: round(nav.domContentLoadedEventEnd),
      load_ms: round(nav.loadEventEnd),
      response_end_ms: round(nav.responseEnd),
      document: { transfer_bytes: nav.transferSize, encoded_bytes: nav.encodedBodySize, decoded_bytes: nav.decodedBodySize },
      resources,
      total_transfer_bytes: nav.transferSize + resources.reduce((s, r) => s + r.transfer_bytes, 0),
      total_encoded_bytes: nav.encodedBodySize + resources.reduce((s, r) => s + r.encoded_bytes, 0),
      total_decoded_bytes: nav.decodedBodySize + resources.reduce((s, r) => s + r.decoded_bytes, 0),
    };
  });
}

const KEYS = ["first_contentful_paint_ms", "dom_content_loaded_ms", "load_ms", "response_end_ms", "total_transfer_bytes", "total_encoded_bytes", "total_decoded_bytes"];

function median(samples) {
  const out = {};
  for (const k of KEYS) {
    const v = samples.map((s) => s[k]).filter((x) => x !== null).sort((a, b) => a - b);
    out[k] = v.length ? v[v.length >> 1] : null;
  }
  return out;
}

// Cold then warm loads, `runs` times, with the first run's response headers.
// `network`: optional {latency_ms, down_kbps, up_kbps} applied through CDP.
export async function measureRuns(browser, runs, network) {
  const cold = [];
  const warm = [];
  let responses;
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    if (network) {
      const cdp = await context.newCDPSession(page);
      await cdp.send("Network.enable");
      await cdp.send("Network.emulateNetworkConditions", {
        offline: false, latency: network.latency_ms,
        downloadThroughput: network.down_kbps * 1000 / 8, uploadThroughput: network.up_kbps * 1000 / 8,
      });
    }
    const seen = {};
    page.on("response", (r) => {
      const h = r.headers();
      seen[new URL(r.url()).pathname] = { status: r.status(), encoding: h["content-encoding"] || null, cache_control: h["cache-control"], etag: h.etag || null };
    });
    await page.goto(`${BASE_URL}/`, { waitUntil: "load" });
    cold.push(await measure(page));
    responses = responses || { ...seen };
    await page.goto(`${BASE_URL}/`, { waitUntil: "load" });
    warm.push(await measure(page));
    await context.close();
  }
  return { runs, median: { cold: median(cold), warm: median(warm) }, cold, warm, responses };
}

export async function pageLoad(browser, runs) {
  const figures = await measureRuns(browser, runs);
  const { cold, warm, responses } = figures;
  for (const [path, r] of Object.entries(responses)) {
    // Chromium offers brotli to secure origins, localhost included.
    if (r.status !== 200 || !["br", "gzip"].includes(r.encoding)) throw new Error(`${path}: ${r.status} ${r.encoding}, expected 200 compressed`);
    const immutable = path.startsWith("/static/");
    if (immutable !== /immutable/.test(r.cache_control || "")) throw new Error(`${path}: Cache-Control ${r.cache_control}`);
  }
  for (const c of cold) if (c.total_transfer_bytes >= 50 * 1024) throw new Error(`cold load transferred ${c.total_transfer_bytes} bytes`);
  for (const w of warm) if (w.resources.some((r) => r.transfer_bytes > 0)) throw new Error(`warm load fetched assets again: ${JSON.stringify(w.resources)}`);
  return figures;
}

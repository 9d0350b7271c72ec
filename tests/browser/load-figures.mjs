// Page-load figures of any running server (or a CDN in front of it), no
// assertions: `BASE_URL=http://127.0.0.1:8080 RUNS=9 node load-figures.mjs`.
// NETWORK=slow4g emulates 150 ms RTT, 1.6 Mbit/s down, 750 kbit/s up
// (Chrome DevTools' "Slow 4G"). Prints the medians of cold and warm loads as JSON (all runs with ALL=1).
import { launch } from "./lib.mjs";
import { measureRuns } from "./pageload.mjs";

const browser = await launch();
try {
  const network = process.env.NETWORK === "slow4g" ? { latency_ms: 150, down_kbps: 1600, up_kbps: 750 } : undefined;
  const figures = await measureRuns(browser, Number(process.env.RUNS || 9), network);
  console.log(JSON.stringify(process.env.ALL ? figures : { runs: figures.runs, median: figures.median, responses: figures.responses }, null, 2));
} finally {
  await browser.close();
}

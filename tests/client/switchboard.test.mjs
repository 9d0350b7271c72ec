// static/switchboard.js against real server processes (started here, on a
// database the Rust harness made: tests/api/client.rs runs this file).
//   SB_BIN: the server binary; SB_DATABASE_URL: its database; SB_LOG_DIR: server logs
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { createWriteStream, readFileSync } from "node:fs";
import { once } from "node:events";
import WebSocket from "ws";

import { Switchboard } from "../../static/switchboard.js";

const servers = new Set();
const clients = new Set();
// Whatever a test left behind (a failed one included) goes, so the run ends.
after(async () => {
  for (const c of clients) c.close();
  for (const s of servers) await s.stop();
});

// Below Linux's ephemeral range (32768+), where other tests' port-0 binds
// land, so a server restarted in place finds its port still free.
async function freePort() {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const srv = createServer();
    const ok = await new Promise((resolve) => {
      srv.once("error", () => resolve(false));
      srv.listen(port, "127.0.0.1", () => resolve(true));
    });
    if (ok) { await new Promise((r) => srv.close(r)); return port; }
  }
}

/** One server process on a fixed port, so it can be restarted in place. */
class Server {
  constructor(port, env = {}) {
    this.port = port;
    this.env = env;
    this.url = `http://127.0.0.1:${port}`;
  }

  async start() {
    const log = createWriteStream(`${process.env.SB_LOG_DIR || "."}/client-${this.port}.log`, { flags: "a" });
    this.child = spawn(process.env.SB_BIN, [], {
      env: {
        PATH: process.env.PATH, DATABASE_URL: process.env.SB_DATABASE_URL, BIND_ADDR: `127.0.0.1:${this.port}`,
        RUST_LOG: "info", WORKERS: "2", DRAIN_GRACE_MS: "200", DRAIN_JITTER_MS: "100", INSTANCE_ID: `node-${this.port}`,
        // Every client here comes from 127.0.0.1, one address to the limits.
        GUESTS_PER_MIN: "100000", SIGNUPS_PER_MIN: "100000", ...this.env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stderr.pipe(log);
    servers.add(this);
    let seen = "";
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the server did not start within 30 s")), 30000);
      this.child.stdout.on("data", (d) => {
        seen += d;
        if (seen.includes("switchboard listening on")) { clearTimeout(timer); resolve(); }
      });
      this.child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`the server exited (${code})`)); });
    });
  }

  async stop(signal = "SIGTERM") {
    const child = this.child;
    servers.delete(this);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill(signal);
    // A drain is bounded by the server; this bounds it again.
    const killer = setTimeout(() => child.kill("SIGKILL"), 20000);
    await exited;
    clearTimeout(killer);
  }
}

async function guest(server, name) {
  const res = await fetch(`${server.url}/api/v1/sessions/guest`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ username: name }),
  });
  assert.equal(res.status, 200);
  return (await res.json()).token;
}

function client(server, token, options = {}) {
  const sb = new Switchboard({ url: server.url, token, WebSocket, backoffMin: 100, backoffMax: 1000, ...options });
  sb.received = [];
  sb.addEventListener("message", (e) => sb.received.push(e.detail));
  sb.connect();
  clients.add(sb);
  return sb;
}

/** Waits (bounded) until `ok()` holds; the test fails with `what` otherwise. */
async function until(what, ok, ms = 15000) {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const seqsOf = (msgs, room) => msgs.filter((m) => m.room === room).map((m) => m.seq);
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

const main = new Server(await freePort());
await main.start();

test("every client gets a room's messages once, in seq order, and each send resolves with its ack", async () => {
  const alice = client(main, await guest(main, "alice"));
  const bob = client(main, await guest(main, "bob"));
  await Promise.all([alice.join("order"), bob.join("order")]);
  // Within the default burst (RATE_LIMIT_BURST 40): none is refused, so
  // the sender's order is the room's order.
  const acks = await Promise.all(range(1, 20).map((i) => alice.send("order", `m${i}`)));
  assert.deepEqual(acks.map((a) => a.seq), range(1, 20), "acks in send order");
  await until("bob has all 20", () => bob.received.length >= 20);
  for (const who of [alice, bob]) {
    assert.deepEqual(seqsOf(who.received, "order"), range(1, 20));
    assert.deepEqual(who.received.map((m) => m.body), range(1, 20).map((i) => `m${i}`));
  }
  assert.equal(alice.outbox.size, 0, "nothing left pending");
  alice.close();
  bob.close();
});

test("after a server restart, rejoining with since delivers exactly what was missed", async () => {
  const carol = client(main, await guest(main, "carol"));
  const dave = client(main, await guest(main, "dave"));
  await Promise.all([carol.join("restart"), dave.join("restart")]);
  await Promise.all(range(1, 10).map((i) => carol.send("restart", `before ${i}`)));
  await until("dave has the first 10", () => dave.received.length >= 10);
  const statuses = [];
  dave.addEventListener("status", (e) => statuses.push(e.detail.state));

  await main.stop();
  await main.start();
  // Posted while the clients may still be away: they must get these from the replay.
  const poster = await guest(main, "poster");
  for (let i = 1; i <= 10; i++) {
    const res = await fetch(`${main.url}/api/v1/rooms/restart/messages`, {
      method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${poster}` },
      body: JSON.stringify({ body: `while away ${i}` }),
    });
    assert.equal(res.status, 201);
  }
  // And a send through the client after it is back.
  await carol.send("restart", "after");
  await until("dave has all 21", () => dave.received.length >= 21);
  assert.deepEqual(seqsOf(dave.received, "restart"), range(1, 21), "no gap, no duplicate");
  assert.deepEqual(seqsOf(carol.received, "restart"), range(1, 21));
  assert.ok(statuses.includes("reconnecting") && statuses.at(-1) === "connected", statuses.join(","));
  carol.close();
  dave.close();
});

test("a gap longer than the replay limit is paged from history, then the live stream follows", async () => {
  const short = new Server(await freePort(), { REPLAY_LIMIT: "3" });
  await short.start();
  const gina = client(short, await guest(short, "gina"));
  const hank = client(short, await guest(short, "hank"));
  await Promise.all([gina.join("gap"), hank.join("gap")]);
  await gina.send("gap", "seen");
  await until("hank saw the first", () => hank.received.length >= 1);
  hank.close();
  for (let i = 1; i <= 10; i++) await gina.send("gap", `missed ${i}`);
  const joins = [];
  hank.addEventListener("joined", (e) => joins.push(e.detail));
  hank.connect();
  await until("hank rejoined", () => joins.length >= 1);
  assert.equal(joins[0].recovered, false, "more than REPLAY_LIMIT missed: no replay");
  await gina.send("gap", "live again");
  await until("hank has all 12", () => hank.received.length >= 12);
  assert.deepEqual(seqsOf(hank.received, "gap"), range(1, 12), "the gap from history, then live, once each");
  gina.close();
  hank.close();
  await short.stop();
});

test("a resend with the same client_msg_id is stored once", async () => {
  const token = await guest(main, "erin");
  const erin = client(main, token);
  const again = client(main, token);
  await Promise.all([erin.join("idem"), again.join("idem")]);
  const first = await erin.send("idem", "only once", { clientMsgId: "idem-1" });
  const second = await again.send("idem", "only once", { clientMsgId: "idem-1" });
  assert.equal(second.seq, first.seq);
  assert.equal(second.id, first.id);

  // An ack lost with the connection: the outbox resends on reconnect.
  const pending = erin.send("idem", "lost ack", { clientMsgId: "idem-2" });
  erin.ws.terminate();
  const ack = await pending;
  const page = await erin.history("idem");
  assert.deepEqual(page.messages.map((m) => m.body), ["only once", "lost ack"]);
  assert.equal(page.messages[1].seq, ack.seq);
  erin.close();
  again.close();
});

test("a refused send is failed, retried with back-off, and stored once", async () => {
  // One message a second per connection: a burst is refused with rate_limited.
  const strict = new Server(await freePort(), { RATE_LIMIT_PER_SEC: "1", RATE_LIMIT_BURST: "1" });
  await strict.start();
  const frank = client(strict, await guest(strict, "frank"), { retryMin: 300, retryMax: 2000, maxRetries: 10 });
  await frank.join("refused");
  const states = new Map();
  frank.addEventListener("outbox", (e) => {
    const m = e.detail;
    if (!states.has(m.id)) states.set(m.id, []);
    states.get(m.id).push(m.state);
  });
  const acks = await Promise.all(range(1, 3).map((i) => frank.send("refused", `burst ${i}`)));
  assert.deepEqual([...acks.map((a) => a.seq)].sort(), [1, 2, 3]);
  const failedFirst = [...states.values()].filter((s) => s.includes("failed"));
  assert.ok(failedFirst.length >= 1, `some sends were refused first: ${JSON.stringify([...states.values()])}`);
  for (const s of states.values()) assert.equal(s.at(-1), "sent");
  const page = await frank.history("refused");
  assert.deepEqual(page.messages.map((m) => m.body).sort(), ["burst 1", "burst 2", "burst 3"], "each stored once");

  // A refusal that is not worth retrying stays failed until the caller
  // retries or discards it (a rate_limited refusal on the way is retried).
  const tooLong = frank.send("refused", "x".repeat(5000));
  const entry = [...frank.outbox.values()].find((m) => m.body.length === 5000);
  await until("the long message is refused as bad_request", () => entry.state === "failed" && entry.error.code === "bad_request");
  assert.equal(entry.retryAt, 0, "no automatic retry");
  frank.discard(entry.id);
  await assert.rejects(tooLong, { code: "discarded" });
  assert.equal(frank.outbox.size, 0);
  frank.close();
  await strict.stop();
});

// The package: `switchboard-client` (static/package.json) resolves by name
// to this same module, and every call its type declarations promise exists.
test("the package resolves by name and its declarations match the module", async () => {
  const byName = await import("switchboard-client");
  assert.equal(byName.Switchboard, Switchboard, "one module, however it is imported");
  const dts = readFileSync(new URL("../../static/switchboard.d.ts", import.meta.url), "utf8");
  const body = dts.slice(dts.indexOf("export class Switchboard "));
  const declared = [...body.matchAll(/^ {2}(static )?(\w+)(<[^>]*>)?\(/gm)].map((m) => [m[1] ? "static" : "method", m[2]]);
  assert.ok(declared.length >= 15, `declarations found: ${declared.length}`);
  for (const [kind, name] of declared) {
    const target = kind === "static" ? Switchboard : Switchboard.prototype;
    assert.equal(typeof target[name], "function", `${kind} ${name} is declared in switchboard.d.ts but not in switchboard.js`);
  }
  for (const name of ["connect", "close", "join", "leave", "typing", "send", "retry", "discard", "history"]) {
    assert.ok(declared.some(([, n]) => n === name), `${name} is not declared`);
  }
});

// docs/client.md's Node example, run as written (by package name, with `ws`).
test("the documented Node example runs as written", async () => {
  const doc = readFileSync(new URL("../../docs/client.md", import.meta.url), "utf8");
  const start = doc.indexOf('```js title="node-example.mjs"');
  assert.ok(start >= 0, "docs/client.md has the Node example");
  const code = doc.slice(doc.indexOf("\n", start) + 1, doc.indexOf("\n```", start));
  // Bare imports resolve from the working directory for code on stdin.
  const child = spawn(process.execPath, ["--input-type=module"], {
    cwd: new URL(".", import.meta.url).pathname,
    env: { PATH: process.env.PATH, SWITCHBOARD_URL: main.url },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d) => { out += d; });
  child.stderr.on("data", (d) => { out += d; });
  child.stdin.end(code);
  const timer = setTimeout(() => child.kill("SIGKILL"), 20000);
  const [code_] = await once(child, "exit");
  clearTimeout(timer);
  assert.equal(code_, 0, `the example failed:\n${out}`);
  assert.match(out, /joined general at seq \d+/);
  assert.match(out, /stored as seq \d+/);
  assert.match(out, /: hello from Node/, "its own message came back");
});

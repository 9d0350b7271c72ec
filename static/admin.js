// Admin page: sign in as an admin, then poll /api/v1/admin/stats every
// second and draw the cluster history on plain canvases (no library).
"use strict";
const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;
const WINDOW_MS = 5 * 60 * 1000;
let token = sessionStorage.getItem("sb_admin_token");
let history = [];
let timer = null;

const fmt = (v, digits = 1) => (v === null || v === undefined || Number.isNaN(v)) ? "–"
  : Math.abs(v) >= 1000 ? Math.round(v).toLocaleString("en") : Number(v).toFixed(digits).replace(/\.0+$/, "");
const pct = (r) => (r === null || r === undefined) ? "–" : (r * 100).toFixed(1) + "%";
const duration = (s) => s < 120 ? `${s}s` : s < 7200 ? `${Math.floor(s / 60)}m` : s < 172800 ? `${Math.floor(s / 3600)}h` : `${Math.floor(s / 86400)}d`;

function setStatus(text, cls) { const c = $("conn"); c.textContent = text; c.className = "conn " + (cls || ""); }

function showAuth(message) {
  token = null; history = []; sessionStorage.removeItem("sb_admin_token");
  clearTimeout(timer);
  $("auth-error").textContent = message || "";
  $("auth-view").hidden = false; $("stats-view").hidden = true; $("signout").hidden = true;
  setStatus("Signed out");
}

async function signIn(e) {
  e.preventDefault();
  $("auth-error").textContent = "";
  try {
    const res = await fetch("/api/v1/sessions", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: $("username").value, password: $("password").value }),
    });
    const data = await res.json().catch(() => null);
    if (!res.ok) { $("auth-error").textContent = (data && data.error && data.error.message) || res.statusText; return; }
    token = data.token;
    sessionStorage.setItem("sb_admin_token", token);
    poll();
  } catch (err) { $("auth-error").textContent = "Cannot reach the server"; }
}

async function signOut() {
  if (token) fetch("/api/v1/sessions", { method: "DELETE", headers: { Authorization: "Bearer " + token } }).catch(() => {});
  showAuth();
}

async function poll() {
  clearTimeout(timer);
  if (!token) return;
  const since = history.length ? history[history.length - 1].t : 0;
  try {
    const res = await fetch(`/api/v1/admin/stats?since=${since}`, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
    if (res.status === 401 || res.status === 403) {
      const data = await res.json().catch(() => null);
      showAuth((data && data.error && data.error.message) || "Admins only");
      return;
    }
    if (!res.ok) throw new Error(res.statusText);
    const s = await res.json();
    $("auth-view").hidden = true; $("stats-view").hidden = false; $("signout").hidden = false;
    for (const p of s.history) if (!history.length || p.t > history[history.length - 1].t) history.push(p);
    const cutoff = Date.now() - WINDOW_MS;
    while (history.length && history[0].t < cutoff) history.shift();
    render(s);
    setStatus(`Live · ${new Date().toLocaleTimeString()} · via ${s.reported_by}`, "ok");
  } catch (err) {
    setStatus("Stats unavailable, retrying", "bad");
  }
  timer = setTimeout(poll, POLL_MS);
}

function tile(label, value, extra, cls) {
  const d = document.createElement("div");
  if (cls) d.className = cls;
  const dt = document.createElement("dt"); dt.textContent = label;
  const dd = document.createElement("dd"); dd.textContent = value;
  if (extra) { const sm = document.createElement("small"); sm.textContent = " " + extra; dd.appendChild(sm); }
  d.append(dt, dd);
  return d;
}

function overallHit(cache) {
  let h = 0, m = 0;
  for (const c of Object.values(cache)) { h += c.hits; m += c.misses; }
  return h + m ? h / (h + m) : null;
}

function render(s) {
  const c = s.cluster, d = c.delivery_latency;
  const pools = c.db.pools.find((p) => p.pool === "primary") || { active: 0, max: 0 };
  const bridges = s.instances.map((i) => i.bridge.state);
  const bridge = bridges.includes("disconnected") ? "disconnected" : bridges[0] || "–";
  $("tiles").replaceChildren(
    tile("Instances", `${c.instances_ready}/${c.instances}`, "ready", c.instances_ready < c.instances ? "warn" : ""),
    tile("Connections", fmt(c.connections, 0)),
    tile("Active rooms", fmt(c.rooms_active, 0)),
    tile("Messages / s", fmt(c.messages_per_second), `1 min ${fmt(c.messages_per_second_1m)}`),
    tile("Delivery p50 / p95 / p99", `${fmt(d.p50_ms, 2)} / ${fmt(d.p95_ms, 2)} / ${fmt(d.p99_ms, 2)}`, "ms",
      d.p99_ms > 100 ? "bad" : ""),
    tile("HTTP p95", fmt(c.http.p95_ms, 2), "ms"),
    tile("DB p95", fmt(c.db.p95_ms, 2), `ms · ${c.db.slow_queries_1m} slow/min`, c.db.slow_queries_1m ? "warn" : ""),
    tile("DB pool", `${pools.active}/${pools.max}`, "active", pools.max && pools.active >= pools.max ? "bad" : ""),
    tile("Cache hit ratio", pct(overallHit(c.cache)), "1 min"),
    tile("Bridge", bridge, `in ${fmt(c.bridge.in_per_second)}/s`, bridge === "disconnected" ? "bad" : ""),
  );
  drawAll();
  renderInstances(s.instances);
  renderStages(s.instances);
  rows("slow", s.slow || [], (o) => {
    const code = document.createElement("code");
    code.textContent = o.trace_id || "–";
    const stages = Object.entries(o.stages || {}).map(([k, v]) => `${k} ${fmt(v, 1)}`).join(" · ") || "–";
    return [new Date(o.at).toLocaleTimeString(), o.instance, o.kind, o.what, [fmt(o.total_ms, 1)], stages, code];
  });
  rows("top-rooms", c.top_rooms, (r) => [r.room, [r.messages_1m]]);
  rows("routes", c.http.routes, (r) => [r.route, [r.requests], [r.errors_5xx], [fmt(r.p50_ms, 2)], [fmt(r.p95_ms, 2)]]);
  rows("queries", c.db.queries, (q) => [q.query, [q.count], [fmt(q.p50_ms, 2)], [fmt(q.p95_ms, 2)]]);
}

// Cells given as [x] are numeric (right-aligned).
function rows(id, items, cells) {
  const frag = document.createDocumentFragment();
  for (const item of items) {
    const tr = document.createElement("tr");
    for (const v of cells(item)) {
      const td = document.createElement("td");
      if (Array.isArray(v)) { td.className = "num"; td.textContent = String(v[0]); }
      else if (v instanceof Node) td.appendChild(v);
      else td.textContent = String(v);
      tr.appendChild(td);
    }
    frag.appendChild(tr);
  }
  $(id).replaceChildren(frag);
}

function pill(text, ok) { const s = document.createElement("span"); s.className = "pill " + (ok ? "ok" : "bad"); s.textContent = text; return s; }

function renderInstances(instances) {
  rows("instances", instances, (i) => {
    const primary = i.db.pools.find((p) => p.pool === "primary") || { active: 0, max: 0 };
    return [i.instance, i.version, duration(i.uptime_seconds),
      pill(i.draining ? "draining" : i.ready ? "ready" : "not ready", i.ready && !i.draining),
      [i.connections], [i.rooms_active], [fmt(i.messages_per_second)], [fmt(i.delivery_latency.p99_ms, 2)],
      [fmt(i.http.p95_ms, 2)], [fmt(i.db.p95_ms, 2)],
      [`${i.database_primary || "–"}${i.db_primary_changes ? ` (${i.db_primary_changes})` : ""}`],
      [`${primary.active}/${primary.max}`], [pct(overallHit(i.cache))],
      pill(i.bridge.state, i.bridge.state !== "disconnected"), [fmt(i.process.cpu_percent)],
      [fmt(i.process.rss_bytes / 1048576)], [i.process.open_fds]];
  });
}

const STAGES = ["queue", "commit", "fanout", "bus"];
const STAGE_COLORS = { queue: "#7a5cc7", commit: "#2458d6", fanout: "#1e8a5a", bus: "#d2691e" };

// One row per instance: the stages' p50s as a stacked bar, then p50 / p99 each.
function renderStages(instances) {
  rows("stages", instances, (i) => {
    const st = i.delivery_stages || {};
    const total = STAGES.reduce((t, k) => t + ((st[k] && st[k].p50_ms) || 0), 0);
    const bar = document.createElement("span");
    bar.className = "stagebar";
    bar.setAttribute("role", "img");
    bar.setAttribute("aria-label", STAGES.map((k) => `${k} ${fmt(st[k] && st[k].p50_ms, 2)} ms`).join(", "));
    for (const k of STAGES) {
      const v = (st[k] && st[k].p50_ms) || 0;
      if (!total || !v) continue;
      const seg = document.createElement("span");
      seg.style.width = `${(100 * v / total).toFixed(1)}%`;
      seg.style.background = STAGE_COLORS[k];
      seg.title = `${k} p50 ${fmt(v, 2)} ms`;
      bar.appendChild(seg);
    }
    const pair = (k) => [st[k] && st[k].count ? `${fmt(st[k].p50_ms, 2)} / ${fmt(st[k].p99_ms, 2)}` : "–"];
    return [i.instance, bar, pair("queue"), pair("commit"), pair("fanout"), pair("bus")];
  });
}

const COLORS = ["#2458d6", "#d2691e", "#b3261e"];
const CHARTS = [
  { id: "connections", series: [["connections", "connections"]], cap: (p) => fmt(p.connections, 0) },
  { id: "messages", series: [["messages_per_second", "stored"], ["deliveries_per_second", "delivered"]],
    cap: (p) => `${fmt(p.messages_per_second)} stored · ${fmt(p.deliveries_per_second)} delivered` },
  { id: "delivery", series: [["delivery_p50_ms", "p50"], ["delivery_p95_ms", "p95"], ["delivery_p99_ms", "p99"]],
    cap: (p) => `p50 ${fmt(p.delivery_p50_ms, 2)} · p95 ${fmt(p.delivery_p95_ms, 2)} · p99 ${fmt(p.delivery_p99_ms, 2)}` },
  { id: "http", series: [["http_p95_ms", "p95"]], cap: (p) => fmt(p.http_p95_ms, 2) },
  { id: "db", series: [["db_p95_ms", "p95"]], cap: (p) => fmt(p.db_p95_ms, 2) },
  { id: "cache", series: [["cache_hit_ratio", "hit ratio"]], scale: 100, max: 100, cap: (p) => pct(p.cache_hit_ratio) },
];

// A "nice" axis maximum: 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function drawAll() {
  const last = history[history.length - 1];
  for (const chart of CHARTS) {
    $("cap-" + chart.id).textContent = last ? chart.cap(last) : "";
    draw($("chart-" + chart.id), chart);
  }
}

function draw(canvas, chart) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const left = 44, right = 8, top = 8, bottom = 18;
  const scale = chart.scale || 1;
  const now = Date.now(), from = now - WINDOW_MS;
  let max = 0;
  for (const p of history) for (const [key] of chart.series) if (p[key] !== null && p[key] !== undefined) max = Math.max(max, p[key] * scale);
  max = chart.max || niceMax(max);
  const x = (t) => left + (w - left - right) * (t - from) / WINDOW_MS;
  const y = (v) => top + (h - top - bottom) * (1 - Math.min(v, max) / max);
  g.font = "11px system-ui, sans-serif"; g.fillStyle = "#5b6472"; g.strokeStyle = "#eef0f3"; g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = max * i / 4, yy = Math.round(y(v)) + 0.5;
    g.beginPath(); g.moveTo(left, yy); g.lineTo(w - right, yy); g.stroke();
    g.textAlign = "right"; g.textBaseline = "middle"; g.fillText(fmt(v, v < 10 ? 2 : 0), left - 4, yy);
  }
  g.textAlign = "left"; g.textBaseline = "alphabetic";
  g.fillText("−5 min", left, h - 4); g.textAlign = "right"; g.fillText("now", w - right, h - 4);
  chart.series.forEach(([key, label], i) => {
    g.strokeStyle = COLORS[i % COLORS.length]; g.lineWidth = 1.6; g.beginPath();
    let pen = false;
    for (const p of history) {
      const v = p[key];
      if (v === null || v === undefined || p.t < from) { pen = false; continue; }
      const px = x(p.t), py = y(v * scale);
      if (pen) g.lineTo(px, py); else g.moveTo(px, py);
      pen = true;
    }
    g.stroke();
    if (chart.series.length > 1) {
      g.fillStyle = COLORS[i % COLORS.length]; g.textAlign = "left";
      g.fillText(label, left + 6 + i * 70, top + 10);
    }
  });
}

$("auth-form").addEventListener("submit", signIn);
$("signout").addEventListener("click", signOut);
window.addEventListener("resize", () => { if (history.length) drawAll(); });
document.addEventListener("visibilitychange", () => { if (!document.hidden && token) poll(); });
if (token) poll();

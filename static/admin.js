// Admin page: sign in as an admin, then poll /api/v1/admin/stats.
"use strict";
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("sb_admin_token");

async function signIn(e) {
  e.preventDefault();
  $("auth-error").textContent = "";
  const res = await fetch("/api/v1/sessions", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: $("username").value, password: $("password").value }),
  });
  const data = await res.json().catch(() => null);
  if (!res.ok) { $("auth-error").textContent = (data && data.error && data.error.message) || res.statusText; return; }
  token = data.token;
  sessionStorage.setItem("sb_admin_token", token);
  poll();
}

function cell(text) { const td = document.createElement("td"); td.textContent = String(text); return td; }

async function poll() {
  const res = await fetch("/api/v1/admin/stats", { headers: { Authorization: "Bearer " + token } });
  if (res.status === 401 || res.status === 403) {
    const data = await res.json().catch(() => null);
    $("auth-error").textContent = (data && data.error && data.error.message) || "not an admin";
    sessionStorage.removeItem("sb_admin_token");
    $("auth-view").hidden = false; $("stats-view").hidden = true;
    return;
  }
  if (res.ok) {
    const s = await res.json();
    $("auth-view").hidden = true; $("stats-view").hidden = false;
    $("conn").textContent = "Live";
    const dl = document.createDocumentFragment();
    for (const [k, v] of Object.entries(s.cluster)) {
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = typeof v === "object" ? JSON.stringify(v) : String(v);
      dl.append(dt, dd);
    }
    $("cluster").replaceChildren(dl);
    const rows = document.createDocumentFragment();
    for (const i of s.instances) {
      const tr = document.createElement("tr");
      tr.append(cell(i.instance), cell(i.version), cell(i.uptime_seconds), cell(i.connections), cell(i.rooms_active),
        cell(i.messages_total), cell(`${i.db_pool.idle}/${i.db_pool.active}`));
      rows.appendChild(tr);
    }
    $("instances").replaceChildren(rows);
  } else {
    $("conn").textContent = "Stats unavailable";
  }
  setTimeout(poll, 2000);
}

$("auth-form").addEventListener("submit", signIn);
if (token) poll();

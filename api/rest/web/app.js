// sharpeyes review console: plain JS, no build step. Talks only to the REST API and SSE feed.
"use strict";

const API = "/api/v1";
const S = {
  token: sessionStorage.getItem("se_token"),
  lang: localStorage.getItem("se_lang") || "zh",
  queue: [],
  cursor: null,
  current: null,
  lastFeedId: null,
  feedAbort: null,
  healthTimer: null,
};
const $ = (sel) => document.querySelector(sel);
const t = (key) => (window.I18N[S.lang] || window.I18N.zh)[key] || key;

function applyI18n() {
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.documentElement.lang = S.lang === "zh" ? "zh-CN" : "en";
  $("#lang").textContent = S.lang === "zh" ? "EN" : "中文";
}

// Beijing time (UTC+8) with milliseconds, as on the evidence overlays.
function bjTime(ms) {
  return new Date(ms + 8 * 3600 * 1000).toISOString().replace("T", " ").replace("Z", "");
}

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(path, opts = {}) {
  const headers = { Authorization: `Bearer ${S.token}`, ...(opts.headers || {}) };
  if (opts.body) headers["Content-Type"] = "application/json";
  const r = await fetch(API + path, { ...opts, headers });
  if (r.status === 401) { logout(); throw new ApiError(401, "unauthorized"); }
  const body = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, (body && body.detail) ? JSON.stringify(body.detail) : r.statusText);
  return body;
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text == null ? "—" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function show(view) {
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== `view-${view}`; });
  document.querySelectorAll("#nav a").forEach((a) => {
    a.classList.toggle("active", a.getAttribute("href") === `#/${view}`);
  });
  if (S.healthTimer && view !== "health") { clearInterval(S.healthTimer); S.healthTimer = null; }
}

// --- login -------------------------------------------------------------------------------------

async function login(token) {
  const r = await fetch(`${API}/auth/login`, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
  if (!r.ok) throw new ApiError(r.status, t("login_failed"));
  const me = await r.json();
  S.token = token;
  sessionStorage.setItem("se_token", token);
  return me;
}

function logout() {
  S.token = null;
  sessionStorage.removeItem("se_token");
  if (S.feedAbort) S.feedAbort.abort();
  $("#nav").hidden = $("#logout").hidden = $("#ticker").hidden = true;
  $("#who").textContent = "";
  show("login");
}

async function enter() {
  const me = await api("/auth/me");
  $("#who").textContent = `${me.name} · ${me.role}`;
  $("#nav").hidden = $("#logout").hidden = $("#ticker").hidden = false;
  startFeed();
  route();
}

// --- queue -------------------------------------------------------------------------------------

function queueQuery(cursor) {
  const form = new FormData($("#filters"));
  const q = new URLSearchParams({ limit: "50" });
  for (const [k, v] of form.entries()) if (String(v).trim()) q.append(k, String(v).trim());
  if (cursor) q.set("cursor", cursor);
  return q.toString();
}

// The record's time: the violation time (stop-line crossing) when there is one, not first_seen.
function evTime(ev) { return ev.time_ms || (ev.violation && ev.violation.time_ms) || ev.first_seen_ms; }

function queueRow(ev) {
  const tr = document.createElement("tr");
  tr.dataset.id = ev.event_id;
  tr.tabIndex = 0;
  cell(tr, bjTime(evTime(ev)));
  cell(tr, ev.camera_id);
  cell(tr, t(ev.type));
  cell(tr, ev.plate && ev.plate.text, "plate");
  cell(tr, ev.review ? t(ev.review.state) : "", ev.review ? `st-${ev.review.state}` : "");
  tr.addEventListener("click", () => { location.hash = `#/violation/${ev.event_id}`; });
  tr.addEventListener("keydown", (e) => { if (e.key === "Enter") tr.click(); });
  return tr;
}

async function loadQueue(more = false) {
  show("queue");
  const body = await api(`/violations?${queueQuery(more ? S.cursor : null)}`);
  const tbody = $("#queue-table tbody");
  if (!more) { tbody.textContent = ""; S.queue = []; }
  for (const ev of body.items) { S.queue.push(ev.event_id); tbody.appendChild(queueRow(ev)); }
  if (!S.queue.length) { const tr = document.createElement("tr"); cell(tr, t("empty")).colSpan = 5; tbody.appendChild(tr); }
  S.cursor = body.next_cursor;
  $("#more").hidden = !S.cursor;
}

// --- violation page ----------------------------------------------------------------------------

function metaRows(ev) {
  const v = ev.violation || {};
  return [
    [t("event_id"), ev.event_id], [t("time"), bjTime(evTime(ev))], [t("camera"), ev.camera_id],
    [t("first_seen"), bjTime(ev.first_seen_ms)],
    [t("type"), t(ev.type)], [t("code"), v.code], [t("signal"), `${v.signal_group || ""} ${v.signal_color || ""}`],
    [t("since_red"), v.seconds_since_red], [t("lane"), v.lane_no], [t("direction"), ev.direction],
    [t("confidence"), ev.confidence], [t("state"), ev.review && t(ev.review.state)],
    [t("reviewed_by"), ev.review && ev.review.reviewed_by],
  ];
}

function renderViolation(ev) {
  S.current = ev;
  const files = Object.fromEntries(ev.evidence.map((f) => [f.name, f.url]));
  const setImg = (id, name) => { const el = $(id); el.hidden = !files[name]; if (files[name]) el.src = files[name]; };
  setImg("#composite", "composite.jpg");
  setImg("#img1", "1.jpg"); setImg("#img2", "2.jpg"); setImg("#img3", "3.jpg");
  setImg("#plate-img", "plate.jpg");
  const clip = $("#clip");
  if (files["clip.mp4"] && clip.dataset.src !== files["clip.mp4"]) { clip.src = files["clip.mp4"]; clip.dataset.src = files["clip.mp4"]; }
  const review = ev.review || {};
  $("#plate-text").textContent = review.corrected_plate || (ev.plate && ev.plate.text) || "—";
  renderIncomplete(ev);
  const meta = $("#meta");
  meta.textContent = "";
  for (const [k, val] of metaRows(ev)) {
    const tr = document.createElement("tr");
    const th = document.createElement("th"); th.textContent = k; tr.appendChild(th);
    cell(tr, val);
    meta.appendChild(tr);
  }
}

// What the evidence cannot show: listed in a warning box; confirming needs an acknowledgement.
function incompleteParts(ev) {
  const parts = ev.incomplete || [];
  if (!parts.length && ev.evidence_complete === false) return [{ part: "record", reason: t("not_complete") }];
  return parts;
}

function renderIncomplete(ev) {
  const parts = incompleteParts(ev);
  const box = $("#incomplete");
  const list = $("#incomplete-list");
  list.textContent = "";
  for (const p of parts) {
    const li = document.createElement("li");
    li.textContent = `${p.part}: ${p.reason}`;
    list.appendChild(li);
  }
  box.hidden = !parts.length;
  $("#ack-label").hidden = !parts.length;
  $("#ack-incomplete").checked = false;
}

async function loadAudit(id) {
  const trail = await api(`/violations/${encodeURIComponent(id)}/audit`);
  const ol = $("#audit");
  ol.textContent = "";
  for (const a of trail) {
    const li = document.createElement("li");
    li.textContent = `${bjTime(a.at_ms)} ${a.actor} ${t(a.action === "confirm" ? "confirm" : "reject")}` +
      ` ${a.before.review_state}→${a.after.review_state}` + (a.reason ? ` · ${a.reason}` : "") +
      (a.before.plate_text !== a.after.plate_text ? ` · ${a.before.plate_text}→${a.after.plate_text}` : "");
    ol.appendChild(li);
  }
}

async function loadViolation(id) {
  show("violation");
  $("#review-msg").textContent = "";
  $("#reason").value = ""; $("#corrected").value = "";
  const ev = await api(`/violations/${encodeURIComponent(id)}`);
  renderViolation(ev);
  await loadAudit(id);
}

async function review(action) {
  const ev = S.current;
  if (!ev) return;
  const reason = $("#reason").value.trim();
  const corrected = $("#corrected").value.trim();
  if (action === "confirm" && incompleteParts(ev).length && !$("#ack-incomplete").checked) {
    $("#review-msg").textContent = t("need_ack");
    $("#review-msg").className = "error";
    $("#ack-incomplete").focus();
    return;
  }
  if (action === "reject" && !reason) {
    $("#review-msg").textContent = t("need_reason");
    $("#review-msg").className = "error";
    $("#reason").focus();
    return;
  }
  try {
    const res = await api(`/violations/${encodeURIComponent(ev.event_id)}/review`, {
      method: "POST",
      body: JSON.stringify({ action, reason: reason || null, corrected_plate: corrected || null }),
    });
    renderViolation(res.event);
    await loadAudit(ev.event_id);
    $("#review-msg").textContent = t(action === "confirm" ? "done_confirm" : "done_reject");
    $("#review-msg").className = "okmsg";
  } catch (e) {
    $("#review-msg").textContent = e.message;
    $("#review-msg").className = "error";
  }
}

function nextViolation() {
  const i = S.current ? S.queue.indexOf(S.current.event_id) : -1;
  const next = S.queue[i + 1];
  location.hash = next ? `#/violation/${next}` : "#/queue";
}

// --- live feed (fetch-based SSE so the token goes in a header) ----------------------------------

function onFeedEvent(ev) {
  const label = `${bjTime(evTime(ev)).slice(11, 19)} ${ev.camera_id} ${t(ev.type)} ${(ev.plate && ev.plate.text) || ""}`;
  const ticker = $("#ticker");
  const span = document.createElement("span");
  span.textContent = label;
  if (ev.violation) span.className = "viol";
  ticker.prepend(span);
  while (ticker.childElementCount > 8) ticker.lastElementChild.remove();
  const tbody = $("#events-table tbody");
  const tr = document.createElement("tr");
  cell(tr, bjTime(evTime(ev))); cell(tr, ev.camera_id); cell(tr, t(ev.type));
  cell(tr, ev.plate && ev.plate.text, "plate");
  tbody.prepend(tr);
  while (tbody.childElementCount > 200) tbody.lastElementChild.remove();
}

function parseSse(chunk, state) {
  state.buf += chunk;
  let idx;
  while ((idx = state.buf.indexOf("\n\n")) >= 0) {
    const block = state.buf.slice(0, idx);
    state.buf = state.buf.slice(idx + 2);
    const msg = { data: [] };
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const [k, ...rest] = line.split(":");
      const v = rest.join(":").replace(/^ /, "");
      if (k === "data") msg.data.push(v); else msg[k] = v;
    }
    if (msg.id) S.lastFeedId = msg.id;
    if (msg.data.length) { try { onFeedEvent(JSON.parse(msg.data.join("\n"))); } catch (e) { console.warn(e); } }
  }
}

async function startFeed() {
  if (S.feedAbort) S.feedAbort.abort();
  const ctl = new AbortController();
  S.feedAbort = ctl;
  while (!ctl.signal.aborted && S.token) {
    try {
      const headers = { Authorization: `Bearer ${S.token}` };
      if (S.lastFeedId) headers["Last-Event-ID"] = S.lastFeedId;
      const r = await fetch(`${API}/feed`, { headers, signal: ctl.signal });
      if (!r.ok) throw new Error(`feed ${r.status}`);
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      const state = { buf: "" };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parseSse(dec.decode(value, { stream: true }), state);
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    await new Promise((res) => setTimeout(res, 2000));
  }
}

// --- events and camera health ------------------------------------------------------------------

async function loadEvents() {
  show("events");
  const tbody = $("#events-table tbody");
  if (tbody.childElementCount) return;
  const body = await api("/events?limit=50");
  for (const ev of body.items.reverse()) onFeedEvent(ev);
}

async function loadHealth() {
  show("health");
  const refresh = async () => {
    const body = await api("/streams");
    const tbody = $("#health-table tbody");
    tbody.textContent = "";
    for (const h of body.items) {
      const tr = document.createElement("tr");
      cell(tr, h.camera_id); cell(tr, h.state, `st-${h.state}`);
      cell(tr, h.input_fps.toFixed(1)); cell(tr, h.analysed_fps.toFixed(1));
      cell(tr, Object.entries(h.drops_by_reason).map(([k, v]) => `${k}:${v}`).join(" ") || "0");
      cell(tr, h.reconnects); cell(tr, h.last_frame_age_s == null ? null : h.last_frame_age_s.toFixed(2));
      cell(tr, h.skew_ms); cell(tr, h.decoder); cell(tr, h.url, "url");
      tbody.appendChild(tr);
    }
    if (!body.items.length) { const tr = document.createElement("tr"); cell(tr, t("empty")).colSpan = 10; tbody.appendChild(tr); }
  };
  await refresh();
  if (!S.healthTimer) S.healthTimer = setInterval(() => refresh().catch(() => {}), 5000);
}

// --- routing and keys --------------------------------------------------------------------------

function route() {
  if (!S.token) { show("login"); return; }
  const [, view, id] = (location.hash || "#/queue").split("/");
  const done = (p) => p.catch((e) => { if (e.status !== 401) console.error(e); });
  if (view === "violation" && id) done(loadViolation(decodeURIComponent(id)));
  else if (view === "events") done(loadEvents());
  else if (view === "health") done(loadHealth());
  else done(loadQueue());
}

document.addEventListener("keydown", (e) => {
  if ($("#view-violation").hidden || e.ctrlKey || e.metaKey || e.altKey) return;
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
  if (e.key === "Escape") { if (typing) document.activeElement.blur(); else location.hash = "#/queue"; return; }
  if (typing) { if (e.key === "Enter") { e.preventDefault(); review(e.target.id === "reason" ? "reject" : "confirm"); } return; }
  const k = e.key.toLowerCase();
  if (k === "c") { e.preventDefault(); review("confirm"); }
  else if (k === "r") { e.preventDefault(); review("reject"); }
  else if (k === "n") { e.preventDefault(); nextViolation(); }
  else if (k === " ") { e.preventDefault(); const v = $("#clip"); if (v.paused) v.play(); else v.pause(); }
});

$("#login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("#login-error").textContent = "";
  try { await login($("#token").value.trim()); $("#token").value = ""; await enter(); }
  catch (err) { $("#login-error").textContent = t("login_failed"); }
});
$("#filters").addEventListener("submit", (e) => { e.preventDefault(); loadQueue().catch(() => {}); });
$("#more").addEventListener("click", () => loadQueue(true).catch(() => {}));
$("#confirm").addEventListener("click", () => review("confirm"));
$("#reject").addEventListener("click", () => review("reject"));
$("#next").addEventListener("click", nextViolation);
$("#logout").addEventListener("click", logout);
$("#lang").addEventListener("click", () => {
  S.lang = S.lang === "zh" ? "en" : "zh";
  localStorage.setItem("se_lang", S.lang);
  applyI18n();
  route();
});
window.addEventListener("hashchange", route);

applyI18n();
if (S.token) enter().catch(() => logout()); else show("login");

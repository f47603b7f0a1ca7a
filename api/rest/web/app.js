// sharpeyes review console: plain JS, no build step. Talks only to the REST API and SSE feed.
"use strict";

const API = "/api/v1";
const S = {
  token: sessionStorage.getItem("se_token"),  // an API token or a user's session secret
  me: null,
  lang: localStorage.getItem("se_lang") || "zh",
  queue: [],
  rows: [],
  sel: -1,
  picked: new Set(),
  cameras: null,
  reasons: null,
  plateRe: null,
  qgen: 0,
  flash: null,
  busy: false,
  fps: null,
  rate: 1,
  cursor: null,
  current: null,
  lastFeedId: null,
  feedAbort: null,
  healthTimer: null,
  sortKey: localStorage.getItem("se_sort") || "time_desc",
  evType: "",
  evLoaded: null,  // the type ("" = all) whose stored newest 50 the events page holds
  evShown: "",  // the type of the rows in the events table
  geoCam: null,  // the camera the geometry view shows
  geoGen: 0,
  geoBlob: null,  // the blob: URL of the geometry picture shown
};
const $ = (sel) => document.querySelector(sel);
// a label in the console's language; an empty label is empty (not its key)
const t = (key) => {
  const d = window.I18N[S.lang] || window.I18N.zh;
  return typeof d[key] === "string" ? d[key] : key;
};

function applyI18n() {
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-title]").forEach((el) => { el.title = t(el.dataset.i18nTitle); });
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
  if (r.status === 401) { clearSession(t("session_expired")); throw new ApiError(401, "unauthorized"); }
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

// --- login ----------------------------------------------------------------------------------------
// People log in with a user name and password (+ a TOTP code when enrolled): the server answers
// with a session secret, kept where a token is kept (sessionStorage "se_token") and sent the
// same way (Bearer). Machines and admins may still log in with an API token.

async function login(token) {
  const r = await fetch(`${API}/auth/login`, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
  if (!r.ok) throw new ApiError(r.status, t("login_failed"));
  const me = await r.json();
  S.token = token;
  sessionStorage.setItem("se_token", token);
  sessionStorage.removeItem("se_display");
  return me;
}

// Basic credentials in UTF-8 (user names and passwords may be Chinese).
function basicAuth(user, password) {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let bin = "";
  bytes.forEach((b) => { bin += String.fromCharCode(b); });
  return `Basic ${btoa(bin)}`;
}

function showTotp(on) {
  $("#totp-label").hidden = !on;
  if (!on) $("#totp").value = "";
}

async function loginUser(user, password, code) {
  const headers = { Authorization: basicAuth(user, password) };
  if (code) headers["X-TOTP-Code"] = code;
  const r = await fetch(`${API}/auth/session`, { method: "POST", headers });
  const body = await r.json().catch(() => null);
  if (r.status === 401 && r.headers.get("X-TOTP-Required") === "1") {
    showTotp(true);
    $("#totp").focus();
    throw new ApiError(401, t("need_totp"));
  }
  if (!r.ok) {
    const detail = body && body.detail;
    const key = r.status === 429 ? "too_many" : r.status === 503 ? "login_unavailable"
      : detail === "invalid one-time code" ? "bad_totp" : "bad_login";
    throw new ApiError(r.status, t(key));
  }
  S.token = body.session;
  sessionStorage.setItem("se_token", body.session);
  sessionStorage.setItem("se_display", body.display_name || "");
  showTotp(false);
  return body;
}

// Forget the credential here (the server refused it, or the user logged out). ``why`` is said
// on the login form (a session that expired mid-shift is not a silent jump to the login page);
// the page's address is kept, so logging in again reopens the same item.
function clearSession(why = "") {
  $("#user-login-error").textContent = why;
  S.token = S.me = null;
  S.cameras = S.reasons = null;
  S.geoCam = null;
  if (S.geoBlob) { URL.revokeObjectURL(S.geoBlob); S.geoBlob = null; }
  $("#geo-img").hidden = true;
  $("#geo-img").removeAttribute("src");
  sessionStorage.removeItem("se_token");
  sessionStorage.removeItem("se_display");
  if (S.feedAbort) S.feedAbort.abort();
  $("#nav").hidden = $("#logout").hidden = $("#ticker").hidden = true;
  $("#who").textContent = $("#who").title = "";
  $("#events-table tbody").textContent = "";  // the next user's events are loaded afresh
  S.evLoaded = null;
  show("login");
}

// Log out: the server ends a session (an API token stays valid), then the page forgets it.
async function logout() {
  const token = S.token;
  if (S.feedAbort) S.feedAbort.abort();
  if (token) {
    await fetch(`${API}/auth/logout`, { method: "POST", headers: { Authorization: `Bearer ${token}` } })
      .catch(() => null);
  }
  clearSession();
  $("#password").value = "";
  $("#username").focus();
}

function whoText(me) {
  const role = t(`role_${me.role}`);
  if (!me.token_id.startsWith("ss_")) return `${me.name} · ${role} · ${t("via_token")}`;
  const display = sessionStorage.getItem("se_display");
  return display ? `${display} (${me.name}) · ${role}` : `${me.name} · ${role}`;
}

async function enter() {
  const me = await api("/auth/me");
  S.me = me;
  $("#who").textContent = $("#who").title = whoText(me);
  $("#who").dataset.role = me.role;
  $("#nav").hidden = $("#logout").hidden = $("#ticker").hidden = false;
  await loadSettings();  // camera names and reject reasons, for every page
  startFeed();
  route();
}

// --- cameras and console settings --------------------------------------------------------------

// Preset reject reasons when the service does not serve /console/config (same list as the API's).
const DEFAULT_REASONS = [
  { code: "plate_unreadable", zh: "号牌不清", en: "Plate unreadable", needs_text: false },
  { code: "not_violation", zh: "非违法", en: "Not a violation", needs_text: false },
  { code: "duplicate", zh: "重复", en: "Duplicate", needs_text: false },
  { code: "device_fault", zh: "设备故障", en: "Device fault", needs_text: false },
  { code: "other", zh: "其他", en: "Other", needs_text: true },
];

// The plate grammar (as models/plate.py PLATE_RE) when the service does not serve it.
const PROVINCES = "京沪津渝冀晋蒙辽吉黑苏浙皖闽赣鲁豫鄂湘粤桂琼川贵云藏陕甘青宁新";
const DEFAULT_PLATE_RE = new RegExp(
  `^[${PROVINCES}][A-Z][A-Z0-9]{5,6}$|^[${PROVINCES}][A-Z][A-Z0-9]{4}[学警港澳挂领]$`, "u");

async function loadSettings() {
  if (!S.cameras) {
    S.cameras = new Map();
    try {
      const body = await api("/cameras");
      for (const c of body.items) S.cameras.set(c.id, c);
    } catch (e) { if (e.status === 401) throw e; }
    const sel = $("#f-camera");
    for (const c of S.cameras.values()) {
      const o = document.createElement("option");
      o.value = c.id;
      o.textContent = camName(c.id);
      sel.appendChild(o);
    }
  }
  if (!S.reasons) {
    try {
      const cfg = await api("/console/config");
      S.reasons = cfg.reject_reasons;
      S.plateRe = new RegExp(cfg.plate_pattern, "u");
    } catch (e) { if (e.status === 401) throw e; S.reasons = DEFAULT_REASONS; S.plateRe = DEFAULT_PLATE_RE; }
    fillReasons();
  }
}

function fillReasons() {
  const sel = $("#reason-preset");
  sel.textContent = "";
  const none = document.createElement("option");
  none.value = ""; none.textContent = t("choose_reason");
  sel.appendChild(none);
  (S.reasons || []).forEach((r, i) => {
    const o = document.createElement("option");
    o.value = r.code;
    o.textContent = `${i + 1}. ${S.lang === "zh" ? r.zh : r.en}`;
    sel.appendChild(o);
  });
}

// The place a reviewer knows (name · location), never only the internal id.
function camName(id) {
  const c = S.cameras && S.cameras.get(id);
  if (!c) return id;
  const name = c.name && c.name !== "camera" ? c.name : "";
  const parts = [name, c.location && c.location !== name ? c.location : ""].filter(Boolean);
  return parts.length ? parts.join(" · ") : id;
}

// --- queue -------------------------------------------------------------------------------------

function nextDay(d) {
  const x = new Date(`${d}T00:00:00Z`);
  x.setUTCDate(x.getUTCDate() + 1);
  return x.toISOString().slice(0, 10);
}

// --- violation types (issue 17): the API's violation_type= names, default codes (VIOLATIONS.md) ---

const VTYPES = [
  ["red_light_violation", "1625"], ["pedestrian_red_light", "8901"], ["wrong_way", "1301"],
  ["lane_direction", "1208"], ["no_turn", "1344"], ["solid_line", "1345"],
  ["illegal_parking", "1039"], ["yield_pedestrian", "1357"],
];

// The type a violation is charged as: the API's violation_type, else its event type.
const typeOf = (ev) => ev.violation_type || ev.type;

// "逆行 (1301)": the type's name and the code this record carries (a province may configure its own).
function typeLabel(ev) {
  const code = ev.violation && ev.violation.code;
  return code ? `${t(typeOf(ev))} (${code})` : t(typeOf(ev));
}

function fillTypePickers() {
  const list = $("#vtype-list");
  const picked = new Set(pickedTypes());
  list.textContent = "";
  for (const [name, code] of VTYPES) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox"; box.name = "violation_type"; box.value = name; box.checked = picked.has(name);
    box.addEventListener("change", typeSummary);
    label.append(box, ` ${t(name)} `);
    const c = document.createElement("span"); c.className = "code"; c.textContent = code;
    label.appendChild(c);
    list.appendChild(label);
  }
  typeSummary();
  const sel = $("#ev-vtype");
  while (sel.options.length > 1) sel.remove(1);
  for (const [name] of VTYPES) {
    const o = document.createElement("option"); o.value = name; o.textContent = t(name); sel.appendChild(o);
  }
  sel.value = S.evType;
}

function pickedTypes() {
  return [...document.querySelectorAll("#vtype-list input:checked")].map((b) => b.value);
}

function typeSummary() {
  const picked = pickedTypes();
  $("#vtype-summary").textContent = picked.length ? picked.map(t).join("、") : t("all");
}

// Filters as query parameters; dates are whole days in Beijing time (UTC+8).
function filterParams(withState = true) {
  const f = new FormData($("#filters"));
  const q = new URLSearchParams();
  for (const v of pickedTypes()) q.append("violation_type", v);
  for (const k of ["camera", "plate_contains", "review_state"]) {
    const v = String(f.get(k) || "").trim();
    if (v && (withState || k !== "review_state")) q.set(k, v);
  }
  // the days are Beijing days, as every time the console shows (whatever the service's zone)
  const from = f.get("date_from"), to = f.get("date_to");
  if (from) q.set("since", `${from}T00:00:00+08:00`);
  if (to) q.set("until", `${nextDay(to)}T00:00:00+08:00`);
  return q;
}

// The record's time: the violation time (stop-line crossing) when there is one, not first_seen.
function evTime(ev) { return ev.time_ms || (ev.violation && ev.violation.time_ms) || ev.first_seen_ms; }
const stateOf = (ev) => (ev.review ? ev.review.state : "");

// Thumbnails: what the record's evidence list has (list pages carry none, so the event's detail
// is asked, whose signed URLs go straight into <img>; no file is requested that is not listed):
// the subject crop, else image 2 (the subject at the stop line) framed on the subject's box from
// record.json, else image 1, else the composite. Loaded when the row scrolls into view.
const THUMB_W = 88, THUMB_H = 50;
const thumbObserver = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
  for (const en of entries) {
    if (en.isIntersecting) { thumbObserver.unobserve(en.target); loadThumb(en.target.querySelector("img")).catch(() => {}); }
  }
}) : null;

async function loadThumb(img) {
  const ev = await api(`/events/${encodeURIComponent(img.dataset.id)}`);
  markIncomplete(img.closest("tr"), ev);
  const files = Object.fromEntries((ev.evidence || []).map((f) => [f.name, f.url]));
  const name = ["crop.jpg", "2.jpg", "1.jpg", "composite.jpg"].find((n) => files[n]);
  if (!name) return;
  let shot = null;
  if (/^[123]\.jpg$/.test(name) && files["record.json"]) {
    const rec = await fetch(files["record.json"]).then((r) => (r.ok ? r.json() : null)).catch(() => null);
    const images = (rec && Array.isArray(rec.images)) ? rec.images : [];
    shot = images.find((im) => im.file === name && Array.isArray(im.subject_box) && im.width) || null;
  }
  img.onload = () => { if (shot) frameThumb(img, shot); img.hidden = false; };
  img.dataset.file = name;
  img.src = files[name];
}

// A row whose evidence is incomplete says so in the queue (the page lists what is missing).
function markIncomplete(tr, ev) {
  if (!tr) return;
  const parts = incompleteParts(ev);
  const cellEl = tr.querySelector("td.vtype");
  if (!cellEl || !parts.length || cellEl.querySelector(".incbadge")) return;
  const b = document.createElement("span");
  b.className = "incbadge";
  b.textContent = t("incomplete_title");
  b.title = parts.map(incompleteText).join("\n");
  cellEl.append(" ", b);
  tr.dataset.incomplete = "1";
}

// Show the part of the image around the subject's box (3× its size, the thumbnail's shape).
function frameThumb(img, shot) {
  const k = img.naturalWidth / shot.width;
  const natW = img.naturalWidth, natH = img.naturalHeight;
  const [x1, y1, x2, y2] = shot.subject_box.map((v) => v * k);
  let ch = Math.max((y2 - y1) * 3, ((x2 - x1) * 3 * THUMB_H) / THUMB_W, 40 * k);
  let cw = (ch * THUMB_W) / THUMB_H;
  if (cw > natW) { cw = natW; ch = (cw * THUMB_H) / THUMB_W; }
  if (ch > natH) { ch = natH; cw = (ch * THUMB_W) / THUMB_H; }
  const cx = Math.min(Math.max((x1 + x2) / 2 - cw / 2, 0), Math.max(0, natW - cw));
  const cy = Math.min(Math.max((y1 + y2) / 2 - ch / 2, 0), Math.max(0, natH - ch));
  const scale = THUMB_W / cw;
  img.classList.add("framed");
  img.style.width = `${natW * scale}px`;
  img.style.height = `${natH * scale}px`;
  img.style.left = `${-cx * scale}px`;
  img.style.top = `${-cy * scale}px`;
}

function queueRow(ev) {
  const tr = document.createElement("tr");
  tr.dataset.id = ev.event_id;
  tr.tabIndex = -1;
  const chkTd = document.createElement("td");
  chkTd.className = "chk";
  const chk = document.createElement("input");
  chk.type = "checkbox";
  chk.className = "pick";
  chk.disabled = stateOf(ev) !== "pending";
  chk.title = t("batch_confirm");
  chk.addEventListener("click", (e) => e.stopPropagation());
  chk.addEventListener("change", () => pick(ev.event_id, chk.checked));
  chkTd.appendChild(chk);
  tr.appendChild(chkTd);
  const thTd = document.createElement("td");
  thTd.className = "thumb";
  const frame = document.createElement("span");
  frame.className = "thumbframe";
  const img = document.createElement("img");
  img.alt = ""; img.hidden = true; img.dataset.id = ev.event_id;
  frame.appendChild(img);
  thTd.appendChild(frame);
  tr.appendChild(thTd);
  if (thumbObserver) thumbObserver.observe(thTd); else loadThumb(img).catch(() => {});
  cell(tr, bjTime(evTime(ev)), "time");
  cell(tr, camName(ev.camera_id), "cam").title = ev.camera_id;
  cell(tr, typeLabel(ev), "vtype").dataset.type = typeOf(ev);
  cell(tr, ev.plate && ev.plate.text, "plate");
  cell(tr, ev.violation && ev.violation.lane_no);
  cell(tr, ev.review ? t(ev.review.state) : "", ev.review ? `st-${ev.review.state}` : "");
  tr.addEventListener("click", () => { selectRow(S.queue.indexOf(ev.event_id)); openRow(); });
  return tr;
}

function selectRow(i) {
  const rows = document.querySelectorAll("#queue-table tbody tr[data-id]");
  if (!rows.length) { S.sel = -1; return; }
  S.sel = Math.max(0, Math.min(rows.length - 1, i));
  rows.forEach((r, j) => { r.classList.toggle("sel", j === S.sel); r.setAttribute("aria-selected", j === S.sel); });
  rows[S.sel].focus({ preventScroll: true });
  rows[S.sel].scrollIntoView({ block: "nearest" });
}

function openRow() {
  const id = S.queue[S.sel];
  if (id) location.hash = `#/violation/${id}`;
}

function pick(id, on) {
  if (on) S.picked.add(id); else S.picked.delete(id);
  $("#sel-count").textContent = String(S.picked.size);
  $("#batch-confirm").disabled = !S.picked.size;
  const pend = [...document.querySelectorAll("#queue-table .pick:not(:disabled)")];
  $("#sel-all").checked = pend.length > 0 && pend.every((c) => c.checked);
}

function togglePick(i) {
  const row = document.querySelectorAll("#queue-table tbody tr[data-id]")[i];
  const chk = row && row.querySelector(".pick");
  if (!chk || chk.disabled) return;
  chk.checked = !chk.checked;
  pick(row.dataset.id, chk.checked);
}

async function loadCount() {
  const el = $("#pending-count");
  try {
    const s = await api(`/console/queue-summary?${filterParams(false)}`);
    el.textContent = `${s.pending}${s.capped ? "+" : ""}`;
  } catch (e) {
    if (e.status === 401) throw e;
    const n = S.rows.filter((ev) => stateOf(ev) === "pending").length;
    el.textContent = `${n}${S.cursor ? "+" : ""}`;
  }
}

async function loadQueue(more = false) {
  show("queue");
  const table = $("#queue-table");
  const gen = ++S.qgen;  // a newer load (filters changed meanwhile) wins
  table.setAttribute("aria-busy", "true");
  try { await fillQueue(more, gen); }
  finally { if (gen === S.qgen) table.setAttribute("aria-busy", "false"); }
}

async function fillQueue(more, gen) {
  await loadSettings();
  const q = filterParams();
  q.set("limit", "50");
  if (more && S.cursor) q.set("cursor", S.cursor);
  const body = await api(`/violations?${q}`);
  if (gen !== S.qgen) return;
  const tbody = $("#queue-table tbody");
  if (!more) {
    tbody.textContent = "";
    S.queue = []; S.rows = []; S.picked.clear(); pick("", false);
  }
  for (const ev of body.items) { S.queue.push(ev.event_id); S.rows.push(ev); tbody.appendChild(queueRow(ev)); }
  if (!S.queue.length) { const tr = document.createElement("tr"); cell(tr, t("empty")).colSpan = 8; tbody.appendChild(tr); }
  S.cursor = body.next_cursor;
  $("#more").hidden = !S.cursor;
  sortQueue();
  if (!more) {
    const back = S.current ? S.queue.indexOf(S.current.event_id) : -1;
    selectRow(back >= 0 ? back : Math.min(Math.max(S.sel, 0), S.queue.length - 1));
  }
  await loadCount();
}

// Sort the loaded rows. The API lists newest first by first_seen only (no sort parameter), so
// every order, the violation time included, is applied here to what is loaded; the note says so
// while more pages exist.
const SORTS = {
  time_desc: (a, b) => evTime(b) - evTime(a),
  time_asc: (a, b) => evTime(a) - evTime(b),
  camera: (a, b) => camName(a.camera_id).localeCompare(camName(b.camera_id), "zh-CN") ||
    a.camera_id.localeCompare(b.camera_id) || evTime(b) - evTime(a),
};

function sortQueue() {
  const cmp = SORTS[S.sortKey] || SORTS.time_desc;
  const selId = S.queue[S.sel];
  const order = S.rows.map((ev, i) => [ev, i]).sort((x, y) => cmp(x[0], y[0]) || x[1] - y[1]);
  S.rows = order.map(([ev]) => ev);
  S.queue = S.rows.map((ev) => ev.event_id);
  const tbody = $("#queue-table tbody");
  const trs = new Map([...tbody.querySelectorAll("tr[data-id]")].map((tr) => [tr.dataset.id, tr]));
  for (const id of S.queue) { const tr = trs.get(id); if (tr) tbody.appendChild(tr); }
  const note = $("#sort-note");
  note.hidden = !S.cursor;
  note.textContent = t("sort_note").replace("{n}", S.rows.length);
  if (selId) selectRow(S.queue.indexOf(selId));
}

// Batch confirm: each item is confirmed by its own review call (one audit line each); items
// whose evidence is incomplete or that are no longer pending are left for one-by-one review.
async function runBatch() {
  $("#batch-bar").hidden = true;
  const ids = S.queue.filter((id) => S.picked.has(id));
  let done = 0, skipped = 0, failed = 0;
  for (const id of ids) {
    try {
      const ev = await api(`/violations/${encodeURIComponent(id)}`);
      if (stateOf(ev) !== "pending" || incompleteParts(ev).length) { skipped += 1; continue; }
      await api(`/violations/${encodeURIComponent(id)}/review`, {
        method: "POST", body: JSON.stringify({ action: "confirm", reason: null, corrected_plate: null }),
      });
      done += 1;
    } catch (e) {
      if (e.status === 401) return;
      if (e.status === 409) skipped += 1; else failed += 1;  // 409: confirmed meanwhile
    }
  }
  const parts = [t("batch_done").replace("{n}", done)];
  if (skipped) parts.push(t("batch_skipped").replace("{n}", skipped));
  if (failed) parts.push(t("batch_failed").replace("{n}", failed));
  S.sel = 0;
  S.current = null;
  await loadQueue();
  const msg = $("#batch-msg");
  msg.textContent = parts.join(" · ");
  msg.className = skipped || failed ? "error" : "okmsg";
}

// --- violation page ----------------------------------------------------------------------------

function metaRows(ev) {
  const v = ev.violation || {};
  return [
    [t("violation_time"), bjTime(evTime(ev))], [t("location"), `${camName(ev.camera_id)} (${ev.camera_id})`],
    [t("first_seen"), bjTime(ev.first_seen_ms)], [t("event_id"), ev.event_id],
    [t("violation_type"), typeLabel(ev)], [t("code"), v.code], [t("signal"), signalText(ev)],
    // a red already on when the camera first saw it: the red age is a lower bound ("≥")
    [t("since_red"), v.seconds_since_red == null ? null : `${v.red_onset_seen === false ? "≥" : ""}${v.seconds_since_red}`],
    [t("lane"), v.lane_no], [t("direction"), ev.direction],
    [t("confidence"), ev.confidence], [t("state"), ev.review && t(ev.review.state)],
    [t("reviewed_by"), ev.review && ev.review.reviewed_by ? actorName(ev.review.reviewed_by).text : null],
  ];
}

// The signal at the crossing: its colour, then which signal it was. Signal groups have no name
// in the calibration, only an id (e.g. "main") and a kind: the id is labelled as a group id.
function signalText(ev) {
  const v = ev.violation || {};
  if (!v.signal_group && !v.signal_color) return null;
  const colour = v.signal_color ? t(`sig_${v.signal_color}`) : "";
  const cam = S.cameras && S.cameras.get(ev.camera_id);
  const groups = (cam && cam.intersection && cam.intersection.signal_groups) || [];
  const g = groups.find((x) => x.id === v.signal_group);
  const which = [g && g.kind ? t(`signal_kind_${g.kind}`) : "",
    v.signal_group ? `${t("signal_group")} ${v.signal_group}` : ""].filter(Boolean).join(" · ");
  return which ? `${colour}（${which}）` : colour;
}

function renderViolation(ev) {
  S.current = ev;
  const files = Object.fromEntries((ev.evidence || []).map((f) => [f.name, f.url]));
  const setImg = (id, name) => { const el = $(id); el.hidden = !files[name]; if (files[name]) el.src = files[name]; };
  setImg("#composite", "composite.jpg");
  setImg("#img1", "1.jpg"); setImg("#img2", "2.jpg"); setImg("#img3", "3.jpg");
  setImg("#plate-img", "plate.jpg");
  setClip(files["clip.mp4"]);
  ovLoad(ev, files["record.json"]);
  $("#vtype").textContent = typeLabel(ev);
  $("#vtype").dataset.type = typeOf(ev);
  renderFacts(ev);
  $("#export").hidden = !canExport(ev);
  $("#export-msg").textContent = "";
  // 识别号牌: what the camera read (a reviewer's correction replaces the stored plate, so the
  // review's recognised_plate comes first); 更正号牌: the correction, shown apart
  const review = ev.review || {};
  const recognised = ev.review ? review.recognised_plate : (ev.plate && ev.plate.text);
  $("#plate-text").textContent = recognised || t("plate_none");
  $("#plate-text").classList.toggle("none", !recognised);
  $("#plate-corrected").hidden = !review.corrected_plate;
  $("#plate-corrected-text").textContent = review.corrected_plate || "";
  const confirmed = review.state === "confirmed";
  $("#confirm").disabled = confirmed;  // a second confirm is not offered
  $("#confirm").title = confirmed ? t("already_confirmed") : "";
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

// The facts to check against the three pictures, beside the plate (in view at 1366x768 without
// scrolling; the full list is the table further down): the violation time (the stop-line
// crossing), the lane, the signal and how long it had been red, and the review state.
function renderFacts(ev) {
  const v = ev.violation || {};
  $("#f-when").textContent = bjTime(evTime(ev));
  const parts = [];
  if (v.lane_no != null) parts.push(`${t("lane")} ${v.lane_no}`);
  // red with its age says "红灯已亮(s) 41.1" (red, and for how long); any other colour by name
  if (v.signal_color === "red" && v.seconds_since_red != null) {
    parts.push(`${t("since_red")} ${v.red_onset_seen === false ? "≥" : ""}${v.seconds_since_red}`);
  } else if (v.signal_color) parts.push(`${t("signal")} ${t(`sig_${v.signal_color}`)}`);
  $("#f-more").textContent = parts.join(" · ");
  const st = $("#f-state");
  const state = stateOf(ev);
  st.textContent = state ? t(state) : "";
  st.className = state ? `badge st-${state}` : "badge";
}

// What the evidence cannot show: listed in a warning box; confirming needs an acknowledgement.
function incompleteParts(ev) {
  const parts = ev.incomplete || [];
  if (!parts.length && ev.evidence_complete === false) return [{ part: "record", reason: t("not_complete") }];
  return parts;
}

// No plate was read and no reviewer has entered one: a record without a readable plate is
// invalid (RED_LIGHT.md), so confirming it needs the plate read from the pictures or the clip.
function plateUnread(ev) {
  if ((ev.review && ev.review.corrected_plate) || (ev.plate && ev.plate.text)) return false;
  return (ev.incomplete || []).some((p) => p.part === "plate");
}

function incompleteText(p) {
  if (S.lang !== "zh") return `${p.part}: ${p.reason}`;
  const zh = window.INCOMPLETE_ZH;
  const rule = zh.reasons.find(([re]) => re.test(p.reason || ""));
  const reason = rule ? rule[1]((p.reason || "").match(rule[0])) : p.reason;
  return `${zh.parts[p.part] || p.part}：${reason}`;
}

function renderIncomplete(ev) {
  const parts = incompleteParts(ev);
  const box = $("#incomplete");
  const list = $("#incomplete-list");
  list.textContent = "";
  for (const p of parts) {
    const li = document.createElement("li");
    li.textContent = incompleteText(p);
    list.appendChild(li);
  }
  box.hidden = !parts.length;
  // the acknowledgement is for confirming: a record already confirmed or rejected needs none
  $("#ack-label").hidden = !parts.length || stateOf(ev) !== "pending";
  $("#ack-incomplete").checked = false;
}

// Who reviewed, as a person reads it: the audit stores "name (token or session id)"; the id is
// left out (kept in the title), and the logged-in user's own display name is used for them.
function actorName(actor) {
  if (!actor) return { text: "—", id: "" };
  const m = /^(.*) \(([^()]*)\)$/.exec(actor);
  const name = m ? m[1] : actor;
  const id = m ? m[2] : "";
  const display = sessionStorage.getItem("se_display");
  if (display && S.me && S.me.name === name) return { text: `${display} (${name})`, id };
  return { text: name, id };
}

async function loadAudit(id) {
  const trail = await api(`/violations/${encodeURIComponent(id)}/audit`);
  const ol = $("#audit");
  ol.textContent = "";
  for (const a of trail) {
    const li = document.createElement("li");
    const state = (s) => (s ? t(s) : "—");
    const plate = (p) => p || t("plate_none");
    const actor = actorName(a.actor);
    li.textContent = `${bjTime(a.at_ms)} ${actor.text} ${t(a.action === "confirm" ? "confirm" : "reject")}` +
      ` ${state(a.before.review_state)}→${state(a.after.review_state)}` + (a.reason ? ` · ${a.reason}` : "") +
      (a.before.plate_text !== a.after.plate_text
        ? ` · ${t("plate")} ${plate(a.before.plate_text)}→${plate(a.after.plate_text)}` : "");
    li.title = a.actor;  // the full actor as stored (name and token / session id)
    ol.appendChild(li);
  }
}

function say(text, cls) { const m = $("#review-msg"); m.textContent = text; m.className = cls; }

async function loadViolation(id) {
  show("violation");
  closeLightbox();
  if (isTyping(document.activeElement)) document.activeElement.blur();  // keys act on this item
  await loadSettings();
  // what happened to the item before (confirm/reject moved on to this one): said apart from
  // this item's own messages, naming the previous item, so it never reads as this one's state
  $("#prev-msg").textContent = S.flash || "";
  $("#prev-msg").hidden = !S.flash;
  say("", "okmsg");
  S.flash = null;
  $("#reason").value = ""; $("#corrected").value = ""; $("#reason-preset").value = "";
  const ev = await api(`/violations/${encodeURIComponent(id)}`);
  renderViolation(ev);
  await loadAudit(id);
}

// The reason sent with a reject: the preset's Chinese label (what the audit keeps), plus text.
function rejectReason() {
  const code = $("#reason-preset").value;
  const text = $("#reason").value.trim();
  const preset = (S.reasons || []).find((r) => r.code === code);
  if (!preset) return { reason: text, missing: !text };
  return { reason: text ? `${preset.zh}：${text}` : preset.zh, missing: preset.needs_text && !text };
}

// The next item of the loaded queue still pending: after ``id``, else (``wrap``) from the top;
// null when none.
function nextPending(id, wrap = true) {
  const i = S.queue.indexOf(id);
  for (let j = i + 1; j < S.rows.length; j += 1) if (stateOf(S.rows[j]) === "pending") return S.queue[j];
  if (wrap) for (let j = 0; j < i; j += 1) if (stateOf(S.rows[j]) === "pending") return S.queue[j];
  return null;
}

async function review(action) {
  const ev = S.current;
  if (!ev || S.busy) return;
  if (action === "confirm" && stateOf(ev) === "confirmed") { say(t("already_confirmed"), "error"); return; }
  const corrected = $("#corrected").value.trim().toUpperCase();
  if (corrected && S.plateRe && !S.plateRe.test(corrected)) {
    say(t("bad_plate"), "error");
    $("#corrected").focus();
    return;
  }
  if (action === "confirm" && !corrected && plateUnread(ev)) {  // the service refuses it too
    say(t("need_plate"), "error");
    $("#corrected").focus();
    return;
  }
  if (action === "confirm" && incompleteParts(ev).length && !$("#ack-incomplete").checked) {
    say(t("need_ack"), "error");
    $("#ack-incomplete").focus();
    return;
  }
  let reason = $("#reason").value.trim();
  if (action === "reject") {
    const r = rejectReason();
    if (r.missing) {
      say(r.reason ? t("need_text") : t("need_reason"), "error");
      (r.reason ? $("#reason") : $("#reason-preset")).focus();
      return;
    }
    reason = r.reason;
  }
  S.busy = true;
  try {
    const res = await api(`/violations/${encodeURIComponent(ev.event_id)}/review`, {
      method: "POST",
      body: JSON.stringify({ action, reason: reason || null, corrected_plate: corrected || null }),
    });
    const i = S.queue.indexOf(ev.event_id);
    if (i >= 0) S.rows[i] = res.event;
    const plate = (res.event.review && res.event.review.corrected_plate) || (res.event.plate && res.event.plate.text) || "";
    $("#prev-msg").hidden = true;
    const msg = `${t(action === "confirm" ? "done_confirm" : "done_reject")}${plate ? ` · ${plate}` : ""}`;
    let next = nextPending(ev.event_id, false);
    if (!next && S.cursor) {  // the loaded page is done: the next page of the queue, then on
      await fillQueue(true, ++S.qgen).catch(() => {});
      next = nextPending(ev.event_id, false);
    }
    next = next || nextPending(ev.event_id);
    if (next) {
      S.flash = t(action === "confirm" ? "prev_confirmed" : "prev_rejected").replace("{p}", plate || t("plate_none"));
      location.hash = `#/violation/${next}`;
      return;
    }
    renderViolation(res.event);
    await loadAudit(ev.event_id);
    say(S.rows.some((r) => stateOf(r) === "pending") || S.cursor ? msg : `${msg} · ${t("queue_done")}`, "okmsg");
  } catch (e) {
    if (e.status === 409) {  // confirmed meanwhile (another reviewer): refused by the service
      const fresh = await api(`/violations/${encodeURIComponent(ev.event_id)}`).catch(() => null);
      if (fresh) { renderViolation(fresh); await loadAudit(ev.event_id).catch(() => {}); }
      say(t("already_confirmed"), "error");
    } else {
      say(e.message, "error");
    }
  } finally {
    S.busy = false;
  }
}

// The de-identified export (GET /violations/{id}/export): offered on confirmed records to
// reviewers and admins; fetched with the bearer token and saved under the server's file name.
function canExport(ev) {
  return stateOf(ev) === "confirmed" && !!S.me && ["reviewer", "admin"].includes(S.me.role);
}

async function exportViolation() {
  const ev = S.current;
  if (!ev || !canExport(ev) || S.busy) return;
  const msg = $("#export-msg");
  msg.className = "note";
  msg.textContent = t("exporting");
  S.busy = true;
  try {
    const r = await fetch(`${API}/violations/${encodeURIComponent(ev.event_id)}/export`, {
      headers: { Authorization: `Bearer ${S.token}` }, cache: "no-store",
    });
    if (r.status === 401) { clearSession(t("session_expired")); return; }
    if (!r.ok) {
      const body = await r.json().catch(() => null);
      const detail = body && body.detail ? ` (${r.status}: ${typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)})` : ` (${r.status})`;
      throw new Error(`${t("export_failed")}${detail}`);
    }
    const m = /filename="([^"]+)"/.exec(r.headers.get("Content-Disposition") || "");
    const url = URL.createObjectURL(await r.blob());
    const a = document.createElement("a");
    a.href = url;
    a.download = m ? m[1] : `${ev.event_id}_deid.zip`;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    msg.className = "okmsg";
    msg.textContent = `${t("exported")} ${a.download}`;
  } catch (e) {
    msg.className = "error";
    msg.textContent = e.message || t("export_failed");
  } finally {
    S.busy = false;
  }
}

function nextViolation() {
  const i = S.current ? S.queue.indexOf(S.current.event_id) : -1;
  const next = S.queue[i + 1];
  location.hash = next ? `#/violation/${next}` : "#/queue";
}

// --- live feed (fetch-based SSE so the token goes in a header) ----------------------------------

function onFeedEvent(ev, listed = false) {
  const label = `${bjTime(evTime(ev)).slice(11, 19)} ${camName(ev.camera_id)} ${t(typeOf(ev))} ${(ev.plate && ev.plate.text) || ""}`;
  const ticker = $("#ticker");
  const span = document.createElement("span");
  span.textContent = label;
  if (ev.violation) span.className = "viol";
  ticker.prepend(span);
  while (ticker.childElementCount > 8) ticker.lastElementChild.remove();
  if (S.evType && !listed) return;  // a type-filtered list is not fed live (feed items carry no type)
  S.evShown = S.evType;
  eventRow(ev, S.evType);
}

// One row of the events page, placed by the record's time (newest first) whatever order rows
// arrive in (stored page, live feed); a row already shown (same event id) is replaced.
function eventRow(ev, type) {
  const tbody = $("#events-table tbody");
  tbody.querySelectorAll("tr:not([data-id])").forEach((r) => r.remove());
  const when = evTime(ev);
  const old = [...tbody.children].find((r) => r.dataset.id === ev.event_id);
  if (old) old.remove();
  const tr = document.createElement("tr");
  tr.dataset.id = ev.event_id;
  tr.dataset.t = String(when);
  cell(tr, bjTime(when), "time"); cell(tr, camName(ev.camera_id));
  cell(tr, type ? typeLabel({ ...ev, violation_type: ev.violation_type || type }) : t(typeOf(ev)), "vtype");
  cell(tr, ev.plate && ev.plate.text, "plate");
  const after = [...tbody.children].find((r) => Number(r.dataset.t) < when);
  tbody.insertBefore(tr, after || null);
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

// Events: the newest 50, then the live feed; with a violation type picked, that type's newest 50
// (the list route filters by it; every item then is of the picked type).
async function loadEvents(reload = false) {
  show("events");
  const tbody = $("#events-table tbody");
  const type = S.evType;
  // live rows may be there already (the feed runs on every page): the stored newest 50 are
  // still loaded once per type and merged in (rows are placed by time, duplicates replaced)
  if (S.evLoaded === type && !reload) return;
  const q = new URLSearchParams({ limit: "50" });
  if (type) q.set("violation_type", type);
  const body = await api(`/events?${q}`);
  if (type !== S.evType) return;
  if (S.evShown !== type) tbody.textContent = "";  // rows of another type (or of all types)
  S.evShown = type;
  S.evLoaded = type;
  for (const ev of body.items) eventRow(ev, type);
  if (!tbody.childElementCount) { const tr = document.createElement("tr"); cell(tr, t("empty")).colSpan = 4; tbody.appendChild(tr); }
}

// Camera health in the reviewer's words: the state, real drops by reason (frames the analysis
// frame rate leaves out are not drops: shown apart as 抽帧), the clock skew rounded.
const SAMPLING = "sampling";

function healthState(state) {
  const key = `hs_${state}`;
  const word = t(key);
  return word === key ? state : word;
}

function dropsText(drops) {
  const real = Object.entries(drops || {}).filter(([k, v]) => k !== SAMPLING && v > 0);
  if (!real.length) return "0";
  return real.map(([k, v]) => { const key = `drop_${k}`; const w = t(key); return `${w === key ? k : w} ${v}`; }).join(" · ");
}

function skewText(ms) {
  if (ms == null) return null;
  return Math.abs(ms) >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

// What /streams gives a non-admin instead of the source's own error text (routes/streams.py).
const GENERIC_DETAIL = "the source reported a problem (details for admins)";
function detailText(d) { return d === GENERIC_DETAIL ? t("hs_detail_admins") : d; }

// A checkpoint camera's plates (GET /streams `plates`, structuring on): found, read, too small to
// read and their median width; the warning, with the fix, when they are too small to read.
function platesText(p) {
  let text = t("hs_plates").replace("{found}", String(p.found)).replace("{read}", String(p.read));
  if (p.too_small > 0) text += t("hs_plates_small_n").replace("{n}", String(p.too_small));
  if (p.median_width_px != null) text += t("hs_plates_median").replace("{w}", String(Math.round(p.median_width_px)));
  return text;
}

function platesWarning(p) {
  if (!p.too_small_to_read || p.median_width_px == null) return null;
  return t("hs_plates_too_small").replace("{w}", String(Math.round(p.median_width_px)))
    .replace("{needed}", String(Math.round(p.needed_px)));
}

// A face camera's captures (GET /streams `faces`, face capture on): persons seen, faces captured
// and why not the others; the warning, with the fix, when most faces are too small to capture.
function facesText(f) {
  let text = t("hs_faces").replace("{persons}", String(f.persons)).replace("{captured}", String(f.captured));
  if (f.too_small > 0) text += t("hs_faces_small_n").replace("{n}", String(f.too_small));
  if (f.low_quality > 0) text += t("hs_faces_blurred_n").replace("{n}", String(f.low_quality));
  if (f.no_face > 0) text += t("hs_faces_none_n").replace("{n}", String(f.no_face));
  return text;
}

function facesWarning(f) {
  if (!f.too_small_to_capture) return null;
  return t("hs_faces_too_small").replace("{n}", String(f.too_small)).replace("{found}", String(f.captured + f.too_small + f.low_quality))
    .replace("{largest}", String(Math.round(f.largest_small_px))).replace("{needed}", String(Math.round(f.needed_px)));
}

async function loadHealth() {
  show("health");
  const refresh = async () => {
    const body = await api("/streams");
    const tbody = $("#health-table tbody");
    tbody.textContent = "";
    for (const h of body.items) {
      const tr = document.createElement("tr");
      tr.dataset.camera = h.camera_id;
      cell(tr, camName(h.camera_id), "cam").title = h.camera_id;
      const st = cell(tr, healthState(h.state), `state st-${h.state}`);
      st.title = h.detail ? `${h.state}: ${h.detail}` : h.state;
      // why it is not running, and any signal problem, in view (not only in a tooltip)
      const why = [];
      if (h.detail && h.state !== "running") why.push(detailText(h.detail));
      for (const [k, v] of Object.entries(h.signal_problems || {})) why.push(`${t("hs_signal_problem")} ${k}: ${v}`);
      if (h.noise_filtered && h.noise_sigma != null) why.push(t("hs_noise").replace("{sigma}", h.noise_sigma.toFixed(1)));
      if (h.contrast_stretched && h.tonal_range != null) why.push(t("hs_washed_out").replace("{range}", String(Math.round(h.tonal_range))));
      if (h.frames_deinterlaced > 0) why.push(t("hs_interlaced").replace("{n}", String(h.frames_deinterlaced)));
      if (h.near_field) why.push(t("hs_near_field"));
      const warning = h.plates ? platesWarning(h.plates) : null;
      if (warning) why.push(warning);
      const faceWarning = h.faces ? facesWarning(h.faces) : null;
      if (faceWarning) why.push(faceWarning);
      for (const w of why) { const d = document.createElement("div"); d.className = "why"; d.textContent = w; st.appendChild(d); }
      if (h.plates) { const d = document.createElement("div"); d.className = "plates"; d.textContent = platesText(h.plates); st.appendChild(d); }
      if (h.faces) { const d = document.createElement("div"); d.className = "faces"; d.textContent = facesText(h.faces); st.appendChild(d); }
      cell(tr, h.input_fps.toFixed(1)); cell(tr, h.analysed_fps.toFixed(1));
      cell(tr, dropsText(h.drops_by_reason), "drops");
      cell(tr, (h.drops_by_reason || {})[SAMPLING] || 0, "sampled").title = t("sampling_note");
      cell(tr, h.reconnects); cell(tr, h.last_frame_age_s == null ? null : h.last_frame_age_s.toFixed(2));
      cell(tr, skewText(h.skew_ms), "skew"); cell(tr, h.decoder);
      const url = cell(tr, h.url, "url");
      if (h.url) url.title = h.url;
      const geo = document.createElement("a");
      geo.href = `#/geometry/${encodeURIComponent(h.camera_id)}`;
      geo.textContent = t("geometry");
      cell(tr, "", "geo").replaceChildren(geo);
      tbody.appendChild(tr);
    }
    if (!body.items.length) { const tr = document.createElement("tr"); cell(tr, t("empty")).colSpan = 12; tbody.appendChild(tr); }
  };
  await refresh();
  loadFlow().catch(() => {});
  if (!S.healthTimer) {
    S.healthTimer = setInterval(() => { refresh().catch(() => {}); loadFlow().catch(() => {}); }, 5000);
  }
}

// --- traffic flow (交通流): a small bar chart per camera, all lanes summed per interval ----------

const FLOW_BARS = 30;  // intervals shown per camera (the newest)
const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text != null) el.textContent = text;
  return el;
}

// Flow records (newest first, one per lane and interval) → per camera, the intervals oldest
// first with their lanes' counts summed.
function flowSeries(items) {
  const cams = new Map();
  for (const r of items) {
    if (!cams.has(r.camera_id)) cams.set(r.camera_id, new Map());
    const iv = cams.get(r.camera_id);
    const k = r.start_ms;
    if (!iv.has(k)) iv.set(k, { start_ms: k, interval_s: r.interval_s, count: 0, complete: true, lanes: [] });
    const x = iv.get(k);
    x.count += r.count;
    x.complete = x.complete && r.complete;
    x.lanes.push([r.lane_no, r.count]);
  }
  const out = [];
  for (const [cam, iv] of cams) {
    const list = [...iv.values()].sort((a, b) => a.start_ms - b.start_ms).slice(-FLOW_BARS);
    list.forEach((x) => x.lanes.sort((a, b) => a[0] - b[0]));
    out.push([cam, list]);
  }
  return out.sort((a, b) => camName(a[0]).localeCompare(camName(b[0]), "zh-CN"));
}

function flowChart(cam, list) {
  const W = 360, H = 110, L = 30, R = 6, T = 8, B = 20;
  const max = Math.max(1, ...list.map((x) => x.count));
  const slot = (W - L - R) / FLOW_BARS;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", class: "flowchart" });
  svg.appendChild(svgEl("title", {}, `${camName(cam)} ${t("flow_title")}`));
  svg.appendChild(svgEl("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }));
  svg.appendChild(svgEl("text", { x: L - 4, y: T + 8, "text-anchor": "end", class: "lbl" }, String(max)));
  svg.appendChild(svgEl("text", { x: L - 4, y: H - B, "text-anchor": "end", class: "lbl" }, "0"));
  const x0 = L + (FLOW_BARS - list.length) * slot;  // the newest interval at the right edge
  list.forEach((x, i) => {
    const h = ((H - B - T) * x.count) / max;
    const rect = svgEl("rect", {
      x: (x0 + i * slot + 1).toFixed(1), y: (H - B - h).toFixed(1), width: Math.max(1, slot - 2).toFixed(1),
      height: h.toFixed(1), class: x.complete ? "bar" : "bar partial", "data-count": x.count, "data-start": x.start_ms,
    });
    const lanes = x.lanes.map(([n, c]) => `${t("lane")} ${n}: ${c}`).join("，");
    rect.appendChild(svgEl("title", {}, `${bjTime(x.start_ms).slice(11, 16)} ${x.count} ${t("flow_unit")}（${lanes}）`));
    svg.appendChild(rect);
  });
  if (list.length) {
    svg.appendChild(svgEl("text", { x: x0, y: H - 5, class: "lbl" }, bjTime(list[0].start_ms).slice(11, 16)));
    svg.appendChild(svgEl("text", { x: W - R, y: H - 5, "text-anchor": "end", class: "lbl" },
      bjTime(list[list.length - 1].start_ms).slice(11, 16)));
  }
  return svg;
}

async function loadFlow() {
  const body = await api("/flow?limit=1000");
  const box = $("#flow-charts");
  box.textContent = "";
  const series = flowSeries(body.items);
  $("#flow-none").hidden = series.length > 0;
  for (const [cam, list] of series) {
    const fig = document.createElement("figure");
    fig.className = "flow";
    fig.dataset.camera = cam;
    const cap = document.createElement("figcaption");
    const last = list[list.length - 1];
    const lanes = new Set(list.flatMap((x) => x.lanes.map(([n]) => n))).size;
    const name = document.createElement("b");
    name.textContent = camName(cam);
    name.title = cam;
    const note = document.createElement("span");
    note.className = "note";
    note.textContent = `${t("flow_latest")} ${bjTime(last.start_ms).slice(11, 16)}：${last.count} ${t("flow_unit")}` +
      ` · ${t("flow_per").replace("{s}", Math.round(last.interval_s))} · ${lanes} ${t("flow_lanes")}`;
    cap.append(name, " ", note);
    fig.append(cap, flowChart(cam, list));
    box.appendChild(fig);
  }
}

// --- geometry (标定图): a camera's configured geometry over its latest frame, and its problems ---
// The picture is drawn by the service (GET /cameras/{id}/geometry.png, the drawing camera-check
// uses), fetched with the bearer token and shown as a blob: URL; the problems are the static
// checks (GET /cameras/{id}/geometry), their config keys put in words with the camera's ids.

function geoKeyText(key, cam) {
  const words = (window.GEO_KEYS || {})[S.lang] || {};
  const parts = key.split(".");
  const out = [];
  let node = cam;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (/^\d+$/.test(p)) continue;
    const word = p in words ? words[p] : p;
    let child = node && typeof node === "object" ? node[p] : undefined;
    let label = word;
    const next = parts[i + 1];
    if (next !== undefined && /^\d+$/.test(next)) {
      const item = Array.isArray(child) ? child[Number(next)] : undefined;
      const name = item && item.id != null ? item.id : Number(next) + 1;
      label = word ? `${word} ${name}` : String(name);
      child = item;
    }
    node = child;
    if (label) out.push(label);
  }
  return out.join(" · ") || key;
}

function fillGeoCameras(id) {
  const sel = $("#geo-camera");
  sel.textContent = "";
  for (const c of (S.cameras || new Map()).values()) {
    const o = document.createElement("option");
    o.value = c.id;
    o.textContent = camName(c.id) === c.id ? c.id : `${camName(c.id)} (${c.id})`;
    sel.appendChild(o);
  }
  if (id && ![...sel.options].some((o) => o.value === id)) {
    const o = document.createElement("option"); o.value = id; o.textContent = id; sel.appendChild(o);
  }
  sel.value = id || "";
}

function geoSource(rep) {
  const parts = [];
  if (rep.frame_source === "live") parts.push(t("geo_live").replace("{t}", bjTime(rep.frame_time_ms).slice(0, 19)));
  else parts.push(t("geo_no_frame").replace("{w}", rep.frame_size[0]).replace("{h}", rep.frame_size[1]));
  if (!rep.configured) parts.push(t("geo_unconfigured"));
  return parts.join(" · ");
}

function geoProblems(rep, cam) {
  const list = $("#geo-problems");
  list.textContent = "";
  $("#geo-count").textContent = String(rep.problems.length);
  $("#geo-count").className = rep.problems.length ? "bad" : "good";
  $("#geo-ok").hidden = rep.problems.length > 0;
  for (const p of rep.problems) {
    const li = document.createElement("li");
    const what = document.createElement("b");
    what.textContent = geoKeyText(p.key, cam);
    const key = document.createElement("code");
    key.textContent = p.key;
    // the API's Chinese text (message_zh) in the Chinese console; the English message where
    // a problem has none (an older service, a check not yet translated), marked as English
    const zh = S.lang === "zh" && typeof p.message_zh === "string" && p.message_zh.trim() ? p.message_zh : "";
    const msg = document.createElement("div");
    msg.className = "gmsg";
    msg.lang = zh ? "zh-CN" : "en";
    msg.textContent = zh || p.message;
    if (!zh && t("geo_msg_lang")) msg.title = t("geo_msg_lang");
    li.append(what, " ", key, msg);
    list.appendChild(li);
  }
}

async function loadGeometry(id) {
  show("geometry");
  try {  // cameras added since the page loaded (an installer adds one, then checks it here)
    const body = await api("/cameras");
    for (const c of body.items) S.cameras.set(c.id, c);
  } catch (e) { if (e.status === 401) throw e; }
  if (!id) id = S.geoCam || (S.cameras && S.cameras.size ? S.cameras.keys().next().value : "");
  fillGeoCameras(id);
  const img = $("#geo-img"), msg = $("#geo-msg");
  if (!id) { img.hidden = true; msg.textContent = t("geo_no_camera"); $("#geo-source").textContent = ""; return; }
  S.geoCam = id;
  const gen = ++S.geoGen;
  msg.textContent = t("geo_drawing");
  const path = `/cameras/${encodeURIComponent(id)}`;
  const picture = fetch(`${API}${path}/geometry.png?lang=${S.lang}`, {
    headers: { Authorization: `Bearer ${S.token}` }, cache: "no-store",
  });
  let cam = null, rep = null, r = null;
  try {
    [cam, rep, r] = await Promise.all([api(path), api(`${path}/geometry`), picture]);
  } catch (e) {
    if (gen !== S.geoGen) return;
    img.hidden = true;
    msg.textContent = `${t("geo_failed")}: ${e.status === 404 ? id : e.message}`;
    $("#geo-problems").textContent = $("#geo-count").textContent = $("#geo-source").textContent = "";
    $("#geo-ok").hidden = true;
    if (e.status === 401) throw e;
    return;
  }
  if (gen !== S.geoGen) return;
  $("#geo-source").textContent = geoSource(rep);
  geoProblems(rep, cam);
  if (!r.ok) { img.hidden = true; msg.textContent = `${t("geo_failed")} (${r.status})`; return; }
  const url = URL.createObjectURL(await r.blob());
  if (gen !== S.geoGen) { URL.revokeObjectURL(url); return; }
  if (S.geoBlob) URL.revokeObjectURL(S.geoBlob);
  S.geoBlob = url;
  img.onload = () => { img.hidden = false; msg.textContent = ""; };
  img.src = url;
}

// --- routing and keys --------------------------------------------------------------------------

function route() {
  if (!S.token) { show("login"); return; }
  const [, view, id] = (location.hash || "#/queue").split("/");
  const done = (p) => p.catch((e) => { if (e.status !== 401) console.error(e); });
  if (view === "violation" && id) done(loadViolation(decodeURIComponent(id)));
  else if (view === "events") done(loadEvents());
  else if (view === "health") done(loadHealth());
  else if (view === "geometry") done(loadGeometry(id ? decodeURIComponent(id) : ""));
  else done(loadQueue());
}

function isTyping(el) {
  if (!el) return false;
  if (el.tagName === "INPUT") return !["checkbox", "radio", "button", "submit"].includes(el.type);
  return ["TEXTAREA", "SELECT"].includes(el.tagName);
}

function queueKey(e) {
  if (isTyping(document.activeElement)) return;
  const k = e.key;
  if (k === "j" || k === "J" || k === "ArrowDown") { e.preventDefault(); selectRow(S.sel + 1); }
  else if (k === "k" || k === "K" || k === "ArrowUp") { e.preventDefault(); selectRow(S.sel - 1); }
  else if (k === "Enter" || k === "o") { if (S.sel >= 0) { e.preventDefault(); openRow(); } }
  else if (k === "x" || k === "X") { e.preventDefault(); togglePick(S.sel); }
}

function violationKey(e) {
  if (lightboxOpen()) { lightboxKey(e); return; }
  const typing = isTyping(document.activeElement);
  if (e.key === "Escape") { if (typing) document.activeElement.blur(); else location.hash = "#/queue"; return; }
  if (typing) {
    if (e.key === "Enter") {
      e.preventDefault();
      review(["reason", "reason-preset"].includes(e.target.id) ? "reject" : "confirm");
    }
    return;
  }
  const el = document.activeElement;
  if ((e.key === " " || e.key === "Enter") && el && el !== document.body &&
      (el.tagName === "BUTTON" || (el.tagName === "INPUT" && ["checkbox", "radio"].includes(el.type)))) {
    return;  // the focused control's own key (e.g. Space ticks 我已核实 after C asked for it)
  }
  const k = e.key.toLowerCase();
  const act = {
    c: () => review("confirm"), r: () => review("reject"), n: nextViolation,
    ",": () => stepFrame(-1), ".": () => stepFrame(1), "[": () => stepSpeed(-1), "]": () => stepSpeed(1),
    z: () => { const img = $("#composite"); if (img.src) openLightbox(img.src); },
    b: ovToggle,
    " ": () => { const v = $("#clip"); if (v.paused) v.play(); else v.pause(); },
  }[k];
  if (act) { e.preventDefault(); act(); return; }
  const digit = Number(k);
  if (digit >= 1 && S.reasons && digit <= S.reasons.length) {
    e.preventDefault();
    $("#reason-preset").value = S.reasons[digit - 1].code;
    if (S.reasons[digit - 1].needs_text) $("#reason").focus();
  }
}

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (!$("#view-violation").hidden) violationKey(e);
  else if (!$("#view-queue").hidden) queueKey(e);
});

$("#login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("#login-error").textContent = $("#user-login-error").textContent = "";
  try { await login($("#token").value.trim()); $("#token").value = ""; await enter(); }
  catch (err) { $("#login-error").textContent = t("login_failed"); }
});
$("#user-login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const msg = $("#user-login-error");
  msg.textContent = "";
  const code = $("#totp-label").hidden ? "" : $("#totp").value.trim();
  try {
    await loginUser($("#username").value.trim(), $("#password").value, code);
    $("#password").value = "";
    await enter();
  } catch (err) {
    msg.textContent = err instanceof ApiError ? err.message : t("bad_login");
  }
});
$("#username").addEventListener("input", () => showTotp(false));
$("#filters").addEventListener("submit", (e) => { e.preventDefault(); S.sel = 0; S.current = null; loadQueue().catch(() => {}); });
$("#more").addEventListener("click", () => loadQueue(true).catch(() => {}));
$("#f-today").addEventListener("click", () => {
  const today = bjTime(Date.now()).slice(0, 10);
  $("#f-from").value = $("#f-to").value = today;
  $("#filters").requestSubmit();
});
$("#f-sort").value = S.sortKey;
$("#f-sort").addEventListener("change", () => {
  S.sortKey = $("#f-sort").value;
  localStorage.setItem("se_sort", S.sortKey);
  sortQueue();
});
$("#ev-vtype").addEventListener("change", () => {
  S.evType = $("#ev-vtype").value;
  loadEvents(true).catch(() => {});
});
$("#ov-toggle").addEventListener("click", ovToggle);
$("#geo-camera").addEventListener("change", () => { location.hash = `#/geometry/${encodeURIComponent($("#geo-camera").value)}`; });
$("#geo-refresh").addEventListener("click", () => { if (S.geoCam) loadGeometry(S.geoCam).catch(() => {}); });
$("#sel-all").addEventListener("change", () => {
  const on = $("#sel-all").checked;
  document.querySelectorAll("#queue-table tbody tr[data-id]").forEach((row) => {
    const chk = row.querySelector(".pick");
    if (chk && !chk.disabled) { chk.checked = on; pick(row.dataset.id, on); }
  });
});
$("#batch-confirm").addEventListener("click", () => {
  $("#batch-question").textContent = t("batch_question").replace("{n}", S.picked.size);
  $("#batch-bar").hidden = false;
  $("#batch-msg").textContent = "";
  $("#batch-yes").focus();
});
$("#batch-no").addEventListener("click", () => { $("#batch-bar").hidden = true; });
$("#batch-yes").addEventListener("click", () => runBatch().catch(() => {}));
$("#confirm").addEventListener("click", () => review("confirm"));
$("#reject").addEventListener("click", () => review("reject"));
$("#next").addEventListener("click", nextViolation);
$("#export").addEventListener("click", () => { exportViolation().catch(() => {}); });
$("#frame-back").addEventListener("click", () => stepFrame(-1));
$("#frame-fwd").addEventListener("click", () => stepFrame(1));
$("#speed").addEventListener("change", () => setSpeed($("#speed").value));
["timeupdate", "seeked", "loadedmetadata"].forEach((n) => $("#clip").addEventListener(n, showPos));
$("#logout").addEventListener("click", () => { logout().catch(() => {}); });
$("#lang").addEventListener("click", () => {
  S.lang = S.lang === "zh" ? "en" : "zh";
  localStorage.setItem("se_lang", S.lang);
  applyI18n();
  fillReasons();
  fillTypePickers();
  if (S.me) $("#who").textContent = $("#who").title = whoText(S.me);
  route();
});
window.addEventListener("hashchange", route);

lbWire();
ovWire();
applyI18n();
fillTypePickers();
// a stored session the server no longer knows: api() has said so (401); anything else: plain
if (S.token) enter().catch((e) => { if (!(e instanceof ApiError && e.status === 401)) clearSession(); });
else show("login");

// sharpeyes live watch: the operator's wall screen. Camera tiles with their latest picture and
// health, alerts from the live feed that stay until acknowledged, an events search with paging,
// and the camera map (watch-map.js). Plain JS, no build step, no third-party code; talks only to
// this service.
"use strict";

const API = "/api/v1";
const TILE_MS = 2000;      // latest-picture refresh per tile
const HEALTH_MS = 3000;    // camera list / health refresh
const NEW_MS = 15000;      // "new events" check on the events page
const PAGE = 100;          // events per page
const ACK_KEEP = 2000;     // acknowledged ids remembered
const ALERT_KEEP = 300;    // unacknowledged alerts kept
const VIOLATION_TYPES = ["red_light_violation", "pedestrian_red_light"];
const EVENT_TYPES = ["red_light_violation", "pedestrian_red_light", "vehicle_pass", "non_motor_pass",
  "person_seen", "face_capture", "traffic_flow"];
const BODY_COLORS = ["black", "white", "grey", "red", "blue", "yellow", "orange", "brown", "green",
  "purple", "cyan", "pink"];
const store = {
  get: (k, d) => { try { const v = localStorage.getItem(k); return v == null ? d : JSON.parse(v); } catch (e) { return d; } },
  set: (k, v) => { try { localStorage.setItem(k, JSON.stringify(v)); } catch (e) { /* full or off */ } },
};

const L = {
  zh: {
    tab_live: "实时监看", tab_events: "事件查询", tab_map: "点位地图", tab_console: "审核台",
    login_title: "登录实时监看", token: "访问令牌", login: "登录", console_login: "或在审核台登录",
    login_failed: "令牌无效或已被限制", no_cameras: "没有摄像机", alerts: "告警", ack_all: "全部确认",
    alert_opts: "告警设置", alert_always: "违法行为总会告警；另选：", sound: "声音提示",
    no_alerts: "暂无未确认告警", ack: "确认收到", camera: "摄像机", type: "类型", plate: "号牌",
    plate_color: "号牌颜色", vehicle_color: "车身颜色", since: "从", until: "至", search: "查询",
    all: "全部", thumb: "图片", time: "时间", class: "类别", speed: "车速", coat_color: "上衣颜色",
    trousers_color: "下装颜色", plate_status: "号牌识别", face_quality: "人脸质量", direction: "方向",
    ps_read: "已识别", ps_unreadable: "号牌不清", ps_no_plate_visible: "未见号牌", ps_plate_not_found: "未检出号牌（无法判定有无）", ps_plate_out_of_view: "号牌不在画面内或被遮挡", ps_too_few_reads: "识别次数不足",
    ps_reads_disagree: "多次识别不一致", ps_not_read: "未识别",
    color_status: "颜色", cs_monochrome: "不判断（黑白画面，摄像机处于红外夜视模式）",
    "d_up": "画面向上", "d_up-right": "画面向右上", "d_right": "画面向右", "d_down-right": "画面向右下",
    "d_down": "画面向下", "d_down-left": "画面向左下", "d_left": "画面向左", "d_up-left": "画面向左上", more: "加载更多", close: "关闭",
    shown: "已显示 {n} 条（最新在前）", shown_end: "共 {n} 条（最新在前，已到底）",
    new_events: "有 {n} 条新事件，点击刷新", new_events_more: "有 {n}+ 条新事件，点击刷新",
    empty: "没有记录", feed_on: "● 实时", feed_off: "○ 连接中断，重连中…",
    fps: "帧率", frame_age: "帧龄", no_picture: "暂无画面", picture_event: "最近事件图片",
    reconnects: "重连 {n} 次", disabled: "已停用", signal_problem: "信号灯异常",
    camera_faults: "摄像机异常 {n} 台", no_reason: "原因未报告", detail_admins: "信号源报告了故障（详情仅管理员可见）",
    st_starting: "启动中", st_connecting: "连接中", st_running: "运行中", st_degraded: "降级",
    st_stalled: "画面停滞", st_reconnecting: "重连中", st_stopped: "已停止", st_ended: "已结束",
    st_error: "故障", st_offline: "离线", legend_warn: "降级/重连", legend_bad: "离线/故障",
    red_light_violation: "机动车闯红灯", pedestrian_red_light: "行人闯红灯", vehicle_pass: "过车",
    non_motor_pass: "非机动车", person_seen: "行人", face_capture: "人脸抓拍",
    traffic_flow: "交通流量", stream_health: "流状态",
    c_blue: "蓝", c_yellow: "黄", c_green: "绿", c_white: "白", c_black: "黑", c_grey: "灰",
    c_red: "红", c_orange: "橙", c_brown: "棕", c_purple: "紫", c_cyan: "青", c_pink: "粉",
    map_none: "没有配置经纬度（geo）的摄像机", map_plain: "未配置地图瓦片服务：按经纬度绘制示意图（离线）",
    map_tiles: "地图瓦片：{url}", open_tile: "查看画面", open_events: "查看事件", lat: "纬度", lon: "经度",
    event_id: "事件编号", lane: "车道", code: "违法代码", location: "地点", confidence: "置信度",
    open_review: "打开审核", seconds: "秒", age_unknown: "—", stale: "设备状态已 {n} 秒未更新",
  },
  en: {
    tab_live: "Live", tab_events: "Events", tab_map: "Map", tab_console: "Review console",
    login_title: "Live watch login", token: "API token", login: "Log in", console_login: "or log in at the review console",
    login_failed: "Invalid token, or too many attempts", no_cameras: "No cameras", alerts: "Alerts",
    ack_all: "Acknowledge all", alert_opts: "Alert settings", alert_always: "Violations always alert; also:",
    sound: "Sound", no_alerts: "No unacknowledged alerts", ack: "Acknowledge", camera: "Camera",
    type: "Type", plate: "Plate", plate_color: "Plate colour", vehicle_color: "Body colour",
    since: "From", until: "To", search: "Search", all: "All", thumb: "Image", time: "Time",
    class: "Class", speed: "Speed", coat_color: "Coat colour", trousers_color: "Trousers colour",
    plate_status: "Plate read", face_quality: "Face quality", direction: "Direction", more: "Load more",
    ps_read: "read", ps_unreadable: "unreadable", ps_no_plate_visible: "no plate visible",
    ps_plate_out_of_view: "plate end out of view or covered",
    ps_plate_not_found: "no plate found (cannot tell if it has one)",
    ps_too_few_reads: "too few reads", ps_reads_disagree: "reads disagree", ps_not_read: "not read",
    color_status: "Colours", cs_monochrome: "not stated (monochrome picture: camera in infrared night mode)",
    "d_up": "up (in picture)", "d_up-right": "up-right (in picture)", "d_right": "right (in picture)",
    "d_down-right": "down-right (in picture)", "d_down": "down (in picture)", "d_down-left": "down-left (in picture)",
    "d_left": "left (in picture)", "d_up-left": "up-left (in picture)", close: "Close", shown: "{n} shown (newest first)",
    shown_end: "{n} in all (newest first, end reached)", new_events: "{n} new events: click to refresh",
    new_events_more: "{n}+ new events: click to refresh", empty: "Nothing here",
    feed_on: "● Live", feed_off: "○ Feed lost, reconnecting…", fps: "fps", frame_age: "Frame age",
    no_picture: "No picture yet", picture_event: "latest event picture", reconnects: "{n} reconnects",
    disabled: "Disabled", signal_problem: "Signal fault",
    camera_faults: "{n} cameras need attention", no_reason: "no reason reported", detail_admins: "the source reported a problem (details for admins)",
    st_starting: "Starting", st_connecting: "Connecting", st_running: "Running", st_degraded: "Degraded",
    st_stalled: "Stalled", st_reconnecting: "Reconnecting", st_stopped: "Stopped", st_ended: "Ended",
    st_error: "Fault", st_offline: "Offline", legend_warn: "Degraded/reconnecting", legend_bad: "Offline/fault",
    red_light_violation: "Red light (vehicle)", pedestrian_red_light: "Red light (pedestrian)",
    vehicle_pass: "Vehicle", non_motor_pass: "Non-motor", person_seen: "Person",
    face_capture: "Face capture", traffic_flow: "Traffic flow", stream_health: "Stream",
    c_blue: "blue", c_yellow: "yellow", c_green: "green", c_white: "white", c_black: "black", c_grey: "grey",
    c_red: "red", c_orange: "orange", c_brown: "brown", c_purple: "purple", c_cyan: "cyan", c_pink: "pink",
    map_none: "No camera has a map position (geo)", map_plain: "No tile server configured: cameras drawn by latitude/longitude (offline)",
    map_tiles: "Map tiles: {url}", open_tile: "Show picture", open_events: "Show events", lat: "Lat", lon: "Lon",
    event_id: "Event id", lane: "Lane", code: "Code", location: "Location", confidence: "Confidence",
    open_review: "Open for review", seconds: "s", age_unknown: "—", stale: "States not updated for {n} s",
  },
};

const S = {
  token: sessionStorage.getItem("se_token"),
  lang: localStorage.getItem("se_lang") || "zh",
  cameras: new Map(),
  config: null,
  alerts: store.get("se_watch_alerts", []),
  acked: new Set(store.get("se_watch_acked", [])),
  kinds: new Set(store.get("se_watch_kinds", [])),
  sound: store.get("se_watch_sound", false),
  feedAbort: null,
  timers: [],
  evCursor: null,
  evHigh: null,
  evRows: 0,
  evGen: 0,
  blobs: new Map(),
  camerasAt: 0,
  map: null,
  audio: null,
};
const $ = (sel) => document.querySelector(sel);
const t = (key, n) => String((L[S.lang] || L.zh)[key] || L.zh[key] || key).replace("{n}", n);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = String(text);
  return e;
};

// Beijing time (UTC+8), as on the evidence overlays.
function bjTime(ms) { return new Date(ms + 8 * 3600 * 1000).toISOString().replace("T", " ").slice(0, 19); }
function evTime(ev) { return ev.time_ms || (ev.violation && ev.violation.time_ms) || ev.first_seen_ms; }
function isViolation(ev) { return !!ev.violation || VIOLATION_TYPES.includes(ev.type); }

function camName(id) {
  const c = S.cameras.get(id);
  if (!c) return id;
  return c.name && c.name !== "camera" ? c.name : (c.location || id);
}

function applyLang() {
  document.querySelectorAll("[data-t]").forEach((e) => { e.textContent = t(e.dataset.t); });
  document.documentElement.lang = S.lang === "zh" ? "zh-CN" : "en";
  $("#w-lang").textContent = S.lang === "zh" ? "EN" : "中文";
}

class ApiError extends Error { constructor(status, msg) { super(msg); this.status = status; } }

async function api(path) {
  const r = await fetch(API + path, { headers: { Authorization: `Bearer ${S.token}` } });
  if (r.status === 401) { logout(); throw new ApiError(401, "unauthorized"); }
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, body && body.detail ? JSON.stringify(body.detail) : r.statusText);
  return body;
}

// An image behind the bearer token, as a blob: URL kept per slot (the previous one is freed).
async function authImage(slot, path) {
  const r = await fetch(API + path, { headers: { Authorization: `Bearer ${S.token}` }, cache: "no-store" });
  if (!r.ok) return null;
  const url = URL.createObjectURL(await r.blob());
  const old = S.blobs.get(slot);
  if (old) URL.revokeObjectURL(old);
  S.blobs.set(slot, url);
  return { url, source: r.headers.get("X-Frame-Source"), timeMs: Number(r.headers.get("X-Frame-Time-Ms")) || null };
}

// --- views ------------------------------------------------------------------------------------

function show(view) {
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== `v-${view}`; });
  document.querySelectorAll("#w-nav a").forEach((a) => a.classList.toggle("active", a.getAttribute("href") === `#${view}`));
}

function route() {
  if (!S.token) { show("login"); return; }
  const [view, arg] = (location.hash.replace(/^#/, "") || "live").split("/");
  if (view === "events") { show("events"); if (arg) setFilterCamera(decodeURIComponent(arg)); else if (!S.evRows) loadEvents(); }
  else if (view === "map") { show("map"); drawMap(); }
  else { show("live"); if (arg) focusTile(decodeURIComponent(arg)); }
}

function logout() {
  S.token = null;
  sessionStorage.removeItem("se_token");
  if (S.feedAbort) S.feedAbort.abort();
  S.timers.forEach(clearInterval); S.timers = [];
  $("#w-nav").hidden = $("#w-feed").hidden = true;
  show("login");
}

async function login(token) {
  const r = await fetch(`${API}/auth/login`, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
  if (!r.ok) throw new ApiError(r.status, t("login_failed"));
  S.token = token;
  sessionStorage.setItem("se_token", token);
}

async function enter() {
  await api("/auth/me");
  $("#w-nav").hidden = $("#w-feed").hidden = false;
  try { S.config = await api("/console/config"); } catch (e) { if (e.status === 401) throw e; S.config = {}; }
  await refreshCameras();
  fillEventFilters();
  renderAlerts();
  startFeed();
  S.timers.push(setInterval(() => refreshCameras().catch(() => {}), HEALTH_MS));
  S.timers.push(setInterval(refreshPictures, TILE_MS));
  S.timers.push(setInterval(checkNewEvents, NEW_MS));
  refreshPictures();
  route();
}

// --- camera tiles -----------------------------------------------------------------------------

const STATE_CLASS = {
  running: "st-ok", degraded: "st-warn", stalled: "st-warn", reconnecting: "st-warn",
  connecting: "st-warn", starting: "st-warn", error: "st-bad", offline: "st-bad", stopped: "st-bad", ended: "st-bad",
};
function stateClass(c) { return c.enabled ? STATE_CLASS[c.state] || "st-bad" : "st-off"; }
function stateWords(c) { return c.enabled ? t(`st_${c.state}`) : t("disabled"); }
function fps(v) { return `${Number(v || 0).toFixed(1)} fps`; }
function age(s) { return s == null ? t("age_unknown") : `${Number(s).toFixed(1)} ${t("seconds")}`; }

async function refreshCameras() {
  const body = await api("/watch/cameras");
  S.camerasAt = Date.now();
  S.cameras = new Map(body.items.map((c) => [c.id, c]));
  renderTiles();
  if (!$("#v-map").hidden) updateMarkers();
}

// Only tiles on screen fetch pictures (a wall of many cameras scrolls).
const tileSeen = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
  for (const en of entries) en.target.dataset.visible = en.isIntersecting ? "1" : "";
  if (entries.some((en) => en.isIntersecting && !en.target.dataset.pic)) refreshPictures();
}) : null;

function tileFor(c) {
  let tile = document.querySelector(`.tile[data-camera="${CSS.escape(c.id)}"]`);
  if (tile) return tile;
  tile = el("article", "tile");
  tile.dataset.camera = c.id;
  const pic = el("div", "pic");
  const img = el("img"); img.alt = ""; img.hidden = true;
  const none = el("span", "nopic", t("no_picture"));
  pic.append(img, none, el("span", "src"));
  const head = el("div", "tile-head");
  head.append(el("b", "name"), el("span", "state"));
  const foot = el("div", "tile-foot");
  foot.append(el("span", "loc"), el("span", "fps mono"), el("span", "age mono"));
  tile.append(pic, head, el("div", "why"), foot);
  tile.addEventListener("click", () => { location.hash = `#events/${encodeURIComponent(c.id)}`; });
  if (tileSeen) tileSeen.observe(tile); else tile.dataset.visible = "1";
  return tile;
}

function renderTiles() {
  const box = $("#tiles");
  const seen = new Set();
  for (const c of S.cameras.values()) {
    const tile = tileFor(c);
    seen.add(c.id);
    tile.querySelector(".name").textContent = camName(c.id);
    tile.querySelector(".name").title = c.id;
    const st = tile.querySelector(".state");
    st.textContent = stateWords(c);
    st.className = `state ${stateClass(c)}`;
    tile.dataset.state = c.state;
    const why = tile.querySelector(".why");
    why.textContent = troubleText(c);
    why.title = (c.problems || []).join("\n");
    tile.querySelector(".loc").textContent = c.location && c.location !== c.name ? c.location : "";
    tile.querySelector(".fps").textContent = fps(c.analysed_fps);
    tile.querySelector(".fps").title = `${t("fps")}: ${Number(c.input_fps).toFixed(1)} / ${Number(c.analysed_fps).toFixed(1)}`;
    tile.querySelector(".age").textContent = `${t("frame_age")} ${age(c.last_frame_age_s)}`;
    if (!tile.isConnected) box.appendChild(tile);
  }
  box.querySelectorAll(".tile").forEach((tile) => { if (!seen.has(tile.dataset.camera)) tile.remove(); });
  box.dataset.count = String(S.cameras.size);
  $("#tiles-empty").hidden = S.cameras.size > 0;
  renderFaults();
}

// A camera needs attention when it is enabled and not running normally, or a signal head or
// group has a problem (no violation is charged on it then).
// What the API gives a non-admin instead of the source's own error text (routes/streams.py).
const GENERIC_DETAIL = "the source reported a problem (details for admins)";
function detailText(d) { return d === GENERIC_DETAIL ? t("detail_admins") : d; }
function inTrouble(c) { return c.enabled && (stateClass(c) !== "st-ok" || c.signal_problems > 0); }
function troubleText(c) {
  if (!inTrouble(c)) return "";
  const p = c.problems || [];
  const signal = c.signal_problems > 0 && stateClass(c) === "st-ok" ? `${t("signal_problem")}: ` : "";
  return p.length ? signal + detailText(p[0]) : (stateClass(c) === "st-ok" ? t("signal_problem") : t("no_reason"));
}

// Camera faults sit above the event alerts: an empty alert list must not read as "all well"
// while cameras are down.
function renderFaults() {
  const ul = $("#faults");
  ul.textContent = "";
  const bad = [...S.cameras.values()].filter(inTrouble);
  for (const c of bad) {
    const li = el("li", `fault ${stateClass(c)}`);
    li.dataset.camera = c.id;
    const a = el("a", null);
    a.href = `#live/${encodeURIComponent(c.id)}`;
    a.append(el("b", null, camName(c.id)), el("span", `state ${stateClass(c)}`, c.signal_problems > 0 && stateClass(c) === "st-ok" ? t("signal_problem") : stateWords(c)),
      el("span", "fault-why", troubleText(c)));
    a.title = (c.problems || []).join("\n");
    li.append(a);
    ul.appendChild(li);
  }
  $("#faults-head").hidden = !bad.length;
  $("#faults-head").textContent = t("camera_faults", bad.length);
}

const inflight = new Set();
function refreshPictures() {
  if ($("#v-live").hidden || document.hidden) return;
  for (const c of S.cameras.values()) {
    if (inflight.has(c.id)) continue;
    const tile = document.querySelector(`.tile[data-camera="${CSS.escape(c.id)}"]`);
    if (!tile || tile.dataset.visible !== "1") continue;
    if (tile.dataset.pic && c.state !== "running" && c.state !== "degraded") continue;
    inflight.add(c.id);
    authImage(`tile:${c.id}`, `/watch/cameras/${encodeURIComponent(c.id)}/frame.jpg`)
      .then((got) => {
        if (!got) return;
        const img = tile.querySelector("img");
        img.src = got.url; img.hidden = false;
        tile.dataset.pic = got.source || "live";
        tile.querySelector(".nopic").hidden = true;
        tile.querySelector(".src").textContent = got.source === "event" && got.timeMs ? `${t("picture_event")} ${bjTime(got.timeMs).slice(5)}` : "";
      })
      .catch(() => {})
      .finally(() => inflight.delete(c.id));
  }
}

function focusTile(id) {
  const tile = document.querySelector(`.tile[data-camera="${CSS.escape(id)}"]`);
  if (!tile) return;
  tile.scrollIntoView({ block: "nearest" });
  tile.classList.add("flash");
  setTimeout(() => tile.classList.remove("flash"), 2500);
}

// --- alerts -----------------------------------------------------------------------------------

function alertOf(ev, seq) {
  return {
    id: ev.event_id, seq: Number(seq) || 0, type: ev.type, camera: ev.camera_id, time: evTime(ev),
    plate: (ev.plate && ev.plate.text) || "", violation: isViolation(ev),
    code: ev.violation ? ev.violation.code : "", lane: ev.violation ? ev.violation.lane_no : null,
  };
}

function wantsAlert(ev) { return isViolation(ev) || S.kinds.has(ev.type); }

function raise(ev, seq) {
  if (!wantsAlert(ev) || S.acked.has(ev.event_id) || S.alerts.some((a) => a.id === ev.event_id)) return;
  S.alerts.unshift(alertOf(ev, seq));
  S.alerts = S.alerts.slice(0, ALERT_KEEP);
  store.set("se_watch_alerts", S.alerts);
  renderAlerts();
  if (S.sound) beep(isViolation(ev));
  const tile = document.querySelector(`.tile[data-camera="${CSS.escape(ev.camera_id)}"]`);
  if (tile) { tile.classList.add("alarm"); setTimeout(() => tile.classList.remove("alarm"), 4000); }
}

function acknowledge(ids) {
  for (const id of ids) S.acked.add(id);
  S.alerts = S.alerts.filter((a) => !S.acked.has(a.id));
  store.set("se_watch_alerts", S.alerts);
  store.set("se_watch_acked", [...S.acked].slice(-ACK_KEEP));
  renderAlerts();
}

function alertHref(a) { return a.violation ? `./#/violation/${encodeURIComponent(a.id)}` : null; }

function renderAlerts() {
  const ol = $("#alerts");
  ol.textContent = "";
  for (const a of S.alerts) {
    const li = el("li", a.violation ? "alert viol" : "alert");
    li.dataset.id = a.id;
    const open = el("a", "alert-body");
    const href = alertHref(a);
    if (href) open.href = href; else { open.href = "#"; open.addEventListener("click", (e) => { e.preventDefault(); openDetail(a.id); }); }
    const type = el("b", "alert-type", t(a.type));
    if (a.code) type.append(el("small", "muted", ` ${t("code")} ${a.code}`));
    open.append(type,
      el("span", "alert-time mono", bjTime(a.time).slice(5)),
      el("span", "alert-cam", camName(a.camera)));
    if (a.plate) open.append(el("span", "alert-plate plate", a.plate));
    const ack = el("button", "ack", t("ack"));
    ack.type = "button";
    ack.addEventListener("click", () => acknowledge([a.id]));
    li.append(open, ack);
    ol.appendChild(li);
  }
  $("#alert-count").textContent = String(S.alerts.length);
  $("#alert-count").classList.toggle("hot", S.alerts.length > 0);
  $("#alerts-empty").hidden = S.alerts.length > 0;
  $("#ack-all").disabled = !S.alerts.length;
  document.title = `${S.alerts.length ? `(${S.alerts.length}) ` : ""}sharpeyes 实时监看`;
}

// A short two-tone beep (WebAudio; off by default, switched on by the operator).
function beep(urgent) {
  try {
    S.audio = S.audio || new AudioContext();
    const ctx = S.audio;
    [0, 0.25].forEach((at, i) => {
      const osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.frequency.value = urgent ? (i ? 660 : 880) : 520;
      gain.gain.setValueAtTime(0.15, ctx.currentTime + at);
      gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + at + 0.2);
      osc.connect(gain).connect(ctx.destination);
      osc.start(ctx.currentTime + at); osc.stop(ctx.currentTime + at + 0.22);
    });
  } catch (e) { /* no audio device */ }
}

// --- live feed (fetch-based SSE: the token goes in a header; resumes from the last id) --------

function feedState(on) {
  const f = $("#w-feed");
  f.textContent = t(on ? "feed_on" : "feed_off");
  f.className = on ? "feed on" : "feed off";
}

function parseSse(chunk, state) {
  state.buf += chunk;
  let idx;
  while ((idx = state.buf.indexOf("\n\n")) >= 0) {
    const block = state.buf.slice(0, idx);
    state.buf = state.buf.slice(idx + 2);
    const msg = { data: [] };
    for (const line of block.split("\n")) {
      const start = /^: connected after seq (\d+)/.exec(line);  // where this session starts
      if (start && store.get("se_watch_seq", null) == null) store.set("se_watch_seq", Number(start[1]));
      if (!line || line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const k = i < 0 ? line : line.slice(0, i);
      const v = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
      if (k === "data") msg.data.push(v); else msg[k] = v;
    }
    if (msg.data.length) {
      try { raise(JSON.parse(msg.data.join("\n")), msg.id); } catch (e) { console.warn(e); }
    }
    if (msg.id) store.set("se_watch_seq", Number(msg.id));
  }
}

function feedQuery() {
  const q = new URLSearchParams();
  for (const ty of [...VIOLATION_TYPES, ...S.kinds]) q.append("type", ty);
  return q;
}

async function startFeed() {
  if (S.feedAbort) S.feedAbort.abort();
  const ctl = new AbortController();
  S.feedAbort = ctl;
  while (!ctl.signal.aborted && S.token) {
    try {
      const headers = { Authorization: `Bearer ${S.token}` };
      const last = store.get("se_watch_seq", null);
      if (last != null) headers["Last-Event-ID"] = String(last);
      const r = await fetch(`${API}/feed?${feedQuery()}`, { headers, signal: ctl.signal });
      if (r.status === 401) { logout(); return; }
      if (!r.ok) throw new Error(`feed ${r.status}`);
      feedState(true);
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
    feedState(false);
    await new Promise((res) => setTimeout(res, 2000));
  }
}

// --- events page ------------------------------------------------------------------------------

function option(sel, value, text) { const o = el("option", null, text); o.value = value; sel.appendChild(o); }

function fillEventFilters() {
  const cam = $("#ev-camera");
  cam.querySelectorAll("option:not([value=''])").forEach((o) => o.remove());
  for (const c of S.cameras.values()) option(cam, c.id, camName(c.id));
  const ty = $("#ev-type");
  if (ty.options.length <= 1) for (const v of EVENT_TYPES) option(ty, v, t(v));
  const vc = $("#ev-vcolor");
  if (vc.options.length <= 1) for (const v of BODY_COLORS) option(vc, v, t(`c_${v}`));
}

function setFilterCamera(id) {
  $("#ev-camera").value = id;
  loadEvents();
}

function eventParams() {
  const f = new FormData($("#ev-filters"));
  const q = new URLSearchParams();
  for (const k of ["camera", "type", "plate_color", "vehicle_color"]) {
    const v = String(f.get(k) || "").trim();
    if (v) q.set(k, v);
  }
  const plate = String(f.get("plate") || "").trim().toUpperCase();
  if (plate) q.set(/[?*]/.test(plate) ? "plate_pattern" : "plate_contains", plate);
  for (const k of ["since", "until"]) {
    const v = String(f.get(k) || "");
    if (v) q.set(k, v.length === 16 ? `${v}:00` : v);  // local time of the service's zone
  }
  return q;
}

const thumbs = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
  for (const en of entries) if (en.isIntersecting) { thumbs.unobserve(en.target); loadThumb(en.target.querySelector("img")); }
}, { rootMargin: "200px" }) : null;

async function loadThumb(img) {
  for (const name of ["crop.jpg", "composite.jpg"]) {
    try {
      const got = await authImage(`thumb:${img.dataset.id}`, `/events/${encodeURIComponent(img.dataset.id)}/evidence/${name}`);
      if (got) { img.src = got.url; img.hidden = false; return; }
    } catch (e) { return; }
  }
}

// Model class names in the operator's words (others as the model names them).
const CLASS_ZH = { car: "小型汽车", bus: "大型客车", truck: "货车", person: "行人", bicycle: "自行车",
  motorcycle: "摩托车/电动车", tricycle: "三轮车" };
function className(name) { return S.lang === "zh" && CLASS_ZH[name] ? CLASS_ZH[name] : name; }

function td(tr, text, cls) { const c = el("td", cls, text == null || text === "" ? "—" : text); tr.appendChild(c); return c; }

function eventRow(ev) {
  const tr = el("tr");
  tr.dataset.id = ev.event_id;
  tr.dataset.time = String(evTime(ev));
  const cell = el("td", "thumb");
  const img = el("img"); img.alt = ""; img.hidden = true; img.dataset.id = ev.event_id;
  cell.appendChild(img);
  tr.appendChild(cell);
  if (thumbs) thumbs.observe(cell); else loadThumb(img);  // a hidden img never intersects
  td(tr, bjTime(evTime(ev)), "mono");
  td(tr, camName(ev.camera_id)).title = ev.camera_id;
  td(tr, t(ev.type), isViolation(ev) ? "viol" : "");
  td(tr, ev.plate && ev.plate.text, "plate");
  td(tr, ev.plate && ev.plate.color ? t(`c_${ev.plate.color}`) : "");
  td(tr, className(ev.class_name));
  tr.addEventListener("click", () => {
    if (isViolation(ev)) location.href = `./#/violation/${encodeURIComponent(ev.event_id)}`;
    else openDetail(ev.event_id);
  });
  return tr;
}

async function loadEvents(more = false) {
  const gen = ++S.evGen;
  const q = eventParams();
  q.set("limit", String(PAGE));
  if (more && S.evCursor) q.set("cursor", S.evCursor);
  $("#ev-error").textContent = "";
  $("#ev-table").setAttribute("aria-busy", "true");
  let body;
  try { body = await api(`/events?${q}`); }
  catch (e) { $("#ev-error").textContent = e.message; return; }
  finally { if (gen === S.evGen) $("#ev-table").setAttribute("aria-busy", "false"); }
  if (gen !== S.evGen) return;
  const tbody = $("#ev-table tbody");
  if (!more) {
    tbody.textContent = "";
    S.evRows = 0;
    S.evHigh = body.next_after;  // newest first: the high-water mark read before the page
    $("#ev-new").hidden = true;
    for (const k of [...S.blobs.keys()]) if (k.startsWith("thumb:")) { URL.revokeObjectURL(S.blobs.get(k)); S.blobs.delete(k); }
  }
  for (const ev of body.items) tbody.appendChild(eventRow(ev));
  S.evRows += body.items.length;
  if (!S.evRows) { const tr = el("tr"); td(tr, t("empty")).colSpan = 7; tbody.appendChild(tr); }
  S.evCursor = body.next_cursor;
  $("#ev-more").hidden = !S.evCursor;
  $("#ev-count").textContent = t(S.evCursor ? "shown" : "shown_end", S.evRows);
}

// Events stored since the page was loaded (the ingest cursor): offered, not pushed into the list.
async function checkNewEvents() {
  if ($("#v-events").hidden || S.evHigh == null) return;
  const q = eventParams();
  q.set("after", String(S.evHigh));
  q.set("limit", String(PAGE));
  try {
    const body = await api(`/events?${q}`);
    const n = body.items.length;
    const btn = $("#ev-new");
    btn.hidden = n === 0;
    btn.textContent = t(n >= PAGE ? "new_events_more" : "new_events", n);
  } catch (e) { /* next time */ }
}

// --- event detail (events that have no review page) -------------------------------------------

async function openDetail(id) {
  const ev = await api(`/events/${encodeURIComponent(id)}`);
  const files = Object.fromEntries((ev.evidence || []).map((f) => [f.name, f.url]));
  const img = $("#detail-img");
  img.src = files["composite.jpg"] || files["crop.jpg"] || "";
  img.hidden = !img.src;
  const meta = $("#detail-meta");
  meta.textContent = "";
  const a = ev.attributes || {};
  const colour = (c) => (c ? t(`c_${c}`) : null);
  const rows = [[t("time"), bjTime(evTime(ev))], [t("camera"), `${camName(ev.camera_id)} (${ev.camera_id})`],
    [t("type"), t(ev.type)], [t("plate"), ev.plate && ev.plate.text],
    [t("plate_color"), colour(ev.plate && ev.plate.color)], [t("plate_status"), a.plate_status && (L.zh[`ps_${a.plate_status}`] ? t(`ps_${a.plate_status}`) : a.plate_status)],
    [t("class"), className(ev.class_name)], [t("vehicle_color"), colour(a.vehicle_color)],
    [t("coat_color"), colour(a.coat_color)], [t("trousers_color"), colour(a.trousers_color)],
    [t("color_status"), a.color_status && (L.zh[`cs_${a.color_status}`] ? t(`cs_${a.color_status}`) : a.color_status)],
    [t("lane"), a.lane_no], [t("speed"), a.speed_kmh != null ? `${Number(a.speed_kmh).toFixed(1)} km/h` : null],
    [t("direction"), ev.direction && (L.zh[`d_${ev.direction}`] ? t(`d_${ev.direction}`) : ev.direction)], [t("face_quality"), a.face_quality != null ? Number(a.face_quality).toFixed(2) : null],
    [t("confidence"), ev.confidence != null ? Number(ev.confidence).toFixed(2) : null], [t("event_id"), ev.event_id]]
    .filter(([, v]) => v != null && v !== "");
  for (const [k, v] of rows) {
    const tr = el("tr");
    tr.append(el("th", null, k), el("td", null, v == null ? "—" : v));
    meta.appendChild(tr);
  }
  $("#detail").hidden = false;
}

// --- wiring -----------------------------------------------------------------------------------

// The clock, and a warning when the camera states shown are no longer refreshed (service down).
function tick() {
  $("#w-clock").textContent = `${bjTime(Date.now())} (UTC+8)`;
  const late = S.token && S.camerasAt ? (Date.now() - S.camerasAt) / 1000 : 0;
  const stale = late > (3 * HEALTH_MS) / 1000;
  $("#w-stale").hidden = !stale;
  if (stale) $("#w-stale").textContent = t("stale", Math.round(late));
  $("#tiles").classList.toggle("stale", stale);
}

$("#w-login").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("#w-login-error").textContent = "";
  try { await login($("#w-token").value.trim()); $("#w-token").value = ""; await enter(); }
  catch (err) { $("#w-login-error").textContent = t("login_failed"); }
});
$("#w-lang").addEventListener("click", () => {
  S.lang = S.lang === "zh" ? "en" : "zh";
  localStorage.setItem("se_lang", S.lang);
  applyLang();
  if (S.token) {
    renderTiles(); renderAlerts(); feedState(!$("#w-feed").classList.contains("off"));
    if (S.evRows) loadEvents();
    if (!$("#v-map").hidden) drawMap();
  }
});
$("#ack-all").addEventListener("click", () => acknowledge(S.alerts.map((a) => a.id)));
document.querySelectorAll(".alert-opts .kind").forEach((box) => {
  box.checked = S.kinds.has(box.value);
  box.addEventListener("change", () => {
    if (box.checked) S.kinds.add(box.value); else S.kinds.delete(box.value);
    store.set("se_watch_kinds", [...S.kinds]);
    if (S.token) startFeed();  // resumes from the last id with the new types
  });
});
$("#sound").checked = !!S.sound;
$("#sound").addEventListener("change", () => {
  S.sound = $("#sound").checked;
  store.set("se_watch_sound", S.sound);
  if (S.sound) beep(false);  // a user gesture: lets the page play sound later
});
$("#ev-filters").addEventListener("submit", (e) => { e.preventDefault(); loadEvents(); });
$("#ev-more").addEventListener("click", () => loadEvents(true));
$("#ev-new").addEventListener("click", () => loadEvents());
$("#detail-close").addEventListener("click", () => { $("#detail").hidden = true; });
$("#detail").addEventListener("click", (e) => { if (e.target.id === "detail") $("#detail").hidden = true; });
document.addEventListener("keydown", (e) => { if (e.key === "Escape") { $("#detail").hidden = true; closePopup(); } });
$("#zoom-in").addEventListener("click", () => zoomMap(1));
$("#zoom-out").addEventListener("click", () => zoomMap(-1));
window.addEventListener("hashchange", route);
window.addEventListener("resize", () => { if (!$("#v-map").hidden) drawMap(); });
document.addEventListener("visibilitychange", refreshPictures);

applyLang();
tick();
setInterval(tick, 1000);
if (S.token) enter().catch((e) => { if (e.status !== 401) console.error(e); logout(); });
else show("login");

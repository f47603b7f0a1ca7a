// sharpeyes review console: the evidence media — clip player (frame stepping at the clip's own
// frame rate, speed) and the zoom lightbox. Plain JS, loaded before app.js; uses its `$` and `S`
// when called.
"use strict";

// --- clip player: frame stepping at the clip's own frame rate, speed ----------------------------

// Frame rate from the MP4 header (faststart: moov at the front): video track's timescale and
// sample durations. The clip itself is played as stored (never re-encoded).
function mp4Fps(buf) {
  const b = new Uint8Array(buf);
  const dv = new DataView(buf);
  const find = (tag, from, to = b.length - 8) => {
    const c = [...tag].map((ch) => ch.charCodeAt(0));
    for (let i = Math.max(from, 4); i < to; i += 1) {
      if (b[i] === c[0] && b[i + 1] === c[1] && b[i + 2] === c[2] && b[i + 3] === c[3]) return i;
    }
    return -1;
  };
  let hdlr = find("hdlr", 0);
  while (hdlr >= 0 && find("vide", hdlr + 12, hdlr + 13) < 0) hdlr = find("hdlr", hdlr + 4);
  if (hdlr < 0) return null;
  let mdhd = -1;
  for (let i = find("mdhd", 0); i >= 0 && i < hdlr; i = find("mdhd", i + 4)) mdhd = i;
  const stts = find("stts", hdlr);
  if (mdhd < 0 || stts < 0) return null;
  const v1 = b[mdhd + 4] === 1;
  const timescale = dv.getUint32(mdhd + (v1 ? 24 : 16));
  const entries = dv.getUint32(stts + 8);
  let samples = 0, ticks = 0;
  for (let k = 0; k < entries && stts + 20 + k * 8 <= b.length; k += 1) {
    const n = dv.getUint32(stts + 12 + k * 8), d = dv.getUint32(stts + 16 + k * 8);
    samples += n; ticks += n * d;
  }
  return samples && ticks ? (samples * timescale) / ticks : null;
}

// A clip the browser cannot decode (H.265 from most Chinese cameras, where the browser has no
// H.265 decoder) is said so, with a download link; the evidence is never re-encoded.
function clipUnplayable(url) {
  const note = $("#clip-unplayable");
  note.hidden = !url;
  if (!url) return;
  $("#clip-download").href = url;
  $("#player").hidden = $("#clip").hidden = true;  // no black player, no frame stepping
}

function setClip(url) {
  const clip = $("#clip");
  $("#player").hidden = !url;
  clip.hidden = !url;
  if (!url) clipUnplayable(null);
  if (!url || clip.dataset.src === url) return;
  clipUnplayable(null);
  const abs = new URL(url, location.href).href;
  clip.onerror = () => {  // only this clip's own "cannot decode" (not a late error of the last one)
    const e = clip.error;
    if (e && (e.code === 3 || e.code === 4) && clip.currentSrc === abs) clipUnplayable(url);
  };
  clip.src = url;
  clip.dataset.src = url;
  clip.defaultPlaybackRate = clip.playbackRate = S.rate;
  S.fps = null;
  fetch(url, { headers: { Range: "bytes=0-262143" } })
    .then((r) => (r.ok ? r.arrayBuffer() : null))
    .then((buf) => { if (buf && clip.dataset.src === url) { S.fps = mp4Fps(buf); showPos(); } })
    .catch(() => {});
}

function showPos() {
  const v = $("#clip");
  const fps = S.fps || 25;
  const n = Math.round(v.currentTime * fps);
  const total = v.duration ? Math.round(v.duration * fps) : "?";
  $("#frame-pos").textContent = `${v.currentTime.toFixed(3)} s · ${t("frame")} ${n + 1}/${total}` +
    (S.fps ? ` · ${S.fps.toFixed(S.fps % 1 ? 2 : 0)} fps` : "");
}

function stepFrame(d) {
  const v = $("#clip");
  if (!v.src) return;
  v.pause();
  const fps = S.fps || 25;
  const last = v.duration ? Math.max(0, Math.round(v.duration * fps) - 1) : Infinity;
  const n = Math.max(0, Math.min(last, Math.round(v.currentTime * fps) + d));
  v.currentTime = n / fps + 1e-4;  // just past the frame's start: that frame is shown
}

function setSpeed(rate) {
  S.rate = Number(rate);
  const v = $("#clip");
  v.defaultPlaybackRate = v.playbackRate = S.rate;
  $("#speed").value = String(S.rate);
}

const SPEEDS = [0.25, 0.5, 1, 1.5, 2];
function stepSpeed(d) { const i = SPEEDS.indexOf(S.rate); setSpeed(SPEEDS[Math.max(0, Math.min(SPEEDS.length - 1, (i < 0 ? 2 : i) + d))]); }

// --- lightbox: click any evidence image; wheel zooms at the cursor, drag pans, Esc closes -------

const LB = { scale: 1, fit: 1, x: 0, y: 0, drag: null };

function lbApply() {
  $("#lb-img").style.transform = `translate(${LB.x}px, ${LB.y}px) scale(${LB.scale})`;
  $("#lb-scale").textContent = `${Math.round(LB.scale * 100)}%`;
}

function lbFit() {
  const img = $("#lb-img"), st = $("#lb-stage").getBoundingClientRect();
  if (!img.naturalWidth) return;
  LB.fit = LB.scale = Math.min(st.width / img.naturalWidth, st.height / img.naturalHeight);
  LB.x = (st.width - img.naturalWidth * LB.scale) / 2;
  LB.y = (st.height - img.naturalHeight * LB.scale) / 2;
  lbApply();
}

function lbZoom(factor, cx, cy) {
  const s = Math.max(LB.fit * 0.5, Math.min(Math.max(LB.fit, 1) * 16, LB.scale * factor));
  LB.x = cx - ((cx - LB.x) * s) / LB.scale;
  LB.y = cy - ((cy - LB.y) * s) / LB.scale;
  LB.scale = s;
  lbApply();
}

function openLightbox(src) {
  const img = $("#lb-img");
  $("#lightbox").hidden = false;
  img.onload = lbFit;
  img.src = src;
  if (img.complete) lbFit();
}

function closeLightbox() { $("#lightbox").hidden = true; LB.drag = null; }

// Keys while the lightbox is open: + / - zoom at the centre, 0 fits, Esc closes.
function lightboxKey(e) {
  const st = $("#lb-stage").getBoundingClientRect();
  const act = {
    Escape: closeLightbox, "0": lbFit,
    "+": () => lbZoom(1.25, st.width / 2, st.height / 2), "=": () => lbZoom(1.25, st.width / 2, st.height / 2),
    "-": () => lbZoom(0.8, st.width / 2, st.height / 2),
  }[e.key];
  if (act) { e.preventDefault(); act(); }
}
const lightboxOpen = () => !$("#lightbox").hidden;

function lbWire() {
  const stage = $("#lb-stage");
  stage.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = stage.getBoundingClientRect();
    lbZoom(e.deltaY < 0 ? 1.25 : 0.8, e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });
  stage.addEventListener("pointerdown", (e) => {
    LB.drag = { x: e.clientX - LB.x, y: e.clientY - LB.y };
    stage.setPointerCapture(e.pointerId);
    stage.classList.add("dragging");
  });
  stage.addEventListener("pointermove", (e) => {
    if (!LB.drag) return;
    LB.x = e.clientX - LB.drag.x; LB.y = e.clientY - LB.drag.y;
    lbApply();
  });
  const end = () => { LB.drag = null; stage.classList.remove("dragging"); };
  stage.addEventListener("pointerup", end);
  stage.addEventListener("pointercancel", end);
  stage.addEventListener("dblclick", lbFit);
  $("#lb-close").addEventListener("click", closeLightbox);
  document.querySelectorAll("img.zoomable").forEach((img) => {
    img.addEventListener("click", () => { if (img.src) openLightbox(img.src); });
  });
}

// --- overlay: the subject's box from its track, the stop line, each image's signal -------------
// Drawn on canvases over the clip and images 1–3; the media stay as stored (never re-encoded).
// Time base (record.json, pipeline/evidence/clip.py): the clip's first frame is stream time
// clip.start_pts_s, so a frame at media time m shows stream time start_pts_s + m — the timeline
// of the trajectory and of the images' pts. The box: the track's anchor (the calibration's
// anchor, bottom centre by default) interpolated between trajectory points, its size
// interpolated between the images' subject boxes; without a trajectory, the images' boxes
// themselves are interpolated. Images 1–3 already carry their burnt-in box: only the stop line
// is drawn over them.

const OV = {
  on: localStorage.getItem("se_overlay") !== "off",
  id: null, rec: null, track: [], sizes: [], frame: null, best: null,
  anchor: "bottom_center", lines: [], start: null, t: null,
};
const BOX_COLOR = "#00e5ff";
const LINE_COLOR = "#ffd400";

// The stop line(s) to draw, relative 0–1: the violation's approach, else every approach's.
function stopLines(cal, approach) {
  const all = (cal && cal.approaches) || [];
  const own = all.filter((a) => a.id === approach);
  return (own.length ? own : all).map((a) => a.stop_line);
}

function ovLoad(ev, recordUrl) {
  // same record (after a review, or the language switched): its chips and note said again
  if (OV.id === ev.event_id && OV.rec) { ovRecord(OV.rec); return; }
  OV.id = ev.event_id;
  OV.rec = null; OV.start = null; OV.sizes = [];
  OV.track = (ev.trajectory || []).slice().sort((a, b) => a.pts - b.pts);
  OV.frame = ev.box ? { w: ev.box.frame_w, h: ev.box.frame_h } : null;
  OV.best = ev.box ? { w: ev.box.x2 - ev.box.x1, h: ev.box.y2 - ev.box.y1 } : null;
  const cam = S.cameras && S.cameras.get(ev.camera_id);
  const cal = cam && cam.intersection;
  OV.anchor = (cal && cal.anchor) || "bottom_center";
  OV.lines = stopLines(cal, ev.violation && ev.violation.approach);
  sigChips([]);
  ovNote("");
  ovDrawAll();
  if (!recordUrl) return;
  fetch(recordUrl)
    .then((r) => (r.ok ? r.json() : null))
    .then((rec) => { if (rec && OV.id === ev.event_id) ovRecord(rec); })
    .catch(() => {});
}

function ovRecord(rec) {
  OV.rec = rec;
  const images = Array.isArray(rec.images) ? rec.images : [];
  OV.sizes = images.filter((im) => Array.isArray(im.subject_box)).map((im) => {
    const [x1, y1, x2, y2] = im.subject_box;
    return { pts: im.pts, box: im.subject_box, w: x2 - x1, h: y2 - y1 };
  }).sort((a, b) => a.pts - b.pts);
  if (!OV.frame && images.length) OV.frame = { w: images[0].width, h: images[0].height };
  OV.start = rec.clip && typeof rec.clip.start_pts_s === "number" ? rec.clip.start_pts_s : null;
  sigChips(images);
  if (OV.start == null) ovNote(t("no_timebase"));
  else if (!OV.track.length && OV.sizes.length) ovNote(t("no_track"));
  ovDrawAll();
}

function ovNote(text) { $("#ov-note").textContent = text; }

// Each image's own signal state, as the record stamps it: a coloured chip with its text.
function sigChips(images) {
  for (let i = 1; i <= 3; i += 1) {
    const chip = $(`#sig${i}`);
    const im = images.find((x) => Number(String(x.file || "").split(".")[0]) === i) || images[i - 1];
    const group = im && im.signal_group;
    chip.hidden = !group;
    if (!group) continue;
    const st = im.signal;
    const color = st ? st.color : "unknown";
    chip.className = `sig sig-${color}`;
    chip.dataset.color = color;
    const since = st && st.seconds_since_onset != null ? ` ${Number(st.seconds_since_onset).toFixed(1)}s` : "";
    chip.textContent = `${t("image_n").replace("{n}", i)} ${t(`sig_${color}`)}${since}`;
    chip.title = `${t("signal")} ${group}${st && st.fault ? ` · ${st.fault}` : ""}`;
  }
}

const lerp = (a, b, f) => a + (b - a) * f;

// Interpolate over points sorted by pts: [before, after, fraction]; null outside [first, last]
// widened by ``tol`` seconds.
function around(points, pts, tol) {
  if (!points.length || pts < points[0].pts - tol || pts > points[points.length - 1].pts + tol) return null;
  let j = points.findIndex((p) => p.pts >= pts);
  if (j < 0) j = points.length - 1;
  const b = points[j], a = points[Math.max(0, j - 1)];
  const f = b.pts > a.pts ? Math.max(0, Math.min(1, (pts - a.pts) / (b.pts - a.pts))) : 0;
  return [a, b, f];
}

// The subject's box at stream time ``pts`` in analysed-frame pixels, or null where untracked.
function boxAt(pts) {
  const tol = 0.5 / (S.fps || 25);
  const at = around(OV.track, pts, tol);
  if (at) {
    const [a, b, f] = at;
    const x = lerp(a.x, b.x, f), y = lerp(a.y, b.y, f);
    const sz = around(OV.sizes, pts, Infinity);
    const size = sz ? { w: lerp(sz[0].w, sz[1].w, sz[2]), h: lerp(sz[0].h, sz[1].h, sz[2]) } : OV.best;
    if (!size) return null;
    const y1 = OV.anchor === "center" ? y - size.h / 2 : OV.anchor === "top_center" ? y : y - size.h;
    return [x - size.w / 2, y1, x + size.w / 2, y1 + size.h];
  }
  if (OV.track.length) return null;
  const sz = around(OV.sizes, pts, tol);
  if (!sz) return null;
  const [a, b, f] = sz;
  return a.box.map((v, k) => lerp(v, b.box[k], f));
}

// The content rectangle of a media element drawn with object-fit: contain (letterboxed).
function contentRect(el, natW, natH) {
  const cw = el.clientWidth, ch = el.clientHeight;
  const s = Math.min(cw / natW, ch / natH);
  return { x: (cw - natW * s) / 2, y: (ch - natH * s) / 2, w: natW * s, h: natH * s };
}

// Size a canvas to its element (device pixels) and clear it; returns its 2D context.
function ovCanvas(canvas, el) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.round(el.clientWidth * dpr), h = Math.round(el.clientHeight * dpr);
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, el.clientWidth, el.clientHeight);
  return g;
}

function drawStopLines(g, r) {
  for (const line of OV.lines) {
    const [[ax, ay], [bx, by]] = line;
    const p = [r.x + ax * r.w, r.y + ay * r.h, r.x + bx * r.w, r.y + by * r.h];
    g.lineWidth = 4; g.strokeStyle = "rgba(0,0,0,.55)";
    g.beginPath(); g.moveTo(p[0], p[1]); g.lineTo(p[2], p[3]); g.stroke();
    g.lineWidth = 2; g.strokeStyle = LINE_COLOR;
    g.beginPath(); g.moveTo(p[0], p[1]); g.lineTo(p[2], p[3]); g.stroke();
    if (r.h >= 140) {
      g.font = "11px sans-serif"; g.fillStyle = LINE_COLOR;
      g.fillText(t("stop_line"), Math.min(p[0], p[2]), Math.min(p[1], p[3]) - 4);
    }
  }
}

// The clip's overlay at media time ``m`` (the presented frame's time).
function ovDrawClip(m) {
  const v = $("#clip"), canvas = $("#ov-clip");
  OV.t = m;
  const g = ovCanvas(canvas, v);
  canvas.dataset.box = "";
  canvas.dataset.pts = "";
  canvas.hidden = !OV.on;
  if (!OV.on || !v.videoWidth || m == null) return;
  const r = contentRect(v, v.videoWidth, v.videoHeight);
  canvas.dataset.rect = [r.x, r.y, r.w, r.h].map((x) => x.toFixed(2)).join(",");
  drawStopLines(g, r);
  if (OV.start == null || !OV.frame) return;
  const pts = OV.start + m;
  canvas.dataset.pts = pts.toFixed(4);
  const box = boxAt(pts);
  if (!box) return;
  const sx = r.w / OV.frame.w, sy = r.h / OV.frame.h;
  const [x1, y1, x2, y2] = [r.x + box[0] * sx, r.y + box[1] * sy, r.x + box[2] * sx, r.y + box[3] * sy];
  g.lineWidth = 2; g.strokeStyle = BOX_COLOR;
  g.strokeRect(x1, y1, x2 - x1, y2 - y1);
  canvas.dataset.box = [x1, y1, x2, y2].map((x) => x.toFixed(2)).join(",");
}

// The presented frame's media time when the clip is paused or seeked: the frame whose start is
// at or before currentTime (frame stepping sets currentTime just past a frame's start).
function shownTime() {
  const v = $("#clip");
  if (!S.fps) return v.currentTime;
  return Math.floor(v.currentTime * S.fps + 1e-3) / S.fps;
}

function ovDrawImages() {
  for (let i = 1; i <= 3; i += 1) {
    const img = $(`#img${i}`), canvas = $(`#ov${i}`);
    const g = ovCanvas(canvas, img);
    canvas.hidden = !OV.on || img.hidden;
    if (!OV.on || !img.naturalWidth) continue;
    drawStopLines(g, contentRect(img, img.naturalWidth, img.naturalHeight));
  }
}

function ovDrawAll() {
  ovDrawImages();
  const v = $("#clip");
  ovDrawClip(v.paused ? shownTime() : (OV.t == null ? v.currentTime : OV.t));
}

function ovToggle() {
  OV.on = !OV.on;
  localStorage.setItem("se_overlay", OV.on ? "on" : "off");
  $("#ov-toggle").setAttribute("aria-pressed", String(OV.on));
  ovDrawAll();
}

function ovWire() {
  const v = $("#clip");
  $("#ov-toggle").setAttribute("aria-pressed", String(OV.on));
  if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
    const onFrame = (_now, meta) => { ovDrawClip(meta.mediaTime); v.requestVideoFrameCallback(onFrame); };
    v.requestVideoFrameCallback(onFrame);
  } else {
    v.addEventListener("timeupdate", () => ovDrawClip(v.currentTime));
  }
  ["seeked", "pause", "loadeddata"].forEach((n) => v.addEventListener(n, () => ovDrawClip(shownTime())));
  for (let i = 1; i <= 3; i += 1) $(`#img${i}`).addEventListener("load", ovDrawImages);
  if ("ResizeObserver" in window) {
    const ro = new ResizeObserver(() => ovDrawAll());
    ro.observe(v);
    document.querySelectorAll(".thumbs img").forEach((img) => ro.observe(img));
  }
}

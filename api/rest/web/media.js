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

function setClip(url) {
  const clip = $("#clip");
  $("#player").hidden = !url;
  clip.hidden = !url;
  if (!url || clip.dataset.src === url) return;
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

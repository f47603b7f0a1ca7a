// sharpeyes live watch: the camera map (GIS 一张图). Cameras placed by their configured latitude
// and longitude, markers coloured by health, a popup on click. With a tile server configured
// (console map_tile_url) an <img> grid of z/x/y tiles in Web Mercator; without one (offline
// networks: there is no default) an SVG canvas scaled to the cameras' bounding box. Plain JS,
// loaded before watch.js; uses its `S`, `$`, `t`, `el` and helpers when called.
"use strict";

// --- camera map -------------------------------------------------------------------------------

const TILE = 256;
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs) { const e = document.createElementNS(SVG, tag); for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v); return e; }
function placed() { return [...S.cameras.values()].filter((c) => c.geo); }

// Web Mercator: world pixels at zoom z.
function project(lat, lon, z) {
  const n = TILE * 2 ** z;
  const s = Math.sin((Math.max(-85.0511, Math.min(85.0511, lat)) * Math.PI) / 180);
  return { x: ((lon + 180) / 360) * n, y: (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * n };
}

function bbox(cams) {
  const lats = cams.map((c) => c.geo.latitude), lons = cams.map((c) => c.geo.longitude);
  return { s: Math.min(...lats), n: Math.max(...lats), w: Math.min(...lons), e: Math.max(...lons) };
}

function drawMap() {
  const box = $("#map");
  const cams = placed();
  const url = S.config && S.config.map_tile_url;
  box.textContent = "";
  S.map = null;
  $("#map-zoom").hidden = !url || !cams.length;
  if (!cams.length) { $("#map-note").textContent = t("map_none"); return; }
  $("#map-note").textContent = url ? t("map_tiles").replace("{url}", url) : t("map_plain");
  if (url) tileMap(box, cams, url); else plainMap(box, cams);
}

function markerColor(c) { return { "st-ok": "#1e9e4a", "st-warn": "#e0a000", "st-bad": "#c62828", "st-off": "#8a96a3" }[stateClass(c)]; }

// No tile server: an SVG canvas scaled to the cameras' bounding box (x ~ longitude · cos(lat)).
function plainMap(box, cams) {
  const W = box.clientWidth || 1000, H = box.clientHeight || 600;
  const pad = Math.max(60, 0.12 * Math.min(W, H));
  const b = bbox(cams);
  const k = Math.cos(((b.s + b.n) / 2) * Math.PI / 180);
  const spanX = Math.max((b.e - b.w) * k, 1e-4), spanY = Math.max(b.n - b.s, 1e-4);
  const scale = Math.min((W - 2 * pad) / spanX, (H - 2 * pad) / spanY);
  const cx = (b.w + b.e) / 2, cy = (b.s + b.n) / 2;
  const at = (c) => ({ x: W / 2 + (c.geo.longitude - cx) * k * scale, y: H / 2 - (c.geo.latitude - cy) * scale });
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "plain" });
  const step = niceStep(Math.max(spanX / k, spanY) / 4);
  for (let lon = Math.ceil((cx - W / 2 / k / scale) / step) * step; lon < cx + W / 2 / k / scale; lon += step) {
    const x = W / 2 + (lon - cx) * k * scale;
    root.append(svg("line", { x1: x, y1: 0, x2: x, y2: H, class: "grid" }));
    const lab = svg("text", { x: x + 3, y: H - 6, class: "gridlab" }); lab.textContent = `${lon.toFixed(decimals(step))}°E`; root.append(lab);
  }
  for (let lat = Math.ceil((cy - H / 2 / scale) / step) * step; lat < cy + H / 2 / scale; lat += step) {
    const y = H / 2 - (lat - cy) * scale;
    root.append(svg("line", { x1: 0, y1: y, x2: W, y2: y, class: "grid" }));
    const lab = svg("text", { x: 4, y: y - 3, class: "gridlab" }); lab.textContent = `${lat.toFixed(decimals(step))}°N`; root.append(lab);
  }
  for (const c of cams) {
    const p = at(c);
    const g = svg("g", { class: "marker", "data-camera": c.id, transform: `translate(${p.x.toFixed(1)},${p.y.toFixed(1)})`, tabindex: "0" });
    g.append(svg("circle", { r: 11, fill: markerColor(c), stroke: "#fff", "stroke-width": 3 }));
    const lab = svg("text", { x: 15, y: 5, class: "mlab" }); lab.textContent = camName(c.id);
    g.append(lab);
    g.addEventListener("click", (e) => { e.stopPropagation(); popup(c.id, p.x, p.y); });
    root.append(g);
  }
  root.addEventListener("click", () => closePopup());
  box.append(root);
  S.map = { kind: "plain" };
}

function niceStep(x) { const p = 10 ** Math.floor(Math.log10(x)); return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= x) || 10 * p; }
function decimals(step) { return Math.max(0, -Math.floor(Math.log10(step))); }

// A tile server: an <img> grid of z/x/y tiles (Web Mercator), drag to pan, +/− to zoom.
function tileMap(box, cams, url) {
  const W = box.clientWidth || 1000, H = box.clientHeight || 600;
  const b = bbox(cams);
  let z = 18;
  while (z > 3) {
    const a = project(b.n, b.w, z), c = project(b.s, b.e, z);
    if (c.x - a.x < W - 120 && c.y - a.y < H - 120) break;
    z -= 1;
  }
  const mid = project((b.s + b.n) / 2, (b.w + b.e) / 2, z);
  S.map = { kind: "tiles", url, z, cx: mid.x, cy: mid.y, W, H };
  const layer = el("div", "tile-layer"), marks = el("div", "mark-layer");
  box.append(layer, marks);
  let drag = null;
  box.onpointerdown = (e) => { if (e.target.closest(".marker, .popup")) return; drag = { x: e.clientX, y: e.clientY }; box.setPointerCapture(e.pointerId); };
  box.onpointermove = (e) => { if (!drag) return; S.map.cx -= e.clientX - drag.x; S.map.cy -= e.clientY - drag.y; drag = { x: e.clientX, y: e.clientY }; paintTiles(); };
  box.onpointerup = () => { drag = null; };
  paintTiles();
}

// A tile server on another host is reached through the service (the page loads only from its own
// origin; the map server need not be reachable from the operator's browser).
function sameOrigin(url) { return url.startsWith("/") && !url.startsWith("//"); }
function loadProxiedTile(img, key) {
  authImage(`maptile:${key}`, `/watch/tiles/${key}`)
    .then((got) => { if (got && img.isConnected) img.src = got.url; })
    .catch(() => {});
}
function dropTile(img) {
  const slot = `maptile:${img.dataset.key}`;
  if (S.blobs.has(slot)) { URL.revokeObjectURL(S.blobs.get(slot)); S.blobs.delete(slot); }
  img.remove();
}

function zoomMap(d) {
  const m = S.map;
  if (!m || m.kind !== "tiles") return;
  const z = Math.max(1, Math.min(19, m.z + d));
  const f = 2 ** (z - m.z);
  m.cx *= f; m.cy *= f; m.z = z;
  paintTiles();
}

function paintTiles() {
  const m = S.map;
  const box = $("#map");
  const layer = box.querySelector(".tile-layer"), marks = box.querySelector(".mark-layer");
  const x0 = m.cx - m.W / 2, y0 = m.cy - m.H / 2, n = 2 ** m.z;
  const want = new Set();
  for (let ty = Math.floor(y0 / TILE); ty * TILE < y0 + m.H; ty += 1) {
    if (ty < 0 || ty >= n) continue;
    for (let tx = Math.floor(x0 / TILE); tx * TILE < x0 + m.W; tx += 1) {
      const wx = ((tx % n) + n) % n;
      const key = `${m.z}/${wx}/${ty}`;
      want.add(key);
      let img = layer.querySelector(`img[data-key="${key}"]`);
      if (!img) {
        img = el("img", "maptile"); img.alt = ""; img.draggable = false; img.dataset.key = key;
        if (sameOrigin(m.url)) img.src = m.url.replace("{z}", m.z).replace("{x}", wx).replace("{y}", ty);
        else loadProxiedTile(img, key);
        layer.appendChild(img);
      }
      img.style.left = `${tx * TILE - x0}px`; img.style.top = `${ty * TILE - y0}px`;
    }
  }
  layer.querySelectorAll("img").forEach((img) => { if (!want.has(img.dataset.key)) dropTile(img); });
  marks.textContent = "";
  for (const c of placed()) {
    const p = project(c.geo.latitude, c.geo.longitude, m.z);
    const x = p.x - x0, y = p.y - y0;
    const mk = el("button", "marker pin");
    mk.type = "button";
    mk.dataset.camera = c.id;
    mk.style.left = `${x}px`; mk.style.top = `${y}px`; mk.style.background = markerColor(c);
    mk.title = camName(c.id);
    mk.appendChild(el("span", "mlab", camName(c.id)));
    mk.addEventListener("click", (e) => { e.stopPropagation(); popup(c.id, x, y); });
    marks.appendChild(mk);
  }
}

function updateMarkers() {
  if (!S.map) { drawMap(); return; }
  if (S.map.kind === "tiles") { paintTiles(); return; }
  document.querySelectorAll("#map g.marker").forEach((g) => {
    const c = S.cameras.get(g.dataset.camera);
    if (c) g.querySelector("circle").setAttribute("fill", markerColor(c));
  });
}

function closePopup() { const p = document.querySelector("#map .popup"); if (p) p.remove(); }

function popup(id, x, y) {
  closePopup();
  const c = S.cameras.get(id);
  if (!c) return;
  const box = el("div", "popup");
  box.dataset.camera = id;
  box.append(el("b", null, camName(id)));
  if (c.location && c.location !== c.name) box.append(el("div", "muted", c.location));
  const st = el("div", `state ${stateClass(c)}`, stateWords(c));
  if (troubleText(c)) st.append(el("div", "why", troubleText(c)));
  box.append(st, el("div", "mono", `${fps(c.analysed_fps)} · ${t("frame_age")} ${age(c.last_frame_age_s)}`),
    el("div", "mono muted", `${t("lat")} ${c.geo.latitude.toFixed(5)} · ${t("lon")} ${c.geo.longitude.toFixed(5)}`));
  const links = el("div", "links");
  const a1 = el("a", null, t("open_tile")); a1.href = `#live/${encodeURIComponent(id)}`;
  const a2 = el("a", null, t("open_events")); a2.href = `#events/${encodeURIComponent(id)}`;
  links.append(a1, a2);
  box.append(links);
  box.addEventListener("click", (e) => e.stopPropagation());
  box.addEventListener("pointerdown", (e) => e.stopPropagation());
  const W = $("#map").clientWidth;
  const H = $("#map").clientHeight;
  box.style.left = `${Math.max(4, Math.min(W - 264, x + 14))}px`;
  $("#map").appendChild(box);
  box.style.top = `${Math.max(4, Math.min(H - box.offsetHeight - 4, y - 20))}px`;  // stays inside
}

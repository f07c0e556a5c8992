// Snowplow Navi live map: vector layers (SVG) on a plain background, optional raster tiles beneath, positions by
// server-sent events. No library: Web Mercator by hand, redrawn on every view change.
const config = JSON.parse(document.getElementById('snow-config').textContent);
const T = config.texts;
const SVG = 'http://www.w3.org/2000/svg';
const svg = document.getElementById('map');
const layers = {};
for (const name of ['tiles', 'edge', 'towns', 'trails', 'pick', 'plows']) {
  layers[name] = document.createElementNS(SVG, 'g');
  layers[name].setAttribute('data-layer', name);
  svg.appendChild(layers[name]);
}
const STATES = ['travelling', 'plowing', 'salting'];
const plows = new Map();   // id -> latest position
let trails = [];           // [{id, points: [[lon, lat, state, t]]}]
let towns = [];
let pick = null;
const timeFormat = new Intl.DateTimeFormat(config.lang === 'ja' ? 'ja-JP' : 'en-GB',
  { timeZone: 'Asia/Tokyo', year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });

// ---- projection: world pixels at zoom z (256 × 2^z wide) ----
const [west, south, east, north] = config.bbox;
const view = { x: 0, y: 0, z: 12 };
function project(lon, lat, z = view.z) {
  const s = 256 * 2 ** z;
  const r = lat * Math.PI / 180;
  return [(lon + 180) / 360 * s, (1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2 * s];
}
function unproject(x, y, z = view.z) {
  const s = 256 * 2 ** z;
  const lon = x / s * 360 - 180;
  const lat = Math.atan(Math.sinh(Math.PI * (1 - 2 * y / s))) * 180 / Math.PI;
  return [lon, lat];
}
function size() { const r = svg.getBoundingClientRect(); return [r.width || 360, r.height || 400]; }
function fit() {
  const [w, h] = size();
  for (let z = 16; z >= 3; z--) {
    const [x0, y0] = project(west, north, z), [x1, y1] = project(east, south, z);
    if (x1 - x0 <= w * 1.1 && y1 - y0 <= h * 1.1) { view.z = z; view.x = (x0 + x1) / 2; view.y = (y0 + y1) / 2; return; }
  }
}
function screen(lon, lat) { const [w, h] = size(); const [x, y] = project(lon, lat); return [x - view.x + w / 2, y - view.y + h / 2]; }
function el(name, attrs, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

// ---- layers ----
const tilesToggle = document.getElementById('tiles-toggle');
tilesToggle.checked = !!config.tileUrl && localStorage.getItem('machi.snow.tiles') !== 'off';
tilesToggle.disabled = !config.tileUrl;
tilesToggle.addEventListener('change', () => { localStorage.setItem('machi.snow.tiles', tilesToggle.checked ? 'on' : 'off'); draw(); });
function drawTiles() {
  layers.tiles.replaceChildren();
  document.getElementById('tile-attribution').textContent = tilesToggle.checked ? config.tileAttribution + ' ·' : '';
  if (!tilesToggle.checked) return;
  const z = Math.max(0, Math.min(18, Math.round(view.z)));
  const [w, h] = size();
  const x0 = Math.floor((view.x - w / 2) / 256), x1 = Math.floor((view.x + w / 2) / 256);
  const y0 = Math.floor((view.y - h / 2) / 256), y1 = Math.floor((view.y + h / 2) / 256);
  for (let tx = x0; tx <= x1; tx++) for (let ty = y0; ty <= y1; ty++) {
    if (ty < 0 || ty >= 2 ** z) continue;
    const url = config.tileUrl.replace('{z}', z).replace('{x}', ((tx % 2 ** z) + 2 ** z) % 2 ** z).replace('{y}', ty);
    el('image', { href: url, x: tx * 256 - view.x + w / 2, y: ty * 256 - view.y + h / 2, width: 257, height: 257, 'aria-hidden': 'true' }, layers.tiles);
  }
}
function drawEdge() {
  layers.edge.replaceChildren();
  const [x0, y0] = screen(west, north), [x1, y1] = screen(east, south);
  el('rect', { class: 'city-edge', x: x0, y: y0, width: x1 - x0, height: y1 - y0 }, layers.edge);
}
function drawTowns() {
  layers.towns.replaceChildren();
  const labels = view.z >= 15;
  for (const [name, koaza, lat, lon] of towns) {
    const [x, y] = screen(lon, lat);
    el('circle', { class: 'town', cx: x, cy: y, r: koaza ? 1.5 : 2.5 }, layers.towns);
    if (labels && !koaza) el('text', { class: 'town-label', x: x + 4, y: y - 4 }, layers.towns).textContent = name;
  }
}
function drawTrails() {
  layers.trails.replaceChildren();
  for (const trail of trails) {
    let run = [], state = null;
    const flush = () => { if (run.length > 1) el('polyline', { class: `trail ${STATES[state]}`, points: run.join(' '), 'data-trail': trail.id }, layers.trails); };
    for (const [lon, lat, s] of trail.points) {
      const p = screen(lon, lat).map(v => v.toFixed(1)).join(',');
      if (s !== state) { if (run.length) { run.push(p); flush(); } run = [p]; state = s; } else run.push(p);
    }
    flush();
  }
}
function plowLabel(p) {
  return `${p.name} — ${T[p.state]}${p.simulated ? ' (' + T.simulated + ')' : ''} · ${timeFormat.format(new Date(p.t))}`;
}
function drawPlow(p) {
  let g = layers.plows.querySelector(`[data-id="${CSS.escape(p.id)}"]`);
  if (!g) {
    g = el('g', { 'data-id': p.id, class: 'plow', role: 'img' }, layers.plows);
    el('title', {}, g);
    el('path', { class: 'plow-shape', d: 'M0,-9 L7,7 L0,3.5 L-7,7 Z' }, g);
  }
  const [x, y] = screen(p.lon, p.lat);
  g.setAttribute('transform', `translate(${x.toFixed(1)},${y.toFixed(1)}) rotate(${p.heading ?? 0})`);
  g.setAttribute('data-state', p.state);
  g.setAttribute('data-lat', p.lat);
  g.setAttribute('data-lon', p.lon);
  g.setAttribute('data-t', p.t);
  g.setAttribute('aria-label', plowLabel(p));
  g.querySelector('title').textContent = plowLabel(p);
  g.querySelector('path').setAttribute('class', `plow-shape ${p.state}`);
  const ring = g.querySelector('.sim-ring');
  if (p.simulated && !ring) el('circle', { class: 'sim-ring', r: 11 }, g);
  if (!p.simulated && ring) ring.remove();
}
function drawPick() {
  layers.pick.replaceChildren();
  if (!pick) return;
  const [x, y] = screen(pick[0], pick[1]);
  const metres = config.radius / (156543.03392 * Math.cos(pick[1] * Math.PI / 180) / 2 ** view.z);
  el('circle', { class: 'pick', cx: x, cy: y, r: Math.max(6, metres) }, layers.pick);
}
function draw() {
  drawTiles(); drawEdge(); drawTowns(); drawTrails(); drawPick();
  for (const p of plows.values()) drawPlow(p);
  document.getElementById('plow-count').textContent = plows.size;
}
let frame = 0;
function redraw() { if (!frame) frame = requestAnimationFrame(() => { frame = 0; draw(); }); }

// ---- live positions ----
const status = document.getElementById('live-status');
function connect() {
  const source = new EventSource('/snow/live');
  source.addEventListener('open', () => { status.textContent = T.live; });
  source.addEventListener('error', () => { status.textContent = T.reconnecting; });
  source.addEventListener('snapshot', e => {
    plows.clear();
    layers.plows.replaceChildren();
    for (const p of JSON.parse(e.data)) plows.set(p.id, p);
    draw();
  });
  source.addEventListener('positions', e => {
    const hours = Number(trailHours.value);
    for (const p of JSON.parse(e.data)) {
      const old = plows.get(p.id);
      if (old && old.t > p.t) continue;
      plows.set(p.id, p);
      drawPlow(p);
      if (hours > 0) {
        let trail = trails.find(t => t.id === p.id);
        if (!trail) trails.push(trail = { id: p.id, points: [] });
        trail.points.push([p.lon, p.lat, STATES.indexOf(p.state), Date.parse(p.t)]);
      }
    }
    document.getElementById('plow-count').textContent = plows.size;
    if (hours > 0) drawTrails();
  });
}

// ---- trails ----
const trailHours = document.getElementById('trail-hours');
trailHours.value = localStorage.getItem('machi.snow.trails') ?? '0';
async function loadTrails() {
  const hours = Number(trailHours.value);
  localStorage.setItem('machi.snow.trails', String(hours));
  trails = hours > 0 ? await (await fetch(`/snow/api/trails?hours=${hours}`)).json() : [];
  drawTrails();
}
trailHours.addEventListener('change', loadTrails);

// ---- "when was my street last plowed?" ----
const results = document.getElementById('search-results');
function showAnswers(answers, heading) {
  results.replaceChildren();
  if (heading) { const h = document.createElement('p'); h.textContent = heading; results.appendChild(h); }
  if (!answers.length) { const p = document.createElement('p'); p.textContent = T['no-match']; results.appendChild(p); return; }
  for (const a of answers) {
    const div = document.createElement('div');
    div.className = 'result';
    div.setAttribute('data-result', a.name);
    const name = document.createElement('button');
    name.type = 'button';
    name.textContent = a.name;
    name.addEventListener('click', () => { pick = [a.lon, a.lat]; [view.x, view.y] = project(a.lon, a.lat); redraw(); });
    const when = document.createElement('p');
    when.className = 'when';
    when.setAttribute('data-last-plowed', a.lastPlowed ?? '');
    when.textContent = `${T['last-plowed']}: ${a.lastPlowed ? timeFormat.format(new Date(a.lastPlowed)) : T.never}`;
    const note = document.createElement('p');
    note.className = 'hint';
    note.textContent = `(${T.within})`;
    div.append(name, when, note);
    results.appendChild(div);
  }
}
document.getElementById('search-form').addEventListener('submit', async e => {
  e.preventDefault();
  const q = document.getElementById('search-input').value.trim();
  if (!q) return;
  const answer = await (await fetch(`/snow/api/last-plowed?q=${encodeURIComponent(q)}`)).json();
  showAnswers(answer.results ?? []);
  if (answer.results?.length) { const a = answer.results[0]; pick = [a.lon, a.lat]; if (view.z < 15) view.z = 15; [view.x, view.y] = project(a.lon, a.lat); redraw(); }
});
async function askPoint(lon, lat) {
  pick = [lon, lat];
  redraw();
  const answer = await (await fetch(`/snow/api/last-plowed?lat=${lat.toFixed(6)}&lon=${lon.toFixed(6)}`)).json();
  showAnswers(answer.results ?? [], T.tapped);
}

// ---- pan, zoom, tap, keyboard ----
let drag = null;
svg.addEventListener('pointerdown', e => { drag = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y, moved: false }; svg.setPointerCapture(e.pointerId); });
svg.addEventListener('pointermove', e => {
  if (!drag) return;
  const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
  if (Math.abs(dx) + Math.abs(dy) > 4) drag.moved = true;
  if (drag.moved) { view.x = drag.vx - dx; view.y = drag.vy - dy; redraw(); }
});
svg.addEventListener('pointerup', e => {
  if (drag && !drag.moved) {
    const r = svg.getBoundingClientRect();
    const [w, h] = size();
    const [lon, lat] = unproject(view.x + (e.clientX - r.left) - w / 2, view.y + (e.clientY - r.top) - h / 2);
    askPoint(lon, lat);
  }
  drag = null;
});
function zoom(by, cx, cy) {
  const [w, h] = size();
  const nz = Math.max(8, Math.min(19, view.z + by));
  const f = 2 ** (nz - view.z);
  const ox = (cx ?? w / 2) - w / 2, oy = (cy ?? h / 2) - h / 2;
  view.x = (view.x + ox) * f - ox; view.y = (view.y + oy) * f - oy; view.z = nz;
  redraw();
}
svg.addEventListener('wheel', e => { e.preventDefault(); const r = svg.getBoundingClientRect(); zoom(e.deltaY < 0 ? 1 : -1, e.clientX - r.left, e.clientY - r.top); }, { passive: false });
document.getElementById('zoom-in').addEventListener('click', () => zoom(1));
document.getElementById('zoom-out').addEventListener('click', () => zoom(-1));
svg.addEventListener('keydown', e => {
  const step = 80;
  const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
  if (moves[e.key]) { view.x += moves[e.key][0]; view.y += moves[e.key][1]; redraw(); e.preventDefault(); }
  else if (e.key === '+' || e.key === '=') { zoom(1); e.preventDefault(); }
  else if (e.key === '-') { zoom(-1); e.preventDefault(); }
  else if (e.key === 'Enter') { const [w, h] = size(); const [lon, lat] = unproject(view.x, view.y); askPoint(lon, lat); e.preventDefault(); }
});
window.addEventListener('resize', redraw);

fit();
draw();
connect();
fetch('/snow/api/towns').then(r => r.json()).then(list => { towns = list; redraw(); });
if (Number(trailHours.value) > 0) loadTrails();

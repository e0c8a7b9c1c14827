// fproxy dashboard: polls GET /stats every second and redraws. Plain DOM and inline SVG, no library.
// While the daemon is unreachable it keeps polling and says so; it picks up again on its own.
'use strict';

const POLL_MS = 1000;
const $ = (sel, root = document) => root.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function fmtBytes(n) {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(n < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
}

function fmtRate(n) {
  return n >= 100 ? String(Math.round(n)) : n.toFixed(1);
}

/** A small line chart of `values` (oldest first), drawn as an SVG polyline. */
function sparkline(values, color, width = 240, height = 48) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('width', width);
  svg.setAttribute('height', height);
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const max = Math.max(1, ...values);
  const n = Math.max(2, values.length);
  const pts = values.map((v, i) => `${((i / (n - 1)) * width).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`);
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('fill', 'none');
  line.setAttribute('stroke', color);
  line.setAttribute('stroke-width', '1.5');
  line.setAttribute('points', pts.join(' '));
  svg.append(line);
  return svg;
}

function chart(label, values, color) {
  return el('div', { class: 'chart' }, el('div', { class: 'label', text: label }), sparkline(values, color));
}

function figure(value, label, testid) {
  return el('div', { class: 'figure' }, el('b', { text: value, 'data-figure': testid }), el('span', { text: label }));
}

function renderApp(a) {
  const history = a.history.slice(-60);
  const card = el('article', { class: 'app', 'data-app': a.name, 'data-state': a.state });
  card.append(
    el('h2', {}, a.name, el('span', { class: `badge ${a.state}`, text: a.state }), el('span', { class: 'meta', text: `generation ${a.generation} · ${a.pids.length}/${a.workers} workers · ports ${a.ports.join(', ')}` })),
    el('div', { class: 'figures' },
      figure(String(a.activeConnections), 'active connections', 'active'),
      figure(fmtRate(a.connPerSec), 'connections/s (10 s)', 'connps'),
      figure(`${fmtBytes(a.bytesInPerSec)}/s`, 'in (from clients)', 'inps'),
      figure(`${fmtBytes(a.bytesOutPerSec)}/s`, 'out (to clients)', 'outps'),
      figure(String(a.connections), 'connections closed', 'total'),
      figure(`${a.targetsUp}/${a.targetsTotal}`, 'targets up', 'targets-up')),
    el('div', { class: 'charts' },
      chart('connections/s', history.map((h) => h.connPerSec), '#2b6cb0'),
      chart('bytes/s in / out', history.map((h) => h.bytesInPerSec + h.bytesOutPerSec), '#805ad5')),
  );
  if (a.lastError) card.append(el('div', { class: 'error', text: `${a.lastError.code}: ${a.lastError.message}` }));
  const rows = a.targetStats.map((t) => {
    const failed = Object.entries(t.attempts).filter(([k]) => k !== 'ok').reduce((n, [, v]) => n + v, 0);
    return el('tr', { 'data-target': t.target, 'data-target-state': t.state },
      el('td', { text: t.target }),
      el('td', {}, el('span', { class: `badge ${t.state}`, text: t.state })),
      el('td', { text: String(t.activeConnections) }),
      el('td', { text: String(t.attempts.ok ?? 0) }),
      el('td', { text: String(failed) }));
  });
  card.append(el('table', {}, el('thead', {}, el('tr', {}, ...['target', 'health', 'active', 'attempts ok', 'attempts failed'].map((h) => el('th', { text: h })))), el('tbody', {}, ...rows)));
  return card;
}

function render(stats) {
  $('#daemon').textContent = `daemon pid ${stats.pid} · ${stats.apps.length} app(s) · ${new Date(stats.at).toLocaleTimeString()}`;
  const err = stats.config.error;
  const box = $('#config-error');
  box.hidden = !err;
  box.textContent = err ? `Last config error (${err.at}): ${err.message}` : '';
  $('#apps').replaceChildren(...stats.apps.map(renderApp));
  $('#rollouts tbody').replaceChildren(...stats.rollouts.map((r) =>
    el('tr', {}, el('td', { text: r.app }), el('td', { text: String(r.generation) }), el('td', {}, el('span', { class: `badge ${r.result === 'completed' ? 'up' : 'failed'}`, text: r.result })), el('td', { text: `${r.durationMs} ms` }), el('td', { text: new Date(r.at).toLocaleTimeString() }))));
}

function setConn(state, text) {
  const c = $('#conn');
  c.dataset.state = state;
  c.textContent = text;
}

async function poll() {
  try {
    const res = await fetch('/stats', { cache: 'no-store' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    render(await res.json());
    setConn('live', 'live');
  } catch (err) {
    setConn('down', `daemon unreachable (${err.message}); retrying every second`);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();

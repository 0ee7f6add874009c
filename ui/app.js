// izzi dashboard: reads the gateway's JSON API (/izzi/api/) and draws five views. No
// dependencies, nothing from another origin; every value is set as text, never as HTML.
"use strict";

const API = "/izzi/api/";
const POLL_MS = 2000;
const REFRESH_MS = 10000;
const PAGE = 50;
const COLORS = ["#4f46e5", "#0891b2", "#ea580c", "#16a34a", "#db2777", "#ca8a04", "#7c3aed", "#64748b"];

// ---- helpers --------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    // Through the CSSOM: the page's content security policy refuses inline style attributes.
    else if (name === "style") el.style.cssText = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, String(value));
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const $ = (id) => document.getElementById(id);

async function api(path) {
  const response = await fetch(API + path, { credentials: "same-origin", cache: "no-store" });
  if (response.status === 403 && !sessionStorage.getItem("izzi-refused")) {
    // The admin key changed, or its cookie expired: the page itself now answers with the form
    // that asks for it. Once per tab session, so a refusal cannot loop.
    sessionStorage.setItem("izzi-refused", "1");
    location.reload();
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) message = body.error.message;
    } catch (_) { /* not JSON */ }
    throw new Error(`${path.split("?")[0]}: ${message}`);
  }
  return response.json();
}

function showError(err) {
  const box = $("error");
  if (err) {
    box.textContent = `Cannot load the dashboard's data: ${err.message}`;
    box.hidden = false;
  } else {
    box.hidden = true;
  }
}

const int = new Intl.NumberFormat("en-US");
function n(value) { return value === null || value === undefined ? "–" : int.format(value); }

// Money arrives as decimal strings; shown with cents, or more digits below a cent.
function usd(value) {
  if (value === null || value === undefined) return "–";
  const x = Number(value);
  if (x !== 0 && Math.abs(x) < 0.01) return "$" + x.toPrecision(2);
  return "$" + x.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function compact(value) {
  if (value === null || value === undefined) return "–";
  return new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 }).format(value);
}

function pct(value) { return value === null || value === undefined ? "–" : (value * 100).toFixed(1) + " %"; }

function ms(value) {
  if (value === null || value === undefined) return "–";
  return value >= 1000 ? (value / 1000).toFixed(2) + " s" : Math.round(value) + " ms";
}

function time(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
}

function monthStart() {
  const now = new Date();
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)).toISOString().replace(".000Z", "Z");
}

function statusClass(status) { return status >= 500 ? "bad" : status >= 400 ? "warn" : "ok"; }

// A table from column specs: {title, num, cell(row) -> text or Node}.
function table(columns, rows, opts = {}) {
  const head = h("thead", null, h("tr", null, columns.map((c) => h("th", { class: c.num ? "num" : null }, c.title))));
  const body = h("tbody", { id: opts.bodyId });
  if (!rows.length) {
    body.append(h("tr", null, h("td", { class: "empty", colspan: columns.length }, opts.empty || "Nothing yet.")));
  }
  for (const row of rows) body.append(tableRow(columns, row, opts));
  return h("table", { "data-table": opts.name }, head, body);
}

function tableRow(columns, row, opts = {}) {
  const tr = h("tr", opts.open ? { class: "open", tabindex: 0 } : null,
    columns.map((c) => h("td", { class: c.num ? "num" : null }, c.cell(row))));
  if (opts.open) {
    tr.addEventListener("click", () => opts.open(row));
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter") opts.open(row); });
  }
  if (opts.key) tr.dataset.key = opts.key(row);
  return tr;
}

function place(id, node) { $(id).replaceChildren(node); }

// ---- alerts and the header --------------------------------------------------------------------

function drawAlerts(alerts) {
  const box = $("alerts");
  box.replaceChildren(...alerts.map((a) => h("p", { "data-kind": a.kind, "data-key": a.key }, a.message)));
  box.hidden = alerts.length === 0;
  box.classList.toggle("bad", alerts.some((a) => a.threshold === 100 || a.kind === "balance"));
}

function stamp() { $("updated").textContent = "updated " + new Date().toLocaleTimeString(); }

// ---- overview ---------------------------------------------------------------------------------

function card(id, label, value, raw, sub) {
  return h("div", { class: "card", id: "card-" + id, "data-value": raw },
    h("div", { class: "label" }, label), h("div", { class: "value" }, value), h("div", { class: "sub" }, sub || ""));
}

function tokens(c) { return c.input_tokens + c.output_tokens + c.cache_read_tokens + c.cache_write_tokens; }

async function overview() {
  const [summary, chart, byModel, byKey, byTool] = await Promise.all([
    api("summary"),
    api("usage?by=day,model&since=30d"),
    api("usage?by=model&since=" + encodeURIComponent(monthStart())),
    api("usage?by=key&since=" + encodeURIComponent(monthStart())),
    api("usage?by=tool&since=" + encodeURIComponent(monthStart())),
  ]);
  drawAlerts(summary.alerts || []);
  const { today, month } = summary;
  $("cards").replaceChildren(
    card("spend-today", "Spend today", usd(today.cost_usd), today.cost_usd, `${n(today.requests)} requests`),
    card("spend-month", "Spend this month", usd(month.cost_usd), month.cost_usd,
      month.unpriced_requests ? `${n(month.unpriced_requests)} unpriced requests` : "UTC month"),
    card("requests", "Requests this month", n(month.requests), month.requests, `${n(today.requests)} today`),
    card("tokens", "Tokens this month", compact(tokens(month)), tokens(month),
      `${compact(month.input_tokens)} in · ${compact(month.output_tokens)} out`),
    card("cache", "Cache hit rate", pct(summary.cache_hit_rate), summary.cache_hit_rate ?? "",
      `${compact(month.cache_read_tokens)} tokens read from cache`),
  );
  drawChart(chart.lines);
  // Cost first: on a phone the columns after it scroll out of view.
  const counts = [
    { title: "Cost", num: true, cell: (r) => usd(r.cost_usd) },
    { title: "Requests", num: true, cell: (r) => n(r.requests) },
    { title: "Input", num: true, cell: (r) => compact(r.input_tokens) },
    { title: "Output", num: true, cell: (r) => compact(r.output_tokens) },
  ];
  const byCost = (lines) => [...lines].sort((a, b) => Number(b.cost_usd) - Number(a.cost_usd) || b.requests - a.requests);
  place("by-model", table([{ title: "Model", cell: (r) => r.model ?? "–" }, ...counts], byCost(byModel.lines), { name: "model" }));
  place("by-key", table([{ title: "Key", cell: (r) => r.key ?? "–" }, ...counts], byCost(byKey.lines), { name: "key" }));
  place("by-tool", table([{ title: "Tool", cell: (r) => r.tool ?? "–" }, ...counts], byCost(byTool.lines), { name: "tool" }));
}

// Stacked bars: one per UTC day of the last 30, one colour per model (the top seven, then "other").
function drawChart(lines) {
  const days = [];
  const today = new Date();
  for (let i = 29; i >= 0; i--) {
    const d = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i));
    days.push(d.toISOString().slice(0, 10));
  }
  const totals = new Map();
  for (const l of lines) totals.set(l.model, (totals.get(l.model) || 0) + Number(l.cost_usd));
  const ranked = [...totals.entries()].sort((a, b) => b[1] - a[1]).map(([m]) => m);
  const shown = ranked.slice(0, COLORS.length - 1);
  const series = ranked.length > shown.length ? [...shown, "other"] : shown;
  const cell = new Map();
  for (const l of lines) {
    const model = shown.includes(l.model) ? l.model : "other";
    const k = String(l.day).slice(0, 10) + "\u0000" + model;
    cell.set(k, (cell.get(k) || 0) + Number(l.cost_usd));
  }
  const perDay = days.map((d) => series.reduce((sum, m) => sum + (cell.get(d + "\u0000" + m) || 0), 0));
  const max = Math.max(...perDay, 0);
  // As wide as its box (within bounds), so that text keeps its size on a phone.
  const W = Math.max(320, Math.min(900, $("chart").clientWidth - 24 || 900));
  const H = W < 600 ? 200 : 240, left = 72, bottom = 22, top = 8;
  const plotH = H - bottom - top, step = (W - left) / days.length, bar = step * 0.72;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Spend by model per day, last 30 days" });
  const scale = niceMax(max);
  for (let i = 0; i <= 4; i++) {
    const y = top + plotH - (plotH * i) / 4;
    svg.append(s("line", { class: "grid", x1: left, x2: W, y1: y, y2: y }));
    svg.append(s("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, usd((scale * i) / 4)));
  }
  days.forEach((d, i) => {
    let y = top + plotH;
    const x = left + i * step + (step - bar) / 2;
    series.forEach((m, j) => {
      const v = cell.get(d + "\u0000" + m) || 0;
      if (!v || !scale) return;
      const hgt = (v / scale) * plotH;
      y -= hgt;
      svg.append(s("rect", { x, y, width: bar, height: Math.max(hgt, 0.5), fill: COLORS[j % COLORS.length], rx: 1.5 },
        s("title", null, `${d} · ${m}: ${usd(v)}`)));
    });
    const every = W < 600 ? 7 : 5;
    if (i % every === (days.length - 1) % every) {
      const last = i === days.length - 1;
      svg.append(s("text", { x: last ? x + bar : x + bar / 2, y: H - 6, "text-anchor": last ? "end" : "middle" }, d.slice(5)));
    }
  });
  const legend = h("div", { class: "legend" }, series.map((m, j) =>
    h("span", null, h("i", { style: `background:${COLORS[j % COLORS.length]}` }), m)));
  const empty = lines.length ? null : h("p", { class: "muted" }, "No requests in the last 30 days.");
  $("chart").replaceChildren(svg, legend, ...(empty ? [empty] : []));
}

function niceMax(x) {
  if (x <= 0) return 0;
  const p = Math.pow(10, Math.floor(Math.log10(x)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

// ---- sessions ----------------------------------------------------------------------------------

async function sessions() {
  const data = await api("sessions?since=30d&limit=200");
  place("sessions", table([
    { title: "Session", cell: (r) => h("code", null, short(r.session)) },
    { title: "Tool", cell: (r) => r.tool ?? "–" },
    { title: "Cost", num: true, cell: (r) => usd(r.cost_usd) },
    { title: "First", cell: (r) => time(r.first_at) },
    { title: "Last", cell: (r) => time(r.last_at) },
    { title: "Turns", num: true, cell: (r) => n(r.turns) },
    { title: "Models", cell: (r) => (r.models || []).join(", ") },
    { title: "Input", num: true, cell: (r) => compact(r.input_tokens) },
    { title: "Output", num: true, cell: (r) => compact(r.output_tokens) },
    { title: "Cache read", num: true, cell: (r) => compact(r.cache_read_tokens) },
  ], data.sessions, {
    name: "sessions",
    empty: "No agent sessions yet: tools that send a session id (Claude Code, Codex, x-izzi-session) appear here.",
    open: (r) => { location.hash = "#requests?session=" + encodeURIComponent(r.session); },
    key: (r) => r.session,
  }));
}

function short(id) { return id && id.length > 14 ? id.slice(0, 8) + "…" + id.slice(-4) : (id ?? "–"); }

// ---- requests (paged, filtered, live) ---------------------------------------------------------

const FILTERS = ["key", "tool", "session", "model", "status", "outcome"];
const log = { filters: {}, newest: null, oldest: null, timer: null };

const REQUEST_COLUMNS = [
  { title: "Time", cell: (r) => time(r.started_at) },
  { title: "Key", cell: (r) => r.key ?? "–" },
  { title: "Tool", cell: (r) => r.tool ?? "–" },
  { title: "Session", cell: (r) => r.session ? h("code", { title: r.session }, short(r.session)) : "–" },
  { title: "Model", cell: (r) => r.requested_model && r.requested_model !== r.model ? `${r.requested_model} → ${r.model}` : (r.model ?? r.requested_model ?? "–") },
  { title: "Status", cell: (r) => h("span", { class: statusClass(r.status) }, r.status ?? "–") },
  { title: "Outcome", cell: (r) => r.outcome ?? "–" },
  { title: "In", num: true, cell: (r) => compact(r.input_tokens) },
  { title: "Out", num: true, cell: (r) => compact(r.output_tokens) },
  { title: "Cache", num: true, cell: (r) => compact(r.cache_read_tokens) },
  { title: "Cost", num: true, cell: (r) => usd(r.cost_usd) },
  { title: "TTFB", num: true, cell: (r) => ms(r.ttft_ms) },
  { title: "Duration", num: true, cell: (r) => ms(r.latency_ms) },
];

function query(extra) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(log.filters)) if (v) q.set(k, v);
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  return q.toString();
}

function readFilters() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  log.filters = {};
  for (const f of FILTERS) {
    const v = params.get(f) || "";
    log.filters[f] = v;
    $("filters").elements[f].value = v;
  }
}

async function requests() {
  readFilters();
  const data = await api("requests?" + query({ limit: PAGE }));
  log.newest = data.requests.length ? data.requests[0].seq : (log.newest ?? 0);
  log.oldest = data.next_before;
  place("requests", table(REQUEST_COLUMNS, data.requests, {
    name: "requests", bodyId: "request-rows", key: (r) => r.seq,
    empty: "No requests match.",
  }));
  $("more").hidden = log.oldest === null || log.oldest === undefined;
}

async function older() {
  const data = await api("requests?" + query({ limit: PAGE, before: log.oldest }));
  const body = $("request-rows");
  for (const r of data.requests) body.append(tableRow(REQUEST_COLUMNS, r, { key: (x) => x.seq }));
  log.oldest = data.next_before;
  $("more").hidden = log.oldest === null || log.oldest === undefined;
}

async function poll() {
  if (current() !== "requests" || log.newest === null) return;
  const data = await api("requests?" + query({ after: log.newest, limit: 200 }));
  if (!data.requests.length) return;
  const body = $("request-rows");
  const empty = body.querySelector("td.empty");
  if (empty) empty.parentElement.remove();
  // Newest first, as the rows above.
  for (const r of [...data.requests].reverse()) {
    const tr = tableRow(REQUEST_COLUMNS, r, { key: (x) => x.seq });
    tr.classList.add("new");
    body.prepend(tr);
    setTimeout(() => tr.classList.remove("new"), 3000);
  }
  log.newest = Math.max(log.newest, ...data.requests.map((r) => r.seq));
}

function applyFilters(event) {
  event.preventDefault();
  const q = new URLSearchParams();
  for (const f of FILTERS) {
    const v = $("filters").elements[f].value.trim();
    if (v) q.set(f, v);
  }
  const text = q.toString();
  location.hash = "#requests" + (text ? "?" + text : "");
}

// ---- limits -------------------------------------------------------------------------------------

function gauge(label, used, limit, text) {
  const share = limit ? Math.min(used / limit, 1) : 0;
  const level = share >= 1 ? "bad" : share >= 0.8 ? "warn" : "";
  return h("div", { class: "gauge", "data-gauge": label },
    h("div", { class: "row" }, h("span", null, label), h("span", { class: "muted" }, text)),
    h("div", { class: "bar " + level, role: "meter", "aria-valuemin": 0, "aria-valuemax": limit ?? 0, "aria-valuenow": used },
      h("span", { style: `width:${(share * 100).toFixed(1)}%` })));
}

function countGauge(label, g) {
  return gauge(label, g.used, g.limit, g.limit === null ? `${n(g.used)} · unlimited` : `${n(g.used)} / ${n(g.limit)}`);
}

async function limits() {
  const data = await api("limits");
  const cards = data.keys.map((k) => {
    const parts = [
      countGauge("Requests this minute", k.rpm),
      countGauge("Running now", k.concurrent),
      countGauge("Requests today", k.daily),
    ];
    if (k.budget) {
      parts.push(gauge("Budget this month", Number(k.budget.spent_usd), k.budget.limit_usd === null ? null : Number(k.budget.limit_usd),
        k.budget.limit_usd === null ? usd(k.budget.spent_usd) : `${usd(k.budget.spent_usd)} / ${usd(k.budget.limit_usd)}`));
    }
    if (k.balance) {
      parts.push(h("div", { class: "gauge", "data-gauge": "Balance" },
        h("div", { class: "row" }, h("span", null, "Balance left"), h("span", null, usd(k.balance.remaining_usd)))));
    }
    return h("div", { class: "card", "data-key": k.key }, h("h3", null, k.key), parts);
  });
  $("limits").replaceChildren(...(cards.length ? cards : [h("p", { class: "muted" }, "No keys have been used yet.")]));
}

// ---- upstreams ----------------------------------------------------------------------------------

async function upstreams() {
  const data = await api("upstreams");
  place("upstreams", table([
    { title: "Provider", cell: (r) => r.provider },
    { title: "Requests", num: true, cell: (r) => n(r.requests) },
    { title: "Errors", num: true, cell: (r) => n(r.errors) },
    { title: "Error rate", num: true, cell: (r) => h("span", { class: r.error_rate > 0.05 ? "bad" : r.error_rate > 0 ? "warn" : "ok" }, pct(r.error_rate)) },
    { title: "p50", num: true, cell: (r) => ms(r.latency_p50_ms) },
    { title: "p95", num: true, cell: (r) => ms(r.latency_p95_ms) },
    { title: "Last error", cell: (r) => r.last_error ? `${time(r.last_error.at)} · ${r.last_error.status ?? ""} ${r.last_error.outcome ?? ""}` : "none" },
    { title: "Circuit", cell: (r) => r.circuit ?? "–" },
  ], data.upstreams, { name: "upstreams", empty: "No upstream requests since the gateway started." }));
}

// ---- views and refresh --------------------------------------------------------------------------

const VIEWS = { overview, sessions, requests, limits, upstreams };

function current() {
  const name = location.hash.slice(1).split("?")[0];
  return name in VIEWS ? name : "overview";
}

async function show() {
  const name = current();
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.dataset.view !== name;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  await load(name);
}

async function load(name) {
  try {
    await VIEWS[name]();
    if (name !== "overview") drawAlerts((await api("summary")).alerts || []);
    showError(null);
    stamp();
    document.body.dataset.loaded = name;
    sessionStorage.removeItem("izzi-refused");
  } catch (err) {
    showError(err);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("filters").addEventListener("submit", applyFilters);
  $("filters").addEventListener("reset", () => { location.hash = "#requests"; });
  $("more").addEventListener("click", () => older().catch(showError));
  window.addEventListener("hashchange", show);
  setInterval(() => poll().then(() => showError(null), showError), POLL_MS);
  // The other views refresh in place; the request log has its live poll instead.
  setInterval(() => { if (current() !== "requests" && !document.hidden) load(current()); }, REFRESH_MS);
  show();
});

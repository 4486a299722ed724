// iomtguard watch: the live page. Every value comes from the server's
// snapshot (/events, Server-Sent Events, once a second); the page builds
// its DOM with textContent only (names and topics come from the network:
// never markup), and asks nothing of any other origin.
"use strict";

const $ = (id) => document.getElementById(id);
const SVGNS = "http://www.w3.org/2000/svg";
let snap = null;
let windowName = "5m";
let lastUpdate = 0;
const open = new Set(); // incidents whose details are open

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}
function svg(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}
const fmt = (n) => (n === undefined || n === null) ? "–" : Number(n).toLocaleString("en-GB");
const bytes = (n) => n >= 1e9 ? (n / 1e9).toFixed(1) + " GB" : n >= 1e6 ? (n / 1e6).toFixed(1) + " MB" : n >= 1e3 ? (n / 1e3).toFixed(1) + " kB" : n + " B";
function ago(t) {
  if (!t || !snap || !snap.capture_time) return "";
  const s = (new Date(snap.capture_time) - new Date(t)) / 1000;
  if (s < 60) return "just now";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " days ago";
}
const hhmm = (t) => t ? new Date(t).toISOString().replace("T", " ").slice(0, 19) : "–";

function render() {
  if (!snap) return;
  const s = snap;
  // Status.
  const st = $("status");
  st.textContent = s.status === "ok" ? "monitoring" : s.status;
  st.className = "pill " + (s.status === "ok" ? "ok" : "bad");
  $("source").textContent = (s.source.kind || "input") + " " + s.source.input + (s.source.filter ? " (" + s.source.filter + ")" : "");
  $("clock").textContent = hhmm(s.capture_time);
  // Cards.
  const inc = s.incidents || [];
  const openInc = inc.filter((i) => i.status !== "closed");
  $("v-incidents").textContent = openInc.length;
  const bySev = {};
  openInc.forEach((i) => bySev[i.severity] = (bySev[i.severity] || 0) + 1);
  $("s-incidents").textContent = ["critical", "high", "medium", "low"].filter((k) => bySev[k]).map((k) => bySev[k] + " " + k).join(", ") || "none open";
  $("c-incidents").className = "card" + (openInc.some((i) => i.severity === "critical" || i.severity === "high") ? " alarm" : "");
  const devs = s.devices || [];
  const silent = devs.filter((d) => d.silent).length;
  $("v-devices").textContent = devs.length;
  $("s-devices").textContent = silent ? silent + " silent" : "all active";
  const mqtt = s.rates.mqtt || {};
  let last = 0, sumMin = 0;
  for (const v of Object.values(mqtt)) {
    if (v.length > 1) last += v[v.length - 2]; // the last complete second
    sumMin += v.slice(-61, -1).reduce((a, b) => a + b, 0);
  }
  $("v-rate").textContent = fmt(last);
  $("s-rate").textContent = s.source.kind === "hub"
    ? fmt(s.totals.mqtt_packets) + " in the last hour · PUBLISH " + fmt(s.totals.publish_from_clients)
    : fmt(s.totals.mqtt_packets) + " since start · readings sent " + fmt(s.totals.publish_from_clients) + ", delivered " + fmt(s.totals.publish_to_clients);
  const drops = (s.source.stats.kernel_drops || 0) + (s.source.stats.queue_drops || 0);
  $("v-drops").textContent = fmt(drops);
  $("s-drops").textContent = "kernel " + fmt(s.source.stats.kernel_drops) + " · queue " + fmt(s.source.stats.queue_drops) + " · of " + fmt(s.totals.frames) + " frames";
  $("c-drops").className = "card" + (drops > 0 ? " alarm" : "");
  renderIncidents(inc);
  renderRates(s.rates);
  renderForecast(s.windows && s.windows["1h"]);
  renderDevices(devs);
  renderWindow(s.windows && s.windows[windowName]);
  const al = Object.entries(s.alerts || {}).map(([k, v]) => k + ": " + v.sent + " sent" + (v.dropped || v.failed ? ", " + (v.dropped + v.failed) + " lost" : "")).join(" · ");
  $("footer-stats").textContent = al ? "Alerts: " + al + "." : "";
}

function renderIncidents(list) {
  const box = $("incidents");
  box.textContent = "";
  if (!list.length) { box.append(el("p", { class: "empty" }, "No incident so far.")); return; }
  for (const i of list.slice(0, 50)) {
    const card = el("div", { class: "inc " + i.severity + (i.status === "closed" ? " closed" : "") });
    card.append(el("div", { class: "top" },
      el("span", { class: "sev " + i.severity }, i.severity),
      el("span", { class: "title" }, i.title),
      el("span", { class: "when" }, (i.status === "closed" ? "ended " : "ongoing · last seen ") + ago(i.last_seen) + " · since " + hhmm(i.first_seen) + " · count " + fmt(i.count) + " · #" + i.incident)));
    if (i.defence && i.defence.change) card.append(el("p", { class: "do" }, el("b", {}, "What to do: "), i.defence.change));
    const det = el("details", {});
    if (open.has(i.incident)) det.open = true;
    det.addEventListener("toggle", () => det.open ? open.add(i.incident) : open.delete(i.incident));
    det.append(el("summary", {}, "Evidence, controls and the configuration that fixes it"));
    const dl = el("dl", { class: "ev" });
    const e = i.evidence || {};
    for (const [k, v] of Object.entries(e.counts || {})) dl.append(el("dt", {}, k.replaceAll("_", " ")), el("dd", {}, fmt(v)));
    for (const [k, name] of [["sources", "sources"], ["targets", "targets"], ["client_ids", "client IDs"], ["usernames", "user names"], ["topics", "topics"], ["example_frames", "example frames"]]) {
      if (e[k] && e[k].length) dl.append(el("dt", {}, name), el("dd", {}, e[k].join(", ")));
    }
    for (const n of e.notes || []) dl.append(el("dt", {}, "note"), el("dd", {}, n));
    const c = i.controls || {};
    if (c.hipaa) dl.append(el("dt", {}, "HIPAA"), el("dd", {}, c.hipaa.join("; ")));
    if (c.iec62443) dl.append(el("dt", {}, "IEC 62443"), el("dd", {}, c.iec62443.join("; ")));
    if (c.fda) dl.append(el("dt", {}, "FDA"), el("dd", {}, c.fda.join("; ")));
    det.append(dl);
    if (i.defence && i.defence.gateway_policy) det.append(el("div", {}, "iomtguard gateway policy:"), el("pre", {}, i.defence.gateway_policy));
    if (i.defence && i.defence.mosquitto) det.append(el("div", {}, "Mosquitto:"), el("pre", {}, i.defence.mosquitto));
    card.append(det);
    box.append(card);
  }
}

const COLORS = ["#3d7ea6", "#2a9d60", "#d1495b", "#e9a23b", "#8e6bbf", "#4c5c68", "#b56576", "#00a6a6", "#6d8b74"];

// line draws series (arrays of numbers) in a box.
function lineChart(box, series, opts) {
  box.textContent = "";
  const W = box.clientWidth || 600, H = box.clientHeight || 220, P = { l: 44, r: 10, t: 10, b: 22 };
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
  let n = 0, ymax = 1;
  for (const x of series) { n = Math.max(n, x.values.length + (x.offset || 0)); for (const v of x.values) if (v > ymax) ymax = v; }
  if (opts && opts.ymax) ymax = Math.max(ymax, opts.ymax);
  n = Math.max(n, 2);
  const X = (i) => P.l + (W - P.l - P.r) * i / (n - 1), Y = (v) => H - P.b - (H - P.t - P.b) * v / ymax;
  for (let k = 0; k <= 4; k++) {
    const v = ymax * k / 4, y = Y(v);
    s.append(svg("line", { x1: P.l, x2: W - P.r, y1: y, y2: y, stroke: "#e4e9ee" }));
    const t = svg("text", { x: P.l - 6, y: y + 4, "text-anchor": "end", "font-size": 11, fill: "#5f6b7a" });
    t.textContent = v >= 100 ? Math.round(v) : v.toFixed(1);
    s.append(t);
  }
  for (const x of series) {
    if (x.band) {
      const pts = x.band.upper.map((v, i) => X(i + x.offset) + "," + Y(v)).concat(x.band.lower.map((v, i) => X(i + x.offset) + "," + Y(v)).reverse());
      s.append(svg("polygon", { points: pts.join(" "), fill: x.color, "fill-opacity": 0.18, stroke: "none" }));
    }
    const pts = x.values.map((v, i) => X(i + (x.offset || 0)) + "," + Y(v)).join(" ");
    s.append(svg("polyline", { points: pts, fill: "none", stroke: x.color, "stroke-width": x.width || 1.6, "stroke-dasharray": x.dash || "" }));
    for (const m of x.marks || []) s.append(svg("circle", { cx: X(m.i), cy: Y(m.v), r: 4, fill: "#d1495b" }));
  }
  if (opts && opts.xlabel) {
    const t = svg("text", { x: W - P.r, y: H - 4, "text-anchor": "end", "font-size": 11, fill: "#5f6b7a" });
    t.textContent = opts.xlabel;
    s.append(t);
  }
  box.append(s);
}

function renderRates(r) {
  const types = Object.keys(r.mqtt || {}).sort((a, b) => sum(r.mqtt[b]) - sum(r.mqtt[a]));
  const series = types.slice(0, 8).map((t, k) => ({ values: r.mqtt[t].slice(0, -1), color: COLORS[k % COLORS.length] }));
  if (!series.length) series.push({ values: (r.frames || []).slice(0, -1).map(() => 0), color: "#ccc" });
  lineChart($("rates"), series, { xlabel: "last 5 minutes → " + hhmm(r.end) });
  const lg = $("rates-legend");
  lg.textContent = "";
  types.slice(0, 8).forEach((t, k) => { const i = el("i", {}); i.style.background = COLORS[k % COLORS.length]; lg.append(el("span", {}, i, t)); });
}
const sum = (a) => a.reduce((x, y) => x + y, 0);

function renderForecast(w) {
  const box = $("forecast");
  if (!w || !w.result || !w.result.series) { box.textContent = ""; $("forecast-note").textContent = "The model is fitted once a minute of traffic is in."; return; }
  const r = w.result, y = r.series.values || [];
  const f = r.forecast || {};
  const marks = ((r.anomalies && r.anomalies.series) || []).map((a) => ({ i: Math.round(a.time / (r.series.interval_seconds || 1)), v: a.observed }));
  const series = [{ values: y, color: "#3d7ea6", width: 1.2, marks }];
  if (f.mean && f.mean.length) series.push({ values: f.mean, offset: y.length, color: "#e9a23b", band: { lower: f.lower, upper: f.upper }, width: 2 });
  lineChart(box, series, { xlabel: "the last hour and the next minute" });
  $("forecast-note").textContent = f.error ? "No forecast: " + f.error :
    "ARIMA(" + (f.order || []).join(",") + "), refitted each minute on the last hour. " +
    (r.anomalies && r.anomalies.not_judged ? "Anomalies not judged: " + r.anomalies.not_judged : (marks.length + " anomalous second(s) in the hour (red)."));
}

function renderDevices(devs) {
  const tb = $("devices").querySelector("tbody");
  tb.textContent = "";
  for (const d of devs.slice(0, 500)) {
    const tr = el("tr", { class: d.silent ? "silent" : "" });
    const sec = d.transport === "tls" ? el("span", { class: "tag good" }, "TLS") : el("span", { class: "tag bad" }, d.transport);
    const cred = d.credential ? el("span", { class: "tag" + (d.credential === "none" || d.credential === "password" && d.transport !== "tls" ? " bad" : "") }, d.credential) : "";
    tr.append(el("td", {}, d.key), el("td", { title: d.kind_evidence || "" }, d.kind), el("td", {}, d.role), el("td", {}, (d.addresses || []).join(", ")),
      el("td", {}, sec), el("td", {}, cred), el("td", { class: "num" }, d.publishes_per_minute ? d.publishes_per_minute.toFixed(1) : "–"),
      el("td", {}, (d.silent ? "silent · " : "") + ago(d.last_seen)));
    tb.append(tr);
  }
}

function renderWindow(w) {
  const note = $("window-note");
  const tt = $("topics").querySelector("tbody"), th = $("hosts").querySelector("tbody");
  tt.textContent = ""; th.textContent = "";
  if (!w || !w.result) { note.textContent = "This window fills as minutes of traffic close."; $("graph").textContent = ""; return; }
  const r = w.result;
  note.textContent = "From " + hhmm(r.overview.first) + " to " + hhmm(r.overview.last) + ": " + fmt(r.overview.frames) + " frames, " + fmt(r.overview.mqtt_packets) + " MQTT packets, " + fmt(r.overview.hosts) + " hosts.";
  for (const t of (r.topics || []).slice(0, 50)) tt.append(el("tr", {}, el("td", {}, t.topic), el("td", { class: "num" }, fmt(t.publishes)), el("td", { class: "num" }, bytes(t.payload_bytes)), el("td", {}, (t.publishers || []).join(", "))));
  for (const h of (r.hosts || []).slice(0, 50)) th.append(el("tr", {}, el("td", {}, h.addr), el("td", {}, h.role || ""), el("td", { class: "num" }, fmt(h.frames)), el("td", { class: "num" }, bytes(h.bytes)), el("td", {}, (h.client_ids || []).join(", "))));
  renderGraph(r.graph);
}

const ROLE = { broker: "#d1495b", publisher: "#3d7ea6", subscriber: "#2a9d60", "publisher+subscriber": "#8e6bbf", client: "#7a8593" };
function renderGraph(g) {
  const box = $("graph");
  box.textContent = "";
  if (!g || !g.nodes || !g.nodes.length) return;
  const W = box.clientWidth || 800, H = box.clientHeight || 380;
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
  const nodes = g.nodes.slice(0, 60), pos = {};
  const brokers = nodes.filter((n) => (n.role || "").includes("broker")), others = nodes.filter((n) => !(n.role || "").includes("broker"));
  brokers.forEach((n, i) => pos[n.id] = [W / 2 + (i - (brokers.length - 1) / 2) * 60, H / 2]);
  others.forEach((n, i) => { const a = 2 * Math.PI * i / Math.max(others.length, 1); pos[n.id] = [W / 2 + Math.cos(a) * (W / 2 - 90), H / 2 + Math.sin(a) * (H / 2 - 30)]; });
  const maxB = Math.max(1, ...(g.edges || []).map((e) => e.bytes));
  for (const e of g.edges || []) {
    if (!pos[e.a] || !pos[e.b]) continue;
    s.append(svg("line", { x1: pos[e.a][0], y1: pos[e.a][1], x2: pos[e.b][0], y2: pos[e.b][1], stroke: "#9aa8b6", "stroke-opacity": 0.6, "stroke-width": 0.5 + 4 * Math.sqrt(e.bytes / maxB) }));
  }
  const maxN = Math.max(1, ...nodes.map((n) => n.bytes));
  for (const n of nodes) {
    const [x, y] = pos[n.id];
    s.append(svg("circle", { cx: x, cy: y, r: 4 + 12 * Math.sqrt(n.bytes / maxN), fill: ROLE[n.role] || "#7a8593" }));
    const t = svg("text", { x: x, y: y - 9 - 12 * Math.sqrt(n.bytes / maxN), "text-anchor": "middle", "font-size": 10.5, fill: "#1d2430" });
    t.textContent = n.id;
    s.append(t);
  }
  box.append(s);
}

document.querySelectorAll("#window-tabs button").forEach((b) => b.addEventListener("click", () => {
  windowName = b.dataset.w;
  document.querySelectorAll("#window-tabs button").forEach((x) => x.classList.toggle("on", x === b));
  render();
}));

// A hub's dashboard has views (the group, each site): ?view=NAME.
let view = new URLSearchParams(location.search).get("view") || "";
let es = null;
function renderViews(s) {
  if (!s.views || !s.views.length) return;
  const sel = $("view");
  if (sel.options.length !== s.views.length) {
    sel.textContent = "";
    for (const v of s.views) sel.append(el("option", { value: v }, v));
    $("view-box").hidden = false;
    document.querySelector(".brand span").textContent = "hub";
  }
  sel.value = s.view || s.views[0];
}
$("view").addEventListener("change", (e) => {
  view = e.target.value;
  const u = new URL(location.href);
  u.searchParams.set("view", view);
  history.replaceState(null, "", u);
  snap = null;
  connect();
});
function connect() {
  if (es) es.close();
  es = new EventSource("events" + (view ? "?view=" + encodeURIComponent(view) : ""));
  es.addEventListener("snapshot", (e) => { snap = JSON.parse(e.data); lastUpdate = Date.now(); renderViews(snap); render(); });
  es.onerror = () => { $("status").textContent = "reconnecting…"; $("status").className = "pill warn"; };
}
setInterval(() => {
  if (!lastUpdate) return;
  const s = Math.round((Date.now() - lastUpdate) / 1000);
  $("live").textContent = s <= 2 ? "live" : "no update for " + s + " s";
}, 1000);
connect();

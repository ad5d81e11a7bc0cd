// otel-launch ui's page: plain JS over the JSON API (/api/traces, /api/traces/{id}, /api/overview,
// /api/logs), charts drawn by the vendored uPlot (static/vendor). Text from the store only ever
// reaches the page as text (el(), textContent; uPlot sets its labels with textContent too).
"use strict";

const MAX_NEST = 64; // lists nested in the page at most this deep; deeper spans line up at this depth
const MAX_INDENT = 16; // levels indented on screen; deeper spans show their depth

const app = document.getElementById("app");
const PALETTE = ["#3559e0", "#e07a35", "#2f9e6e", "#b0399c", "#c9a227", "#1c9fb8", "#7a5af8", "#d9485f"];
const colours = new Map();
let timer = null;
// The page shown, counted: a refresh that returns after its page was left (or after its filters
// changed) draws nothing and schedules nothing, so it cannot overwrite the next page or stop its timer.
let shownPage = 0;

function colour(service) {
  if (!colours.has(service)) colours.set(service, PALETTE[colours.size % PALETTE.length]);
  return colours.get(service);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "style") node.style.cssText = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// A Redis pipeline's span name, "LLEN LLEN LLEN GET", as "LLEN \u00d73 GET".
function compactName(name) {
  const words = name.split(" ");
  if (words.length < 2 || !words.every((w) => /^[A-Z][A-Z0-9_.]*$/.test(w))) return name;
  const runs = [];
  for (const word of words) {
    if (runs.length && runs[runs.length - 1][0] === word) runs[runs.length - 1][1] += 1;
    else runs.push([word, 1]);
  }
  return runs.map(([word, count]) => (count > 1 ? `${word} \u00d7${count}` : word)).join(" ");
}

function ms(value) {
  if (value >= 1000) return (value / 1000).toFixed(2) + " s";
  if (value >= 10) return value.toFixed(0) + " ms";
  return value.toFixed(value >= 1 ? 1 : 2) + " ms";
}

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

function schedule(fn, delay) {
  clearTimeout(timer);
  timer = setTimeout(fn, delay);
}

// -- the list ---------------------------------------------------------------------------------

const filters = { service: "", status: "", min_duration_ms: "", q: "" };

function listPage() {
  const params = new URLSearchParams(location.search);
  for (const key of Object.keys(filters)) filters[key] = params.get(key) || "";
  const serviceSelect = el("select", { name: "service", "aria-label": "service" }, el("option", { value: "" }, "all services"));
  const form = el(
    "form",
    { class: "filters", onsubmit: (event) => event.preventDefault(), oninput: onFilter, onchange: onFilter },
    serviceSelect,
    el(
      "select",
      { name: "status", "aria-label": "status" },
      el("option", { value: "" }, "any status"),
      el("option", { value: "error" }, "errors"),
      el("option", { value: "ok" }, "no error"),
    ),
    el("input", { name: "min_duration_ms", type: "number", min: "0", placeholder: "min ms", "aria-label": "minimum duration (ms)", style: "width:90px" }),
    el("input", { name: "q", type: "search", placeholder: "text in span names or attribute values", "aria-label": "search", style: "min-width:300px" }),
  );
  for (const [key, value] of Object.entries(filters)) form.elements[key].value = value;
  const body = el("div", { id: "trace-list" });
  app.replaceChildren(form, body);

  function onFilter() {
    for (const key of Object.keys(filters)) filters[key] = form.elements[key].value;
    const query = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
    history.replaceState(null, "", query.toString() ? "?" + query : "/");
    refresh();
  }

  const page = shownPage;
  const asked = () => new URLSearchParams(Object.entries(filters).filter(([, v]) => v)).toString();

  async function refresh() {
    const query = asked();
    try {
      const [list, services] = await Promise.all([getJSON("/api/traces?" + query), getJSON("/api/services")]);
      if (page !== shownPage || query !== asked()) return;  // left, or filtered again since: the newer refresh draws
      const known = new Set([...serviceSelect.options].map((o) => o.value));
      for (const service of services.services) if (!known.has(service)) serviceSelect.append(el("option", { value: service }, service));
      serviceSelect.value = filters.service;
      body.replaceChildren(renderList(list));
    } catch (error) {
      if (page !== shownPage || query !== asked()) return;
      body.replaceChildren(el("div", { class: "empty" }, "cannot reach the viewer: " + error.message));
    }
    schedule(refresh, 1000);
  }
  refresh();
}

function renderList(list) {
  if (!list.traces.length) {
    return el("div", { class: "empty" }, list.stored ? "no trace matches these filters" : "waiting for traces: send OTLP to this process (otel-launch runs your app with it)");
  }
  const rows = list.traces.map((t) => {
    const href = "/trace/" + t.trace_id;
    return el(
      "tr",
      { class: "trace", "data-trace-id": t.trace_id, onclick: (event) => { if (event.target.tagName !== "A") navigate(href); } },
      el("td", { class: "muted" }, new Date(t.start_unix_nano / 1e6).toLocaleTimeString([], { hour12: false }) + "." + String(Math.floor(t.start_unix_nano / 1e6) % 1000).padStart(3, "0")),
      el("td", { class: "root" }, el("a", { href, onclick: (event) => { event.preventDefault(); navigate(href); } }, t.root_name || "(root not received yet)")),
      el("td", {}, t.services.map((s) => el("span", { style: "margin-right:10px" }, el("span", { class: "dot", style: `background:${colour(s)}` }), s))),
      el("td", { class: "num" }, ms(t.duration_ms)),
      el("td", { class: "num" }, t.span_count + (t.dropped_spans ? ` (+${t.dropped_spans} dropped)` : "")),
      el("td", { class: t.error_count ? "err" : "ok" }, t.error_count ? `${t.error_count} error${t.error_count > 1 ? "s" : ""}` : "ok"),
    );
  });
  return el(
    "table",
    { class: "traces" },
    el("thead", {}, el("tr", {}, ["start", "root span", "services", "duration", "spans", "status"].map((h, i) => el("th", { class: i === 3 || i === 4 ? "num" : null }, h)))),
    el("tbody", {}, rows),
    el("caption", { style: "caption-side:bottom;text-align:left;padding:6px;color:var(--muted)" }, `${list.traces.length} shown, ${list.stored} stored (at most ${list.max_traces}, oldest dropped)`),
  );
}

// -- one trace --------------------------------------------------------------------------------

function tracePage(traceId) {
  let shown = "";
  let selected = null;
  const page = shownPage;
  async function refresh() {
    try {
      const [trace, logs] = await Promise.all([
        getJSON("/api/traces/" + encodeURIComponent(traceId)),
        getJSON("/api/logs?limit=1000&trace_id=" + encodeURIComponent(traceId)).catch((error) => ({ logs: null, error: error.message })),
      ]);
      if (page !== shownPage) return;
      const counts = `${trace.spans.length} ${logs.logs ? logs.logs.length : "-"}`;
      if (counts !== shown) {  // spans or logs still arriving (a worker exports later): redraw
        shown = counts;
        app.replaceChildren(renderTrace(trace, logs, selected, (id) => (selected = id)));
      }
    } catch (error) {
      if (page !== shownPage) return;
      if (!shown) app.replaceChildren(el("div", { class: "empty" }, "no such trace (yet): " + traceId));
    }
    schedule(refresh, 2000);
  }
  refresh();
}

function httpStatus(span) {
  return span.attributes["http.response.status_code"] ?? span.attributes["http.status_code"];
}

function queueTime(span) {
  const value = span.attributes["celery.task.queue_time"];
  return value === undefined ? null : Number(value) * 1000;
}

function nPlusOne(span) {
  return Object.entries(span.attributes).filter(([key]) => key.startsWith("otel_launch.n_plus_one."));
}

// Tasks sent inside a Django transaction (celery.task.sent_in_transaction): what became of it, from the
// trace's commit and rollback events (otel_launch.transaction.*, naming task ids), against the run's start.
const transactionEnds = new WeakMap();
function transactionBadges(span, spans) {
  const TX = "otel_launch.transaction.";
  let ends = transactionEnds.get(spans);
  if (!ends) {
    ends = new Map();
    for (const s of spans) for (const e of s.events || []) if (e.name === TX + "commit" || e.name === TX + "rollback") for (const id of e[TX + "task_ids"] || []) ends.set(id, e);
    transactionEnds.set(spans, ends);
  }
  const badges = (span.events || []).filter((e) => e.name === TX + "rollback").map((e) =>
    el("span", { class: "badge http-err", title: "rolled back; tasks sent inside it:\n" + (e[TX + "tasks"] || []).join("\n") }, `rollback: ${e[TX + "task_count"]} sent`));
  if (span.attributes["celery.task.sent_in_transaction"] !== true) return badges;
  const end = ends.get(span.attributes["messaging.message.id"]);
  if (span.kind === "consumer" && end && end.name === TX + "rollback") badges.push(el("span", { class: "badge http-err", title: "the transaction it was sent in rolled back: it ran for data that never existed" }, "after rollback"));
  else if (span.kind === "consumer" && end && span.start_unix_nano < end[TX + "ended_at"] * 1e9) badges.push(el("span", { class: "badge http-err", title: `started ${ms((end[TX + "ended_at"] * 1e9 - span.start_unix_nano) / 1e6)} before the sender's commit (clocks of two hosts)` }, "before commit"));
  badges.push(el("span", { class: "badge nplus1", title: "sent while a Django transaction had not committed: transaction.on_commit or delay_on_commit sends after it" }, "in transaction"));
  return badges;
}

function renderTrace(trace, logs, selectedId, onSelect) {
  const spans = trace.spans;
  const logsBySpan = new Map();
  for (const record of logs.logs || []) logsBySpan.set(record.span_id, (logsBySpan.get(record.span_id) || 0) + 1);
  const rows = new Map();
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const children = new Map();
  const roots = [];
  for (const span of spans) {
    if (span.parent_span_id && byId.has(span.parent_span_id)) {
      if (!children.has(span.parent_span_id)) children.set(span.parent_span_id, []);
      children.get(span.parent_span_id).push(span);
    } else roots.push(span);
  }
  roots.sort((a, b) => (a.parent_span_id ? 1 : 0) - (b.parent_span_id ? 1 : 0) || a.start_unix_nano - b.start_unix_nano);
  let t0 = Infinity;
  let t1 = -Infinity;
  for (const span of spans) {
    t0 = Math.min(t0, span.start_unix_nano);
    t1 = Math.max(t1, span.end_unix_nano);
  }
  const total = Math.max(t1 - t0, 1);
  const pct = (ns) => ((ns - t0) / total) * 100;
  const detail = el("section", { class: "detail", id: "span-detail" }, el("span", { class: "muted" }, "click a span for its attributes, events and resource"));

  function select(span, row) {
    onSelect(span.span_id);
    document.querySelectorAll(".row.selected").forEach((r) => r.classList.remove("selected"));
    row.classList.add("selected");
    detail.replaceChildren(...renderDetail(span, byId.get(span.parent_span_id), trace.resources[span.resource_id]));
  }

  function row(span, depth) {
    const parent = byId.get(span.parent_span_id);
    const status = httpStatus(span);
    const badges = [];
    if (status !== undefined) badges.push(el("span", { class: "badge " + (status >= 500 ? "http-err" : status >= 400 ? "http-err" : "http-ok"), title: "HTTP status" }, status));
    if (span.status === "ERROR") badges.push(el("span", { class: "badge error", title: span.status_message }, "error"));
    const queued = queueTime(span);
    let gap = null;
    if (parent && parent.kind === "producer" && span.kind === "consumer") {
      const gapMs = (span.start_unix_nano - parent.end_unix_nano) / 1e6;
      badges.push(el("span", { class: "badge queue", title: "queue time: from the end of the publish span to the start of the run" }, "queued " + ms(Math.max(gapMs, 0))));
      if (gapMs > 0) gap = el("div", { class: "gap", style: `left:${pct(parent.end_unix_nano)}%;width:${pct(span.start_unix_nano) - pct(parent.end_unix_nano)}%` });
    }
    if (queued !== null) badges.push(el("span", { class: "badge queue", title: "celery.task.queue_time" }, "queue_time " + ms(queued)));
    const repeated = nPlusOne(span);
    if (repeated.length) badges.push(el("span", { class: "badge nplus1", title: repeated.map(([k, v]) => `${k}=${v}`).join("\n") }, "N+1"));
    const logged = logsBySpan.get(span.span_id);
    if (logged) badges.push(el("span", { class: "badge logs", title: "log records written under this span (below)" }, `${logged} log${logged > 1 ? "s" : ""}`));
    badges.push(...transactionBadges(span, spans));
    if (span.parent_span_id && !parent) badges.push(el("span", { class: "badge", title: "its parent span has not been received" }, "parent missing"));
    const left = pct(span.start_unix_nano);
    const width = Math.max(pct(span.end_unix_nano) - left, 0.15);
    if (depth > MAX_INDENT) badges.unshift(el("span", { class: "badge", title: "depth in the tree" }, `depth ${depth}`));
    const line = el(
      "div",
      { class: "row" + (span.span_id === selectedId ? " selected" : ""), "data-span-id": span.span_id, onclick: () => select(span, line) },
      el("div", { class: "label", style: `padding-left:${8 + Math.min(depth, MAX_INDENT) * 16}px`, title: span.name },
        el("span", { class: "dot", style: `background:${colour(span.service)}` }),
        el("span", { class: "svc" }, span.service), el("span", { class: "name" }, compactName(span.name)), badges),
      el("div", { class: "track" }, gap,
        el("div", { class: "bar" + (span.status === "ERROR" ? " error" : ""), style: `left:${left}%;width:${width}%;background:${colour(span.service)}` }),
        el("span", { class: "dur", style: left + width > 85 ? `right:${100 - left + 0.5}%` : `left:${left + width + 0.5}%` }, ms(span.duration_ms))),
    );
    if (span.span_id === selectedId) setTimeout(() => select(span, line), 0);
    rows.set(span.span_id, [span, line]);
    return line;
  }

  // Depth first with a stack of our own (a chain of any length draws): each span's children in a
  // list of its own, in start order, down to MAX_NEST; deeper ones follow their parent in its list.
  const tree = el("ul", { class: "tree" });
  const stack = roots.map((span) => [span, 0, tree]).reverse();
  while (stack.length) {
    const [span, depth, list] = stack.pop();
    const item = el("li", { class: "span", "data-name": span.name, "data-kind": span.kind, "data-service": span.service }, row(span, depth));
    list.append(item);
    const kids = (children.get(span.span_id) || []).sort((a, b) => a.start_unix_nano - b.start_unix_nano);
    let into = list;
    if (kids.length && depth < MAX_NEST) {
      into = el("ul", { class: "children" });
      item.append(into);
    }
    for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], depth + 1, into]);
  }

  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => el("span", { style: `left:${f * 100}%` }, ms((total * f) / 1e6)));
  ticks[0].style.transform = "none";
  ticks[4].style.transform = "translateX(-100%)";
  const services = [...new Set(spans.map((s) => s.service))];
  const root = roots[0];
  return el("div", {},
    el("div", { class: "summary" },
      el("a", { href: "/", onclick: (event) => { event.preventDefault(); navigate("/"); } }, "\u2190 traces"),
      el("h1", { id: "trace-title" }, root.name),
      el("span", { class: "muted" }, `${ms((t1 - t0) / 1e6)}, ${spans.length} spans, trace ${trace.trace_id}`),
      trace.error_count ? el("span", { class: "err" }, `${trace.error_count} error${trace.error_count > 1 ? "s" : ""}`) : null,
      el("span", { class: "legend" }, services.map((s) => el("span", {}, el("span", { class: "dot", style: `background:${colour(s)}` }), s)))),
    el("div", { class: "waterfall" },
      el("div", { class: "axis" }, el("div", { class: "label" }, "span"), el("div", { class: "ticks" }, ticks)),
      tree),
    renderTraceLogs(logs, t0, (spanId) => {
      const found = rows.get(spanId);
      if (!found) return;
      select(...found);
      found[1].scrollIntoView({ block: "center" });
    }),
    detail);
}

// The trace's log records under its waterfall, in time order; a click selects the span that wrote one.
function renderTraceLogs(logs, t0, onSpan) {
  const heading = el("h2", {}, "logs");
  if (!logs.logs) return el("section", { class: "trace-logs", id: "trace-logs" }, heading, el("div", { class: "muted" }, "logs unavailable: " + logs.error));
  if (!logs.logs.length) return el("section", { class: "trace-logs", id: "trace-logs" }, heading, el("div", { class: "muted" }, "no log record of this trace (logs are exported with OTEL_LOGS_EXPORTER=otlp)"));
  const records = [...logs.logs].sort((a, b) => a.time - b.time);
  return el("section", { class: "trace-logs", id: "trace-logs" },
    el("h2", {}, `logs (${records.length})`),
    el("table", { class: "logs" }, el("tbody", {}, records.map((record) => el("tr", {
      class: "log" + (record.span_id ? " linked" : ""), "data-span-id": record.span_id || null,
      title: record.span_id ? "show the span that wrote it" : null, onclick: () => record.span_id && onSpan(record.span_id),
    },
    el("td", { class: "num muted nowrap" }, "+" + ms(Math.max(record.time - t0 / 1e6, 0))),
    el("td", {}, severityBadge(record)),
    el("td", { class: "muted nowrap" }, record.service),
    el("td", { class: "body" }, record.body))))));
}

function table(object) {
  const entries = Object.entries(object || {}).sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length) return el("div", { class: "muted" }, "none");
  return el("table", {}, entries.map(([key, value]) => el("tr", {}, el("td", {}, key), el("td", {}, typeof value === "object" ? JSON.stringify(value) : String(value)))));
}

function renderDetail(span, parent, resource) {
  const facts = {
    service: span.service, kind: span.kind, duration: ms(span.duration_ms),
    status: span.status + (span.status_message ? ": " + span.status_message : ""),
    span_id: span.span_id, parent_span_id: span.parent_span_id || "(root)", scope: span.scope,
  };
  if (parent && parent.kind === "producer" && span.kind === "consumer") facts["queue time (publish end to run start)"] = ms((span.start_unix_nano - parent.end_unix_nano) / 1e6);
  if (span.dropped_attributes_count) facts["attributes dropped"] = `${span.dropped_attributes_count} (by the sender's limits or the viewer's: 128 a span)`;
  if (span.dropped_events_count) facts["events dropped"] = `${span.dropped_events_count} (by the sender's limits or the viewer's: 128 a span)`;
  const events = span.events.map((event) => el("div", { class: "event" + (event.name === "exception" ? " exception" : "") },
    el("strong", {}, event.name), event["exception.message"] ? el("div", { class: "err" }, event["exception.type"] + ": " + event["exception.message"]) : null,
    table(Object.fromEntries(Object.entries(event).filter(([k]) => k !== "name")))));
  return [
    el("h2", {}, span.name),
    table(facts),
    el("h3", {}, "attributes"), table(span.attributes),
    el("h3", {}, "events"), events.length ? events : el("div", { class: "muted" }, "none"),
    el("h3", {}, "resource"), table(resource),
  ];
}

// -- shared by the overview and the logs -----------------------------------------------------

function link(href, ...children) {
  return el("a", { href, onclick: (event) => { if (!event.ctrlKey && !event.metaKey) { event.preventDefault(); navigate(href); } } }, ...children);
}

function clock(unixMs) {
  const date = new Date(unixMs);
  return date.toLocaleTimeString([], { hour12: false }) + "." + String(Math.floor(unixMs) % 1000).padStart(3, "0");
}

const SEVERITIES = ["DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

function severityBadge(record) {
  const name = String(record.severity || "").toUpperCase();
  const level = record.severity_number >= 17 ? "error" : record.severity_number >= 13 ? "warn" : record.severity_number >= 9 ? "info" : "debug";
  return el("span", { class: "sev sev-" + level, title: `severity number ${record.severity_number}` }, name || "-");
}

function number(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "-";
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (value === 0 || Math.abs(value) >= 0.1) return value.toFixed(2);
  return value.toPrecision(2);  // a rare task: 0.0044 a second, not 0.00
}

function percent(value) {
  return value === null || value === undefined ? "-" : (value * 100).toFixed(value && value < 0.01 ? 2 : 1) + "%";
}

function msOrDash(value) {
  return value === null || value === undefined || Number.isNaN(value) ? "-" : ms(value);
}

function dataTable(id, columns, rows, empty) {
  // columns: [heading, cell(row) -> node/text, numeric?]
  if (!rows.length) return el("div", { class: "empty small", id }, empty);
  return el("table", { class: "grid", id },
    el("thead", {}, el("tr", {}, columns.map(([heading, , numeric]) => el("th", { class: numeric ? "num" : null }, heading)))),
    el("tbody", {}, rows.map((row) => el("tr", row.attrs || {}, columns.map(([, cell, numeric]) => el("td", { class: numeric ? "num" : null }, cell(row.data)))))));
}

// -- the overview -----------------------------------------------------------------------------

const WINDOWS = [[300, "5 min"], [900, "15 min"], [3600, "60 min"]];
const OUTCOMES = [["success", "#2f9e6e"], ["failure", "#c0362c"], ["retry", "#c9a227"], ["killed", "#7a5af8"], ["revoked", "#667085"]];
const charts = new Map(); // key -> {plot, box, range, labels}: kept across refreshes, fed new data

function dropCharts() {
  chartWidths.disconnect();
  for (const entry of charts.values()) entry.plot.destroy();
  charts.clear();
}

function formatValue(value, unit) {
  if (value === null || value === undefined) return "-";
  if (unit === "ms") return ms(value);
  if (unit === "%") return (value * 100).toFixed(1) + "%";
  return number(value) + (unit ? " " + unit : "");
}

// A time chart in `slot`: [{label, values, stroke}] over t (unix ms), the x axis the whole window.
// The box says how many points it drew (data-points), for a script or a test to read.
function chart(slot, key, title, unit, t, series, range) {
  const xs = t.map((value) => value / 1000);
  const data = [xs, ...series.map((s) => s.values.map((v) => (v === null || v === undefined || Number.isNaN(v) ? null : v)))];
  const points = data.slice(1).reduce((sum, ys) => sum + ys.filter((v) => v !== null).length, 0);
  const labels = series.map((s) => s.label).join("\u0000");
  let entry = charts.get(key);
  if (entry && (entry.labels !== labels || !entry.box.isConnected)) {
    entry.plot.destroy();
    charts.delete(key);
    entry = null;
  }
  if (!entry) {
    const box = el("div", { class: "chart", "data-chart": key });
    slot.replaceChildren(el("h3", {}, title), box);
    entry = { box, range, labels };
    const width = Math.max(slot.clientWidth - 2, 280);
    const options = {
      width,
      height: 170,
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true, range: () => entry.range }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [
        { stroke: "#667085", grid: { stroke: "#f0f1f4" }, ticks: { stroke: "#e4e7ec" } },
        { stroke: "#667085", grid: { stroke: "#f0f1f4" }, ticks: { stroke: "#e4e7ec" }, size: 64, values: (u, splits) => splits.map((v) => formatValue(v, unit)) },
      ],
      // a legend with live values while the labels are short; long task names get a plain list
      legend: { live: series.length <= 3 && labels.length <= 60 },
      // spanGaps: a step without a value (no request in it, or no export: the SDK exports every
      // 60 s by default, the steps of a short window are shorter) is bridged, not a break per point
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: 1.5, spanGaps: true, points: { size: 5, show: fewPoints }, value: (u, v) => formatValue(v, unit) }))],
    };
    entry.plot = new uPlot(options, data, box);
    charts.set(key, entry);
    chartWidths.observe(slot);
  } else {
    entry.range = range;
    entry.plot.setData(data);
  }
  entry.box.dataset.points = String(points);
}

// Dots on a line while it has few points: a value between two gaps (one export so far) is a dot,
// which a line alone would not draw.
function fewPoints(u, index) {
  let count = 0;
  for (const value of u.data[index]) if (value !== null && ++count > 30) return false;
  return true;
}

// Each chart as wide as its slot in the grid, whatever the window or the grid does.
const chartWidths = new ResizeObserver((changes) => {
  for (const change of changes) {
    const entry = [...charts.values()].find((e) => e.box.parentElement === change.target);
    const width = Math.max(Math.floor(change.contentRect.width) - 2, 280);
    if (entry && Math.abs(entry.plot.width - width) > 2) entry.plot.setSize({ width, height: 170 });
  }
});

// `slot` shows `children` unless it already shows the same `data`: a table left alone between
// refreshes keeps its links steady under the pointer (and costs nothing).
const shownData = new WeakMap();
function redraw(slot, data, ...children) {
  const text = JSON.stringify(data);
  if (shownData.get(slot) === text) return;
  shownData.set(slot, text);
  slot.replaceChildren(...children);
}

// The child of `parent` with this id, made (by `make`) and appended the first time.
function slotIn(parent, id, make) {
  let node = parent.querySelector(":scope > #" + id);
  if (!node) {
    node = make();
    node.id = id;
    parent.append(node);
  }
  return node;
}

function overviewPage() {
  const params = new URLSearchParams(location.search);
  const state = {
    service: params.get("service") || "",
    since: WINDOWS.some(([s]) => String(s) === params.get("since")) ? params.get("since") : "900",
  };
  dropCharts();
  const serviceSelect = el("select", { name: "service", "aria-label": "service" }, el("option", { value: "" }, "all services"));
  const buttons = WINDOWS.map(([seconds, label]) => el("button", { type: "button", "data-since": seconds, onclick: () => { state.since = String(seconds); update(); } }, label));
  const updated = el("span", { class: "muted", id: "overview-updated" });
  const form = el("form", { class: "filters", onsubmit: (event) => event.preventDefault(), onchange: () => { state.service = serviceSelect.value; update(); } },
    serviceSelect, el("span", { class: "windows", role: "group", "aria-label": "window" }, "last", buttons), updated);
  const body = el("div", { id: "overview" });
  app.replaceChildren(form, body);

  function update() {
    const query = new URLSearchParams(Object.entries(state).filter(([k, v]) => v && !(k === "since" && v === "900")));
    history.replaceState(null, "", "/overview" + (query.toString() ? "?" + query : ""));
    dropCharts();
    body.replaceChildren();
    refresh();
  }

  const page = shownPage;
  const asked = () => `${state.since} ${state.service}`;

  async function refresh() {
    for (const button of buttons) button.classList.toggle("active", button.dataset.since === state.since);
    const view = asked();
    try {
      const query = new URLSearchParams({ since: state.since });
      if (state.service) query.set("service", state.service);
      const data = await getJSON("/api/overview?" + query);
      if (page !== shownPage || view !== asked()) return;  // left, or another window or service since
      const known = new Set([...serviceSelect.options].map((o) => o.value));
      for (const service of data.services || []) if (!known.has(service)) serviceSelect.append(el("option", { value: service }, service));
      serviceSelect.value = state.service;
      renderOverview(body, data);
      updated.textContent = "updated " + new Date().toLocaleTimeString([], { hour12: false });
    } catch (error) {
      if (page !== shownPage || view !== asked()) return;
      dropCharts();
      body.replaceChildren(el("div", { class: "empty" }, "cannot read the overview: " + error.message));
    }
    schedule(refresh, 5000);
  }
  refresh();
}

function tiles(items) {
  return el("div", { class: "tiles" }, items.map(([label, value, cls]) => el("div", { class: "tile" }, el("div", { class: "tile-value " + (cls || "") }, value), el("div", { class: "tile-label" }, label))));
}

function renderOverview(body, data) {
  const until = Date.now() / 1000;
  const range = [until - data.since_s, until];
  const web = data.web || { series: { t: [] }, routes: [] };
  const celery = data.celery || { series: { t: [] }, tasks: [], workers: [], task_series: [] };
  const db = data.db || { slowest: [], n_plus_one: [] };
  const nothing = !web.routes.length && !celery.tasks.length && !celery.workers.length && !db.slowest.length && !db.n_plus_one.length;
  const hint = slotIn(body, "overview-empty", () => el("div", { class: "empty" }));
  hint.hidden = !nothing;
  hint.textContent = nothing ? "nothing in this window yet: otel-launch exports metrics every OTEL_METRIC_EXPORT_INTERVAL ms (60000 by default) and at exit" : "";

  // web
  const webSection = slotIn(body, "web", () => el("section", { class: "panel" }, el("h2", {}, "Web")));
  webSection.hidden = !web.routes.length;  // no request in the window (the series are all zeros then)
  const requests = web.routes.reduce((n, r) => n + r.requests, 0);
  const errors = web.routes.reduce((n, r) => n + r.errors, 0);
  redraw(slotIn(webSection, "web-tiles", () => el("div")), [requests, errors, data.since_s], tiles([
    ["requests", String(requests)], ["requests / s", number(requests / data.since_s)],
    ["errors (5xx)", String(errors), errors ? "err" : ""], ["error rate", percent(requests ? errors / requests : 0), errors ? "err" : ""],
  ]));
  const webCharts = slotIn(webSection, "web-charts", () => el("div", { class: "charts" },
    ["chart-rps", "chart-errors", "chart-latency"].map((id) => el("div", { class: "chart-slot", id }))));
  const s = web.series;
  chart(slotIn(webCharts, "chart-rps", () => el("div", { class: "chart-slot" })), "rps", "requests / s", "/s", s.t, [{ label: "requests/s", values: s.rps, stroke: "#3559e0" }], range);
  chart(slotIn(webCharts, "chart-errors", () => el("div", { class: "chart-slot" })), "error_rate", "error rate (5xx)", "%", s.t, [{ label: "error rate", values: s.error_rate, stroke: "#c0362c" }], range);
  chart(slotIn(webCharts, "chart-latency", () => el("div", { class: "chart-slot" })), "latency", "latency", "ms", s.t, [
    { label: "p50", values: s.p50_ms, stroke: "#2f9e6e" }, { label: "p95", values: s.p95_ms, stroke: "#e07a35" }, { label: "p99", values: s.p99_ms, stroke: "#c0362c" }], range);
  redraw(slotIn(webSection, "routes-slot", () => el("div")), web.routes, el("h3", {}, "routes, by time spent"), dataTable("routes", [
    ["route", (r) => link("/?q=" + encodeURIComponent(r.route), el("span", { class: "method" }, r.method), " ", r.route)],
    ["service", (r) => r.service],
    ["req / s", (r) => number(r.rate), true],
    ["requests", (r) => String(r.requests), true],
    ["errors", (r) => el("span", { class: r.errors ? "err" : "" }, String(r.errors)), true],
    ["error rate", (r) => percent(r.error_rate), true],
    ["p95", (r) => msOrDash(r.p95_ms), true],
    ["time spent", (r) => number(r.time_s) + " s", true],
  ], web.routes.map((r) => ({ data: r, attrs: { class: "route", "data-route": r.route, "data-method": r.method } })), "no request in this window"));

  // Celery
  const celerySection = slotIn(body, "celery", () => el("section", { class: "panel" }, el("h2", {}, "Celery")));
  celerySection.hidden = !celery.tasks.length && !celery.workers.length;
  const runs = celery.tasks.reduce((n, t) => n + t.runs, 0);
  const failures = celery.tasks.reduce((n, t) => n + t.failure, 0);
  const busy = celery.workers.reduce((n, w) => n + (w.executing || 0), 0);
  const waiting = celery.workers.reduce((n, w) => n + (w.prefetched || 0) + (w.scheduled || 0), 0);
  redraw(slotIn(celerySection, "celery-tiles", () => el("div")), [runs, failures, busy, waiting, data.since_s], tiles([
    ["task runs", String(runs)], ["tasks / s", number(runs / data.since_s)],
    ["failures", String(failures), failures ? "err" : ""], ["executing now", String(busy)], ["prefetched + scheduled", String(waiting), waiting ? "warn" : ""],
  ]));
  const celeryCharts = slotIn(celerySection, "celery-charts", () => el("div", { class: "charts" },
    ["chart-outcomes", "chart-run", "chart-queue"].map((id) => el("div", { class: "chart-slot", id }))));
  const cs = celery.series;
  chart(slotIn(celeryCharts, "chart-outcomes", () => el("div", { class: "chart-slot" })), "outcomes", "tasks / s by outcome", "/s", cs.t,
    OUTCOMES.filter(([name]) => cs[name]).map(([name, stroke]) => ({ label: name, values: cs[name], stroke })), range);
  const perTask = celery.task_series || [];
  const taskT = perTask.length ? perTask[0].t : [];
  const queues = new Set(perTask.map((t) => t.queue));
  const taskLabel = (t) => (queues.size > 1 ? `${t.task} (${t.queue})` : t.task);
  chart(slotIn(celeryCharts, "chart-run", () => el("div", { class: "chart-slot" })), "run", "run duration p95, by task and queue", "ms", taskT,
    perTask.map((t, i) => ({ label: taskLabel(t), values: t.p95_ms, stroke: PALETTE[i % PALETTE.length] })), range);
  chart(slotIn(celeryCharts, "chart-queue", () => el("div", { class: "chart-slot" })), "queue", "queue time p95, by task and queue", "ms", taskT,
    perTask.map((t, i) => ({ label: taskLabel(t), values: t.queue_p95_ms, stroke: PALETTE[i % PALETTE.length] })), range);
  redraw(slotIn(celerySection, "workers-slot", () => el("div")), celery.workers, el("h3", {}, "workers, now"), dataTable("workers", [
    ["service", (w) => w.service],
    ["executing", (w) => String(w.executing ?? "-"), true],
    ["prefetched", (w) => el("span", { class: w.prefetched ? "warn" : "" }, String(w.prefetched ?? "-")), true],
    ["scheduled", (w) => String(w.scheduled ?? "-"), true],
  ], celery.workers.map((w) => ({ data: w, attrs: { class: "worker", "data-service": w.service } })), "no worker gauge in this window"));
  redraw(slotIn(celerySection, "tasks-slot", () => el("div")), celery.tasks, el("h3", {}, "tasks, by time spent"), dataTable("tasks", [
    ["task", (t) => link("/?q=" + encodeURIComponent("run/" + t.task), t.task)],
    ["queue", (t) => t.queue],
    ["service", (t) => t.service],
    ["tasks / s", (t) => number(t.rate), true],
    ["runs", (t) => String(t.runs), true],
    ["success", (t) => String(t.success), true],
    ["failure", (t) => el("span", { class: t.failure ? "err" : "" }, String(t.failure)), true],
    ["retry", (t) => String(t.retry), true],
    ["killed", (t) => String(t.killed), true],
    ["revoked", (t) => String(t.revoked), true],
    ["run p95", (t) => msOrDash(t.p95_ms), true],
    ["queue p95", (t) => msOrDash(t.queue_p95_ms), true],
    ["time spent", (t) => number(t.time_s) + " s", true],
  ], celery.tasks.map((t) => ({ data: t, attrs: { class: "task", "data-task": t.task } })), "no task run in this window"));

  // database
  const dbSection = slotIn(body, "db", () => el("section", { class: "panel" }, el("h2", {}, "Database")));
  dbSection.hidden = !db.slowest.length && !db.n_plus_one.length && !db.error;
  const dbError = slotIn(dbSection, "db-error", () => el("div", { class: "empty small err" }));
  dbError.hidden = !db.error;  // the spans could not be searched in time: say so, not "no statement"
  dbError.textContent = db.error ? "statements not read: " + db.error : "";
  const traceCell = (row) => (row.trace_id ? link("/trace/" + row.trace_id, "trace") : "-");
  redraw(slotIn(dbSection, "slowest-slot", () => el("div")), db.slowest, el("h3", {}, "slowest statements"), dataTable("slowest", [
    ["statement", (row) => el("code", { class: "statement", title: row.statement }, row.statement)],
    ["service", (row) => row.service],
    ["slowest run", (row) => ms(row.duration_ms), true],
    ["runs", (row) => (row.runs === undefined ? "-" : String(row.runs)), true],
    ["", traceCell],
  ], db.slowest.map((row) => ({ data: row, attrs: { class: "statement-row" } })), "no statement in this window"));
  redraw(slotIn(dbSection, "nplus1-slot", () => el("div")), db.n_plus_one, el("h3", {}, "N+1 statements (one query per row of a list)"), dataTable("n-plus-one", [
    ["statement", (row) => el("code", { class: "statement", title: row.statement }, row.statement)],
    ["service", (row) => row.service],
    ["repeats", (row) => String(row.count), true],
    ["", traceCell],
  ], db.n_plus_one.map((row) => ({ data: row, attrs: { class: "statement-row" } })), "no N+1 in this window"));
}

// -- the logs ---------------------------------------------------------------------------------

const logFilters = { service: "", severity: "", q: "" };

function logsPage() {
  const params = new URLSearchParams(location.search);
  for (const key of Object.keys(logFilters)) logFilters[key] = params.get(key) || "";
  const serviceSelect = el("select", { name: "service", "aria-label": "service" }, el("option", { value: "" }, "all services"));
  const form = el("form", { class: "filters", onsubmit: (event) => event.preventDefault(), oninput: onFilter, onchange: onFilter },
    serviceSelect,
    el("select", { name: "severity", "aria-label": "minimum severity" }, el("option", { value: "" }, "any severity"),
      SEVERITIES.map((name) => el("option", { value: name }, name + " and above"))),
    el("input", { name: "q", type: "search", placeholder: "text in the message", "aria-label": "search", style: "min-width:300px" }));
  for (const [key, value] of Object.entries(logFilters)) form.elements[key].value = value;
  const body = el("div", { id: "log-list" });
  app.replaceChildren(form, body);
  const open = new Set();
  let shown = null;

  function onFilter() {
    for (const key of Object.keys(logFilters)) logFilters[key] = form.elements[key].value;
    const query = new URLSearchParams(Object.entries(logFilters).filter(([, v]) => v));
    history.replaceState(null, "", "/logs" + (query.toString() ? "?" + query : ""));
    shown = null;
    refresh();
  }

  const page = shownPage;
  const asked = () => new URLSearchParams(Object.entries(logFilters).filter(([, v]) => v)).toString();

  async function refresh() {
    const filtered = asked();
    try {
      const query = new URLSearchParams(filtered);
      query.set("limit", "200");
      const [list, services] = await Promise.all([getJSON("/api/logs?" + query), getJSON("/api/services")]);
      if (page !== shownPage || filtered !== asked()) return;  // left, or filtered again since: the newer refresh draws
      const known = new Set([...serviceSelect.options].map((o) => o.value));
      for (const service of services.services) if (!known.has(service)) serviceSelect.append(el("option", { value: service }, service));
      serviceSelect.value = logFilters.service;
      const text = JSON.stringify(list.logs);
      if (text !== shown) {  // redrawn only when the records changed: an opened record stays open
        shown = text;
        body.replaceChildren(renderLogs(list, open));
      }
      const caption = body.querySelector("caption");
      if (caption) caption.textContent = `${list.logs.length} shown, newest first, ${list.stored} stored`;
    } catch (error) {
      if (page !== shownPage || filtered !== asked()) return;
      shown = null;
      body.replaceChildren(el("div", { class: "empty" }, "cannot read the logs: " + error.message));
    }
    schedule(refresh, 2000);
  }
  refresh();
}

function renderLogs(list, open) {
  if (!list.logs.length) {
    return el("div", { class: "empty" }, list.stored ? "no log record matches these filters" : "waiting for log records: otel-launch exports them with OTEL_LOGS_EXPORTER=otlp");
  }
  const rows = [];
  for (const record of list.logs) {
    const key = `${record.time}|${record.service}|${record.span_id}|${record.body}`;
    const extra = el("tr", { class: "log-detail" }, el("td", { colspan: "5" }, table({ ...record.attributes, scope: record.scope, trace_id: record.trace_id, span_id: record.span_id })));
    extra.hidden = !open.has(key);
    const toggle = (event) => {
      if (event.target.tagName === "A") return;
      extra.hidden = !extra.hidden;
      if (extra.hidden) open.delete(key);
      else open.add(key);
    };
    rows.push(el("tr", { class: "log", "data-time": record.time, "data-trace-id": record.trace_id || null, onclick: toggle },
      el("td", { class: "muted nowrap" }, clock(record.time)),
      el("td", { class: "nowrap" }, el("span", { class: "dot", style: `background:${colour(record.service)}` }), record.service),
      el("td", {}, severityBadge(record)),
      el("td", { class: "body" }, record.body),
      el("td", { class: "nowrap" }, record.trace_id ? link("/trace/" + record.trace_id, "trace") : el("span", { class: "muted" }, "no trace"))), extra);
  }
  return el("table", { class: "traces logs-table" },
    el("thead", {}, el("tr", {}, ["time", "service", "severity", "message", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows),
    el("caption", { style: "caption-side:bottom;text-align:left;padding:6px;color:var(--muted)" }, `${list.logs.length} shown, newest first, ${list.stored} stored`));
}

// -- routing ----------------------------------------------------------------------------------

function navigate(path) {
  history.pushState(null, "", path);
  route();
}

function route() {
  shownPage += 1;
  clearTimeout(timer);
  dropCharts();
  const match = location.pathname.match(/^\/trace\/([0-9a-fA-F]+)$/);
  const page = match ? "traces" : location.pathname === "/overview" ? "overview" : location.pathname === "/logs" ? "logs" : "traces";
  for (const item of document.querySelectorAll("header nav a")) item.classList.toggle("active", item.dataset.page === page);
  if (match) tracePage(match[1]);
  else if (page === "overview") overviewPage();
  else if (page === "logs") logsPage();
  else listPage();
}

for (const item of document.querySelectorAll("header a")) {
  item.addEventListener("click", (event) => {
    if (event.ctrlKey || event.metaKey) return;
    event.preventDefault();
    navigate(item.getAttribute("href"));
  });
}

window.addEventListener("popstate", route);
route();

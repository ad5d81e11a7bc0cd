// The trace viewer's page: plain JS over the JSON API (/api/traces, /api/traces/{id}).
"use strict";

const MAX_NEST = 64; // lists nested in the page at most this deep; deeper spans line up at this depth
const MAX_INDENT = 16; // levels indented on screen; deeper spans show their depth

const app = document.getElementById("app");
const PALETTE = ["#3559e0", "#e07a35", "#2f9e6e", "#b0399c", "#c9a227", "#1c9fb8", "#7a5af8", "#d9485f"];
const colours = new Map();
let timer = null;

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

  async function refresh() {
    try {
      const query = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
      const [list, services] = await Promise.all([getJSON("/api/traces?" + query), getJSON("/api/services")]);
      const known = new Set([...serviceSelect.options].map((o) => o.value));
      for (const service of services.services) if (!known.has(service)) serviceSelect.append(el("option", { value: service }, service));
      serviceSelect.value = filters.service;
      body.replaceChildren(renderList(list));
    } catch (error) {
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
  let shownCount = -1;
  let selected = null;
  async function refresh() {
    try {
      const trace = await getJSON("/api/traces/" + encodeURIComponent(traceId));
      if (trace.spans.length !== shownCount) {  // spans still arriving (a worker exports later): redraw
        shownCount = trace.spans.length;
        app.replaceChildren(renderTrace(trace, selected, (id) => (selected = id)));
      }
    } catch (error) {
      if (shownCount < 0) app.replaceChildren(el("div", { class: "empty" }, "no such trace (yet): " + traceId));
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

function renderTrace(trace, selectedId, onSelect) {
  const spans = trace.spans;
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
    detail);
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

// -- routing ----------------------------------------------------------------------------------

function navigate(path) {
  history.pushState(null, "", path);
  route();
}

function route() {
  clearTimeout(timer);
  const match = location.pathname.match(/^\/trace\/([0-9a-fA-F]+)$/);
  if (match) tracePage(match[1]);
  else listPage();
}

window.addEventListener("popstate", route);
route();

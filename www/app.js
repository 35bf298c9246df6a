// The llm-retry demo page: no framework, charts are hand-drawn SVG.
// browser.js initialises the wasm; the two simulation exports come from the same module
// (only the demo build, www/pkg, carries them) and take the same options as createRetryFetch.
import { createRetryFetch, retryReport } from "./pkg/browser.js";
import { backoffSchedules, simulateStorm } from "./pkg/llm_retry.js";

const JITTERS = ["none", "full", "equal", "decorrelated"];
const JITTER_INFO = {
  none: "d(n): every client waits exactly the same",
  full: "uniform(0, d(n))",
  equal: "d(n)/2 + uniform(0, d(n)/2)",
  decorrelated: "min(maxMs, uniform(initialMs, 3 × previous wait))",
};
const SEED = 7;

const $ = (sel) => document.querySelector(sel);

// ---------------------------------------------------------------------------------------------
// Small helpers

const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, children = []) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, v);
  for (const c of [].concat(children)) el.append(c);
  return el;
}
const text = (x, y, s, attrs = {}) => svg("text", { x, y, ...attrs }, [String(s)]);

/** A "nice" tick step (1, 2 or 5 × 10^k) giving about `count` ticks up to `max`. */
function niceStep(max, count = 4) {
  const raw = Math.max(max, 1e-9) / count;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
}
/** Ticks from 0 to the first multiple of the step at or above `max`. */
function ticks(max, count) {
  const step = niceStep(max, count);
  const n = Math.max(1, Math.ceil(max / step - 1e-9));
  return Array.from({ length: n + 1 }, (_, i) => +(i * step).toFixed(10));
}

const fmtMs = (ms) => (ms < 1000 ? `${Math.round(ms)} ms` : `${+(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`);
const fmtSecTick = (ms) => (ms === 0 ? "0" : `${+(ms / 1000).toFixed(2)} s`);
const sum = (xs) => xs.reduce((a, b) => a + b, 0);
const errorText = (e) => (e && e.name && e.message ? `${e.name}: ${e.message}` : String(e));

// ---------------------------------------------------------------------------------------------
// 1. Backoff planner

function plannerOptions() {
  const o = { backoff: {} };
  for (const input of document.querySelectorAll("#planner-form input[data-option]")) {
    if (input.value.trim() === "") continue; // blank: the library's default
    const [a, b] = input.dataset.option.split(".");
    if (b) o[a][b] = Number(input.value);
    else o[a] = Number(input.value);
  }
  return o;
}

/** The largest wait each retry can get (the library's formulas; see src/policy/backoff.rs). */
function upperBound(o, jitter) {
  const initial = o.backoff.initialMs ?? 1000;
  const max = o.backoff.maxMs ?? Math.max(30000, initial);
  const mult = o.backoff.multiplier ?? 2;
  const out = [];
  let prev = 0;
  for (let n = 1; n < (o.maxAttempts ?? 4); n++) {
    prev = jitter === "decorrelated"
      ? Math.min(max, Math.max(prev, initial) * 3)
      : Math.min(max, Math.floor(initial * mult ** (n - 1)));
    out.push(prev);
  }
  return out;
}

function renderPlanner() {
  const o = plannerOptions();
  const box = $("#planner-error");
  const inputs = document.querySelectorAll("#planner-form input");
  inputs.forEach((i) => i.removeAttribute("aria-invalid"));
  let plans;
  try {
    createRetryFetch(o); // validates every option, with the library's own message
    plans = JITTERS.map((jitter) => {
      const opts = { ...o, backoff: { ...o.backoff, jitter } };
      const samples = backoffSchedules(opts, 500, SEED);
      return { jitter, samples, bound: upperBound(o, jitter) };
    });
  } catch (e) {
    box.textContent = errorText(e);
    box.hidden = false;
    // Point at the input the message names ("backoff.maxMs must be ≥ …").
    const named = [...inputs].find((i) => String(e.message).startsWith(i.dataset.option + " "));
    named?.setAttribute("aria-invalid", "true");
    $("#planner-charts").classList.add("stale"); // the charts still show the last valid inputs
    return;
  }
  box.hidden = true;
  $("#planner-charts").classList.remove("stale");

  const deadline = o.deadlineMs ?? 60000;
  const yMax = Math.max(1, ...plans.flatMap((p) => [...p.bound, ...p.samples.flat()]));
  const charts = $("#planner-charts");
  charts.replaceChildren(
    ...plans.map((p) => {
      const worst = sum(p.bound);
      const expected = sum(p.samples.map(sum)) / Math.max(1, p.samples.length);
      const card = document.createElement("div");
      card.className = "chart";
      card.dataset.testid = "planner-chart";
      card.dataset.jitter = p.jitter;
      card.innerHTML = `<h3><span class="swatch" style="background:var(--${p.jitter})"></span>${p.jitter === "none" ? "none (no jitter)" : `${p.jitter} jitter`}</h3>
        <p class="formula">${JITTER_INFO[p.jitter]}</p>`;
      card.append(backoffChart(p, yMax));
      const totals = document.createElement("p");
      totals.className = "totals";
      totals.dataset.testid = "planner-totals";
      const verdict = worst <= deadline
        ? `<span class="fits">fits the ${fmtMs(deadline)} deadline</span>`
        : `<span class="over" title="a wait that would end past the deadline is not started">can exceed the ${fmtMs(deadline)} deadline</span>`;
      totals.innerHTML = `Total wait: worst <strong data-testid="worst">${fmtMs(worst)}</strong>,
        expected <strong data-testid="expected">${fmtMs(expected)}</strong> · ${verdict}`;
      card.append(totals);
      return card;
    }),
  );
}

function backoffChart({ jitter, samples, bound }, yMax) {
  const W = 460, H = 200, L = 46, R = 12, T = 10, B = 30;
  const n = bound.length;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `waits before each retry, ${jitter} jitter` });
  if (n === 0) {
    root.append(text(W / 2, H / 2, "maxAttempts is 1: no retries", { "text-anchor": "middle" }));
    return root;
  }
  const x = (i) => L + (n === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (n - 1));
  const yTicks = ticks(yMax, 4);
  const top = yTicks[yTicks.length - 1];
  const y = (ms) => H - B - (ms / top) * (H - T - B);
  for (const t of yTicks) {
    root.append(svg("line", { x1: L, x2: W - R, y1: y(t), y2: y(t), class: "grid-line" }));
    root.append(text(L - 6, y(t) + 4, fmtSecTick(t), { "text-anchor": "end" }));
  }
  const every = Math.ceil(n / 12);
  bound.forEach((_, i) => {
    if (i % every === 0) root.append(text(x(i), H - B + 15, i + 1, { "text-anchor": "middle" }));
  });
  root.append(text(L + (W - L - R) / 2, H - 2, "retry", { "text-anchor": "middle" }));
  root.append(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }));
  root.append(svg("line", { x1: L, x2: L, y1: T, y2: H - B, class: "axis" }));

  const points = (row) => row.map((ms, i) => `${x(i).toFixed(1)},${y(ms).toFixed(1)}`).join(" ");
  const colour = `var(--${jitter})`;
  for (const row of samples.slice(0, 8)) {
    root.append(svg("polyline", { points: points(row), class: "run", stroke: colour }));
  }
  root.append(svg("polyline", { points: points(bound), class: "bound" }));
  const mean = bound.map((_, i) => sum(samples.map((r) => r[i])) / samples.length);
  root.append(svg("polyline", { points: points(mean), class: "mean", stroke: colour }));
  for (const [i, ms] of mean.entries()) root.append(svg("circle", { cx: x(i), cy: y(ms), r: 3, fill: colour }));
  return root;
}

// ---------------------------------------------------------------------------------------------
// 2. Live run

const LIVE_CALLS = 12;
const LIVE_EVERY_MS = 300; // a new call starts every 0.3 s
let config;

function liveOptions() {
  return {
    maxAttempts: 3,
    backoff: { initialMs: 200, maxMs: 2000 },
    breaker: { failureThreshold: 4, cooldownMs: 800 },
    deadlineMs: 20000,
    fallbacks: [{ url: config.fallback.url, model: config.fallback.model }],
  };
}

/** `{ a: 1, b: [{ c: "x" }] }`: JSON, but as one would write it in code. */
const compact = (v) =>
  Array.isArray(v) ? `[${v.map(compact).join(", ")}]`
  : v && typeof v === "object" ? `{ ${Object.entries(v).map(([k, x]) => `${k}: ${compact(x)}`).join(", ")} }`
  : JSON.stringify(v);

function showLiveCode() {
  const opts = liveOptions();
  opts.fallbacks[0].url = "<fallback mock>/v1/chat/completions";
  $("#live-code").textContent =
    `const retryFetch = createRetryFetch({\n${Object.entries(opts).map(([k, v]) => `  ${k}: ${compact(v)},\n`).join("")}});\n` +
    `const res = await retryFetch("<primary mock>/v1/chat/completions", {\n` +
    `  method: "POST", headers, body: JSON.stringify({ model: "main-model", messages }) });\n` +
    `retryReport(res); // { attempts, totalWaitMs, route, model, fallback, … }`;
}

async function runLive() {
  const button = $("#live-run");
  const status = $("#live-status");
  button.disabled = true;
  status.dataset.state = "running";
  status.textContent = "Running…";
  await fetch(config.reset, { method: "POST" }); // restart the mock's script

  const calls = Array.from({ length: LIVE_CALLS }, (_, i) => ({ n: i + 1, attempts: [], start: null, end: null }));
  const marks = []; // breaker changes and cool-downs (a 429 with a wait hint cools the route)
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  let frame = 0;
  const redraw = () => {
    if (!frame) frame = requestAnimationFrame(() => ((frame = 0), drawTimeline(calls, now(), marks)));
  };
  const onEvent = (e) => {
    if (e.type === "breaker") marks.push({ t: now(), breaker: e.to });
    // A retry is told as it is sent, after its wait: the cooling began delayMs ago.
    if (e.type === "retry" && e.hint && e.status === 429) marks.push({ t: now() - e.delayMs, coolMs: e.delayMs, hint: e.hint });
    redraw();
  };

  // The transport records each attempt's timing; the call number rides in a header it removes.
  const transport = async (url, init) => {
    const headers = new Headers(init.headers);
    const call = calls[Number(headers.get("x-demo-call")) - 1];
    headers.delete("x-demo-call");
    const attempt = { t0: now(), t1: null, status: null, route: url === config.fallback.url ? 1 : 0 };
    call.attempts.push(attempt);
    redraw();
    try {
      const res = await fetch(url, { ...init, headers });
      attempt.status = res.status;
      return res;
    } catch (e) {
      attempt.status = "error";
      throw e;
    } finally {
      attempt.t1 = now();
      redraw();
    }
  };
  const retryFetch = createRetryFetch({ ...liveOptions(), fetch: transport, onEvent });

  const runOne = async (call) => {
    call.start = now();
    try {
      const res = await retryFetch(config.primary.url, {
        method: "POST",
        headers: { "content-type": "application/json", "x-demo-call": String(call.n) },
        body: JSON.stringify({ model: config.primary.model, messages: [{ role: "user", content: `Hello #${call.n}` }] }),
      });
      const report = retryReport(res);
      const body = await res.json().catch(() => null);
      call.ok = res.ok;
      call.route = report?.route ?? 0;
      call.model = res.ok ? (report?.model ?? body?.model) : `HTTP ${res.status}`;
      call.waited = report?.totalWaitMs ?? 0;
      call.skipped = report?.skipped.includes(0) ?? false; // the primary was open or cooling
    } catch (e) {
      call.ok = false;
      call.model = e.name;
    }
    call.end = now();
    status.textContent = `Running… ${calls.filter((c) => c.end !== null).length} of ${LIVE_CALLS} calls done`;
    redraw();
  };

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  await Promise.all(calls.map((call, i) => sleep(i * LIVE_EVERY_MS).then(() => runOne(call))));
  cancelAnimationFrame(frame);
  frame = 0;
  drawTimeline(calls, now(), marks);

  const attempts = sum(calls.map((c) => c.attempts.length));
  const fallbacks = calls.filter((c) => c.route > 0).length;
  status.textContent = `${calls.filter((c) => c.ok).length} of ${LIVE_CALLS} calls succeeded · ` +
    `${attempts} attempts · ${fallbacks} served by ${config.fallback.model} · ` +
    `${fmtMs(sum(calls.map((c) => c.waited ?? 0)))} spent waiting · ${fmtMs(now())} in all`;
  status.dataset.state = "done";
  button.disabled = false;
  button.textContent = "Run again";
}

// ---------------------------------------------------------------------------------------------
// A streamed call: the first stream fails in-band before its first token, the retry serves it.

const STREAM_OPTIONS = { backoff: { initialMs: 300, maxMs: 600 }, firstTokenTimeoutMs: 5000 };

function showStreamCode() {
  $("#stream-code").textContent =
    `const retryFetch = createRetryFetch(${compact(STREAM_OPTIONS)});\n` +
    `const res = await retryFetch("<stream mock>/v1/messages", { method: "POST", body });\n` +
    `for await (const chunk of res.body) show(chunk); // one stream: the served attempt's`;
}

async function runStream() {
  const button = $("#stream-run");
  const status = $("#stream-status");
  const out = $("#stream-text");
  const log = $("#stream-events");
  button.disabled = true;
  status.dataset.state = "running";
  status.textContent = "Streaming…";
  out.textContent = "";
  log.replaceChildren();
  await fetch(config.streamReset, { method: "POST" });
  const t0 = performance.now();
  const line = (text, cls) => {
    const li = document.createElement("li");
    li.textContent = `${fmtMs(performance.now() - t0).padStart(6)}  ${text}`;
    if (cls) li.className = cls;
    log.append(li);
  };
  const onEvent = (e) => {
    if (e.type === "attempt") line(`attempt ${e.attempt} sent`);
    else if (e.type === "wait") line(`waiting ${fmtMs(e.delayMs)} (${e.wait})`);
    else if (e.type === "retry") line(`retrying: the stream failed after its ${e.status}, before any token (${e.reason})`, "failed");
    else if (e.type === "commit") line(`first token at ${fmtMs(e.firstTokenMs)}: committed, the rest passes straight through`);
  };
  const retryFetch = createRetryFetch({ ...STREAM_OPTIONS, onEvent });
  const res = await retryFetch(config.stream.url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: config.stream.model, stream: true, messages: [{ role: "user", content: "Hello" }] }),
  });
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const chunk of res.body) {
    buffered += decoder.decode(chunk, { stream: true });
    const events = buffered.split("\n\n");
    buffered = events.pop();
    for (const ev of events) {
      const data = /^data: (.*)$/m.exec(ev)?.[1];
      const json = data ? JSON.parse(data) : null;
      if (json?.type === "content_block_delta") out.textContent += json.delta.text;
      if (json?.type === "error") line(`the caller saw an error event: ${json.error.type}`, "failed");
    }
  }
  const report = retryReport(res);
  line(`stream ended: ${report.attempts.length} attempts, the first ${report.attempts[0].inStream ? "failed in the stream" : report.attempts[0].reason}`);
  status.textContent = `${report.attempts.length} attempts · first token at ${fmtMs(report.firstTokenMs)} · the text above is the second stream's, read once`;
  status.dataset.state = "done";
  button.disabled = false;
  button.textContent = "Stream again";
}

const statusClass = (s) => (s === 200 ? "s200" : s === 429 ? "s429" : s >= 500 ? "s5xx" : "sother");

function drawTimeline(calls, elapsed, marks = []) {
  const W = 980, L = 62, R = 150, T = 36, ROW = 26, AXIS = 34;
  const H = T + calls.length * ROW + AXIS;
  const xTicks = ticks(Math.max(elapsed, 1000), 8);
  const top = xTicks[xTicks.length - 1];
  const x = (ms) => L + (ms / top) * (W - L - R);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "attempts of each call over time" });
  const bottom = T + calls.length * ROW;
  for (const t of xTicks) {
    root.append(svg("line", { x1: x(t), x2: x(t), y1: T, y2: bottom, class: "grid-line" }));
    root.append(text(x(t), bottom + 15, fmtSecTick(t), { "text-anchor": "middle" }));
  }
  root.append(text(L + (W - L - R) / 2, H - 3, "time since the run started", { "text-anchor": "middle" }));
  root.append(svg("line", { x1: L, x2: W - R, y1: bottom, y2: bottom, class: "axis" }));

  // Client-wide state: a 429's wait hint cools the route; breaker changes (close ones share a label).
  const labels = [];
  for (const m of marks) {
    const at = x(m.t);
    if (m.coolMs !== undefined) {
      root.append(svg("rect", { x: at, y: T, width: x(m.t + m.coolMs) - at, height: bottom - T, class: "cooling" }));
      labels.push({ at, text: `primary cooling (${m.hint} ${fmtMs(m.coolMs)})`, cls: "cool" });
      continue;
    }
    root.append(svg("line", { x1: at, x2: at, y1: T - 4, y2: bottom, class: `breaker ${m.breaker}` }));
    const last = labels.findLast((l) => l.breaker);
    if (last && at - last.at < 60) {
      last.text += ` → ${m.breaker}`;
      last.cls = m.breaker;
    } else {
      labels.push({ at, text: `breaker ${m.breaker}`, cls: m.breaker, breaker: true });
    }
  }
  const lineEnds = [-Infinity, -Infinity]; // two lines of labels above the rows
  for (const l of labels) {
    const width = l.text.length * 6; // about 6 px a character at 10.5 px
    const left = Math.min(l.at + 3, W - width);
    const line = Math.max(0, lineEnds.findIndex((e) => left > e + 8));
    lineEnds[line] = left + width;
    root.append(text(left, T - 6 - line * 13, l.text, { class: `mark-label ${l.cls}` }));
  }

  calls.forEach((call, i) => {
    const cy = T + i * ROW + ROW / 2;
    const g = svg("g", { "data-testid": "live-row", "data-call": call.n, "data-done": call.end !== null });
    g.append(text(8, cy + 4, `call ${call.n}`, { class: "row-label" }));
    if (call.start !== null) {
      g.append(svg("line", { x1: x(call.start), x2: x(call.end ?? elapsed), y1: cy, y2: cy, class: "span" }));
    }
    call.attempts.forEach((a, k) => {
      const prev = call.attempts[k - 1];
      if (prev?.t1 != null) g.append(svg("line", { x1: x(prev.t1), x2: x(a.t0), y1: cy, y2: cy, class: "wait" }));
      const end = a.t1 ?? elapsed;
      g.append(svg("rect", { x: x(a.t0), y: cy - 3, width: Math.max(1, x(end) - x(a.t0)), height: 6, class: "attempt-bar" }));
    });
    if (call.skipped) {
      const skip = svg("circle", { cx: x(call.start), cy, r: 5, class: "skipped", "data-testid": "live-skipped" });
      skip.append(svg("title", {}, ["the primary was skipped: its breaker was open or it was cooling after a wait hint"]));
      g.append(skip);
    }
    call.attempts.forEach((a) => {
      const at = x(a.t1 ?? a.t0);
      const cls = a.t1 === null ? "pending" : statusClass(a.status);
      const attrs = {
        "data-testid": "live-attempt",
        "data-status": a.status ?? "",
        "data-route": a.route,
        "data-fallback": a.route > 0,
      };
      const mark = a.route > 0
        ? svg("rect", { ...attrs, x: at - 5, y: cy - 5, width: 10, height: 10, transform: `rotate(45 ${at} ${cy})`, class: `${cls} fb` })
        : svg("circle", { ...attrs, cx: at, cy, r: 6, class: cls });
      mark.append(svg("title", {}, [`${a.route ? "fallback" : "primary"}: ${a.status ?? "…"}` + (a.t1 !== null ? ` after ${fmtMs(a.t1 - a.t0)}` : "")]));
      g.append(mark);
    });
    if (call.end !== null) {
      const cls = !call.ok ? "failed" : call.route > 0 ? "fallback" : "primary";
      g.append(text(W - R + 12, cy + 4, call.model ?? "?", { class: `model ${cls}`, "data-testid": "live-model" }));
    }
    root.append(g);
  });
  $("#live-timeline").replaceChildren(root);
}

// ---------------------------------------------------------------------------------------------
// 3. Retry storm

const STORM_BUCKET_MS = 250;

function renderStorm() {
  const clients = Number($("#in-clients").value);
  const capacity = Number($("#in-capacity").value);
  const box = $("#storm-error");
  if (!Number.isInteger(clients) || clients < 1 || clients > 10000 || !Number.isInteger(capacity) || capacity < 1) {
    box.textContent = "clients must be a whole number from 1 to 10000, capacity a whole number ≥ 1";
    box.hidden = false;
    return;
  }
  let rows;
  try {
    const run = (jitter, budget, pacing) => {
      const options = { maxAttempts: 8, breaker: false, deadlineMs: 600000, backoff: { initialMs: 100, jitter }, budget: budget ? {} : false, pacing };
      return { jitter, budget, pacing, ...simulateStorm(options, clients, capacity, 20, STORM_BUCKET_MS, SEED) };
    };
    // The study's comparison (backoff and jitter alone, with and without the budget), then the
    // library's defaults: pacing learned from the 429s, and the budget.
    rows = [...JITTERS.flatMap((jitter) => [run(jitter, false, false), run(jitter, true, false)]), run("full", true, true)];
  } catch (e) {
    box.textContent = errorText(e);
    box.hidden = false;
    return;
  }
  box.hidden = true;

  const span = Math.max(...rows.map((r) => r.timeline.length));
  const peak = Math.max(...rows.flatMap((r) => r.timeline));
  $("#storm-scale").textContent = `0–${fmtMs(span * STORM_BUCKET_MS)}, √ scale, dashed: capacity`;
  $("#storm-table tbody").replaceChildren(
    ...rows.map((r) => {
      const tr = document.createElement("tr");
      tr.dataset.testid = "storm-row";
      tr.dataset.jitter = r.jitter;
      tr.dataset.budget = r.budget ? "on" : "off";
      tr.dataset.pacing = r.pacing ? "on" : "off";
      tr.className = r.pacing ? "first paced" : r.budget ? "budget-on" : "first";
      const cell = (content, cls, col) => {
        const td = document.createElement("td");
        if (cls) td.className = cls;
        if (col) td.dataset.col = col;
        td.append(content);
        tr.append(td);
        return td;
      };
      const name = document.createElement("span");
      name.innerHTML = r.pacing ? "<strong>defaults</strong>: full + pacing"
        : r.budget ? "" : `<span class="swatch" style="background:var(--${r.jitter})"></span>${r.jitter}`;
      cell(name);
      cell(r.budget ? "on" : "off", "", "budget");
      cell(r.requests.toLocaleString("en"), "num", "requests");
      cell(r.succeeded.toLocaleString("en"), "num", "succeeded");
      cell(r.failed.toLocaleString("en"), "num", "failed");
      cell(fmtMs(r.finishMs), "num", "finish");
      cell(sparkline(r, span, peak, capacity), "spark");
      return tr;
    }),
  );

  const get = (jitter, budget) => rows.find((r) => r.jitter === jitter && r.budget === budget && !r.pacing);
  const none = get("none", false), full = get("full", false), fullBudget = get("full", true);
  const paced = rows.find((r) => r.pacing);
  $("#storm-summary").innerHTML =
    `In AWS's <em>Exponential Backoff and Jitter</em> study (Marc Brooker, 2015), clients using plain ` +
    `exponential backoff kept retrying in synchronized waves that the server turned away together; ` +
    `adding jitter spread the retries out, cutting both the work done and the time for the contention to clear. ` +
    `The waves show in the no-jitter row above: with ${clients.toLocaleString("en")} clients and room for ` +
    `${capacity} requests a second, no jitter takes <strong>${fmtMs(none.finishMs)}</strong> to drain the storm, ` +
    `full jitter <strong>${fmtMs(full.finishMs)}</strong>. The retry budget (gRPC-style retry throttling) sends far fewer ` +
    `requests — <strong>${fullBudget.requests.toLocaleString("en")}</strong> instead of ` +
    `<strong>${full.requests.toLocaleString("en")}</strong> with full jitter — at the cost of failing ` +
    `<strong>${fullBudget.failed.toLocaleString("en")}</strong> calls fast instead of waiting the overload out. ` +
    `The library's defaults do neither: each client's pacer learns from the 429s the rate the provider served, ` +
    `and the retries wait for their slots — <strong>${paced.succeeded.toLocaleString("en")}</strong> of ` +
    `${clients.toLocaleString("en")} calls served with <strong>${paced.requests.toLocaleString("en")}</strong> requests, ` +
    `in ${fmtMs(paced.finishMs)}.`;
}

function sparkline(r, span, peak, capacity) {
  const W = 270, H = 40;
  const bw = W / Math.max(1, span);
  // A square-root scale: the first burst is far above everything after it.
  const y = (v) => H - 1 - Math.sqrt(v / Math.max(1, peak)) * (H - 4);
  const root = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, "aria-label": "requests over time" });
  root.append(svg("line", { x1: 0, x2: W, y1: H - 0.5, y2: H - 0.5, class: "axis" }));
  const d = r.timeline.map((v, i) => `M${(i * bw + 0.5).toFixed(1)} ${H - 1}V${y(v).toFixed(1)}h${Math.max(1, bw - 1).toFixed(1)}V${H - 1}`).join("");
  root.append(svg("path", { d, fill: `var(--${r.jitter})`, opacity: r.budget ? 0.55 : 0.9 }));
  const capY = y((capacity * STORM_BUCKET_MS) / 1000);
  if (capY > 1) root.append(svg("line", { x1: 0, x2: W, y1: capY, y2: capY, class: "cap" }));
  return root;
}

// ---------------------------------------------------------------------------------------------
// Start

async function main() {
  config = await (await fetch("config.json")).json();
  showLiveCode();
  showStreamCode();
  $("#stream-run").addEventListener("click", () =>
    runStream().catch((e) => {
      $("#stream-status").textContent = `The stream failed: ${errorText(e)}`;
      $("#stream-status").dataset.state = "error";
      $("#stream-run").disabled = false;
    }),
  );
  $("#planner-form").addEventListener("input", renderPlanner);
  $("#planner-form").addEventListener("submit", (e) => e.preventDefault());
  $("#storm-form").addEventListener("submit", (e) => {
    e.preventDefault();
    renderStorm();
  });
  $("#live-run").addEventListener("click", () =>
    runLive().catch((e) => {
      $("#live-status").textContent = `The run failed: ${errorText(e)}`;
      $("#live-status").dataset.state = "error";
      $("#live-run").disabled = false;
    }),
  );
  renderPlanner();
  renderStorm();
  drawTimeline(Array.from({ length: LIVE_CALLS }, (_, i) => ({ n: i + 1, attempts: [], start: null, end: null })), 0);
  document.body.dataset.ready = "true";
}

main().catch((e) => {
  const box = $("#load-error");
  box.textContent = `The demo failed to start: ${errorText(e)}`;
  box.hidden = false;
  console.error(e);
});

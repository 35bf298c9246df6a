// The storm benchmark's mock LLM provider: an OpenAI-style chat-completions endpoint on
// 127.0.0.1 (port 0), run in its own process (bench/storm.mjs forks it) so that the load
// generator and the clients under test never share its event loop.
//
// Protocol over the fork IPC channel:
//   child  → parent  { type: "ready", port }            listening
//   parent → child   { type: "start", config }          arm the behaviour (see Mock below)
//   child  → parent  { type: "started" }
//   parent → child   { type: "stop" }
//   child  → parent  { type: "log", stoppedAt, times, statuses, loopDelayP99Ms, loopDelayMaxMs }
//                                                       then the server closes and the child exits
//
// config = {
//   t0,            // absolute time (performance.timeOrigin + performance.now(), ms) the scenario starts
//   mode,          // "bucket": token bucket + optional outage; "burst429": each call's first attempt
//                  //  429s, later ones 200 (keyed by the x-call-id request header)
//   rate, burst,   // token bucket: tokens per second, capacity (200, 20)
//   latencyMs,     // fixed latency of a 200 (5)
//   outage,        // null or { fromMs, toMs }: 503 to every request in [t0+fromMs, t0+toMs)
//   limitHeaders,  // false: no x-ratelimit-* headers (a provider that tells only by its 429s)
// }
//
// Each response's time (ms since t0, taken when the request arrived) and status are logged
// and sent back on "stop", so the parent can count requests in any time window and find the
// first 200 after a recovery.
import http from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";

const now = () => performance.timeOrigin + performance.now();

/** A duration in OpenAI's x-ratelimit-reset-* format (Go's time.Duration style): "5ms", "1s",
 * "1.5s", "2m0s", "1h0m0s". Sub-second values are rounded UP to whole ms, so a client that waits
 * exactly that long never arrives before the bucket is full. */
export function formatReset(ms) {
  if (ms <= 0) return "0s";
  if (Math.ceil(ms) < 1000) return `${Math.ceil(ms)}ms`;
  const trim = (s) => String(Math.round(s * 1000) / 1000); // up to 3 decimals, no trailing zeros
  let rest = ms / 1000;
  const h = Math.floor(rest / 3600);
  rest -= h * 3600;
  const m = Math.floor(rest / 60);
  rest -= m * 60;
  if (h > 0) return `${h}h${m}m${trim(rest)}s`;
  if (m > 0) return `${m}m${trim(rest)}s`;
  return `${trim(rest)}s`;
}

const COMPLETION = (id) =>
  JSON.stringify({
    id: `chatcmpl-${id}`,
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model: "gpt-4o-mini",
    choices: [{ index: 0, message: { role: "assistant", content: "Hi!" }, logprobs: null, finish_reason: "stop" }],
    usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 },
  });
const RATE_LIMITED = JSON.stringify({
  error: { message: "Rate limit reached", type: "requests", param: null, code: "rate_limit_exceeded" },
});
const UNAVAILABLE = JSON.stringify({
  error: { message: "The server is temporarily unavailable", type: "server_error", param: null, code: "service_unavailable" },
});

class Mock {
  constructor(config) {
    this.c = config;
    this.tokens = config.burst; // the bucket starts full
    this.refilledAt = now();
    this.seen = new Map(); // burst429: attempts per x-call-id
    this.times = []; // ms since t0, per request
    this.statuses = [];
    this.served = 0;
  }

  /** Continuous refill at `rate` per second, capped at `burst`. */
  refill(t) {
    this.tokens = Math.min(this.c.burst, this.tokens + ((t - this.refilledAt) * this.c.rate) / 1000);
    this.refilledAt = t;
  }

  /** The OpenAI-style rate-limit headers, describing the bucket after this request. */
  limitHeaders() {
    if (this.c.limitHeaders === false) return {};
    const resetMs = ((this.c.burst - this.tokens) * 1000) / this.c.rate;
    return {
      "x-ratelimit-limit-requests": String(this.c.burst),
      "x-ratelimit-remaining-requests": String(Math.floor(this.tokens)),
      "x-ratelimit-reset-requests": formatReset(resetMs),
    };
  }

  /** Decides a request's answer at its arrival: [status, headers, body, delayMs]. */
  decide(req, t) {
    const rel = t - this.c.t0;
    const json = { "content-type": "application/json" };
    if (this.c.mode === "burst429") {
      const id = String(req.headers["x-call-id"] ?? "");
      const n = (this.seen.get(id) ?? 0) + 1;
      this.seen.set(id, n);
      if (n === 1) {
        return [429, { ...json, "retry-after": "1", "retry-after-ms": "1000" }, RATE_LIMITED, 0];
      }
      return [200, json, COMPLETION(++this.served), this.c.latencyMs];
    }
    const o = this.c.outage;
    if (o && rel >= o.fromMs && rel < o.toMs) return [503, json, UNAVAILABLE, 0];
    this.refill(t);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return [200, { ...json, ...this.limitHeaders() }, COMPLETION(++this.served), this.c.latencyMs];
    }
    return [
      429,
      { ...json, "retry-after": "1", "retry-after-ms": "1000", ...this.limitHeaders() },
      RATE_LIMITED,
      0,
    ];
  }

  handle(req, res) {
    const t = now();
    const [status, headers, body, delayMs] = this.decide(req, t);
    this.times.push(t - this.c.t0);
    this.statuses.push(status);
    const send = () => {
      if (res.destroyed) return;
      res.writeHead(status, { ...headers, "content-length": Buffer.byteLength(body) });
      res.end(body);
    };
    // Drain the request body before answering (the client may still be sending it).
    req.resume();
    req.on("end", () => (delayMs > 0 ? setTimeout(send, delayMs) : send()));
  }
}

// ---- the child process ---------------------------------------------------------------------
if (process.send) {
  let mock = null;
  // Event-loop delay beyond the sampling timer's own period: how late this process answers.
  const LOOP_RES_MS = 5;
  const loop = monitorEventLoopDelay({ resolution: LOOP_RES_MS });
  const server = http.createServer((req, res) => {
    if (!mock) {
      res.writeHead(503).end();
      return;
    }
    mock.handle(req, res);
  });
  // Keep idle keep-alive sockets open longer than any pause in a scenario: a server closing an
  // idle socket just as the client reuses it would show up as spurious network errors.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  server.requestTimeout = 0;

  server.listen(0, "127.0.0.1", () => {
    process.send({ type: "ready", port: server.address().port });
  });

  process.on("message", (msg) => {
    if (msg.type === "start") {
      mock = new Mock(msg.config);
      loop.reset();
      loop.enable();
      process.send({ type: "started" });
    } else if (msg.type === "stop") {
      loop.disable();
      const m = mock ?? new Mock({ t0: 0, burst: 0, rate: 1 });
      process.send(
        {
          type: "log",
          stoppedAt: now() - m.c.t0, // the end of the observation, ms since t0
          times: Float64Array.from(m.times),
          statuses: Uint16Array.from(m.statuses),
          loopDelayP99Ms: Math.max(0, loop.percentile(99) / 1e6 - LOOP_RES_MS),
          loopDelayMaxMs: Math.max(0, loop.max / 1e6 - LOOP_RES_MS),
        },
        () => {
          server.close(() => process.disconnect());
          server.closeAllConnections();
        },
      );
    }
  });
  // The parent went away (crashed or killed): do not linger.
  process.on("disconnect", () => {
    server.closeAllConnections();
    server.close();
  });
}

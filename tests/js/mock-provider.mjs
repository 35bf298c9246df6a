// A scripted, loopback-only mock of an OpenAI-style LLM provider.
//
// Dependency-free (node:http, node:crypto, node:perf_hooks only), so the Node, Deno, workerd and
// browser suites and the demo can all share it: the server always runs in Node (or Deno's
// node:http), and whatever runtime is under test talks to it over http://127.0.0.1:<port>.
//
// Usage
//
//   import { startMockProvider } from "./mock-provider.mjs";
//   const mock = await startMockProvider({
//     script: [
//       { status: 429, headers: { "retry-after": "1" } },
//       { status: 503, body: "upstream busy" },
//       { status: 200 },                         // default body: a chat.completion JSON
//     ],
//     cors: false,                               // true | "expose" for browser suites
//   });
//   await fetch(mock.url + "/v1/chat/completions", { method: "POST", body: "{}" });
//   mock.requests[0].t;                          // performance.now() at arrival
//   await mock.close();
//
// Script steps (one consumed per request, in arrival order; see `exhausted` below)
//
//   {
//     status?:  number            default 200
//     headers?: object            response headers; numbers are stringified
//     body?:    string | Uint8Array | object | ((req) => string | Uint8Array | object)
//                                 an object is sent as JSON; default: on 200 an OpenAI chat
//                                 completion whose `model` echoes the request's model, otherwise
//                                 an OpenAI-style error JSON `{ error: { message, type, code } }`
//     delayMs?: number            wait this long before sending the status line and headers
//     hang?:    boolean           never respond (until the client gives up or close() is called)
//     destroy?: boolean           read the request, then reset the connection without a response
//     chunks?:  Array<string | Uint8Array>   stream the body in these pieces (e.g. SSE events)
//     chunkDelayMs?: number       pause between chunks (default 0)
//   }
//
// Options
//
//   script     array of steps (default [{ status: 200 }])
//   cors       false (default) | true | "expose". true answers OPTIONS preflights (204, not
//              recorded in `requests`, recorded in `preflights`) and adds
//              Access-Control-Allow-Origin/Headers/Methods: * to every response; "expose" also
//              sends Access-Control-Expose-Headers: * plus the retry-relevant header names
//              explicitly (a wildcard is ignored by browsers on credentialed requests).
//   exhausted  "repeat-last" (default): the last step repeats once the script is used up;
//              "cycle": start again from the first step; "error": answer 599 with a JSON error
//              body saying the script was exhausted (so a test sees unexpected extra requests).
//   limit      none (default) | { rate, burst }: a request rate limit, a token bucket of `burst`
//              refilled at `rate` a second (starting full) that every request takes a token from;
//              a request that finds none gets a 429 with `Retry-After: 1` (the script step is
//              not used). Every answer carries OpenAI's x-ratelimit-{limit,remaining,reset}-requests,
//              unless `headers: false`; `retryAfterMs`: the 429's hint is `retry-after-ms: <n>`.
//   host       listen address (default "127.0.0.1")
//   port       listen port (default 0: an ephemeral port; read it back from the result)
//
// Resolves to
//
//   url          "http://127.0.0.1:<port>" (no trailing slash)
//   port         the port number
//   requests     array of recorded requests, in arrival order:
//                  { index, method, path, headers (lowercased names → string values),
//                    body (Buffer), sha256 (hex of body), json (parsed body or null),
//                    t (performance.now() ms at arrival), bodyAt (ms when the body was complete),
//                    step (the script step used), closed (Promise<number>: resolves with
//                    performance.now() when the exchange's connection or response closed),
//                    closedEarly (true once the client went away before a response was finished) }
//                `body`, `sha256` and `json` are filled in when the request body has been read;
//                the server only answers after that, so once the client has a response they are
//                set.
//   preflights   recorded OPTIONS preflights (cors mode only), same shape
//   setScript(s) replace the script and restart it from its first step (requests are kept)
//   waitForRequests(n, timeoutMs = 5000) resolves once n requests have arrived
//   close()      stop listening, destroy every open socket (hung requests included), clear timers
//
// Also exported: chatCompletion(model, content), errorBody(status, message), getClosedPort(),
// CORS_EXPOSED_HEADERS.
//
// Run directly for manual or cross-runtime use:
//   node tests/js/mock-provider.mjs --port 8787 --cors expose --script '[{"status":429,"headers":{"retry-after":"1"}},{"status":200}]'

import http from "node:http";
import { createHash } from "node:crypto";
import { performance } from "node:perf_hooks";

export const CORS_EXPOSED_HEADERS = [
  "retry-after",
  "retry-after-ms",
  "x-should-retry",
  "x-ratelimit-reset-requests",
  "x-ratelimit-reset-tokens",
  "x-ratelimit-remaining-requests",
  "x-ratelimit-remaining-tokens",
  "x-ratelimit-limit-requests",
  "x-ratelimit-limit-tokens",
  "anthropic-ratelimit-requests-reset",
  "anthropic-ratelimit-tokens-reset",
  "anthropic-ratelimit-input-tokens-reset",
  "anthropic-ratelimit-output-tokens-reset",
  "x-request-id",
  "request-id",
  "openai-processing-ms",
  "content-type",
  "content-length",
];

let completionCounter = 0;

/** An OpenAI-style chat completion object. */
export function chatCompletion(model = "gpt-4o-mini", content = "ok") {
  completionCounter += 1;
  return {
    id: `chatcmpl-mock-${completionCounter}`,
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [
      {
        index: 0,
        message: { role: "assistant", content, refusal: null },
        logprobs: null,
        finish_reason: "stop",
      },
    ],
    usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 },
  };
}

/** An OpenAI-style error body for a status. */
export function errorBody(status, message) {
  const type =
    status === 429
      ? "rate_limit_exceeded"
      : status >= 500
        ? "server_error"
        : status === 401
          ? "invalid_api_key"
          : "invalid_request_error";
  return {
    error: {
      message: message ?? `mock provider: status ${status}`,
      type,
      param: null,
      code: status === 429 ? "rate_limit_exceeded" : null,
    },
  };
}

/** A loopback port that was just in use and is now closed (connections to it are refused). */
export async function getClosedPort(host = "127.0.0.1") {
  const server = http.createServer();
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function lowerHeaders(rawHeaders) {
  const out = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    const value = rawHeaders[i + 1];
    out[name] = name in out ? `${out[name]}, ${value}` : value;
  }
  return out;
}

function toBuffer(body) {
  if (body == null) return Buffer.alloc(0);
  if (typeof body === "string") return Buffer.from(body, "utf8");
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return Buffer.from(JSON.stringify(body), "utf8");
}

function isJsonish(body) {
  return body != null && typeof body === "object" && !(body instanceof Uint8Array);
}

export async function startMockProvider({
  script = [{ status: 200 }],
  cors = false,
  exhausted = "repeat-last",
  limit,
  host = "127.0.0.1",
  port: listenPort = 0,
} = {}) {
  if (!["repeat-last", "cycle", "error"].includes(exhausted)) {
    throw new RangeError(`startMockProvider: exhausted must be "repeat-last", "cycle" or "error"`);
  }
  let steps = normalizeScript(script);
  let next = 0;
  const requests = [];
  const preflights = [];
  const sockets = new Set();
  const timers = new Set();
  const waiters = [];
  let closing = false;

  function normalizeScript(s) {
    if (!Array.isArray(s) || s.length === 0) return [{ status: 200 }];
    return s.map((step) => ({ status: 200, ...step }));
  }

  function takeStep() {
    const i = next++;
    if (i < steps.length) return steps[i];
    if (exhausted === "cycle") return steps[i % steps.length];
    if (exhausted === "error") {
      return {
        status: 599,
        body: { error: { message: `mock provider: script exhausted (request #${i + 1})`, type: "mock" } },
      };
    }
    return steps[steps.length - 1];
  }

  // The rate limit (see `limit`): tokens, and when they were last refilled.
  let tokens = limit?.burst ?? 0;
  let refilledAt = performance.now();
  /** The step for a request under the limit: the script's, or a 429; with the limit's headers. */
  function limited() {
    const t = performance.now();
    tokens = Math.min(limit.burst, tokens + ((t - refilledAt) * limit.rate) / 1000);
    refilledAt = t;
    const admitted = tokens >= 1;
    if (admitted) tokens -= 1;
    const headers =
      limit.headers === false
        ? {}
        : {
            "x-ratelimit-limit-requests": limit.burst,
            "x-ratelimit-remaining-requests": Math.floor(tokens),
            "x-ratelimit-reset-requests": `${Math.ceil(((limit.burst - tokens) * 1000) / limit.rate)}ms`,
          };
    const hint = limit.retryAfterMs === undefined ? { "retry-after": "1" } : { "retry-after-ms": String(limit.retryAfterMs) };
    if (!admitted) return { status: 429, headers: { ...headers, ...hint } };
    const step = takeStep();
    return { ...step, headers: { ...headers, ...step.headers } };
  }

  function later(ms, fn) {
    const id = setTimeout(() => {
      timers.delete(id);
      fn();
    }, ms);
    timers.add(id);
    return id;
  }

  function corsHeaders(req, extraExpose = []) {
    if (!cors) return {};
    const requested = req.headers["access-control-request-headers"];
    const h = {
      "access-control-allow-origin": "*",
      // "*" does not cover Authorization in the Fetch spec, so echo what was asked for too.
      "access-control-allow-headers": ["*", "authorization", requested].filter(Boolean).join(", "),
      "access-control-allow-methods": "*",
    };
    if (req.headers["access-control-request-private-network"]) {
      h["access-control-allow-private-network"] = "true";
    }
    if (cors === "expose") {
      const names = new Set(["*", ...CORS_EXPOSED_HEADERS, ...extraExpose.map((n) => n.toLowerCase())]);
      h["access-control-expose-headers"] = [...names].join(", ");
    }
    return h;
  }

  function notifyWaiters() {
    for (const w of [...waiters]) {
      if (requests.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(requests.slice());
      }
    }
  }

  const server = http.createServer((req, res) => {
    const t = performance.now();
    const url = new URL(req.url, "http://mock");
    let resolveClosed;
    const record = {
      index: -1,
      method: req.method,
      path: url.pathname + url.search,
      headers: lowerHeaders(req.rawHeaders),
      body: null,
      sha256: null,
      json: null,
      t,
      bodyAt: null,
      step: null,
      closed: new Promise((r) => (resolveClosed = r)),
      closedEarly: false,
    };
    res.on("close", () => {
      if (!res.writableFinished) record.closedEarly = true;
      resolveClosed(performance.now());
    });

    const isPreflight = cors && req.method === "OPTIONS" && req.headers["access-control-request-method"];
    if (isPreflight) {
      preflights.push(record);
    } else {
      record.index = requests.length;
      record.step = limit ? limited() : takeStep();
      requests.push(record);
      notifyWaiters();
    }

    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("error", () => {});
    req.on("end", () => {
      record.body = Buffer.concat(chunks);
      record.sha256 = createHash("sha256").update(record.body).digest("hex");
      record.bodyAt = performance.now();
      try {
        record.json = record.body.length ? JSON.parse(record.body.toString("utf8")) : null;
      } catch {
        record.json = null;
      }
      if (isPreflight) {
        res.writeHead(204, { ...corsHeaders(req), "content-length": "0" });
        res.end();
        return;
      }
      respond(req, res, record);
    });
  });

  function respond(req, res, record) {
    const step = record.step;
    if (step.hang) return; // never answer; close() or the client tears the socket down
    if (step.destroy) {
      req.socket.destroy();
      return;
    }
    const send = () => {
      if (res.destroyed || closing) return;
      const status = step.status ?? 200;
      let body = typeof step.body === "function" ? step.body(record) : step.body;
      if (body === undefined && !step.chunks) {
        body = status === 200 ? chatCompletion(record.json?.model ?? "gpt-4o-mini") : errorBody(status);
      }
      const headers = {};
      if (isJsonish(body)) headers["content-type"] = "application/json";
      else if (typeof body === "string") headers["content-type"] = "text/plain; charset=utf-8";
      else if (step.chunks) headers["content-type"] = "text/event-stream";
      for (const [k, v] of Object.entries(step.headers ?? {})) headers[k.toLowerCase()] = String(v);
      Object.assign(headers, corsHeaders(req, Object.keys(step.headers ?? {})));
      if (step.chunks) {
        res.writeHead(status, headers);
        const pieces = step.chunks.slice();
        const pump = () => {
          if (res.destroyed || closing) return;
          if (pieces.length === 0) return void res.end();
          res.write(toBuffer(pieces.shift()));
          if (step.chunkDelayMs) later(step.chunkDelayMs, pump);
          else setImmediate(pump);
        };
        pump();
        return;
      }
      const buf = toBuffer(body);
      headers["content-length"] = String(buf.length);
      res.writeHead(status, headers);
      res.end(req.method === "HEAD" ? undefined : buf);
    };
    if (step.delayMs > 0) later(step.delayMs, send);
    else send();
  }

  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });

  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(listenPort, host, resolve);
  });
  const { port } = server.address();

  return {
    url: `http://${host}:${port}`,
    port,
    requests,
    preflights,
    setScript(s) {
      steps = normalizeScript(s);
      next = 0;
    },
    waitForRequests(n, timeoutMs = 5000) {
      if (requests.length >= n) return Promise.resolve(requests.slice());
      return new Promise((resolve, reject) => {
        const w = { n, resolve };
        w.timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`mock provider: ${requests.length} of ${n} requests after ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
    close() {
      closing = true;
      for (const id of timers) clearTimeout(id);
      timers.clear();
      for (const w of waiters.splice(0)) {
        clearTimeout(w.timer);
        w.resolve(requests.slice());
      }
      return new Promise((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
        server.closeAllConnections?.();
      });
    },
  };
}

// CLI: node mock-provider.mjs [--port N (default 0)] [--cors true|expose] [--script JSON] [--exhausted MODE]
const isMain = (() => {
  try {
    return import.meta.url === new URL(`file://${process.argv[1]}`).href;
  } catch {
    return false;
  }
})();
if (isMain) {
  const args = process.argv.slice(2);
  const opt = (name) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const corsArg = opt("cors");
  const mock = await startMockProvider({
    script: opt("script") ? JSON.parse(opt("script")) : undefined,
    cors: corsArg === "expose" ? "expose" : corsArg ? corsArg !== "false" : false,
    exhausted: opt("exhausted") ?? "repeat-last",
    port: Number(opt("port") ?? 0),
  });
  console.log(JSON.stringify({ url: mock.url, port: mock.port }));
  const shutdown = () => mock.close().then(() => process.exit(0));
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
}

// Acceptance suite for fallback routes and per-route circuit breakers, seen from the outside:
// two mock providers on different ports (a primary and a fallback, so different origins), and
// assertions on what each server saw, what the caller got, the events and the report.
import { test, describe } from "node:test";
import assert from "node:assert/strict";

import OpenAI from "openai";
import {
  createRetryFetch,
  retry,
  retryReport,
  CircuitOpenError,
  isCircuitOpenError,
} from "llm-retry";
import { T, mockFor, settle, sleep } from "./helpers.mjs";

const TINY = { initialMs: 5, maxMs: 20 };
const PRIMARY_MODEL = "openai/gpt-4o";
const FALLBACK_MODEL = "anthropic/claude-3-5-haiku-20241022";
const MESSAGES = [{ role: "user", content: "Say ok" }];
const BODY = JSON.stringify({ model: PRIMARY_MODEL, messages: MESSAGES });
const QUOTA = { error: { message: "You exceeded your quota", type: "insufficient_quota", code: "insufficient_quota" } };

/** A primary and a fallback provider, both closed when `t` ends. */
async function twoProviders(t, primaryScript, fallbackScript = [{ status: 200 }]) {
  const primary = await mockFor(t, { script: primaryScript });
  const fallback = await mockFor(t, { script: fallbackScript });
  return { primary, fallback, route: { url: `${fallback.url}/v1/chat/completions`, model: FALLBACK_MODEL } };
}

const post = (headers = {}) => ({ method: "POST", body: BODY, headers: { "content-type": "application/json", ...headers } });
const call = (f, mock, headers) => f(`${mock.url}/v1/chat/completions`, post(headers));
const ofType = (events, type) => events.filter((e) => e.type === type);

describe("fallback routes", () => {
  test("a JSON body given as bytes gets the fallback's model too; bytes that are not a JSON object → TypeError", T, async (t) => {
    const { primary, fallback, route } = await twoProviders(t, [{ status: 503 }]);
    const f = createRetryFetch({ maxAttempts: 1, backoff: TINY, fallbacks: [route] });
    const bytes = (text) => ({ method: "POST", body: new TextEncoder().encode(text) });
    const res = await f(`${primary.url}/v1/chat/completions`, bytes(BODY));
    assert.equal(res.status, 200);
    assert.equal(fallback.requests.length, 1);
    assert.deepEqual(fallback.requests[0].json, { model: FALLBACK_MODEL, messages: MESSAGES });

    const r = await settle(f(`${primary.url}/v1/chat/completions`, bytes("[1, 2]")));
    assert.equal(r.ok, false);
    assert.equal(r.error.name, "TypeError");
    assert.match(r.error.message, /^fallbacks\[0\]\.model needs a JSON object request body$/);
    assert.equal(fallback.requests.length, 1, "nothing was sent to the fallback");
  });

  test("a first attempt sent straight to the fallback (the primary's breaker open) whose request cannot be built → that TypeError, and the client goes on", T, async (t) => {
    const { primary, fallback, route } = await twoProviders(t, [{ status: 503 }]);
    const f = createRetryFetch({ maxAttempts: 1, backoff: TINY, fallbacks: [route], breaker: { failureThreshold: 1, cooldownMs: 60_000 } });
    assert.equal((await call(f, primary)).status, 200, "the fallback served; the primary's breaker opened");
    const sent = [primary.requests.length, fallback.requests.length];
    // The primary's model (so its breaker's key), in a body that is not JSON.
    const broken = `{"model": "${PRIMARY_MODEL}", "messages": [`;
    const r = await settle(f(`${primary.url}/v1/chat/completions`, { method: "POST", body: broken }));
    assert.equal(r.ok, false);
    assert.equal(r.error.name, "TypeError");
    assert.match(r.error.message, /^fallbacks\[0\]\.model needs a JSON object request body$/);
    assert.deepEqual([primary.requests.length, fallback.requests.length], sent, "nothing was sent");
    const res = await call(f, primary);
    assert.equal(res.status, 200);
    assert.equal((await res.json()).model, FALLBACK_MODEL, "the next call went to the fallback");
  });

  test("primary 503 on every attempt → the fallback serves with the rewritten model", T, async (t) => {
    const { primary, fallback, route } = await twoProviders(t, [{ status: 503 }]);
    const events = [];
    const f = createRetryFetch({ maxAttempts: 3, backoff: TINY, fallbacks: [route], onEvent: (e) => events.push(e) });
    const res = await call(f, primary);
    assert.equal(res.status, 200);
    assert.equal((await res.json()).model, FALLBACK_MODEL, "the caller got the fallback's completion");
    assert.equal(primary.requests.length, 3);
    assert.deepEqual(primary.requests.map((r) => r.json?.model), [PRIMARY_MODEL, PRIMARY_MODEL, PRIMARY_MODEL]);
    assert.equal(fallback.requests.length, 1);
    assert.equal(fallback.requests[0].path, "/v1/chat/completions");
    assert.equal(fallback.requests[0].json?.model, FALLBACK_MODEL);
    assert.deepEqual(fallback.requests[0].json?.messages, MESSAGES, "the rest of the body is kept");

    const fb = ofType(events, "fallback");
    assert.equal(fb.length, 1, JSON.stringify(events));
    assert.equal(fb[0].from, 0);
    assert.equal(fb[0].to, 1);
    assert.equal(fb[0].reason, "attempts-exhausted");
    assert.equal(fb[0].toModel, FALLBACK_MODEL);
    const ok = ofType(events, "success");
    assert.equal(ok.length, 1, JSON.stringify(events));
    assert.equal(ok[0].route, 1);
    assert.equal(ok[0].fallback, true);
    assert.equal(ok[0].model, FALLBACK_MODEL);
    assert.equal(ok[0].attempts, 4);

    const report = retryReport(res);
    assert.ok(report, "retryReport(res) is set");
    assert.equal(report.route, 1);
    assert.equal(report.model, FALLBACK_MODEL);
    assert.equal(report.fallback, true);
    assert.deepEqual(report.attempts.map((a) => [a.route, a.status]), [[0, 503], [0, 503], [0, 503], [1, 200]]);
  });

  test("429 insufficient_quota on the primary → one request, then the fallback", T, async (t) => {
    const { primary, fallback, route } = await twoProviders(t, [{ status: 429, body: QUOTA }]);
    const events = [];
    const f = createRetryFetch({ maxAttempts: 3, backoff: TINY, fallbacks: [route], onEvent: (e) => events.push(e) });
    const res = await call(f, primary);
    assert.equal(res.status, 200);
    assert.equal(primary.requests.length, 1);
    assert.equal(fallback.requests.length, 1);
    const fb = ofType(events, "fallback");
    assert.equal(fb.length, 1, JSON.stringify(events));
    assert.equal(fb[0].reason, "insufficient-quota");
    assert.equal(fb[0].status, 429);
  });

  for (const status of [401, 404]) {
    test(`${status} on the primary moves on at once`, T, async (t) => {
      const { primary, fallback, route } = await twoProviders(t, [{ status }]);
      const f = createRetryFetch({ maxAttempts: 3, backoff: TINY, fallbacks: [route] });
      const res = await call(f, primary);
      assert.equal(res.status, 200);
      assert.equal(primary.requests.length, 1);
      assert.equal(fallback.requests.length, 1);
      assert.equal(retryReport(res)?.route, 1);
    });
  }

  for (const status of [400, 422]) {
    test(`${status} on the primary is returned at once; the fallback sees nothing`, T, async (t) => {
      const { primary, fallback, route } = await twoProviders(t, [{ status }]);
      const f = createRetryFetch({ maxAttempts: 3, backoff: TINY, fallbacks: [route] });
      const res = await call(f, primary);
      assert.equal(res.status, status);
      assert.equal((await res.json()).error.type, "invalid_request_error", "the primary's own error body");
      assert.equal(primary.requests.length, 1);
      assert.equal(fallback.requests.length, 0);
      assert.equal(retryReport(res)?.fallback, false);
    });
  }

  test("credentials never cross origins; route headers are sent as given", T, async (t) => {
    const { primary, fallback, route } = await twoProviders(t, [{ status: 503 }], [{ status: 503 }, { status: 200 }]);
    const events = [];
    const f = createRetryFetch({
      maxAttempts: 1,
      backoff: TINY,
      sensitiveHeaders: ["x-org-secret"],
      fallbacks: [route, { ...route, headers: { authorization: "Bearer sk-fallback" } }],
      onEvent: (e) => events.push(e),
    });
    const secrets = {
      authorization: "Bearer sk-primary",
      "x-api-key": "sk-primary",
      "api-key": "sk-primary",
      cookie: "session=sk-primary",
      "x-org-secret": "sk-primary-org",
    };
    const res = await call(f, primary, { ...secrets, "x-request-id": "req-42" });
    assert.equal(res.status, 200);
    assert.equal(primary.requests.length, 1);
    for (const [name, value] of Object.entries(secrets)) assert.equal(primary.requests[0].headers[name], value);
    assert.equal(fallback.requests.length, 2);
    const [plain, keyed] = fallback.requests;
    for (const name of Object.keys(secrets)) {
      assert.equal(plain.headers[name], undefined, `${name} must not reach another origin`);
      if (name !== "authorization") assert.equal(keyed.headers[name], undefined, `${name} must not reach another origin`);
    }
    assert.equal(keyed.headers.authorization, "Bearer sk-fallback", "the route's own key, exactly");
    assert.equal(plain.headers["x-request-id"], "req-42", "non-sensitive headers are carried");
    assert.equal(keyed.headers["x-request-id"], "req-42");
    assert.ok(events.length > 0);
    assert.ok(!JSON.stringify(events).includes("sk-"), `no secrets in events: ${JSON.stringify(events)}`);
  });
});

describe("circuit breaker per route", () => {
  test("opens after 5 failed attempts, skips the primary, probes after the cooldown, closes on recovery", T, async (t) => {
    const { primary, fallback, route } = await twoProviders(t, [{ status: 503 }]);
    const events = [];
    const f = createRetryFetch({
      maxAttempts: 1,
      backoff: TINY,
      breaker: { failureThreshold: 5, cooldownMs: 400, maxCooldownMs: 400 },
      fallbacks: [route],
      onEvent: (e) => events.push(e),
    });
    const breakerMoves = () => ofType(events, "breaker").map((e) => `${e.from}→${e.to}`);
    const callAndCount = async () => {
      const before = [primary.requests.length, fallback.requests.length];
      const res = await call(f, primary);
      assert.equal(res.status, 200);
      await res.text();
      return { res, primary: primary.requests.length - before[0], fallback: fallback.requests.length - before[1] };
    };

    for (let i = 1; i <= 5; i++) {
      const c = await callAndCount();
      assert.deepEqual([c.primary, c.fallback], [1, 1], `call ${i}: primary once, then the fallback`);
    }
    assert.deepEqual(breakerMoves(), ["closed→open"], "the 5th failure opened the primary's breaker");
    const opened = ofType(events, "breaker")[0];
    assert.equal(opened.key, `${primary.url} ${PRIMARY_MODEL}`, "key = origin + model");

    const sixth = await callAndCount();
    assert.deepEqual([sixth.primary, sixth.fallback], [0, 1], "6th call: primary skipped");
    assert.deepEqual(retryReport(sixth.res)?.skipped, [0]);
    assert.equal(retryReport(sixth.res)?.route, 1);
    const seventh = await callAndCount();
    assert.deepEqual([seventh.primary, seventh.fallback], [0, 1], "7th call: primary skipped");
    assert.ok(ofType(events, "skip").some((e) => e.route === 0 && e.reason === "circuit-open"));

    await sleep(450);
    const probe = await callAndCount();
    assert.deepEqual([probe.primary, probe.fallback], [1, 1], "one probe to the primary, then the fallback");
    assert.deepEqual(breakerMoves().slice(1), ["open→half-open", "half-open→open"], "the failed probe re-opened it");
    const afterProbe = await callAndCount();
    assert.deepEqual([afterProbe.primary, afterProbe.fallback], [0, 1], "re-opened: primary skipped again");

    primary.setScript([{ status: 200 }]);
    await sleep(450);
    const recovered = await callAndCount();
    assert.deepEqual([recovered.primary, recovered.fallback], [1, 0], "the probe succeeded on the primary");
    assert.equal(retryReport(recovered.res)?.route, 0);
    assert.deepEqual(breakerMoves().slice(3), ["open→half-open", "half-open→closed"]);
    for (let i = 0; i < 2; i++) {
      const next = await callAndCount();
      assert.deepEqual([next.primary, next.fallback], [1, 0], "closed: calls go to the primary");
    }
  });

  test("every route open → CircuitOpenError, and nothing is sent", T, async (t) => {
    const { primary, fallback, route } = await twoProviders(t, [{ status: 503 }], [{ status: 503 }]);
    const cooldownMs = 500;
    // A deadline shorter than the cooldown: no route can be reached in time, so it fails fast.
    const f = createRetryFetch({
      maxAttempts: 1, backoff: TINY, deadlineMs: 300, breaker: { failureThreshold: 1, cooldownMs }, fallbacks: [route],
    });
    const first = await call(f, primary);
    assert.equal(first.status, 503, "the last route's response stands");
    assert.deepEqual([primary.requests.length, fallback.requests.length], [1, 1]);

    const r = await settle(call(f, primary));
    assert.equal(r.ok, false, `expected a rejection, got ${r.value?.status}`);
    assert.ok(isCircuitOpenError(r.error), `CircuitOpenError expected, got ${r.error}`);
    assert.ok(r.error instanceof CircuitOpenError);
    assert.ok(r.error.retryInMs > 0 && r.error.retryInMs <= cooldownMs, `retryInMs ${r.error.retryInMs}`);
    assert.deepEqual(r.error.report?.skipped, [0, 1]);
    assert.deepEqual([primary.requests.length, fallback.requests.length], [1, 1], "no request reached either server");
  });

  test("one client, 40 models (past the 16 a client searches in turn): each model's breaker is its own", T, async (t) => {
    // Every third model's one call gets a 503 and opens its breaker; then each model is called
    // again: the open ones are refused with no request, the rest are sent.
    const models = Array.from({ length: 40 }, (_, i) => `model-${i}`);
    const mock = await mockFor(t, { script: models.map((_, i) => ({ status: i % 3 === 0 ? 503 : 200 })) });
    // A cooldown far past the deadline: an open breaker refuses at once, however slow the run.
    const f = createRetryFetch({ maxAttempts: 1, backoff: TINY, deadlineMs: 300, breaker: { failureThreshold: 1, cooldownMs: 60_000 } });
    const callModel = (model) => f(`${mock.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model, messages: MESSAGES }) });
    for (const [i, model] of models.entries()) assert.equal((await callModel(model)).status, i % 3 === 0 ? 503 : 200, model);
    mock.setScript([{ status: 200 }]);
    const sent = mock.requests.length;
    for (const [i, model] of [...models.entries()].reverse()) {
      const r = await settle(callModel(model));
      if (i % 3 === 0) assert.ok(!r.ok && isCircuitOpenError(r.error), `${model}: CircuitOpenError expected, got ${r.error ?? r.value?.status}`);
      else assert.equal(r.value?.status, 200, model);
    }
    const again = mock.requests.slice(sent).map((r) => r.json.model);
    assert.deepEqual(again, models.filter((_, i) => i % 3 !== 0).reverse(), "only the models whose breakers are closed were sent");
  });

  test("one client, 25,000 models named once each: the routes it keeps stay bounded, and those it must remember it does", { timeout: 60_000 }, async () => {
    // A gateway passing its users' models on: a route (breaker, pacer) a model. Ten models' breakers
    // are opened first; then 25,000 models are called once each, past the 4,096 routes a client
    // keeps before it drops those at rest, and past the 16,384 keys it numbers before it numbers
    // them anew.
    const sent = [];
    const stub = async (url, init) => {
      const { model } = JSON.parse(init.body);
      sent.push(model);
      return new Response("{}", { status: model.startsWith("hot-") ? 503 : 200 });
    };
    const read = [];
    const store = { read: (keys) => (read.push(keys), {}), write: () => {} };
    const f = createRetryFetch({
      maxAttempts: 1, deadlineMs: 300, fetch: stub, breaker: { failureThreshold: 1, cooldownMs: 60_000 },
      health: { store, refreshMs: 0, firstReadMs: 0 },
    });
    const URL = "http://127.0.0.1:9/v1/chat/completions";
    const callModel = (model) => f(URL, { method: "POST", body: JSON.stringify({ model, messages: MESSAGES }) });
    const hot = Array.from({ length: 10 }, (_, i) => `hot-${i}`);
    for (const model of hot) assert.equal((await callModel(model)).status, 503, model);
    const batch = (from, n) => Array.from({ length: n }, (_, i) => `m-${from + i}`);
    for (const model of batch(0, 25_000)) assert.equal((await callModel(model)).status, 200, model);
    assert.equal(sent.length, 25_010, "every first call was sent");

    const breakers = f.exportState().breakers;
    for (const model of hot) assert.equal(breakers[`http://127.0.0.1:9 ${model}`]?.state, "open", model);
    assert.equal(breakers["http://127.0.0.1:9 m-0"], undefined, "a route at rest was dropped");
    assert.ok(Object.keys(breakers).length <= 4_096, `${Object.keys(breakers).length} routes kept of 25,010`);

    // The open ones, numbered in the first table, are still refused; the others are sent, each
    // under its own name (the health store is asked for each by its key).
    for (const model of hot) {
      const r = await settle(callModel(model));
      assert.ok(!r.ok && isCircuitOpenError(r.error), `${model}: CircuitOpenError expected, got ${r.error ?? r.value?.status}`);
    }
    const again = ["m-0", "m-4999", "m-5000", "m-24999", "m-7"];
    read.length = 0;
    sent.length = 0;
    for (const model of again) assert.equal((await callModel(model)).status, 200, model);
    assert.deepEqual(sent, again);
    const asked = new Set(read.flat());
    for (const model of [...hot, ...again]) assert.ok(asked.has(`http://127.0.0.1:9 ${model}`), `the store read ${model}'s key`);
  });

  test("a call numbered in a table of keys a later call replaced before the wasm read it is still named in its own", { timeout: 60_000 }, async () => {
    // A call whose body is read first (bytes) is numbered when the read is done, and handed to the
    // wasm a few microtasks later; a call made in between may start a new table of keys (every
    // 16,384). To make one in between deterministically, the read call's resolution is caught by
    // a `then` on Object.prototype (removed at once) and another call is made there.
    const sent = [];
    const stub = async (url, init) => {
      const { model } = JSON.parse(typeof init.body === "string" ? init.body : new TextDecoder().decode(init.body));
      sent.push(model ?? "(none)");
      return new Response("{}", { status: model === undefined ? 503 : 200 });
    };
    const f = createRetryFetch({ maxAttempts: 1, deadlineMs: 300, fetch: stub, breaker: { failureThreshold: 1, cooldownMs: 60_000 } });
    const URL = "http://127.0.0.1:9/v1/chat/completions";
    const callModel = (model) => f(URL, { method: "POST", body: JSON.stringify({ model }) });
    // The route with no model (a body of bytes is not read for one) opens: key number 0.
    assert.equal((await f(URL, { method: "POST", body: "{}" })).status, 503);
    for (let i = 0; i < 16_382; i++) await callModel(`m-${i}`);
    let caught = 0;
    let other;
    function then(resolve) {
      delete Object.prototype.then;
      if (Array.isArray(this?.keyNames) && this.models?.[1] === "fb") {
        caught++;
        other = callModel("new-0"); // the 16,385th key: a new table, read by the wasm at once
        resolve(this);
      } else {
        resolve(this);
        Object.defineProperty(Object.prototype, "then", { value: then, configurable: true, writable: true });
      }
    }
    sent.length = 0;
    Object.defineProperty(Object.prototype, "then", { value: then, configurable: true, writable: true });
    let res;
    try {
      // Its fallback is the 16,384th key.
      res = await f(URL, { method: "POST", body: new TextEncoder().encode("{}"), retry: { fallbacks: [{ model: "fb" }] } });
    } finally {
      delete Object.prototype.then;
    }
    assert.equal(caught, 1, "the call was read while a newer table began");
    assert.equal(res.status, 200);
    assert.deepEqual(retryReport(res).skipped, [0], "its open primary, key number 0 of its own table, was skipped");
    assert.equal((await other).status, 200);
    assert.deepEqual(sent.sort(), ["fb", "new-0"]);
  });

  test("onExhausted's Response is what the caller gets, also when every route is open", T, async (t) => {
    const { primary, fallback, route } = await twoProviders(t, [{ status: 503 }], [{ status: 503 }]);
    const reports = [];
    const f = createRetryFetch({
      maxAttempts: 2,
      backoff: TINY,
      deadlineMs: 300,
      breaker: { failureThreshold: 2, cooldownMs: 500 },
      fallbacks: [route],
      onExhausted: (report) => {
        reports.push(report);
        return new Response("a human will call you back", { status: 202 });
      },
    });
    const res = await call(f, primary);
    assert.equal(res.status, 202);
    assert.equal(await res.text(), "a human will call you back");
    assert.equal(reports.length, 1);
    assert.deepEqual(reports[0].attempts.map((a) => [a.route, a.status]), [[0, 503], [0, 503], [1, 503], [1, 503]]);
    assert.deepEqual([primary.requests.length, fallback.requests.length], [2, 2]);

    const open = await settle(call(f, primary));
    assert.equal(open.ok, true, `onExhausted instead of ${open.error}`);
    assert.equal(open.value.status, 202);
    assert.equal(await open.value.text(), "a human will call you back");
    assert.equal(reports.length, 2);
    assert.deepEqual(reports[1].skipped, [0, 1]);
    assert.equal(reports[1].attempts.length, 0);
    assert.deepEqual([primary.requests.length, fallback.requests.length], [2, 2], "nothing sent while all are open");
  });

  test("exportState → JSON → restoreState: a fresh client skips the open primary", T, async (t) => {
    const { primary, fallback, route } = await twoProviders(t, [{ status: 503 }]);
    const opts = { maxAttempts: 1, backoff: TINY, breaker: { failureThreshold: 2, cooldownMs: 500 }, fallbacks: [route] };
    const a = createRetryFetch(opts);
    for (let i = 0; i < 2; i++) assert.equal((await call(a, primary)).status, 200);
    assert.equal(primary.requests.length, 2);
    const state = JSON.parse(JSON.stringify(a.exportState()));
    assert.equal(state.breakers[`${primary.url} ${PRIMARY_MODEL}`]?.state, "open", JSON.stringify(state));

    const b = createRetryFetch(opts);
    b.restoreState(state);
    const res = await call(b, primary);
    assert.equal(res.status, 200);
    assert.equal(primary.requests.length, 2, "B sent nothing to the primary");
    assert.equal(fallback.requests.length, 3);
    assert.deepEqual(retryReport(res)?.skipped, [0]);
  });
});

describe("the seed article's example: the OpenAI SDK inside retry(fn)", () => {
  const run = (mock, onEvent) => {
    const client = new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 });
    return retry(
      ({ route }) => client.chat.completions.create({ model: route.model ?? PRIMARY_MODEL, messages: MESSAGES }),
      { maxAttempts: 3, backoff: TINY, fallbacks: [{ model: FALLBACK_MODEL }], onEvent },
    );
  };

  test("503 ×3 on the primary model, then the fallback model's first request succeeds", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 503 }, { status: 503 }, { status: 200 }] });
    const completion = await run(mock);
    assert.equal(completion.object, "chat.completion");
    assert.equal(completion.model, FALLBACK_MODEL);
    assert.equal(completion.choices[0].message.content, "ok");
    assert.equal(mock.requests.length, 4);
    assert.deepEqual(mock.requests.map((r) => r.json?.model), [PRIMARY_MODEL, PRIMARY_MODEL, PRIMARY_MODEL, FALLBACK_MODEL]);
    assert.equal(retryReport(completion)?.route, 1);
  });

  test("everything fails → the SDK's own APIError (503) is rethrown, with its report", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }] });
    const events = [];
    const r = await settle(run(mock, (e) => events.push(e)));
    assert.equal(r.ok, false);
    assert.ok(r.error instanceof OpenAI.APIError, `OpenAI.APIError expected, got ${r.error?.constructor?.name}`);
    assert.ok(r.error instanceof OpenAI.InternalServerError);
    assert.equal(r.error.status, 503);
    const report = retryReport(r.error);
    assert.ok(report, "retryReport(err) is set");
    // 3 on the primary, then 3 on the fallback (maxAttempts 3 too): six failures are well
    // within the default retry budget (retries pause after 50 straight failures).
    const P = PRIMARY_MODEL, F = FALLBACK_MODEL;
    assert.deepEqual(report.attempts.map((a) => [a.route, a.status]), [[0, 503], [0, 503], [0, 503], [1, 503], [1, 503], [1, 503]]);
    assert.deepEqual(mock.requests.map((r) => r.json?.model), [P, P, P, F, F, F]);
    assert.deepEqual(ofType(events, "giveUp").map((e) => e.reason), ["attempts-exhausted"]);
  });
});

describe("the route's model, read from the body", () => {
  test("the body's top-level \"model\" names the route; one nested in an earlier value is passed over", T, async () => {
    const events = [];
    const f = createRetryFetch({ fetch: async () => new Response("{}"), onEvent: (e) => events.push(e) });
    const cases = [
      [{ model: "first", messages: MESSAGES }, "first"],
      [{ metadata: { model: "decoy" }, messages: MESSAGES, model: "real" }, "real"],
      [{ response_format: { type: "json_schema", json_schema: { schema: { properties: { model: { type: "string" } } } } }, model: "real" }, "real"],
      [{ tools: [{ type: "function", function: { name: "pick", parameters: { model: "decoy" } } }], model: "real" }, "real"],
      [{ messages: [{ role: "user", content: 'say "model": "decoy" \\' }], model: "real" }, "real"],
      [{ name: "model", model: "real" }, "real"],
      [{ messages: MESSAGES, model: "real", tools: [{ model: "decoy" }] }, "real"],
      [{ messages: [{ role: "user", content: "hi" }], metadata: { model: "decoy" } }, undefined],
      [{ model: { name: "not a string" }, messages: MESSAGES }, undefined],
    ];
    for (const [body, model] of cases.flatMap(([b, m]) => [[JSON.stringify(b), m], [JSON.stringify(b, null, 2), m]])) {
      events.length = 0;
      await f("http://127.0.0.1:9/v1/chat/completions", { method: "POST", body });
      const attempt = events.find((e) => e.type === "attempt");
      assert.equal(attempt.model, model, body);
    }
  });
});

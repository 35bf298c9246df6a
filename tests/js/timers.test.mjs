// No timer outlives a call: a process that made a successful call (its attempt was armed with
// the 60 s deadline) and aborted another during a 5 s wait exits on its own at once. A leaked
// timer would keep Node alive for seconds — the symptom a user sees.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { T } from "./helpers.mjs";

const here = fileURLToPath(new URL(".", import.meta.url));

const child = `
import { createRetryFetch, retry } from "llm-retry";
let n = 0;
const transport = async () => new Response("{}", { status: n++ === 0 ? 200 : 503, headers: { "retry-after-ms": "5000" } });
const retryFetch = createRetryFetch({ fetch: transport });
console.log((await retryFetch("http://127.0.0.1:9/ok")).status);
const controller = new AbortController();
setTimeout(() => controller.abort(new Error("bye")), 50);
console.log(await retryFetch("http://127.0.0.1:9/busy", { signal: controller.signal }).catch((e) => e.message));
const c2 = new AbortController();
setTimeout(() => c2.abort(new Error("bye fn")), 50);
console.log(await retry(() => { throw Object.assign(new Error("busy"), { status: 503, headers: { "retry-after-ms": "5000" } }); }, { signal: c2.signal }).catch((e) => e.message));
`;

test("a process exits at once after a successful call and aborted waits", T, async () => {
  const file = `${here}.timers-child.mjs`;
  writeFileSync(file, child);
  const started = performance.now();
  const { code, stdout, stderr } = await new Promise((resolve) =>
    execFile(process.execPath, [file], { timeout: 10_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (error.code ?? error.signal) : 0, stdout, stderr }),
    ),
  );
  rmSync(file, { force: true });
  const took = performance.now() - started;
  assert.equal(code, 0, stderr);
  assert.deepEqual(stdout.trim().split("\n"), ["200", "bye", "bye fn"]);
  assert.ok(took < 2000, `the process lingered ${Math.round(took)} ms: a timer was left behind`);
});

// A wait of 0 ms — a backoff of 0, `Retry-After: 0` — sends the retry at once: not after a host
// timer of 0, which costs a turn of the event loop (1 ms in Node, up to 4 in a browser). Seen
// from outside: a timer of 0 started when the first attempt failed has not fired by the retry.
test("a 0 ms wait sends the retry at once, before a 0 ms timer started with the failure fires", T, async () => {
  const { createRetryFetch, retry } = await import("llm-retry");
  const url = "http://127.0.0.1:9/v1/chat/completions";
  const cases = [
    ["backoff 0", { backoff: { initialMs: 0, maxMs: 0 } }, {}],
    ["Retry-After: 0", {}, { "retry-after": "0" }],
  ];
  for (const [name, options, headers] of cases) {
    let fired;
    const seen = [];
    const transport = async () => {
      if (seen.length === 0) {
        fired = false;
        setTimeout(() => (fired = true), 0);
      }
      seen.push(fired);
      return new Response("{}", { status: seen.length === 1 ? 503 : 200, headers });
    };
    const res = await createRetryFetch({ ...options, fetch: transport, breaker: false })(url);
    assert.equal(res.status, 200, name);
    assert.deepEqual(seen, [false, false], `${name}: the retry waited for a host timer`);
  }
  let fired = false;
  let calls = 0;
  const value = await retry(
    () => {
      if (calls++ === 0) {
        setTimeout(() => (fired = true), 0);
        throw Object.assign(new Error("busy"), { status: 503, headers: { "retry-after": "0" } });
      }
      return fired ? "after a timer" : "at once";
    },
  );
  assert.equal(value, "at once");
  // A wait that is not 0 still goes through the host's timer.
  const started = performance.now();
  let n = 0;
  const slow = createRetryFetch({ fetch: async () => new Response("{}", { status: n++ ? 200 : 503, headers: { "retry-after-ms": "30" } }) });
  assert.equal((await slow(url)).status, 200);
  assert.ok(performance.now() - started >= 30, "a 30 ms hint was waited for");
});

// What retryFetch costs on the happy path, over the transport it wraps: the same request through
// a plain in-memory transport and through createRetryFetch({ fetch: transport }).
// Run: make bench (builds pkg/ first). Prints µs per call; the difference is the overhead.
import { createRetryFetch } from "../pkg/node.js";

const N = Number(process.env.N ?? 20000);
const body = JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "x".repeat(2000) }] });
const init = {
  method: "POST",
  headers: { "content-type": "application/json", authorization: "Bearer sk-bench", "x-stainless-retry-count": "0" },
  body,
};
const url = "http://127.0.0.1:9/v1/chat/completions";
const transport = async () => new Response('{"ok":true}', { status: 200, headers: { "content-type": "application/json" } });

async function time(label, f) {
  for (let i = 0; i < 2000; i++) await f(); // warm up the JIT
  const t0 = performance.now();
  for (let i = 0; i < N; i++) await f();
  const us = ((performance.now() - t0) * 1000) / N;
  console.log(`${label.padEnd(44)} ${us.toFixed(2).padStart(7)} µs/call`);
  return us;
}

const plain = await time("transport alone", () => transport(url, init));
const retryFetch = createRetryFetch({ fetch: transport });
const wrapped = await time("createRetryFetch({ fetch: transport })", () => retryFetch(url, init));
const routed = createRetryFetch({ fetch: transport, fallbacks: [{ model: "gpt-4o", url: "http://127.0.0.2:9/v1/chat/completions" }] });
const withFallback = await time("… with a fallback route configured", () => routed(url, init));
console.log(`overhead per successful call: ${(wrapped - plain).toFixed(2)} µs (${(withFallback - plain).toFixed(2)} µs with a fallback route)`);

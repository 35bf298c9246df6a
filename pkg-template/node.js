// Node ≥ 20, also when a bundler takes this module into a server build (Next.js route handlers and
// the server render of client components, esbuild --platform=node): the wasm travels inside this
// file — make package bundles it in as bytes (esbuild's binary loader) — so no file has to be found
// next to whatever the bundler emits. Instantiated synchronously.
import wasm from "./llm_retry_bg.wasm";
import { initSync } from "./llm_retry.js";

// Node 20's V8 (11.3) aborts the whole process ("unreachable code" in the deoptimizer) when it
// deoptimizes a function into which its optimizing compiler had inlined a call to a wasm export
// that returns a JS value: thousands of calls in flight set it off (a transport's first Response
// deoptimizing the caller's frame). Those inlined calls are turned off there, for the process;
// later V8s (Node 22 and on) have no such fault and are left alone. (`getBuiltinModule`: Node
// 20.16 and later; an older Node 20 takes NODE_OPTIONS=--no-turbo-inline-js-wasm-calls.)
if (Number.parseInt(process.versions.v8, 10) < 12) {
  process.getBuiltinModule?.("node:v8").setFlagsFromString("--no-turbo-inline-js-wasm-calls");
}

initSync({ module: wasm });

export * from "./api.js";

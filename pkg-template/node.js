// Node ≥ 20, also when a bundler takes this module into a server build (Next.js route handlers and
// the server render of client components, esbuild --platform=node): the wasm travels inside this
// file — make package bundles it in as bytes (esbuild's binary loader) — so no file has to be found
// next to whatever the bundler emits. Instantiated synchronously.
import wasm from "./llm_retry_bg.wasm";
import { initSync } from "./llm_retry.js";

initSync({ module: wasm });

export * from "./api.js";

// Deno: the .wasm is imported as a module source (no read permission needed, also from
// `npm:llm-retry` in Deno's cache) and instantiated synchronously.
import source wasm from "./llm_retry_bg.wasm";
import { initSync } from "./llm_retry.js";

initSync({ module: wasm });

export * from "./api.js";

// Cloudflare Workers: the .wasm is imported as a compiled module and instantiated synchronously.
// Instantiation is pure compute; nothing that Workers forbid at global scope (timers, random
// numbers, I/O) runs before a request is handled.
import wasm from "./llm_retry_bg.wasm";
import { initSync } from "./llm_retry.js";

initSync({ module: wasm });

export * from "./api.js";

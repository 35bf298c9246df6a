// Vercel Edge Functions and Next.js's Edge runtime (the "edge-light" condition): the .wasm is
// imported as a compiled WebAssembly.Module (`?module`, which their bundlers resolve) and
// instantiated synchronously. No fetch, timer or random number runs at global scope.
import wasm from "./llm_retry_bg.wasm?module";
import { initSync } from "./llm_retry.js";

// Next.js's own Edge sandbox (next start, next dev) compiles the module outside the sandbox's
// realm, so it fails the glue's `instanceof WebAssembly.Module` and the glue would try to compile
// it again from bytes. It is a real module all the same: give it this realm's prototype.
if (!(wasm instanceof WebAssembly.Module)) Object.setPrototypeOf(wasm, WebAssembly.Module.prototype);
initSync({ module: wasm });

export * from "./api.js";

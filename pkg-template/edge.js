// Vercel Edge Functions and Next.js's Edge runtime (the "edge-light" condition): the .wasm is
// imported as a compiled WebAssembly.Module (`?module`, which their bundlers resolve) and
// instantiated synchronously. No fetch, timer or random number runs at global scope.
import wasm from "./llm_retry_bg.wasm?module";
import { initSync } from "./llm_retry.js";

// Next.js's own Edge sandbox (next start, next dev) compiles the module outside the sandbox's
// realm, so it fails the glue's `instanceof WebAssembly.Module`, and the glue would compile it
// again from bytes, which the sandbox forbids. It is a module all the same (this realm's
// WebAssembly.Module.exports accepts it): give it this realm's prototype.
if (!(wasm instanceof WebAssembly.Module)) {
  try {
    WebAssembly.Module.exports(wasm);
    Object.setPrototypeOf(wasm, WebAssembly.Module.prototype);
  } catch {}
}
initSync({ module: wasm });

export * from "./api.js";

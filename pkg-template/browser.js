// Browsers and bundlers: the wasm is fetched next to this file (bundlers rewrite the URL).
import init from "./llm_retry.js";

await init({ module_or_path: new URL("./llm_retry_bg.wasm", import.meta.url) });

export * from "./api.js";

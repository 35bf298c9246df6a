// Node ≥ 20: the wasm is read from the package directory and instantiated synchronously.
import { readFileSync } from "node:fs";
import { initSync } from "./llm_retry.js";

initSync({ module: readFileSync(new URL("./llm_retry_bg.wasm", import.meta.url)) });

export * from "./api.js";

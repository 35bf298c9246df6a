// esbuild (`--conditions=esbuild --loader:.wasm=file --format=esm`): the .wasm is imported as a
// file, which esbuild copies next to the bundle and names by URL; it is fetched from there.
// esbuild does not rewrite `new URL(..., import.meta.url)`, so the browser entry's form would 404.
import wasmUrl from "./llm_retry_bg.wasm";
import init from "./llm_retry.js";

await init({ module_or_path: new URL(wasmUrl, import.meta.url) });

export * from "./api.js";

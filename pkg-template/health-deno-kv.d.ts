import type { HealthStore } from "./index.js";

export interface DenoKvHealthStoreOptions {
  /** Starts every key: `[...prefix, route, field]` (key parts, as Deno.KvKeyPart). [["llm-retry", "health"]] */
  prefix?: readonly (string | number | bigint | boolean | symbol | Uint8Array)[];
  /** Bounds each read and write, ms; past it the operation rejects (told to `health.onError`). [1000] */
  timeoutMs?: number;
}

/** The parts of a `Deno.Kv` the store uses. */
export interface DenoKvLike {
  getMany(keys: readonly (readonly unknown[])[]): Promise<readonly { value: unknown }[]>;
  atomic(): { max(key: readonly unknown[], n: bigint): unknown; commit(): Promise<{ ok: boolean }> };
}

/** A health store in Deno KV over an open `Deno.Kv`: writes are one atomic commit of `max` per field (the larger value is kept); reads are `getMany`. */
export function denoKvHealthStore(kv: DenoKvLike, options?: DenoKvHealthStoreOptions): HealthStore;

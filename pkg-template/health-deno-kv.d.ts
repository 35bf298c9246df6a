import type { HealthStore } from "./index.js";

export interface DenoKvHealthStoreOptions {
  /** Starts every key: `[...prefix, route, field]` (key parts, as Deno.KvKeyPart). [["llm-retry", "health"]] */
  prefix?: readonly (string | number | bigint | boolean | symbol | Uint8Array)[];
  /** Bounds each read, write and pace, ms; past it the operation rejects (told to `health.onError`). [1000] */
  timeoutMs?: number;
}

/** The parts of a `Deno.Kv` the store uses. */
export interface DenoKvLike {
  get(key: readonly any[]): Promise<{ key: readonly any[]; value: unknown; versionstamp: string | null }>;
  getMany(keys: readonly (readonly unknown[])[]): Promise<readonly { value: unknown }[]>;
  atomic(): {
    max(key: readonly unknown[], n: bigint): unknown;
    check(...checks: { key: readonly any[]; versionstamp: string | null }[]): { set(key: readonly any[], value: unknown, options?: { expireIn?: number }): { commit(): Promise<{ ok: boolean }> } };
    commit(): Promise<{ ok: boolean }>;
  };
}

/** A health store in Deno KV over an open `Deno.Kv`: writes are one atomic commit of `max` per field (the larger value is kept); reads are `getMany`; it paces busy routes from one bucket each (an atomic check-and-set per ask; a bucket's entry expires a day after its last ask). */
export function denoKvHealthStore(kv: DenoKvLike, options?: DenoKvHealthStoreOptions): HealthStore;

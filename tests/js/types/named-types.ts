// The contract's type names, imported by name: a TypeScript user writes these in annotations.
import type { RetryOptions, RetryEvent, RetryFetch } from "llm-retry";
import { createRetryFetch, retry } from "llm-retry";

export const options: RetryOptions = { maxAttempts: 2, onEvent: (e: RetryEvent) => void e.type };
export const f: RetryFetch = createRetryFetch(options);
export const p: Promise<number> = retry(() => 1, options);

// Type definitions for llm-retry. Durations are milliseconds; defaults in brackets.

/** The jitter modes of the AWS "Exponential Backoff and Jitter" study. */
export type Jitter = "full" | "equal" | "decorrelated" | "none";

export interface BackoffOptions {
  /** Base delay before the first retry, ms. [1000] */
  initialMs?: number;
  /** Cap on any backoff delay, ms; must be ≥ initialMs. [30000, or initialMs if larger] */
  maxMs?: number;
  /** Growth per retry: delay(n) = min(maxMs, initialMs × multiplier^(n−1)); 1–100. [2] */
  multiplier?: number;
  /** How randomness spreads the delay. ["full": uniform(0, delay)] */
  jitter?: Jitter;
}

export interface BudgetOptions {
  /** Bucket size; backoff retries pause while at most half of it is left. [100] */
  maxTokens?: number;
  /** Tokens returned per success (each failed attempt takes 1, but a 429 that named its wait). [0.2] */
  tokenRatio?: number;
}

export interface BreakerOptions {
  /** Consecutive failed attempts that open a route's breaker. [5] */
  failureThreshold?: number;
  /** How long an open route waits before one probe is let through, ms; doubled after each failed probe. [250] */
  cooldownMs?: number;
  /** The longest cooldown, ms; ≥ cooldownMs. [750, or cooldownMs if larger] */
  maxCooldownMs?: number;
}

/** A route tried after the primary (the request as given) has failed. */
export interface FallbackRoute {
  /** Rewrites the top-level "model" field of the JSON request body. */
  model?: string;
  /** Sends to this URL instead. Credentials are not carried to another origin. */
  url?: string;
  /** Headers set or replaced on this route (e.g. the fallback provider's own key). */
  headers?: Record<string, string> | [string, string][] | Headers;
  /** Attempts on this route, counting the first. [the top-level maxAttempts] */
  maxAttempts?: number;
}

/** What `retry(fn)` hands `fn` as `route`. */
export interface RouteInfo {
  /** 0 for the primary, i + 1 for fallbacks[i]. */
  index: number;
  model?: string;
  url?: string;
  headers?: Record<string, string>;
}

export interface AttemptRecord {
  route: number;
  model?: string;
  /** The HTTP status, when a response arrived. */
  status?: number;
  /** Why the attempt was classified as it was, e.g. "rate-limited", "network-error", "ok". */
  reason: string;
  /** The time waited before this attempt, ms (backoff, hint, or in line). */
  waitedMs: number;
  /** A 200 event stream that failed before its first content event (in-band error, break, stall). */
  inStream?: true;
}

/** How a call went: returned by retryReport(response) and passed to onExhausted. */
export interface RetryReport {
  /** The call's id, as its events' `callId`. */
  id: number;
  attempts: AttemptRecord[];
  totalWaitMs: number;
  durationMs: number;
  /** The route whose response is the result, if any. */
  route?: number;
  model?: string;
  /** Whether any route after the primary was tried. */
  fallback: boolean;
  /** Routes passed over without a request: breaker open, cooling after a 429 wait hint, or no pacing slot. */
  skipped: number[];
  /** For an event stream: from the call's start to its first content event, ms. */
  firstTokenMs?: number;
  /** Set when a committed stream's body failed afterwards (a transport error, idleTimeoutMs): the error's name. */
  streamError?: { phase: "after-commit"; error: string };
}

/** What a wait was for: the backoff, a server hint (by header), a route cooling after a 429's hint,
 * the route's pacing slot, or its open breaker. */
export type WaitCause =
  | "backoff"
  | "retry-after"
  | "retry-after-ms"
  | "x-ratelimit-reset"
  | "anthropic-ratelimit-reset"
  | "cooling"
  | "pacing"
  | "breaker";

/** Every event names its call: `callId` is the `id` of the call's report, unique in this module instance. */
export type RetryEvent = { callId: number } & (
  | {
      /** A request is being sent: the last event before it leaves. */
      type: "attempt";
      /** 1-based, across routes. */
      attempt: number;
      route: number;
      model?: string;
    }
  | {
      /** A committed stream's body failed (a transport error, idleTimeoutMs): the caller's to see, never replayed. */
      type: "streamError";
      phase: "after-commit";
      /** The error's name, e.g. "TimeoutError", "TypeError". */
      error: string;
      route: number;
      model?: string;
    }
  | {
      /** A stream's first content event arrived: from here on its bytes are the caller's (never replayed). */
      type: "commit";
      route: number;
      model?: string;
      /** The attempt that committed (1-based, across routes). */
      attempt: number;
      /** From the call's start to the first content event, ms. */
      firstTokenMs: number;
    }
  | {
      /** A wait begins before the next attempt on `route` (a retry's, or a first attempt's wait in line). */
      type: "wait";
      /** How long the wait is planned to be, ms (a breaker wait ends early when a probe succeeds). */
      delayMs: number;
      wait: WaitCause;
      /** The server hint that set the wait, when one did. */
      hint?: string;
      route: number;
      model?: string;
    }
  | {
      /** A retry on the same route is being sent. */
      type: "retry";
      /** The attempt that failed (1-based, across routes). */
      attempt: number;
      /** The time actually waited since it failed, ms. */
      delayMs: number;
      reason: string;
      status?: number;
      /** The server hint that set the wait, when it did: "retry-after", "retry-after-ms", "x-ratelimit-reset", "anthropic-ratelimit-reset". */
      hint?: string;
      /** What the last wait before the retry was for. */
      wait: WaitCause;
      route: number;
      model?: string;
    }
  | {
      type: "fallback";
      from: number;
      to: number;
      /** Why route `from` was left, e.g. "attempts-exhausted", "insufficient-quota", "circuit-open". */
      reason: string;
      /** The last response's status on route `from`, if it ended on one. */
      status?: number;
      fromModel?: string;
      toModel?: string;
    }
  | {
      /** A route passed over without a request, for a later route that was ready or because no route could be reached within the deadline: its breaker is open, it is cooling after a 429 wait hint (from any call through this client), or its pacing has no slot. */
      type: "skip";
      route: number;
      model?: string;
      reason: "circuit-open" | "cooling" | "pacing";
      /** When the route admits requests again, ms. */
      retryInMs: number;
    }
  | {
      /** A breaker changed state. `key` is the route's origin and model (no path or query). */
      type: "breaker";
      key: string;
      from: BreakerState;
      to: BreakerState;
    }
  | { type: "giveUp"; reason: string; attempts: number; status?: number }
  | { type: "success"; attempts: number; totalMs: number; route: number; model?: string; fallback: boolean }
);

export type BreakerState = "closed" | "open" | "half-open";

/** Breaker state as plain JSON, to keep in KV or a Durable Object between Worker invocations. */
export interface RetryState {
  version: 1;
  /** By route key. A route at rest (closed, nothing counted, no pause) may be left out: restored, it is the same as absent. */
  breakers: Record<string, { state: BreakerState; failures: number; openUntil: number; cooledUntil: number }>;
}

/** What instances tell each other about a route through a health store: instants in ms since the epoch (0: never). Two records merge by taking the larger value of each field. */
export interface HealthRecord {
  /** When a breaker last opened. */
  openedAt: number;
  /** Until when that opening holds (the later one wins). */
  openUntil: number;
  /** When a breaker last closed (a probe succeeded). */
  closedAt: number;
  /** Until when a server asked for a pause (a 429's wait hint). */
  cooledUntil: number;
}

/** Where instances (Worker isolates, servers, clients) share their routes' health. Keys are breaker keys (a route's origin and model). */
export interface HealthStore {
  /** The records known for these keys (a key with none may be left out). */
  read(keys: string[]): Promise<Record<string, HealthRecord>> | Record<string, HealthRecord>;
  /** Merges these records into the stored ones: per field, the larger value is kept. */
  write(records: Record<string, HealthRecord>): Promise<void> | void;
  /** Optional: send slots for busy routes, from one bucket per route shared by every client that asks (see PaceAsk). Without it, each client paces alone. */
  pace?(asks: PaceAsk[]): Promise<number[][]> | number[][];
}

/** A client's ask for `n` send slots on a busy route, with the provider's rate as its headers told it. The answer, per ask, is `n` instants (ms since the epoch), in order. */
export interface PaceAsk {
  /** The route (a breaker key). */
  key: string;
  n: number;
  /** Milliseconds between sends at the provider's rate. */
  interval: number;
  /** Sends the provider takes at once. */
  burst: number;
  /** When the asker's bucket is full again (ms since the epoch): the provider's count as it saw it. */
  tat: number;
  /** Take a slot only if it is no later than this many ms from now (the call has another route ready); a later one is not taken, and its instant says when it would be. [however late] */
  within?: number;
}

export interface HealthOptions {
  store: HealthStore;
  /** How often the store is read (in the background, while calls are made), ms. [1000] */
  refreshMs?: number;
  /** How long a call waits for its client's first read, ms; later reads are never waited for. [50] */
  firstReadMs?: number;
  /** A read, write or pace taking longer is given up (a TimeoutError to onError), ms; later ones go on. [1000] */
  timeoutMs?: number;
  /** Told of a read or write that failed or timed out (the calls go on with what the client knows). */
  onError?: (error: unknown, op: "read" | "write" | "pace") => void;
}

export interface RetryOptions {
  /** Attempts per route, counting the first; 1–100. [4] */
  maxAttempts?: number;
  backoff?: BackoffOptions;
  /** Bounds the call's waits and new attempts, ms: a wait that would end past it is never started; a call that no route can take within it fails fast. Left at its default it never aborts an attempt in flight (only a stream's wait for its first token); set, it bounds the attempt in flight too. [60000] */
  deadlineMs?: number;
  /** Aborts an attempt whose response headers have not arrived, ms (`retry(fn)`: until `fn` returns); an event stream's wait for its first token is `firstTokenTimeoutMs`'s. [none: the deadline bounds it] */
  attemptTimeoutMs?: number;
  /** For a 2xx text/event-stream: from its headers to its first content event, ms; a stall past it is a failed attempt (retried, or the next route). [none: the deadline bounds it] */
  firstTokenTimeoutMs?: number;
  /** For a committed stream: the longest gap between chunks, ms; past it the body errors with a TimeoutError (`retry(fn)`: between a stream object's items, its request aborted too). [none] */
  idleTimeoutMs?: number;
  /** Statuses worth retrying. [408, 409, 429, 500, 502, 503, 504, 529] */
  retryOn?: number[];
  /** A server hint (Retry-After & co) longer than this is not waited for: move on or give up, ms. [60000] */
  maxRetryAfterMs?: number;
  /** Treat every request as safe to repeat after a timeout. GET/HEAD/OPTIONS/PUT/DELETE and requests with an Idempotency-Key header always are. [false] */
  idempotent?: boolean;
  /** The client-wide retry budget (gRPC retry throttling) for backoff retries, or false to turn it off. [{ maxTokens: 100, tokenRatio: 0.2 }] */
  budget?: BudgetOptions | false;
  /** A circuit breaker per route (origin + model), or false to turn it off. Calls wait in line for an open breaker within their deadline. [{ failureThreshold: 5, cooldownMs: 250, maxCooldownMs: 750 }] */
  breaker?: BreakerOptions | false;
  /** Share what the breakers learn (a route found down, back up, or asking for a pause) with other instances through a store. Needs the breaker. [none] */
  health?: HealthOptions;
  /** Pace each route's sends by what its rate-limit headers (x-ratelimit-*, anthropic-ratelimit-*) and 429s teach, so calls wait for a slot instead of meeting a 429. [true] */
  pacing?: boolean;
  /** Routes tried in order after the primary. [none] */
  fallbacks?: FallbackRoute[];
  /** Extra header names never sent to another origin (authorization, x-api-key, api-key, cookie and proxy-authorization always are dropped). */
  sensitiveHeaders?: string[];
  /** The transport. Like every runtime's fetch, it must reject when `init.signal` aborts: the
   * caller's abort, `attemptTimeoutMs` and a `deadlineMs` you set reach an attempt in flight
   * through it. [the global fetch] */
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
  /** Called for every attempt sent, wait, retry, fallback, skipped route, breaker change, stream commit, give-up and success, each with its call's `callId`. Exceptions are ignored. Events carry no headers, bodies or full URLs (breaker keys name a route's origin and model). */
  onEvent?: (event: RetryEvent) => void;
  /** Last resort when every route failed (or all are open): a value it returns becomes the result. */
  onExhausted?: (report: RetryReport) => unknown;
}

export interface RetryFnOptions extends Omit<RetryOptions, "fetch"> {
  /** Aborting it stops the call at once; the promise rejects with signal.reason. */
  signal?: AbortSignal;
}

/** What one call may change of its client's options. */
export interface RetryCallOptions {
  maxAttempts?: number;
  /** Set here, it also bounds the attempt in flight (as a client's deadlineMs does). */
  deadlineMs?: number;
  attemptTimeoutMs?: number;
  firstTokenTimeoutMs?: number;
  idleTimeoutMs?: number;
  idempotent?: boolean;
  /** These routes instead of the client's, or false for none. */
  fallbacks?: FallbackRoute[] | false;
}

/** A fetch init with this call's own options under `retry` (never sent on): `false` for one attempt and no fallback. The SDKs pass it through their per-request `fetchOptions`. */
export interface RetryRequestInit extends RequestInit {
  retry?: RetryCallOptions | false;
}

export interface RetryFetch {
  /** `input` as fetch's (RequestInfo | URL), spelled without the DOM-only RequestInfo so Node's types suffice. */
  (input: string | URL | Request, init?: RetryRequestInit): Promise<Response>;
  exportState(): RetryState;
  restoreState(state: RetryState): void;
  /** Resolves when what the breakers told the health store is written (in a Worker: `ctx.waitUntil(retryFetch.flushHealth())`). */
  flushHealth(): Promise<void>;
}

export interface AttemptContext {
  /** 1-based, across routes. */
  attempt: number;
  /** Aborted when the attempt times out or the caller aborts: pass it to your SDK call. */
  signal: AbortSignal;
  route: RouteInfo;
}

export interface Retry {
  /** `opts`: this call's signal, and what it changes of the client's options. */
  <T>(fn: (ctx: AttemptContext) => T | Promise<T>, opts?: RetryCallOptions & { signal?: AbortSignal }): Promise<T>;
  exportState(): RetryState;
  restoreState(state: RetryState): void;
  flushHealth(): Promise<void>;
}

/** A fetch with retries: pass it wherever a fetch goes (OpenAI, Anthropic, Vercel AI SDKs). Throws TypeError/RangeError naming a bad option. */
export function createRetryFetch(options?: RetryOptions): RetryFetch;
/** A health store in this process's memory: clients given the same one share their routes' health. Records a day stale and pacing buckets run out are forgotten as it grows. */
export function memoryHealthStore(): HealthStore;
/** What `retryInit` returns: a fetch init of only this call's options, so it fits where an SDK's per-request `fetchOptions` go (which may not set body, headers, method or signal). */
export type RetryInit = Omit<RequestInit, "body" | "headers" | "method" | "signal"> & { retry: RetryCallOptions | false };
/** `{ retry: options }`: a fetch init carrying one call's own options, typed for an SDK's per-request `fetchOptions`. */
export function retryInit(options: RetryCallOptions | false): RetryInit;
/** Calls fn until it succeeds or the policy gives up. When the call ends on an HTTP error (an error with a numeric `status`, as the OpenAI and Anthropic SDKs throw, or `statusCode`, as the Vercel AI SDK's APICallError has), that error is rethrown untouched, so the SDK's typed errors keep working; otherwise (network errors, timeouts, the deadline) it rejects with a RetryError. Other errors (bugs in fn) are rethrown at once, untouched. */
export function retry<T>(fn: (ctx: AttemptContext) => T | Promise<T>, options?: RetryFnOptions): Promise<T>;
/** A reusable retry whose breakers and budget persist across calls. */
export function createRetry(options?: Omit<RetryFnOptions, "signal">): Retry;
/** How a call went, for the Response a retryFetch returned or the value or error any call ended with (also an SDK's error wrapping ours, along `cause`); undefined for anything else. */
export function retryReport(value: unknown): RetryReport | undefined;

/** The call failed without a response to return: network errors, timeouts, the deadline. */
export class RetryError extends Error {
  readonly name: "RetryError";
  readonly attempts: number;
  /** Why the last route was given up, e.g. "attempts-exhausted", "deadline", "timeout-not-idempotent". */
  readonly reason: string;
  /** The last HTTP status seen, if any. */
  readonly status?: number;
  readonly report: RetryReport;
  /** The last underlying error. */
  readonly cause: unknown;
}

/** No route could be tried within the call's deadline (every one open, cooling or without a pacing slot for longer): nothing was sent. */
export class CircuitOpenError extends Error {
  readonly name: "CircuitOpenError";
  /** What held the soonest route. */
  readonly reason: "circuit-open" | "cooling" | "pacing";
  /** When the soonest route admits a request again, ms. */
  readonly retryInMs: number;
  readonly report: RetryReport;
}

/** Whether `e` is, or wraps along its `cause` (an SDK's APIConnectionError, the AI SDK's errors), a RetryError. */
export function isRetryError(e: unknown): boolean;
/** Whether `e` is, or wraps along its `cause`, a CircuitOpenError. */
export function isCircuitOpenError(e: unknown): boolean;
/** Our RetryError or CircuitOpenError: `e` itself, or the one an SDK wrapped (along `cause`, or the AI SDK's `lastError`). */
export function retryErrorOf(e: unknown): RetryError | CircuitOpenError | undefined;

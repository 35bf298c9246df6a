// The public API over the wasm client. The runtime entry files (node.js, browser.js, deno.js,
// workerd.js) load the wasm first, then re-export this module.
import { RetryClient, retryReport as reportOf } from "./llm_retry.js";
import { checkOptions } from "./options.js";

/** A fetch with retries, backoff, wait hints, breakers and fallback. See index.d.ts. */
export function createRetryFetch(options) {
  const client = new RetryClient(checkOptions(options, false));
  const retryFetch = (input, init) => client.fetch(input, init);
  retryFetch.exportState = () => client.exportState();
  retryFetch.restoreState = (state) => client.restoreState(state);
  return retryFetch;
}

/** Calls `fn({ attempt, signal, route })` until it succeeds or the policy gives up. */
export function retry(fn, options) {
  let client;
  try {
    client = new RetryClient(checkOptions(options, true));
  } catch (e) {
    return Promise.reject(e);
  }
  return client.run(fn, undefined).finally(() => client.free());
}

/** A reusable `retry`, whose breakers and budget are shared by every call. */
export function createRetry(options) {
  const client = new RetryClient(checkOptions(options, true));
  const run = (fn, { signal } = {}) => client.run(fn, signal);
  run.exportState = () => client.exportState();
  run.restoreState = (state) => client.restoreState(state);
  return run;
}

/** How a call went — attempts, waits, the route that served it — for the Response a retryFetch
 * returned, or the value or error a call ended with. */
export function retryReport(value) {
  return reportOf(value);
}

// Brand checks rather than instanceof, so they hold across copies of the package in one bundle.
const isError = (e, name, field) => e instanceof Error && e.name === name && typeof e[field] === "number";

export const isRetryError = (e) => isError(e, "RetryError", "attempts");
export const isCircuitOpenError = (e) => isError(e, "CircuitOpenError", "retryInMs");

// The library throws plain Errors with a stable `name`; these classes make `instanceof` work
// across bundle copies by checking that name.
export class RetryError extends Error {
  static [Symbol.hasInstance](e) {
    return isRetryError(e);
  }
}

export class CircuitOpenError extends Error {
  static [Symbol.hasInstance](e) {
    return isCircuitOpenError(e);
  }
}

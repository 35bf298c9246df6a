"use client";
// A client component importing llm-retry at the top and creating its fetch at module scope, as a
// user would (so the server render at build time loads the wasm too). In the browser it calls the
// mock provider named by ?mock= and writes what it got into document.title.
import { useEffect, useState } from "react";
import { createRetryFetch, retryReport } from "llm-retry";

const retryFetch = createRetryFetch({ backoff: { initialMs: 20, maxMs: 50 } });

export default function RetryClient() {
  const [result, setResult] = useState("pending");
  useEffect(() => {
    const mock = new URLSearchParams(location.search).get("mock");
    if (!mock) return;
    retryFetch(`${mock}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Hi" }] }),
    })
      .then(async (res) => {
        const body = await res.json();
        return { status: res.status, attempts: retryReport(res).attempts.length, content: body.choices?.[0]?.message?.content };
      })
      .catch((e) => ({ error: String(e?.stack ?? e) }))
      .then((r) => {
        const text = JSON.stringify(r);
        document.title = text;
        setResult(text);
      });
  }, []);
  return <p id="result">{result}</p>;
}

// A server component page rendering the client component: Next prerenders it at build time, so
// the client component's module (and llm-retry with it) is also evaluated on the server.
import RetryClient from "./retry-client.js";

export default function Page() {
  return (
    <main>
      <RetryClient />
    </main>
  );
}

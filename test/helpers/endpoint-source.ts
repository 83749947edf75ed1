// An EndpointSource a test scripts: it publishes snapshots of endpoints and
// counts how the pool uses it (lookups, watches opened and open), so a test
// can tell that waiting follows the watch and closes it when done.
import { once } from "node:events";
import type { ActorEndpoint, EndpointSource } from "../../src/actor/pool.js";

/** An endpoint at a made-up local port, for a scripted source. */
export const fakeEndpoint = (n: number): ActorEndpoint => ({ address: `http://127.0.0.1:${n}`, endpointId: `ep-${n}`, metadata: {} });

/** A source whose snapshots the test publishes, counting how it is used. */
export function scriptedSource() {
  const snapshots: ActorEndpoint[][] = [];
  let push: (() => void) | undefined;
  const source = {
    resolves: 0,
    watchesOpened: 0,
    watchesOpen: 0,
    async resolve() {
      source.resolves++;
      return snapshots.at(-1) ?? [];
    },
    async *watch(signal: AbortSignal) {
      source.watchesOpened++;
      source.watchesOpen++;
      try {
        let seen = 0;
        for (;;) {
          while (seen < snapshots.length) yield snapshots[seen++] as ActorEndpoint[];
          if (signal.aborted) return;
          await Promise.race([new Promise<void>((resolve) => (push = resolve)), once(signal, "abort")]);
          if (signal.aborted) return;
        }
      } finally {
        source.watchesOpen--;
      }
    },
    publish(list: ActorEndpoint[]) {
      snapshots.push(list);
      push?.();
    },
  } satisfies EndpointSource & Record<string, unknown>;
  return source;
}

// Waiting for an actor name's endpoints to change: one watch of the pool's
// source, shared by every call of the pool that waits for an endpoint, and
// open only while one does (a hundred waiting calls are one stream, not a hundred).
import { onAbort } from "../core/abort.js";

/** What woke a waiter: a new snapshot of the endpoints, or its timer. */
export type EndpointWake = "changed" | "timer";

/** A watch opened by the first waiter and closed when the last one leaves. */
export class SharedEndpointWatch {
  private waiters = 0;
  private stop: AbortController | undefined;
  private changed: Promise<void> | undefined;
  private announce: (() => void) | undefined;
  /**
   * The watch ended by itself (its source failed or gave up): no change will
   * be announced, so waiters re-resolve on their own timer instead.
   */
  failed = false;

  /** `open` reads the source's snapshots (keeping the pool's endpoint list up to date) until `signal` aborts. */
  constructor(private readonly open: (signal: AbortSignal) => AsyncIterable<unknown>) {}

  /** Counts a waiter in, opening the watch for the first; returns what counts it out (closing the watch after the last). */
  join(): () => void {
    if (this.waiters++ === 0) this.start();
    let left = false;
    return () => {
      if (left) return;
      left = true;
      if (--this.waiters === 0) {
        this.stop?.abort();
        this.stop = undefined;
      }
    };
  }

  /**
   * Resolves with "changed" at the next snapshot, or "timer" after `ms`
   * (Infinity: no timer); rejects with `signal.reason` as soon as `signal`
   * aborts. The timer keeps the process alive, as any wait the caller awaits should.
   */
  next(ms: number, signal: AbortSignal | undefined): Promise<EndpointWake> {
    this.changed ??= new Promise<void>((resolve) => (this.announce = resolve));
    const changed = this.changed;
    return new Promise<EndpointWake>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const dispose = onAbort(signal, (reason) => {
        clearTimeout(timer);
        reject(reason as Error);
      });
      if (signal?.aborted) return;
      const finish = (how: EndpointWake) => {
        clearTimeout(timer);
        dispose();
        resolve(how);
      };
      if (Number.isFinite(ms)) timer = setTimeout(() => finish("timer"), Math.max(0, ms));
      void changed.then(() => finish("changed"));
    });
  }

  private start(): void {
    const stop = new AbortController();
    this.stop = stop;
    this.failed = false;
    void (async () => {
      try {
        for await (const _snapshot of this.open(stop.signal)) this.wakeAll();
      } catch {
        // Handled below: a watch that ends before it was stopped has failed.
      }
      // A later waiter may have opened a new watch already: this one speaks only for itself.
      if (!stop.signal.aborted && this.stop === stop) {
        this.failed = true;
        this.wakeAll();
      }
    })();
  }

  private wakeAll(): void {
    const announce = this.announce;
    this.changed = undefined;
    this.announce = undefined;
    announce?.();
  }
}

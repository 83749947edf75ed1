// The SliceCoordinator actor: membership, liveness and step barriers for a
// multi-slice training run whose slices come and go. Hosted by one job and
// found by name; slices and the driver are its clients.

/** The name the coordinator is registered under (in the run's namespace). */
export const SLICE_COORDINATOR = "slice-coordinator";

export interface SliceCoordinatorOptions {
  /** Steps complete only while at least this many slices are live (a reservation's minimum). */
  minSlices: number;
  /** A slice silent for longer than this is dropped, so barriers never wait for the dead. */
  heartbeatTimeoutMs: number;
  /**
   * The slices the run starts with: step 1 waits until all have joined (or
   * `joinTimeoutSeconds` passed), so a slow starter does not join late.
   * @default none
   */
  initialSlices?: string[];
  /** How long steps wait for a slice announced by `initialSlices` or `expect()`. @default 60 */
  joinTimeoutSeconds?: number;
}

/** What happened; `slices` are the live slices afterwards. */
export type Happening =
  | { kind: "joined"; sliceId: string; startStep: number; slices: string[] }
  | { kind: "dropped"; sliceId: string; silentMs: number; slices: string[] }
  | { kind: "expecting"; sliceId: string; timeoutSeconds: number; slices: string[] }
  | { kind: "gave-up"; sliceId: string; waitedMs: number; slices: string[] }
  | { kind: "step"; step: number; slices: string[] };

/** A happening, numbered and timed; the driver prints these as the run's timeline. */
export type TimelineEvent = Happening & { seq: number; at: Date };

export interface CoordinatorStatus {
  completedStep: number;
  minSlices: number;
  slices: Array<{ sliceId: string; step: number; silentMs: number }>;
  /** Slices announced by `expect()` that have not joined yet. */
  expected: string[];
}

interface SliceState {
  /** The last step this slice has finished. */
  step: number;
  lastSeen: number;
}

/**
 * Register it with a high `maxConcurrency`: `barrier()` and `events()` wait,
 * and heartbeats must get through meanwhile. JavaScript runs one method at a
 * time between awaits, so the state needs no locks.
 */
export class SliceCoordinator {
  private readonly slices = new Map<string, SliceState>();
  /** Announced slices that have not registered yet: sliceId → when they were announced, and until when steps wait. */
  private readonly expected = new Map<string, { since: number; until: number }>();
  private completedStep = 0;
  private barriers: Array<{ step: number; release: (slices: string[]) => void }> = [];
  private readonly timeline: TimelineEvent[] = [];
  private listeners: Array<() => void> = [];

  constructor(private readonly options: SliceCoordinatorOptions) {
    // Check for silent slices a few times per timeout; unref'd so it never keeps a process alive.
    setInterval(() => this.dropSilent(), Math.max(50, options.heartbeatTimeoutMs / 4)).unref();
    const now = Date.now();
    const until = now + (options.joinTimeoutSeconds ?? 60) * 1000;
    for (const sliceId of options.initialSlices ?? []) this.expected.set(sliceId, { since: now, until });
  }

  /**
   * Adds a slice (or re-adds one whose job was restarted). A newcomer starts
   * at the step after the last completed one: it joins the run where it is.
   */
  register(sliceId: string): { startStep: number; peers: string[] } {
    this.expected.delete(sliceId);
    this.slices.set(sliceId, { step: this.completedStep, lastSeen: Date.now() });
    const startStep = this.completedStep + 1;
    this.emit({ kind: "joined", sliceId, startStep, slices: this.sliceIds() });
    return { startStep, peers: this.sliceIds().filter((id) => id !== sliceId) };
  }

  /**
   * Announces a slice that is starting (a replacement): no step completes
   * until it has registered, or for `timeoutSeconds` at most, so it joins
   * the run at the next step instead of chasing it. The live slices finish
   * their step and wait at its barrier meanwhile, as a real multi-slice run
   * pauses at a step boundary to take in a new slice.
   */
  expect(sliceId: string, timeoutSeconds: number): void {
    if (this.slices.has(sliceId)) return; // it was quicker than the announcement
    const now = Date.now();
    this.expected.set(sliceId, { since: now, until: now + timeoutSeconds * 1000 });
    this.emit({ kind: "expecting", sliceId, timeoutSeconds, slices: this.sliceIds() });
  }

  /** Proves `sliceId` is alive and records that it has finished `step`. */
  heartbeat(sliceId: string, step: number): void {
    const slice = this.slices.get(sliceId);
    if (!slice) throw new Error(`slice ${sliceId} is not registered (dropped for silence?); it must register again`);
    slice.lastSeen = Date.now();
    slice.step = Math.max(slice.step, step);
    this.release();
  }

  /** Resolves, with the slices that took part, once every live slice has finished `step` (and there are enough of them). */
  barrier(step: number): Promise<{ step: number; slices: string[] }> {
    return new Promise((resolve) => {
      this.barriers.push({ step, release: (slices) => resolve({ step, slices }) });
      this.release();
    });
  }

  status(): CoordinatorStatus {
    const now = Date.now();
    return {
      completedStep: this.completedStep,
      minSlices: this.options.minSlices,
      slices: [...this.slices].map(([sliceId, s]) => ({ sliceId, step: s.step, silentMs: now - s.lastSeen })),
      expected: [...this.expected.keys()],
    };
  }

  /** Timeline events after `afterSeq`; waits up to `timeoutSeconds` for one when there are none (a long poll). */
  async events(afterSeq: number, timeoutSeconds: number): Promise<TimelineEvent[]> {
    const newer = () => this.timeline.filter((e) => e.seq > afterSeq);
    if (newer().length === 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutSeconds * 1000);
        this.listeners.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return newer();
  }

  /** Completes every step all live slices have finished, and opens the barriers waiting on them. */
  private release(): void {
    const live = [...this.slices.values()];
    if (live.length === 0 || live.length < this.options.minSlices || this.expected.size > 0) return;
    const reached = Math.min(...live.map((s) => s.step));
    while (this.completedStep < reached) {
      this.completedStep += 1;
      this.emit({ kind: "step", step: this.completedStep, slices: this.sliceIds() });
    }
    const open = this.barriers.filter((b) => b.step <= this.completedStep);
    this.barriers = this.barriers.filter((b) => b.step > this.completedStep);
    for (const barrier of open) barrier.release(this.sliceIds());
  }

  private dropSilent(): void {
    const now = Date.now();
    for (const [sliceId, slice] of this.slices) {
      const silentMs = now - slice.lastSeen;
      if (silentMs <= this.options.heartbeatTimeoutMs) continue;
      this.slices.delete(sliceId);
      this.emit({ kind: "dropped", sliceId, silentMs, slices: this.sliceIds() });
    }
    for (const [sliceId, { since, until }] of this.expected) {
      if (now < until) continue;
      this.expected.delete(sliceId);
      this.emit({ kind: "gave-up", sliceId, waitedMs: now - since, slices: this.sliceIds() });
    }
    // The survivors may all be waiting for the slice that was just dropped, or given up on.
    this.release();
  }

  private sliceIds(): string[] {
    return [...this.slices.keys()].sort();
  }

  private emit(happening: Happening): void {
    this.timeline.push({ ...happening, seq: this.timeline.length + 1, at: new Date() });
    for (const wake of this.listeners.splice(0)) wake();
  }
}
